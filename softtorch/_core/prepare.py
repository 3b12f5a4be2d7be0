"""Validating and arranging the common arguments of an elementwise operator in one call."""

from __future__ import annotations

import numbers

import torch

from .checks import check_broadcast, check_float_tensor, check_mode, check_softness, describe

__all__ = ["prepare_elementwise", "as_float_like", "as_operand"]


def prepare_elementwise(name: str, x, softness, mode):
    """Check ``mode`` and ``softness`` and promote ``x`` to float. Returns ``(x, softness, mode)``.

    A tensor ``softness`` must broadcast with ``x``.
    """
    mode = check_mode(mode)
    softness = check_softness(softness)
    x = check_float_tensor(name, x)
    if isinstance(softness, torch.Tensor):
        check_broadcast(**{name: x, "softness": softness})
    return x, softness, mode


def as_float_like(value, like: torch.Tensor, name: str) -> torch.Tensor:
    """Turn a number or tensor into a floating tensor on ``like``'s device (for bounds, second operands)."""
    if isinstance(value, torch.Tensor):
        value = check_float_tensor(name, value)
        return value.to(device=like.device)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__} {value!r}")
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def as_operand(name: str, value, like: torch.Tensor) -> torch.Tensor:
    """An operand of a binary op as a floating tensor: a tensor as it is (promoted to float), or,
    as in torch's binary ops, a Python number as a 0-d tensor of the floating ``like``'s dtype and
    device."""
    if isinstance(value, torch.Tensor):
        return check_float_tensor(name, value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a torch.Tensor or a real number, got {describe(value)}")
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)
