r"""Fast differentiable sorting and ranking by projection onto the permutahedron (Blondel et al., 2020).

Sorted values are the regularized projection :math:`P_\Psi(a / \text{softness}, \tilde x)` of the
slots :math:`a_j = j / (n - 1)` onto the permutahedron of the scores, and ranks
:math:`1 + (n - 1) P_\Psi(-\tilde x / \text{softness}, a)`, with
:math:`P_\Psi(z, w) = \operatorname{argmin}_{\mu \in \mathcal P(w)} \Psi(\mu) - \langle z, \mu \rangle`
and one separable regularizer :math:`\Psi` per mode: entropic in log space (``"smooth"``),
Euclidean (``"c0"``), p-norm (``"c1"``, ``"c2"``, in the two versions of the ``regularizer``
option). The projection is an isotonic regression solved exactly by
:mod:`softtorch._core.isotonic`. The regularizers and the solver are described in the user guide,
:doc:`/user_guide/how_methods_work`.
"""

from __future__ import annotations

import torch

from .._core.checks import SOFT_MODES, check_choice
from .._core.isotonic import project_sorted, sort_descending
from .._core.masking import excluded_before, kept_count, kept_first, kept_slot_index, kept_slots
from .._core.precision import compute_dtype
from ._common import no_values

__all__ = ["sort_values", "rank", "OPTIONS", "REGULARIZERS", "EXACT_MASKING"]

#: Excluded entries (``kept=False``) take no part in the projection: a row with ``k`` kept entries
#: gives at its kept slots the projection of those ``k`` entries alone (see :func:`_project`).
EXACT_MASKING = True

#: The values of the method option ``regularizer`` (the p-norm of ``"c1"`` and ``"c2"``).
REGULARIZERS = ("pnorm", "normalized")


def _check_regularizer(name: str, value) -> str:
    return check_choice(name, value, REGULARIZERS)


#: The method options (``method_options={...}`` of the operators) and their checks.
OPTIONS = {"regularizer": _check_regularizer}


def _singletons(s: torch.Tensor, w: torch.Tensor, mode: str) -> torch.Tensor:
    r"""The one-element block values :math:`\gamma_i = s_i - \phi^{-1}(w_i)` of the isotonic problem."""
    if mode in ("c1", "c2"):
        return s - torch.sign(w) * w.abs().pow(0.5 if mode == "c1" else 1.0 / 3.0)
    return s - w


def _barrier(s: torch.Tensor, w: torch.Tensor, mode: str, count: torch.Tensor) -> torch.Tensor:
    r"""``s`` with its entries from ``count`` on (per row) set so low that they never pool with the others.

    Every block value of the isotonic solution lies between the smallest and the largest
    one-element value :math:`\gamma_i` of its block (the block equation balances
    :math:`\phi(s_i - \gamma)` against :math:`\phi(s_i - \gamma_i)`, with :math:`\phi` increasing).
    The tail, whose ``w`` repeats the last head value, gets :math:`\gamma` one below the smallest
    of the head: the head's solution then stays at least that smallest value, the tail's at most
    its own, so the concatenation of the two separate solutions is decreasing and is the solution
    of the whole row. The head is the problem of its ``count`` entries alone, exactly.
    """
    head = torch.arange(s.shape[-1], device=s.device) < count
    gamma = _singletons(s, w, mode).detach().masked_fill(~head, float("inf")).amin(-1, keepdim=True)
    gamma = torch.where(torch.isfinite(gamma), gamma, torch.zeros_like(gamma))  # rows with nothing kept
    tail = gamma - 1.0 + (s - _singletons(s, w, mode)).detach()
    return torch.where(head, s, tail)


def _project(s: torch.Tensor, w: torch.Tensor, mode: str, regularizer: str, count=None) -> torch.Tensor:
    """The projection of decreasing ``s`` onto the permutahedron of decreasing ``w`` (``(..., n)``).

    With ``count`` (``(..., 1)``), only the first ``count`` entries of each row take part (the
    rest of ``w`` must repeat its last kept value): see :func:`_barrier`.
    """
    if mode not in ("c1", "c2") or regularizer == "pnorm":
        return project_sorted(s if count is None else _barrier(s, w, mode, count), w, mode)
    # "normalized": Psi(mu) = width^2 psi_0((mu - min w) / width), psi_0(y) = |y|^p / (p (p - 1)),
    # is the plain p-norm problem on P((w - min w) / width) with z scaled by (p - 1) / width.
    low = w[..., -1:]
    width = w[..., :1] - low
    width = torch.where(width > 0, width, torch.ones_like(width))
    s = s * ((0.5 if mode == "c1" else 1.0 / 3.0) / width)
    w = (w - low) / width
    return low + width * project_sorted(s if count is None else _barrier(s, w, mode, count), w, mode)


def _prepare(xt, softness, mode, regularizer):
    check_choice("mode", mode, SOFT_MODES)
    _check_regularizer("regularizer", regularizer)
    if not isinstance(xt, torch.Tensor) or xt.dim() == 0:
        raise ValueError("xt must be a tensor with at least one dimension (the sorted one), got a 0-d tensor")
    work = compute_dtype(xt.dtype)
    x = xt.to(work)
    tau = softness.to(work) if isinstance(softness, torch.Tensor) else float(softness)
    n = x.shape[-1]
    # a_j = j / (n - 1), decreasing: (n - 1 - j) / (n - 1); a = (0,) for n = 1.
    a_desc = torch.arange(n - 1, -1, -1, dtype=work, device=x.device) / max(n - 1, 1)
    return x, tau, a_desc


def sort_values(xt, softness, mode, descending=False, *, values=None, regularizer="pnorm", kept=None):
    r"""Soft sorted values of ``xt``: the regularized projection of the slots onto its permutahedron.

    .. math::
        \operatorname{sort}(\tilde x) = \operatorname*{argmin}_{\mu \in \mathcal{P}(\tilde x)}
        \Psi(\mu) - \Bigl\langle \frac{a}{\text{softness}}, \mu \Bigr\rangle,
        \qquad a_j = \frac{j}{n - 1},

    with :math:`\mathcal{P}(\tilde x)` the convex hull of the permutations of ``xt`` and
    :math:`\Psi` the regularizer of ``mode`` (see :doc:`/user_guide/how_methods_work`: ``"smooth"`` the
    entropic projection in log space, ``"c0"`` Euclidean, ``"c1"``/``"c2"`` the p-norm with
    :math:`p = 3/2, 4/3`), solved exactly by pool-adjacent-violators. Gaps of the sorted ``xt``
    wider than about :math:`1 / ((n - 1)\,\text{softness})` are pooled (``c0`` exactly), so a
    softness well below :math:`1 / ((n - 1) \cdot \text{largest gap})` gives the hard sort.

    Args:
        xt (Tensor): scores ``(..., n)`` (the callers standardize them into :math:`(0, 1)`); the
            last dimension is sorted, ``n >= 1``.
        softness (float or Tensor): positive temperature; a tensor broadcasts against
            ``xt[..., :1]`` and receives gradients.
        mode (str): ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``.
        descending (bool): largest first. Default: ``False``.
        values: must be ``None``: the method has no permutation to carry other data with.
        regularizer (str): the p-norm of ``"c1"``/``"c2"``: ``"pnorm"`` (softtorch 0.1.1's) or
            ``"normalized"`` (see :doc:`/user_guide/how_methods_work`). Default: ``"pnorm"``.
        kept (Tensor, optional): bool ``(..., n)``, False at excluded entries, whose scores lie
            beyond the kept ones on the side where they sort (:mod:`softtorch._core.masking`).
            The kept slots then hold the sort of the kept entries alone (the other slots are
            left to the caller). Default: ``None`` (every entry takes part).

    Returns:
        Tensor: soft sorted values ``(..., n)``, monotone along the last dimension, within
        ``[min(xt), max(xt)]``; they sum to ``xt.sum(-1)`` for ``c0``, ``c1``, ``c2`` (for
        ``"smooth"``, their exponentials sum to ``xt.exp().sum(-1)``). float16/bfloat16 inputs are
        computed in float32 and returned in their dtype.

    Example:
        >>> xt = torch.tensor([0.3, 0.1, 0.8, 0.5])
        >>> sort_values(xt, 1e-3, "c0")
        tensor([0.1000, 0.3000, 0.5000, 0.8000])
        >>> sort_values(xt, 2.0, "c0")
        tensor([0.1750, 0.3417, 0.5083, 0.6750])
        >>> sort_values(xt, 2.0, "smooth", descending=True)
        tensor([0.6916, 0.5249, 0.3583, 0.1916])

    .. seealso::
        :func:`rank`; Blondel et al., "Fast Differentiable Sorting and Ranking", ICML 2020.
    """
    no_values("fast_soft_sort", values)
    x, tau, a_desc = _prepare(xt, softness, mode, regularizer)
    if kept is not None:
        return _sort_kept(x, tau, mode, descending, regularizer, kept).to(xt.dtype)
    z = a_desc / tau  # decreasing: the slots, largest first
    w = sort_descending(x)[0]
    z, w = torch.broadcast_tensors(z, w)
    out = _project(z, w, mode, regularizer)
    return (out if descending else out.flip(-1)).to(xt.dtype)


def rank(xt, softness, mode, descending=True, *, regularizer="pnorm", kept=None):
    r"""Soft ranks of ``xt``: the regularized projection of the scores onto the permutahedron of the slots.

    .. math::
        \operatorname{rank}(\tilde x) = 1 + (n - 1) \operatorname*{argmin}_{\mu \in \mathcal{P}(a)}
        \Psi(\mu) + \Bigl\langle \frac{\tilde x}{\text{softness}}, \mu \Bigr\rangle,
        \qquad a_j = \frac{j}{n - 1}

    (``descending=False``: :math:`-\tilde x`), with :math:`\Psi` the regularizer of ``mode`` as in
    :func:`sort_values`. Elements closer than about ``softness / (n - 1)`` share their ranks (``c0``
    exactly); tied elements get equal ranks.

    Args:
        xt (Tensor): scores ``(..., n)``; the last dimension is ranked, ``n >= 1``.
        softness (float or Tensor): positive temperature; a tensor broadcasts against
            ``xt[..., :1]`` and receives gradients.
        mode (str): ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``.
        descending (bool): rank 1 for the largest element (``True``) or for the smallest.
            Default: ``True``.
        regularizer (str): the p-norm of ``"c1"``/``"c2"``, as in :func:`sort_values`.
            Default: ``"pnorm"``.
        kept (Tensor, optional): as in :func:`sort_values`: the kept entries get the ranks among
            themselves, after the excluded entries that rank before them. Default: ``None``.

    Returns:
        Tensor: soft ranks ``(..., n)`` in ``[1, n]``, in the order of ``xt``; they sum to
        :math:`n (n + 1) / 2` for ``c0``, ``c1``, ``c2`` (``"smooth"`` pools in log space, which
        raises the pooled ranks slightly).

    Example:
        >>> xt = torch.tensor([0.3, 0.1, 0.8, 0.5])
        >>> rank(xt, 1e-3, "c0")
        tensor([3., 4., 1., 2.])
        >>> rank(xt, 1.0, "c0")
        tensor([2.8750, 3.4750, 1.3750, 2.2750])
        >>> rank(xt, 1.0, "smooth", descending=False)
        tensor([2.2285, 1.6285, 3.7285, 2.8285])

    .. seealso::
        :func:`sort_values`; Blondel et al., "Fast Differentiable Sorting and Ranking", ICML 2020.
    """
    x, tau, a_desc = _prepare(xt, softness, mode, regularizer)
    if kept is not None:
        return _rank_kept(x, tau, mode, descending, regularizer, kept).to(xt.dtype)
    n = x.shape[-1]
    z = (-x if descending else x) / tau
    z = z.expand(torch.broadcast_shapes(z.shape, x.shape))
    s, order = sort_descending(z, with_order=True)
    scale = max(n - 1, 1)
    if mode in ("c1", "c2") and regularizer == "pnorm":
        # The reference's slots (j + 1) / (n - 1): the p-norm is not equivariant to shifts.
        mu = _project(s, (a_desc + 1.0 / scale).expand_as(s), mode, regularizer)
        return (scale * torch.empty_like(mu).scatter(-1, order, mu)).to(xt.dtype)
    out = _project(s, a_desc.expand_as(s), mode, regularizer)
    mu = torch.empty_like(out).scatter(-1, order, out)
    return (1 + (n - 1) * mu).to(xt.dtype)


def _sort_kept(x, tau, mode, descending, regularizer, kept):
    """:func:`sort_values` of the kept entries of every row, read at the kept slots."""
    n = x.shape[-1]
    count = kept_count(kept)
    w = sort_descending(kept_first(x, kept))[0]  # kept scores first, decreasing
    head = torch.arange(n, device=x.device) < count
    w = torch.where(head, w, w.gather(-1, (count - 1).clamp_min(0)))
    z = kept_slots(count, n, x.dtype, x.device) / tau
    z, w = torch.broadcast_tensors(z, w)
    out = _project(z, w, mode, regularizer, count)
    index = kept_slot_index(count, excluded_before(x, kept, descending), n, descending)
    return out.gather(-1, index)


def _rank_kept(x, tau, mode, descending, regularizer, kept):
    """:func:`rank` of the kept entries of every row among themselves, after the excluded ones
    that rank before them (the ranks of excluded entries are left to the caller)."""
    n = x.shape[-1]
    count = kept_count(kept)
    z = (-x if descending else x) / tau
    z = z.expand(torch.broadcast_shapes(z.shape, x.shape))
    s, order = sort_descending(kept_first(z, kept.expand_as(z)), with_order=True)
    pnorm = mode in ("c1", "c2") and regularizer == "pnorm"
    scale = (count - 1).clamp_min(1).to(x.dtype)
    w = kept_slots(count, n, x.dtype, x.device)
    w = (w + 1.0 / scale if pnorm else w).expand_as(s)  # the slots of the reference for the p-norm
    out = _project(s, w, mode, regularizer, count)
    mu = torch.empty_like(out).scatter(-1, order, out)
    before = excluded_before(x, kept, descending).to(x.dtype)
    return before + (scale * mu if pnorm else 1 + (count - 1).to(x.dtype) * mu)
