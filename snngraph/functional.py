"""The layer op: a plan and tensors in, membranes and spikes out.

``plan = prepare(net, backend=..., device=..., dtype=...)`` derives once, per network, device,
dtype and options, everything the backend needs besides the tensors (index structures, CSR/CSC
views, launch geometry); ``lif_layer(x, w_in, w_rec, neurons, u0, s_hist, plan)`` runs the
layer of docs/design.md ("The model") through the one ``torch.autograd.Function``
(:mod:`snngraph.autograd`), differentiable in every tensor.  :class:`snngraph.SNN` is a module
over these two functions; they are public for users who hold the parameters themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from snngraph.autograd import LayerFunction
from snngraph.backends import BackendChoice, check_choice, make_backend
from snngraph.backends.base import ConvSynapses, LayerSpec, Plan, SynapseRange
from snngraph.kinds import layer_columns, neuron_blocks
from snngraph.network import CompiledNetwork
from snngraph.neurons import NeuronParams, is_plain, n_rows, n_states_of
from snngraph.surrogates import Sigmoid, Surrogate

INDICES = ("in_post", "in_pre", "in_delay", "rec_post", "rec_pre", "rec_delay")
"""The synapse index arrays of a :class:`CompiledNetwork` that a plan holds, in this order."""
SAVED_MEMBRANES = (None, torch.bfloat16, torch.float16)


def check_options(backend: BackendChoice, surrogate: Surrogate, saved_membranes: torch.dtype | None) -> None:
    """Raise a ``ValueError``/``TypeError`` unless these options of the op go together."""
    check_choice(backend)
    if not isinstance(surrogate, Surrogate):
        raise TypeError(f"surrogate must be a snngraph.surrogates.Surrogate, got {type(surrogate).__name__}")
    if saved_membranes not in SAVED_MEMBRANES:
        raise ValueError(f"saved_membranes must be None, torch.bfloat16 or torch.float16, got {saved_membranes}")
    if saved_membranes is not None and backend == "reference":
        raise ValueError("saved_membranes applies to the fused backends (cpu, triton), not to 'reference'")


def layer_spec(
    net: CompiledNetwork,
    indices: Sequence[torch.Tensor],
    *,
    surrogate: Surrogate,
    detach_reset: bool,
    saved_membranes: torch.dtype | None,
    tied_convolutions: bool = False,
    fixed_edges: bool = False,
) -> LayerSpec:
    """The :class:`LayerSpec` of ``net`` with its :data:`INDICES` as the given tensors (on one
    device); the options as :func:`check_options` accepts them.  ``tied_convolutions``: the
    weights of convolution edges come from their kernels, so only the gradient's sums per tap
    are read (:class:`~snngraph.backends.base.LayerSpec`); ``fixed_edges``: the gradient of the
    weights of the edges with ``trainable=False`` (that do not learn their delays) is not read."""
    return LayerSpec(
        n_states_of(net.neurons),
        is_plain(net.neurons),
        net.n_neurons,
        net.n_inputs,
        net.max_delay,
        net.max_input_delay,
        *indices,
        surrogate=surrogate,
        detach_reset=bool(detach_reset),
        saved_membranes=saved_membranes,
        convolutions=conv_synapses(net),
        tied_convolutions=tied_convolutions,
        fixed=tuple(SynapseRange(e.target, e.start, e.stop) for e in net.edges if not e.trainable and e.delays is None)
        if fixed_edges
        else (),
        edges=tuple(SynapseRange(e.target, e.start, e.stop) for e in net.edges),
    )


def conv_synapses(net: CompiledNetwork) -> tuple[ConvSynapses, ...]:
    """The synapse ranges of ``net``'s convolution and pooling edges (one per delay tap of an edge
    that learns its delays: each tap's block holds the convolution's synapses)."""
    starts = {p.name: p.start for p in net.populations}
    input_starts = {p.name: p.start for p in net.inputs}
    return tuple(
        ConvSynapses(
            e.target,
            e.start + tap * e.base_synapses,
            e.start + (tap + 1) * e.base_synapses,
            starts[e.post],
            input_starts[e.pre] if e.target == "input" else starts[e.pre],
            e.conv,
        )
        for e in net.edges
        if e.conv is not None
        for tap in range(e.taps)
    )


def prepare_layer(layer: LayerSpec, backend: BackendChoice, dtype: torch.dtype, previous: Plan | None = None) -> Plan:
    """The plan of ``layer`` on the backend that ``backend`` names or configures, for ``dtype``
    (``previous``: a plan whose structures it may reuse, see ``Backend.prepare``)."""
    return make_backend(backend, layer.device).prepare(layer, dtype, previous)


def prepare(
    net: CompiledNetwork,
    *,
    backend: BackendChoice = "auto",
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    surrogate: Surrogate | None = None,
    detach_reset: bool = False,
    saved_membranes: torch.dtype | None = None,
) -> Plan:
    """The plan of ``net`` for calls on ``device`` in ``dtype`` (default: torch's default dtype).

    ``surrogate`` (default ``Sigmoid(25)``) is the derivative that replaces dS/dU in the
    backward pass; ``detach_reset`` drops the reset terms from it; ``saved_membranes``
    (bfloat16/float16) stores the membranes saved for backward in 16 bits.
    """
    surrogate = Sigmoid(25.0) if surrogate is None else surrogate
    check_options(backend, surrogate, saved_membranes)
    device = torch.device(device)
    indices = [torch.as_tensor(getattr(net, name), dtype=torch.long, device=device) for name in INDICES]
    layer = layer_spec(net, indices, surrogate=surrogate, detach_reset=detach_reset, saved_membranes=saved_membranes)
    return prepare_layer(layer, backend, torch.get_default_dtype() if dtype is None else dtype)


def neuron_params(
    net: CompiledNetwork,
    table: torch.Tensor | None = None,
    parameters: Mapping[str, torch.Tensor] | None = None,
    *,
    elapsed: int = 0,
) -> NeuronParams:
    """The neuron table of ``net`` for a call that continues a run after ``elapsed`` graph steps.

    ``table`` is the compiled table as a tensor (default ``net.neurons`` as float64 on the CPU);
    ``parameters`` maps names of :data:`snngraph.kinds.NAMED` to values ``[N]`` that replace the
    compiled ones: the columns are then built from the named parameters by the map of
    :mod:`snngraph.kinds`, differentiably, and ``trainable`` names the groups that depend on
    a parameter that requires grad.  The onsets are ``max(0, lag − elapsed)`` per population.
    """
    table = torch.as_tensor(net.neurons) if table is None else table
    trainable: frozenset[str] = frozenset()
    if parameters:
        unknown = sorted(set(parameters) - set(net.parameters))
        if unknown:
            raise ValueError(f"parameters {unknown} are not parameters of this network; it has {list(net.parameters)}")
        values = {name: parameters.get(name, table.new_tensor(value)) for name, value in net.parameters.items()}
        generic = {
            p.name: neuron_blocks(table[:, p.slice], p.model.n_states)
            for p in net.populations
            if p.model.kind == "neurons"
        }
        table, trainable = layer_columns(net.populations, values, net.n_states, generic)
    if elapsed < net.max_lag:
        onset = torch.cat([torch.full((p.size,), float(max(0, p.lag - elapsed))) for p in net.populations])
        table = torch.cat([table[:-1], onset.to(table)[None]])
    return NeuronParams(table, trainable)


def lif_layer(
    x: torch.Tensor,
    w_in: torch.Tensor,
    w_rec: torch.Tensor,
    neurons: NeuronParams,
    v0: torch.Tensor,
    s_hist: torch.Tensor,
    plan: Plan,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The states V ``[T, K, B, N]`` (``V[:, 0]`` = U) and the spikes S ``[T, B, N]`` of the
    layer of ``plan``.

    ``x`` ``[Din + T, B, C]`` (``Din`` steps of input history first), ``w_in`` ``[n_in]`` and
    ``w_rec`` ``[n_rec]`` in the compiled synapse order, ``neurons`` the neuron table ``[P, N]``
    (:class:`~snngraph.neurons.NeuronParams`), ``v0`` = v[−1] ``[K, B, N]``, ``s_hist`` =
    S[−D … −1] ``[D, B, N]``; every tensor in the plan's dtype and on its device.
    """
    layer = plan.layer
    n, d, d_in, k = layer.n_neurons, layer.max_delay, layer.max_input_delay, layer.n_states
    if not isinstance(neurons, NeuronParams):
        raise TypeError(f"neurons must be a snngraph.neurons.NeuronParams, got {type(neurons).__name__}")
    if x.ndim != 3 or x.shape[0] <= d_in or x.shape[2] != layer.n_inputs:
        raise ValueError(f"x must be [Din + T, B, C] = [{d_in} + T >= 1, B, {layer.n_inputs}], got {tuple(x.shape)}")
    batch = x.shape[1]
    expected = {
        "w_in": (w_in, (layer.in_post.numel(),)),
        "w_rec": (w_rec, (layer.rec_post.numel(),)),
        "neurons.table": (neurons.table, (n_rows(k), n)),
        "v0": (v0, (k, batch, n)),
        "s_hist": (s_hist, (d, batch, n)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(tensor.shape)}")
    for name, tensor in (("x", x), *((name, t) for name, (t, _) in expected.items())):
        if tensor.dtype != plan.dtype or tensor.device != layer.device:
            raise ValueError(
                f"{name} is {tensor.dtype} on {tensor.device}; the plan runs {plan.dtype} on {layer.device}"
            )
    return LayerFunction.apply(plan, neurons.trainable, x, w_in, w_rec, neurons.table, v0, s_hist)


__all__ = ["INDICES", "check_options", "layer_spec", "lif_layer", "neuron_params", "prepare", "prepare_layer"]
