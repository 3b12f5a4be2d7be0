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
from .._core.precision import compute_dtype
from ._common import no_values

__all__ = ["sort_values", "rank", "OPTIONS", "REGULARIZERS"]

#: The values of the method option ``regularizer`` (the p-norm of ``"c1"`` and ``"c2"``).
REGULARIZERS = ("pnorm", "normalized")


def _check_regularizer(name: str, value) -> str:
    return check_choice(name, value, REGULARIZERS)


#: The method options (``method_options={...}`` of the operators) and their checks.
OPTIONS = {"regularizer": _check_regularizer}


def _project(s: torch.Tensor, w: torch.Tensor, mode: str, regularizer: str) -> torch.Tensor:
    """The projection of decreasing ``s`` onto the permutahedron of decreasing ``w`` (``(..., n)``)."""
    if mode not in ("c1", "c2") or regularizer == "pnorm":
        return project_sorted(s, w, mode)
    # "normalized": Psi(mu) = width^2 psi_0((mu - min w) / width), psi_0(y) = |y|^p / (p (p - 1)),
    # is the plain p-norm problem on P((w - min w) / width) with z scaled by (p - 1) / width.
    low = w[..., -1:]
    width = w[..., :1] - low
    width = torch.where(width > 0, width, torch.ones_like(width))
    s = s * ((0.5 if mode == "c1" else 1.0 / 3.0) / width)
    return low + width * project_sorted(s, (w - low) / width, mode)


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


def sort_values(xt, softness, mode, descending=False, *, values=None, regularizer="pnorm"):
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
    z = a_desc / tau  # decreasing: the slots, largest first
    w = sort_descending(x)[0]
    z, w = torch.broadcast_tensors(z, w)
    out = _project(z, w, mode, regularizer)
    return (out if descending else out.flip(-1)).to(xt.dtype)


def rank(xt, softness, mode, descending=True, *, regularizer="pnorm"):
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
