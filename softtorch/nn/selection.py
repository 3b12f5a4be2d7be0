"""Layers for the selection family; the math lives in :mod:`softtorch.functional.selection`."""

from __future__ import annotations

from ..functional import selection as F
from .base import SoftModule

__all__ = ["SoftWhere", "SoftTakeAlongDim", "SoftTake", "SoftIndexSelect", "SoftNarrow"]


class SoftWhere(SoftModule):
    """Layer form of :func:`softtorch.where`; ``forward(condition, x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftWhere()(torch.tensor([0.1, 0.8]), torch.tensor([-0.2, 0.3]), torch.tensor([0.2, 0.5]))
        tensor([0.1600, 0.3400])
    """

    function = F.where
    inputs = ("condition", "x", "y")


class SoftTakeAlongDim(SoftModule):
    """Layer form of :func:`softtorch.take_along_dim`; ``forward(x, soft_index)``.

    Example:
        >>> import torch, softtorch
        >>> layer = softtorch.nn.SoftTakeAlongDim(dim=1)
        >>> layer(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[[0.0, 0.5, 0.5]]]))
        tensor([[2.5000]])
    """

    function = F.take_along_dim
    inputs = ("x", "soft_index")


class SoftTake(SoftModule):
    """Layer form of :func:`softtorch.take`; ``forward(x, soft_index)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftTake()(torch.tensor([1.0, 2.0]), torch.tensor([0.25, 0.75]))
        tensor(1.7500)
    """

    function = F.take
    inputs = ("x", "soft_index")


class SoftIndexSelect(SoftModule):
    """Layer form of :func:`softtorch.index_select`; ``forward(x, soft_index)``.

    Example:
        >>> import torch, softtorch
        >>> layer = softtorch.nn.SoftIndexSelect(dim=0)
        >>> layer(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0.25, 0.75]))
        tensor([[2.5000, 3.5000]])
    """

    function = F.index_select
    inputs = ("x", "soft_index")


class SoftNarrow(SoftModule):
    """Layer form of :func:`softtorch.narrow`; ``forward(x, soft_start)``.

    Example:
        >>> import torch, softtorch
        >>> layer = softtorch.nn.SoftNarrow(length=2)
        >>> layer(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, 0.5, 0.0, 0.0]))
        tensor([1.5000, 2.5000])
    """

    function = F.narrow
    inputs = ("x", "soft_start")
