"""Layers for sort/argsort/topk/rank/quantile/median; the math lives in :mod:`softtorch.functional.sorting`."""

from __future__ import annotations

from ..functional import sorting as F
from .base import SoftModule

__all__ = [
    "SoftSort",
    "SoftArgsort",
    "SoftTopK",
    "SoftRank",
    "SoftQuantile",
    "SoftArgquantile",
    "SoftPercentile",
    "SoftArgpercentile",
    "SoftMedian",
    "SoftArgmedian",
]


class SoftSort(SoftModule):
    """Layer form of :func:`softtorch.sort`; returns the sorted values unless ``return_indices=True``.

    Example:
        >>> import torch, softtorch
        >>> layer = softtorch.nn.SoftSort(mode="c1", softness=0.5)
        >>> layer(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([-0.9982, -0.5432,  0.5814,  0.9837])
    """

    function = F.sort
    defaults = {"return_indices": False}


class SoftArgsort(SoftModule):
    """Layer form of :func:`softtorch.argsort`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftArgsort(mode="hard")(torch.tensor([0.3, -1.0]))
        tensor([[0., 1.],
                [1., 0.]])
    """

    function = F.argsort


class SoftTopK(SoftModule):
    """Layer form of :func:`softtorch.topk`; returns the values unless ``return_indices=True``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftTopK(k=3)(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([ 0.8738,  0.2767, -0.1641])
    """

    function = F.topk
    returns_pair = True


class SoftRank(SoftModule):
    """Layer form of :func:`softtorch.rank` (ranks along ``dim=-1`` by default).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftRank(descending=False)(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([1.9950, 1.0548, 3.0239, 3.9228])
    """

    function = F.rank
    defaults = {"dim": -1}


class SoftQuantile(SoftModule):
    """Layer form of :func:`softtorch.quantile` (along ``dim=-1`` by default).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftQuantile(0.2)(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor(-0.4501)
    """

    function = F.quantile
    defaults = {"dim": -1}


class SoftArgquantile(SoftModule):
    """Layer form of :func:`softtorch.argquantile` (along ``dim=-1`` by default).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftArgquantile(0.2, mode="hard")(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([0.6000, 0.4000, 0.0000, 0.0000])
    """

    function = F.argquantile
    defaults = {"dim": -1}


class SoftPercentile(SoftModule):
    """Layer form of :func:`softtorch.percentile` (along ``dim=-1`` by default).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftPercentile(20)(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor(-0.4501)
    """

    function = F.percentile
    defaults = {"dim": -1}


class SoftArgpercentile(SoftModule):
    """Layer form of :func:`softtorch.argpercentile` (along ``dim=-1`` by default).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftArgpercentile(20, mode="hard")(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([0.6000, 0.4000, 0.0000, 0.0000])
    """

    function = F.argpercentile
    defaults = {"dim": -1}


class SoftMedian(SoftModule):
    """Layer form of :func:`softtorch.median` (along ``dim=-1``); returns the values unless ``return_indices=True``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftMedian()(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor(-0.1641)
    """

    function = F.median
    defaults = {"dim": -1}
    returns_pair = True


class SoftArgmedian(SoftModule):
    """Layer form of :func:`softtorch.argmedian` (along ``dim=-1`` by default).

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftArgmedian(mode="hard")(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([1., 0., 0., 0.])
    """

    function = F.argmedian
    defaults = {"dim": -1}
