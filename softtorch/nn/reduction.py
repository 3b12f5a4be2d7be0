"""Layers for max/min/argmax/argmin; the math lives in :mod:`softtorch.functional.reduction`."""

from __future__ import annotations

from ..functional import reduction as F
from .base import REQUIRED, SoftModule

__all__ = ["SoftMax", "SoftMin", "SoftArgmax", "SoftArgmin"]


class SoftMax(SoftModule):
    """Layer form of :func:`softtorch.max`: the soft maximum *value* along ``dim`` (required).

    Looking for the softmax function? That is :class:`torch.nn.Softmax`. This layer returns the
    values only (so it chains in ``nn.Sequential``) unless built with ``return_indices=True``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftMax(dim=-1)(torch.tensor([[-0.2, -1.0, 0.3, 1.0]]))
        tensor([0.8874])
    """

    function = F.max
    defaults = {"dim": REQUIRED}
    returns_pair = True


class SoftMin(SoftModule):
    """Layer form of :func:`softtorch.min`: the soft minimum value along ``dim`` (required).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftMin(dim=-1)(torch.tensor([[-0.2, -1.0, 0.3, 1.0]]))
        tensor([-0.8996])
    """

    function = F.min
    defaults = {"dim": REQUIRED}
    returns_pair = True


class SoftArgmax(SoftModule):
    """Layer form of :func:`softtorch.argmax` along ``dim`` (required).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftArgmax(dim=-1, mode="hard")(torch.tensor([[-0.2, 1.0]]))
        tensor([[0., 1.]])
    """

    function = F.argmax
    defaults = {"dim": REQUIRED}


class SoftArgmin(SoftModule):
    """Layer form of :func:`softtorch.argmin` along ``dim`` (required).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftArgmin(dim=-1, mode="hard")(torch.tensor([[-0.2, 1.0]]))
        tensor([[1., 0.]])
    """

    function = F.argmin
    defaults = {"dim": REQUIRED}
