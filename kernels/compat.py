"""What one supported Triton release needs so that these kernels run under its interpreter.

Triton 3.6's interpreter holds every scalar — a kernel argument, a reduction, ``t + 1`` — as a
one-element array and turns a loop bound into a Python int with ``int(array)``, which NumPy ≥ 2.4
refuses for arrays with a dimension (older NumPy warns).  Every ``for … in range(bound)`` (and
``tl.range``) over a runtime bound then fails when interpreted, while the compiled kernel is
fine.  Triton 3.7 squeezes the array first; :func:`squeeze_interpreter_scalars` does the same on
3.6, so the kernels keep the runtime loop bounds that compile to ``scf.for`` loops (a ``while``
loop would dodge the conversion, but compiles to ``scf.while``, which Triton's pipelining leaves
alone).
"""

import triton

INDEX_SQUEEZED = (3, 7)
"""The first Triton whose interpreter converts a scalar loop bound with ``int(array.squeeze())``."""


def triton_version() -> tuple[int, int]:
    """``(major, minor)`` of the installed Triton."""
    major, minor = triton.__version__.split(".")[:2]
    return int(major), int(minor)


def squeeze_interpreter_scalars() -> None:
    """Give the interpreter's tensors Triton 3.7's ``__index__`` (no-op from 3.7 on).

    The interpreter sets ``tl.tensor.__index__`` in ``_patch_lang_tensor`` for the duration of
    each launch (and restores it after); the wrapper sets the squeezing one right after it, through
    the same restoring scope.
    """
    if triton_version() >= INDEX_SQUEEZED:
        return
    from triton.runtime import interpreter

    patch_tensor = interpreter._patch_lang_tensor

    def patch_squeezed(tensor: type, scope: "interpreter._LangPatchScope") -> None:
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    interpreter._patch_lang_tensor = patch_squeezed
