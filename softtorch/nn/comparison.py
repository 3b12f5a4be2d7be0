"""Layers for the comparison family; the math lives in :mod:`softtorch.functional.comparison`."""

from __future__ import annotations

from ..functional import comparison as F
from .base import SoftModule

__all__ = [
    "SoftGreater",
    "SoftGreaterEqual",
    "SoftLess",
    "SoftLessEqual",
    "SoftEqual",
    "SoftNotEqual",
    "SoftIsClose",
]


class _Comparison(SoftModule):
    inputs = ("x", "y")


class SoftGreater(_Comparison):
    """Layer form of :func:`softtorch.greater`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftGreater()(torch.tensor([-0.2, 1.0]), torch.tensor([0.2, -1.0]))
        tensor([0.0180, 1.0000])
    """

    function = F.greater


class SoftGreaterEqual(_Comparison):
    """Layer form of :func:`softtorch.greater_equal`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftGreaterEqual(mode="hard")(torch.tensor([0.3, 0.5]), torch.tensor([0.5, 0.5]))
        tensor([0., 1.])
    """

    function = F.greater_equal


class SoftLess(_Comparison):
    """Layer form of :func:`softtorch.less`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftLess()(torch.tensor([-0.2]), torch.tensor([0.2]))
        tensor([0.9820])
    """

    function = F.less


class SoftLessEqual(_Comparison):
    """Layer form of :func:`softtorch.less_equal`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftLessEqual()(torch.tensor([0.3]), torch.tensor([0.5]))
        tensor([0.8808])
    """

    function = F.less_equal


class SoftEqual(_Comparison):
    """Layer form of :func:`softtorch.eq`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftEqual()(torch.tensor([0.3, 0.5]), torch.tensor([0.5, 0.5]))
        tensor([0.3580, 1.0000])
    """

    function = F.eq


class SoftNotEqual(_Comparison):
    """Layer form of :func:`softtorch.not_equal`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftNotEqual()(torch.tensor([0.3, 0.5]), torch.tensor([0.5, 0.5]))
        tensor([0.6420, 0.0000])
    """

    function = F.not_equal


class SoftIsClose(_Comparison):
    """Layer form of :func:`softtorch.isclose`; ``forward(x, y)``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftIsClose(atol=0.2)(torch.tensor([0.3, 0.5]), torch.tensor([0.5, 0.5]))
        tensor([1., 1.])
    """

    function = F.isclose
