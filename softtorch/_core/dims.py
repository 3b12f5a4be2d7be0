"""Arranging a tensor softness for the ``(..., n)`` layout the sorting family works in."""

from __future__ import annotations

import torch

__all__ = ["broadcast_softness"]


def broadcast_softness(softness, x_shape, dim: int | None):
    """Arrange a tensor softness for the ``(..., n)`` layout (operated dim moved last).

    A tensor softness broadcasts against the input with the reduced ``dim`` of size 1; it is moved
    alongside the data so it broadcasts against ``(..., 1)``. Floats pass through.
    """
    if not isinstance(softness, torch.Tensor) or softness.dim() == 0:
        return softness
    ndim = len(x_shape)
    s = softness
    if s.dim() > ndim:
        raise ValueError(
            f"softness of shape {tuple(s.shape)} has more dimensions than the input of shape {tuple(x_shape)}"
        )
    s = s.reshape((1,) * (ndim - s.dim()) + tuple(s.shape))
    if dim is None:
        return s.reshape(-1)[:1].reshape(()) if s.numel() == 1 else _flat_error(softness, x_shape)
    return s.movedim(dim, -1)


def _flat_error(softness, x_shape):
    raise ValueError(
        f"softness of shape {tuple(softness.shape)} cannot broadcast with dim=None over an input of shape "
        f"{tuple(x_shape)};"
        " use a scalar softness"
    )
