"""The compiled products kernel (encoders/gemv.py, kernels/gemv.c): one row on float32 weights
and on a GGUF file's blocks, a few rows on float16 weights; and the layers that use it."""

import copy

import pytest
import torch
from torch import nn

from encoders.gemv import Blocks, load_gemv, random_blocks
from encoders.half_rows import HalfRowsLinear, use_half_rows
from encoders.packed_linear import pack_linears, packing_available
from fusion.conversation import user
from fusion.generate import GenerationOptions
from fusion.model import Chunk
from fusion.row_linear import RowLinear, use_blocks, use_row_kernel


@pytest.fixture(scope="module")
def gemv(tmp_path_factory):
    built = load_gemv(tmp_path_factory.mktemp("cache"))
    if built is None:
        pytest.skip("no C compiler or no OpenMP torch here: the kernel is not built")
    return built


@pytest.mark.parametrize(
    "out_features,in_features", [(1, 1), (3, 17), (37, 51), (1536, 576), (5, 16)]
)
def test_kernel_matches_f_linear(gemv, out_features, in_features):
    generator = torch.Generator().manual_seed(out_features * 1000 + in_features)
    weight = torch.randn(out_features, in_features, generator=generator)
    row = torch.randn(in_features, generator=generator)
    bias = torch.randn(out_features, generator=generator)
    close = {"rtol": 1e-4, "atol": 1e-4}  # float32 sums in another order (576 terms ~ 2e-5)
    torch.testing.assert_close(
        gemv(weight, row, bias), nn.functional.linear(row, weight, bias), **close
    )
    torch.testing.assert_close(gemv(weight, row), weight @ row, **close)


def test_kernel_refuses_a_non_contiguous_weight(gemv):
    with pytest.raises(ValueError, match="contiguous"):
        gemv(torch.randn(8, 4).T, torch.randn(8))


@pytest.mark.parametrize(
    "weight,row,bias",
    [
        (torch.randn(4, 8, dtype=torch.float64), torch.randn(8), None),  # other dtype
        (torch.randn(4, 8), torch.randn(8, dtype=torch.float16), None),
        (torch.randn(4, 8), torch.randn(7), None),  # wrong length
        (torch.randn(4, 8), torch.randn(8), torch.randn(5)),  # bias of another size
        (torch.randn(4, 8), torch.randn(8), torch.randn(8)[::2]),  # strided bias
    ],
)
def test_kernel_refuses_what_it_cannot_read_safely(gemv, weight, row, bias):
    with pytest.raises(ValueError, match="contiguous float32 CPU"):
        gemv(weight, row, bias)


def test_decoding_falls_back_to_packed_weights_without_the_kernel(tmp_path, monkeypatch):
    from encoders.packed_linear import PackedLinear, packing_available
    from fusion.bundle import speed_up_decoding

    net = nn.Sequential(nn.Linear(8, 8))
    monkeypatch.setenv("LUNETTES_GEMV", "0")
    chosen = speed_up_decoding(net, tmp_path)
    assert chosen == ("packed" if packing_available() else "torch")
    assert isinstance(net[0], PackedLinear) == packing_available()


def test_kernel_is_cached_and_rebuilt_only_when_missing(tmp_path):
    first = load_gemv(tmp_path)
    if first is None:
        pytest.skip("no C compiler here")
    built = first.library.stat().st_mtime_ns
    assert load_gemv(tmp_path).library == first.library
    assert first.library.stat().st_mtime_ns == built  # loaded, not compiled again


def test_no_compiler_or_switched_off_means_no_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("LUNETTES_GEMV", "0")
    assert load_gemv(tmp_path) is None
    monkeypatch.setenv("LUNETTES_GEMV", "1")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert load_gemv(tmp_path / "other") is None  # a clear fallback, not an exception


def kernel_calls(gemv, net, reference, inputs) -> int:
    """Run each input through net (checked against reference) -> how often the kernel ran."""
    calls = []
    original = type(gemv).unchecked
    for x in inputs:
        with torch.inference_mode():
            try:
                type(gemv).unchecked = lambda self, *a: calls.append(1) or original(self, *a)
                out = net(x)
            finally:
                type(gemv).unchecked = original
        torch.testing.assert_close(out, reference(x), rtol=1e-5, atol=1e-5)
    return len(calls)


def test_row_linears_use_the_kernel_for_one_row_only_and_keep_autograd(gemv):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 40), nn.GELU(), nn.Linear(40, 8, bias=False))
    reference = copy.deepcopy(net)
    assert use_row_kernel(net, gemv) == 2 and all(isinstance(m, RowLinear) for m in net[::2])
    inputs = (torch.randn(1, 1, 16), torch.randn(3, 5, 16))  # one row, then many
    assert kernel_calls(gemv, net, reference, inputs) == 2  # both layers, the single row only
    x = torch.randn(1, 16, requires_grad=True)
    net(x).sum().backward()  # with gradients nn.Linear's path is used
    assert x.grad is not None and net[0].weight.grad is not None


@pytest.mark.skipif(not packing_available(), reason="no oneDNN in this torch")
def test_packed_row_linears_use_the_kernel_for_one_row_and_packed_weights_for_more(gemv):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 40), nn.GELU(), nn.Linear(40, 8, bias=False))
    reference = copy.deepcopy(net)
    assert pack_linears(net) == 2 and use_row_kernel(net, gemv) == 2
    assert all(isinstance(m, RowLinear) and m.packed_weight is not None for m in net[::2])
    inputs = (torch.randn(1, 16), torch.randn(8, 1, 16))  # one row, then a decode batch
    assert kernel_calls(gemv, net, reference, inputs) == 2  # the batch went through oneDNN


def test_row_kernel_skips_other_dtypes(gemv):
    net = nn.Sequential(nn.Linear(4, 4).to(torch.bfloat16))
    assert use_row_kernel(net, gemv) == 0 and type(net[0]) is nn.Linear


def test_language_model_answers_identically_with_the_kernel(model, gemv):
    options = GenerationOptions(max_new_tokens=12)
    question = [user("Tell me something.")]

    def answer():
        return "".join(e.text for e in model.stream(question, options) if isinstance(e, Chunk))

    saved = model.lm
    model.lm = copy.deepcopy(saved)
    try:
        for layer in model.lm.modules():  # plain nn.Linear first, whatever the bundle chose
            if isinstance(layer, nn.Linear):
                layer.__class__ = nn.Linear
        before = answer()
        assert use_row_kernel(model.lm, gemv) > 0
        assert answer() == before
    finally:
        model.lm = saved


# --- the weight as a GGUF file's blocks (gemv.Blocks) ---


@pytest.mark.parametrize("block_format", ["q4_1", "q8_0"])
@pytest.mark.parametrize(
    "out_features,in_features", [(1, 32), (3, 64), (37, 64), (1536, 576), (576, 1536)]
)
def test_block_products_match_the_dequantized_weight(gemv, block_format, out_features, in_features):
    generator = torch.Generator().manual_seed(out_features + in_features)
    blocks = random_blocks(block_format, out_features, in_features, generator)
    row = torch.randn(in_features, generator=generator)
    bias = torch.randn(out_features, generator=generator)
    weight = blocks.dequantized()
    close = {"rtol": 1e-4, "atol": 1e-4}  # float32 sums in another order (as above)
    torch.testing.assert_close(gemv.blocks(blocks, row), weight @ row, **close)
    torch.testing.assert_close(
        gemv.blocks(blocks, row, bias), nn.functional.linear(row, weight, bias), **close
    )


def test_blocks_are_read_as_gguf_reads_them():
    gguf = pytest.importorskip("gguf")
    generator = torch.Generator().manual_seed(3)
    kinds = {"q4_1": gguf.GGMLQuantizationType.Q4_1, "q8_0": gguf.GGMLQuantizationType.Q8_0}
    for block_format, kind in kinds.items():
        blocks = random_blocks(block_format, 5, 96, generator)
        expected = gguf.quants.dequantize(blocks.data.numpy(), kind)  # 5, 96
        assert torch.equal(blocks.dequantized(), torch.from_numpy(expected))


@pytest.mark.parametrize(
    "data,in_features",
    [
        (torch.zeros(4, 60, dtype=torch.uint8), 96),  # 3 Q4_1 blocks are 60 bytes, not 3 x 34
        (torch.zeros(4, 40, dtype=torch.uint8), 60),  # not a whole number of blocks
        (torch.zeros(4, 40, dtype=torch.int16), 64),  # not bytes
        (torch.zeros(40, 4, dtype=torch.uint8).T, 64),  # not contiguous
    ],
)
def test_blocks_refuse_what_the_kernel_cannot_read_safely(data, in_features):
    with pytest.raises(ValueError, match="contiguous uint8 CPU tensor"):
        Blocks("q8_0" if data.shape[1] == 60 else "q4_1", data, in_features)
    with pytest.raises(ValueError, match="block format"):
        Blocks("q5_k", torch.zeros(4, 40, dtype=torch.uint8), 64)


@pytest.mark.parametrize("block_format", ["q4_1", "q8_0"])
@pytest.mark.parametrize("rows", [2, 3, 8])
def test_block_products_of_a_decode_batch_match_the_dequantized_weight(gemv, block_format, rows):
    if not gemv.blocks_vectorised:
        pytest.skip("no AVX2/FMA/F16C build of the kernel here: batches keep float32")
    generator = torch.Generator().manual_seed(rows)
    blocks = random_blocks(block_format, 37, 96, generator)
    x = torch.randn(rows, 96, generator=generator)
    bias = torch.randn(37, generator=generator)
    expected = nn.functional.linear(x, blocks.dequantized(), bias)
    torch.testing.assert_close(gemv.blocks_rows(blocks, x, bias), expected, rtol=1e-4, atol=1e-4)
    for bad in (torch.randn(1, 96), torch.randn(9, 96), torch.randn(rows, 95)):
        with pytest.raises(ValueError, match="2 to 8 contiguous float32 CPU rows"):
            gemv.blocks_rows(blocks, bad)


def test_block_products_refuse_a_row_of_another_length_or_dtype(gemv):
    blocks = random_blocks("q4_1", 4, 64, torch.Generator().manual_seed(0))
    for row in (torch.randn(63), torch.randn(64, dtype=torch.float64), torch.randn(128)[::2]):
        with pytest.raises(ValueError, match="contiguous float32 CPU row"):
            gemv.blocks(blocks, row)


def block_calls(gemv, net, inputs) -> list[int]:
    """Run each input through net -> the rows of each kernel call on blocks."""
    calls = []
    one, batch = type(gemv).blocks_unchecked, type(gemv).blocks_rows_unchecked
    try:
        type(gemv).blocks_unchecked = lambda self, w, x, b=None: (
            calls.append(1) or one(self, w, x, b)
        )
        type(gemv).blocks_rows_unchecked = lambda self, w, x, b=None: (
            calls.append(x.shape[0]) or batch(self, w, x, b)
        )
        with torch.inference_mode():
            for x in inputs:
                net(x)
    finally:
        type(gemv).blocks_unchecked, type(gemv).blocks_rows_unchecked = one, batch
    return calls


def test_row_linears_read_their_blocks_for_a_row_or_a_decode_batch(gemv):
    generator = torch.Generator().manual_seed(1)
    net = nn.Sequential(nn.Linear(64, 96, bias=False), nn.GELU(), nn.Linear(96, 32))
    found = {"0": random_blocks("q4_1", 96, 64, generator)}
    found["2"] = random_blocks("q8_0", 32, 96, generator)
    with torch.no_grad():
        for name, blocks in found.items():
            net.get_submodule(name).weight.copy_(blocks.dequantized())
    reference = copy.deepcopy(net)
    assert use_row_kernel(net, gemv) == 2 and use_blocks(net, found) == 2
    inputs = (torch.randn(1, 1, 64), torch.randn(4, 1, 64), torch.randn(3, 5, 64))
    batches = [4, 4] if gemv.blocks_vectorised else []
    assert block_calls(gemv, net, inputs) == [1, 1] + batches  # 15 rows: not through blocks
    for x in inputs:
        with torch.inference_mode():
            torch.testing.assert_close(net(x), reference(x), rtol=1e-4, atol=1e-5)


def test_blocks_of_another_weight_are_not_used(gemv):
    generator = torch.Generator().manual_seed(2)
    net = nn.Sequential(nn.Linear(64, 8, bias=False), nn.Linear(64, 8, bias=False))
    use_row_kernel(net, gemv)
    blocks = random_blocks("q4_1", 8, 64, generator)
    with torch.no_grad():
        net[0].weight.copy_(blocks.dequantized())
        net[1].weight.copy_(blocks.dequantized())
        net[1].weight[7, 63] += 1e-3  # its last row differs by one weight
    other_shape = random_blocks("q4_1", 8, 32, generator)
    assert use_blocks(net, {"0": blocks, "1": blocks, "2": blocks}) == 1  # no layer "2"
    assert net[0].blocks is blocks and net[1].blocks is None
    assert use_blocks(net, {"1": other_shape}) == 0 and net[1].blocks is None


# --- a few rows through a float16 weight (gemv.half_rows, half_rows.py) ---


@pytest.mark.parametrize("rows", [1, 2, 5, 8])
@pytest.mark.parametrize("out_features,in_features", [(1, 8), (37, 51), (512, 512), (3, 2048)])
def test_half_rows_match_the_float32_product(gemv, rows, out_features, in_features):
    if not gemv.half_vectorised:
        pytest.skip("no AVX2/F16C build of the kernel here: no float16 product")
    generator = torch.Generator().manual_seed(rows * 100 + in_features)
    weight = torch.randn(out_features, in_features, generator=generator).half()
    x = torch.randn(rows, in_features, generator=generator)
    bias = torch.randn(out_features, generator=generator)
    close = {"rtol": 1e-4, "atol": 1e-4}  # float32 sums in another order
    expected = nn.functional.linear(x, weight.float(), bias)
    torch.testing.assert_close(gemv.half_rows(weight, x, bias), expected, **close)
    torch.testing.assert_close(gemv.half_rows(weight, x), x @ weight.float().T, **close)


def test_half_rows_refuse_what_they_cannot_read_safely(gemv):
    weight = torch.randn(4, 16).half()
    for bad_weight, x in [
        (weight, torch.randn(9, 16)),  # more rows than HALF_ROWS
        (weight, torch.randn(2, 15)),  # wrong width
        (weight.float(), torch.randn(2, 16)),  # not float16
        (weight, torch.randn(2, 16, dtype=torch.float64)),
        (weight, torch.randn(16, 2).T),  # not contiguous
    ]:
        with pytest.raises(ValueError, match="half_rows needs"):
            gemv.half_rows(bad_weight, x)


def test_half_rows_linears_take_float16_values_only_and_a_few_rows(gemv):
    if not gemv.half_vectorised:
        pytest.skip("no AVX2/F16C build of the kernel here: no float16 product")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 40), nn.GELU(), nn.Linear(40, 8), nn.Linear(8, 8))
    with torch.no_grad():
        for layer in net[:3:2]:
            layer.weight.copy_(layer.weight.half().float())  # float16 values, as Whisper's
    reference = copy.deepcopy(net)
    if packing_available():
        pack_linears(net)
    assert use_half_rows(net, gemv) == 2  # the last layer's weights are not float16 values
    assert [type(m) for m in net[::2]] == [HalfRowsLinear, HalfRowsLinear]
    calls = []
    original = type(gemv).half_rows_unchecked
    try:
        type(gemv).half_rows_unchecked = lambda self, *a: calls.append(1) or original(self, *a)
        for x in (torch.randn(5, 16), torch.randn(1, 3, 16), torch.randn(3, 5, 16)):
            with torch.inference_mode():
                torch.testing.assert_close(net(x), reference(x), rtol=1e-4, atol=1e-4)
    finally:
        type(gemv).half_rows_unchecked = original
    assert len(calls) == 4  # 5 rows and 3 rows through both layers; 15 rows kept their path
