"""Preparing a sorting-family call, and reading a method's results back.

:func:`prepare` validates everything (before any work), moves the operated dim to the end,
arranges the softness, standardizes the scores and looks the method up; the :class:`Family` it
returns knows how to put outputs back in the caller's layout. The helpers below call the method's
contract (:mod:`softtorch.methods.base`) and place the excluded entries
(:mod:`softtorch._core.masking`); they are shared by the reduction and sorting families.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .._core.checks import (
    check_bool,
    check_dim,
    check_float_tensor,
    check_mode,
    check_positive,
    check_reduction_softness,
    check_softness,
)
from .._core.dims import broadcast_softness
from .._core.expectation import expect
from .._core.masking import Excluded, apply_mask, check_mask, may_hold_inf, push_out
from .._core.standardize import Standardized, standardize
from .._core.zero_grad import with_zero_grad
from ..methods import SortingMethod, check_method_options, get_method

__all__ = [
    "Family",
    "prepare",
    "one_hot",
    "gather",
    "soft_rows",
    "sorted_values",
    "values_from_rows",
    "check_log_prob_eps",
    "floored_log",
    "fix_rows",
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
    #: Keyword options for the method's functions (``method_options`` and the legacy spellings),
    #: and ``kept`` (``(..., n)`` bool) for a method with ``exact_masking`` when entries are excluded.
    options: dict
    #: Whether entries are excluded from the relaxation (a mask, or a possible infinity): see
    #: :mod:`softtorch._core.masking`.
    excluding: bool = False
    #: Whether a ``mask`` was given: quantiles and medians then count the kept entries only.
    masked: bool = False
    #: ``(..., 1)`` entries the mask keeps per row (with a mask only).
    mask_count: torch.Tensor | None = None
    _excluded: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.flat.shape[-1]

    def excluded(self, descending: bool) -> Excluded:
        """Where the excluded entries sit in the sorted order of ``descending`` (computed once)."""
        if descending not in self._excluded:
            self._excluded[descending] = Excluded(self.flat, descending)
        return self._excluded[descending]

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
    mask=None,
    descending=True,
) -> Family:
    """Validate the common sorting-family arguments and lay the input out as ``(..., n)``.

    ``check_n(n)`` validates arguments that depend on the size of the operated dim; it runs
    before any computation. ``method_options`` is checked against the method's own options;
    the legacy ``ot_kwargs`` whatever the method, and used by its own method only. Entries that ``mask``
    drops become the infinity that sorts them last in the ``descending`` order the operator reads.
    """
    x = check_float_tensor("x", x)
    mask = check_mask(mask, x.shape)
    mode = check_mode(mode)
    softness = check_softness(softness)
    sorting_method = get_method(method, needs_indices=needs_indices)
    sorting_method.check_mode(mode)
    check_bool("standardize", standardize_scores)
    options = check_method_options(sorting_method, method_options, ot_kwargs=ot_kwargs)
    norm_dim = None if dim is None else check_dim(dim, x.dim())

    def last(t):  # the operated dim last; every element for dim=None
        if norm_dim is None:
            return t.reshape(-1)
        return t.reshape(1) if t.dim() == 0 else t.movedim(norm_dim, -1)

    flat = last(x)
    if flat.shape[-1] == 0:
        raise ValueError(f"x must have at least one element along the operated dim, got shape {tuple(x.shape)}")
    check_reduction_softness(softness, x.shape, norm_dim)
    if check_n is not None:
        check_n(flat.shape[-1])
    softness = broadcast_softness(softness, x.shape, norm_dim)
    mask_count = None
    if mask is not None:
        x = apply_mask(x, mask, descending)
        flat = last(x)
        mask_count = last(mask).to(flat.device).sum(-1, keepdim=True)
    excluding = mask is not None or (mode != "hard" and may_hold_inf(flat))
    standardized = bool(standardize_scores) and sorting_method.standardizes
    scaled = None if mode == "hard" else standardize(flat, standardized)
    if excluding and scaled is not None:
        scaled = scaled._replace(scores=push_out(scaled.scores, flat, softness))
        if sorting_method.exact_masking:
            # The method leaves the excluded entries out of its relaxation itself.
            options = {**options, "kept": ~torch.isinf(flat)}
    return Family(
        x,
        flat,
        norm_dim,
        softness,
        mode,
        sorting_method,
        scaled,
        options,
        excluding=excluding,
        masked=mask is not None,
        mask_count=mask_count,
    )


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
    p = fam.method.permutation(fam.scaled.scores, fam.softness, fam.mode, descending, rows, log, **fam.options)
    return fix_rows(fam, p, descending, rows, log)


def fix_rows(fam: Family, p: torch.Tensor, descending: bool, rows, log: bool) -> torch.Tensor:
    """Soft permutation rows (of :func:`soft_rows`, or an ``argmax``) with the excluded entries placed."""
    return fam.excluded(descending).fix_rows(p, rows, log, fam.flat) if fam.excluding else p


def sorted_values(fam: Family, descending: bool, gated_grad: bool = True) -> torch.Tensor:
    """Soft sorted values ``(..., n)`` in ``x``'s scale, without the permutation where the method can.

    Methods with ``values_from_scores`` sort the scores themselves, mapped back to ``x``'s scale;
    the others carry ``x`` with their permutation, ``P @ x`` (``gated_grad=False``: no gradient
    through ``P``). Excluded entries get their hard values.
    """
    method, scores, softness = fam.method, fam.scaled.scores, fam.softness
    excluded = fam.excluded(descending) if fam.excluding else None
    if method.values_from_scores:
        values = method.sort_values(scores, softness, fam.mode, descending, **fam.options)
        if excluded is None:
            return fam.scaled.inverse(values)
        if not method.exact_masking:  # the kept slots may mix in the moved scores of excluded entries
            values = excluded.clamp_to_kept(values, scores)
        return excluded.fix_values(fam.scaled.inverse(values), None)
    if not gated_grad:
        scores = scores.detach()
        softness = softness.detach() if isinstance(softness, torch.Tensor) else softness
    # Excluded entries (weight below e^-50 in every kept slot) are gathered as zeros, then placed.
    data = fam.flat if excluded is None else excluded.finite_flat()
    values = method.sort_values(scores, softness, fam.mode, descending, values=data, **fam.options)
    return values if excluded is None else excluded.fix_values(values, None)


def values_from_rows(
    fam: Family, rows_p: torch.Tensor, log: bool, gated_grad: bool, descending: bool = True, rows=None
) -> torch.Tensor:
    """Expected values under soft permutation rows (given as log-probabilities when ``log``)."""
    p = rows_p.exp() if log else rows_p
    if not fam.excluding:
        return gather(p, fam.flat, gated_grad)
    excluded = fam.excluded(descending)
    return excluded.fix_values(gather(p, excluded.finite_flat(), gated_grad), rows)


def check_log_prob_eps(log_prob_eps):
    """``None`` or a positive float: the floor of the probabilities of ``return_log_probs``."""
    return None if log_prob_eps is None else check_positive("log_prob_eps", log_prob_eps)


def floored_log(p: torch.Tensor, log_prob_eps: float) -> torch.Tensor:
    """Log-probabilities of the distributions ``p`` (last axis) floored at ``log_prob_eps`` and
    renormalized: finite everywhere, even at the exact zeros of the sparse modes."""
    floored = p.clamp(min=log_prob_eps)
    return torch.log(floored / floored.sum(-1, keepdim=True))
