"""Half precision: the dtypes whose operators compute in float32 and cast the result back.

Soft operators divide by the softness and sum many small terms; in float16 and bfloat16 that
overflows or cancels long before float32 would, so those inputs are computed in float32.
"""

from __future__ import annotations

import torch

__all__ = ["HALF_DTYPES", "is_half", "compute_dtype"]

HALF_DTYPES = (torch.float16, torch.bfloat16)


def is_half(t: torch.Tensor) -> bool:
    """Whether ``t`` is float16 or bfloat16."""
    return t.dtype in HALF_DTYPES


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype an input of ``dtype`` is computed in: float32 for half precision, else ``dtype``."""
    return torch.float32 if dtype in HALF_DTYPES else dtype
