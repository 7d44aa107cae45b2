"""int8 copies of linear layers (encoders/int8_linear.py): within int8 rounding of float32,
and float32 itself wherever a gradient, another dtype or another device is involved."""

import pytest
import torch
from torch import nn

from encoders.int8_linear import Int8Linear, float32_products, int8_available, quantize_linears

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch has no quantized engine")


def _layer(rows: int = 96, columns: int = 64, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(columns, rows)


def test_the_int8_product_stays_within_its_rounding_of_float32():
    layer = _layer()
    x = torch.randn(5, 3, 64)  # beams, positions, width
    with torch.inference_mode():
        expected = layer(x)
        assert quantize_linears(layer) == 1
        got = layer(x)
    assert isinstance(layer, Int8Linear) and got.shape == (5, 3, 96)
    assert got.dtype == torch.float32
    error = (got - expected).abs().max() / expected.abs().max()
    assert 0 < error < 0.03  # rounded to 8 bits (inputs to 7), not wrong


def test_training_and_other_dtypes_use_the_float32_weight():
    layer = _layer()
    quantize_linears(layer)
    x = torch.randn(4, 64)
    with torch.no_grad():
        reference = torch.nn.functional.linear(x, layer.weight, layer.bias)
        in_double = torch.nn.functional.linear(
            x.double(), layer.weight.double(), layer.bias.double()
        )
    torch.testing.assert_close(layer(x), reference)  # grad enabled: nn.Linear's own path
    with torch.inference_mode():
        torch.testing.assert_close(layer.double()(x.double()), in_double)


def test_only_the_layer_kinds_asked_for_are_quantized():
    class Other(nn.Linear):
        pass

    model = nn.Sequential(_layer(seed=1), Other(96, 8), nn.Linear(8, 4).double())
    assert quantize_linears(model) == 1  # not the subclass, not a float64 layer
    assert [type(m) for m in model] == [Int8Linear, Other, nn.Linear]
    assert quantize_linears(model, (Other,)) == 1


def test_inside_float32_products_the_float32_weight_multiplies():
    layer = _layer()
    quantize_linears(layer)
    x = torch.randn(7, 64)
    with torch.inference_mode():
        with float32_products():
            exact = layer(x)
        rounded = layer(x)
        reference = torch.nn.functional.linear(x, layer.weight, layer.bias)
    torch.testing.assert_close(exact, reference)
    assert not torch.equal(rounded, reference)
