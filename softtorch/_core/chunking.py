"""Row-chunked evaluation with recomputation, so O(n^2) work never holds an n x n matrix."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["map_row_chunks", "CHUNK_ELEMENTS"]

#: Upper bound on the elements of one chunk's intermediate ``(..., chunk, n)`` tensor.
CHUNK_ELEMENTS = 1 << 23


def map_row_chunks(fn, n_rows: int, row_elements: int, *tensors: torch.Tensor) -> torch.Tensor:
    """Evaluate ``fn(start, stop, *tensors) -> (..., stop - start)`` over ``range(n_rows)`` in chunks.

    ``row_elements`` is the number of elements one row of work materializes (batch size times n).
    When everything fits in one chunk, ``fn`` is called once, plainly. Otherwise each chunk runs
    under non-reentrant activation checkpointing: its intermediates are freed after the forward
    pass and recomputed, one chunk at a time, in the backward pass, so peak memory is
    O(chunk x row_elements) instead of O(n_rows x row_elements). Results are concatenated along
    the last axis.
    """
    chunk = max(1, CHUNK_ELEMENTS // max(row_elements, 1))
    if chunk >= n_rows:
        return fn(0, n_rows, *tensors)
    pieces = []
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        pieces.append(checkpoint(fn, start, stop, *tensors, use_reentrant=False))
    return torch.cat(pieces, dim=-1)
