r"""Smooth sort: a C-infinity projection onto a smoothed permutahedron (the SoftJAX ``smooth_sort``).

Sorted values are the linear maximizer of :math:`\langle a, y \rangle` over the permutahedron of
``x``, which for decreasing :math:`y` bounds each prefix sum by the sum of the :math:`k` largest
entries. Smooth sort replaces each bound by its log-sum-exp over the size-:math:`k` subsets and
every constraint by an entropic barrier, :math:`h(u) = u - u \log u`:

.. math::
    \operatorname{sort}(x) = \operatorname*{argmax}_{\mathbf 1^\top y = \sum x}\ \langle s, y \rangle
    + \sum_{k<n} h\bigl(b_k - (Ay)_k\bigr) + \sum_{k<n} h(y_k - y_{k+1}),
    \qquad b_k = t \log e_k\bigl(e^{x / t}\bigr),

with :math:`s` the slots :math:`a_j / \text{softness}`, :math:`a_j = j / (n - 1)`, sorted
decreasingly, :math:`A` the prefix sums, :math:`e_k` the elementary symmetric polynomial and
:math:`t = \min(\text{softness}, 1)`; ranks project :math:`\mp x / \text{softness}` onto the
smoothed permutahedron of :math:`(1, \dots, n) / (n - 1)`, times :math:`n - 1`. The result is
strictly monotone, sums to :math:`\sum x`, is C-infinity in ``x`` and the softness, and tends to
the hard sort as the softness goes to 0. The smoothed bounds exceed the hard ones by up to
:math:`t \log \binom{n}{k}`, so for a softness near the gaps of ``x`` values may leave
:math:`[\min x, \max x]`. The definition applies to ``x`` itself (``STANDARDIZES = False``) and
has one mode, ``"smooth"``. The solver (dual Newton, block cyclic reduction, implicit gradients)
is :mod:`softtorch._core.smooth_permutahedron`.

.. seealso::
    The SoftJAX library (``method="smooth_sort"``); M. Blondel, O. Teboul, Q. Berthet,
    J. Djolonga, "Fast Differentiable Sorting and Ranking", ICML 2020, for the permutahedron view.
"""

from __future__ import annotations

import torch

from .._core.checks import check_positive, check_positive_int
from .._core.masking import excluded_before, kept_count, kept_first, kept_slot_index, kept_slots
from .._core.smooth_permutahedron import project
from .._core.zero_grad import with_zero_grad
from ._common import no_values

__all__ = [
    "sort_values",
    "rank",
    "MODES",
    "STANDARDIZES",
    "EXACT_MASKING",
    "DEFAULT_TOL",
    "DEFAULT_MAX_ITER",
    "OPTIONS",
]

#: The only soft mode: the relaxation is C-infinity by construction.
MODES = ("smooth",)
#: The definition applies to the input itself: ``standardize`` does not apply.
STANDARDIZES = False
#: Default Newton tolerance (``method_options["tol"]``): the iterations stop after the step whose
#: squared Newton decrement is below ``tol`` times the magnitude of the dual objective on every row;
#: Newton converges quadratically there, so the result is exact to rounding.
DEFAULT_TOL = 1e-13
#: Default cap on the Newton iterations (``method_options["max_iter"]``). Batches of rows of n = 2 to
#: 1000 normal values (scales 1 and 100) take 1 to 14, sort and rank, at softness 1e-3 to 10.
DEFAULT_MAX_ITER = 100
OPTIONS = {"tol": check_positive, "max_iter": check_positive_int}
#: Excluded entries (``kept=False``) take no part: the bounds come from the kept entries alone and
#: the problem of the kept slots is cut off from the rest (``count`` of
#: :func:`softtorch._core.smooth_permutahedron.project`).
EXACT_MASKING = True


def _prepare(xt, softness, mode):
    if mode not in MODES:
        raise ValueError(
            f"method='smooth_sort' supports mode='smooth' only (it is C-infinity by construction), got mode={mode!r}"
        )
    x = xt.to(torch.float64)
    tau = softness.to(torch.float64) if isinstance(softness, torch.Tensor) else float(softness)
    t = tau.clamp(max=1.0) if isinstance(tau, torch.Tensor) else min(tau, 1.0)
    return x, tau, t


def _stand_ins(x: torch.Tensor):
    """``x`` with ``+-inf`` replaced by finite stand-ins ``10 n (spread + 1)`` beyond the finite
    values of their row, where they no longer interact with them (NaN stays NaN), and the counts
    ``(..., 1)`` of ``+inf`` and ``-inf`` per row."""
    finite = torch.isfinite(x)
    pos, neg = x == torch.inf, x == -torch.inf
    hi = torch.where(finite, x, -torch.inf).amax(-1, keepdim=True).detach()
    lo = torch.where(finite, x, torch.inf).amin(-1, keepdim=True).detach()
    hi, lo = hi.nan_to_num(0.0, 0.0, 0.0), lo.nan_to_num(0.0, 0.0, 0.0)  # rows without finite values
    gap = 10.0 * x.shape[-1] * (hi - lo + 1.0)
    x = torch.where(pos, hi + gap, torch.where(neg, lo - gap, x))
    return x, pos.sum(-1, keepdim=True), neg.sum(-1, keepdim=True)


def sort_values(
    xt, softness, mode, descending=False, *, values=None, tol=DEFAULT_TOL, max_iter=DEFAULT_MAX_ITER, kept=None
):
    r"""Soft sorted values of ``xt``: the slots projected onto the smoothed permutahedron of ``xt``.

    .. math::
        \operatorname{sort}(x) = y^\star\Bigl(\frac{a}{\text{softness}},\ x\Bigr), \qquad a_j = \frac{j}{n - 1},

    with :math:`y^\star` the entropic projection of the module documentation.

    Args:
        xt (Tensor): values ``(..., n)``, used as they are (not standardized); the last dimension
            is sorted, ``n >= 1``.
        softness (float or Tensor): positive temperature; a tensor broadcasts against
            ``xt[..., :1]`` and receives gradients.
        mode (str): ``"smooth"`` (the only mode of this method).
        descending (bool): largest first. Default: ``False``.
        values: must be ``None``: the method has no permutation to carry other data with.
        tol (float): Newton tolerance. Default: :data:`DEFAULT_TOL`.
        max_iter (int): cap on the Newton iterations. Default: :data:`DEFAULT_MAX_ITER`.
        kept (Tensor, optional): bool ``(..., n)``, False at excluded entries, whose values lie
            beyond the kept ones on the side where they sort (:mod:`softtorch._core.masking`).
            The kept slots then hold the sort of the kept entries alone (the other slots are
            left to the caller). Default: ``None``.

    Returns:
        Tensor: soft sorted values ``(..., n)`` in ``xt``'s dtype (computed in float64), strictly
        monotone along the last dimension and summing to ``xt.sum(-1)``.

    Example:
        >>> x = torch.tensor([-0.2, -1.0, 0.3, 1.0], dtype=torch.float64)
        >>> sort_values(x, 0.2, "smooth")
        tensor([-0.8572, -0.2221,  0.2973,  0.8821], dtype=torch.float64)
        >>> sort_values(x, 1e-3, "smooth", descending=True)
        tensor([ 1.0000,  0.3000, -0.2000, -1.0000], dtype=torch.float64)
    """
    no_values("smooth_sort", values)
    x, tau, t = _prepare(xt, softness, mode)
    n = x.shape[-1]
    if n == 1 or x.numel() == 0:
        return xt.clone()
    if kept is not None:
        count = kept_count(kept)
        w = torch.sort(kept_first(x, kept), dim=-1, descending=True).values  # kept values first
        y = project(kept_slots(count, n, x.dtype, x.device) / tau, w, t, tol, max_iter, count)
        return y.gather(-1, kept_slot_index(count, excluded_before(x, kept, descending), n, descending)).to(xt.dtype)
    x, above, below = _stand_ins(x)
    slots = torch.arange(n - 1, -1, -1, dtype=x.dtype, device=x.device) / (n - 1)  # decreasing
    y = project(slots / tau, x, t, tol, max_iter)
    # The infinities take the end slots, as in the hard sort.
    slot = torch.arange(n, device=x.device)
    y = torch.where(slot < above, torch.inf, torch.where(slot >= n - below, -torch.inf, y))
    return (y if descending else y.flip(-1)).to(xt.dtype)


def rank(xt, softness, mode, descending=True, tol=DEFAULT_TOL, max_iter=DEFAULT_MAX_ITER, *, kept=None):
    r"""Soft ranks of ``xt``: the scores projected onto the smoothed permutahedron of the slots.

    .. math::
        \operatorname{rank}(x) = (n - 1)\, y^\star\Bigl(-\frac{x}{\text{softness}},\ c\Bigr), \qquad
        c_j = \frac{j}{n - 1},\ j = 1, \dots, n

    (``descending=False``: :math:`+x`), with :math:`y^\star` the entropic projection of the module
    documentation, read in the order of ``xt``. The ranks sum to :math:`n (n + 1) / 2`; at a
    softness near or above the gaps of ``xt`` the smoothed bounds let them leave ``[1, n]``.

    Args:
        xt (Tensor): values ``(..., n)``, used as they are; the last dimension is ranked.
        softness (float or Tensor): positive temperature; a tensor broadcasts against
            ``xt[..., :1]`` and receives gradients.
        mode (str): ``"smooth"`` (the only mode of this method).
        descending (bool): rank 1 for the largest element (``True``) or for the smallest.
            Default: ``True``.
        tol (float): Newton tolerance. Default: :data:`DEFAULT_TOL`.
        max_iter (int): cap on the Newton iterations. Default: :data:`DEFAULT_MAX_ITER`.
        kept (Tensor, optional): as in :func:`sort_values`: the kept entries get their ranks among
            themselves, after the excluded entries that rank before them. Default: ``None``.

    Returns:
        Tensor: soft ranks ``(..., n)`` in the order of ``xt``, in its dtype.

    Example:
        >>> x = torch.tensor([-0.2, -1.0, 0.3, 1.0], dtype=torch.float64)
        >>> rank(x, 0.05, "smooth")
        tensor([2.9999, 4.0002, 2.0001, 0.9998], dtype=torch.float64)
        >>> rank(x, 0.2, "smooth", descending=False)
        tensor([2.0838, 0.9051, 2.9329, 4.0782], dtype=torch.float64)
    """
    x, tau, t = _prepare(xt, softness, mode)
    n = x.shape[-1]
    if n == 1 or x.numel() == 0:
        return with_zero_grad(torch.ones_like(xt), xt)
    if kept is not None:
        return _rank_kept(x, tau, t, descending, tol, max_iter, kept).to(xt.dtype)
    z = (-_stand_ins(x)[0] if descending else _stand_ins(x)[0]) / tau
    z = z.expand(torch.broadcast_shapes(z.shape, x.shape))
    s, order = torch.sort(z, dim=-1, descending=True, stable=True)
    anchors = torch.arange(1, n + 1, dtype=x.dtype, device=x.device) / (n - 1)
    y = project(s, anchors, t, tol, max_iter)
    return ((n - 1) * torch.empty_like(y).scatter(-1, order, y)).to(xt.dtype)


def _rank_kept(x, tau, t, descending, tol, max_iter, kept):
    """:func:`rank` of the kept entries of every row among themselves, after the excluded ones that
    rank before them (the ranks of excluded entries are left to the caller)."""
    n = x.shape[-1]
    count = kept_count(kept)
    z = (-x if descending else x) / tau
    z = z.expand(torch.broadcast_shapes(z.shape, x.shape))
    s, order = torch.sort(kept_first(z, kept.expand_as(z)), dim=-1, descending=True, stable=True)
    scale = (count - 1).clamp_min(1).to(x.dtype)
    anchors = torch.arange(1, n + 1, dtype=x.dtype, device=x.device) / scale
    y = project(s, anchors, t, tol, max_iter, count)
    ranks = torch.where(count > 1, (count - 1).to(x.dtype) * torch.empty_like(y).scatter(-1, order, y), 1.0)
    return excluded_before(x, kept, descending).to(x.dtype) + ranks
