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
import inspect

import torch

__all__ = ["apply", "in_transform", "plain_eager"]

try:  # private torch helpers of Function.apply, used by the direct path of `apply` when present
    from torch._C import _are_functorch_transforms_active as _transforms_active
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead
except ImportError:
    _transforms_active = _unwrap_dead = None


@functools.cache
def _with_jvp(function: type) -> type:
    """``function`` with its ``tangent`` rule as the ``jvp`` that autograd's forward mode calls."""
    return type(
        function.__name__ + "ForwardMode",
        (function,),
        {"jvp": staticmethod(function.tangent), "__module__": function.__module__, "__doc__": function.__doc__},
    )


@functools.cache
def _arity(function: type) -> int:
    return len(inspect.signature(function.forward).parameters)


def apply(function: type, *args):
    """``function.apply(*args)``, with forward-mode AD outside ``torch.compile``.

    Outside any transform, and with every argument of ``forward`` given, it skips what
    ``Function.apply`` adds to the C++ ``apply`` there: binding the arguments to ``forward``'s
    signature for its defaults (``inspect.signature`` on every call, about 40 us, more than the
    kernels of a small input).
    """
    if torch.compiler.is_compiling():
        return function.apply(*args)
    cls = _with_jvp(function)
    if _transforms_active is None or _transforms_active() or len(args) != _arity(function):
        return cls.apply(*args)
    return super(torch.autograd.Function, cls).apply(*_unwrap_dead(args))


def in_transform() -> bool:
    """Whether the code runs under ``torch.compile``, inside a ``torch.func`` transform (vmap, jvp,
    grad, ...) or inside a ``torch.autograd.forward_ad.dual_level``: there a Function needs a vmap
    rule, forward mode and no data-dependent branch."""
    return (
        torch.compiler.is_compiling()
        or torch._C._functorch.peek_interpreter_stack() is not None
        or torch.autograd.forward_ad._current_level >= 0
    )


def plain_eager(*tensors) -> bool:
    """Whether code may take eager-only paths (host reads, in-place kernels without vmap or
    forward-mode rules) with ``tensors``: not :func:`in_transform` and none of them (``None``
    allowed) a functorch-wrapped tensor, as a cotangent from ``torch.func`` can be."""
    if in_transform():
        return False
    return not any(t is not None and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)
