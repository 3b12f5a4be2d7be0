"""Layers for the elementwise family; the math lives in :mod:`softtorch.functional.elementwise`."""

from __future__ import annotations

from ..functional import elementwise as F
from .base import SoftModule

__all__ = ["SoftHeaviside", "SoftSign", "SoftAbs", "SoftReLU", "SoftClamp", "SoftRound"]


class SoftHeaviside(SoftModule):
    """Layer form of :func:`softtorch.heaviside`.

    Example:
        >>> import torch, softtorch
        >>> layer = softtorch.nn.SoftHeaviside(softness=0.1, mode="c1")
        >>> layer
        SoftHeaviside(mode='c1')
        >>> layer(torch.tensor([-0.2, 0.0, 0.3]))
        tensor([0.2160, 0.5000, 0.8960])
    """

    function = F.heaviside


class SoftSign(SoftModule):
    """Layer form of :func:`softtorch.sign`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftSign()(torch.tensor([-0.2, 0.3]))
        tensor([-0.7616,  0.9051])
    """

    function = F.sign


class SoftAbs(SoftModule):
    """Layer form of :func:`softtorch.abs`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftAbs()(torch.tensor([-0.2, 0.3]))
        tensor([0.1523, 0.2715])
    """

    function = F.abs


class SoftReLU(SoftModule):
    """Layer form of :func:`softtorch.relu`.

    Example:
        >>> import torch, softtorch
        >>> layer = softtorch.nn.SoftReLU(softness=0.1, mode="c1", learnable=True)
        >>> [name for name, _ in layer.named_parameters()]
        ['log_softness']
        >>> layer(torch.tensor([-1.0, 0.0, 2.0])).detach()
        tensor([0.0000, 0.0937, 2.0000])
    """

    function = F.relu


class SoftClamp(SoftModule):
    """Layer form of :func:`softtorch.clamp`; ``min`` and ``max`` are its configuration.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftClamp(-0.5, 0.5)(torch.tensor([-1.0, 0.3, 1.0]))
        tensor([-0.4993,  0.2873,  0.4993])
    """

    function = F.clamp


class SoftRound(SoftModule):
    """Layer form of :func:`softtorch.round`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.nn.SoftRound()(torch.tensor([-0.2, 0.3]))
        tensor([-0.0465,  0.1189])
    """

    function = F.round
