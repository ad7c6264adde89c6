"""``SNN``: the compiled layer as a ``torch.nn.Module`` over the layer op (:mod:`snngraph.functional`).

Parameters are the edges' weights, one tensor per edge in its natural shape in ``model.weights``
(:mod:`snngraph.synapses`: a Parameter when the edge trains, a buffer when it is fixed), and,
when learnable, the named neuron parameters (``alpha``, ``theta``, ``bias``, … of
:mod:`snngraph.kinds`), one value per neuron.  Each call gathers the flat synapse weights
``w_in``/``w_rec`` (edge order, see :class:`~snngraph.network.CompiledNetwork`) from the edges'
tensors for the layer op.  Indices, delays, the compiled neuron table and the parameters that do
not learn are buffers, so ``.to(device)``/``.double()`` work as usual; the module owns the plan of
its layer and rebuilds it when they move.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from snngraph.backends import BackendChoice, Plan
from snngraph.backends.base import LayerSpec
from snngraph.delays import DelayTaps
from snngraph.functional import INDICES, check_options, layer_spec, lif_layer, neuron_params, prepare_layer
from snngraph.graph import Graph, ProjectionSpec
from snngraph.kinds import neuron_blocks
from snngraph.network import CompiledNetwork, PopulationInfo
from snngraph.neurons import NeuronParams
from snngraph.surrogates import Sigmoid, Surrogate
from snngraph.synapses import MANY_EDGES, EdgeParameters, SynapseGather


@dataclass(frozen=True)
class SNNState:
    """Where a run stopped: ``v`` = v[T−1] ``[K, B, N]`` (every state variable, ``v[0]`` = U),
    ``spikes`` = S[T−D … T−1] ``[D, B, N]``, ``inputs`` = X[T−Din … T−1] ``[Din, B, C]`` (layer
    time).  Pass it as ``state=`` to continue."""

    v: torch.Tensor
    spikes: torch.Tensor
    inputs: torch.Tensor
    elapsed: int = 0
    """Graph steps run before (0 for a run from rest): the onsets of the biases follow from it."""

    @property
    def u(self) -> torch.Tensor:
        """The membranes U[T−1] ``[B, N]``."""
        return self.v[0]

    def detach(self) -> SNNState:
        """The same state cut from the graph of the previous chunk (truncated BPTT)."""
        return SNNState(self.v.detach(), self.spikes.detach(), self.inputs.detach(), self.elapsed)


@dataclass(frozen=True)
class SNNOutput:
    """The run of ``steps`` graph steps: the whole layer, per-population views and the state.

    ``layer_spikes`` ``[steps + max_lag, B, N]`` and ``layer_states`` ``[steps + max_lag, K, B, N]``
    are in layer time (always time-major, like the state); :meth:`spikes`, :meth:`membrane` and
    :meth:`state_variable` give a population in graph time (lag undone), ``[steps, B, size]``, or
    ``[B, steps, size]`` when ``batch_first``.
    """

    net: CompiledNetwork
    steps: int
    layer_spikes: torch.Tensor
    layer_states: torch.Tensor
    state: SNNState
    batch_first: bool = False

    @property
    def layer_membranes(self) -> torch.Tensor:
        """U of the whole layer, ``[steps + max_lag, B, N]``."""
        return self.layer_states[:, 0]

    @property
    def time_dim(self) -> int:
        """The time dimension of :meth:`spikes` and :meth:`membrane`: 1 when ``batch_first``, else 0."""
        return 1 if self.batch_first else 0

    @classmethod
    def concat(cls, outputs: Sequence[SNNOutput]) -> SNNOutput:
        """Consecutive chunks of one run (each started from the previous chunk's state) as one output.

        A chunk of ``steps`` graph steps holds ``steps + max_lag`` layer steps, the last ``max_lag``
        run on zero input past its end; the first ``steps`` are the run's own.  So the whole run is
        the first ``steps`` layer steps of every chunk followed by the last chunk's tail, and its
        population views equal those of one unchunked run.
        """
        if not outputs:
            raise ValueError("SNNOutput.concat needs at least one SNNOutput")
        last = outputs[-1]

        def cat(name: str) -> torch.Tensor:
            return torch.cat([getattr(o, name)[: o.steps] for o in outputs[:-1]] + [getattr(last, name)])

        steps = sum(o.steps for o in outputs)
        return cls(last.net, steps, cat("layer_spikes"), cat("layer_states"), last.state, last.batch_first)

    def _view(self, tensor: torch.Tensor, name: Any, variable: int | None = None) -> torch.Tensor:
        """Population ``name``'s block of ``tensor`` (``layer_spikes``, or state ``variable`` of
        ``layer_states``) in graph time."""
        info = self.net.population(name)
        if info.kind == "input":
            raise ValueError(f"{name!r} is an input; it has no spikes or membrane of its own")
        time, neurons = slice(info.lag, info.lag + self.steps), slice(info.start, info.stop)
        index = (time, slice(None), neurons) if variable is None else (time, variable, slice(None), neurons)
        view = _Block.apply(tensor, index)
        return view.transpose(0, 1) if self.batch_first else view

    def spikes(self, name: Any) -> torch.Tensor:
        """Spikes of population ``name``, ``[steps, B, size]`` (``[B, steps, size]`` when batch_first)."""
        return self._view(self.layer_spikes, name)

    def membrane(self, name: Any) -> torch.Tensor:
        """Membrane potential of population ``name``, ``[steps, B, size]`` (``[B, steps, size]`` when
        batch_first)."""
        return self._view(self.layer_states, name, 0)

    def state_variable(self, name: Any, variable: str) -> torch.Tensor:
        """State variable ``variable`` (``"U"``, ``"J"``, ``"a"``, ``"W"``, …: the population's
        ``model.states``) of population ``name``, shaped like :meth:`membrane`."""
        info = self.net.population(name)
        if info.model is None or variable not in info.model.states:
            states = () if info.model is None else info.model.states
            raise ValueError(f"population {name!r} has the state variables {states}, not {variable!r}")
        return self._view(self.layer_states, name, info.model.states.index(variable))


class _Block(torch.autograd.Function):
    """``tensor[index]`` (basic indexing), copied, whose gradient is one zero tensor of
    ``tensor``'s shape with the block's gradient in place.  Through plain views (a select and two
    slices) autograd makes a zero-filled tensor per view: a population's view of a large layer
    then costs several fills and copies of the whole ``[T, K, B, N]`` (0.5 s of a 3 s training
    step of the N-MNIST-sized CNN of ``benchmarks/bench_conv.py``)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, index: tuple[Any, ...]) -> torch.Tensor:  # type: ignore[override]
        ctx.shape, ctx.index = tensor.shape, index
        return tensor[index].clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        full = _zeros(grad, ctx.shape)
        full[ctx.index] = grad
        return full, None


def _zeros(like: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Zeros of ``shape`` ``[…, N]`` in the dtype and on the device of ``like``.  CPU float tensors
    come from NumPy, neurons outermost in memory (returned as the ``[…, N]`` view): NumPy's large
    zero arrays are fresh pages, in huge pages where the kernel can, that cost only where they are
    written, and a population's block of neurons is then one contiguous stretch of them, while the
    rest reads as the kernel's zero page.  For the readout of the ``[104, 1, 32, 22682]`` layer of
    the N-MNIST CNN of ``benchmarks/bench_conv.py`` this was measured at 0.02 s against 0.55 s
    with the neurons innermost (whose block touches every page) and 0.2 s for torch's zeros
    (which writes every byte)."""
    if like.device.type == "cpu" and like.dtype in (torch.float32, torch.float64):
        dtype = np.float32 if like.dtype == torch.float32 else np.float64
        return torch.from_numpy(np.moveaxis(np.zeros((shape[-1], *shape[:-1]), dtype), 0, -1))
    return like.new_zeros(shape)


def _floats(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=float), dtype=dtype)


class SNN(nn.Module):
    """Run and train a :class:`~snngraph.network.CompiledNetwork`.

    ``out = model(x, state=None)`` with ``x`` ``[T, B, n_inputs]`` (inputs concatenated in the
    order they were added) or a dict ``{input name: [T, B, size]}``.  The layer runs
    ``T + max_lag`` steps, so that every population has its ``T`` graph steps.

    ``batch_first=True`` (as in ``torch.nn.RNN``): ``x`` is ``[B, T, …]`` and the population views
    ``out.spikes(name)``/``out.membrane(name)`` are ``[B, T, size]``; the layer tensors
    ``out.layer_spikes``/``out.layer_membranes`` and the state stay time-major.

    ``backend``: ``"auto"`` (``cpu`` for CPU tensors, ``triton`` for CUDA ones), ``"cpu"``,
    ``"triton"``, ``"reference"``, or an options object (:class:`~snngraph.backends.CpuOptions`,
    :class:`~snngraph.backends.TritonOptions`) that chooses and configures one.  The module owns
    its :attr:`plan` (built on the first call, again after ``.to()`` or ``load_state_dict``).

    ``learn`` names the neuron parameters that train (any of :data:`~snngraph.kinds.NAMED` that
    a population of the network has: ``"alpha"``, ``"theta"``, ``"bias"``, ``"v_leak"``,
    ``"alpha_syn"``, ``"alpha_adapt"``, ``"adapt"``, ``"a"``, ``"b"``); each becomes a Parameter
    ``[N]`` of that name (``model.alpha``, …), one value per neuron, and the neuron table is built
    from them on every call, so autograd carries the gradient through the map of
    :mod:`snngraph.kinds`.  ``learn_alpha``/``learn_theta`` add ``"alpha"``/``"theta"``.

    ``model.weights`` holds the edges' tensors by name (``"pre->post"``, see
    :func:`~snngraph.synapses.edge_names`): a dense edge's ``(post, pre)`` matrix, a sparse edge's
    values ``[nnz]`` (order of ``weight.tocoo()``), a shared edge's 1-D values; Parameters for the
    edges that train, buffers for the fixed ones (``trainable=False``).  They are what optimizer
    parameter groups, freezing (``requires_grad_(False)``), pruning and ``state_dict`` see;
    :meth:`weight` gives an edge's tensor by its end points.  ``model.w_in``/``model.w_rec`` are
    the flat synapse weights gathered from them (read-only, not Parameters).

    ``flat_weights=True`` stores the edges' values concatenated instead: ``model.weights`` holds
    ``"input"`` and ``"recurrent"`` (the edges that train) and ``"input_fixed"``/``"recurrent_fixed"``
    (the fixed ones), and :meth:`weight` gives views of them.  Choose it for networks of many small
    edges (a neuron-level graph): one Parameter per edge costs an autograd leaf and an optimizer
    entry each, which dominates a step when there are thousands of them; per-edge parameter
    groups, freezing and pruning then act on the whole target.  Without it, a network with more
    than :data:`~snngraph.synapses.MANY_EDGES` edges that train gets a warning that says so.

    Edges that learn their delays (``connect(..., learn_delay=True)``) have their real delays in
    ``model.synapse_delays``, Parameters shaped like the edges' weights (:meth:`delays`,
    :meth:`delay_grad`); each call clamps them into their ranges, weights the taps by the
    delay kernels and, when a tap window moved, rebuilds the taps' delays and the plan
    (:mod:`snngraph.delays`); :meth:`set_delay_sigma` sets the Gaussian kernels' width.

    ``dtype`` (default: torch's default dtype) is the dtype of weights and neuron parameters;
    build with ``dtype=torch.float64`` rather than calling ``.double()`` later to keep every digit
    of the compiled float64 values.

    ``saved_membranes=torch.bfloat16`` (or ``torch.float16``) stores the states saved for the
    backward pass in that dtype, halving that memory on the fused backends; spikes are kept
    exact, the surrogate sees the states to within a unit or two of the storage dtype.
    """

    def __init__(
        self,
        net: CompiledNetwork,
        *,
        surrogate: Surrogate | None = None,
        detach_reset: bool = False,
        backend: BackendChoice = "auto",
        learn: Sequence[str] = (),
        learn_alpha: bool = False,
        learn_theta: bool = False,
        dtype: torch.dtype | None = None,
        saved_membranes: torch.dtype | None = None,
        batch_first: bool = False,
        flat_weights: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(net, CompiledNetwork):
            raise TypeError(f"SNN takes a CompiledNetwork (snngraph.compile(graph)), got {type(net).__name__}")
        surrogate = Sigmoid(25.0) if surrogate is None else surrogate
        check_options(backend, surrogate, saved_membranes)
        self.net, self.surrogate, self.detach_reset, self.backend = net, surrogate, detach_reset, backend
        self.saved_membranes, self.batch_first = saved_membranes, bool(batch_first)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        self.weights = EdgeParameters(net, dtype, flat=flat_weights)
        self.gather = SynapseGather(net, self.weights.slots, dtype)
        self.synapse_delays: EdgeParameters | None = None
        self.delay_taps: DelayTaps | None = None
        if any(e.delays is not None for e in net.edges):
            self.synapse_delays = EdgeParameters(net, dtype, flat=flat_weights, delays=True)
            self.delay_taps = DelayTaps(net)
        trained = sum(e.trainable for e in net.edges)
        if not flat_weights and trained > MANY_EDGES:
            warnings.warn(
                f"SNN: {trained} edges train, one Parameter each, and their autograd and optimizer "
                f"overhead will dominate a step; SNN(net, flat_weights=True) stores them as one tensor "
                f"per target",
                stacklevel=2,
            )
        if isinstance(learn, str):
            raise TypeError(f"learn takes a sequence of parameter names, e.g. learn=({learn!r},)")
        learned = set(learn) | {name for name, flag in (("alpha", learn_alpha), ("theta", learn_theta)) if flag}
        absent = sorted(learned - set(net.parameters))
        if absent:
            raise ValueError(
                f"learn: {absent} are not parameters of this network's neurons; it has {list(net.parameters)}"
            )
        self.learned = tuple(name for name in net.parameters if name in learned)
        for name, values in net.parameters.items():
            value = _floats(values, dtype)
            if name in learned:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.register_buffer("table", _floats(net.neurons, dtype))  # the compiled neuron table [P, N]
        for name in INDICES:
            self.register_buffer(name, torch.as_tensor(getattr(net, name), dtype=torch.long))
        self._plan: Plan | None = None
        self.register_load_state_dict_post_hook(_drop_plan)

    @property
    def plan(self) -> Plan:
        """The layer's :class:`~snngraph.backends.Plan` on the module's device and dtype.

        Built on first use and kept while the index buffers are the same tensors in the same
        dtype: ``.to()``/``.cuda()``/``.double()`` that move or cast them make a new plan, and
        ``load_state_dict`` (which may load other indices into them) drops it.
        """
        plan = self._plan
        if plan is None or plan.layer.rec_post is not self.rec_post or plan.dtype != self.table.dtype:
            self._plan = prepare_layer(self._layer(), self.backend, self.table.dtype)
        return self._plan

    def _layer(self) -> LayerSpec:
        return layer_spec(
            self.net,
            [getattr(self, name) for name in INDICES],
            surrogate=self.surrogate,
            detach_reset=self.detach_reset,
            saved_membranes=self.saved_membranes,
            tied_convolutions=True,  # the gather reads each kernel tap's synapses as one value
            fixed_edges=True,  # a fixed edge's weights are buffers
        )

    def _synapse_weights(self, target: str) -> torch.Tensor:
        weights = self.gather(self.weights, target, self.table)
        return weights if self.delay_taps is None else self.delay_taps(self.synapse_delays, target, weights)

    @property
    def w_in(self) -> torch.Tensor:
        """The weights of the input synapses ``[n_in]``, gathered from :attr:`weights` (times the
        delay kernels' factors on the taps of edges that learn their delays, which are clamped
        into their ranges first, as a call does; read-only: change or train the edges' tensors
        instead)."""
        self._follow_delays()
        return self._synapse_weights("input")

    @property
    def w_rec(self) -> torch.Tensor:
        """The weights of the recurrent synapses ``[n_rec]``, gathered from :attr:`weights`."""
        self._follow_delays()
        return self._synapse_weights("recurrent")

    def _follow_delays(self) -> None:
        """Clamp the real delays into their ranges and, where a window start moved (an optimizer
        step, a load), rebuild the taps' compiled delays and, with them, the plan (reusing what
        the backend derived from the indices that did not change)."""
        if self.delay_taps is None:
            return
        self.delay_taps.project_(self.synapse_delays)
        moved = False
        for target, name in (("input", "in_delay"), ("recurrent", "rec_delay")):
            new = self.delay_taps.compiled_delays(self.synapse_delays, target, getattr(self, name))
            if new is not None:
                setattr(self, name, new)
                moved = True
        plan = self._plan
        if moved and plan is not None:
            current = plan.layer.rec_post is self.rec_post and plan.dtype == self.table.dtype
            self._plan = (
                prepare_layer(self._layer(), self.backend, self.table.dtype, previous=plan) if current else None
            )

    def neuron_params(self, elapsed: int = 0) -> NeuronParams:
        """The neuron table of a call that continues a run after ``elapsed`` graph steps
        (:func:`snngraph.functional.neuron_params` with the learned parameters)."""
        learned = {name: getattr(self, name) for name in self.learned}
        return neuron_params(self.net, self.table, learned, elapsed=elapsed)

    def extra_repr(self) -> str:
        return (
            f"neurons={self.net.n_neurons}, inputs={self.net.n_inputs}, "
            f"synapses={self.in_post.numel()}+{self.rec_post.numel()}, surrogate={self.surrogate}, "
            f"detach_reset={self.detach_reset}, backend={self.backend!r}"
        )

    def _input_tensor(self, x: torch.Tensor | Mapping[Any, torch.Tensor]) -> torch.Tensor:
        """``x`` checked and concatenated as the time-major ``[T, B, n_inputs]`` of the layer."""
        layout = "[B, T, {}]" if self.batch_first else "[T, B, {}]"
        inputs = self.net.inputs
        if isinstance(x, Mapping):
            by_name = {p.name: p for p in inputs}
            x = {name: _flat_channels(value, by_name.get(name)) for name, value in x.items()}
        elif len(inputs) == 1 and inputs[0].shape is not None:
            x = _flat_channels(x, inputs[0])
        if isinstance(x, Mapping):
            names = [p.name for p in self.net.inputs]
            unknown = [k for k in x if k not in names]
            missing = [n for n in names if n not in x]
            if unknown or missing:
                raise ValueError(f"input dict: unknown names {unknown}, missing names {missing}; expected {names}")
            for p in self.net.inputs:
                if not isinstance(x[p.name], torch.Tensor) or x[p.name].ndim != 3 or x[p.name].shape[2] != p.size:
                    shape = tuple(x[p.name].shape) if isinstance(x[p.name], torch.Tensor) else type(x[p.name])
                    raise ValueError(f"input {p.name!r}: expected a tensor {layout.format(p.size)}, got {shape}")
            x = torch.cat([x[p.name] for p in self.net.inputs], dim=2)
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"x must be a torch.Tensor {layout.format('n_inputs')} or a dict of them, got {type(x).__name__}"
            )
        shape = tuple(x.shape)  # as given, for the message
        if x.ndim == 3 and self.batch_first:
            x = x.transpose(0, 1)
        if x.ndim != 3 or x.shape[2] != self.net.n_inputs or x.shape[0] < 1:
            sizes = f"[B, T >= 1, {self.net.n_inputs}]" if self.batch_first else f"[T >= 1, B, {self.net.n_inputs}]"
            raise ValueError(f"x must have shape {layout.format('n_inputs')} = {sizes}, got {shape}")
        dtype, device = self.table.dtype, self.table.device
        if x.dtype != dtype:
            raise TypeError(f"x has dtype {x.dtype} but the model is {dtype}; use x.to({dtype}) or model.to({x.dtype})")
        if x.device != device:
            raise ValueError(f"x is on {x.device} but the model is on {device}; move one of them")
        return x

    def initial_state(self, batch: int) -> SNNState:
        """The resting state: zero states, no spikes, no past input."""
        kw = {"dtype": self.table.dtype, "device": self.table.device}
        n, c = self.net.n_neurons, self.net.n_inputs
        return SNNState(
            torch.zeros(self.net.n_states, batch, n, **kw),
            torch.zeros(self.net.max_delay, batch, n, **kw),
            torch.zeros(self.net.max_input_delay, batch, c, **kw),
        )

    def _check_state(self, state: SNNState, batch: int) -> None:
        expected = self.initial_state(batch)
        for field in ("v", "spikes", "inputs"):
            got, want = getattr(state, field), getattr(expected, field)
            if got.shape != want.shape or got.dtype != want.dtype or got.device != want.device:
                raise ValueError(
                    f"state.{field} must be {tuple(want.shape)} {want.dtype} on {want.device} "
                    f"(batch {batch}), got {tuple(got.shape)} {got.dtype} on {got.device}"
                )

    def forward(self, x: torch.Tensor | Mapping[Any, torch.Tensor], state: SNNState | None = None) -> SNNOutput:
        x = self._input_tensor(x)
        self._follow_delays()
        steps, batch = x.shape[:2]
        if state is None:
            state = self.initial_state(batch)
        self._check_state(state, batch)
        padding = x.new_zeros(self.net.max_lag, batch, self.net.n_inputs)
        inputs_seen = torch.cat([state.inputs, x])
        layer_x = torch.cat([inputs_seen, padding])
        neurons = self.neuron_params(state.elapsed)
        v, s = lif_layer(
            layer_x,
            self._synapse_weights("input"),
            self._synapse_weights("recurrent"),
            neurons,
            state.v,
            state.spikes,
            self.plan,
        )
        depth = self.net.max_delay  # the state keeps S[steps − D … steps − 1]
        spikes = s[steps - depth : steps] if steps >= depth else torch.cat([state.spikes[steps:], s[:steps]])
        new_state = SNNState(
            v=v[steps - 1],
            spikes=spikes,
            inputs=inputs_seen[steps : steps + self.net.max_input_delay],
            elapsed=state.elapsed + steps,
        )
        return SNNOutput(self.net, steps, s, v, new_state, self.batch_first)

    def edge_name(self, pre: Any, post: Any) -> str:
        """The name of edge ``pre → post`` in :attr:`weights` (and, after ``weights.``, in
        ``state_dict``); with ``flat_weights`` the edge has no tensor of its own and this is the
        name of the one that holds its range."""
        edge = self.net.edge(pre, post)  # a KeyError naming the edge if there is none
        return self.weights.slots[edge].tensor

    def weight(self, pre: Any, post: Any) -> torch.Tensor:
        """The tensor of edge ``pre → post`` in its natural shape: the Parameter itself (or the buffer
        of a fixed edge), so that changes to it under ``torch.no_grad()`` change the model; take
        ``.detach().clone()`` for a copy.  A dense edge's is ``(post, pre)``, a sparse edge's the
        values ``[nnz]`` in the order of ``weight.tocoo()``, a shared edge's its 1-D values.  With
        ``flat_weights`` it is a view of the edge's range of the stored tensor (changes to it
        change the model too)."""
        return self.weights.edge(self.net.edge(pre, post))

    def weight_grad(self, pre: Any, post: Any) -> torch.Tensor | None:
        """The accumulated gradient of edge ``pre → post``'s tensor (its ``.grad``, shaped like
        :meth:`weight`; ``None`` before a backward pass and for an edge that does not train)."""
        edge = self.net.edge(pre, post)
        grad = self.weights[self.edge_name(pre, post)].grad
        return None if grad is None else self.weights.edge(edge, grad)

    def _learning_edge(self, pre: Any, post: Any) -> Any:
        edge = self.net.edge(pre, post)
        if edge.delays is None:
            raise ValueError(f"edge {pre!r} -> {post!r} does not learn its delays; connect it with learn_delay=True")
        return edge

    def delays(self, pre: Any, post: Any) -> torch.Tensor:
        """The real delays of edge ``pre → post`` (one that learns them), shaped like :meth:`weight`:
        the Parameter itself (or, with ``flat_weights``, a view of it), clamped into the edge's
        ``delay_range`` at every call."""
        edge = self._learning_edge(pre, post)
        return self.synapse_delays.edge(edge)

    def delay_grad(self, pre: Any, post: Any) -> torch.Tensor | None:
        """The accumulated gradient of :meth:`delays` (``None`` before a backward pass)."""
        edge = self._learning_edge(pre, post)
        grad = self.synapse_delays[self.synapse_delays.slots[edge].tensor].grad
        return None if grad is None else self.synapse_delays.edge(edge, grad)

    def set_delay_sigma(self, sigma: float) -> None:
        """Set the width σ (steps) of every Gaussian delay kernel; 0 makes it the linear kernel on
        its window's taps (:class:`snngraph.delays.SigmaSchedule` anneals it)."""
        if self.delay_taps is None:
            raise ValueError("no edge of this network learns its delays (connect(..., learn_delay=True))")
        self.delay_taps.set_sigma(sigma)

    def to_graph(self) -> Graph:
        """A :class:`Graph` of the network with the current (trained) weights and neuron parameters.

        Every edge comes back in the form it was given (dense, sparse or shared, fixed or not).
        Delays are the graph's own (the compile lags taken back out); with
        ``zero_delay="promote"`` the promoted delays are what the model runs, so they are kept.
        """
        graph, net = Graph(), self.net
        values = {name: getattr(self, name).detach().cpu().double().numpy() for name in net.parameters}
        table = self.table.detach().cpu().double()
        for p in net.inputs:
            graph.add_input(p.name, p.size if p.shape is None else p.shape)
        for p in net.populations:
            attrs = {name: values[name][p.slice] for name in p.model.parameters}
            if p.model.kind == "neurons":
                blocks = neuron_blocks(table[:, p.slice], p.model.n_states)
                attrs.update({name: block.numpy() for name, block in blocks.items()})
            if p.model.kind == "adlif":
                attrs["symplectic"] = p.model.symplectic
            if p.shape is not None:
                attrs["shape"] = p.shape
            graph.nx.add_node(p.name, kind=p.kind, size=p.size, reset=p.model.reset, **attrs)
        self._follow_delays()
        for edge in net.edges:
            synapses, sl = net.synapses(edge.target), slice(edge.start, edge.start + edge.base_synapses)
            scale, index = net.synapse_scale(edge.target), net.synapse_index(edge.target)[sl]
            pre, post = net.population(edge.pre), net.population(edge.post)
            delay, learning = synapses.delay[sl] - post.lag + pre.lag, {}
            if edge.delays is not None:
                tau = self.delays(edge.pre, edge.post).detach().cpu().double().numpy()
                delay = np.round(tau).astype(np.int64).reshape(-1)[index]
                spec = dataclasses.replace(edge.delays, sigma=self.delay_taps.sigma[edge])
                learning = {"delays": spec, "delay_values": tau}
            spec = ProjectionSpec(
                edge.pre,
                edge.post,
                synapses.post[sl] - post.start,
                synapses.pre[sl] - pre.start,
                delay,
                self.weight(edge.pre, edge.post).detach().cpu().double().numpy(),
                index,
                edge.shape,
                edge.dense,
                edge.kind,
                edge.trainable,
                edge.conv,
                None if scale is None else scale[sl],
                **learning,
            )
            graph.add_projection(spec)
        return graph


def _flat_channels(x: Any, population: PopulationInfo | None) -> Any:
    """``x`` ``[T, B, *shape]`` of a shaped input population as ``[T, B, size]`` (C order, as
    ``flatten(2)``); anything else as it is (checked by the caller)."""
    shape = None if population is None else population.shape
    if isinstance(x, torch.Tensor) and shape is not None and x.ndim == 2 + len(shape) and x.shape[2:] == shape:
        return x.flatten(2)
    return x


def _drop_plan(module: nn.Module, incompatible_keys: Any) -> None:
    """After ``load_state_dict``: the loaded indices may differ, so the plan is rebuilt."""
    module._plan = None


__all__ = ["SNN", "SNNOutput", "SNNState"]
