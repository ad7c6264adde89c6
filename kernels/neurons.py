"""Per-neuron constants of the layer, packed as one ``[5, N]`` tensor.

Rows: ``α`` (decay), ``θ`` (threshold), ``s`` (subtract reset 0/1), ``z`` (zero reset 0/1),
``m`` (spiking 0/1), in the compute dtype.
"""

import triton
import triton.language as tl


@triton.jit
def load_neurons(params_ptr, rows, mask, n_neurons):
    """``(α, θ, s, z, m)`` of ``rows``, each ``[BLOCK_N, 1]`` to broadcast over the batch."""
    ptrs = params_ptr + rows
    alpha = tl.load(ptrs, mask=mask, other=0.0)[:, None]
    theta = tl.load(ptrs + n_neurons, mask=mask, other=0.0)[:, None]
    subtract = tl.load(ptrs + 2 * n_neurons, mask=mask, other=0.0)[:, None]
    zero = tl.load(ptrs + 3 * n_neurons, mask=mask, other=0.0)[:, None]
    spiking = tl.load(ptrs + 4 * n_neurons, mask=mask, other=0.0)[:, None]
    return alpha, theta, subtract, zero, spiking
