"""Triton kernels of snngraph, installed as ``snngraph.kernels``.

Imported only by :mod:`snngraph.backends.triton`.  Importing the package adapts the interpreter of
the oldest supported Triton (:mod:`.compat`) before any kernel runs.
"""

from .compat import squeeze_interpreter_scalars

squeeze_interpreter_scalars()
