"""A browser session's conversation on the tiny random model: features computed once, answers
streamed into the turn, stop / regenerate / clear, failures kept in the turn, hands-free input."""

import logging
import os

import numpy as np
import pytest
import soundfile

from app import web_session
from app.vad import END_SILENCE_S
from app.web_partial import Partial
from app.web_session import MODEL_FAILED, QUICK_END_S, WebSession, answer_next, read_files
from encoders.errors import InputError
from fusion.generate import GenerationOptions
from tests.tiny import photo, said, tone
from tests.web_support import huge_png

SHORT = GenerationOptions(max_new_tokens=6)


def answer(model, session, options=SHORT):
    return list(answer_next(model, session, options))


def count_calls(monkeypatch, obj, name) -> list:
    calls = []
    original = getattr(obj, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)
    return calls


def test_follow_up_rereads_the_earlier_photo_without_encoding_it_again(
    model, monkeypatch, tmp_path
):
    encodes = count_calls(monkeypatch, model.vision, "encode")
    session = WebSession(root=tmp_path)
    session.ask("What is this?", [(photo(), "your photo")])
    answer(model, session)
    session.ask("And what colour is it?")
    updates = answer(model, session)
    assert len(encodes) == 1
    assert updates[-1].stats.prompt_tokens["image"] == 16  # the first photo is still in context
    assert updates[-1].stats.timings_ms["encode_image"] == 0.0
    first, second = session.turns
    assert first.state == second.state == "done"
    messages = session.conversation(second)
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert messages[0].photos[0].features is not None


def test_the_answer_streams_into_the_turn_piece_by_piece(model, tmp_path):
    session = WebSession(root=tmp_path)
    session.ask("Hello there")
    lengths = [
        len(turn.answer)
        for turn in answer_next(model, session, GenerationOptions(max_new_tokens=12))
    ]
    assert len(set(lengths)) > 3  # grew several times
    assert lengths == sorted(lengths)
    turn = session.turns[0]
    assert turn.state == "done" and turn.stats is not None and turn.stats.new_tokens == 12


def test_the_transcript_is_known_before_the_first_piece_of_the_answer(model, tmp_path):
    session = WebSession(root=tmp_path)
    session.ask("", speech=tone(1.0))
    assert session.turns[0].transcript is None
    first = next(answer_next(model, session, SHORT))
    assert first.transcript is not None and first.answer == ""
    assert session.turns[0].audio_file.is_file()


def test_closing_the_answer_stops_it_with_the_text_so_far(model, tmp_path):
    session = WebSession(root=tmp_path)
    session.ask("Hello there")
    updates = answer_next(model, session, GenerationOptions(max_new_tokens=50))
    for _ in range(4):
        next(updates)
    updates.close()  # what Gradio does when Stop cancels the event
    turn = session.turns[0]
    assert turn.state == "stopped" and turn.answer
    session.ask("Go on")
    assert session.conversation(session.turns[1])[1].text == turn.answer.strip()


def test_a_stopped_answer_still_running_never_touches_its_regenerated_turn(model, tmp_path):
    session = WebSession(root=tmp_path)
    session.ask("Hello there")
    old = answer_next(model, session, GenerationOptions(max_new_tokens=50))
    next(old)
    session.stop()  # Stop: Gradio cancels, but the old step may still be running...
    turn = session.regenerate()
    new = answer_next(model, session, GenerationOptions(max_new_tokens=8))
    next(new)
    assert list(old) == []  # ...and when it returns it sees the newer attempt and leaves
    old.close()
    assert turn.state == "answering"
    list(new)
    assert turn.state == "done" and turn.stats.new_tokens == 8


def test_stop_regenerate_and_clear(model, tmp_path):
    session = WebSession(root=tmp_path)
    assert session.regenerate() is None  # nothing asked yet
    session.ask("Hello there")
    assert session.regenerate() is None  # still waiting for its answer
    assert session.stop() and session.turns[0].state == "stopped"
    turn = session.regenerate()
    assert turn is session.turns[0] and turn.state == "waiting" and turn.answer == ""
    answer(model, session)
    assert turn.state == "done" and not session.busy()
    session.ask("", [(photo(), "p")])
    folder = session.folder
    assert folder.is_dir()
    session.clear()
    assert session.turns == [] and not folder.exists()


def test_unreadable_and_failed_questions_are_left_out_of_the_context(
    model, monkeypatch, caplog, tmp_path
):
    session = WebSession(root=tmp_path)
    session.refuse("look", ["notes.jpg"], "notes.jpg is not an image")
    session.ask("first")

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA exploded")
        yield

    monkeypatch.setattr(model, "stream", broken)
    with caplog.at_level(logging.ERROR, logger="app.web_session"):
        answer(model, session)
    failed = session.turns[1]
    assert failed.state == "failed" and failed.error == MODEL_FAILED
    assert "CUDA exploded" in caplog.text  # logged for the operator, not shown to the person
    monkeypatch.undo()
    session.ask("second")
    assert [m.text for m in session.conversation(session.turns[2])] == ["second"]
    answer(model, session)
    assert session.turns[2].state == "done"


def test_a_conversation_too_long_for_the_model_says_so(model, tmp_path):
    session = WebSession(root=tmp_path)
    session.ask("Hello there")
    answer(model, session, GenerationOptions(max_new_tokens=600))  # the tiny LM reads 512
    turn = session.turns[0]
    assert turn.state == "failed" and "exceeds the model's 512" in turn.error


def test_a_system_prompt_comes_first(tmp_path):
    session = WebSession(root=tmp_path)
    turn = session.ask("hi")
    messages = session.conversation(turn, "  Be brief.  ")
    assert (messages[0].role, messages[0].text) == ("system", "Be brief.")
    assert session.conversation(turn, "   ")[0].role == "user"


def test_an_empty_question_is_refused(tmp_path):
    with pytest.raises(InputError, match="nothing to answer"):
        WebSession(root=tmp_path).ask("   ")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.jpg", b"these are my notes, not a photo", "not an image"),
        ("huge.png", huge_png(12_000, 9_000), "108 megapixels"),
        ("notes.txt", b"hello", "not supported"),
        ("empty.wav", b"", "empty"),
    ],
)
def test_unreadable_files_say_why(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_files([str(path)])


def test_photos_and_one_recording_are_read(tmp_path):
    image, clip = tmp_path / "cat.png", tmp_path / "question.wav"
    photo().save(image)
    soundfile.write(clip, tone(1.0), 16_000)
    photos, speech = read_files([str(image), str(clip)])
    assert [label for _, label in photos] == ["your photo cat.png"]
    assert speech.shape == (16_000,)
    with pytest.raises(InputError, match="one spoken question"):
        read_files([str(clip), str(clip)])


def microphone(audio: np.ndarray, rate: int = 48_000, chunk_s: float = 0.5):
    """16 kHz float audio -> int16 chunks at `rate`, as the browser sends them."""
    loud = np.repeat(audio, rate // 16_000)
    pcm = (loud * 32767).astype(np.int16)
    step = round(rate * chunk_s)
    return [(rate, pcm[i : i + step]) for i in range(0, len(pcm), step)]


def test_hands_free_hears_a_question_when_the_speaker_pauses(tmp_path):
    session = WebSession(root=tmp_path)
    chunks = microphone(np.concatenate([said("What is this?") * 0.5, np.zeros(24_000, np.float32)]))
    ended = [session.hear(*chunk) for chunk in chunks]
    assert ended.count(True) == 1 and session.heard_count == 1
    heard = session.take_heard()
    assert heard is not None and 0.5 <= len(heard) / 16_000 < 2.0  # Piper says it in ~0.9 s
    assert session.take_heard() is None


@pytest.mark.parametrize(
    ("heard_so_far", "quick"),
    [("What is this?", True), ("Stop!", True), ("I lost my keys.", False)],
)
def test_a_question_whose_words_end_as_one_is_taken_after_a_short_pause(
    tmp_path, heard_so_far, quick
):
    """Its partial transcript (of everything said) ends in "?" or "!": QUICK_END_S of pause
    ends it; other words wait for the listener's whole pause (a second sentence may follow)."""
    session = WebSession(root=tmp_path)
    speech = microphone(said("What is this?") * 0.5, rate=16_000, chunk_s=0.25)
    assert not any(session.hear(*chunk) for chunk in speech)
    assert session.listener.hearing
    session.partial = Partial(session.utterances, heard_so_far, frames=10**6)
    pauses = microphone(np.zeros(16_000, np.float32), rate=16_000, chunk_s=0.25)
    ended_after = next(i for i, chunk in enumerate(pauses, 1) if session.hear(*chunk)) * 0.25
    if quick:
        assert QUICK_END_S <= session.heard_pause_s < END_SILENCE_S and ended_after < END_SILENCE_S
    else:
        assert session.heard_pause_s >= END_SILENCE_S
    assert session.take_heard() is not None


def test_a_partial_transcript_of_an_earlier_utterance_ends_nothing(tmp_path):
    session = WebSession(root=tmp_path)
    speech = microphone(said("What is this?") * 0.5, rate=16_000, chunk_s=0.25)
    for chunk in speech:
        session.hear(*chunk)
    session.partial = Partial(session.utterances - 1, "What is this?", frames=10**6)
    pauses = microphone(np.zeros(16_000, np.float32), rate=16_000, chunk_s=0.25)
    next(i for i, chunk in enumerate(pauses, 1) if session.hear(*chunk))
    assert session.heard_pause_s >= END_SILENCE_S


def test_speaking_over_an_answer_stops_it_and_is_the_next_question(tmp_path):
    """Barge-in, while the answer is written and while it is spoken."""
    session = WebSession(root=tmp_path)
    question = microphone(
        np.concatenate([said("No, the other one.") * 0.5, np.zeros(24_000, np.float32)])
    )
    turn = session.ask("typed")  # waiting for its answer: busy
    ended = [session.hear(*chunk) for chunk in question]
    assert turn.state == "stopped" and session.interruptions == 1
    assert ended.count(True) == 1 and session.take_heard() is not None
    session.speaking(5.0)  # the spoken answer plays for 5 s
    assert [session.hear(*chunk) for chunk in question].count(True) == 1
    assert session.interruptions == 2 and session.speaking_until == 0.0  # its voice stopped


def test_a_backchannel_over_an_answer_is_no_question(tmp_path):
    session = WebSession(root=tmp_path)
    turn = session.ask("typed")
    yeah = microphone(np.concatenate([said("Yeah.") * 0.5, np.zeros(24_000, np.float32)]))
    assert not any(session.hear(*chunk) for chunk in yeah)
    assert turn.state == "waiting" and session.interruptions == 0
    session.stop()  # the answer is over: the same word is an ordinary (short) question
    assert [session.hear(*chunk) for chunk in yeah].count(True) == 1


def test_the_camera_frame_goes_stale(monkeypatch, tmp_path):
    session = WebSession(root=tmp_path)
    assert session.current_frame() is None
    clock = [100.0]
    monkeypatch.setattr(web_session.time, "monotonic", lambda: clock[0])
    session.see(photo(640, 480))
    assert session.current_frame().size == (640, 480)
    clock[0] += web_session.FRAME_FRESH_S + 1
    assert session.current_frame() is None


def test_a_question_prepared_in_its_pause_is_asked_with_its_frame_and_answered_from_there(
    model, tmp_path
):
    """Hands-free with the camera on: the frame as the question begins is prefilled, the
    question is prepared during its pause with that frame (app/web_partial.py), asked with
    it though the camera has moved on, and its answer encodes nothing again and prefills
    one token."""
    from app.listening import hear
    from app.web_partial import PartialTranscripts

    partials, session = PartialTranscripts(model), WebSession(root=tmp_path)
    session.see(photo(seed=1))
    words = said("What is this?") * 0.5
    for chunk in microphone(np.concatenate([words, np.zeros(16_000, np.float32)]), 16_000):
        hear(session, *chunk, partials)
        partials.worker.submit(lambda: None).result()  # as if each chunk came after the work
    opening = model._opening[1].shape[1]  # the system prompt's tokens, everyone's
    assert session.looked_at[1].tobytes() == photo(seed=1).tobytes()
    assert model.prefixes.reused_tokens >= opening + 16  # the question's prompt began after
    # the photo's 16 tokens, prefilled as the question began
    session.see(photo(seed=2))  # the camera moved on before the page asked
    turn = session.ask_heard()
    assert turn is not None and session.prepared_view is not None
    assert turn.question.photos[0].image.tobytes() == photo(seed=1).tobytes()
    before = model.prefixes.reused_tokens
    stats = answer(model, session)[-1].stats
    prompt = sum(stats.prompt_tokens.values())
    assert model.prefixes.reused_tokens - before == prompt  # all of it, its logits kept
    assert stats.timings_ms["encode_image"] == stats.timings_ms["transcribe"] == 0.0
    other = said("What is that over there?") * 0.5
    assert session.frame_for(other).tobytes() == photo(seed=2).tobytes()  # not the prepared one


def test_a_partial_transcript_gives_way_to_the_question_s_preparation(model, tmp_path):
    """A greedy partial transcript still running when the pause settles the question stops
    there: the preparation waits for its thread, and hears more."""
    from app.web_partial import PartialTranscripts

    partials, session = PartialTranscripts(model), WebSession(root=tmp_path)
    for chunk in microphone(said("What is this?") * 0.5, 16_000, chunk_s=0.25):
        session.hear(*chunk)
    assert session.listener.in_question
    audio, utterance = session.listener.so_far(), session.utterances
    partials._transcribe(session, audio, utterance, session.prepared)
    assert session.partial is not None  # nothing superseded it
    session.partial, session.prepared = None, (utterance, len(audio) // 512)
    partials._transcribe(session, audio, utterance, None)  # asked before the preparation
    assert session.partial is None


def test_the_worker_takes_one_thread_while_others_keep_a_core_busy(model, monkeypatch, tmp_path):
    from app import web_partial

    partials, session = web_partial.PartialTranscripts(model), WebSession(root=tmp_path)
    teams = []
    monkeypatch.setattr(web_partial, "set_threads_here", teams.append)
    for chunk in microphone(said("What is this?") * 0.5, 16_000, chunk_s=0.25):
        session.hear(*chunk)
    audio, utterance = session.listener.so_far(), session.utterances
    monkeypatch.setattr(partials.others, "cores", lambda: 1.0)  # a core busy elsewhere
    partials._transcribe(session, audio, utterance, session.prepared)
    monkeypatch.setattr(partials.others, "cores", lambda: 0.0)  # the cores free
    partials._transcribe(session, audio, utterance, session.prepared)
    assert teams == [1, partials.most_threads]


def test_sessions_share_nothing(tmp_path):
    one, two = WebSession(root=tmp_path), WebSession(root=tmp_path)
    one.ask("mine")
    assert two.turns == [] and one.listener is not two.listener


def test_a_killed_server_s_files_are_deleted_by_the_next_one(monkeypatch, tmp_path):
    monkeypatch.setattr(web_session.tempfile, "tempdir", str(tmp_path))
    killed = tmp_path / f"{web_session.FILES_PREFIX}999999999-abc"  # no such process
    alive = tmp_path / f"{web_session.FILES_PREFIX}{os.getpid()}-def"
    for folder in (killed, alive):
        (folder / "session-1").mkdir(parents=True)
    root = web_session.files_root()
    assert not killed.exists() and alive.exists()
    assert root.parent == tmp_path and root.name.startswith(
        f"{web_session.FILES_PREFIX}{os.getpid()}-"
    )


def test_a_new_session_can_be_copied_from_the_default(tmp_path):
    """Gradio's gr.State deep-copies its default for every browser tab: nothing in a fresh
    session (its listener's Silero state included) may refuse to be copied."""
    import copy

    fresh = WebSession(root=tmp_path)
    copied = copy.deepcopy(fresh)
    assert copied.listener is not fresh.listener and copied.owner == fresh.owner
