"""Argument checks shared by every operator.

Each check raises before any work is done, with a message that names the argument, what was
expected and what was received.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch

__all__ = [
    "MODES",
    "SOFT_MODES",
    "check_broadcast",
    "check_choice",
    "check_dim",
    "check_float_tensor",
    "check_int",
    "check_mode",
    "check_nonnegative",
    "check_options",
    "check_positive",
    "check_positive_int",
    "check_quantile_level",
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
    check_int(name, dim)
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise ValueError(f"{name} must be in [{-size}, {size - 1}] for a tensor with {ndim} dimensions, got {dim}")
    return int(dim) % size


def check_positive_int(name: str, value, low: int = 1, high: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[low, high]``."""
    check_int(name, value)
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f", {high}"
        bracket = "]" if high is not None else ", inf)"
        raise ValueError(f"{name} must be in [{low}{upper}{bracket}, got {value}")
    return int(value)


def check_broadcast(**tensors: torch.Tensor) -> None:
    """Raise a ``ValueError`` naming every argument and its shape if the tensors do not broadcast."""
    try:
        torch.broadcast_shapes(*(t.shape for t in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{name} of shape {tuple(t.shape)}" for name, t in tensors.items())
        raise ValueError(f"arguments must broadcast together, got {shapes}") from None


def check_int(name: str, value) -> int:
    """Return ``value`` if it is an int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def check_nonnegative(name: str, value) -> float:
    """Return ``value`` as a float if it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a nonnegative number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(float(value)) and value >= 0):
        raise ValueError(f"{name} must be a nonnegative finite number, got {value!r}")
    return float(value)


def check_positive(name: str, value) -> float:
    """Return ``value`` as a float if it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(float(value)) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_options(name: str, options, checks: dict, aliases: dict | None = None) -> dict:
    """Validate a dict of keyword options: ``None`` or a mapping whose keys are in ``checks``.

    ``checks`` maps each allowed key to ``check(label, value) -> value``; ``aliases`` maps other
    accepted spellings to those keys. Returns a new dict with the canonical keys.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"{name} must be a dict or None, got {type(options).__name__} {options!r}")
    aliases = aliases or {}
    checked = {}
    for key, value in options.items():
        canonical = aliases.get(key, key)
        if canonical not in checks:
            allowed = ", ".join(repr(k) for k in (*checks, *aliases))
            raise ValueError(f"{name} accepts the keys {allowed}, got {key!r}")
        checked[canonical] = checks[canonical](f"{name}[{key!r}]", value)
    return checked


def check_quantile_level(q) -> None:
    """``q`` must be a number or a 0-d/1-D floating tensor with values in [0, 1].

    Tensor values are checked eagerly (as :func:`torch.quantile` does), except while compiling.
    """
    if isinstance(q, torch.Tensor):
        if q.dim() > 1:
            raise ValueError(f"q must be a float or a 0-d/1-D tensor, got a tensor of shape {tuple(q.shape)}")
        if q.is_complex():
            raise TypeError(f"q must be real, got dtype {q.dtype}")
        if not _is_compiling() and q.numel() and not bool(((q >= 0) & (q <= 1)).all()):
            raise ValueError(f"q must lie in [0, 1], got {q.tolist()}")
        return
    if isinstance(q, bool) or not isinstance(q, numbers.Real):
        raise TypeError(f"q must be a float in [0, 1] or a tensor, got {type(q).__name__} {q!r}")
    if not 0.0 <= float(q) <= 1.0:
        raise ValueError(f"q must lie in [0, 1], got {q!r}")
