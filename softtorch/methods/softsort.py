r"""SoftSort (Prillo & Eisenschlos, 2020): rows anchored at the hard-sorted scores.

.. math::
    P_{i\cdot} = \Pi_{mode}\!\left(-\frac{|\tilde x_{(i)} - \tilde x_j|}{\text{softness}}\right)_{j}

where :math:`\tilde x_{(i)}` is the i-th sorted score and :math:`\Pi_{mode}` the simplex
projection of the mode (softmax, sparsemax, 1.5- or 4/3-entmax). O(n^2) work per row.
"""

from __future__ import annotations

import torch

from .._core.chunking import map_row_chunks
from .._core.expectation import expect
from .._core.projections import log_project_simplex, project_simplex
from ._common import row_softness, select_rows

__all__ = ["permutation", "argmax", "sort_values"]


def _scores(xt, softness, descending, rows):
    anchors = torch.sort(xt, dim=-1, descending=descending).values
    anchors = select_rows(anchors, rows)  # (..., r)
    return -torch.abs(anchors.unsqueeze(-1) - xt.unsqueeze(-2)) / row_softness(softness)


def permutation(xt, softness, mode, descending=False, rows=None, log=False):
    """Soft permutation rows ``(..., r, n)`` of ``xt`` (slots ``rows`` of the sorted order)."""
    scores = _scores(xt, softness, descending, rows)
    return log_project_simplex(scores, mode) if log else project_simplex(scores, mode)


def argmax(xt, softness, mode, log=False):
    """Soft argmax ``(..., n)``: the row anchored at the largest score."""
    anchor = xt.max(dim=-1, keepdim=True).values
    scores = -torch.abs(anchor - xt) / softness
    return log_project_simplex(scores, mode) if log else project_simplex(scores, mode)


def sort_values(x, xt, softness, mode, descending=False):
    """Soft sorted values ``P @ x`` computed in row chunks, never holding the full ``P``."""
    n = xt.shape[-1]
    anchors = torch.sort(xt, dim=-1, descending=descending).values

    # Scale the n anchors and scores once instead of dividing the n x n block.
    scaled, scaled_anchors = xt / softness, anchors / softness

    def chunk(start, stop, x, scaled, scaled_anchors):
        scores = torch.abs(scaled_anchors[..., start:stop].unsqueeze(-1) - scaled.unsqueeze(-2)).neg_()
        return expect(project_simplex(scores, mode), x)

    return map_row_chunks(chunk, n, xt.numel(), x, scaled, scaled_anchors)
