"""Triton kernels of snngraph, installed as ``snngraph.kernels``.

Imported only by :mod:`snngraph.backends.triton`.
"""
