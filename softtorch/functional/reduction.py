r"""Soft max, min, argmax and argmin.

The soft argmax is a probability vector over the ``n`` positions of the reduced dim; the soft
maximum is the input's expectation under it. With the default method (SoftSort) it is

.. math::
    \operatorname{argmax}_{soft}(x) = \Pi_{mode}\!\left(-\frac{|\max_k \tilde x_k - \tilde x|}{\text{softness}}\right),
    \qquad \max_{soft}(x) = \langle \operatorname{argmax}_{soft}(x),\, x \rangle,

where :math:`\tilde x` is the standardized input and :math:`\Pi_{mode}` the simplex projection of
the mode (softmax for ``"smooth"``, sparsemax for ``"c0"``, 1.5- and 4/3-entmax for ``"c1"`` and
``"c2"``). The minimum is the maximum of :math:`-\tilde x`.
"""

from __future__ import annotations

import torch

from .._core.checks import check_flags
from .._core.straight_through import st
from ..methods import REDUCTION_METHOD, method_arg_doc
from ._sorting_prep import Family, check_log_prob_eps, fix_rows, floored_log, gather, one_hot, prepare, sorted_values
from .sorting import add_mask_doc

__all__ = ["max", "min", "argmax", "argmin", "max_st", "min_st", "argmax_st", "argmin_st"]


def _soft_extreme(fam: Family, largest: bool, log: bool):
    """Soft (arg)max rows: distribution ``(..., 1, n)`` (or its log) over the scores."""
    scores = fam.scaled.scores
    dist = fam.method.argmax(scores, fam.softness, fam.mode, largest, log, **fam.options)
    return fix_rows(fam, dist.unsqueeze(-2), largest, torch.zeros(1, dtype=torch.long, device=scores.device), log)


def _extreme(
    x,
    dim,
    keepdim,
    largest,
    *,
    softness,
    mode,
    method,
    standardize,
    method_options,
    ot_kwargs,
    gated_grad,
    return_log_probs,
    log_prob_eps,
    values,
    indices,
    mask,
):
    """Shared body of max/min/argmax/argmin: returns ``(value, index)`` in the caller's layout."""
    check_flags(keepdim=keepdim, gated_grad=gated_grad, return_log_probs=return_log_probs)
    eps = check_log_prob_eps(log_prob_eps)
    floor = return_log_probs and eps is not None  # log-probabilities from the floored probabilities
    return_log_probs = return_log_probs and not floor
    fam = prepare(
        x,
        dim,
        softness,
        mode,
        method,
        standardize,
        needs_indices=indices and not values,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        mask=mask,
        descending=largest,
    )
    flat = fam.flat
    # Value outputs of a method without a permutation come without indices.
    indices = indices and (fam.mode == "hard" or fam.method.gives_indices)
    if fam.mode == "hard":
        hard = torch.max(flat, dim=-1) if largest else torch.min(flat, dim=-1)
        value = hard.values.unsqueeze(-1)
        dist = one_hot(hard.indices, fam.n, flat).unsqueeze(-2) if indices else None
        if dist is not None and return_log_probs:
            dist = torch.log(dist)
    else:
        dist = _soft_extreme(fam, largest, return_log_probs) if (indices or not fam.method.values_from_scores) else None
        if not values:
            value = None
        elif fam.method.values_from_scores:
            value = sorted_values(fam, largest)[..., :1]
        else:
            probs = dist.exp() if return_log_probs else dist
            if fam.excluding:
                first = torch.zeros(1, dtype=torch.long, device=flat.device)
                excluded = fam.excluded(largest)
                value = excluded.fix_values(gather(probs, excluded.finite_flat(), gated_grad), first)
            else:
                value = gather(probs, flat, gated_grad)
    if floor and dist is not None:
        dist = floored_log(dist, eps)
    if fam.dim is None:
        value = None if value is None else value.reshape([1] * fam.x.dim() if keepdim else [])
        # keepdim: one soft index of shape (1, ..., 1, n), as torch.argmax(keepdim=True) keeps x's dims
        dist = None if dist is None else dist.reshape([1] * fam.x.dim() + [fam.n] if keepdim else [-1])
    else:
        value = None if value is None else fam.values_back(value, keepdim)
        dist = None if dist is None else fam.index_back(dist, keepdim)
    return value, dist


_METHOD_DOC = method_arg_doc(REDUCTION_METHOD, values_only="values only")
_ARGS = r"""
    Args:
        x (Tensor): input of any shape (integer inputs are promoted to float).
        dim (int, optional): dimension to reduce; ``None`` reduces over all elements. Default: ``None``.
        keepdim (bool): keep the reduced dimension with size 1. Default: ``False``.
        softness (float or Tensor): temperature, positive; a tensor broadcasts against ``x`` with
            ``dim`` set to 1. Default: ``0.1``.
        mode (str): ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``. Default: ``"smooth"``.
@METHOD@
        standardize (bool): squash the input along ``dim`` before relaxing (see
            :func:`softtorch.sort`). Default: ``True``.
        method_options (dict, optional): options of the chosen ``method`` (see
            :func:`softtorch.sort`). Default: ``None``.
        ot_kwargs (dict, optional): the optimal-transport method's options under their older
            name, ignored by the other methods. Default: ``None``.
        return_log_probs (bool): return log-probabilities for the soft index. Default: ``False``.
        log_prob_eps (float, optional): with ``return_log_probs``, floor the probabilities at
            this value and renormalize before the logarithm, so the log-probabilities stay finite
            where the sparse modes (and ``"hard"``) give exact zeros. ``None``: the plain
            logarithm. Default: ``None``.
"""
_ARGS = _ARGS.replace("@METHOD@", _METHOD_DOC)
_VALUE_ARGS = (
    _ARGS
    + """        gated_grad (bool): ``False`` detaches the soft index before the values are gathered.
            Default: ``True``.
"""
)


def max(
    x,
    dim=None,
    keepdim=False,
    *,
    softness=0.1,
    mode="smooth",
    method=REDUCTION_METHOD,
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    gated_grad=True,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    value, dist = _extreme(
        x,
        dim,
        keepdim,
        True,
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        gated_grad=gated_grad,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        values=True,
        indices=dim is not None,
        mask=mask,
    )
    return value if dim is None else torch.return_types.max((value, dist))


def min(
    x,
    dim=None,
    keepdim=False,
    *,
    softness=0.1,
    mode="smooth",
    method=REDUCTION_METHOD,
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    gated_grad=True,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    value, dist = _extreme(
        x,
        dim,
        keepdim,
        False,
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        gated_grad=gated_grad,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        values=True,
        indices=dim is not None,
        mask=mask,
    )
    return value if dim is None else torch.return_types.min((value, dist))


def argmax(
    x,
    dim=None,
    keepdim=False,
    *,
    softness=0.1,
    mode="smooth",
    method=REDUCTION_METHOD,
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    return _extreme(
        x,
        dim,
        keepdim,
        True,
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        gated_grad=True,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        values=False,
        indices=True,
        mask=mask,
    )[1]


def argmin(
    x,
    dim=None,
    keepdim=False,
    *,
    softness=0.1,
    mode="smooth",
    method=REDUCTION_METHOD,
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    return_log_probs=False,
    log_prob_eps=None,
    mask=None,
):
    return _extreme(
        x,
        dim,
        keepdim,
        False,
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        gated_grad=True,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        values=False,
        indices=True,
        mask=mask,
    )[1]


max.__doc__ = (
    r"""Soft maximum, a relaxation of :func:`torch.max`.

    .. math::
        \max_{soft}(x) = \langle \operatorname{argmax}_{soft}(x),\, x \rangle
"""
    + _VALUE_ARGS
    + r"""
    Shape:
        ``dim=None``: a 0-d value. Otherwise ``values`` has ``x``'s shape without ``dim`` (or with
        size 1 if ``keepdim``) and ``indices`` the same shape plus a last axis of size ``n``.

    Returns:
        Tensor or ``torch.return_types.max(values, indices)``: the value alone for ``dim=None``,
        else the values and the soft argmax.

    .. note::
        ``mode="hard"`` gives exactly :func:`torch.max` with one-hot indices. For the softmax
        *function* see :class:`torch.nn.Softmax`.

    .. seealso:: :func:`argmax`, :class:`softtorch.nn.SoftMax`, :func:`max_st`.

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
        >>> softtorch.max(x)
        tensor(0.8874)
        >>> softtorch.max(x, mode="hard")
        tensor(1.)
"""
)
min.__doc__ = (
    r"""Soft minimum, a relaxation of :func:`torch.min`: the soft maximum of the negated scores.
"""
    + _VALUE_ARGS
    + r"""
    Shape:
        As :func:`max`.

    Returns:
        Tensor or ``torch.return_types.min(values, indices)``.

    .. seealso:: :func:`argmin`, :class:`softtorch.nn.SoftMin`, :func:`min_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.min(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor(-0.8996)
"""
)
_INDEX_ARGS = _ARGS.replace(_METHOD_DOC, method_arg_doc(REDUCTION_METHOD, indices=True, values_only="values only"))
argmax.__doc__ = (
    r"""Soft argmax, a relaxation of :func:`torch.argmax` returning a distribution over positions.

    .. math::
        \operatorname{argmax}_{soft}(x)
        = \Pi_{mode}\!\left(-\frac{|\max_k \tilde x_k - \tilde x|}{\text{softness}}\right)
        \quad (\text{softsort})
"""
    + _INDEX_ARGS
    + r"""
    Shape:
        ``x``'s shape without ``dim`` (size 1 if ``keepdim``) plus a last axis of size ``n``;
        ``dim=None``: ``(x.numel(),)``.

    Returns:
        Tensor: probability vectors (one-hot in hard mode, picking torch's index on ties).

    .. seealso:: :func:`max`, :class:`softtorch.nn.SoftArgmax`, :func:`argmax_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.argmax(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([0.0215, 0.0022, 0.1176, 0.8586])
"""
)
argmin.__doc__ = (
    r"""Soft argmin, a relaxation of :func:`torch.argmin` returning a distribution over positions.
"""
    + _INDEX_ARGS
    + r"""
    Shape:
        As :func:`argmax`.

    Returns:
        Tensor: probability vectors.

    .. seealso:: :func:`min`, :class:`softtorch.nn.SoftArgmin`, :func:`argmin_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.argmin(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([0.0922, 0.8885, 0.0169, 0.0023])
"""
)

add_mask_doc(max, min, argmax, argmin)

max_st = st(max)
min_st = st(min)
argmax_st = st(argmax)
argmin_st = st(argmin)
