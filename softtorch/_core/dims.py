"""Moving the reduced dimension to the end and back, so every kernel sees a ``(..., n)`` tensor."""

from __future__ import annotations

import torch

__all__ = ["to_last", "from_last", "broadcast_softness"]


def to_last(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Move (normalized) ``dim`` of ``x`` to the last position; a 0-d tensor becomes ``(1,)``."""
    if x.dim() == 0:
        return x.reshape(1)
    return x.movedim(dim, -1)


def from_last(y: torch.Tensor, dim: int, ndim: int, extra: int = 0) -> torch.Tensor:
    """Inverse of :func:`to_last` for a result with ``extra`` trailing axes after the moved dim.

    ``ndim`` is the dimension count of the original input (0 for a 0-d input).
    """
    if ndim == 0:
        return y.reshape(y.shape[y.dim() - extra :]) if extra else y.reshape(())
    return y.movedim(y.dim() - 1 - extra, dim)


def broadcast_softness(softness, x_shape, dim: int | None):
    """Arrange a tensor softness for the ``(..., n)`` layout produced by :func:`to_last`.

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
