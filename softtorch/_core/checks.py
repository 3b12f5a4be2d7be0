"""Argument checks shared by every operator.

Each check raises before any work is done, with a message that names the argument, what was
expected and what was received.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "MODES",
    "SOFT_MODES",
    "check_choice",
    "check_dim",
    "check_float_tensor",
    "check_mode",
    "check_positive_int",
    "check_softness",
]

MODES = ("hard", "smooth", "c0", "c1", "c2")
SOFT_MODES = ("smooth", "c0", "c1", "c2")


def check_choice(name: str, value, allowed) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise naming ``name``."""
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_mode(mode) -> str:
    """Validate ``mode`` against :data:`MODES`."""
    return check_choice("mode", mode, MODES)


def _is_compiling() -> bool:
    return torch.compiler.is_compiling()


def check_softness(softness):
    """Validate ``softness``: a positive finite number, or a floating tensor of such numbers.

    Python numbers are returned as ``float``. Tensors are returned unchanged; their values are
    checked eagerly on the CPU (on other devices the check would need a host sync, so it is
    skipped, and a learnable softness is positive by construction).
    """
    if isinstance(softness, torch.Tensor):
        if not softness.is_floating_point():
            raise TypeError(
                f"softness must be a float or a floating-point tensor, got a tensor of dtype {softness.dtype}"
            )
        if softness.device.type == "cpu" and not _is_compiling() and softness.numel() > 0:
            bad = ~(torch.isfinite(softness) & (softness > 0))
            if bool(bad.any()):
                raise ValueError(
                    f"softness must be positive and finite, got a tensor containing {softness[bad].flatten()[0].item()}"
                )
        return softness
    if isinstance(softness, bool) or not isinstance(softness, numbers.Real):
        raise TypeError(
            f"softness must be a positive finite float or a tensor, got {type(softness).__name__} {softness!r}"
        )
    value = float(softness)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"softness must be a positive finite number, got {softness!r}")
    return value


def check_float_tensor(name: str, x) -> torch.Tensor:
    """Return ``x`` as a floating tensor: integer and bool tensors are promoted to the default
    float dtype, complex tensors are refused."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{name} must be a real tensor, got complex dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


def check_dim(dim, ndim: int, name: str = "dim") -> int:
    """Normalize ``dim`` for a tensor with ``ndim`` dimensions (a 0-d tensor accepts 0 and -1)."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(dim).__name__} {dim!r}")
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise ValueError(f"{name} must be in [{-size}, {size - 1}] for a tensor with {ndim} dimensions, got {dim}")
    return int(dim) % size


def check_positive_int(name: str, value, low: int = 1, high: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f", {high}"
        bracket = "]" if high is not None else ", inf)"
        raise ValueError(f"{name} must be in [{low}{upper}{bracket}, got {value}")
    return int(value)
