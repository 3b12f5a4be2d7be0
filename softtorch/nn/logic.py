"""Layers for the logic family; the math lives in :mod:`softtorch.functional.logic`."""

from __future__ import annotations

from ..functional import logic as F
from .base import REQUIRED, SoftModule

__all__ = ["SoftLogicalAnd", "SoftLogicalOr", "SoftLogicalXor", "SoftLogicalNot", "SoftAll", "SoftAny"]


class SoftLogicalAnd(SoftModule):
    """Layer form of :func:`softtorch.logical_and`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftLogicalAnd()(torch.tensor([0.1, 0.8]), torch.tensor([0.7, 0.1]))
        tensor([0.0700, 0.0800])
    """

    function = F.logical_and
    inputs = ("x", "y")


class SoftLogicalOr(SoftModule):
    """Layer form of :func:`softtorch.logical_or`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftLogicalOr()(torch.tensor([0.1, 0.8]), torch.tensor([0.7, 0.1]))
        tensor([0.7300, 0.8200])
    """

    function = F.logical_or
    inputs = ("x", "y")


class SoftLogicalXor(SoftModule):
    """Layer form of :func:`softtorch.logical_xor`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftLogicalXor()(torch.tensor([0.1, 0.8]), torch.tensor([0.7, 0.1]))
        tensor([0.6411, 0.7256])
    """

    function = F.logical_xor
    inputs = ("x", "y")


class SoftLogicalNot(SoftModule):
    """Layer form of :func:`softtorch.logical_not`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftLogicalNot()(torch.tensor([0.1, 0.8]))
        tensor([0.9000, 0.2000])
    """

    function = F.logical_not


class SoftAll(SoftModule):
    """Layer form of :func:`softtorch.all` along ``dim`` (required).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftAll(dim=-1)(torch.tensor([[0.1, 0.2], [0.8, 1.0]]))
        tensor([0.0200, 0.8000])
    """

    function = F.all
    defaults = {"dim": REQUIRED}


class SoftAny(SoftModule):
    """Layer form of :func:`softtorch.any` along ``dim`` (required).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftAny(dim=-1)(torch.tensor([[0.1, 0.2], [0.8, 1.0]]))
        tensor([0.2800, 1.0000])
    """

    function = F.any
    defaults = {"dim": REQUIRED}
