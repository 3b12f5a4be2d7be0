r"""Masked and infinite entries of a sorted row: excluded from the relaxation, placed exactly.

An entry at :math:`\pm\infty` (or one that ``mask`` drops, which the caller first sets to the
infinity that sorts it last) takes no part in the soft computation of the rest of its row, as
:func:`torch.topk` excludes ``-inf`` logits:

1. the standardization uses the finite entries only (:mod:`softtorch._core.standardize`);
2. its score is moved to a finite point beyond every finite score, on its own side, by a margin
   of ``1 + range + 50 softness`` (constant, no gradient). There the kernels of softsort and
   NeuralSort have saturated: the soft absolute value of NeuralSort is exact (then the row scores
   of the kept entries equal those of the row without the excluded ones, up to a per-row
   constant and a shift of the slot number), and the sparse projections give the excluded
   columns exactly 0;
3. a method that declares ``EXACT_MASKING`` (``ot``, ``fast_soft_sort``, ``smooth_sort``,
   ``sorting_network``) also receives ``kept`` and leaves the excluded entries out itself: its kept
   slots hold what it gives the ``k`` kept entries alone (``k`` per row), with the helpers below
   (kept entries first, the excluded ones sorted before them counted from the moved scores);
4. after the method ran, the sorted slots that hold an excluded entry get the hard one-hot row,
   and the kept slots lose the weight (at most :math:`e^{-50}` of the smooth mode) that fell on
   excluded columns, renormalized away. Values at excluded slots are the exact :math:`\pm\infty`.

So every method gives at the kept slots exactly (to rounding, ``ot`` to its solver's tolerance) the
result of the row without the excluded entries, in every mode; every method gives the excluded
entries zero weight, their hard slots, finite values and gradients elsewhere, and zero gradients at
them.

Slots are counted in the order the operator reads them: ``top`` entries (``+inf`` descending,
``-inf`` ascending) come first, the kept entries next, the others last.
"""

from __future__ import annotations

import torch

from .checks import check_float_tensor
from .zero_grad import with_zero_grad

__all__ = [
    "check_mask",
    "apply_mask",
    "may_hold_inf",
    "push_out",
    "Excluded",
    "kept_count",
    "excluded_before",
    "kept_first",
    "kept_slot_index",
    "kept_slots",
]

#: Margin of the excluded scores beyond the kept ones, in units of the softness.
_SOFTNESS_MARGIN = 50.0


def check_mask(mask, shape) -> torch.Tensor | None:
    """``mask`` (None or a bool tensor broadcasting to ``shape``), broadcast to ``shape``."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a bool tensor (True = keep) or None, got {type(mask).__name__} {mask!r}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = keep), got a tensor of dtype {mask.dtype}")
    try:
        return torch.broadcast_to(mask, shape)
    except RuntimeError:
        raise ValueError(
            f"mask must broadcast to the shape of x {tuple(shape)}, got mask of shape {tuple(mask.shape)}"
        ) from None


def apply_mask(x: torch.Tensor, mask: torch.Tensor | None, descending: bool) -> torch.Tensor:
    """``x`` with the dropped entries set to the infinity that sorts them last."""
    if mask is None:
        return x
    x = check_float_tensor("x", x)
    fill = float("-inf") if descending else float("inf")
    return x.masked_fill(~mask.to(x.device), fill)


def may_hold_inf(flat: torch.Tensor) -> bool:
    """Whether ``flat`` may hold an infinity: checked on CPU tensors, assumed elsewhere.

    On a CPU tensor the check costs one pass and no device synchronization; on an accelerator,
    under ``torch.compile`` or a ``torch.func`` transform the answer is ``True`` (the general
    path, which gives the same result bit for bit when nothing is infinite).
    """
    if flat.device.type != "cpu" or torch.compiler.is_compiling():
        return True
    try:
        return bool(torch.isinf(flat).any())
    except RuntimeError:  # a batched (vmap) tensor has no single truth value
        return True


def _kept_range(scores: torch.Tensor, excluded: torch.Tensor):
    """Per-row ``(bottom, top)`` of the kept entries' scores (constants; 0 for a row with none)."""
    kept_scores = scores.detach()
    top = kept_scores.masked_fill(excluded, float("-inf")).amax(-1, keepdim=True)
    bottom = kept_scores.masked_fill(excluded, float("inf")).amin(-1, keepdim=True)
    nothing_kept = excluded.all(-1, keepdim=True)
    return (
        torch.where(nothing_kept, torch.zeros_like(bottom), bottom),
        torch.where(nothing_kept, torch.zeros_like(top), top),
    )


def push_out(scores: torch.Tensor, flat: torch.Tensor, softness) -> torch.Tensor:
    """``scores`` with those of ``-inf``/``+inf`` entries of ``flat`` moved far below/above the finite ones."""
    low, high = flat == float("-inf"), flat == float("inf")
    bottom, top = _kept_range(scores, low | high)
    s = softness.detach() if isinstance(softness, torch.Tensor) else softness
    margin = (top - bottom) + 1.0 + _SOFTNESS_MARGIN * s
    moved = torch.where(low, bottom - margin, torch.where(high, top + margin, scores))
    return moved


class Excluded:
    """Where the excluded entries of ``(..., n)`` rows sit once sorted in one direction."""

    def __init__(self, flat: torch.Tensor, descending: bool):
        self.flat = flat
        self.descending = descending
        self.kept = ~torch.isinf(flat)  # NaN entries stay in: NaN stays confined to its row
        first = float("inf") if descending else float("-inf")
        self.top = (flat == first).sum(-1, keepdim=True)  # (..., 1) slots before the kept ones
        self.count = self.kept.sum(-1, keepdim=True)  # (..., 1) kept entries
        hard = torch.sort(flat, dim=-1, descending=descending, stable=True)
        self.hard_values, self.hard_index = hard.values, hard.indices

    def slot_kept(self, rows) -> torch.Tensor:
        """``(..., r)``: whether sorted slot ``rows[i]`` (all n when None; ``rows`` may also hold
        per-row slots ``(..., r)``) holds a kept entry."""
        n = self.flat.shape[-1]
        slots = torch.arange(n, device=self.flat.device) if rows is None else rows
        return (slots >= self.top) & (slots < self.top + self.count)

    def _select(self, t: torch.Tensor, rows) -> torch.Tensor:
        if rows is None:
            return t
        if rows.dim() == 1:
            return t.index_select(-1, rows)
        return t.gather(-1, rows.expand(*t.shape[:-1], rows.shape[-1]))  # per-row slots (..., r)

    def fix_rows(self, p: torch.Tensor, rows, log: bool, like: torch.Tensor) -> torch.Tensor:
        """Rows ``(..., r, n)``: excluded slots one-hot, kept slots renormalized on the kept columns."""
        n = self.flat.shape[-1]
        hard = with_zero_grad(torch.nn.functional.one_hot(self._select(self.hard_index, rows), n).to(p.dtype), like)
        kept_col = self.kept.unsqueeze(-2)
        slot = self.slot_kept(rows).unsqueeze(-1)
        weights = p.exp() if log else p
        leaked = torch.where(kept_col, torch.zeros_like(p), weights).sum(-1, keepdim=True)
        # An excluded slot's soft row may be all leak: keep its (discarded) branch finite.
        leaked = torch.where(slot, leaked, torch.zeros_like(leaked))
        if log:
            soft = torch.where(kept_col, p - torch.log1p(-leaked), torch.full_like(p, float("-inf")))
            return torch.where(slot, soft, torch.log(hard))
        soft = torch.where(kept_col, p, torch.zeros_like(p)) / (1.0 - leaked)
        return torch.where(slot, soft, hard)

    def fix_values(self, v: torch.Tensor, rows) -> torch.Tensor:
        """Sorted-slot values ``(..., r)`` with the exact hard values at excluded slots."""
        return torch.where(self.slot_kept(rows), v, self._select(self.hard_values, rows))

    def clamp_to_kept(self, values: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Sorted ``values`` in score space, clamped to the range of the kept entries' ``scores``.

        For a method that computes values in score space without ``EXACT_MASKING``, whose kept
        slots may mix in the moved scores of excluded entries.
        """
        bottom, top = _kept_range(scores, ~self.kept)
        return torch.maximum(torch.minimum(values, top), bottom)

    def finite_flat(self) -> torch.Tensor:
        """The input with its infinities zeroed, to gather kept values from (no ``0 * inf``)."""
        return torch.where(self.kept, self.flat, torch.zeros_like(self.flat))


# -- the kept entries of a row, for the methods that leave the excluded ones out themselves -------------


def kept_count(kept: torch.Tensor) -> torch.Tensor:
    """``(..., 1)``: the kept entries of every row of the ``(..., n)`` mask ``kept``."""
    return kept.sum(-1, keepdim=True)


def excluded_before(scores: torch.Tensor, kept: torch.Tensor, descending: bool) -> torch.Tensor:
    """``(..., 1)``: the excluded entries that sort before every kept one in the ``descending`` order.

    ``scores`` are the pushed-out scores of :func:`push_out`: the excluded entries sit beyond every
    kept score on the side where they sort, so the count is read off the scores themselves (a
    row with nothing kept counts all its entries).
    """
    s = scores.detach()
    if descending:
        edge = s.masked_fill(~kept, float("-inf")).amax(-1, keepdim=True)
        beyond = s > edge
    else:
        edge = s.masked_fill(~kept, float("inf")).amin(-1, keepdim=True)
        beyond = s < edge
    return (beyond & ~kept).sum(-1, keepdim=True)


def kept_first(scores: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """``scores`` with the excluded entries set below every kept one (a constant): sorted in
    decreasing order, a row then holds its kept entries first."""
    s = scores.detach()
    low = s.masked_fill(~kept, float("inf")).amin(-1, keepdim=True)
    low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
    return torch.where(kept, scores, low - 1.0)


def kept_slots(count: torch.Tensor, n: int, dtype, device) -> torch.Tensor:
    """``(..., n)``: the decreasing slots :math:`(k - 1 - j) / (k - 1)` of the ``k = count`` kept
    entries of a row (0 after them, and for ``k = 1``)."""
    j = torch.arange(n, device=device)
    return (count - 1 - j).clamp_min(0).to(dtype) / (count - 1).clamp_min(1).to(dtype)


def kept_slot_index(count: torch.Tensor, before: torch.Tensor, n: int, descending: bool) -> torch.Tensor:
    """``(..., n)``: for every sorted slot of the ``descending`` order, the position in a row whose
    first ``count`` entries hold the kept entries' result in decreasing order (slots of excluded
    entries read an arbitrary position, to be overwritten)."""
    slot = torch.arange(n, device=count.device) - before
    index = slot if descending else count - 1 - slot
    return index.clamp(0, n - 1)
