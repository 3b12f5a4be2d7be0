r"""Rank metrics and losses built on the soft sorting family.

Spearman's :math:`\rho` (the correlation of soft ranks), Kendall's :math:`\tau` (soft signs of all
pairwise differences), the top-k cross-entropy of Petersen et al. (soft top-k membership of the
true class) and NeuralNDCG (a soft permutation applied to the gains). In ``mode="hard"`` each one
is the exact metric. The layers of :mod:`softtorch.nn.losses` turn them into losses with torch's
``reduction`` convention.
"""

from __future__ import annotations

import math
import numbers

import torch

from .._core.checks import (
    _values_checkable,
    check_bool,
    check_choice,
    check_dim,
    check_float_tensor,
    check_mode,
    check_positive_int,
    check_reduction_softness,
    check_softness,
    describe,
)
from .._core.dims import broadcast_softness
from .._core.expectation import expect
from .._core.kernels import sigmoidal_kernel
from .._core.precision import compute_dtype
from .._core.standardize import standardize as _standardize
from .._core.zero_grad import with_zero_grad
from ..methods import check_method_options, get_method
from .sorting import argsort, rank, topk

__all__ = ["spearman_corrcoef", "kendall_tau", "topk_cross_entropy", "ndcg"]

REDUCTIONS = ("mean", "sum", "none")

#: The floor of the top-k cross-entropy's logarithm: :math:`-\log((1 - 2\epsilon) m + \epsilon)`.
LOG_EPS = 1e-7


# -- argument checks ------------------------------------------------------------------------------


def check_reduction(reduction) -> str:
    """``reduction`` must be ``"mean"``, ``"sum"`` or ``"none"``, as in torch's losses."""
    return check_choice("reduction", reduction, REDUCTIONS)


def check_ndcg_k(k):
    """NDCG's ``k``: ``None`` (the whole list) or an int >= 1 (larger than ``n`` means the whole list)."""
    return k if k is None else check_positive_int("k", k)


def check_p_k(p_k, n: int | None = None):
    """``p_k``: ``None``, or a sequence (or 1-D tensor) of ``K <= n`` nonnegative numbers summing to 1.

    Returns a tuple of floats (or ``None``).
    """
    if p_k is None:
        return None
    if isinstance(p_k, torch.Tensor):
        if p_k.dim() != 1 or not p_k.is_floating_point():
            raise TypeError(f"p_k must be a sequence of floats or a 1-D floating-point tensor, got {describe(p_k)}")
        values = p_k.detach().cpu().tolist()
    elif isinstance(p_k, (list, tuple)) and all(isinstance(p, numbers.Real) and not isinstance(p, bool) for p in p_k):
        values = [float(p) for p in p_k]
    else:
        raise TypeError(f"p_k must be a sequence of floats or a 1-D floating-point tensor, got {describe(p_k)}")
    if not values or not all(math.isfinite(p) and p >= 0 for p in values) or abs(sum(values) - 1.0) > 1e-4:
        raise ValueError(f"p_k must be a nonempty distribution over k (nonnegative, summing to 1), got {values}")
    if n is not None and len(values) > n:
        raise ValueError(f"p_k must have at most n = {n} entries (one per k in [1, n]), got {len(values)} entries")
    return tuple(values)


_NO_METHOD = object()


def _check_common(
    input, softness, mode, dim, standardize, method=_NO_METHOD, options=None, ot_kwargs=None, needs_indices=False
):
    """The soft arguments every metric takes, checked before any work (``dim`` already normalized)."""
    mode = check_mode(mode)
    softness = check_softness(softness)
    check_bool("standardize", standardize)
    if method is not _NO_METHOD:
        check_method_options(get_method(method, needs_indices=needs_indices), options, ot_kwargs=ot_kwargs)
    check_reduction_softness(softness, input.shape, dim)
    return mode, softness


def _paired(input, target, dim):
    """``input`` and ``target`` as floating tensors of one shape, and the normalized ``dim``."""
    input = check_float_tensor("input", input)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {describe(target)}")
    if target.is_complex():
        raise TypeError(f"target must be a real tensor, got complex dtype {target.dtype}")
    if target.shape != input.shape:
        raise ValueError(
            f"target must have the shape of input {tuple(input.shape)}, got a tensor of shape {tuple(target.shape)}"
        )
    return input, target, check_dim(dim, input.dim())


def _last(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t`` with ``dim`` moved last (a 0-d tensor as one element)."""
    return t.reshape(1) if t.dim() == 0 else t.movedim(dim, -1)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _ratio(num: torch.Tensor, den2: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    r""":math:`\text{num} / \sqrt{\text{den2}}` where ``ok``, else 0 (with finite gradients there too)."""
    return torch.where(ok, num * torch.rsqrt(torch.where(ok, den2, torch.ones_like(den2))), torch.zeros_like(num))


# -- Spearman ---------------------------------------------------------------------------------------


def average_ranks(t: torch.Tensor) -> torch.Tensor:
    """Ascending 1-based ranks along the last axis, ties sharing the mean of their ranks (fractional ranks)."""
    t = t.contiguous()
    ordered = torch.sort(t, dim=-1).values
    below = torch.searchsorted(ordered, t, side="left")
    up_to = torch.searchsorted(ordered, t, side="right")
    return (below + up_to + 1).to(t.dtype) / 2


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation along the last axis; 0 where either row is constant (to rounding)."""
    n = a.shape[-1]
    ca, cb = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    sa, sb = (ca * ca).sum(-1), (cb * cb).sum(-1)
    # Centering leaves an error of about n * eps * |mean| per entry: below that a row is constant.
    rounding = (4 * n * torch.finfo(a.dtype).eps) ** 2
    ok = (sa > rounding * (a * a).sum(-1)) & (sb > rounding * (b * b).sum(-1))
    return _ratio((ca * cb).sum(-1), sa * sb, ok)


def spearman_corrcoef(
    input,
    target,
    dim=-1,
    *,
    softness=0.1,
    mode="smooth",
    method="fast_soft_sort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
):
    r"""Soft Spearman rank correlation of ``input`` against ``target`` along ``dim``.

    Spearman's :math:`\rho` is the Pearson correlation of the ranks. Here the ranks of ``input``
    are the soft ranks :math:`r_{soft}` of :func:`softtorch.rank` (ascending) and those of
    ``target`` are its exact fractional ranks :math:`r` (ties share the mean of their ranks):

    .. math::
        \rho_{soft} = \frac{\sum_i (r_{soft,i} - \bar r_{soft})(r_i - \bar r)}
        {\sqrt{\sum_i (r_{soft,i} - \bar r_{soft})^2 \sum_i (r_i - \bar r)^2}}.

    A row whose ranks are constant (``n = 1``, a constant row, or a softness so large that the soft
    ranks agree to rounding) has correlation 0.

    Args:
        input (Tensor): predictions, any shape.
        target (Tensor): targets, the shape of ``input``; only their order matters.
        dim (int): the dimension holding each list. Default: ``-1``.
        softness (float or Tensor): temperature of the soft ranks; a tensor broadcasts against
            ``input`` with ``dim`` set to 1. Default: ``0.1``.
        mode (str): ``"hard"`` (exact Spearman, fractional ranks for ties), ``"smooth"``, ``"c0"``,
            ``"c1"`` or ``"c2"``. Default: ``"smooth"``.
        method (str): the soft ranking method, any of :func:`softtorch.rank`'s. Default:
            ``"fast_soft_sort"``.
        standardize (bool): standardize ``input`` along ``dim`` first (see :func:`softtorch.sort`).
            Default: ``True``.
        method_options (dict, optional): options of the chosen ``method`` (see
            :func:`softtorch.sort`). Default: ``None``.
        ot_kwargs (dict, optional): the optimal-transport method's options under their older name.
            Default: ``None``.

    Shape:
        ``input`` and ``target``: :math:`(*)`; output: :math:`(*)` without ``dim``.

    Returns:
        Tensor: correlations in :math:`[-1, 1]`, of ``input``'s dtype.

    .. seealso:: :class:`softtorch.nn.SpearmanLoss` (:math:`1 - \rho_{soft}`), :func:`kendall_tau`;
        Blondel et al., *Fast Differentiable Sorting and Ranking* (ICML 2020).

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([[0.1, 0.9, 0.4, 0.3], [1.0, 2.0, 3.0, 4.0]])
        >>> y = torch.tensor([[1.0, 4.0, 3.0, 2.0], [4.0, 3.0, 2.0, 1.0]])
        >>> softtorch.spearman_corrcoef(x, y, mode="hard")
        tensor([ 1., -1.])
        >>> softtorch.spearman_corrcoef(x, y, softness=1.0)
        tensor([ 0.9545, -0.9993])
    """
    input, target, d = _paired(input, target, dim)
    mode, softness = _check_common(input, softness, mode, d, standardize, method, method_options, ot_kwargs)
    computed = input.to(compute_dtype(input.dtype))
    if mode == "hard":
        ranks = with_zero_grad(average_ranks(_last(computed.detach(), d)), computed)
    else:
        ranks = rank(
            computed,
            dim=d,
            descending=False,
            softness=softness,
            mode=mode,
            method=method,
            standardize=standardize,
            method_options=method_options,
            ot_kwargs=ot_kwargs,
        )
        ranks = _last(ranks, d)
    target_ranks = average_ranks(_last(target.detach(), d).to(ranks.dtype))
    return _pearson(ranks, target_ranks).to(input.dtype)


# -- Kendall --------------------------------------------------------------------------------------


def _pair_signs(t: torch.Tensor) -> torch.Tensor:
    r"""``(..., n, n)``: :math:`\operatorname{sign}(t_i - t_j)` (0 for ties, infinities included)."""
    a, b = t.unsqueeze(-1), t.unsqueeze(-2)
    return (a > b).to(t.dtype) - (a < b).to(t.dtype)


def kendall_tau(input, target, dim=-1, *, softness=0.1, mode="smooth", standardize=True):
    r"""Soft Kendall rank correlation (:math:`\tau_b`) of ``input`` against ``target`` along ``dim``.

    Every pair :math:`(i, j)` compares the soft sign of the difference of the (standardized)
    predictions :math:`\tilde x` with the sign of the difference of the targets:

    .. math::
        \tau_{soft} = \frac{\sum_{i < j} \operatorname{sign}_{soft}(\tilde x_i - \tilde x_j)\,
        \operatorname{sign}(y_i - y_j)}{\sqrt{(n_0 - t_x)(n_0 - t_y)}},
        \qquad \operatorname{sign}_{soft}(d) = 2\sigma_{mode}(d / \text{softness}) - 1,

    with :math:`n_0 = n(n - 1)/2` pairs, and :math:`t_x`, :math:`t_y` the pairs tied in ``input``
    and in ``target``. In hard mode this is Kendall's :math:`\tau_b`. It is 0 when either row is
    constant (or ``n = 1``). It takes :math:`O(n^2)` time and memory per row.

    Args:
        input (Tensor): predictions, any shape.
        target (Tensor): targets, the shape of ``input``.
        dim (int): the dimension holding each list. Default: ``-1``.
        softness (float or Tensor): temperature of the soft sign; a tensor broadcasts against
            ``input`` with ``dim`` set to 1. Default: ``0.1``.
        mode (str): ``"hard"`` (exact :math:`\tau_b`), ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``.
            Default: ``"smooth"``.
        standardize (bool): compare standardized predictions
            :math:`\operatorname{sigmoid}((x - \mu) / \sigma)`, which makes the result invariant to
            :math:`a x + b`, :math:`a > 0`. Default: ``True``.

    Shape:
        ``input`` and ``target``: :math:`(*)`; output: :math:`(*)` without ``dim``.

    Returns:
        Tensor: correlations in :math:`[-1, 1]`, of ``input``'s dtype.

    .. seealso:: :class:`softtorch.nn.KendallTauLoss`, :func:`spearman_corrcoef`.

    Example:
        >>> import torch, softtorch
        >>> x = torch.tensor([0.1, 0.9, 0.4, 0.3])
        >>> y = torch.tensor([1.0, 4.0, 2.0, 3.0])
        >>> softtorch.kendall_tau(x, y, mode="hard")
        tensor(0.6667)
        >>> softtorch.kendall_tau(x, y)
        tensor(0.6601)
    """
    input, target, d = _paired(input, target, dim)
    mode, softness = _check_common(input, softness, mode, d, standardize)
    computed = input.to(compute_dtype(input.dtype))
    x = _last(computed, d)
    x_signs = _pair_signs(x.detach())
    if mode == "hard":
        signs = with_zero_grad(x_signs, computed)
    else:
        scores = _standardize(x, standardize).scores
        s = broadcast_softness(softness, input.shape, d)
        if isinstance(s, torch.Tensor) and s.dim() > 0:
            s = s.unsqueeze(-1)  # (..., 1, 1) against the pairs
        signs = 2.0 * sigmoidal_kernel((scores.unsqueeze(-1) - scores.unsqueeze(-2)) / s, mode) - 1.0
    y_signs = _pair_signs(_last(target.detach(), d).to(x.dtype))
    # Each unordered pair appears twice in the full matrices: the factors 2 cancel in the ratio.
    untied_x, untied_y = (x_signs != 0).sum((-2, -1)), (y_signs != 0).sum((-2, -1))
    den2 = (untied_x * untied_y).to(x.dtype)
    return _ratio((signs * y_signs).sum((-2, -1)), den2, den2 > 0).to(input.dtype)


# -- top-k cross-entropy ---------------------------------------------------------------------------


def _check_labels(target, input: torch.Tensor, class_dim: int) -> None:
    """Class labels: an integer tensor of ``input``'s shape without the class dim, values in ``[0, n)``."""
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor of class indices, got {describe(target)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor of class indices, got dtype {target.dtype}")
    expected = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if target.shape != expected:
        raise ValueError(
            f"target must have the shape of input without its class dim {class_dim}, i.e. {tuple(expected)}, "
            f"got a tensor of shape {tuple(target.shape)}"
        )


def _check_label_values(target: torch.Tensor, n: int) -> None:
    # Reading the labels needs a host sync on an accelerator and is impossible while tracing.
    if not _values_checkable(target):  # not under vmap either: no data-dependent branch there
        return
    bad = (target < 0) | (target >= n)
    if bool(bad.any()):
        raise ValueError(f"target must hold class indices in [0, {n}), got {target[bad].flatten()[0].item()}")


def topk_cross_entropy(
    input,
    target,
    k=1,
    *,
    p_k=None,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    reduction="mean",
):
    r"""Top-k cross-entropy: the negative log soft probability that the true class is among the top k.

    With :math:`P` the descending soft permutation of the class scores (:func:`softtorch.topk`'s
    soft indices), the soft top-k membership of class :math:`c` is the mass the first :math:`k`
    sorted slots give it, and a distribution :math:`p_k` over :math:`k` mixes the memberships
    (Petersen et al., 2022):

    .. math::
        m_k(c) = \sum_{i=1}^{k} P_{ic}, \qquad
        \ell(x, y) = -\log\Big((1 - 2\epsilon)\, \min\Big(1, \sum_{k} p_k\, m_k(y)\Big) + \epsilon\Big),
        \quad \epsilon = 10^{-7}.

    (The rows of :math:`P` are probability vectors; its columns sum to 1 only for doubly
    stochastic methods such as ``"sorting_network"`` and optimal transport, hence the clip at 1.)

    A single ``k`` is :math:`p_k = \delta_k`; ``k=1`` with ``mode="hard"`` gives
    :math:`-\log(1 - \epsilon)` for a correct prediction and :math:`-\log \epsilon` otherwise.

    Args:
        input (Tensor): class scores (logits), :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, ...)`
            like :func:`torch.nn.functional.cross_entropy`.
        target (Tensor): class indices in :math:`[0, C)`, an integer tensor of shape :math:`()`,
            :math:`(N)` or :math:`(N, d_1, ...)`.
        k (int): count the true class as correct when it is among the top ``k``,
            :math:`1 \le k \le C`. Default: ``1``.
        p_k (sequence of float, optional): a distribution over :math:`k = 1, \dots, K` (``K <= C``
            entries summing to 1), e.g. ``(0.5, 0, 0, 0, 0.5)`` for top-1 and top-5 at once. When
            given it replaces ``k`` (which must then be left at 1 or equal ``K``). Default: ``None``.
        softness (float or Tensor): temperature of the soft permutation; a tensor broadcasts against
            ``input`` with the class dim set to 1. Default: ``0.1``.
        mode (str): ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``. Default: ``"smooth"``.
        method (str): a sorting method with a soft permutation (any of :func:`softtorch.argsort`'s;
            ``"sorting_network"`` is difftopk's choice). Default: ``"neuralsort"``.
        standardize (bool): standardize the scores over the classes first. Default: ``True``.
        method_options (dict, optional): options of the chosen ``method`` (see
            :func:`softtorch.sort`). Default: ``None``.
        ot_kwargs (dict, optional): the optimal-transport method's options under their older name.
            Default: ``None``.
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``, as in torch's losses. Default: ``"mean"``.

    Shape:
        ``input``: :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, ...)`; ``target``: the shape of
        ``input`` without the class dim; output: a scalar, or ``target``'s shape for ``"none"``.

    Returns:
        Tensor: the loss, of ``input``'s dtype.

    .. seealso:: :class:`softtorch.nn.TopKCrossEntropyLoss`; Petersen et al., *Differentiable Top-k
        Classification Learning* (ICML 2022).

    Example:
        >>> import torch, softtorch
        >>> scores = torch.tensor([[2.0, 1.0, 0.1, -1.0], [0.5, 0.2, 1.5, 0.0]])
        >>> labels = torch.tensor([1, 0])
        >>> softtorch.topk_cross_entropy(scores, labels, k=2, mode="hard", reduction="none")
        tensor([5.9605e-08, 5.9605e-08])
        >>> softtorch.topk_cross_entropy(scores, labels, k=2, reduction="none")
        tensor([5.9605e-08, 1.7526e-01])
        >>> softtorch.topk_cross_entropy(scores, labels, p_k=[0.5, 0.5])
        tensor(0.6551)
    """
    input = check_float_tensor("input", input)
    if input.dim() == 0:
        raise ValueError("input must have a class dim (shape (C,), (N, C) or (N, C, d1, ...)), got a 0-d tensor")
    class_dim = 0 if input.dim() == 1 else 1
    _check_labels(target, input, class_dim)
    n = input.shape[class_dim]
    check_positive_int("k", k, low=1, high=n)
    weights = check_p_k(p_k, n)
    if weights is not None and k not in (1, len(weights)):
        raise ValueError(f"k must be left at 1 or equal len(p_k) = {len(weights)} when p_k is given, got k={k}")
    mode, softness = _check_common(
        input, softness, mode, class_dim, standardize, method, method_options, ot_kwargs, True
    )
    reduction = check_reduction(reduction)
    _check_label_values(target, n)
    computed = input.to(compute_dtype(input.dtype))
    top = len(weights) if weights is not None else k
    rows = topk(
        computed,
        top,
        dim=class_dim,
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
    ).indices.movedim(class_dim, -2)  # (..., K, C)
    if weights is None:
        membership = rows.sum(-2)
    else:
        w = torch.tensor(weights, dtype=rows.dtype, device=rows.device)
        membership = (w.unsqueeze(-1) * rows.cumsum(-2)).sum(-2)
    # The rows of P are distributions but its columns need not be (NeuralSort, SoftSort): a
    # membership can exceed 1 by a little, which would make the loss negative.
    true = membership.gather(-1, target.unsqueeze(-1)).squeeze(-1).clamp(0.0, 1.0)
    loss = -torch.log((1.0 - 2.0 * LOG_EPS) * true + LOG_EPS)
    return _reduce(loss, reduction).to(input.dtype)


# -- NDCG -----------------------------------------------------------------------------------------


def check_sinkhorn_iter(sinkhorn_iter) -> int:
    """``sinkhorn_iter``: an int >= 0 (0 leaves the soft permutation as the method gives it)."""
    return check_positive_int("sinkhorn_iter", sinkhorn_iter, low=0)


def _sinkhorn(p: torch.Tensor, iterations: int) -> torch.Tensor:
    """Sinkhorn scaling of row-stochastic ``(..., n, n)`` matrices towards doubly stochastic ones:
    alternate column and row normalizations, ending with the rows."""
    tiny = torch.finfo(p.dtype).tiny
    for _ in range(iterations):
        p = p / p.sum(-2, keepdim=True).clamp_min(tiny)
        p = p / p.sum(-1, keepdim=True).clamp_min(tiny)
    return p


def _discounts(k: int, like: torch.Tensor) -> torch.Tensor:
    r""":math:`1 / \log_2(i + 1)` for the slots :math:`i = 1, \dots, k`."""
    return 1.0 / torch.log2(torch.arange(2, k + 2, device=like.device, dtype=like.dtype))


def ndcg(
    input,
    target,
    k=None,
    dim=-1,
    *,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    sinkhorn_iter=50,
):
    r"""NeuralNDCG: the normalized discounted cumulative gain of a soft ranking (Pobrotyn & Bialobrzeski, 2021).

    With :math:`P` the descending soft permutation of the scores, gains
    :math:`g = 2^{y} - 1` of the relevance labels :math:`y`, and logarithmic discounts:

    .. math::
        \operatorname{NDCG@k}_{soft} = \frac{1}{\operatorname{IDCG@k}} \sum_{i=1}^{k}
        \frac{(P g)_i}{\log_2(i + 1)}, \qquad
        \operatorname{IDCG@k} = \sum_{i=1}^{k} \frac{g_{[i]}}{\log_2(i + 1)},

    where :math:`g_{[i]}` is the :math:`i`-th largest gain (the ideal ranking's DCG). A list with no
    positive ideal DCG (all labels 0) scores 0. In hard mode this is the exact NDCG@k (ties in the
    scores keep their input order).

    As in the paper, :math:`P` is first made (nearly) doubly stochastic by ``sinkhorn_iter``
    Sinkhorn scalings (alternate column and row normalizations): the rows of NeuralSort's and
    SoftSort's :math:`P` are distributions but its columns are not, and without the scaling a
    document could contribute more than its gain, which lets the soft NDCG exceed 1.

    Args:
        input (Tensor): scores, any shape.
        target (Tensor): relevance labels (nonnegative; graded or binary), the shape of ``input``.
        k (int, optional): the cutoff; ``None`` or ``k >= n`` use the whole list. Default: ``None``.
        dim (int): the dimension holding each list. Default: ``-1``.
        softness (float or Tensor): temperature of the soft permutation; a tensor broadcasts
            against ``input`` with ``dim`` set to 1. Default: ``0.1``.
        mode (str): ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``. Default: ``"smooth"``.
        method (str): a sorting method with a soft permutation (any of :func:`softtorch.argsort`'s;
            ``"neuralsort"`` is the paper's). Default: ``"neuralsort"``.
        standardize (bool): standardize the scores along ``dim`` first. Default: ``True``.
        method_options (dict, optional): options of the chosen ``method`` (see
            :func:`softtorch.sort`). Default: ``None``.
        ot_kwargs (dict, optional): the optimal-transport method's options under their older name.
            Default: ``None``.
        sinkhorn_iter (int): Sinkhorn scalings of :math:`P` (0: none; then only the first ``k``
            rows of :math:`P` are computed). Default: ``50``.

    Shape:
        ``input`` and ``target``: :math:`(*)`; output: :math:`(*)` without ``dim``.

    Returns:
        Tensor: NDCG values (in :math:`[0, 1]` for nonnegative labels), of ``input``'s dtype.

    .. seealso:: :class:`softtorch.nn.NDCGLoss` (:math:`1 - \operatorname{NDCG}_{soft}`); Pobrotyn &
        Bialobrzeski, *NeuralNDCG: Direct Optimisation of a Ranking Metric via Differentiable
        Relaxation of Sorting* (2021).

    Example:
        >>> import torch, softtorch
        >>> scores = torch.tensor([0.2, 0.9, 0.4, 0.1])
        >>> relevance = torch.tensor([2.0, 0.0, 1.0, 0.0])
        >>> softtorch.ndcg(scores, relevance, mode="hard")
        tensor(0.5869)
        >>> softtorch.ndcg(scores, relevance, k=2)
        tensor(0.2205)
    """
    input, target, d = _paired(input, target, dim)
    k = check_ndcg_k(k)
    mode, softness = _check_common(input, softness, mode, d, standardize, method, method_options, ot_kwargs, True)
    sinkhorn_iter = check_sinkhorn_iter(sinkhorn_iter)
    computed = input.to(compute_dtype(input.dtype))
    n = 1 if input.dim() == 0 else input.shape[d]
    top = n if k is None else min(k, n)
    options = dict(
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
    )
    scaled = mode != "hard" and sinkhorn_iter > 0
    # The scaling needs every row of P; without it the first k rows are enough.
    rows = argsort(computed, d, True, **options) if scaled else topk(computed, top, d, **options).indices
    rows = rows.reshape(-1, n) if input.dim() == 0 else rows.movedim(d, -2)  # (..., n or k, n)
    if scaled:
        rows = _sinkhorn(rows, sinkhorn_iter)[..., :top, :]
    gains = torch.exp2(_last(target, d).to(rows.dtype)) - 1.0
    discounts = _discounts(top, rows)
    dcg = (expect(rows, gains) * discounts).sum(-1)
    ideal = (torch.sort(gains, dim=-1, descending=True).values[..., :top] * discounts).sum(-1)
    positive = ideal > 0
    score = torch.where(positive, dcg / torch.where(positive, ideal, torch.ones_like(ideal)), torch.zeros_like(dcg))
    return score.to(input.dtype)


# -- the losses the layers of softtorch.nn.losses compute --------------------------------------------


def spearman_loss(
    input,
    target,
    dim=-1,
    *,
    softness=0.1,
    mode="smooth",
    method="fast_soft_sort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    reduction="mean",
):
    """``1 - spearman_corrcoef(...)``, reduced (the function of :class:`softtorch.nn.SpearmanLoss`)."""
    reduction = check_reduction(reduction)
    rho = spearman_corrcoef(
        input,
        target,
        dim,
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
    )
    return _reduce(1.0 - rho, reduction)


def kendall_tau_loss(input, target, dim=-1, *, softness=0.1, mode="smooth", standardize=True, reduction="mean"):
    """``1 - kendall_tau(...)``, reduced (the function of :class:`softtorch.nn.KendallTauLoss`)."""
    reduction = check_reduction(reduction)
    tau = kendall_tau(input, target, dim, softness=softness, mode=mode, standardize=standardize)
    return _reduce(1.0 - tau, reduction)


def ndcg_loss(
    input,
    target,
    k=None,
    dim=-1,
    *,
    softness=0.1,
    mode="smooth",
    method="neuralsort",
    standardize=True,
    method_options=None,
    ot_kwargs=None,
    sinkhorn_iter=50,
    reduction="mean",
):
    """``1 - ndcg(...)``, reduced (the function of :class:`softtorch.nn.NDCGLoss`)."""
    reduction = check_reduction(reduction)
    score = ndcg(
        input,
        target,
        k,
        dim,
        softness=softness,
        mode=mode,
        method=method,
        standardize=standardize,
        method_options=method_options,
        ot_kwargs=ot_kwargs,
        sinkhorn_iter=sinkhorn_iter,
    )
    return _reduce(1.0 - score, reduction)
