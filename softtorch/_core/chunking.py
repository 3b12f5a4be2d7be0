"""Row-chunked evaluation with recomputation, so O(n^2) work never holds an n x n matrix."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["map_row_chunks", "CACHE_ELEMENTS", "CHUNK_ELEMENTS", "DENSE_ELEMENTS"]

#: Work of at most this many elements (all rows at once) runs in one plain pass: recomputation
#: would cost more time than the memory it saves (64M float32 elements, 256 MiB).
DENSE_ELEMENTS = 1 << 26
#: Above that, the elements of one chunk's intermediate ``(..., chunk, n)`` tensor. Chunks of
#: 64 MiB (float32) keep peak memory well below 1 GiB while each allocation stays large enough
#: for the C allocator to hand it back to the system when it is freed.
CHUNK_ELEMENTS = 1 << 24
#: Below :data:`DENSE_ELEMENTS` the rows still run in blocks of this many elements (4 MiB in
#: float32), without recomputation: each elementwise pass then works in cache instead of
#: streaming a 256 MiB temporary through memory, about twice as fast on the CPU.
CACHE_ELEMENTS = 1 << 20


def map_row_chunks(fn, n_rows: int, row_elements: int, *tensors: torch.Tensor) -> torch.Tensor:
    """Evaluate ``fn(start, stop, *tensors) -> (..., stop - start)`` over ``range(n_rows)`` in chunks.

    ``row_elements`` is the number of elements one row of work materializes (batch size times n).
    When the whole work is at most :data:`DENSE_ELEMENTS`, ``fn`` is called once, plainly. Otherwise each chunk runs
    under non-reentrant activation checkpointing: its intermediates are freed after the forward
    pass and recomputed, one chunk at a time, in the backward pass, so peak memory is
    O(chunk x row_elements) instead of O(n_rows x row_elements). Results are concatenated along
    the last axis.
    """
    dense = n_rows * row_elements <= DENSE_ELEMENTS
    chunk = max(1, (CACHE_ELEMENTS if dense else CHUNK_ELEMENTS) // max(row_elements, 1))
    if chunk >= n_rows:
        return fn(0, n_rows, *tensors)
    pieces = []
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        if dense:
            pieces.append(fn(start, stop, *tensors))
        else:
            pieces.append(checkpoint(fn, start, stop, *tensors, use_reentrant=False))
    return torch.cat(pieces, dim=-1)
