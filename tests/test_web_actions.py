"""The web app's handlers and what they show, on the tiny random model (no browser)."""

import base64
import json
import subprocess
import threading
import time

import gradio as gr
import numpy as np
import pytest
import soundfile

from app import web_actions as act
from app import web_session
from app.listening import Listeners, hear
from app.web import build_app
from app.web_format import (
    ERROR_MARK,
    SPOKEN_MARK,
    TIMING_MARK,
    chat_messages,
    question_message,
    timing_line,
)
from app.web_partial import Partial
from app.web_session import Turn, WebSession
from fusion.conversation import Message
from fusion.generate import GenerationOptions
from fusion.model import Chunk, Stats
from tests.api_support import wait_until
from tests.tiny import photo, said, tone
from tests.web_support import PacedModel


@pytest.fixture
def session(tmp_path):
    return WebSession(root=tmp_path)


def ask_and_answer(model, session, max_tokens=8):
    return list(act.respond(model, session, max_tokens, 0.0, "You are a helpful assistant."))


def texts(message: dict) -> list[str]:
    content = message["content"]
    return [
        part
        for part in (content if isinstance(content, list) else [content])
        if isinstance(part, str)
    ]


def test_a_typed_question_with_photos_shows_them_and_streams_the_answer(model, tmp_path, session):
    paths = []
    for seed in (1, 2):
        paths.append(tmp_path / f"photo{seed}.png")
        photo(seed=seed).save(paths[-1])
    chat, status, box = act.send_message(
        {"text": "What is this?", "files": [str(p) for p in paths]}, session
    )
    assert box is None  # the box is emptied
    assert status == "Thinking…"
    question = chat[0]
    shown = [part for part in question["content"] if isinstance(part, gr.Image)]
    assert [part.alt_text for part in shown] == ["your photo photo1.png", "your photo photo2.png"]
    assert texts(question) == ["What is this?"]
    updates = ask_and_answer(PacedModel(model, pace_s=0.05), session)  # 8 pieces in 0.4 s
    assert len(updates) > 3  # streamed, not only at the end
    final_chat, final_status = updates[-1]
    assert final_status.startswith("Answered.")
    answer, timing = final_chat[1], final_chat[2]
    assert answer["role"] == "assistant" and answer["content"]
    assert timing["metadata"]["title"].startswith(TIMING_MARK)
    assert "photo" in timing["metadata"]["title"] and "8 tokens at" in timing["metadata"]["title"]


def test_a_fast_answer_reaches_the_page_in_few_updates(model, session):
    """Each update is a round trip through Gradio's event loop: pieces that arrive within
    UPDATE_EVERY_S of the last update wait for the next one (the whole answer at the end)."""
    session.ask("What is this?")
    paced = PacedModel(model, pace_s=0.0, max_tokens=24)
    # the tiny model's answer, decoded first and then handed over at once: however busy the
    # machine, every piece comes within UPDATE_EVERY_S of the one before
    pieces = list(paced.stream([Message("user", "What is this?")], GenerationOptions(24)))
    paced.stream = lambda *args, **kwargs: iter(pieces)
    start = time.monotonic()
    updates = list(act.respond(paced, session, 24, 0.0, ""))
    took = time.monotonic() - start
    assert len(updates) <= 4 + took / act.UPDATE_EVERY_S  # + the question, shown at once
    assert len(updates) < len(pieces) / 2
    final_chat, final_status = updates[-1]
    assert (
        final_status.startswith("Answered.")
        and final_chat[1]["content"] == session.turns[-1].answer
    )


def test_a_recording_shows_its_transcript_in_the_question(model, tmp_path, session):
    clip = tmp_path / "question.wav"
    soundfile.write(clip, tone(1.0), 16_000)
    chat, _, _ = act.push_to_talk(str(clip), session)
    assert texts(chat[0]) == [f"{SPOKEN_MARK} …"]  # not transcribed yet
    answering = act.respond(model, session, 8, 0.0, "")
    next(answering)  # the question, shown at once
    first_chat, first_status = next(answering)
    transcript = session.turns[0].transcript
    assert (
        texts(first_chat[0])[0] == f"{SPOKEN_MARK} {transcript.strip() or '(no words recognised)'}"
    )
    assert first_status == "Thinking…"


def test_a_recorded_question_stays_playable_and_the_chat_updates_start_no_process(
    model, tmp_path, session, monkeypatch
):
    """The chat is sent again at every update of a streamed answer. Gradio's Audio component
    probes its file with ffprobe each time it is built (~65 ms of a core per update): the
    recording goes as a file message, which the page plays as audio all the same."""
    clip = tmp_path / "question.wav"
    soundfile.write(clip, tone(1.0), 16_000)
    act.push_to_talk(str(clip), session)
    ask_and_answer(model, session)

    def no_process(*args, **kwargs):
        raise AssertionError(f"a chat update started a process: {args[0]!r}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    shown = gr.Chatbot().postprocess(chat_messages(session.turns))
    question = shown.root[0].content
    files = [part.file for part in question if part.type == "file"]
    assert [(f.path, f.mime_type) for f in files] == [
        (str(session.turns[0].audio_file), "audio/wav")
    ]


def photos(message: dict) -> list:
    """The photos of a chat message."""
    return [part for part in message["content"] if isinstance(part, gr.Image)]


def test_a_spoken_question_s_photo_joins_it_as_its_answer_is_heard(
    model, tmp_path, session, monkeypatch
):
    """The voice on, a spoken question's photo is kept out of the chat until the answer's
    voice begins (the page's work drawing it took the cores from the answer's first words),
    or HELD_FOR_VOICE_S after it was asked, and then comes after the words and the recording
    (which are there from the first view); typed questions, and answers not said aloud, show
    theirs at once."""
    clip = tmp_path / "question.wav"
    soundfile.write(clip, tone(1.0), 16_000)
    session.see(photo())
    act.push_to_talk(str(clip), session)
    turn = session.turns[0]
    assert len(photos(chat_messages(session.turns)[0])) == 1  # the camera frame
    first_chat, _ = next(act.respond(model, session, 8, 0.0, "", voiced=True))
    question = first_chat[0]["content"]
    assert turn.voiced and photos(first_chat[0]) == []  # the question, without it
    assert question[0] == f"{SPOKEN_MARK} …" and question[1]["path"] == str(turn.audio_file)
    turn.first_audio_ms = 420.0  # the voice began
    shown = chat_messages(session.turns)[0]["content"]
    assert shown[:2] == question and isinstance(shown[2], gr.Image)  # after the others
    turn.first_audio_ms = None
    session.silence()  # Stop speaking before its first sound: the voice sends the chat
    (*_, chat), *rest = list(act.speak(model, session, True))
    assert rest == [] and len(photos(chat[0])) == 1
    turn.said_aloud = False
    assert photos(chat_messages(session.turns)[0]) == []
    clock = turn.asked_at + web_session.HELD_FOR_VOICE_S
    monkeypatch.setattr(web_session.time, "monotonic", lambda: clock)  # a voice that never came
    assert len(photos(chat_messages(session.turns)[0])) == 1
    monkeypatch.undo()
    turn.voiced = False  # the voice off
    assert len(photos(chat_messages(session.turns)[0])) == 1
    act.send_message({"text": "And this?", "files": []}, session)
    typed = session.turns[1]
    typed.question.photos, typed.photo_files, typed.photo_labels = (
        turn.question.photos, turn.photo_files, turn.photo_labels,
    )  # fmt: skip
    typed.voiced = True
    shown = question_message(typed)["content"]
    assert isinstance(shown[0], gr.Image) and shown[1] == "And this?"  # typed: at once, first


def test_a_spoken_question_s_answer_streams_into_the_chat_from_its_voice_s_first_sound(
    model, tmp_path, session
):
    """The voice on, a spoken question's answer is not streamed into the chat before its voice
    begins (the page's redrawing took the cores from the answer's first words), and streams
    from then on; the voice off, it streams from its first words."""
    clip = tmp_path / "question.wav"
    soundfile.write(clip, tone(1.0), 16_000)
    paced = PacedModel(model, pace_s=0.05, max_tokens=12)  # 0.6 s, within HELD_FOR_VOICE_S
    answer_stream = paced.stream

    def voice_begins_at_the_fourth_piece(messages, options=None, owner=""):
        pieces = 0
        for event in answer_stream(messages, options, owner):
            pieces += isinstance(event, Chunk)
            if pieces == 4 and session.turns[-1].voiced:
                session.turns[-1].first_audio_ms = 200.0
            yield event

    paced.stream = voice_begins_at_the_fourth_piece
    streamed = {}
    for voiced in (True, False):
        act.push_to_talk(str(clip), session)
        turn = session.turns[-1]
        streamed[voiced] = [
            turn.first_audio_ms is not None
            for _ in act.respond(paced, session, 12, 0.0, "", voiced=voiced)
            if turn.state == "answering" and turn.answer
        ]
        assert turn.state == "done"
    assert len(streamed[True]) >= 2 and all(streamed[True])  # from the voice's first sound
    assert len(streamed[False]) >= 4 and not any(streamed[False])


def test_look_and_ask_needs_the_camera_and_keeps_the_typed_question(model, session):
    chat, status, box = act.look_and_ask({"text": "What is this?", "files": []}, session)
    assert box == gr.skip()
    assert status.startswith(f"{ERROR_MARK} The camera is off")
    assert chat[1]["content"].startswith(f"{ERROR_MARK} The camera is off")
    act.see(photo(640, 480), session)
    chat, _, box = act.look_and_ask({"text": "What is this?", "files": []}, session)
    assert box is None
    assert [part.alt_text for part in chat[2]["content"] if isinstance(part, gr.Image)] == [
        "camera frame"
    ]


def test_unreadable_file_is_a_chat_message_and_the_next_question_works(model, tmp_path, session):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"these are my notes")
    chat, _, _ = act.send_message({"text": "look", "files": [str(bad)]}, session)
    assert chat[1]["content"] == f"{ERROR_MARK} notes.jpg is not an image format that can be read"
    assert "📎 notes.jpg" in texts(chat[0])[0]
    assert list(act.respond(model, session, 8, 0.0, ""))  # nothing to answer: one view
    act.send_message({"text": "hello", "files": []}, session)
    assert ask_and_answer(model, session)[-1][1].startswith("Answered.")


def test_bad_settings_are_explained(model, session):
    act.send_message({"text": "hello", "files": []}, session)
    _, status = list(act.respond(model, session, 0, 0.0, ""))[-1]
    assert "settings cannot be used" in status and session.turns[0].state == "failed"


def test_stop_and_regenerate_and_clear(model, session):
    act.send_message({"text": "hello", "files": []}, session)
    chat, status, voice = act.stop(session)
    assert status == "Stopped." and "*(stopped)*" in chat[1]["content"]
    assert json.loads(voice)["kind"] == "stop"  # the page's player is silenced too
    chat, status = act.regenerate(session)
    assert status == "Thinking…"
    assert ask_and_answer(model, session)[-1][1].startswith("Answered.")
    chat, status, voice, voice_file, box = act.clear(session)
    assert chat == [] and session.turns == [] and voice_file is None and box is None
    assert json.loads(voice)["kind"] == "stop"
    assert status.startswith("Cleared")
    assert act.regenerate(session)[1].startswith("Nothing to regenerate")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"device": "microphone", "name": "NotAllowedError"},
            "The microphone cannot be used: permission was denied",
        ),
        (
            {"device": "camera", "name": "NotFoundError"},
            "The camera cannot be used: no camera was found",
        ),
        ({"device": "camera", "name": "InsecureContext"}, "only on a secure page"),
        (
            {"device": "<b>x</b>", "name": "WeirdError", "message": "odd {0}"},
            "(WeirdError: odd {0})",
        ),
    ],
)
def test_camera_and_microphone_problems_appear_in_the_chat(data, expected, session):
    event = gr.EventData(None, data)
    chat, status = act.media_problem(session, event)
    assert chat[-1]["content"].startswith(ERROR_MARK) and expected in chat[-1]["content"]
    assert expected in status


def player_messages(updates) -> list[dict]:
    """A handler's updates of the voice player -> its messages, decoded (skips left out)."""
    return [json.loads(update) for update in updates if update != gr.skip()]


def pieces(messages: list[dict]) -> list[tuple[int, np.ndarray]]:
    """The played pieces among voice player messages -> (rate, int16 samples [S]) each."""
    return [
        (m["rate"], np.frombuffer(base64.b64decode(m["pcm"]), "<i2"))
        for m in messages
        if m["kind"] == "play"
    ]


def voiced(model, session, enabled=True) -> list:
    """The pieces `speak` plays in the page's player (not its skips)."""
    return pieces(player_messages(voice for voice, *_ in act.speak(model, session, enabled)))


def test_the_answer_is_spoken_once_and_the_microphone_waits_for_it(model, session):
    from app import speech_out

    if speech_out.engine_for("hello") is None:
        pytest.skip("no speech engine installed")
    act.send_message({"text": "hello", "files": []}, session)
    ask_and_answer(model, session)
    session.turns[0].answer = "The cat sits on the mat. The dog sleeps by the door."
    updates = list(act.speak(model, session, True))
    chunks = pieces(player_messages(voice for voice, *_ in updates))
    assert len(chunks) == 2  # a sentence each
    for rate, samples in chunks:
        assert rate > 8000 and len(samples) / rate > 0.5
    assert session.speaking_until > time.monotonic() + 1.0  # both sentences queued
    files = [kept for _, kept, *_ in updates if kept != gr.skip()]
    assert len(files) == 1 and updates[-1][1] == files[0]  # the whole voice, once it is said
    whole, rate = soundfile.read(files[0], dtype="int16")
    assert rate == chunks[0][0] and len(whole) == sum(len(samples) for _, samples in chunks)
    turn = session.turns[0]
    assert 0 < turn.first_audio_ms < 60_000
    assert f"first sound {turn.first_audio_ms:.0f} ms" in timing_line(turn.stats, turn)
    # written before its first sound: the chat is sent again, its timing note with the figure
    chats = [chat for *_, chat in updates if chat != gr.skip()]
    assert len(chats) == 1
    notes = [m["metadata"]["title"] for m in chats[0] if m.get("metadata")]
    assert any(f"first sound {turn.first_audio_ms:.0f} ms" in note for note in notes)
    assert voiced(model, session) == []  # said once
    assert json.loads(act.stop_speaking(session))["kind"] == "stop"
    assert session.speaking_until == 0.0
    act.regenerate(session)
    ask_and_answer(model, session)
    assert voiced(model, session, enabled=False) == []  # switched off


def test_the_first_sentence_is_spoken_while_the_answer_is_written(model, session):
    from app import speech_out

    if speech_out.engine_for("hello") is None:
        pytest.skip("no speech engine installed")
    speech_out.speak("Warm up.")  # the voice loads once per process, before the timed part
    act.send_message({"text": "hello", "files": []}, session)
    turn = session.turns[0]
    turn.state = "answering"
    spoken = []

    def listen():
        spoken.extend(
            (voice, turn.state)
            for voice, *_ in act.speak(model, session, True)
            if voice != gr.skip()
        )

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    answer = "Boil the egg for nine minutes. Then cool it in cold water."
    try:
        for word in answer.split():
            turn.answer += word + " "
            time.sleep(0.1)
        assert wait_until(lambda: len(spoken) >= 1, 30)  # the first sentence, while writing
        assert spoken[0][1] == "answering"
        assert len(session.voices) == 1  # the answer may pause for it (respond's voiced)
    finally:
        turn.state = "done"  # the voice ends with the answer, whatever happened above
        listener.join(timeout=30)
    assert len(spoken) == 2 and turn.said_aloud and session.voices == []


def test_a_voiced_answer_pauses_its_decoding_for_a_waiting_voice_only(model, monkeypatch, session):
    """With the voice on, the answer's decoding pauses once its first piece is written
    (GenerationOptions.pause_after), but only while a voice (speak) waits to say it."""
    asked = []
    stream = model.stream
    monkeypatch.setattr(
        model, "stream", lambda m, options, **k: asked.append(options) or stream(m, options, **k)
    )
    for voiced in (False, True):
        act.send_message({"text": "hello", "files": []}, session)
        list(act.respond(model, session, 8, 0.0, "", voiced=voiced))
    unvoiced, voiced = asked
    assert unvoiced.pause_after is None
    written = "The capital of France is"
    assert not voiced.pause_after(written)  # no voice waits: it would pause for nobody
    session.voices.append(object())  # as speak() does while it says the answer
    assert voiced.pause_after(written) and not voiced.pause_after("The capital of France")


def test_stop_speaking_before_the_voice_is_ready_keeps_it_silent(model, session):
    act.send_message({"text": "hello", "files": []}, session)
    ask_and_answer(model, session)
    act.stop_speaking(session)  # pressed while the answer was still being voiced
    assert list(act.speak(model, session, True)) == [(gr.skip(),) * 4]  # nothing, no change
    assert session.speaking_until == 0.0


def test_a_voice_made_while_the_chat_is_cleared_is_dropped(model, monkeypatch, session):
    from app import speech_out

    act.send_message({"text": "hello", "files": []}, session)
    ask_and_answer(model, session)
    session.turns[0].answer = "The cat sits on the mat."

    def slow_synthesis(text, *args):
        session.clear()  # the person clears the chat while the voice is being made
        raise speech_out.SpeechError("its folder was deleted")

    monkeypatch.setattr(speech_out, "speak", slow_synthesis)
    assert list(act.speak(model, session, True)) == [(gr.skip(),) * 4]  # no stale status


def test_a_voice_that_fails_says_so_and_shows_the_photo_that_waited_for_it(
    model, tmp_path, monkeypatch, session
):
    from app import speech_out

    clip = tmp_path / "question.wav"
    soundfile.write(clip, tone(1.0), 16_000)
    session.see(photo())
    act.push_to_talk(str(clip), session)
    list(act.respond(model, session, 8, 0.0, "", voiced=True))
    session.turns[0].asked_at = time.monotonic()  # as if just asked, however slow the machine
    assert photos(chat_messages(session.turns)[0]) == []  # waiting for the voice

    def broken(text, *args):
        raise speech_out.SpeechError("no speech engine")

    monkeypatch.setattr(speech_out, "speak", broken)
    [(voice, replay, status, chat)] = list(act.speak(model, session, True))
    assert voice == replay == gr.skip() and "cannot be spoken" in status
    assert len(photos(chat[0])) == 1  # shown with the error


def messages(updates: list[list[str]]) -> list[dict]:
    """listening.hear's messages for each chunk -> all of them, decoded, in order."""
    return [json.loads(message) for chunk in updates for message in chunk]


def spoken_into(session, text: str, chunk: int = 1_024) -> list[dict]:
    """`text` said into hands-free listening (then 1.5 s of quiet), in the page's chunks ->
    the messages for the page."""
    loud = (np.concatenate([said(text) * 0.5, np.zeros(24_000, np.float32)]) * 32767).astype(
        np.int16
    )
    return messages(
        [hear(session, 16_000, loud[i : i + chunk]) for i in range(0, len(loud), chunk)]
    )


def test_hands_free_chunks_become_a_question(model, session):
    said_to_page = spoken_into(session, "What is this?")
    assert said_to_page == [{"kind": "asked"}]  # the player is left alone: nothing was said
    turn = session.ask_heard()  # as the listener does before it tells the page
    assert session.turns == [turn] and session.ask_heard() is None  # asked once
    updates = ask_and_answer(model, session)
    chat, status = updates[0]  # the question at once, before its transcript is known
    assert texts(chat[0]) == [f"{SPOKEN_MARK} …"] and status == "Listening to your question…"
    answered = updates[-1][1]
    assert answered.startswith("Answered. pause 800 ms · ")  # the wait that ended the turn


def test_a_hands_free_first_token_counts_from_the_question_asked(model, session):
    """What the answer waited for before the model's clock started (a hands-free question's
    preparation, still going on after its pause) is in its first token's figure."""
    spoken_into(session, "What is this?")
    turn = session.ask_heard()
    turn.asked_at -= 0.5  # asked half a second ago
    ask_and_answer(model, session)
    own = turn.stats.timings_ms["first_token"]
    assert turn.first_token_ms >= 500 + own
    assert f"first token {turn.first_token_ms:.0f} ms" in timing_line(turn.stats, turn)


def test_a_hands_free_question_that_cannot_be_read_is_refused_with_the_reason(session):
    session.heard = np.zeros(16_000, np.float32)  # 1 s of nothing
    turn = session.ask_heard()
    assert session.turns == [turn] and turn.state == "failed" and "silent" in turn.error
    assert session.heard is None and session.waiting() is None


def test_speaking_over_the_spoken_answer_holds_then_stops_its_voice(session):
    """Barge-in: the wearer's first words over the answer pause its voice (hold); once they
    go on long enough, the voice stops for good (once), and the utterance is the next question."""
    session.ask("typed")
    session.speaking(5.0)
    kinds = [message["kind"] for message in spoken_into(session, "No, the other one.")]
    assert kinds == ["hold", "stop", "asked"]
    assert session.turns[0].state == "stopped"


def test_a_backchannel_over_the_spoken_answer_only_pauses_its_voice(session):
    """ "Yeah" over the answer: the voice pauses while it is said, then plays on; the answer
    goes on and nothing is asked."""
    turn = session.ask("typed")
    session.speaking(5.0)
    kinds = [message["kind"] for message in spoken_into(session, "Yeah.")]
    assert kinds == ["hold", "go_on"]
    assert turn.state == "waiting" and session.heard_count == 0


def test_what_is_heard_so_far_is_told_once_and_shown(session):
    session.listener.push(said("What is") * 0.5)  # a question being spoken
    session.utterances = 1
    session.partial = Partial(1, "What is", frames=10**6)
    told = messages([hear(session, 16_000, np.zeros(1_024, np.int16)) for _ in range(2)])
    assert told == [{"kind": "heard", "text": "What is"}]  # once, not at every chunk
    assert act.heard_so_far(session) == f"{SPOKEN_MARK} What is …"


def test_timing_line_names_each_stage():
    stats = Stats(
        timings_ms={"encode_image": 116.4, "encode_audio": 40.0, "transcribe": 300.2, "first_token": 480.0, "total": 3000.0},
        new_tokens=30, tokens_per_s=12.34, prompt_tokens={"text": 20, "image": 49, "audio": 38},
        finish_reason="stop",
    )  # fmt: skip
    line = timing_line(stats)
    assert (
        line
        == "photo 116 ms · speech 40 ms · transcript 300 ms · first token 480 ms · 30 tokens at 12.3/s"
    )


def test_a_hands_free_question_prepared_during_the_pause_says_so():
    stats = Stats(
        timings_ms={"encode_audio": 0.0, "transcribe": 0.0, "first_token": 400.0, "total": 900.0},
        new_tokens=9, tokens_per_s=10.0, prompt_tokens={}, finish_reason="stop",
    )  # fmt: skip
    turn = Turn("", None)
    turn.endpointing_ms = 640.0
    turn.first_token_ms = 520.0  # from the question asked: it waited for its preparation
    assert timing_line(stats, turn).startswith(
        "pause 640 ms · transcribed and read from the pause on · first token 520 ms"
    )
    stats.timings_ms["transcribe"] = 350.0  # transcribed after the pause
    assert "from the pause" not in timing_line(stats, turn)


def test_a_spoken_question_read_otherwise_than_transcribed_says_so(session):
    from app.web_format import READ_AS_MARK
    from fusion.conversation import user

    session.turns.append(Turn("", user(speech=tone(0.5))))
    turn = session.turns[-1]
    turn.question.speech.transcript = "What is a light house used for?"
    stats = Stats(timings_ms={"first_token": 1.0, "total": 2.0}, new_tokens=1, tokens_per_s=0.0,
                  prompt_tokens={}, finish_reason="stop")  # fmt: skip
    turn.stats = stats
    stats.read_as = ["what is a light house used for"]  # the same words: nothing more is shown
    assert texts(chat_messages(session.turns)[0]) == [
        f"{SPOKEN_MARK} What is a light house used for?"
    ]
    stats.read_as = ["What is a lighthouse used for?"]
    assert texts(chat_messages(session.turns)[0]) == [
        f"{SPOKEN_MARK} What is a light house used for?\n\n*{READ_AS_MARK}* What is a lighthouse used for?"
    ]


def test_a_turn_without_a_readable_question_shows_only_the_error(session):
    session.refuse("", [], "the microphone cannot be used")
    assert chat_messages(session.turns) == [
        {"role": "assistant", "content": f"{ERROR_MARK} The microphone cannot be used"}
    ]


def test_every_control_is_labelled_and_nothing_is_shared_between_sessions(model):
    app = build_app(model, Listeners())
    labelled = (
        gr.Image,
        gr.Audio,
        gr.Chatbot,
        gr.MultimodalTextbox,
        gr.Slider,
        gr.Textbox,
        gr.Checkbox,
    )
    components = list(app.blocks.values())
    for component in components:
        if isinstance(component, labelled):
            assert component.label, f"{type(component).__name__} {component.elem_id} has no label"
        if isinstance(component, gr.Button):
            assert component.value and component.elem_id
    ids = {component.elem_id for component in components}
    assert {
        "camera",
        "look-and-ask",
        "push-to-talk",
        "hands-free",
        "conversation",
        "message",
        "status",
    } <= ids
    state = next(b for b in components if isinstance(b, gr.State) and callable(b.value))
    one, two = state.value(), state.value()  # what each new browser tab gets
    assert isinstance(one, WebSession) and one is not two and one.turns is not two.turns


def test_translation_mode_gives_what_was_said_in_english(model, session, monkeypatch):
    calls = []
    real = model.transcriber

    class Tasks:  # Whisper, with each task asked of it recorded
        def __call__(self, features, language=None, task="transcribe"):
            calls.append(task)
            return real(features, language, task)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(model, "transcriber", Tasks())
    session.ask("", speech=said("Je voudrais un café."))
    chat, status = list(act.respond(model, session, 8, 0.0, "", True))[-1]
    turn = session.turns[0]
    assert calls == ["transcribe", "translate"]  # heard, then said in English: no LM answer
    assert turn.state == "done" and turn.stats.new_tokens == 0 and turn.translated_from
    assert (
        turn.answer == real(turn.question.speech.features, turn.translated_from, "translate").text
    )
    assert texts(chat[1])[0].startswith("🌐 *") and status.startswith("Answered.")
    line = timing_line(turn.stats, turn)  # Whisper's English, no LM tokens to count
    assert "English text" in line and "tokens at" not in line and "first token" not in line
    act.send_message({"text": "and typed?", "files": []}, session)  # typed: answered as usual
    list(act.respond(model, session, 4, 0.0, "", True))
    assert session.turns[1].translated_from is None and session.turns[1].stats.new_tokens > 0


def test_switching_the_voice_off_silences_it_and_on_changes_nothing(session):
    session.ask("typed")
    session.speaking(5.0)
    assert act.voice_switched(True, session) == gr.skip() and session.speaking_until > 0
    assert json.loads(act.voice_switched(False, session))["kind"] == "stop"
    assert session.speaking_until == 0.0 and session.turns[0].said_aloud


def test_the_voice_is_loaded_before_the_first_answer():
    from app import speech_out
    from encoders import piper_voice

    if "piper" not in speech_out.available_engines():
        pytest.skip("the Piper voice is not installed (make test installs it)")
    piper_voice._loaded.cache_clear()
    speech_out.warm_up()
    assert piper_voice._loaded.cache_info().currsize == 1
    speech_out.speak("The first answer.")  # finds the voice the warm-up loaded
    assert piper_voice._loaded.cache_info().currsize == 1
    assert piper_voice._loaded.cache_info().misses == 1


def test_an_answer_and_its_voice_never_share_a_trigger(model):
    """Gradio's page runs the listeners of one trigger one after the other, each to its end:
    a voice on its answer's trigger would speak only once the whole answer is written. A
    hands-free question's answer and voice start on two triggers of their own, at once."""
    app = build_app(model, Listeners())
    listeners: dict[tuple, list[str]] = {}
    for dependency in app.fns.values():
        for target in dependency.targets:  # the `then`s of an event run side by side
            if target[1] in ("then", "success", "failure"):
                continue
            listeners.setdefault(tuple(target), []).append(dependency.fn.__name__)
    for target, names in listeners.items():
        assert not {"respond", "speak"} <= set(names), f"{target} runs {names} in turn"
    hands_free = next(c for c in app.blocks.values() if c.elem_id == "hands-free")
    assert "respond" in listeners[(hands_free._id, "submit")]
    assert "speak" in listeners[(hands_free._id, "play")]


def test_every_answer_knows_whether_its_voice_is_on(model):
    """`respond` is given the page's "Speak answers aloud", as `speak` is: a voiced answer's
    decoding pauses for its first piece (act.respond's voiced)."""
    app = build_app(model, Listeners())
    speak_on = next(c for c in app.blocks.values() if c.elem_id == "speak-answers")
    answers = [d for d in app.fns.values() if d.fn.__name__ in ("respond", "speak")]
    assert len(answers) >= 10  # an answer and its voice for each way of asking
    assert all(speak_on._id in (block._id for block in d.inputs) for d in answers)


def test_no_event_keeps_the_page_redrawing_while_it_runs(model):
    """Gradio's status tracker of an output an event marks as pending (its progress shown or
    not) times the event on every animation frame: the answer and its voice, pending for as
    long as they are written and said, kept the page redrawing 60 times a second beside the
    model (app/web.py NO_PROGRESS). No event the page starts marks its outputs pending."""
    app = build_app(model, Listeners())
    ours = [d for d in app.fns.values() if any(not isinstance(o, gr.State) for o in d.outputs)]
    assert len(ours) >= 20  # every way of asking, its answer and its voice, Stop, Clear, ...
    marked = [d.fn.__name__ for d in ours if d.get_config()["show_progress_on"] != []]
    assert marked == []
