r"""Soft comparison operators: greater, greater_equal, less, less_equal, eq, not_equal, isclose.

Each one is the sigmoidal kernel of a difference (:func:`softtorch.sigmoidal`); the results are
soft booleans in :math:`[0, 1]` that the logic operators combine.
"""

from __future__ import annotations

import torch

from .._core.checks import (
    check_broadcast,
    check_float_tensor,
    check_mode,
    check_nonnegative,
    check_softness,
    result_dtype,
)
from .._core.kernels import sigmoidal_kernel, soft_abs
from .._core.prepare import as_operand
from .._core.straight_through import st
from .._core.zero_grad import with_zero_grad

__all__ = [
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "eq",
    "not_equal",
    "isclose",
    "greater_st",
    "greater_equal_st",
    "less_st",
    "less_equal_st",
    "eq_st",
    "not_equal_st",
    "isclose_st",
]


def _operands(x, y):
    """``x`` and ``y`` as floating tensors. As in torch's binary ops, one of them may be a Python
    number, which takes the dtype and device of the other."""
    if isinstance(y, torch.Tensor) and not isinstance(x, torch.Tensor):
        y = check_float_tensor("y", y)
        return as_operand("x", x, y), y
    x = check_float_tensor("x", x)
    return x, as_operand("y", y, x)


def _prepare(x, y, softness, mode, epsilon):
    mode = check_mode(mode)
    softness = check_softness(softness)
    epsilon = check_nonnegative("epsilon", epsilon)
    x, y = _operands(x, y)
    check_broadcast(x=x, y=y, **({"softness": softness} if isinstance(softness, torch.Tensor) else {}))
    return x, y, softness, mode, epsilon


def _hard(op, x, y, **kwargs):
    """The torch comparison as floats of the inputs' dtype, with a zero gradient attached."""
    dtype = result_dtype(x, y)  # torch.result_type, traceable by torch.compile
    return with_zero_grad(op(x.to(dtype), y.to(dtype), **kwargs).to(dtype), x, y)


def _difference(x, y):
    """``x - y``, with 0 where both are the same infinity (a tie, as for torch) instead of NaN."""
    tie = (x == y) & torch.isinf(x)
    return torch.where(tie, 0.0, x) - torch.where(tie, 0.0, y)


def _isclose(x, y, rtol, atol):
    """:func:`torch.isclose` (``equal_nan=False``) spelled with elementwise ops, which ``vmap`` batches
    (``aten::isclose`` has no batching rule): the same formula as ATen's."""
    error = torch.abs(x - y)
    return (x == y) | (torch.isfinite(error) & (error <= atol + torch.abs(rtol * y)))


def _greater(d, softness, mode, epsilon, strict):
    """Soft ``d > 0`` (``strict``) or ``d >= 0``."""
    shift = -epsilon if strict else epsilon
    return sigmoidal_kernel((d + shift) / softness, mode)


def _close(d, tolerance, softness, mode, epsilon):
    """Soft ``|d| <= tolerance``: ``2 (1 - sigma((|d|_soft - tolerance - eps) / softness))`` in [0, 1].

    An infinite ``d`` gives exactly 0, and a zero gradient (the soft ``|d|`` would give inf * 0).
    """
    infinite = torch.isinf(d)
    gap = soft_abs(torch.where(infinite, 0.0, d), softness, mode) - tolerance - epsilon
    close = (2.0 * (1.0 - sigmoidal_kernel(gap / softness, mode))).clamp(0.0, 1.0)
    return torch.where(infinite, 0.0, close)


_SHARED_ARGS = r"""
    Args:
        x (Tensor or Number): first operand.
        y (Tensor or Number): second operand, broadcasting with ``x``. One of the two may be a
            Python number, as in torch's comparisons.
        softness (float or Tensor): temperature, positive. Default: ``0.1``.
        mode (str): one of ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``. Default: ``"smooth"``.
        epsilon (float): tie-breaking shift that makes strict and non-strict comparisons differ
            at exact ties. Default: ``1e-10``.

    Shape:
        Output has the broadcast shape of ``x`` and ``y``.

    Returns:
        Tensor: a soft boolean in :math:`[0, 1]` of the floating dtype of the inputs.
"""


def greater(x, y, *, softness=0.1, mode="smooth", epsilon=1e-10):
    x, y, softness, mode, epsilon = _prepare(x, y, softness, mode, epsilon)
    if mode == "hard":
        return _hard(torch.greater, x, y)
    return _greater(_difference(x, y), softness, mode, epsilon, strict=True)


def greater_equal(x, y, *, softness=0.1, mode="smooth", epsilon=1e-10):
    x, y, softness, mode, epsilon = _prepare(x, y, softness, mode, epsilon)
    if mode == "hard":
        return _hard(torch.greater_equal, x, y)
    return _greater(_difference(x, y), softness, mode, epsilon, strict=False)


def less(x, y, *, softness=0.1, mode="smooth", epsilon=1e-10):
    x, y, softness, mode, epsilon = _prepare(x, y, softness, mode, epsilon)
    if mode == "hard":
        return _hard(torch.less, x, y)
    return 1.0 - _greater(_difference(x, y), softness, mode, epsilon, strict=False)


def less_equal(x, y, *, softness=0.1, mode="smooth", epsilon=1e-10):
    x, y, softness, mode, epsilon = _prepare(x, y, softness, mode, epsilon)
    if mode == "hard":
        return _hard(torch.less_equal, x, y)
    return 1.0 - _greater(_difference(x, y), softness, mode, epsilon, strict=True)


def eq(x, y, *, softness=0.1, mode="smooth", epsilon=1e-10):
    x, y, softness, mode, epsilon = _prepare(x, y, softness, mode, epsilon)
    if mode == "hard":
        return _hard(torch.eq, x, y)
    return _close(_difference(x, y), 0.0, softness, mode, epsilon)


def not_equal(x, y, *, softness=0.1, mode="smooth", epsilon=1e-10):
    x, y, softness, mode, epsilon = _prepare(x, y, softness, mode, epsilon)
    if mode == "hard":
        return _hard(torch.not_equal, x, y)
    return 1.0 - _close(_difference(x, y), 0.0, softness, mode, epsilon)


def isclose(x, y, rtol=1e-5, atol=1e-8, *, softness=0.1, mode="smooth", epsilon=1e-10):
    x, y, softness, mode, epsilon = _prepare(x, y, softness, mode, epsilon)
    rtol, atol = check_nonnegative("rtol", rtol), check_nonnegative("atol", atol)
    if mode == "hard":
        return _hard(_isclose, x, y, rtol=rtol, atol=atol)
    # As for torch.isclose, an infinity is close only to itself (its tolerance rtol * |y| is
    # infinite too): those entries take the hard value, the soft one is computed without them.
    infinite = torch.isinf(x) | torch.isinf(y)
    x_safe, y_safe = torch.where(infinite, 0.0, x), torch.where(infinite, 0.0, y)
    tolerance = atol + rtol * soft_abs(y_safe, softness, mode)
    close = _close(x_safe - y_safe, tolerance, softness, mode, epsilon)
    return torch.where(infinite, (x == y).to(close.dtype), close)


greater.__doc__ = (
    r"""Soft ``x > y``, a relaxation of :func:`torch.greater`.

    .. math::
        \operatorname{greater}_{soft}(x, y) = \sigma_{mode}\!\left(\frac{x - y - \epsilon}{\text{softness}}\right)
"""
    + _SHARED_ARGS
    + r"""
    .. seealso:: :class:`softtorch.nn.SoftGreater`, :func:`greater_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.greater(torch.tensor([-0.2, 1.0]), torch.tensor([0.2, -1.0]))
        tensor([0.0180, 1.0000])
"""
)
greater_equal.__doc__ = (
    r"""Soft ``x >= y``, a relaxation of :func:`torch.greater_equal`.

    .. math::
        \operatorname{greater\_equal}_{soft}(x, y)
        = \sigma_{mode}\!\left(\frac{x - y + \epsilon}{\text{softness}}\right)
"""
    + _SHARED_ARGS
    + r"""
    .. seealso:: :class:`softtorch.nn.SoftGreaterEqual`, :func:`greater_equal_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.greater_equal(torch.tensor([0.3, 0.5]), torch.tensor([0.5, 0.5]))
        tensor([0.1192, 0.5000])
"""
)
less.__doc__ = (
    r"""Soft ``x < y``, a relaxation of :func:`torch.less`.

    .. math::
        \operatorname{less}_{soft}(x, y) = 1 - \operatorname{greater\_equal}_{soft}(x, y)
"""
    + _SHARED_ARGS
    + r"""
    .. seealso:: :class:`softtorch.nn.SoftLess`, :func:`less_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.less(torch.tensor([-0.2, 1.0]), torch.tensor([0.2, -1.0]))
        tensor([0.9820, 0.0000])
"""
)
less_equal.__doc__ = (
    r"""Soft ``x <= y``, a relaxation of :func:`torch.less_equal`.

    .. math::
        \operatorname{less\_equal}_{soft}(x, y) = 1 - \operatorname{greater}_{soft}(x, y)
"""
    + _SHARED_ARGS
    + r"""
    .. seealso:: :class:`softtorch.nn.SoftLessEqual`, :func:`less_equal_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.less_equal(torch.tensor([0.3, 0.5]), torch.tensor([0.5, 0.5]))
        tensor([0.8808, 0.5000])
"""
)
eq.__doc__ = (
    r"""Soft ``x == y``, a relaxation of :func:`torch.eq`.

    .. math::
        \operatorname{eq}_{soft}(x, y) = 2\left(1 - \sigma_{mode}\!\left(
        \frac{|x - y|_{soft} - \epsilon}{\text{softness}}\right)\right)

    where :math:`|\cdot|_{soft}` is :func:`softtorch.abs` with the same mode and softness.
"""
    + _SHARED_ARGS
    + r"""
    .. seealso:: :class:`softtorch.nn.SoftEqual`, :func:`eq_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.eq(torch.tensor([0.3, 0.5]), torch.tensor([0.5, 0.5]))
        tensor([0.3580, 1.0000])
"""
)
not_equal.__doc__ = (
    r"""Soft ``x != y``, a relaxation of :func:`torch.not_equal`.

    .. math::
        \operatorname{not\_equal}_{soft}(x, y) = 1 - \operatorname{eq}_{soft}(x, y)
"""
    + _SHARED_ARGS
    + r"""
    .. seealso:: :class:`softtorch.nn.SoftNotEqual`, :func:`not_equal_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.not_equal(torch.tensor([0.3, 0.5]), torch.tensor([0.5, 0.5]))
        tensor([0.6420, 0.0000])
"""
)
isclose.__doc__ = (
    r"""Soft :func:`torch.isclose`: soft ``|x - y| <= atol + rtol * |y|``.

    .. math::
        \operatorname{isclose}_{soft}(x, y) = \operatorname{clip}_{[0, 1]}\, 2\left(1 - \sigma_{mode}\!\left(
        \frac{|x - y|_{soft} - \text{atol} - \text{rtol}\,|y|_{soft} - \epsilon}{\text{softness}}\right)\right)

    ``rtol`` (float, default ``1e-5``) and ``atol`` (float, default ``1e-8``) come before the soft
    arguments, as in torch.
"""
    + _SHARED_ARGS
    + r"""
    .. seealso:: :class:`softtorch.nn.SoftIsClose`, :func:`isclose_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.isclose(torch.tensor([0.3, 0.5]), torch.tensor([0.5, 0.5]))
        tensor([0.3580, 1.0000])
"""
)

greater_st = st(greater)
greater_equal_st = st(greater_equal)
less_st = st(less)
less_equal_st = st(less_equal)
eq_st = st(eq)
not_equal_st = st(not_equal)
isclose_st = st(isclose)
