r"""NeuralSort (Grover et al., 2019): a unimodal row-stochastic relaxation of the permutation.

For slot :math:`i` (1-based, descending order) the row is

.. math::
    P_{i\cdot} = \Pi_{mode}\!\left(\frac{(n + 1 - 2i)\,\tilde x_j - \sum_k |\tilde x_j - \tilde x_k|_{soft}}
    {\text{softness}}\right)_j

with :math:`|\cdot|_{soft}` the soft absolute value of the same mode and softness and
:math:`\Pi_{mode}` the simplex projection; ascending order flips :math:`i`. Row 1 is the soft
argmax. O(n^2) work per row, computed by the fused kernels of
:mod:`softtorch._core.fused_permutation` (row blocks, closed-form backward): with
:math:`y = \tilde x / \text{softness}` the scores are :math:`c_i y_j - B_j`,
:math:`B_j = \sum_k \varphi(y_j - y_k)`.
"""

from __future__ import annotations

import torch

from .._core.fused_permutation import NEURALSORT, pairwise_sums, soft_rows
from .._core.precision import half_in_float32, is_half
from .._core.projections import log_project_simplex, project_simplex
from ._common import select_rows

__all__ = ["permutation", "argmax", "fused_rows"]

# Half precision runs in float32: the row scores (coef x - sums) / softness overflow float16
# for small softness (inf - inf), before the projection could upcast them.


def _slot_coefficients(n, descending, rows, like):
    """``(n + 1 - 2i)`` for the requested 0-based slots of the descending order (negated for ascending)."""
    slots = torch.arange(n, device=like.device, dtype=like.dtype)
    coef = (n - 1.0) - 2.0 * slots
    if not descending:
        coef = -coef
    return select_rows(coef, rows)


@half_in_float32
def fused_rows(xt, softness, mode, descending=False, rows=None, *, keep=True, values=None, weights=None):
    """Rows ``(..., r, n)`` (``keep``), expectations ``P @ values`` and column statistics
    ``weights^T P`` of the soft permutation, in one fused pass (see
    :func:`softtorch._core.fused_permutation.soft_rows`)."""
    y = xt / softness
    coef = _slot_coefficients(y.shape[-1], descending, rows, y)
    return soft_rows(NEURALSORT, y, coef, pairwise_sums(y, mode), mode, keep=keep, values=values, weights=weights)


def permutation(xt, softness, mode, descending=False, rows=None, log=False):
    """Soft permutation rows ``(..., r, n)`` of ``xt`` (slots ``rows`` of the sorted order)."""
    if not log:
        return fused_rows(xt, softness, mode, descending, rows)[0]
    if is_half(xt):
        return permutation(xt.float(), softness, mode, descending, rows, log).to(xt.dtype)
    y = xt / softness
    coef = _slot_coefficients(y.shape[-1], descending, rows, y)
    scores = torch.addcmul(-pairwise_sums(y, mode).unsqueeze(-2), coef.unsqueeze(-1), y.unsqueeze(-2))
    return log_project_simplex(scores, mode)


def argmax(xt, softness, mode, log=False):
    """Soft argmax ``(..., n)``: the first row of the descending permutation."""
    if is_half(xt):
        return argmax(xt.float(), softness, mode, log).to(xt.dtype)
    y = xt / softness
    scores = (y.shape[-1] - 1.0) * y - pairwise_sums(y, mode)
    return log_project_simplex(scores, mode) if log else project_simplex(scores, mode)
