"""Transcription on a tiny random Whisper: the contract, not the words."""

import pytest
import torch
from whisper.tokenizer import LANGUAGES

from encoders.transcribe import (
    MIN_TOKEN_CAP,
    TOKENS_PER_SECOND_CAP,
    Transcriber,
    Transcript,
    repeated_tail,
    restart,
)
from tests.tiny import tone


@pytest.fixture(scope="module", params=[5, 1], ids=["beam", "greedy"])
def transcriber(whisper, request):
    return Transcriber(whisper, beam_size=request.param)


@pytest.fixture(scope="module")
def features(audio_encoder):
    return audio_encoder.encode(tone(1.0))  # 1, T, D


class DecoderCalls:
    """Counts forward passes of Whisper's decoder."""

    def __init__(self, whisper):
        self.count = 0
        self.handle = whisper.decoder.register_forward_hook(self.hook)

    def hook(self, *args):
        self.count += 1


def test_returns_text_and_a_language_code(transcriber, features):
    transcript = transcriber(features)
    assert isinstance(transcript, Transcript)
    assert isinstance(transcript.text, str)
    assert transcript.language in LANGUAGES
    assert transcript.text == transcript.text.strip()


def test_given_language_is_kept(transcriber, features):
    assert transcriber(features, language="fr").language == "fr"


def test_is_deterministic(transcriber, features):
    assert transcriber(features) == transcriber(features)


def test_leaves_no_cache_hooks_behind(transcriber, features, whisper):
    def hooks(module):
        return sum(len(m._forward_hooks) for m in module.modules())

    before = hooks(whisper)
    transcriber(features)
    assert hooks(whisper) == before


def test_stops_within_its_token_cap(transcriber, features, whisper):
    seconds = features.shape[1] / 50
    cap = min(whisper.dims.n_text_ctx // 2, MIN_TOKEN_CAP + int(TOKENS_PER_SECOND_CAP * seconds))
    calls = DecoderCalls(whisper)
    try:
        transcriber(features)
    finally:
        calls.handle.remove()
    assert 1 <= calls.count <= 1 + cap  # one language-detection step, then at most `cap` steps


def test_a_greedy_transcript_told_to_stop_stops_before_its_next_token(whisper, features):
    greedy, asked = Transcriber(whisper, beam_size=1), []

    def stop_after_three() -> bool:
        asked.append(True)
        return len(asked) > 3

    calls = DecoderCalls(whisper)
    try:
        whole = greedy(features, "en")
        whole_calls = calls.count
        calls.count = 0
        cut = greedy(features, "en", stop=stop_after_three)
    finally:
        calls.handle.remove()
    assert calls.count == min(3, whole_calls) and len(asked) == min(4, whole_calls + 1)
    assert whole.text.startswith(cut.text)


def test_a_beam_that_loops_keeps_one_copy_of_the_block(whisper, features, monkeypatch):
    from whisper.decoding import DecodingResult

    beam = Transcriber(whisper, beam_size=5)
    tokenizer = beam.tokenizer("en")
    words = tokenizer.encode(" one two three four five")
    looped = DecodingResult(features, "en", tokens=words + words + words)
    monkeypatch.setattr("whisper.decoding.DecodingTask.run", lambda self, mel: [looped])
    assert beam(features, "en").text == "one two three four five"


@pytest.mark.parametrize(
    ("tokens", "ends", "kept"),
    [
        ([1, 2, 3, 9, 1, 2], [0, 0, 0, 1, 0, 0], 4),  # "a b c ? a b": starts over after "?"
        ([1, 2, 3, 9, 1, 2, 3], [0, 0, 0, 1, 0, 0, 0], 4),
        ([1, 2, 3, 9, 1], [0, 0, 0, 1, 0], 4),  # "Why ... winter? Why"
        ([1, 2, 3, 9, 5, 6], [0, 0, 0, 1, 0, 0], 6),  # a second, different sentence is kept
        ([1, 2, 3, 4, 1, 2], [0, 0, 0, 0, 0, 0], 6),  # no sentence end: kept whole
        ([7, 9, 7], [0, 1, 0], 3),  # "No. No": shorter than a sentence, kept
    ],
)
def test_a_transcript_that_starts_itself_over_is_cut_there(tokens, ends, kept):
    assert restart(tokens, [bool(e) for e in ends]) == kept


def test_alternatives_are_the_beams_readings_whispers_best_first(whisper, features):
    beam = Transcriber(whisper, beam_size=5)(features, "en")
    assert beam.alternatives[0] == beam.text or not beam.text
    assert 1 <= len(beam.alternatives) <= 5 and len(set(beam.alternatives)) == len(
        beam.alternatives
    )
    greedy = Transcriber(whisper, beam_size=1)(features, "en")
    assert greedy.alternatives == (greedy.text,) and greedy.scores == ()


def test_each_alternative_carries_its_likeliest_beams_log_probability(
    whisper, features, monkeypatch
):
    from encoders import transcribe

    finished = []  # each finished beam's summed log-probability, as the ranker saw them
    rank = transcribe._KeepingRanker.rank

    def ranking(self, tokens, sum_logprobs):
        finished.extend(float(s) for s in sum_logprobs[0])
        return rank(self, tokens, sum_logprobs)

    monkeypatch.setattr(transcribe._KeepingRanker, "rank", ranking)
    beam = Transcriber(whisper, beam_size=5)(features, "en")
    assert len(beam.scores) == len(beam.alternatives) and len(finished) == 5
    assert all(score in finished and score < 0 for score in beam.scores)
    assert len(set(beam.scores)) == len(beam.scores)  # distinct readings: distinct beams


def test_beam_size_must_be_positive(whisper):
    with pytest.raises(ValueError, match="beam_size must be at least 1, got 0"):
        Transcriber(whisper, beam_size=0)


def test_cached_decoding_equals_full_recomputation(transcriber, features, whisper):
    """The KV-cache hooks must not change a single greedy choice."""
    tokenizer = transcriber.tokenizer("en")
    with torch.inference_mode():
        cache, hooks = whisper.install_kv_cache_hooks()
        try:
            cached = transcriber._greedy(features, tokenizer, 12, cache)
        finally:
            for hook in hooks:
                hook.remove()
        reference = _greedy_without_cache(transcriber, features, tokenizer, len(cached))
    assert len(cached) >= 4  # enough steps for the cache to matter
    assert cached == reference[: len(cached)]


def _greedy_without_cache(transcriber, features, tokenizer, steps):
    """Re-run the decoder on the whole sequence at every step, with _greedy's suppression."""
    sequence = list(tokenizer.sot_sequence_including_notimestamps)
    prompt_length = len(sequence)
    masked = torch.zeros(transcriber.whisper.dims.n_vocab, dtype=torch.bool)
    masked[tokenizer.timestamp_begin :] = True
    masked[list(tokenizer.non_speech_tokens)] = True
    masked[tokenizer.sot : tokenizer.timestamp_begin] = True
    masked[tokenizer.eot] = False
    for step in range(steps):
        logits = transcriber.whisper.decoder(torch.tensor([sequence]), features)[0, -1]
        logits[masked] = -torch.inf
        if step == 0:
            logits[tokenizer.encode(" ") + [tokenizer.eot]] = -torch.inf
        sequence.append(int(logits.argmax()))
    return sequence[prompt_length:]


@pytest.mark.parametrize(
    ("tokens", "period"),
    [
        ([1, 2, 3, 4, 5, 1, 2, 3, 4, 5], 5),
        ([9, 1, 2, 3, 4, 1, 2, 3, 4], 4),
        ([7, 7, 7, 7, 7, 7, 7, 7], 4),  # a run counts once it is two blocks of min_period
        ([1, 2, 1, 2, 1, 2], None),  # "no no no": shorter than min_period
        ([1, 2, 3, 4, 5, 1, 2, 3, 4], None),  # the second copy is not complete yet
        ([], None),
    ],
)
def test_repeated_tail(tokens, period):
    assert repeated_tail(tokens) == period


def _plain_scores(whisper, transcriber, features, texts):
    """Each text's log-probability from one plain decoder call per text."""
    tokenizer = transcriber.tokenizer("en")
    prompt = list(tokenizer.sot_sequence_including_notimestamps)
    scores = []
    for text in texts:
        row = prompt + tokenizer.encode(" " + text) + [tokenizer.eot]
        log_probs = whisper.decoder(torch.tensor([row]), features)[0].float().log_softmax(-1)
        said = torch.tensor(row[len(prompt) :])
        scores.append(
            float(log_probs[len(prompt) - 1 : len(row) - 1].gather(1, said[:, None]).sum())
        )
    return scores


def test_score_is_each_texts_log_probability(whisper, transcriber, features):
    texts = ["hello there", "hello there friend", "goodbye", "hello"]  # shared prefixes
    with torch.inference_mode():
        expected = _plain_scores(whisper, transcriber, features, texts)
    scores = transcriber.score(features, texts)
    assert scores == pytest.approx(expected, abs=1e-3)
    assert all(s < 0 for s in scores)
    assert transcriber.score(features, []) == []


def test_score_refuses_a_text_longer_than_the_decoder(transcriber, features):
    with pytest.raises(ValueError):
        transcriber.score(features, ["word " * 500])


def test_a_prefix_tree_shares_beginnings_and_sees_only_ancestors():
    from encoders.transcribe import PrefixTree

    tree = PrefixTree([[1, 2, 3, 9], [1, 2, 4, 9], [1, 5, 9]])
    # distinct prefixes that predict a token: 1 | 1 2 | 1 2 3 | 1 2 4 | 1 5
    assert tree.tokens == [1, 2, 3, 4, 5] and tree.depths == [0, 1, 2, 2, 1]
    sees = tree.mask() == 0
    assert sees[2].tolist() == [True, True, True, False, False]  # 1 2 3
    assert sees[3].tolist() == [True, True, False, True, False]  # 1 2 4, not its sibling
    assert sees[4].tolist() == [True, False, False, False, True]  # 1 5


def test_a_sentence_said_again_with_a_space_before_it_is_cut():
    """Whisper heard Piper's 'Your train leaves from the last platform.' twice; the second
    copy starts with the token ' Your', not 'Your', so only the text shows the repeat."""
    import whisper.tokenizer

    from encoders.transcribe import restart

    tokenizer = whisper.tokenizer.get_tokenizer(True, language="en", task="transcribe")
    said = "Your train leaves from the last platform."
    tokens = tokenizer.encode(f"{said} {said}")
    ends = [tokenizer.decode([t]).rstrip().endswith((".", "?", "!")) for t in tokens]
    assert tokenizer.decode(tokens[: restart(tokens, ends, decode=tokenizer.decode)]) == said
    lowered = tokenizer.encode(f"{said.lower()} {said}")  # "your train ... Your train"
    ends = [tokenizer.decode([t]).rstrip().endswith((".", "?", "!")) for t in lowered]
    cut = restart(lowered, ends, decode=tokenizer.decode)
    assert tokenizer.decode(lowered[:cut]) == said.lower()
    kept = tokenizer.encode("Stop. Stop the car now.")
    ends = [tokenizer.decode([t]).rstrip().endswith((".", "?", "!")) for t in kept]
    assert restart(kept, ends, decode=tokenizer.decode) == len(kept)


@pytest.mark.parametrize("beam_size", [5, 1])
def test_an_english_only_whisper_transcribes_without_detecting_a_language(beam_size):
    """base.en, tiny.en, ...: their tokenizer has no language; the beam must not ask for one."""
    from whisper.model import ModelDimensions, Whisper

    from tests.tiny import WHISPER_DIMS

    torch.manual_seed(0)
    english = Whisper(ModelDimensions(**{**WHISPER_DIMS, "n_vocab": 51864})).eval()
    assert not english.is_multilingual
    frames = english.encoder.ln_post.weight.new_zeros(1, 50, WHISPER_DIMS["n_audio_state"])
    heard = Transcriber(english, beam_size=beam_size)(frames)
    assert heard.language == "en" and isinstance(heard.text, str)


def test_a_beam_that_loops_or_starts_over_is_ended_there():
    """_EndLoops leaves only end of text (at its own logit) to a beam that repeats a block or
    starts the question over; other beams keep every choice."""
    import whisper.tokenizer

    from encoders.transcribe import _EndLoops

    tokenizer = whisper.tokenizer.get_tokenizer(True, language="en", task="transcribe")
    prompt = list(tokenizer.sot_sequence_including_notimestamps)
    ending = _EndLoops(tokenizer, len(prompt))
    for said, ended in [
        (" How long does it take? How long", True),  # starts over
        (" one two three four one two three four", True),  # loops
        (" How long does it take to walk", False),  # goes on
    ]:
        logits = torch.randn(1, tokenizer.eot + 100)  # 1, V
        before = logits.clone()
        ending.apply(logits, torch.tensor([prompt + tokenizer.encode(said)]))
        if ended:
            assert torch.isinf(logits[0]).sum() == logits.shape[1] - 1, said
            assert logits[0, tokenizer.eot] == before[0, tokenizer.eot]
        else:
            assert torch.equal(logits, before), said
