"""Surrogate derivatives σ'(x) of :mod:`snngraph.surrogates`, as a Triton function.

The ``CODE`` of each surrogate class selects the same formula here (x = U − θ, k = slope):

====  ============  ============================================
code  surrogate     σ'(x)
====  ============  ============================================
0     Sigmoid       k·s(kx)·(1 − s(kx)),  s(z) = 1/(1 + e^{−z})
1     FastSigmoid   1 / (1 + k|x|)²
2     ATan          (k/2) / (1 + (π k x / 2)²)
3     Triangle      k · max(0, 1 − k|x|)
====  ============  ============================================
"""

import triton
import triton.language as tl


@triton.jit
def surrogate_grad(x, slope, CODE: tl.constexpr):
    """σ'(x) elementwise for the surrogate with code ``CODE`` and slope ``k``.

    ``x``: a tensor in the compute dtype; ``slope``: a scalar of the same dtype (loaded from
    memory, so that float64 keeps every bit of k).  Constants are written inline in the
    expressions, where Triton gives them the tensor's dtype (a named Python float would be a
    float32 constant).
    """
    if CODE == 0:  # s(z)·(1 − s(z)) = e/(1 + e)² with e = exp(−|z|): no overflow, no cancellation
        e = tl.exp(-slope * tl.abs(x))
        grad = slope * e / ((1.0 + e) * (1.0 + e))
    elif CODE == 1:
        r = 1.0 / (1.0 + slope * tl.abs(x))
        grad = r * r
    elif CODE == 2:
        z = 1.5707963267948966 * slope * x
        grad = 0.5 * slope / (1.0 + z * z)
    else:
        grad = slope * tl.maximum(1.0 - slope * tl.abs(x), 0.0)
    return grad
