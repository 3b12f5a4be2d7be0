r"""SoftSort (Prillo & Eisenschlos, 2020): rows anchored at the hard-sorted scores.

.. math::
    P_{i\cdot} = \Pi_{mode}\!\left(-\frac{|\tilde x_{(i)} - \tilde x_j|}{\text{softness}}\right)_{j}

where :math:`\tilde x_{(i)}` is the i-th sorted score and :math:`\Pi_{mode}` the simplex
projection of the mode (softmax, sparsemax, 1.5- or 4/3-entmax). O(n^2) work per row, computed
by the fused kernel of :mod:`softtorch._core.fused_permutation` (row blocks, closed-form backward).
"""

from __future__ import annotations

import torch

from .._core.forward_mode import plain_eager
from .._core.fused_permutation import SOFTSORT, soft_rows
from .._core.precision import half_in_float32
from .._core.projections import log_project_simplex, project_simplex
from ._common import row_softness, select_rows

__all__ = ["permutation", "argmax", "fused_rows"]


def _anchors(y, descending, rows):
    """The sorted ``y`` at the slots ``rows``: a leading slice ``rows`` takes a top-k, and a few
    slots given as a CPU tensor (quantiles, medians) the top-k from the nearer end, not a full sort."""
    n = y.shape[-1]
    if isinstance(rows, slice) and rows.start in (0, None) and rows.step in (1, None) and rows.stop is not None:
        return torch.topk(y, min(max(rows.stop, 0), n), dim=-1, largest=descending, sorted=True).values
    if _few_slots(rows):
        slots = rows.tolist()
        near, far = max(slots) + 1, n - min(slots)
        if near <= far:
            return torch.topk(y, near, dim=-1, largest=descending, sorted=True).values.index_select(-1, rows)
        ends = torch.topk(y, far, dim=-1, largest=not descending, sorted=True).values
        return ends.index_select(-1, (n - 1) - rows)
    return select_rows(torch.sort(y, dim=-1, descending=descending).values, rows)


def _few_slots(rows) -> bool:
    """Whether ``rows`` is a short 1-D CPU tensor of slots that may be read on the host (not while
    compiling or inside a transform)."""
    return (
        isinstance(rows, torch.Tensor)
        and rows.dim() == 1
        and 0 < rows.numel() <= 16
        and rows.device.type == "cpu"
        and plain_eager(rows)
    )


@half_in_float32
def fused_rows(xt, softness, mode, descending=False, rows=None, *, keep=True, values=None, weights=None):
    """Rows ``(..., r, n)`` (``keep``), expectations ``P @ values`` and column statistics
    ``weights^T P`` of the soft permutation, in one fused pass (see
    :func:`softtorch._core.fused_permutation.soft_rows`)."""
    y = xt / softness
    return soft_rows(SOFTSORT, y, _anchors(y, descending, rows), None, mode, keep=keep, values=values, weights=weights)


def permutation(xt, softness, mode, descending=False, rows=None, log=False):
    """Soft permutation rows ``(..., r, n)`` of ``xt`` (slots ``rows`` of the sorted order)."""
    if not log:
        return fused_rows(xt, softness, mode, descending, rows)[0]
    anchors = _anchors(xt, descending, rows)  # (..., r)
    scores = -torch.abs(anchors.unsqueeze(-1) - xt.unsqueeze(-2)) / row_softness(softness)
    return log_project_simplex(scores, mode)


def argmax(xt, softness, mode, log=False):
    """Soft argmax ``(..., n)``: the row anchored at the largest score."""
    anchor = xt.max(dim=-1, keepdim=True).values
    scores = -torch.abs(anchor - xt) / softness
    return log_project_simplex(scores, mode) if log else project_simplex(scores, mode)
