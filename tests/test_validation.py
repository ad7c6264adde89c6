"""Bad input gets a clear error that names the node or edge and what to change."""

from __future__ import annotations

import json
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from old_formats import before_version_4

import snngraph
from snngraph import SNN, Graph
from snngraph.network import FORMAT_VERSION


def _pair() -> Graph:
    g = Graph()
    g.add_input("x", 2)
    g.add_lif("h", 3)
    return g


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda g: g.add_lif("h", 2), ValueError, "node 'h' exists already"),
        (lambda g: g.add_lif("a", 0), ValueError, "node 'a': size must be a positive int"),
        (lambda g: g.add_lif("a", 2.5), ValueError, "node 'a': size must be a positive int"),
        (lambda g: g.add_lif("a", 2, reset="hard"), ValueError, r"node 'a': unknown reset 'hard'; choose one of"),
        (
            lambda g: g.add_lif("a", 2, alpha=[0.5, 0.6, 0.7]),
            ValueError,
            r"node 'a': alpha must be a scalar or have one value per neuron \(shape \(2,\)\)",
        ),
        (
            lambda g: g.add_lif("a", 2, alpha=1.5),
            ValueError,
            r"node 'a': alpha \(a decay per step\) must lie in \[0, 1\]",
        ),
        (lambda g: g.add_lif("a", 2, theta=0.0), ValueError, r"node 'a': theta \(threshold\) must be positive"),
        (lambda g: g.add_lif("a", 2, theta=float("nan")), ValueError, "node 'a': theta contains NaN or inf"),
        (lambda g: g.connect("x", "nope"), ValueError, "unknown node 'nope'; add it first"),
        (
            lambda g: g.connect("x", "h", weight=np.ones((2, 3))),
            ValueError,
            r"edge 'x' -> 'h': weight must have shape \(post, pre\) = \(3, 2\), got \(2, 3\)",
        ),
        (
            lambda g: g.connect("x", "h", weight=np.full((3, 2), np.nan)),
            ValueError,
            "edge 'x' -> 'h': weight contains NaN or inf",
        ),
        (lambda g: g.connect("x", "h", delay=-1), ValueError, r"edge 'x' -> 'h': delays must be >= 0"),
        (lambda g: g.connect("x", "h", delay=1.5), ValueError, r"edge 'x' -> 'h': delays must be integers"),
        (
            lambda g: g.connect("x", "h", weight=np.ones((3, 2)), delay=np.ones((2, 2), int)),
            ValueError,
            r"edge 'x' -> 'h': delay must be an int or an int array of shape \(3, 2\)",
        ),
        (
            lambda g: g.connect("x", "h", weight=np.ones((3, 2)), density=0.5),
            ValueError,
            "give either weight or density",
        ),
        (lambda g: g.connect("x", "h", density=1.5), ValueError, r"density must lie in \(0, 1\]"),
        (lambda g: g.connect("h", "x"), ValueError, "edge 'h' -> 'x' enters input 'x'"),
        (
            lambda g: g.connect("x", "h", weight=np.full((3, 2), 0.5 + 0.1j)),
            ValueError,
            r"edge 'x' -> 'h': weight has the complex dtype complex128; .*pass weight\.real",
        ),
        (
            lambda g: g.connect("x", "h", weight=[[0.5, 0.2], [1j, 0.0], [0.0, 0.1]]),
            ValueError,
            "edge 'x' -> 'h': weight has the complex dtype complex128",
        ),
        (
            lambda g: g.connect("x", "h", weight=torch.ones(3, 2, dtype=torch.complex64)),
            ValueError,
            r"edge 'x' -> 'h': weight has the complex dtype torch\.complex64",
        ),
        (
            lambda g: g.connect("x", "h", weight=sp.coo_array(np.eye(3, 2) * (1 + 0j))),
            ValueError,
            "edge 'x' -> 'h': weight has the complex dtype complex128",
        ),
        (lambda g: g.connect("x", "h", delay=True), ValueError, "edge 'x' -> 'h': delays must be integers .*booleans"),
        (
            lambda g: g.connect("x", "h", weight=np.ones((3, 2)), delay=np.ones((3, 2), bool)),
            ValueError,
            "edge 'x' -> 'h': delays must be integers .*booleans",
        ),
        (
            lambda g: g.connect("x", "h", weight=np.ones((3, 2)), delay=torch.zeros(3, 2, dtype=torch.bool)),
            ValueError,
            "edge 'x' -> 'h': delays must be integers .*booleans",
        ),
        (
            lambda g: g.connect("x", "h", weight=sp.coo_array(np.eye(3, 2)), delay=np.array([True, False])),
            ValueError,
            "edge 'x' -> 'h': delays must be integers .*booleans",
        ),
    ],
)
def test_graph_building_errors(build, error, message) -> None:
    g = _pair()
    with pytest.raises(error, match=message):
        build(g)


def test_edge_exists_already() -> None:
    g = _pair()
    g.connect("x", "h")
    with pytest.raises(ValueError, match="edge 'x' -> 'h' exists already"):
        g.connect("x", "h")


def test_sparse_delay_must_align_with_stored_entries() -> None:
    g = _pair()
    weight = sp.random(3, 2, density=1.0, random_state=0)
    with pytest.raises(ValueError, match=r"\(6,\) aligned with weight.tocoo\(\)"):
        g.connect("x", "h", weight=weight, delay=np.ones(4, int))


@pytest.mark.parametrize(
    ("node", "edge", "message"),
    [
        ({"kind": "neuron"}, None, r"node 'a': unknown kind 'neuron'; set the node attribute 'kind' to one of"),
        ({}, None, "node 'a': unknown kind None"),
        (
            {"kind": "li", "reset": "subtract"},
            None,
            "node 'a': a 'li' node does not spike, so its reset must be 'none'",
        ),
        ({"kind": "li"}, ("a", "b", {"weight": 1.0}), "edge 'a' -> 'b' leaves readout 'a'.*cannot be presynaptic"),
        ({"kind": "lif"}, ("a", "b", {"delay": 1}), "edge 'a' -> 'b': no weight"),
        ({"kind": "lif"}, ("a", "b", {"weight": 1.0, "delay": np.int64(-2)}), "edge 'a' -> 'b': delays must be >= 0"),
        ({"kind": "lif"}, ("a", "b", {"weight": 0.5 + 0j}), "edge 'a' -> 'b': weight has the complex dtype complex128"),
        ({"kind": "lif"}, ("a", "b", {"weight": 0.5, "delay": True}), "edge 'a' -> 'b': delays must be .*booleans"),
        ({"kind": "lif"}, ("a", "b", {"weight": 0.5, "delay": np.True_}), "edge 'a' -> 'b': delays must be .*booleans"),
    ],
)
def test_networkx_graph_errors(node, edge, message) -> None:
    g = nx.DiGraph()
    g.add_node("a", **node)
    g.add_node("b", kind="lif")
    if edge:
        g.add_edge(edge[0], edge[1], **edge[2])
    with pytest.raises(ValueError, match=message):
        snngraph.compile(g)


def test_graph_without_neurons() -> None:
    g = Graph()
    g.add_input("x", 1)
    with pytest.raises(ValueError, match="the graph has no neurons"):
        snngraph.compile(g)


def test_compile_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match=r"expected a snngraph\.Graph or networkx\.DiGraph, got dict"):
        snngraph.compile({})
    with pytest.raises(TypeError, match=r"expected a networkx\.DiGraph, got MultiDiGraph"):
        Graph.from_networkx(nx.MultiDiGraph())


def test_zero_delay_cycle_is_named_with_the_delay_it_needs() -> None:
    g = _pair()
    g.add_lif("k", 2)
    g.connect("h", "k", delay=0)
    g.connect("k", "h", delay=1)
    with pytest.raises(
        ValueError, match=r"cycle '(h' -> 'k' -> 'h|k' -> 'h' -> 'k)' has total delay 1 over 2 hops.*add 1 step"
    ):
        snngraph.compile(g)
    net = snngraph.compile(g, zero_delay="promote")
    assert net.rec_delay.min() == 1


def test_zero_delay_self_loop_is_a_cycle() -> None:
    g = _pair()
    g.connect("h", "h", delay=0)
    with pytest.raises(ValueError, match=r"cycle 'h' -> 'h' has total delay 0 over 1 hops.*add 1 step"):
        snngraph.compile(g)


def test_zero_delay_error_mode_names_the_edge() -> None:
    g = _pair()
    g.add_lif("k", 2)
    g.connect("x", "h", delay=0)  # from an input: always fine
    g.connect("h", "k", delay=0)
    with pytest.raises(ValueError, match="edge 'h' -> 'k' has zero-delay synapses between neurons"):
        snngraph.compile(g, zero_delay="error")
    with pytest.raises(ValueError, match="unknown zero_delay 'maybe'; choose one of"):
        snngraph.compile(g, zero_delay="maybe")


def _model(**kwargs) -> SNN:
    g = _pair()
    g.connect("x", "h")
    return SNN(snngraph.compile(g), **{"backend": "reference", **kwargs})


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (torch.zeros(5, 2, 3), ValueError, r"x must have shape \[T, B, n_inputs\] = \[T >= 1, B, 2\], got \(5, 2, 3\)"),
        (torch.zeros(5, 2), ValueError, r"x must have shape \[T, B, n_inputs\]"),
        (torch.zeros(0, 2, 2), ValueError, r"\[T >= 1, B, 2\], got \(0, 2, 2\)"),
        (
            torch.zeros(5, 2, 2, dtype=torch.float64),
            TypeError,
            r"x has dtype torch.float64 but the model is torch.float32",
        ),
        (np.zeros((5, 2, 2)), TypeError, "x must be a torch.Tensor"),
        ({"y": torch.zeros(5, 2, 2)}, ValueError, r"input dict: unknown names \['y'\], missing names \['x'\]"),
        ({"x": torch.zeros(5, 2, 3)}, ValueError, r"input 'x': expected a tensor \[T, B, 2\], got \(5, 2, 3\)"),
    ],
)
def test_module_input_errors(x, error, message) -> None:
    with pytest.raises(error, match=message):
        _model()(x)


def test_module_option_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown backend 'gpu'; choose one of \['auto', 'reference'"):
        _model(backend="gpu")
    with pytest.raises(TypeError, match=r"surrogate must be a snngraph\.surrogates\.Surrogate"):
        _model(surrogate=lambda x: x)
    with pytest.raises(TypeError, match="SNN takes a CompiledNetwork"):
        SNN(_pair())
    with pytest.raises(ValueError, match="Sigmoid: slope must be a positive finite number"):
        snngraph.surrogates.Sigmoid(-1.0)


def test_state_with_wrong_batch_is_refused() -> None:
    model = _model()
    state = model(torch.zeros(4, 3, 2)).state
    with pytest.raises(
        ValueError, match=r"state.v must be \(1, 2, 3\) torch.float32 on cpu \(batch 2\), got \(1, 3, 3\)"
    ):
        model(torch.zeros(4, 2, 2), state)


def test_unknown_population_and_edge_are_named() -> None:
    model = _model()
    out = model(torch.zeros(4, 1, 2))
    with pytest.raises(KeyError, match="no population 'z'"):
        out.spikes("z")
    with pytest.raises(ValueError, match="'x' is an input"):
        out.spikes("x")
    with pytest.raises(KeyError, match="no edge 'h' -> 'x'"):
        model.weight("h", "x")


def _saved_network(tmp_path: Path) -> Path:
    """A small network saved by ``CompiledNetwork.save``."""
    g = _pair()
    g.connect("x", "h")
    path = tmp_path / "net.npz"
    snngraph.compile(g).save(path)
    return path


def _rewritten(
    path: Path,
    change: Callable[[dict], object] | None = None,
    text: str | None = None,
    keep: tuple[str, ...] | None = None,
) -> Path:
    """A copy of a saved network with ``change(meta)`` as its metadata (JSON), or ``text``, and
    only the arrays in ``keep`` (default: all)."""
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files if keep is None or name in keep}
    meta = json.loads(str(arrays.pop("meta")))
    copy = path.with_name("changed.npz")
    np.savez(copy, meta=np.array(json.dumps(change(meta)) if change is not None else text), **arrays)
    return copy


def _damaged_member(path: Path) -> Path:
    """The saved network with one byte of the stored neuron table flipped (its CRC no longer matches)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("neurons.npy")
    raw = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    raw[info.header_offset + 30 + name_length + extra_length + info.file_size - 1] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def _replaced(path: Path, content: bytes) -> Path:
    """``path`` with ``content`` instead of the saved network."""
    path.write_bytes(content)
    return path


def _other_numpy_file(path: Path, suffix: str) -> Path:
    """A numpy file of another program beside ``path``: one array (``.npy``) or an archive (``.npz``)."""
    other = path.with_name(f"other{suffix}")
    (np.save if suffix == ".npy" else np.savez)(other, np.ones(3))
    return other


NOT_NETWORKS: dict[str, tuple[Callable[[Path], Path], str, type[BaseException] | None]] = {
    # name: (spoil the saved network, the reason the error gives, the error it is raised from)
    "truncated-half": (
        lambda p: _replaced(p, p.read_bytes()[: p.stat().st_size // 2]),
        "not an .npz archive, or a truncated one",
        zipfile.BadZipFile,
    ),
    "truncated-last-byte": (
        lambda p: _replaced(p, p.read_bytes()[:-1]),
        "not an .npz archive, or a truncated one",
        zipfile.BadZipFile,
    ),
    "empty": (lambda p: _replaced(p, b""), "not an .npz archive, or a truncated one", EOFError),
    "text": (lambda p: _replaced(p, b"population,size\nh,3\n"), "not an .npz archive, or a truncated one", ValueError),
    "npy": (lambda p: _other_numpy_file(p, ".npy"), "a single .npy array, not an .npz archive", None),
    "foreign-npz": (lambda p: _other_numpy_file(p, ".npz"), "the archive lacks the field 'meta'", None),
    "no-arrays": (
        lambda p: _rewritten(p, lambda meta: meta, keep=("meta",)),
        r"the archive lacks the fields \['neurons', 'in_post'",
        None,
    ),
    "damaged": (
        _damaged_member,
        r"a damaged archive \(BadZipFile: Bad CRC-32 for file 'neurons.npy'\)",
        zipfile.BadZipFile,
    ),
    "metadata-not-json": (
        lambda p: _rewritten(p, text="{'populations': []}"),
        "its metadata is not JSON",
        json.JSONDecodeError,
    ),
    "metadata-a-list": (
        lambda p: _rewritten(p, lambda meta: meta["populations"]),
        "its metadata is a JSON list, not an object",
        None,
    ),
    "metadata-without-edges": (
        lambda p: _rewritten(p, lambda meta: {k: v for k, v in meta.items() if k != "edges"}),
        r"its metadata is not what save writes \(KeyError: 'edges'\)",
        KeyError,
    ),
}


@pytest.mark.parametrize("case", list(NOT_NETWORKS))
def test_load_names_the_file_that_is_not_a_network(tmp_path: Path, case: str) -> None:
    """A truncated, damaged or foreign file: a ValueError naming the path and what is wrong with
    it, raised from the error that numpy, zipfile or the metadata gave."""
    spoil, reason, cause = NOT_NETWORKS[case]
    path = spoil(_saved_network(tmp_path))
    message = rf"{re.escape(repr(str(path)))} is not a snngraph network file .*: {reason}"
    with pytest.raises(ValueError, match=message) as info:
        snngraph.load(path)
    if cause is None:
        assert info.value.__cause__ is None
    else:
        assert isinstance(info.value.__cause__, cause)


def test_load_refuses_a_newer_format(tmp_path: Path) -> None:
    """``save`` writes :data:`FORMAT_VERSION`; a higher one asks for a newer snngraph."""
    path = _saved_network(tmp_path)
    with np.load(path) as data:
        assert json.loads(str(data["meta"]))["format_version"] == FORMAT_VERSION
    newer = _rewritten(path, lambda meta: {**meta, "format_version": FORMAT_VERSION + 1})
    message = rf"{re.escape(repr(str(newer)))} was written by a newer snngraph .*format {FORMAT_VERSION + 1};"
    with pytest.raises(ValueError, match=message):
        snngraph.load(newer)


def test_load_reads_a_version_1_file(tmp_path: Path) -> None:
    """A file without ``format_version`` has version 1's per-neuron arrays (α, θ, int8 reset codes
    subtract 0 / zero 1 / none 2, spiking flags) in place of the table: it loads as the same network."""
    g = Graph()
    g.add_input("x", 2)
    g.add_lif("a", 3, alpha=[0.5, 0.6, 0.7], theta=1.5, reset="zero")
    g.add_lif("b", 2, reset="none")
    g.add_lif("c", 2)
    g.add_li("out", 1)
    for pre, post in (("x", "a"), ("a", "b"), ("b", "c"), ("c", "out")):
        g.connect(pre, post, seed=1)
    net = snngraph.compile(g)
    net.save(tmp_path / "net.npz")
    arrays, meta = before_version_4(tmp_path / "net.npz")
    del arrays["neurons"], meta["format_version"]
    version_1 = tmp_path / "v1.npz"
    alpha, theta = np.r_[0.5, 0.6, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9], np.r_[1.5, 1.5, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    reset, spiking = np.array([1, 1, 1, 2, 2, 0, 0, 2], np.int8), np.r_[[True] * 7, False]
    np.savez(
        version_1, meta=np.array(json.dumps(meta)), alpha=alpha, theta=theta, reset=reset, spiking=spiking, **arrays
    )
    loaded = snngraph.load(version_1)
    np.testing.assert_array_equal(loaded.neurons, net.neurons)
    assert (loaded.populations, loaded.edges) == (net.populations, net.edges)
    np.testing.assert_array_equal(loaded.values, net.values)
    np.testing.assert_array_equal(loaded.rec_weight, net.rec_weight)


def test_load_leaves_a_missing_file_to_its_os_error(tmp_path: Path) -> None:
    """A path that does not exist is no format question: the usual FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        snngraph.load(tmp_path / "absent.npz")
