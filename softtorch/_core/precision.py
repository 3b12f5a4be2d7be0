"""Half precision: the dtypes whose operators compute in float32 and cast the result back.

Soft operators divide by the softness and sum many small terms; in float16 and bfloat16 that
overflows or cancels long before float32 would, so those inputs are computed in float32.
"""

from __future__ import annotations

import contextlib
import functools

import torch

__all__ = ["HALF_DTYPES", "is_half", "compute_dtype", "half_in_float32", "autocast_neutral"]

HALF_DTYPES = (torch.float16, torch.bfloat16)


def is_half(t: torch.Tensor) -> bool:
    """Whether ``t`` is float16 or bfloat16."""
    return t.dtype in HALF_DTYPES


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype an input of ``dtype`` is computed in: float32 for half precision, else ``dtype``."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def half_in_float32(fn):
    """Run ``fn(xt, ...)`` in float32 when ``xt`` is half precision: its half tensor arguments are
    cast to float32 and its tensor outputs (a tensor or a tuple of them) back to ``xt``'s dtype."""

    def up(a):
        return a.float() if isinstance(a, torch.Tensor) and is_half(a) else a

    @functools.wraps(fn)
    def run(xt, *args, **kwargs):
        if not is_half(xt):
            return fn(xt, *args, **kwargs)
        out = fn(xt.float(), *map(up, args), **{k: up(v) for k, v in kwargs.items()})
        if isinstance(out, tuple):
            return tuple(t.to(xt.dtype) for t in out)
        return out.to(xt.dtype)

    return run


def autocast_neutral(fn):
    """Run ``fn`` with autocast off: the operators follow their own precision rule under
    ``torch.autocast`` too.

    Autocast would run the matrix products inside an operator (the expectations of soft
    permutations, the transport solver's) in its lower precision and return them so: a float32
    input would come back in bfloat16 from some operators and methods and in float32 from others,
    and soft permutations at a small softness lose their sharpness in bfloat16. So an operator's
    result has its input's dtype, computed in :func:`compute_dtype` of it (half precision in
    float32), whether or not autocast is on; activations that autocast produced in half precision
    stay in it.
    """

    @functools.wraps(fn)
    def run(*args, **kwargs):
        cpu, cuda = torch.is_autocast_enabled("cpu"), torch.is_autocast_enabled("cuda")
        if not (cpu or cuda):
            return fn(*args, **kwargs)
        with torch.autocast("cpu", enabled=False) if cpu else contextlib.nullcontext():
            with torch.autocast("cuda", enabled=False) if cuda else contextlib.nullcontext():
                return fn(*args, **kwargs)

    return run
