"""The KV cache that grows in place (fusion/kv_cache.py) holds what transformers' own does."""

import torch
from transformers import DynamicCache

from fusion.kv_cache import ROOM, GrowingCache


def test_growing_cache_holds_what_a_dynamic_cache_holds_across_new_room():
    torch.manual_seed(0)
    mine, theirs = GrowingCache(), DynamicCache()
    for step, columns in enumerate([7] + [1] * (ROOM + 5)):  # a prefill, then decode steps
        for layer in range(2):
            keys, values = torch.randn(2, 3, columns, 4), torch.randn(2, 3, columns, 4)
            got = mine.update(keys, values, layer)
            want = theirs.update(keys, values, layer)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert mine.get_seq_length() == theirs.get_seq_length() == 7 + ROOM + 5
    layer = mine.layers[0]
    assert layer._keys.buffer.shape[2] > layer.keys.shape[2]  # room left for the next tokens


def test_setting_keys_copies_them_and_growth_goes_on_from_there():
    cache = GrowingCache()
    cache.update(torch.zeros(3, 1, 5, 2), torch.zeros(3, 1, 5, 2), 0)
    layer = cache.layers[0]
    kept = torch.arange(2 * 1 * 4 * 2, dtype=torch.float32).reshape(2, 1, 4, 2)
    layer.keys, layer.values = kept, kept.clone()  # rows dropped and columns cropped
    kept += 100  # the cache holds its own copy
    keys, values = cache.update(torch.ones(2, 1, 1, 2), torch.ones(2, 1, 1, 2), 0)
    assert keys.shape == values.shape == (2, 1, 5, 2) and cache.get_seq_length() == 5
    assert torch.equal(values[:, :, :4], kept - 100)
    assert torch.equal(keys[:, :, :4], kept - 100) and torch.equal(
        keys[:, :, 4], torch.ones(2, 1, 2)
    )
