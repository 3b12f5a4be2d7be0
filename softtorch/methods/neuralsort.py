r"""NeuralSort (Grover et al., 2019): a unimodal row-stochastic relaxation of the permutation.

For slot :math:`i` (1-based, descending order) the row is

.. math::
    P_{i\cdot} = \Pi_{mode}\!\left(\frac{(n + 1 - 2i)\,\tilde x_j - \sum_k |\tilde x_j - \tilde x_k|_{soft}}
    {\text{softness}}\right)_j

with :math:`|\cdot|_{soft}` the soft absolute value of the same mode and softness and
:math:`\Pi_{mode}` the simplex projection; ascending order flips :math:`i`. Row 1 is the soft
argmax. O(n^2) work per row.
"""

from __future__ import annotations

import torch

from .._core.chunking import map_row_chunks
from .._core.expectation import expect
from .._core.kernels import sigmoidal_kernel
from .._core.precision import is_half
from .._core.projections import log_project_simplex, project_simplex
from ._common import row_softness, select_rows

__all__ = ["permutation", "argmax", "sort_values"]

# Half precision runs in float32: the row scores (coef x - sums) / softness overflow float16
# for small softness (inf - inf), before the projection could upcast them.


def _pairwise_abs_sums(xt, softness, mode):
    """``A_j = sum_k |xt_j - xt_k|_soft`` for every j, in row chunks of the n x n differences."""
    n = xt.shape[-1]
    s = row_softness(softness)

    if mode == "smooth":
        # |d|_soft = d (2 sigmoid(d / s) - 1) = 2s * h tanh(h) with h = d / (2s): scaling the
        # n scores first saves a pass over the n x n block.
        half = 2.0 * softness
        scaled = xt / half

        def smooth_chunk(start, stop, scaled):
            h = scaled[..., start:stop].unsqueeze(-1) - scaled.unsqueeze(-2)
            return (h * torch.tanh(h)).sum(-1)

        return half * map_row_chunks(smooth_chunk, n, xt.numel(), scaled)

    def chunk(start, stop, xt):
        diff = xt[..., start:stop].unsqueeze(-1) - xt.unsqueeze(-2)
        return (diff * (2.0 * sigmoidal_kernel(diff / s, mode) - 1.0)).sum(-1)

    return map_row_chunks(chunk, n, xt.numel(), xt)


def _slot_coefficients(n, descending, rows, like):
    """``(n + 1 - 2i)`` for the requested 0-based slots of the descending order (negated for ascending)."""
    slots = torch.arange(n, device=like.device, dtype=like.dtype)
    coef = (n - 1.0) - 2.0 * slots
    if not descending:
        coef = -coef
    return select_rows(coef, rows)


def _row_scores(xt, sums, coef, softness):
    """``(coef_i xt_j - sums_j) / softness`` for rows i, as one fused pass over the ``(r, n)`` block."""
    scale = 1.0 / softness  # float, or (..., 1) against xt's (..., n)
    return torch.addcmul(-(sums * scale).unsqueeze(-2), (coef * scale).unsqueeze(-1), xt.unsqueeze(-2))


def permutation(xt, softness, mode, descending=False, rows=None, log=False):
    """Soft permutation rows ``(..., r, n)`` of ``xt`` (slots ``rows`` of the sorted order)."""
    if is_half(xt):
        return permutation(xt.float(), softness, mode, descending, rows, log).to(xt.dtype)
    n = xt.shape[-1]
    sums = _pairwise_abs_sums(xt, softness, mode)
    scores = _row_scores(xt, sums, _slot_coefficients(n, descending, rows, xt), softness)
    return log_project_simplex(scores, mode) if log else project_simplex(scores, mode)


def argmax(xt, softness, mode, log=False):
    """Soft argmax ``(..., n)``: the first row of the descending permutation."""
    if is_half(xt):
        return argmax(xt.float(), softness, mode, log).to(xt.dtype)
    n = xt.shape[-1]
    scores = ((n - 1.0) * xt - _pairwise_abs_sums(xt, softness, mode)) / softness
    return log_project_simplex(scores, mode) if log else project_simplex(scores, mode)


def sort_values(x, xt, softness, mode, descending=False):
    """Soft sorted values ``P @ x`` computed in row chunks, never holding the full ``P``."""
    if is_half(xt):
        return sort_values(x.float(), xt.float(), softness, mode, descending).to(x.dtype)
    n = xt.shape[-1]
    sums = _pairwise_abs_sums(xt, softness, mode)
    coef = _slot_coefficients(n, descending, None, xt)

    def chunk(start, stop, x, xt, sums, coef):
        scores = _row_scores(xt, sums, coef[start:stop], softness)
        return expect(project_simplex(scores, mode), x)

    return map_row_chunks(chunk, n, xt.numel(), x, xt, sums, coef)
