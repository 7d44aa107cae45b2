"""Whisper's decoder on packed weights with cross-attention kept split (whisper_decoder.py),
and its beams through float16 rows (half_rows.py), gives openai-whisper's own logits: beam
steps over one clip, teacher-forced scoring."""

import copy

import pytest
import torch
from whisper.decoding import PyTorchInference

from encoders.gemv import Gemv, load_gemv
from encoders.half_rows import HalfRowsLinear
from encoders.packed_linear import bfloat16_available, packing_available
from encoders.transcribe import Transcriber, _SharedStartInference
from encoders.whisper_decoder import CrossAttention, PackedTextDecoder, pack_decoder
from tests.tiny import tiny_audio_encoder, tone


@pytest.fixture(scope="module")
def pair():
    """(openai-whisper's tiny model, the same weights with pack_decoder in float32), one clip's
    frames."""
    encoder = tiny_audio_encoder(seed=3)
    plain = encoder.whisper
    packed = copy.deepcopy(plain)
    pack_decoder(packed, torch.float32)
    return plain, packed, encoder.encode(tone(1.5))  # frames 1, T, D


def test_the_decoder_is_packed_and_its_cross_attention_kept_split(pair):
    _, packed, _ = pair
    assert all(type(b.cross_attn) is CrossAttention for b in packed.decoder.blocks)
    assert isinstance(packed.decoder, PackedTextDecoder) == packing_available()


def _beam_logits(model, frames, inference=None) -> list[torch.Tensor]:
    """Five beam steps of 5 beams over one clip -> each step's logits [5, N, V] (inference:
    openai-whisper's own unless given)."""
    first = torch.tensor([[50258, 50259, 50359, 50363]] * 5)  # 5 beams, the start tokens
    steps = [first] + [torch.randint(0, 50000, (5, 1), generator=torch.Generator().manual_seed(i))
                       for i in range(4)]  # fmt: skip
    inference = inference or PyTorchInference(model, first.shape[1])
    tokens, logits = first, []
    with torch.inference_mode():
        for step in steps:
            tokens = step if step is first else torch.cat([tokens, step], dim=1)
            logits.append(inference.logits(tokens, frames))  # frames: one clip for 5 rows
            inference.rearrange_kv_cache([1, 0, 2, 4, 3])  # beams change places
    inference.cleanup_caching()
    return logits


def test_beam_steps_over_one_clip_give_openai_whispers_logits(pair):
    plain, packed, frames = pair
    for mine, theirs in zip(_beam_logits(packed, frames), _beam_logits(plain, frames)):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not bfloat16_available(), reason="no bfloat16 instructions on this CPU")
def test_bfloat16_weights_stay_within_their_rounding_of_openai_whispers_logits(pair):
    plain, _, frames = pair
    half = copy.deepcopy(plain)
    assert pack_decoder(half) > 0  # the default: bfloat16 here
    assert half.decoder.vocabulary.packed_weight.dtype == torch.bfloat16
    for mine, theirs in zip(_beam_logits(half, frames), _beam_logits(plain, frames)):
        assert mine.dtype == torch.float32
        error = (mine - theirs).abs().max() / theirs.abs().max()
        assert 0 < error < 0.02  # rounded (8 bits of mantissa), not wrong
    texts = ["what is the time", "what is the weather", "hello"]
    mine = Transcriber(half).score(frames, texts)
    theirs = Transcriber(plain).score(frames, texts)
    assert mine == pytest.approx(theirs, rel=0.02)


def test_scores_of_readings_agree(pair):
    plain, packed, frames = pair
    texts = ["what is the time", "what is the weather", "hello"]
    mine = Transcriber(packed).score(frames, texts)
    theirs = Transcriber(plain).score(frames, texts)
    assert mine == pytest.approx(theirs, rel=1e-4, abs=1e-3)


@pytest.fixture(scope="module")
def half_pair(tmp_path_factory):
    """(openai-whisper's tiny model with float16 values in its float32 weights, as Whisper's
    ship; the same with pack_decoder given the kernel: its beams through float16 rows)."""
    gemv = load_gemv(tmp_path_factory.mktemp("kernels"))
    if gemv is None or not gemv.half_vectorised:
        pytest.skip("no AVX2/F16C build of the kernel here: the beams stay on packed float32")
    plain = copy.deepcopy(tiny_audio_encoder(seed=3).whisper)
    with torch.no_grad():
        for parameter in plain.parameters():
            parameter.copy_(parameter.half().float())
    fast = copy.deepcopy(plain)
    pack_decoder(fast, torch.float32, gemv)
    return plain, fast


def test_the_beams_go_through_float16_rows_and_give_openai_whispers_logits(pair, half_pair):
    plain, fast = half_pair
    _, _, frames = pair
    layers = [m for m in fast.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert layers and all(isinstance(m, HalfRowsLinear) for m in layers)  # vocabulary included
    calls = []
    original = Gemv.half_rows_unchecked
    Gemv.half_rows_unchecked = lambda self, *a: calls.append(1) or original(self, *a)
    try:
        steps = list(zip(_beam_logits(fast, frames), _beam_logits(plain, frames)))
    finally:
        Gemv.half_rows_unchecked = original
    assert calls  # the beams' rows went through the kernel
    for mine, theirs in steps:
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)
    texts = ["what is the time", "what is the weather", "hello"]  # teacher-forced: more rows
    mine, theirs = Transcriber(fast).score(frames, texts), Transcriber(plain).score(frames, texts)
    assert mine == pytest.approx(theirs, rel=1e-4, abs=1e-3)


def test_the_beams_share_their_first_step_and_the_detections_cross_attention(pair):
    """_SharedStartInference: the 5 beams' identical prompt runs as one row, from the keys and
    values of the frames the language detection made; openai-whisper's logits all the same."""
    plain, packed, frames = pair
    if not isinstance(packed.decoder, PackedTextDecoder):
        pytest.skip("no oneDNN packing here: the detection keeps nothing for the beams")
    cross = {}
    with torch.inference_mode():
        packed.decoder(torch.tensor([[50258]]), frames, kv_cache=cross)  # the detection's step
    assert set(cross) == {block.cross_attn for block in packed.decoder.blocks}
    rows, made = [], []
    forward = packed.decoder.forward
    packed.decoder.forward = lambda x, *a, **k: rows.append(x.shape[0]) or forward(x, *a, **k)
    hooks = [b.cross_attn.key.register_forward_hook(lambda *_: made.append(1))
             for b in packed.decoder.blocks]  # fmt: skip
    try:
        shared = _beam_logits(packed, frames, _SharedStartInference(packed, 4, cross))
    finally:
        del packed.decoder.forward
        for hook in hooks:
            hook.remove()
    assert rows == [1, 5, 5, 5, 5] and not made  # one row first; the frames' keys kept
    for mine, theirs in zip(shared, _beam_logits(plain, frames)):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


def test_transcripts_are_openai_whispers_own(pair):
    plain, packed, frames = pair
    mine, theirs = Transcriber(packed)(frames), Transcriber(plain)(frames)
    assert (mine.language, mine.alternatives) == (theirs.language, theirs.alternatives)
    assert mine.scores == pytest.approx(theirs.scores, abs=1e-3)
