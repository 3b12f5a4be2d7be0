r"""Soft sort, argsort, top-k, rank, quantile and median.

All of them read rows of one soft permutation matrix :math:`P` of the standardized input
:math:`\tilde x` (see :func:`sort`): :math:`P_{ij}` is the probability that sorted slot
:math:`i` holds element :math:`j`. Values are expectations :math:`P x`; soft indices are rows of
:math:`P`; ranks are expected slot numbers. The ``method`` chooses how :math:`P` is built, the
``mode`` which simplex projection turns scores into rows, and ``softness`` how far from the hard
permutation it is.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .._core.checks import (
    INTERPOLATIONS,
    check_bool,
    check_choice,
    check_flags,
    check_positive_int,
    check_quantile_level,
)
from .._core.precision import compute_dtype
from .._core.straight_through import st
from .._core.zero_grad import with_zero_grad
from ..methods import check_median_method, method_arg_doc
from ._sorting_prep import (
    Family,
    check_log_prob_eps,
    floored_log,
    gather,
    one_hot,
    prepare,
    soft_rows,
    sorted_values,
    values_from_rows,
)

__all__ = [
    "sort",
    "argsort",
    "topk",
    "rank",
    "quantile",
    "argquantile",
    "percentile",
    "argpercentile",
    "median",
    "argmedian",
    "sort_st",
    "argsort_st",
    "topk_st",
    "rank_st",
    "quantile_st",
    "argquantile_st",
    "percentile_st",
    "argpercentile_st",
    "median_st",
    "argmedian_st",
    "QuantileResult",
]


class QuantileResult(NamedTuple):
    """``quantile(..., return_argquantile=True)``: the values and their soft indices."""

    values: torch.Tensor
    indices: torch.Tensor


def _log(p: torch.Tensor, log: bool) -> torch.Tensor:
    return torch.log(p) if log else p


def _log_mode(return_log_probs: bool, log_prob_eps):
    """``(log, eps)``: whether the methods compute log-probabilities themselves, and the floor
    (``None`` unless the log-probabilities come from floored probabilities, see :func:`_floored`)."""
    eps = check_log_prob_eps(log_prob_eps)
    return (return_log_probs and eps is None), (eps if return_log_probs else None)


def _floored(p, eps):
    """Soft indices ``p`` (probabilities) as floored log-probabilities when ``eps`` is set."""
    return p if p is None or eps is None else floored_log(p, eps)


def _sorted_rows(fam: Family, descending: bool, rows, *, with_indices, gated_grad, log, prefix=False):
    """Values ``(..., r)`` and (optionally) soft index rows ``(..., r, n)`` for sorted slots ``rows``
    (``prefix``: ``rows`` is ``arange(r)``, which the fused kernels take as a slice: a top-``r``
    instead of a full sort)."""
    if fam.mode == "hard":
        hard = torch.sort(fam.flat, dim=-1, descending=descending)
        values, index = hard.values, hard.indices
        if rows is not None:
            values, index = values.index_select(-1, rows), index.index_select(-1, rows)
        return values, (_log(one_hot(index, fam.n, fam.flat), log) if with_indices else None)
    if fam.method.values_from_scores:
        values = sorted_values(fam, descending)
        values = values if rows is None else values.index_select(-1, rows)
        return values, (soft_rows(fam, descending, rows, log) if with_indices else None)
    if not with_indices and rows is None:  # without the n x n matrix
        return sorted_values(fam, descending, gated_grad), None
    fused = fam.method.fused_rows
    if fused is not None and gated_grad and not log:
        # One fused kernel gives the rows and their expectations (no n x n temporaries).
        excluded = fam.excluded(descending) if fam.excluding else None
        data = fam.flat if excluded is None else excluded.finite_flat()
        slots = slice(0, rows.shape[0]) if prefix and rows is not None else rows
        out = fused(fam.scaled.scores, fam.softness, fam.mode, descending, slots, keep=with_indices, values=data)
        values, p = (out[1], out[0]) if with_indices else (out[0], None)
        if excluded is not None:
            values = excluded.fix_values(values, rows)
            p = None if p is None else excluded.fix_rows(p, rows, False, fam.flat)
        return values, p
    p = soft_rows(fam, descending, rows, log)
    return values_from_rows(fam, p, log, gated_grad, descending, rows), (p if with_indices else None)


_SORT_ARGS = r"""
        softness (float or Tensor): temperature, positive and finite; a tensor broadcasts against
            ``x`` with ``dim`` set to 1 (one temperature per channel). Default: ``0.1``.
        mode (str): ``"hard"`` (exact torch result), ``"smooth"`` (softmax rows), ``"c0"``
            (sparsemax), ``"c1"`` (1.5-entmax), ``"c2"`` (4/3-entmax). Default: ``"smooth"``.
@METHOD@
        standardize (bool): squash ``x`` along ``dim`` to
            :math:`\operatorname{sigmoid}((x - \mu) / \sqrt{\sigma^2 + 10^{-6}})` before relaxing,
            which makes the result invariant to :math:`a x + b`, :math:`a > 0` (no effect with
            ``"smooth_sort"``, defined on ``x`` itself). Default: ``True``.
        method_options (dict, optional): options of the chosen ``method``, checked against the
            ones it declares (:ref:`method-options` lists them: the transport's ``tol`` and
            ``max_iter``, the sorting network's ``network`` and ``distribution`` ...).
            Default: ``None``.
        ot_kwargs (dict, optional): the optimal-transport method's options under their older
            name, checked whatever the method and ignored by the other methods. Default: ``None``.
        gated_grad (bool): ``False`` detaches the soft index before values are gathered, so
            gradients reach ``x`` only through the gathered values. Default: ``True``.
        return_log_probs (bool): return soft indices as log-probabilities (``-inf`` at the exact
            zeros of the polynomial modes). Default: ``False``.
        log_prob_eps (float, optional): with ``return_log_probs``, floor the probabilities at
            this value and renormalize before the logarithm, so the log-probabilities stay finite
            at the exact zeros of the sparse modes and of ``"hard"``. Default: ``None``."""
_SORT_ARGS = _SORT_ARGS.replace("@METHOD@", method_arg_doc("neuralsort"))


def sort(
    x,
    dim=-1,
    descending=False,
    *,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    gated_grad=True,
    return_indices=None,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    check_flags(descending=descending, gated_grad=gated_grad, return_log_probs=return_log_probs)
    check_bool("return_indices", return_indices, allow_none=True)
    log, eps = _log_mode(return_log_probs, log_prob_eps)
    fam = prepare(
        x,
        dim,
        softness,
        mode,
        method,
        standardize,
        needs_indices=bool(return_indices),
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        mask=mask,
        descending=descending,
    )
    if return_indices is None:
        return_indices = fam.mode == "hard" or fam.method.gives_indices
    values, p = _sorted_rows(fam, descending, None, with_indices=return_indices, gated_grad=gated_grad, log=log)
    return torch.return_types.sort((fam.values_back(values), _floored(None if p is None else fam.index_back(p), eps)))


#: The arguments of the operators that return soft indices (only methods with a permutation serve).
_INDEX_ARGS = _SORT_ARGS.split("        gated_grad")[0].replace(
    method_arg_doc("neuralsort"), method_arg_doc("neuralsort", indices=True)
)


sort.__doc__ = (
    r"""Soft sort, a relaxation of :func:`torch.sort`.

    With the standardized input :math:`\tilde x` and the simplex projection :math:`\Pi_{mode}`,
    the default method (NeuralSort) builds row :math:`i` (1-based, descending) of the soft
    permutation as

    .. math::
        P_{i\cdot} = \Pi_{mode}\!\left(\frac{(n + 1 - 2i)\,\tilde x - \sum_k |\tilde x - \tilde x_k|_{soft}}
        {\text{softness}}\right), \qquad \text{values} = P\,x.

    Args:
        x (Tensor): input of any shape.
        dim (int): dimension to sort. Default: ``-1``.
        descending (bool): sort in descending order. Default: ``False``."""
    + _SORT_ARGS
    + r"""
        return_indices (bool, optional): also return the soft permutation. ``False`` computes the
            values without ever holding the ``n x n`` matrix (softsort, neuralsort). ``None``:
            whenever the method has a permutation (all but ``"fast_soft_sort"`` and
            ``"smooth_sort"``). Default: ``None``.

    Shape:
        ``values`` has the shape of ``x``; ``indices`` has ``x``'s shape plus a last axis of size
        ``n``: ``indices[..., i, ..., j]`` is the probability that sorted slot ``i`` holds ``j``.

    Returns:
        ``torch.return_types.sort(values, indices)``; ``indices`` is ``None`` when
        ``return_indices=False``.

    .. note::
        ``mode="hard"`` returns :func:`torch.sort`'s values bit for bit and one-hot indices.

    .. seealso:: :func:`argsort`, :class:`softtorch.nn.SoftSort`, :func:`sort_st`; Grover et al.,
        *Stochastic Optimization of Sorting Networks via Continuous Relaxations* (ICLR 2019).

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
        >>> softtorch.sort(x).values
        tensor([-0.8792, -0.1641,  0.2767,  0.8738])
        >>> softtorch.sort(x, softness=0.5, mode="c0").values
        tensor([-1.0000, -0.6313,  0.6525,  0.9824])
"""
)


def argsort(
    x,
    dim=-1,
    descending=False,
    *,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    check_flags(descending=descending, return_log_probs=return_log_probs)
    log, eps = _log_mode(return_log_probs, log_prob_eps)
    fam = prepare(
        x,
        dim,
        softness,
        mode,
        method,
        standardize,
        needs_indices=True,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        mask=mask,
        descending=descending,
    )
    if fam.mode == "hard":
        index = torch.sort(fam.flat, dim=-1, descending=descending).indices
        p = _log(one_hot(index, fam.n, fam.flat), log)
    else:
        p = soft_rows(fam, descending, None, log)
    return _floored(fam.index_back(p), eps)


argsort.__doc__ = (
    r"""Soft argsort, a relaxation of :func:`torch.argsort`: the soft permutation of :func:`sort`.

    .. math::
        \operatorname{argsort}_{soft}(x) = P, \qquad P_{ij} = \Pr[\text{slot } i \text{ holds element } j]

    Args:
        x (Tensor): input of any shape.
        dim (int): dimension to sort. Default: ``-1``.
        descending (bool): sort in descending order. Default: ``False``."""
    + _INDEX_ARGS
    + r"""        return_log_probs (bool): return log-probabilities. Default: ``False``.
        log_prob_eps (float, optional): with ``return_log_probs``, floor the probabilities at
            this value and renormalize before the logarithm, so the log-probabilities stay finite
            at the exact zeros of the sparse modes and of ``"hard"``. Default: ``None``.

    Shape:
        ``x``'s shape plus a last axis of size ``n``.

    Returns:
        Tensor: row-stochastic soft permutation (one-hot rows in hard mode).

    .. seealso:: :func:`sort`, :class:`softtorch.nn.SoftArgsort`, :func:`argsort_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.argsort(torch.tensor([0.3, -1.0, 1.0]), mode="hard")
        tensor([[0., 1., 0.],
                [1., 0., 0.],
                [0., 0., 1.]])
"""
)


def topk(
    x,
    k,
    dim=-1,
    *,
    largest=True,
    sorted=True,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    gated_grad=True,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    check_flags(largest=largest, sorted=sorted, gated_grad=gated_grad, return_log_probs=return_log_probs)
    log, eps = _log_mode(return_log_probs, log_prob_eps)
    fam = prepare(
        x,
        dim,
        softness,
        mode,
        method,
        standardize,
        needs_indices=False,
        check_n=lambda n: check_positive_int("k", k, low=1, high=n),
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        mask=mask,
        descending=largest,
    )
    if fam.mode == "hard":
        hard = torch.topk(fam.flat, k, dim=-1, largest=largest, sorted=sorted)
        values, p = hard.values, _log(one_hot(hard.indices, fam.n, fam.flat), log)
    else:
        rows = torch.arange(k, device=fam.flat.device)
        with_indices = fam.method.gives_indices
        values, p = _sorted_rows(
            fam, largest, rows, with_indices=with_indices, gated_grad=gated_grad, log=log, prefix=True
        )
    return torch.return_types.topk((fam.values_back(values), _floored(None if p is None else fam.index_back(p), eps)))


topk.__doc__ = (
    r"""Soft top-k, a relaxation of :func:`torch.topk`: the first ``k`` rows of the soft permutation.

    .. math::
        \text{values} = P_{1:k}\, x, \qquad \text{indices} = P_{1:k}

    with :math:`P` the descending soft permutation of :func:`sort` (ascending for ``largest=False``).

    Args:
        x (Tensor): input of any shape.
        k (int): number of elements, ``1 <= k <= n``.
        dim (int): dimension along which to take the top k. Default: ``-1``.
        largest (bool): the largest (``True``) or the smallest elements. Default: ``True``.
        sorted (bool): accepted for compatibility; soft results are always in sorted order.
            Default: ``True``."""
    + _SORT_ARGS
    + r"""

    Shape:
        ``values``: ``x`` with ``dim`` of size ``k``; ``indices``: that shape plus a last axis of size ``n``.

    Returns:
        ``torch.return_types.topk(values, indices)``.

    .. seealso:: :class:`softtorch.nn.SoftTopK`, :func:`topk_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.topk(torch.tensor([-0.2, -1.0, 0.3, 1.0]), k=3).values
        tensor([ 0.8738,  0.2767, -0.1641])
"""
)


def rank(
    x,
    dim=None,
    descending=True,
    *,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    mask=None,
):
    check_flags(descending=descending)
    fam = prepare(
        x,
        dim,
        softness,
        mode,
        method,
        standardize,
        needs_indices=False,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        mask=mask,
        descending=descending,
    )
    hard = None
    if fam.mode == "hard" or fam.excluding:  # the soft ranks need no sort of their own
        order = torch.argsort(fam.flat, dim=-1, descending=descending, stable=True)
        slots = torch.arange(1, fam.n + 1, device=fam.flat.device, dtype=fam.flat.dtype)
        hard = torch.empty_like(fam.flat).scatter(-1, order, slots.expand_as(order))
    if fam.mode == "hard":
        ranks = with_zero_grad(hard, fam.flat)
    else:
        ranks = fam.method.rank(fam.scaled.scores, fam.softness, fam.mode, descending, **fam.options)
    if fam.mode != "hard" and fam.excluding:  # excluded entries keep their hard rank, after (or before) the kept ones
        ranks = torch.where(fam.excluded(descending).kept, ranks, hard)
    if fam.dim is None:
        return ranks.reshape(fam.x.shape)
    return fam.values_back(ranks)


rank.__doc__ = (
    r"""Soft rank: each element's expected 1-based position in the sorted order.

    .. math::
        r_j = \frac{\sum_i i\, P_{ij}}{\sum_i P_{ij}}

    with :math:`P` the soft permutation of :func:`sort` (descending by default, so the largest
    element has rank 1). The hard rank is ``argsort(argsort(x)) + 1``.

    Args:
        x (Tensor): input of any shape.
        dim (int, optional): dimension to rank along; ``None`` ranks all elements together.
            Default: ``None``.
        descending (bool): rank 1 for the largest element. Default: ``True``."""
    + _SORT_ARGS.split("        gated_grad")[0]
    + r"""
    Shape:
        Same as ``x``.

    Returns:
        Tensor: float ranks in :math:`[1, n]`.

    .. seealso:: :class:`softtorch.nn.SoftRank`, :func:`rank_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.rank(torch.tensor([-0.2, -1.0, 0.3, 1.0]), descending=False)
        tensor([1.9950, 1.0548, 3.0239, 3.9228])
"""
)


def _levels(q, like):
    """A checked ``q`` as a 1-D tensor like ``like``, and whether it was a scalar."""
    if isinstance(q, torch.Tensor):
        return q.to(device=like.device, dtype=like.dtype).reshape(-1), q.dim() == 0
    return torch.tensor([float(q)], device=like.device, dtype=like.dtype), True


def _order_statistics(q, n, interpolation):
    """Lower/upper order statistics and the weight of the upper one, as torch.quantile chooses them.

    ``n`` is an int, or a ``(..., 1)`` tensor of per-row counts (then the results are ``(..., K)``).
    """
    pos = q * (n - 1)
    lower = pos.floor()
    if interpolation == "linear":
        weight = pos - lower
    elif interpolation == "lower":
        weight = torch.zeros_like(pos)
    elif interpolation == "higher":
        weight = (pos > lower).to(pos.dtype)
    elif interpolation == "nearest":
        weight = pos.round() - lower
    else:  # midpoint
        weight = torch.full_like(pos, 0.5)
    if isinstance(n, torch.Tensor):
        top = (n - 1).clamp_min(0)
        return lower.long().clamp_min(0).minimum(top), pos.ceil().long().clamp_min(0).minimum(top), weight
    lo = lower.long().clamp(0, n - 1)
    hi = pos.ceil().long().clamp(0, n - 1)
    return lo, hi, weight


def _slot_table(fam: Family, gated_grad: bool, with_rows: bool):
    """Values ``(..., n)`` of every ascending sorted slot and (``with_rows``) all rows ``(..., n, n)``."""
    if fam.mode == "hard":
        excluded = fam.excluded(False)
        rows = one_hot(excluded.hard_index, fam.n, fam.flat) if with_rows else None
        return excluded.hard_values, rows
    p = soft_rows(fam, False) if (with_rows or not fam.method.values_from_scores) else None
    if fam.method.values_from_scores:
        return sorted_values(fam, False), p
    return values_from_rows(fam, p, False, gated_grad, False, None), p


def _take_slots(values, rows_p, slots):
    """Per-row slots ``(..., K)`` of a slot table: values ``(..., K)`` and rows ``(..., K, n)``."""
    slots = slots.expand(*values.shape[:-1], slots.shape[-1])
    taken = values.gather(-1, slots)
    if rows_p is None:
        return taken, None
    return taken, rows_p.gather(-2, slots.unsqueeze(-1).expand(*slots.shape, rows_p.shape[-1]))


def _row_slots(fam: Family, slots, gated_grad: bool, with_rows: bool):
    """Values ``(..., K)`` and (``with_rows``) rows ``(..., K, n)`` of each row's ascending sorted
    ``slots`` ``(..., K)``: from the table of every slot, or, for a method that relaxes the slots
    it is asked for together (``per_row_slots``: its few rows come from a smaller problem), from
    each row's own."""
    if fam.mode != "hard" and fam.excluding and fam.method.per_row_slots:
        p = soft_rows(fam, False, slots)
        return values_from_rows(fam, p, False, gated_grad, False, slots), (p if with_rows else None)
    values, rows_p = _slot_table(fam, gated_grad, with_rows)
    return _take_slots(values, rows_p, slots)


def _mix(lo, hi, weight):
    """``(1 - w) lo + w hi``, exact at ``w`` = 0 and 1 (where the other end may be infinite)."""
    mixed = (1.0 - weight) * lo + weight * hi
    return torch.where(weight == 0, lo, torch.where(weight == 1, hi, mixed))


def _quantile_excluding(fam: Family, qt, interpolation, gated_grad, indices):
    """Quantiles ``(..., K)`` and soft indices ``(..., K, n)`` over each row's kept entries (``mask=``)."""
    lo, hi, weight = _order_statistics(qt, fam.mask_count, interpolation)
    values, rows_p = _row_slots(fam, torch.cat([lo, hi], -1), gated_grad, indices)
    k = lo.shape[-1]
    v_lo, v_hi = values[..., :k], values[..., k:]
    p_lo, p_hi = (None, None) if rows_p is None else (rows_p[..., :k, :], rows_p[..., k:, :])
    weight = weight.expand_as(v_lo)
    dist = None if rows_p is None else (1.0 - weight).unsqueeze(-1) * p_lo + weight.unsqueeze(-1) * p_hi
    return _mix(v_lo, v_hi, weight), dist


def _quantile(
    x,
    q,
    dim,
    keepdim,
    interpolation,
    softness,
    mode,
    method,
    standardize,
    options,
    gated_grad,
    log,
    eps,
    values,
    indices,
    mask=None,
):
    """Shared body of quantile/argquantile: ``(values or None, soft index or None)`` in torch's layout."""
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    check_quantile_level(q)
    check_flags(keepdim=keepdim, gated_grad=gated_grad, return_log_probs=log)
    log, eps = _log_mode(log, eps)
    fam = prepare(
        x, dim, softness, mode, method, standardize, needs_indices=indices, **options, mask=mask, descending=False
    )
    qt, scalar = _levels(q, fam.flat)
    if fam.masked:  # the order statistics depend on each row's count of kept entries
        v, dist = _quantile_excluding(fam, qt, interpolation, gated_grad, indices)
        out_values = _quantile_layout(fam, v, keepdim, scalar, extra=0) if values else None
        if dist is not None:
            dist = _quantile_layout(fam, _log(dist, log), keepdim, scalar, extra=1)
        return out_values, dist
    lo, hi, weight = _order_statistics(qt, fam.n, interpolation)
    rows = torch.cat([lo, hi])
    k = qt.shape[0]
    dist = fused_values = None
    fused = fam.method.fused_rows
    if values and fused is not None and fam.mode != "hard" and gated_grad and not fam.excluding and not fam.options:
        # One fused kernel gives the order statistics' expectations (and their rows if asked, or
        # kept for the backward where recomputing them would sort again: the sparse projections).
        keep = indices or fam.mode != "smooth"
        out = fused(fam.scaled.scores, fam.softness, fam.mode, False, rows, keep=keep, values=fam.flat)
        fused_values = _mix(out[-1][..., :k], out[-1][..., k:], weight)
        if indices:
            dist = (1.0 - weight).unsqueeze(-1) * out[0][..., :k, :] + weight.unsqueeze(-1) * out[0][..., k:, :]
    elif indices or (fam.mode != "hard" and not fam.method.values_from_scores):
        if fam.mode == "hard":
            index = torch.sort(fam.flat, dim=-1, stable=True).indices.index_select(-1, rows)
            p = one_hot(index, fam.n, fam.flat)
        else:
            p = soft_rows(fam, False, rows, False)
        dist = (1.0 - weight).unsqueeze(-1) * p[..., :k, :] + weight.unsqueeze(-1) * p[..., k:, :]  # (..., K, n)
    out_values = None
    if values and fam.mode == "hard" and fam.x.numel() == 0:
        # torch.quantile refuses an empty batch; its result is empty all the same.
        ends = torch.sort(fam.flat, dim=-1).values.index_select(-1, rows)
        v = (1.0 - weight) * ends[..., :k] + weight * ends[..., k:]
        out_values = _quantile_layout(fam, v, keepdim, scalar, extra=0)
    elif values and fam.mode == "hard":
        # torch.quantile takes float32/float64 only; half inputs go through float32.
        computed = fam.x.to(compute_dtype(fam.x.dtype))
        level = qt[0] if scalar else qt
        out_values = torch.quantile(
            computed, level.to(computed.dtype), dim=dim, keepdim=keepdim, interpolation=interpolation
        ).to(fam.x.dtype)
    elif values:
        if fused_values is not None:
            v = fused_values
        elif fam.method.values_from_scores:
            ends = sorted_values(fam, False).index_select(-1, rows)
            v = _mix(ends[..., :k], ends[..., k:], weight) if fam.excluding else None
            v = (1.0 - weight) * ends[..., :k] + weight * ends[..., k:] if v is None else v
        elif fam.excluding:  # slot values first: an infinite order statistic has weight 0 or 1
            ends = values_from_rows(fam, p, False, gated_grad, False, rows)
            v = _mix(ends[..., :k], ends[..., k:], weight)
        else:
            v = gather(dist, fam.flat, gated_grad)
        out_values = _quantile_layout(fam, v, keepdim, scalar, extra=0)
    if dist is not None and indices:
        dist = _floored(_quantile_layout(fam, _log(dist, log), keepdim, scalar, extra=1), eps)
    return out_values, (dist if indices else None)


def _quantile_layout(fam: Family, t: torch.Tensor, keepdim: bool, scalar: bool, extra: int) -> torch.Tensor:
    """``(..., K[, n])`` to torch.quantile's layout: ``(K, *reduced)``, q-axis dropped for a scalar q."""
    t = t.movedim(-1 - extra, 0)  # (K, ..., [n])
    if keepdim:
        if fam.dim is None:
            t = t.reshape(t.shape[:1] + (1,) * fam.x.dim() + t.shape[t.dim() - extra :])
        elif fam.x.dim() > 0:
            t = t.unsqueeze(fam.dim + 1)
    return t.squeeze(0) if scalar else t


def quantile(
    x,
    q,
    dim=None,
    keepdim=False,
    *,
    interpolation="linear",
    return_argquantile=False,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    gated_grad=True,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    check_flags(return_argquantile=return_argquantile)
    values, dist = _quantile(
        x,
        q,
        dim,
        keepdim,
        interpolation,
        softness,
        mode,
        method,
        standardize,
        {"method_options": method_options, "ot_kwargs": ot_kwargs},
        gated_grad,
        return_log_probs,
        log_prob_eps,
        values=True,
        indices=return_argquantile,
        mask=mask,
    )
    return QuantileResult(values, dist) if return_argquantile else values


def argquantile(
    x,
    q,
    dim=None,
    keepdim=False,
    *,
    interpolation="linear",
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    return _quantile(
        x,
        q,
        dim,
        keepdim,
        interpolation,
        softness,
        mode,
        method,
        standardize,
        {"method_options": method_options, "ot_kwargs": ot_kwargs},
        True,
        return_log_probs,
        log_prob_eps,
        values=False,
        indices=True,
        mask=mask,
    )[1]


_QUANTILE_DOC = r"""

    With :math:`p = q (n - 1)`, the soft index mixes the soft permutation rows of the order
    statistics :math:`\lfloor p \rfloor` and :math:`\lceil p \rceil` with the interpolation weight
    :math:`w` (``linear``: :math:`p - \lfloor p \rfloor`):

    .. math::
        a_q = (1 - w)\, P_{\lfloor p \rfloor} + w\, P_{\lceil p \rceil}, \qquad
        \operatorname{quantile}_{soft}(x, q) = \langle a_q, x \rangle

    Args:
        x (Tensor): input of any shape.
        q (float or Tensor): quantile level(s) in :math:`[0, 1]`; a 1-D tensor of ``K`` levels adds
            a leading axis of size ``K``.
        dim (int, optional): dimension to reduce; ``None`` uses all elements. Default: ``None``.
        keepdim (bool): keep the reduced dimension. Default: ``False``.
        interpolation (str): ``"linear"``, ``"lower"``, ``"higher"``, ``"nearest"`` or
            ``"midpoint"``, as in :func:`torch.quantile`. Default: ``"linear"``."""


quantile.__doc__ = (
    r"""Soft quantile, a relaxation of :func:`torch.quantile`."""
    + _QUANTILE_DOC
    + r"""
        return_argquantile (bool): also return the soft index. Default: ``False``."""
    + _SORT_ARGS
    + r"""

    Shape:
        As :func:`torch.quantile`; the soft index adds a last axis of size ``n``.

    Returns:
        Tensor, or ``QuantileResult(values, indices)`` with ``return_argquantile=True``.

    .. seealso:: :func:`argquantile`, :class:`softtorch.nn.SoftQuantile`, :func:`quantile_st`.

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
        >>> softtorch.quantile(x, q=0.2)
        tensor(-0.4501)
        >>> softtorch.quantile(x, q=0.2, mode="hard")
        tensor(-0.5200)
"""
)
argquantile.__doc__ = (
    r"""Soft argquantile: the distribution over elements whose expectation is :func:`quantile`."""
    + _QUANTILE_DOC
    + _INDEX_ARGS
    + r"""        return_log_probs (bool): return log-probabilities. Default: ``False``.
        log_prob_eps (float, optional): with ``return_log_probs``, floor the probabilities at
            this value and renormalize before the logarithm, so the log-probabilities stay finite
            at the exact zeros of the sparse modes and of ``"hard"``. Default: ``None``.

    Shape:
        :func:`torch.quantile`'s output shape plus a last axis of size ``n``.

    Returns:
        Tensor: probability vectors (a two-point mix of one-hots in hard mode).

    .. seealso:: :func:`quantile`, :class:`softtorch.nn.SoftArgquantile`, :func:`argquantile_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.argquantile(torch.tensor([-0.2, -1.0, 0.3, 1.0]), q=0.2, mode="hard")
        tensor([0.6000, 0.4000, 0.0000, 0.0000])
"""
)


def _median(x, dim, keepdim, softness, mode, method, standardize, options, gated_grad, log, eps, values, mask=None):
    check_flags(keepdim=keepdim, gated_grad=gated_grad, return_log_probs=log)
    log, eps = _log_mode(log, eps)
    if dim is None and keepdim and values:
        raise ValueError("keepdim=True needs an integer dim for median (torch.median() with dim=None has no keepdim)")
    if values:
        check_median_method(method, dim)
    fam = prepare(
        x, dim, softness, mode, method, standardize, needs_indices=not values, **options, mask=mask, descending=False
    )
    middle = torch.tensor([(fam.n - 1) // 2], device=fam.flat.device)
    if fam.masked:  # the middle slot depends on each row's count of kept entries
        with_rows = (fam.mode == "hard" or fam.method.gives_indices) and (dim is not None or not values)
        value, p = _row_slots(fam, ((fam.mask_count - 1) // 2).clamp_min(0), gated_grad, with_rows)
        p = None if p is None else _log(p, log)
    elif fam.mode == "hard":
        hard = torch.median(fam.flat, dim=-1)
        value = hard.values.unsqueeze(-1)
        p = _log(one_hot(hard.indices, fam.n, fam.flat), log).unsqueeze(-2)
    else:
        with_indices = (dim is not None or not values) and fam.method.gives_indices
        value, p = _sorted_rows(fam, False, middle, with_indices=with_indices, gated_grad=gated_grad, log=log)
    if fam.dim is None:
        # argmedian(dim=None, keepdim=True): one soft index of shape (1, ..., 1, n), as softtorch 0.1.1
        flat_index = [1] * fam.x.dim() + [fam.n] if keepdim else [-1]
        return value.reshape(()), _floored(None if p is None else p.reshape(flat_index), eps)
    return fam.values_back(value, keepdim), _floored(None if p is None else fam.index_back(p, keepdim), eps)


def median(
    x,
    dim=None,
    keepdim=False,
    *,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    gated_grad=True,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    value, p = _median(
        x,
        dim,
        keepdim,
        softness,
        mode,
        method,
        standardize,
        {"method_options": method_options, "ot_kwargs": ot_kwargs},
        gated_grad,
        return_log_probs,
        log_prob_eps,
        True,
        mask,
    )
    return value if dim is None else torch.return_types.median((value, p))


def argmedian(
    x,
    dim=None,
    keepdim=False,
    *,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    return _median(
        x,
        dim,
        keepdim,
        softness,
        mode,
        method,
        standardize,
        {"method_options": method_options, "ot_kwargs": ot_kwargs},
        True,
        return_log_probs,
        log_prob_eps,
        False,
        mask,
    )[1]


median.__doc__ = (
    r"""Soft median, a relaxation of :func:`torch.median` (the lower median).

    .. math::
        \operatorname{median}_{soft}(x) = \langle P_{\lfloor (n - 1)/2 \rfloor}, x \rangle

    with :math:`P` the ascending soft permutation of :func:`sort`.

    Args:
        x (Tensor): input of any shape.
        dim (int, optional): dimension to reduce; ``None`` uses all elements. Default: ``None``.
        keepdim (bool): keep the reduced dimension (needs an integer ``dim``). Default: ``False``."""
    + _SORT_ARGS
    + r"""

    Shape:
        ``dim=None``: 0-d. Otherwise ``values`` has ``x``'s shape without ``dim`` and ``indices``
        adds a last axis of size ``n``.

    Returns:
        Tensor for ``dim=None``, else ``torch.return_types.median(values, indices)``.

    .. seealso:: :func:`argmedian`, :class:`softtorch.nn.SoftMedian`, :func:`median_st`.

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
        >>> softtorch.median(x)
        tensor(-0.1641)
        >>> [round(p, 4) for p in softtorch.median(x, dim=0).indices.tolist()]
        [0.8009, 0.0491, 0.1498, 0.0002]
"""
)

argmedian.__doc__ = (
    r"""Soft argmedian: the soft index of the lower median.

    .. math::
        \operatorname{argmedian}_{soft}(x) = P_{\lfloor (n - 1)/2 \rfloor}

    Args:
        x (Tensor): input of any shape.
        dim (int, optional): dimension to reduce; ``None`` uses all elements. Default: ``None``.
        keepdim (bool): keep the reduced dimension. Default: ``False``."""
    + _INDEX_ARGS
    + r"""        return_log_probs (bool): return log-probabilities. Default: ``False``.
        log_prob_eps (float, optional): with ``return_log_probs``, floor the probabilities at
            this value and renormalize before the logarithm, so the log-probabilities stay finite
            at the exact zeros of the sparse modes and of ``"hard"``. Default: ``None``.

    Shape:
        ``x``'s shape without ``dim`` plus a last axis of size ``n``; ``dim=None``: ``(x.numel(),)``.

    Returns:
        Tensor: probability vectors.

    .. seealso:: :func:`median`, :class:`softtorch.nn.SoftArgmedian`, :func:`argmedian_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.argmedian(torch.tensor([-0.2, -1.0, 0.3, 1.0]), mode="hard")
        tensor([1., 0., 0., 0.])
"""
)

#: The ``mask`` argument, documented once for the whole family.
MASK_DOC = r"""
        mask (Tensor, optional): bool, broadcasting to ``x``; ``False`` drops the entry, which then
            acts as the infinity that sorts it last (``-inf`` for a descending order, ``+inf`` for
            an ascending one): zero weight in every kept slot, no part in the standardization,
            its exact hard value in its own slot; with every method and mode the kept slots equal
            those of the row without the dropped entries. Quantiles and medians count the kept
            entries only. Entries at
            :math:`\pm\infty` are excluded the same way without a mask (see
            :doc:`/user_guide/masking`). Default: ``None``."""


def add_mask_doc(*functions) -> None:
    """Append :data:`MASK_DOC` to the arguments of ``functions`` (before their ``Shape`` section)."""
    for fn in functions:
        head, sep, tail = fn.__doc__.partition("\n\n    Shape:")
        fn.__doc__ = head.rstrip("\n") + MASK_DOC + sep + tail


add_mask_doc(sort, argsort, topk, rank, quantile, argquantile, median, argmedian)


def _fraction(q):
    """Percentile levels in [0, 100] (checked) as quantile levels: ``q / 100``."""
    check_quantile_level(q, high=100)
    return q / 100


def percentile(
    x,
    q,
    dim=None,
    keepdim=False,
    *,
    interpolation="linear",
    return_argpercentile=False,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    gated_grad=True,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    check_flags(return_argpercentile=return_argpercentile)
    return quantile(
        x,
        _fraction(q),
        dim,
        keepdim,
        interpolation=interpolation,
        return_argquantile=return_argpercentile,
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        gated_grad=gated_grad,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        mask=mask,
    )


def argpercentile(
    x,
    q,
    dim=None,
    keepdim=False,
    *,
    interpolation="linear",
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    return argquantile(
        x,
        _fraction(q),
        dim,
        keepdim,
        interpolation=interpolation,
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        mask=mask,
    )


_PERCENTILE_ARGS = (
    _QUANTILE_DOC.split("    Args:")[1]
    .replace("quantile level(s) in :math:`[0, 1]`", "percentile(s) in :math:`[0, 100]`")
    .replace("K`` levels", "K`` percentiles")
)

percentile.__doc__ = (
    r"""Soft percentile: :func:`quantile` at ``q / 100``, like :func:`numpy.percentile`.

    With :math:`q \in [0, 100]`, :math:`\operatorname{percentile}_{soft}(x, q) =
    \operatorname{quantile}_{soft}(x, q / 100)` exactly (the same computation, so the same bits).

    Args:"""
    + _PERCENTILE_ARGS
    + r"""
        return_argpercentile (bool): also return the soft index. Default: ``False``."""
    + _SORT_ARGS
    + r"""

    Shape:
        As :func:`quantile`.

    Returns:
        Tensor, or ``QuantileResult(values, indices)`` with ``return_argpercentile=True``.

    .. seealso:: :func:`argpercentile`, :class:`softtorch.nn.SoftPercentile`, :func:`percentile_st`.

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
        >>> softtorch.percentile(x, q=20)
        tensor(-0.4501)
        >>> softtorch.percentile(x, q=torch.tensor([25.0, 75.0]), mode="hard")
        tensor([-0.4000,  0.4750])
"""
)

argpercentile.__doc__ = (
    r"""Soft argpercentile: :func:`argquantile` at ``q / 100``.

    Args:"""
    + _PERCENTILE_ARGS
    + _INDEX_ARGS
    + r"""        return_log_probs (bool): return log-probabilities. Default: ``False``.
        log_prob_eps (float, optional): with ``return_log_probs``, floor the probabilities at
            this value and renormalize before the logarithm. Default: ``None``.

    Shape:
        As :func:`argquantile`.

    Returns:
        Tensor: probability vectors (mixtures of two soft permutation rows).

    .. seealso:: :func:`percentile`, :class:`softtorch.nn.SoftArgpercentile`, :func:`argpercentile_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.argpercentile(torch.tensor([-0.2, -1.0, 0.3, 1.0]), q=20, mode="hard")
        tensor([0.6000, 0.4000, 0.0000, 0.0000])
"""
)

add_mask_doc(percentile, argpercentile)

sort_st = st(sort)
argsort_st = st(argsort)
topk_st = st(topk)
rank_st = st(rank)
quantile_st = st(quantile)
argquantile_st = st(argquantile)
percentile_st = st(percentile)
argpercentile_st = st(argpercentile)
median_st = st(median)
argmedian_st = st(argmedian)
