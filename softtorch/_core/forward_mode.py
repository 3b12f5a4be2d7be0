"""Forward-mode AD for the library's ``torch.autograd.Function`` classes, in eager and compiled code.

A Function gets forward mode (``torch.func.jvp``, ``jacfwd``, ``hessian``, ``torch.autograd.forward_ad``)
from a ``jvp`` staticmethod, but Dynamo refuses to trace a Function that defines one
(``torch.compile(fullgraph=True)`` would break). So each Function defines its tangent rule as a
staticmethod named ``tangent`` (same signature as ``jvp``: ``ctx`` and one tangent per input,
tensors saved with ``ctx.save_for_forward``), and is called through :func:`apply`: eager code
runs a subclass whose ``jvp`` is that rule, compiled code the class itself (Dynamo traces the
forward and backward; forward mode inside a compiled region is not supported).
"""

from __future__ import annotations

import functools

import torch

__all__ = ["apply", "in_transform"]


@functools.cache
def _with_jvp(function: type) -> type:
    """``function`` with its ``tangent`` rule as the ``jvp`` that autograd's forward mode calls."""
    return type(
        function.__name__ + "ForwardMode",
        (function,),
        {"jvp": staticmethod(function.tangent), "__module__": function.__module__, "__doc__": function.__doc__},
    )


def apply(function: type, *args):
    """``function.apply(*args)``, with forward-mode AD outside ``torch.compile``."""
    if torch.compiler.is_compiling():
        return function.apply(*args)
    return _with_jvp(function).apply(*args)


def in_transform() -> bool:
    """Whether the code runs under ``torch.compile``, inside a ``torch.func`` transform (vmap, jvp,
    grad, ...) or inside a ``torch.autograd.forward_ad.dual_level``: there a Function needs a vmap
    rule, forward mode and no data-dependent branch."""
    return (
        torch.compiler.is_compiling()
        or torch._C._functorch.peek_interpreter_stack() is not None
        or torch.autograd.forward_ad._current_level >= 0
    )
