"""Choosing what a clip says: Whisper's readings (and, when asked, the adapter's), judged by
Whisper's decoder and the language model."""

import math

import pytest
import torch

from fusion.conversation import user
from fusion.speech_reading import (
    DEFAULT_READING,
    ReadingOptions,
    choose_reading,
    spoken_form,
)
from tests.tiny import tone

OPTIONS = ReadingOptions(adapter_beam=4)  # the adapter's readings join Whisper's


def _peaked(frames: list[int | None], tokens: int = 5, sure: float = 0.9) -> torch.Tensor:
    """Log-probabilities [T, 1 + V]: each frame names its token (None: blank) with `sure`."""
    log_probs = torch.full((len(frames), 1 + tokens), math.log((1 - sure) / tokens))
    for t, token in enumerate(frames):
        log_probs[t, 0 if token is None else token + 1] = math.log(sure)
    return log_probs


def _decode(reading: list[int]) -> str:
    return " ".join(f"w{token}" for token in reading)


def _judge_preferring(text: str, calls: list):
    def judge(texts: list[str]) -> list[float]:
        calls.append(texts)
        return [0.0 if t == text else -50.0 for t in texts]

    return judge


def _no_lm(texts: list[str]) -> list[float]:
    raise AssertionError("the LM should not be asked: Whisper's best reading is far ahead")


def test_the_adapters_best_reading_is_kept_when_the_judge_agrees():
    log_probs = _peaked([1, None, 2, 2, None, 3])
    calls = []
    assert choose_reading(
        log_probs, [], _decode, _judge_preferring("w1 w2 w3", calls), _no_lm, OPTIONS
    ) == [1, 2, 3]
    assert calls and "w1 w2 w3" in calls[0]


def test_the_judge_picks_a_less_likely_reading_the_frames_allow():
    log_probs = _peaked([1, 2, 3])
    log_probs[1] = torch.tensor([0.02, 0.02, 0.02, 0.5, 0.02, 0.42]).log()  # token 2 or 4
    calls = []
    chosen = choose_reading(
        log_probs, [], _decode, _judge_preferring("w1 w4 w3", calls), _no_lm, OPTIONS
    )
    assert chosen == [1, 4, 3]
    assert len(calls[0]) == OPTIONS.adapter_beam and calls[0][0] == "w1 w2 w3"


def test_what_whisper_heard_joins_the_candidates():
    log_probs = _peaked([1, None, 2, None, 3], sure=0.6)
    calls = []
    chosen = choose_reading(
        log_probs, [[1, 4, 3]], _decode, _judge_preferring("w1 w4 w3", calls), _no_lm, OPTIONS
    )
    assert chosen == [1, 4, 3]
    assert "w1 w4 w3" in calls[0]


def test_a_hearing_the_frames_cannot_hold_never_wins():
    log_probs = _peaked([1, None, 2])
    heard = [[1, 2, 3, 4]]  # four tokens in three frames
    calls = []
    chosen = choose_reading(
        log_probs, heard, _decode, _judge_preferring("w1 w2 w3 w4", calls), _no_lm, OPTIONS
    )
    assert chosen == [1, 2]


def test_agreement_with_whisper_needs_no_judge():
    def judge(texts):
        raise AssertionError("the judge should not be asked")

    assert choose_reading(_peaked([1, None, 2]), [[1, 2]], _decode, judge, _no_lm, OPTIONS) == [
        1,
        2,
    ]


def test_a_silent_clip_reads_as_nothing():
    log_probs = _peaked([None, None, None], sure=1 - 1e-9)
    assert choose_reading(log_probs, [], _decode, _judge_preferring("", []), _no_lm, OPTIONS) == []


def test_by_default_the_judges_choose_among_whispers_readings_alone():
    calls = []
    heard = [[1, 2, 3], [1, 2, 4], [1, 2, 3]]  # Whisper's best first; a duplicate
    chosen = choose_reading(
        None, heard, _decode, _judge_preferring("w1 w2 w4", calls), _no_lm, DEFAULT_READING
    )
    assert chosen == [1, 2, 4] and calls == [["w1 w2 w3", "w1 w2 w4"]]  # no adapter reading
    assert choose_reading(None, heard[:1], _decode, None, _no_lm, DEFAULT_READING) == [
        1,
        2,
        3,
    ]  # no judge


def test_the_model_reads_each_clip_once_and_keeps_the_reading(model, monkeypatch):
    monkeypatch.setattr(model, "speech_reading", ReadingOptions(adapter_beam=4))
    scored = []
    score = model.transcriber.score
    monkeypatch.setattr(
        model.transcriber, "score", lambda *a, **k: scored.append(1) or score(*a, **k)
    )
    messages = [user("what did I say?", speech=tone(1.0, 300.0))]
    model.encode_media(messages)
    reading = messages[0].speech.reading
    assert reading and all(0 <= token < len(model.tokenizer) for token in reading)
    calls = len(scored)
    model.encode_media(messages)
    first = model.build_inputs(messages)
    second = model.build_inputs(messages)
    assert len(scored) == calls and messages[0].speech.reading is reading
    vocabulary = model.lm.get_input_embeddings().weight
    assert (
        first.prompt_tokens["audio"] == model.adapter.project_reading(reading, vocabulary).shape[0]
    )
    assert torch.equal(first.embeddings, second.embeddings)


def test_without_reading_a_clip_is_the_adapters_projection(model, monkeypatch):
    monkeypatch.setattr(model, "speech_reading", None)
    messages = [user(speech=tone(1.0, 300.0))]
    model.encode_media(messages)
    assert messages[0].speech.reading is None
    vocabulary = model.lm.get_input_embeddings().weight
    projected = model.adapter.project("audio", messages[0].speech.features, vocabulary)
    assert model.build_inputs(messages).prompt_tokens["audio"] == projected.shape[0]


def test_a_reading_needs_a_token(model):
    with pytest.raises(ValueError):
        model.adapter.project_reading([], model.lm.get_input_embeddings().weight)


@pytest.mark.parametrize(
    ("heard", "said"),
    [
        ("What is 2 plus 3?", "What is two plus three?"),
        ("What is 100 divided by 4.", "What is one hundred divided by four?"),
        ("What is the square root of 81?", "What is the square root of eighty one?"),
        ("is coffee bad for your health.", "Is coffee bad for your health?"),
        ("Turn left at 10:30, pay $5, 3.5 km, 1,000 people, 12%, in 1969.",
         "Turn left at 10:30, pay $5, 3.5 km, 1,000 people, 12%, in 1969."),
        ("", ""),
    ],
)  # fmt: skip
def test_a_transcript_is_written_as_the_words_were_said(heard, said):

    assert spoken_form(heard) == said


def test_a_whisper_beam_that_ended_early_is_never_the_reading():
    """Summed log-probabilities favour a short beam: the judge here prefers it outright."""
    heard = [[1, 2, 3, 4], [1, 2], [1, 5, 3]]  # Whisper's best, its beam cut short, another
    calls = []
    neutral = lambda texts: [0.0] * len(texts)  # the two left tie for Whisper
    chosen = choose_reading(
        None, heard, _decode, _judge_preferring("w1 w2", calls), neutral, DEFAULT_READING
    )
    assert chosen == [1, 2, 3, 4]
    assert calls == [["w1 w2 w3 w4", "w1 w5 w3"]]  # never judged
    # a reading as long as the best, or another wording, still competes
    chosen = choose_reading(
        None, heard, _decode, _judge_preferring("w1 w5 w3", []), _no_lm, DEFAULT_READING
    )
    assert chosen == [1, 5, 3]


def test_the_lm_judges_only_the_readings_close_to_whispers_best():
    heard = [[1, 2, 3], [1, 2, 4], [5], [6]]
    asked = []

    def whisper_scoring(*scores):
        return lambda texts: list(scores)

    def lm(texts):  # prefers "w1 w2 w4" by 10 nats (2 once weighted), "w5" by 30
        asked.append(texts)
        return [{"w1 w2 w3": -10.0, "w1 w2 w4": 0.0, "w5": 20.0}[text] for text in texts]

    within = DEFAULT_READING.lm_within
    assert 1.0 < within < 9.0
    close = whisper_scoring(0.0, -1.0, -9.0, -within - 0.5)  # the LM's 2 nats overturn 1
    chosen = choose_reading(None, heard, _decode, close, lm, DEFAULT_READING)
    assert chosen == [1, 2, 4] and asked == [["w1 w2 w3", "w1 w2 w4"]]  # "w5" too far below
    alone = whisper_scoring(0.0, -within - 0.5, -9.0, -9.0)  # no other one the LM could pick
    assert choose_reading(None, heard, _decode, alone, _no_lm, DEFAULT_READING) == [1, 2, 3]
    no_lm = ReadingOptions(lm_weight=0.0)
    assert choose_reading(None, heard, _decode, close, _no_lm, no_lm) == [1, 2, 3]


def test_whispers_best_reading_stands_unjudged_when_its_beam_was_sure():
    heard = [[1, 2, 3], [1], [1, 2, 4], [1, 2, 3]]  # best; cut short; another; the best again
    sure = DEFAULT_READING.beam_sure
    # the best's likeliest beam (-2.0, not -5.0) stands sure + 0.5 above the other reading;
    # the beam cut short (0.0) is no reading of all that was said
    scores = [-5.0, 0.0, -2.0 - sure - 0.5, -2.0]
    chosen = choose_reading(None, heard, _decode, _no_lm, _no_lm, DEFAULT_READING, scores)
    assert chosen == [1, 2, 3]
    asked = []
    whisper = _judge_preferring("w1 w2 w4", asked)
    neutral = lambda texts: [0.0] * len(texts)
    close = [-2.0, 0.0, -2.0 - sure + 0.5, -2.0]
    unknown = [float("nan")] * 4
    for scores in (close, unknown, None):
        chosen = choose_reading(None, heard, _decode, whisper, neutral, DEFAULT_READING, scores)
        assert chosen == [1, 2, 4]
    assert len(asked) == 3


def test_the_model_reads_a_sure_beam_without_judging_it(model, monkeypatch):
    messages = [user("what did I say?", speech=tone(1.0, 300.0))]
    model.encode_media(messages)
    speech, vocabulary = messages[0].speech, model.lm.get_input_embeddings().weight
    judged = []
    score = model.transcriber.score
    monkeypatch.setattr(
        model.transcriber, "score", lambda *a, **k: judged.append(1) or score(*a, **k)
    )
    apart = -1.0 - model.speech_reading.beam_sure - 1.0
    for scores, judges in [((-1.0, apart), 0), ((-1.0, -1.5), 1), ((), 1)]:
        speech.reading, speech.heard, speech.heard_scores = None, ("what is this", "no"), scores
        judged.clear()
        reading = model.read_speech(speech, vocabulary)
        assert len(judged) == judges
        if not judges:
            assert reading == model.tokenizer.encode("What is this", add_special_tokens=False)
