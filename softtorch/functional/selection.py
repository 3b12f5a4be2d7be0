r"""Selection with soft indices: where, take_along_dim, take, index_select, narrow.

A *soft index* is a probability vector over the ``n`` positions of the indexed dimension, stored
on a new LAST axis of length ``n`` (this is what :func:`softtorch.argmax`, :func:`softtorch.argsort`
and the other index-returning operators produce). Each function returns the expectation of the
hard torch op under that distribution, so a one-hot index reproduces the torch op exactly. A
weight of 0 ignores its value even when it is infinite (``0 * inf`` counts as 0, not NaN).
"""

from __future__ import annotations

import torch

from .._core.checks import (
    check_broadcast,
    check_dim,
    check_flags,
    check_float_tensor,
    check_positive_int,
    result_dtype,
)
from .._core.expectation import expect, weighted
from .._core.prepare import as_operand

__all__ = ["where", "take_along_dim", "take", "index_select", "narrow"]


def _check_index_length(soft_index: torch.Tensor, n: int, what: str, name: str = "soft_index") -> torch.Tensor:
    soft_index = check_float_tensor(name, soft_index)
    if soft_index.dim() == 0 or soft_index.shape[-1] != n:
        got = "a 0-d tensor" if soft_index.dim() == 0 else f"last axis of size {soft_index.shape[-1]}"
        hint = ""
        if soft_index.dim() >= 2 and soft_index.shape[-2] == n:
            hint = (
                "; the distributions over the n positions go on the LAST axis: a torch-style "
                "idx.unsqueeze(-1) becomes p.unsqueeze(-2) here, or move the axis with p.movedim(-2, -1)"
            )
        elif soft_index.dim() >= 1 and soft_index.shape[-1] == 1:
            hint = (
                "; a soft index keeps a distribution over the n positions on its last axis, so a "
                "torch-style idx.unsqueeze(-1) becomes p.unsqueeze(-2)"
            )
        raise ValueError(
            f"{name} must have a last axis of size n = {n} ({what}), got {got} (shape {tuple(soft_index.shape)}){hint}"
        )
    return soft_index


def _check_batch(name: str, index: torch.Tensor, index_batch, x: torch.Tensor, x_batch, dim: int) -> None:
    """The batch axes of a soft index (``index_batch``) must broadcast with those of ``x`` outside ``dim``."""
    try:
        torch.broadcast_shapes(tuple(index_batch), tuple(x_batch))
    except RuntimeError:
        raise ValueError(
            f"{name} must broadcast with x outside dim {dim} and its last axis: {name} of shape "
            f"{tuple(index.shape)} has batch shape {tuple(index_batch)}, which does not broadcast with "
            f"{tuple(x_batch)} (x of shape {tuple(x.shape)} without dim {dim})"
        ) from None


def _expect(soft_index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``sum_j soft_index[..., j] * values[..., j]`` with broadcasting, as one matmul."""
    dtype = result_dtype(soft_index, values)  # torch.result_type, traceable by torch.compile
    soft_index, values = soft_index.to(dtype), values.to(dtype)
    return expect(soft_index.unsqueeze(-2), values).squeeze(-1)


def where(condition, x, y):
    r"""Soft :func:`torch.where`: a convex combination of ``x`` and ``y``.

    .. math::
        \operatorname{where}(c, x, y) = c\,x + (1 - c)\,y

    Args:
        condition (Tensor): soft booleans in :math:`[0, 1]` (bool tensors are promoted).
        x (Tensor or Number): values where the condition holds.
        y (Tensor or Number): values where it does not; all three broadcast together. As in
            :func:`torch.where`, ``x`` or ``y`` may be a Python number, which takes the dtype of
            the other (that of the condition when both are numbers).

    Shape:
        Output has the broadcast shape of the three inputs.

    Returns:
        Tensor: the mixed values.

    Example:
        >>> import torch, softtorch
        >>> softtorch.where(torch.tensor([0.1, 0.8]), torch.tensor([-0.2, 0.3]), torch.tensor([0.2, 0.5]))
        tensor([0.1600, 0.3400])
    """
    c = check_float_tensor("condition", condition)
    x = as_operand("x", x, check_float_tensor("y", y) if isinstance(y, torch.Tensor) else c)
    y = as_operand("y", y, x)
    check_broadcast(condition=c, x=x, y=y)
    return weighted(c, x) + weighted(1.0 - c, y)


def take_along_dim(x, soft_index, dim=None):
    r"""Soft :func:`torch.take_along_dim` with a soft index.

    .. math::
        \text{out}[\dots, i, \dots] = \sum_{j} P[\dots, i, \dots, j]\; x[\dots, j, \dots]

    Args:
        x (Tensor): input; ``n = x.shape[dim]``.
        soft_index (Tensor): soft index of shape ``indices_shape + (n,)``, where ``indices_shape``
            has ``x``'s number of dimensions and broadcasts with ``x`` except along ``dim``.
        dim (int, optional): dimension to select along; ``None`` treats ``x`` as flattened
            (``soft_index`` then has shape ``(k, x.numel())``). Default: ``None``.

    Shape:
        Output has shape ``indices_shape`` (broadcast with ``x`` outside ``dim``).

    Returns:
        Tensor: expected values of ``torch.take_along_dim`` under the soft index.

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([[1.0, 2.0, 3.0]])
        >>> softtorch.take_along_dim(x, torch.tensor([[[0.0, 0.5, 0.5]]]), dim=1)
        tensor([[2.5000]])
    """
    x = check_float_tensor("x", x)
    if dim is None:
        flat = x.reshape(-1)
        soft_index = _check_index_length(soft_index, flat.numel(), "the number of elements of x, dim=None")
        return _expect(soft_index, flat)
    dim = check_dim(dim, x.dim())
    n = x.shape[dim] if x.dim() else 1
    soft_index = _check_index_length(soft_index, n, f"x.shape[{dim}]")
    if soft_index.dim() - 1 != max(x.dim(), 1):
        raise ValueError(
            f"soft_index must have x.dim() + 1 = {max(x.dim(), 1) + 1} dimensions, got shape {tuple(soft_index.shape)}"
        )
    xm = x.reshape(1) if x.dim() == 0 else x.movedim(dim, -1)  # (..., n)
    index = soft_index.movedim(dim, -2)  # (..., k, n)
    _check_batch("soft_index", soft_index, index.shape[:-2], x, xm.shape[:-1], dim)
    out = expect(index.to(xm.dtype), xm)  # (..., k)
    return out.reshape(()) if x.dim() == 0 else out.movedim(-1, dim)


def take(x, soft_index, dim=None):
    r"""Soft :func:`torch.take`: select from the flattened input with a soft index.

    .. math::
        \text{out}[\dots] = \sum_j P[\dots, j]\; \operatorname{flatten}(x)_j

    With an integer ``dim`` the soft indices select along that dim instead (softtorch 0.1.1's
    ``take(x, soft_index, dim)``): ``k`` soft indices of shape ``(k, n)`` replace ``dim`` by
    ``k``, as :func:`index_select` does; a single one of shape ``(n,)`` removes it.

    Args:
        x (Tensor): input of any shape, treated as flattened.
        soft_index (Tensor): soft index of shape ``index_shape + (x.numel(),)``; with ``dim``, of
            shape ``(k, n)`` or ``(n,)``, ``n = x.shape[dim]``.
        dim (int, optional): dimension to select along; ``None`` flattens ``x``. Default: ``None``.

    Shape:
        Output has shape ``index_shape``; with ``dim``, ``x``'s shape with ``dim`` replaced by
        ``k`` (removed for a single soft index).

    Returns:
        Tensor: expected values of ``torch.take``.

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> softtorch.take(x, torch.tensor([0.0, 0.0, 0.25, 0.75]))
        tensor(3.7500)
        >>> softtorch.take(x, torch.tensor([[0.5, 0.5]]), dim=1)
        tensor([[1.5000],
                [3.5000]])
    """
    x = check_float_tensor("x", x)
    if dim is not None:
        return _select(x, soft_index, dim, keepdim=False)
    flat = x.reshape(-1)
    soft_index = _check_index_length(soft_index, flat.numel(), "x.numel()")
    return _expect(soft_index, flat)


def index_select(x, soft_index, dim, keepdim=True):
    r"""Soft :func:`torch.index_select` along ``dim``.

    .. math::
        \text{out}[\dots, i, \dots] = \sum_j P[i, j]\; x[\dots, j, \dots]

    Args:
        x (Tensor): input; ``n = x.shape[dim]``.
        soft_index (Tensor): one soft index of shape ``(n,)`` or ``k`` of them, shape ``(k, n)``.
        dim (int): dimension to select along.
        keepdim (bool): for a single soft index of shape ``(n,)``, keep ``dim`` with size 1
            (as ``torch.index_select`` with one index does); ``False`` removes it. Default: ``True``.

    Shape:
        ``x`` with ``dim`` replaced by ``k`` (or by 1 / removed for a single index).

    Returns:
        Tensor: expected values of ``torch.index_select``.

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> softtorch.index_select(x, torch.tensor([0.25, 0.75]), dim=0)
        tensor([[2.5000, 3.5000]])
    """
    return _select(check_float_tensor("x", x), soft_index, dim, keepdim)


def _select(x, soft_index, dim, keepdim):
    """Body of :func:`index_select` (and of :func:`take` with a ``dim``) for a checked ``x``."""
    dim = check_dim(dim, x.dim())
    check_flags(keepdim=keepdim)
    n = x.shape[dim] if x.dim() else 1
    soft_index = _check_index_length(soft_index, n, f"x.shape[{dim}]")
    if soft_index.dim() > 2:
        raise ValueError(f"soft_index must have shape (n,) or (k, n), got {tuple(soft_index.shape)}")
    single = soft_index.dim() == 1
    xm = x.reshape(1) if x.dim() == 0 else x.movedim(dim, -1)
    out = expect(soft_index.reshape(-1, n).to(xm.dtype), xm)  # (..., k)
    if x.dim() == 0:
        # torch.index_select of a 0-d tensor (one index) is 0-d; k > 1 soft indices give (k,)
        return out.reshape(()) if out.numel() == 1 else out.reshape(-1)
    out = out.movedim(-1, dim)
    return out.squeeze(dim) if single and not keepdim else out


def narrow(x, soft_start, length, dim=0):
    r"""Soft :func:`torch.narrow` with a distribution over the start position.

    Start positions past ``n - length`` put their mass on start ``n - length`` (no wrap-around).

    .. math::
        \text{out} = \sum_{s=0}^{n - L} \tilde p_s\; x.\operatorname{narrow}(\text{dim}, s, L),
        \qquad \tilde p_s = p_s \ (s < n - L), \quad \tilde p_{n-L} = \sum_{s \ge n - L} p_s

    Args:
        x (Tensor): input; ``n = x.shape[dim]``.
        soft_start (Tensor): distribution over start positions, shape ``(n,)`` or any shape that
            broadcasts with ``x`` moved to ``(..., n)`` (one distribution per slice).
        length (int): length of the window, ``0 <= length <= n``.
        dim (int): dimension to narrow. Default: ``0``.

    Shape:
        ``x`` with ``dim`` of size ``length``.

    Returns:
        Tensor: the expected window.

    Example:
        >>> import torch, softtorch
        >>> softtorch.narrow(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, 0.5, 0.0, 0.0]), 2)
        tensor([1.5000, 2.5000])
    """
    x = check_float_tensor("x", x)
    dim = check_dim(dim, x.dim())
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension for narrow, got a 0-d tensor")
    n = x.shape[dim]
    length = check_positive_int("length", length, low=0, high=n)
    soft_start = _check_index_length(soft_start, n, f"x.shape[{dim}]", name="soft_start")
    xm = x.movedim(dim, -1)
    _check_batch("soft_start", soft_start, soft_start.shape[:-1], x, xm.shape[:-1], dim)
    if length == 0:
        return x.narrow(dim, 0, 0).clone()
    last = n - length
    # Fold the mass of starts past n - length onto start n - length.
    starts = torch.cat([soft_start[..., :last], soft_start[..., last:].sum(-1, keepdim=True)], dim=-1)
    windows = xm.unfold(-1, length, 1)  # (..., last + 1, length)
    # out[..., l] = sum_s starts[..., s] windows[..., s, l]
    out = expect(starts.to(xm.dtype).unsqueeze(-2).unsqueeze(-3), windows.transpose(-1, -2)).squeeze(-1)
    return out.movedim(-1, dim)
