"""snngraph: train spiking neural networks described as graphs.

A graph of populations and delayed projections compiles into one sparse recurrent layer
(the single layer view), which runs and trains with exact BPTT on the reference, cpu or triton
(GPU) backend; docs/design.md maps the modules.
"""

from snngraph import backends, datasets, delays, functional, kinds, losses, neurons, plot, surrogates, train
from snngraph.compiler import compile
from snngraph.graph import Graph, random_delays, random_weight
from snngraph.module import SNN, SNNOutput, SNNState
from snngraph.network import CompiledNetwork, load
from snngraph.nir import from_nir, to_nir

__version__ = "0.1.0"

__all__ = [
    "SNN",
    "CompiledNetwork",
    "Graph",
    "SNNOutput",
    "SNNState",
    "backends",
    "compile",
    "datasets",
    "delays",
    "from_nir",
    "functional",
    "kinds",
    "load",
    "losses",
    "neurons",
    "plot",
    "random_delays",
    "random_weight",
    "surrogates",
    "to_nir",
    "train",
]
