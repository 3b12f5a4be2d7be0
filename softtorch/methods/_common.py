"""Small pieces shared by the sorting methods."""

from __future__ import annotations

import torch

from .._core.checks import describe

__all__ = ["row_softness", "select_rows", "no_values"]


def row_softness(softness):
    """A softness of shape ``(..., 1)`` made to broadcast against ``(..., r, n)`` rows."""
    if isinstance(softness, torch.Tensor) and softness.dim() > 0:
        return softness.unsqueeze(-1)
    return softness


def select_rows(t: torch.Tensor, rows):
    """``t[..., rows]`` for ``rows`` None (all), a slice, or a 1-D index tensor."""
    if rows is None:
        return t
    if isinstance(rows, slice):
        return t[..., rows]
    return t.index_select(-1, rows)


def no_values(method: str, values) -> None:
    """``sort_values(values=...)`` of a method without a permutation: only ``None`` is accepted."""
    if values is not None:
        raise ValueError(
            f"method={method!r} has no soft permutation: its sort_values sorts xt itself and takes values=None, "
            f"got {describe(values)}"
        )
