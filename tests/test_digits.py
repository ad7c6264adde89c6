"""The latency-coded digits: the code's formula, its order, the split, the datasets."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from snngraph.datasets import DIGITS_SHAPE, digits, held_out_split, latency_code


def test_latency_code_is_the_formula() -> None:
    """t = round((1 − x/16)·(W − 1)) for x > 0, one spike; x = 0 stays silent; silent after W."""
    images = np.arange(17, dtype=float).reshape(1, 17)
    x = latency_code(images, 12, window=9)
    assert x.shape == (1, 12, 17)
    assert x.dtype == torch.float32
    counts = x.sum(dim=1)[0]
    assert counts[0] == 0
    assert torch.all(counts[1:] == 1)
    for value in range(1, 17):
        assert int(x[0, :, value].argmax()) == round((1 - value / 16) * 8)
    assert x[0, 9:].sum() == 0
    assert int(x[0, :, 16].argmax()) == 0  # the brightest pixel fires first


def test_brighter_pixels_fire_no_later() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(1, 17, size=(50, 1, 4, 4)).astype(float)
    steps = latency_code(images, 10).argmax(dim=1).numpy().reshape(50, -1)
    order = np.argsort(images.reshape(50, -1), axis=1)
    assert np.all(np.diff(np.take_along_axis(steps, order, axis=1), axis=1) <= 0)


def test_latency_code_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="window"):
        latency_code(np.ones((1, 2)), 4, window=5)
    with pytest.raises(ValueError, match="values in"):
        latency_code(np.full((1, 2), 17.0), 4)


def test_held_out_split_is_disjoint_stratified_and_fixed() -> None:
    labels = np.repeat(np.arange(4), [40, 20, 60, 80])
    train, test = held_out_split(labels, test_size=0.25, seed=0)
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    np.testing.assert_array_equal(np.bincount(labels[test]), [10, 5, 15, 20])
    again, _ = held_out_split(labels, test_size=0.25, seed=0)
    other, _ = held_out_split(labels, test_size=0.25, seed=1)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_digits_datasets() -> None:
    train, test = digits(steps=6)
    (x_train, y_train), (x_test, y_test) = train.tensors, test.tensors
    assert x_train.shape == (1347, 6, *DIGITS_SHAPE)
    assert x_test.shape == (450, 6, *DIGITS_SHAPE)
    assert y_train.dtype == torch.int64
    assert np.bincount(y_test.numpy()).min() >= 43  # about a quarter of every class's ~180
    assert x_train.sum(dim=1).max() == 1  # at most one spike per pixel
    again, _ = digits(steps=6)
    assert torch.equal(again.tensors[0], x_train)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install snngraph\[examples\]"):
        digits()
