"""Argument handling shared by the reduction and sorting families.

One call validates everything (before any work), moves the operated dim to the end, arranges
the softness, standardizes the scores and looks the method up; the result knows how to put
outputs back in the caller's layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._core.checks import (
    check_bool,
    check_dim,
    check_float_tensor,
    check_mode,
    check_reduction_softness,
    check_softness,
)
from .._core.dims import broadcast_softness
from .._core.expectation import expect
from .._core.standardize import Standardized, standardize
from .._core.zero_grad import with_zero_grad
from ..methods import SortingMethod, check_method_options, get_method

__all__ = [
    "Family",
    "prepare",
    "one_hot",
    "gather",
    "soft_rows",
    "scores_sorted_back",
    "values_from_rows",
]


@dataclass
class Family:
    """A sorting-family call, laid out as ``(..., n)`` along the operated dim."""

    x: torch.Tensor  # the promoted input, original layout
    flat: torch.Tensor  # (..., n): operated dim last (all elements for dim=None)
    dim: int | None  # normalized dim, None when every element takes part
    softness: object  # float or tensor broadcasting against (..., 1)
    mode: str
    method: SortingMethod | None
    scaled: Standardized | None  # standardized scores (soft modes only)
    options: dict  # keyword options for the method's functions (method_options, or ot_kwargs for "ot")

    @property
    def n(self) -> int:
        return self.flat.shape[-1]

    def values_back(self, v: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
        """``(..., r)`` values to the caller's layout (r replaces the operated dim)."""
        if self.x.dim() == 0:
            return v[..., 0] if v.shape[-1] == 1 else v
        if self.dim is None:
            return v if keepdim or v.shape[-1] != 1 else v.squeeze(-1)
        out = v.movedim(-1, self.dim)
        return out if keepdim else out.squeeze(self.dim)

    def index_back(self, p: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
        """``(..., r, n)`` soft indices to the caller's layout, distributions on a new last axis."""
        if self.x.dim() == 0:
            return p[..., 0, :] if p.shape[-2] == 1 else p
        if self.dim is None:
            return p if keepdim or p.shape[-2] != 1 else p.squeeze(-2)
        out = p.movedim(-2, self.dim)
        return out if keepdim else out.squeeze(self.dim)


def prepare(
    x,
    dim,
    softness,
    mode,
    method,
    standardize_scores,
    *,
    needs_indices,
    check_n=None,
    method_options=None,
    ot_kwargs=None,
) -> Family:
    """Validate the common sorting-family arguments and lay the input out as ``(..., n)``.

    ``check_n(n)`` validates arguments that depend on the size of the operated dim; it runs
    before any computation. ``method_options`` is checked against the method's own options;
    ``ot_kwargs`` is checked whatever the method and used by ``"ot"`` only.
    """
    x = check_float_tensor("x", x)
    mode = check_mode(mode)
    softness = check_softness(softness)
    sorting_method = get_method(method, needs_indices=needs_indices)
    check_bool("standardize", standardize_scores)
    options = check_method_options(sorting_method, method_options, ot_kwargs=ot_kwargs)
    if dim is None:
        flat = x.reshape(-1)
        norm_dim = None
    else:
        norm_dim = check_dim(dim, x.dim())
        flat = x.reshape(1) if x.dim() == 0 else x.movedim(norm_dim, -1)
    if flat.shape[-1] == 0:
        raise ValueError(f"x must have at least one element along the operated dim, got shape {tuple(x.shape)}")
    check_reduction_softness(softness, x.shape, norm_dim)
    if check_n is not None:
        check_n(flat.shape[-1])
    softness = broadcast_softness(softness, x.shape, norm_dim)
    scaled = None if mode == "hard" else standardize(flat, bool(standardize_scores) and sorting_method.standardizes)
    return Family(x, flat, norm_dim, softness, mode, sorting_method, scaled, options)


def one_hot(index: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    """Float one-hot distributions of ``index`` on a new last axis, with a zero gradient to ``like``."""
    return with_zero_grad(torch.nn.functional.one_hot(index, n).to(like.dtype), like)


def gather(p: torch.Tensor, flat: torch.Tensor, gated_grad: bool) -> torch.Tensor:
    """Expected values ``p @ flat`` of ``(..., r, n)`` rows over ``(..., n)`` data -> ``(..., r)``."""
    if not gated_grad:
        p = p.detach()
    return expect(p, flat)


def soft_rows(fam: Family, descending: bool, rows=None, log: bool = False) -> torch.Tensor:
    """Rows ``(..., r, n)`` of the method's soft permutation of the standardized scores."""
    return fam.method.module.permutation(
        fam.scaled.scores, fam.softness, fam.mode, descending=descending, rows=rows, log=log, **fam.options
    )


def scores_sorted_back(fam: Family, descending: bool) -> torch.Tensor:
    """For methods computing values in score space: soft sorted values, mapped back to ``x``'s scale."""
    return fam.scaled.inverse(
        fam.method.module.sort_values(fam.scaled.scores, fam.softness, fam.mode, descending=descending, **fam.options)
    )


def values_from_rows(fam: Family, rows_p: torch.Tensor, log: bool, gated_grad: bool) -> torch.Tensor:
    """Expected values under soft permutation rows (given as log-probabilities when ``log``)."""
    return gather(rows_p.exp() if log else rows_p, fam.flat, gated_grad)
