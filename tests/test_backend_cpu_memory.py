"""The CPU backend's array cache: a block is handed out again only once nothing refers to the
memory of the array it was, and the outputs of a call that the caller holds stay intact."""

from __future__ import annotations

import numpy as np
import torch
from random_graphs import random_graph

import snngraph
from snngraph import SNN
from snngraph.backends.cpu.memory import ArrayCache


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_block_reused_once_released() -> None:
    cache = ArrayCache()
    a = cache.zeros((3, 5), np.float64)
    first = _address(a)
    b = cache.empty((3, 5), np.float64)
    assert _address(b) != first  # a is alive
    del a
    c = cache.zeros((5, 3), np.float64)  # the same size, another shape
    assert _address(c) == first
    assert not c.any()
    assert c.flags.c_contiguous
    assert c.flags.writeable


def test_views_and_tensors_keep_the_block() -> None:
    cache = ArrayCache()
    a = cache.empty((4, 6), np.float32)
    first = _address(a)
    kept = [a[1:, ::2], torch.from_numpy(a).transpose(0, 1)[2], torch.from_numpy(a)[1:].numpy()]
    del a
    while kept:
        probes = [cache.empty((4, 6), np.float32) for _ in range(3)]
        assert first not in {_address(p) for p in probes}
        kept.pop()
    del probes
    assert first in {_address(cache.empty((4, 6), np.float32)) for _ in range(4)}  # 3 probes' and a's


def test_free_blocks_are_bounded() -> None:
    cache = ArrayCache(keep=2)
    arrays = [cache.empty((10,), np.int64) for _ in range(5)]
    del arrays
    kept = cache.empty((10,), np.int64)  # one of the 5 freed; of the other 4 the last 2 are kept
    assert cache.free_bytes == 2 * kept.nbytes
    assert cache.empty((10,), np.int64).nbytes == kept.nbytes
    assert cache.free_bytes == kept.nbytes


def test_held_outputs_survive_later_calls() -> None:
    torch.manual_seed(0)
    model = SNN(snngraph.compile(random_graph(3)), backend="cpu", dtype=torch.float64)
    x = (torch.rand(20, 3, model.net.n_inputs, dtype=torch.float64) < 0.3).to(torch.float64)
    first = model(x)
    spikes, states = first.layer_spikes.clone(), first.layer_states.clone()
    first.layer_states.sum().backward()  # the backward pass's λU comes from the same cache
    for _ in range(3):
        model(torch.rand_like(x) * 2)
        torch.testing.assert_close(first.layer_spikes, spikes, rtol=0, atol=0)
        torch.testing.assert_close(first.layer_states, states, rtol=0, atol=0)
    del first
    again = model(x)  # now from a reused block: the same numbers
    torch.testing.assert_close(again.layer_spikes, spikes, rtol=0, atol=0)
    torch.testing.assert_close(again.layer_states, states, rtol=0, atol=0)
