"""The surrogate derivatives' in-place NumPy form against their array formula."""

from __future__ import annotations

import numpy as np
import pytest

from snngraph.surrogates import ATan, FastSigmoid, Sigmoid, Surrogate, Triangle

SURROGATES = [Sigmoid(25.0), Sigmoid(0.3), FastSigmoid(10.0), ATan(2.0), ATan(0.7), Triangle(0.8), Triangle(3.0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
def test_grad_into_equals_grad(surrogate: Surrogate, dtype: type) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(500) * scale for scale in (0.01, 1.0, 100.0)])
    x = np.concatenate([x, [0.0, 1e-30, -1e30, 1e30]]).astype(dtype).reshape(32, -1)
    buffer = x.copy()
    with np.errstate(over="ignore", under="ignore"):
        expected = surrogate.grad(x)
        got = surrogate.grad_into(buffer)
    assert got is buffer
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
