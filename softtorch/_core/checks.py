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
    "INTERPOLATIONS",
    "MODES",
    "SOFT_MODES",
    "SPARSE_EXPONENT",
    "check_bool",
    "check_bound",
    "check_broadcast",
    "check_choice",
    "check_dim",
    "check_flags",
    "check_float_tensor",
    "check_int",
    "check_mode",
    "check_nonnegative",
    "check_options",
    "check_positive",
    "check_positive_int",
    "check_quantile_level",
    "check_reduction_softness",
    "check_softness",
    "describe",
    "result_dtype",
]

#: The soft modes, the names of the relaxations (SPEC 3): the only place they are spelled out.
SOFT_MODES = ("smooth", "c0", "c1", "c2")
#: Every mode an operator accepts: ``"hard"`` (torch's own result) and the soft ones.
MODES = ("hard",) + SOFT_MODES
#: How a quantile between two order statistics is read (as :func:`torch.quantile`).
INTERPOLATIONS = ("linear", "lower", "higher", "nearest", "midpoint")
#: The power :math:`m` of the sparse modes' thresholded outputs :math:`[u - \tau]_+^m`: sparsemax
#: (c0), 1.5-entmax (c1) and 4/3-entmax (c2) on the simplex, the p-norm plans of the transport.
SPARSE_EXPONENT = {"c0": 1, "c1": 2, "c2": 3}


def describe(value) -> str:
    """The received value for an error message: its type and a short repr (dtype and shape for a tensor)."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of dtype {value.dtype} and shape {tuple(value.shape)}"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def check_choice(name: str, value, allowed) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ``ValueError`` naming ``name``.

    Anything else, a string or not, is an unknown choice (as SPEC 2 has it for ``mode`` and ``method``).
    """
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_bool(name: str, value, allow_none: bool = False):
    """Return ``value`` if it is a bool (or ``None`` when ``allow_none``), else raise naming ``name``."""
    if isinstance(value, bool) or (allow_none and value is None):
        return value
    expected = "True, False or None" if allow_none else "True or False"
    raise TypeError(f"{name} must be a bool ({expected}), got {describe(value)}")


def check_flags(**flags) -> None:
    """Every keyword argument must be a bool (:func:`check_bool` with its name)."""
    for name, value in flags.items():
        check_bool(name, value)


def check_mode(mode) -> str:
    """Validate ``mode`` against :data:`MODES`."""
    return check_choice("mode", mode, MODES)


def _is_compiling() -> bool:
    return torch.compiler.is_compiling()


def _is_vmapped(t: torch.Tensor) -> bool:
    """Whether ``t`` is batched by an enclosing ``torch.func.vmap`` (at any functorch level)."""
    functorch = torch._C._functorch
    while functorch.is_functorch_wrapped_tensor(t):
        if functorch.is_batchedtensor(t):
            return True
        t = functorch.get_unwrapped(t)
    return False


def _values_checkable(t: torch.Tensor) -> bool:
    """Whether the values of ``t`` can be inspected eagerly: on the CPU (no host sync), outside
    ``torch.compile`` and not batched by ``vmap`` (where a data-dependent branch is impossible)."""
    return t.device.type == "cpu" and t.numel() > 0 and not _is_compiling() and not _is_vmapped(t)


def check_softness(softness):
    """Validate ``softness``: a positive finite number, or a floating tensor of such numbers.

    Python numbers are returned as ``float``. Tensors are returned unchanged; their values are
    checked eagerly on the CPU (on other devices the check would need a host sync, so it is
    skipped, and a learnable softness is positive by construction; it is skipped as well while
    compiling and under ``vmap``).
    """
    if isinstance(softness, torch.Tensor):
        if not softness.is_floating_point():
            raise TypeError(
                f"softness must be a float or a floating-point tensor, got a tensor of dtype {softness.dtype}"
            )
        if _values_checkable(softness):
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
        raise TypeError(f"{name} must be a torch.Tensor, got {describe(x)}")
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


def check_quantile_level(q, high: float = 1) -> None:
    """``q`` must be a number or a 0-d/1-D floating tensor with values in ``[0, high]``.

    ``high`` is 1 for quantile levels and 100 for percentiles. Tensor values are checked eagerly
    (as :func:`torch.quantile` does), except while compiling and under ``vmap``.
    """
    span = f"[0, {high:g}]"
    if isinstance(q, torch.Tensor):
        if not q.is_floating_point():
            raise TypeError(f"q must be a float in {span} or a floating-point tensor, got {describe(q)}")
        if q.dim() > 1:
            raise ValueError(f"q must be a float or a 0-d/1-D tensor, got a tensor of shape {tuple(q.shape)}")
        if not _is_compiling() and not _is_vmapped(q) and q.numel() and not bool(((q >= 0) & (q <= high)).all()):
            raise ValueError(f"q must lie in {span}, got {q.tolist()}")
        return
    if isinstance(q, bool) or not isinstance(q, numbers.Real):
        raise TypeError(f"q must be a float in {span} or a tensor, got {type(q).__name__} {q!r}")
    if not 0.0 <= float(q) <= high:
        raise ValueError(f"q must lie in {span}, got {q!r}")


def check_bound(name: str, value) -> None:
    """``value`` must be ``None``, a real number or a real tensor (a bound such as clamp's ``min``)."""
    if value is None:
        return
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must be a real number or a real tensor, got {describe(value)}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, a real tensor or None, got {describe(value)}")


def check_reduction_softness(softness, shape, dim: int | None) -> None:
    """A tensor ``softness`` of an operator reducing ``dim`` of an input of ``shape`` must broadcast
    against that shape with ``dim`` set to 1, without adding dimensions (``dim=None``: one element)."""
    if not isinstance(softness, torch.Tensor) or softness.dim() == 0:
        return
    shape = tuple(shape)
    if dim is None:
        if softness.numel() != 1:
            raise ValueError(
                f"softness must be a float or a one-element tensor when dim=None reduces every element of the "
                f"input of shape {shape}, got a tensor of shape {tuple(softness.shape)}"
            )
        return
    target = shape[:dim] + (1,) + shape[dim + 1 :] if shape else (1,)
    given = tuple(softness.shape)
    padded = (1,) * (len(target) - len(given)) + given
    if len(given) > len(target) or any(s not in (1, t) for s, t in zip(padded, target)):
        raise ValueError(
            f"softness must broadcast against the input of shape {shape} with the reduced dim {dim} set to 1, "
            f"i.e. against {target}, got a tensor of shape {given}"
        )


def result_dtype(a: torch.Tensor, b: torch.Tensor) -> torch.dtype:
    """:func:`torch.result_type` of two floating tensors, in a form ``torch.compile`` traces.

    A 0-d tensor does not promote a dimensioned tensor of the same category (float), exactly as in
    torch's type promotion.
    """
    if (a.dim() == 0) == (b.dim() == 0):
        return torch.promote_types(a.dtype, b.dtype)
    return b.dtype if a.dim() == 0 else a.dtype
