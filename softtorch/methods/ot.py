r"""Optimal transport sorting (Cuturi, Teboul & Vert, 2019; Xie et al., 2020; Blondel, Seguy & Rolet, 2018).

The standardized scores are transported onto sorted anchors with a regularized plan: entropic in
mode ``"smooth"``, a p-norm (sparse plans) in ``"c0"``, ``"c1"``, ``"c2"``. The soft permutation
is read off the plan's columns; a few slots (top-k, quantiles, argmax) solve a smaller problem with
merged anchors. The problem, the anchor layouts, the solver and its implicit gradients are
described in :mod:`softtorch._core.transport`, which computes them.
"""

from __future__ import annotations

import torch

from .._core.checks import check_positive, check_positive_int
from .._core.masking import excluded_before
from .._core.transport import DEFAULT_MAX_ITER, DEFAULT_TOL, anchor_layout, kept_layout, transport, working_scores
from .._core.zero_grad import with_zero_grad

__all__ = [
    "permutation",
    "argmax",
    "sort_values",
    "DEFAULT_TOL",
    "DEFAULT_MAX_ITER",
    "OPTIONS",
    "OPTION_ALIASES",
    "OPTION_MERGE",
    "EXACT_MASKING",
    "PER_ROW_SLOTS",
]

#: Excluded entries (``kept=False``) take no part: each row is transported with the masses and
#: anchors of its kept entries alone (:func:`softtorch._core.transport.kept_layout`).
EXACT_MASKING = True
#: With ``kept``, :func:`permutation` takes per-row slots ``rows`` ``(..., r)``: the slots it is
#: asked for shape the problem (merged anchors), so a quantile over each row's kept entries asks
#: for each row's own slots rather than reading them off the full layout.
PER_ROW_SLOTS = True

#: The options the functions take (``tol``: relative marginal error of the plan; ``max_iter``:
#: cap on the solver's iterations), with their checks; the reference library's spellings of the same
#: options are accepted for drop-in use. The reference has one pair for its Sinkhorn solver
#: (smooth mode) and one for its L-BFGS solver (p-norm modes); one solver serves every mode here,
#: so both pairs name the same two options.
OPTIONS = {"tol": check_positive, "max_iter": check_positive_int}
OPTION_ALIASES = {
    "sinkhorn_tol": "tol",
    "sinkhorn_max_iter": "max_iter",
    "lbfgs_tol": "tol",
    "lbfgs_max_iter": "max_iter",
}
#: An option given under several spellings at once (the reference's tests pass both pairs) takes
#: the most demanding value: the smallest tolerance and the largest iteration cap.
OPTION_MERGE = {"tol": min, "max_iter": max}
#: The plan's marginals: every element sends mass 1, every slot receives 1 (up to ``tol``).
DOUBLY_STOCHASTIC = True


def permutation(
    xt,
    softness,
    mode,
    descending=False,
    rows=None,
    log=False,
    *,
    tol=DEFAULT_TOL,
    max_iter=DEFAULT_MAX_ITER,
    kept=None,
):
    r"""Soft permutation rows ``(..., r, n)`` of ``xt`` from regularized optimal transport.

    Relaxes the permutation matrix of :func:`torch.sort`: row :math:`i` is the column of the
    optimal plan :math:`\Gamma^\star` (see :mod:`softtorch._core.transport`) at the anchor of sorted slot
    :math:`i`, a probability vector over the :math:`n` elements.

    .. math::
        \Gamma^\star = \operatorname*{arg\,min}_{\Gamma \mathbf 1 = \mathbf 1,\ \Gamma^\top \mathbf 1 = \beta}
        \langle \Gamma, C \rangle + s\,\Omega(\Gamma)
        = \Psi'\!\left(\frac{f^\star \oplus g^\star - C}{s}\right),
        \quad
        (f^\star, g^\star) = \operatorname*{arg\,max}_{f, g}\ \langle f, \mathbf 1 \rangle
        + \langle g, \beta \rangle - s \sum_{ij} \Psi\!\left(\frac{f_i + g_j - C_{ij}}{s}\right)

    Args:
        xt (Tensor): standardized scores of shape ``(..., n)``, in :math:`(0, 1)`.
        softness (float or Tensor): :math:`s > 0`; a tensor broadcasts against ``(..., 1)`` and
            receives gradients.
        mode (str): ``"smooth"`` (entropic), ``"c0"``, ``"c1"``, ``"c2"`` (p-norm regularizer with
            :math:`p = 2, 3/2, 4/3`: sparse plans).
        descending (bool): slots of the descending order. Default: ``False``.
        rows (Tensor, optional): 1-D ``LongTensor`` of 0-based slots to return (repeats allowed);
            with ``kept``, also ``(..., r)`` slots per row (:data:`PER_ROW_SLOTS`); ``None`` returns
            all ``n``. Asking for a few slots solves the smaller problem with
            the merged-anchor layout of :mod:`softtorch._core.transport`. Default: ``None``.
        log (bool): return log-probabilities (``-inf`` at the exact zeros of c0, c1, c2).
            Default: ``False``.
        tol (float): tolerance on the relative marginal error of the plan. Default: ``1e-5``.
        max_iter (int): cap on the solver's Newton steps. Default: ``100``.
        kept (Tensor, optional): bool ``(..., n)``, False at excluded entries, whose scores lie
            beyond the kept ones on the side where they sort (:mod:`softtorch._core.masking`).
            The kept slots then hold the rows of the kept entries alone, on the kept columns
            (the other slots are left to the caller). Default: ``None``.

    Shape:
        ``(..., r, n)`` with ``r = n`` or ``len(rows)``.

    Returns:
        Tensor: the rows, each summing to 1; for the full layout the matrix is doubly stochastic.

    Example:
        >>> import torch
        >>> xt = torch.tensor([0.4, 0.1, 0.6, 0.9])
        >>> permutation(xt, 0.1, "smooth") @ torch.tensor([-0.2, -1.0, 0.3, 1.0])
        tensor([-0.7865, -0.2385,  0.3137,  0.8113])
        >>> permutation(xt, 0.3, "c0", descending=True, rows=torch.tensor([0, 1]))
        tensor([[0.0000, 0.0000, 0.2815, 0.7185],
                [0.2074, 0.0000, 0.5111, 0.2815]])
    """
    work = working_scores(xt, mode, tol, max_iter)
    dtype, n = xt.dtype, work.shape[-1]
    if kept is not None and n > 1:
        before = excluded_before(work, kept, descending)
        scores, b, beta, pick = kept_layout(work, kept, softness, rows, descending, before)
        plan = transport(scores, softness, b, beta, mode, log, tol, max_iter)[..., :n, :]
        return plan.gather(-1, pick.unsqueeze(-2).expand(*plan.shape[:-1], pick.shape[-1])).mT.to(dtype)
    if n == 1:  # one element fills every slot; a zero gradient keeps the result in the graph
        per_row = isinstance(rows, torch.Tensor) and rows.dim() > 1
        r = rows.shape[-1] if per_row else anchor_layout(n, rows, descending, work.dtype, work.device)[2].shape[0]
        out = torch.full(work.shape[:-1] + (r, 1), 0.0 if log else 1.0, dtype=dtype, device=work.device)
        return with_zero_grad(out, xt, softness)
    b, beta, pick = anchor_layout(n, rows, descending, work.dtype, work.device)
    plan = transport(work, softness, b, beta, mode, log, tol, max_iter)
    if rows is None:
        rows_p = plan.transpose(-1, -2)
        return (rows_p.flip(-2) if descending else rows_p).to(dtype)
    return plan.index_select(-1, pick).transpose(-1, -2).to(dtype)


def argmax(xt, softness, mode, log=False, *, tol=DEFAULT_TOL, max_iter=DEFAULT_MAX_ITER, kept=None):
    r"""Soft argmax ``(..., n)``: the top anchor's column of the 2-anchor transport.

    Relaxes the one-hot :func:`torch.argmax`: the scores are transported onto the anchors
    :math:`b = (0, 1)` with masses :math:`\beta = (n - 1, 1)`; the element sent to 1 is the max.

    .. math::
        \operatorname{argmax}_{soft}(\tilde x) = \Gamma^\star_{\cdot 2},\qquad
        \Gamma^\star = \operatorname*{arg\,min}_{\Gamma \mathbf 1 = \mathbf 1,\ \Gamma^\top \mathbf 1 = (n - 1, 1)}
        \langle \Gamma, C \rangle + s\,\Omega(\Gamma),\quad C_{ij} = (\tilde x_i - b_j)^2

    Args:
        xt (Tensor): standardized scores ``(..., n)``.
        softness (float or Tensor): :math:`s > 0`.
        mode (str): ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``.
        log (bool): return log-probabilities. Default: ``False``.
        tol (float): marginal tolerance. Default: ``1e-5``.
        max_iter (int): cap on Newton steps. Default: ``100``.
        kept (Tensor, optional): as in :func:`permutation`. Default: ``None``.

    Returns:
        Tensor: ``(..., n)``, a probability vector over the elements.

    Example:
        >>> import torch
        >>> argmax(torch.tensor([0.4, 0.1, 0.6, 0.9]), 1.0, "c1")
        tensor([0.0538, 0.0000, 0.2661, 0.6801])
    """
    # the top slot as a slice, not a tensor: its layout is then known while compiling
    return permutation(xt, softness, mode, True, slice(0, 1), log, tol=tol, max_iter=max_iter, kept=kept).squeeze(-2)


def sort_values(
    xt, softness, mode, descending=False, *, values=None, tol=DEFAULT_TOL, max_iter=DEFAULT_MAX_ITER, kept=None
):
    r"""Soft sorted values ``P @ values`` ``(..., n)`` (``P @ xt`` for ``values=None``), full-layout plan.

    The values :math:`\Gamma^{\star\top} x` are computed inside the transport's autograd function,
    so neither pass builds anything larger than the plan (see :mod:`softtorch._core.transport`).
    With ``kept`` (as in :func:`permutation`), the kept slots hold the sorted values of the kept
    entries alone (``values`` must be finite there; the other slots are left to the caller).

    Example:
        >>> import torch
        >>> x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
        >>> sort_values(torch.sigmoid((x - x.mean()) / x.std(unbiased=False)), 0.1, "smooth", values=x)
        tensor([-0.7324, -0.2396,  0.3286,  0.7434])
    """
    x = xt if values is None else values
    work = working_scores(xt, mode, tol, max_iter)
    n = work.shape[-1]
    if n == 1:
        return x.clone()
    b, beta, _ = anchor_layout(n, None, False, work.dtype, work.device)
    if kept is not None:
        before = excluded_before(work, kept, descending)
        scores, b, beta, pick = kept_layout(work, kept, softness, None, descending, before)
        data = torch.where(kept, x.to(work.dtype), 0.0).expand_as(work)
        values = transport(scores, softness, b, beta, mode, False, tol, max_iter, data)
        return values.gather(-1, pick).to(x.dtype)
    values = transport(work, softness, b, beta, mode, False, tol, max_iter, x.to(work.dtype).expand_as(work))
    return (values.flip(-1) if descending else values).to(x.dtype)
