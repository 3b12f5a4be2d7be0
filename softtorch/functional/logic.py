r"""Fuzzy logic on soft booleans in :math:`[0, 1]`: not, and, or, xor, all, any.

These operators have no softness and no mode: they are exact on hard booleans (0/1) and
multilinear in between (product t-norm), so they compose with the soft comparisons.
"""

from __future__ import annotations

import torch

from .._core.checks import check_broadcast, check_dim, check_flags, check_float_tensor, check_nonnegative

__all__ = ["logical_not", "logical_and", "logical_or", "logical_xor", "all", "any"]

#: Floor applied before logarithms in the geometric-mean variants (``epsilon`` of all/any): that
#: of softtorch 0.1.1, so the geometric means agree with it.
_LOG_FLOOR = 1e-10


def _geometric_mean(x: torch.Tensor, dim, epsilon: float = _LOG_FLOOR) -> torch.Tensor:
    floor = max(epsilon, torch.finfo(x.dtype).tiny)
    return torch.exp(torch.log(x.clamp(min=floor)).mean(dim))


def _and(x, y, use_geometric_mean):
    if use_geometric_mean:
        return _geometric_mean(torch.stack(torch.broadcast_tensors(x, y)), 0)
    return x * y


def _pair(x, y, use_geometric_mean):
    x, y = check_float_tensor("x", x), check_float_tensor("y", y)
    check_broadcast(x=x, y=y)
    check_flags(use_geometric_mean=use_geometric_mean)
    return x, y


def logical_not(x):
    r"""Soft :func:`torch.logical_not`: :math:`\neg x = 1 - x`.

    Args:
        x (Tensor): soft booleans in :math:`[0, 1]` (bool and integer tensors are promoted).

    Shape:
        Output has the shape of ``x``.

    Returns:
        Tensor: :math:`1 - x`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.logical_not(torch.tensor([0.1, 0.8, 1.0]))
        tensor([0.9000, 0.2000, 0.0000])
    """
    return 1.0 - check_float_tensor("x", x)


def logical_and(x, y, *, use_geometric_mean=False):
    r"""Soft :func:`torch.logical_and`: the product t-norm.

    .. math::
        x \wedge y = x\,y \qquad\text{or, with } \texttt{use\_geometric\_mean},\quad \sqrt{x\,y}

    Args:
        x (Tensor): soft booleans in :math:`[0, 1]`.
        y (Tensor): soft booleans broadcasting with ``x``.
        use_geometric_mean (bool): replace the product by the geometric mean (inputs clamped away
            from 0), which keeps the result from shrinking with many operands. Default: ``False``.

    Shape:
        Output has the broadcast shape of ``x`` and ``y``.

    Returns:
        Tensor: soft booleans.

    Example:
        >>> import torch, softtorch
        >>> softtorch.logical_and(torch.tensor([0.1, 0.8, 1.0]), torch.tensor([0.7, 0.1, 0.9]))
        tensor([0.0700, 0.0800, 0.9000])
    """
    x, y = _pair(x, y, use_geometric_mean)
    return _and(x, y, use_geometric_mean)


def logical_or(x, y, *, use_geometric_mean=False):
    r"""Soft :func:`torch.logical_or`, by De Morgan from :func:`logical_and`.

    .. math::
        x \vee y = 1 - (1 - x)(1 - y)

    Args:
        x (Tensor): soft booleans in :math:`[0, 1]`.
        y (Tensor): soft booleans broadcasting with ``x``.
        use_geometric_mean (bool): geometric mean instead of product. Default: ``False``.

    Shape:
        Output has the broadcast shape of ``x`` and ``y``.

    Returns:
        Tensor: soft booleans.

    Example:
        >>> import torch, softtorch
        >>> softtorch.logical_or(torch.tensor([0.1, 0.8, 1.0]), torch.tensor([0.7, 0.1, 0.9]))
        tensor([0.7300, 0.8200, 1.0000])
    """
    x, y = _pair(x, y, use_geometric_mean)
    return 1.0 - _and(1.0 - x, 1.0 - y, use_geometric_mean)


def logical_xor(x, y, *, use_geometric_mean=False):
    r"""Soft :func:`torch.logical_xor`.

    .. math::
        x \oplus y = (x \wedge \neg y) \vee (\neg x \wedge y)

    Args:
        x (Tensor): soft booleans in :math:`[0, 1]`.
        y (Tensor): soft booleans broadcasting with ``x``.
        use_geometric_mean (bool): geometric mean instead of product. Default: ``False``.

    Shape:
        Output has the broadcast shape of ``x`` and ``y``.

    Returns:
        Tensor: soft booleans.

    Example:
        >>> import torch, softtorch
        >>> softtorch.logical_xor(torch.tensor([0.1, 0.8, 1.0]), torch.tensor([0.7, 0.1, 0.9]))
        tensor([0.6411, 0.7256, 0.1000])
    """
    x, y = _pair(x, y, use_geometric_mean)
    left = _and(x, 1.0 - y, use_geometric_mean)
    right = _and(1.0 - x, y, use_geometric_mean)
    return 1.0 - _and(1.0 - left, 1.0 - right, use_geometric_mean)


def _product(x, dim, keepdim, use_geometric_mean, epsilon):
    """Product (or geometric mean) of checked ``x`` along normalized ``dim`` (None: everything)."""
    if x.dim() == 0:
        return x.clone()
    if dim is None:
        out = _geometric_mean(x.reshape(-1), 0, epsilon) if use_geometric_mean else x.prod().to(x.dtype)
        return out.reshape([1] * x.dim()) if keepdim else out
    if use_geometric_mean:
        out = _geometric_mean(x, dim, epsilon)
        return out.unsqueeze(dim) if keepdim else out
    # autocast runs prod in float32; the soft booleans keep the input's dtype.
    return x.prod(dim, keepdim=keepdim).to(x.dtype)


def _reduction_args(x, dim, keepdim, use_geometric_mean, epsilon):
    x = check_float_tensor("x", x)
    check_flags(keepdim=keepdim, use_geometric_mean=use_geometric_mean)
    epsilon = check_nonnegative("epsilon", epsilon)
    return x, (None if dim is None else check_dim(dim, x.dim())), epsilon


def all(x, dim=None, keepdim=False, *, use_geometric_mean=False, epsilon=_LOG_FLOOR):
    r"""Soft :func:`torch.all`: the product (or geometric mean) along ``dim``.

    .. math::
        \operatorname{all}(x) = \prod_i x_i

    Args:
        x (Tensor): soft booleans in :math:`[0, 1]`.
        dim (int, optional): dimension to reduce; ``None`` reduces every element, as
            :func:`torch.all` does. Default: ``None``.
        keepdim (bool): keep the reduced dimension with size 1. Default: ``False``.
        use_geometric_mean (bool): geometric mean instead of product. Default: ``False``.
        epsilon (float): floor of the inputs before the logarithm of the geometric mean (the
            smallest positive number of the dtype if that is larger). Default: ``1e-10``.

    Shape:
        ``x`` with ``dim`` removed (kept with size 1 if ``keepdim``); a 0-d tensor for ``dim=None``.

    Returns:
        Tensor: soft booleans.

    Example:
        >>> import torch, softtorch
        >>> softtorch.all(torch.tensor([0.1, 0.2, 0.8, 1.0]))
        tensor(0.0160)
    """
    x, dim, epsilon = _reduction_args(x, dim, keepdim, use_geometric_mean, epsilon)
    return _product(x, dim, keepdim, use_geometric_mean, epsilon)


def any(x, dim=None, keepdim=False, *, use_geometric_mean=False, epsilon=_LOG_FLOOR):
    r"""Soft :func:`torch.any`, by De Morgan from :func:`all`.

    .. math::
        \operatorname{any}(x) = 1 - \prod_i (1 - x_i)

    Args:
        x (Tensor): soft booleans in :math:`[0, 1]`.
        dim (int, optional): dimension to reduce; ``None`` reduces every element, as
            :func:`torch.all` does. Default: ``None``.
        keepdim (bool): keep the reduced dimension with size 1. Default: ``False``.
        use_geometric_mean (bool): geometric mean instead of product. Default: ``False``.
        epsilon (float): floor of :math:`1 - x_i` before the logarithm of the geometric mean.
            Default: ``1e-10``.

    Shape:
        ``x`` with ``dim`` removed (kept with size 1 if ``keepdim``); a 0-d tensor for ``dim=None``.

    Returns:
        Tensor: soft booleans.

    Example:
        >>> import torch, softtorch
        >>> softtorch.any(torch.tensor([0.1, 0.2, 0.8]))
        tensor(0.8560)
    """
    x, dim, epsilon = _reduction_args(x, dim, keepdim, use_geometric_mean, epsilon)
    return 1.0 - _product(1.0 - x, dim, keepdim, use_geometric_mean, epsilon)
