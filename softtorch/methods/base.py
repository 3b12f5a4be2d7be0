r"""The method contract: what every sorting method answers, and the defaults built from it.

A sorting method is one module of functions in ``softtorch/methods/`` and one row of the registry
in :mod:`softtorch.methods`. The registry wraps each module in a :class:`SortingMethod`, which
reads the module's declarations and gives the operators of :mod:`softtorch.functional` the four
contract functions below, filling in those the module leaves out from the others. The operators
only ever call these four (and read the capabilities); they never look at a method's name.

All functions work on scores ``xt`` of shape ``(..., n)`` along the last axis, the standardized
input (or the input itself when the method does not standardize, or ``standardize=False``);
``softness`` is a float or a tensor broadcasting against ``(..., 1)``; ``mode`` is one of the
method's soft modes (``"hard"`` never reaches a method: the operators call torch for it). The
method's options (``method_options``, checked against ``OPTIONS``) arrive as keyword arguments.

**The contract** (module function, and the default :class:`SortingMethod` uses without it):

``permutation(xt, softness, mode, descending=False, rows=None, log=False, **options)``
    Rows ``(..., r, n)`` of the soft permutation: ``P[..., i, j]`` is the weight of element
    ``j`` in sorted slot ``rows[i]`` (``rows``: ``None`` for all ``n`` slots, or a 1-D long
    tensor of 0-based slots, repeats allowed); each row sums to 1. A method may compute a few
    rows from a smaller problem (``"ot"`` merges the other anchors), so they need not equal the
    same rows of the full matrix. ``log``: log-probabilities (``-inf`` at exact zeros). A method
    has indices (``gives_indices``) exactly when its module defines it. *No default.*

``argmax(xt, softness, mode, log=False, **options)``
    The soft argmax ``(..., n)``. *Default:* the first row of the descending permutation. The
    wrapper's :meth:`SortingMethod.argmax` also takes ``descending=False`` for the soft argmin,
    the argmax of ``-xt`` when the module has its own argmax, else the first ascending row.

``sort_values(xt, softness, mode, descending=False, *, values=None, **options)``
    Soft sorted values ``(..., n)``, without holding ``P`` where the method can. ``values=None``:
    the soft sort of the scores ``xt`` themselves. ``values`` ``(..., n)`` (methods with a
    permutation only): the expectations ``P @ values`` of the data the scores stand for.
    *Default:* ``P @ values`` (``values=None``: ``P @ xt``), from ``fused_rows`` when the module
    has it, else from :func:`permutation`.

``rank(xt, softness, mode, descending=True, **options)``
    Soft 1-based ranks ``(..., n)`` in the order of ``xt`` (rank 1 for the largest element when
    ``descending``). *Default:* the expected slot of each element,
    :math:`r_j = \sum_i i P_{ij} / \sum_i P_{ij}`, and its hard rank where no slot gives it any
    weight (possible in the sparse modes). A method without a permutation must define it.

``fused_rows(xt, softness, mode, descending=False, rows=None, *, keep=True, values=None, weights=None)``
    Optional: the rows (``keep``), their expectations ``P @ values`` and the column statistics
    ``weights^T P`` from one fused kernel (:mod:`softtorch._core.fused_permutation`), as a tuple
    of the outputs asked for. The defaults above and the operators use it when present.

**Declarations** (module attributes, all optional):

* ``MODES``: the soft modes the method computes (default: all of
  :data:`softtorch._core.checks.SOFT_MODES`); the others are refused before any work.
* ``STANDARDIZES = False``: the method is defined on the input itself (``standardize`` then
  does not apply). Default ``True``.
* ``VALUES_FROM_SCORES``: whether the operators take soft values from the scores' own soft sort
  (``sort_values(xt)``, mapped back to the input's scale) rather than as ``P @ x`` gathered
  from the input. Default: ``True`` exactly for methods without a permutation.
* ``OPTIONS``: each option name mapped to its check, ``check(label, value) -> value`` (as in
  :func:`softtorch._core.checks.check_options`); ``OPTION_ALIASES``: other accepted spellings;
  ``OPTION_MERGE``: for an option given under several spellings at once, how to combine them.
* ``MONOTONE = False``: soft sorted values may decrease somewhere (a soft sorting network's
  compare-and-swap units do not compose into a monotone map). Default ``True``.
* ``DOUBLY_STOCHASTIC = True``: the full permutation's columns sum to 1 as well (so
  ``P @ x`` keeps ``sum(x)``). Default ``False`` (rows only).
* ``EXACT_MASKING = True``: whenever a row may hold excluded entries (a ``mask``, an infinity),
  the contract functions receive ``kept=``, a bool ``(..., n)`` (True for the entries that take
  part), with the method's options, and give the kept sorted slots the result of the row without
  the excluded entries. Default ``False``: the operators push excluded entries out of the way
  (:mod:`softtorch._core.masking`). The defaults above pass ``kept`` on to ``permutation``.
* ``PER_ROW_SLOTS = True``: ``permutation`` also takes ``rows`` of shape ``(..., r)``, each row
  its own slots; a method whose few rows come from a smaller problem (``"ot"``) declares it, so
  that masked quantiles ask each row for its own slots. Default ``False``.

A new method is therefore one module defining ``permutation`` (and so sort, top-k, quantiles,
ranks, argmax with indices) or ``sort_values`` and ``rank`` (values only), plus its registry row;
``tests/test_method_contract.py`` checks it from the registry alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .._core.checks import SOFT_MODES, check_options
from .._core.expectation import expect
from .._core.masking import excluded_before, kept_count
from .._core.precision import compute_dtype

__all__ = ["SortingMethod"]


class SortingMethod:
    """A sorting method: its module's functions behind the contract, with the defaults filled in.

    Args:
        name (str): the name the API accepts (``method=name``).
        module: the method's module (see above for what it defines).
    """

    def __init__(self, name: str, module):
        self.name = name
        self.module = module

    def __repr__(self) -> str:
        return f"SortingMethod({self.name!r})"

    # -- capabilities ----------------------------------------------------------------------

    @property
    def gives_indices(self) -> bool:
        """Whether the method has a soft permutation (and so gives soft indices)."""
        return hasattr(self.module, "permutation")

    @property
    def values_from_scores(self) -> bool:
        """Whether soft values come from the scores' own soft sort, mapped back to the input's
        scale, rather than as ``P @ x`` gathered from the input."""
        return getattr(self.module, "VALUES_FROM_SCORES", not self.gives_indices)

    @property
    def modes(self) -> tuple:
        """The soft modes the method computes: its ``MODES`` when it declares them, else all."""
        return getattr(self.module, "MODES", SOFT_MODES)

    @property
    def standardizes(self) -> bool:
        """Whether the method works on standardized scores (``standardize=True`` applies); a
        method declaring ``STANDARDIZES = False`` is defined on the input itself."""
        return getattr(self.module, "STANDARDIZES", True)

    @property
    def monotone(self) -> bool:
        """Whether soft sorted values never decrease along the sorted order."""
        return getattr(self.module, "MONOTONE", True)

    @property
    def doubly_stochastic(self) -> bool:
        """Whether the columns of the full permutation sum to 1 too (the rows always do)."""
        return getattr(self.module, "DOUBLY_STOCHASTIC", False)

    @property
    def exact_masking(self) -> bool:
        """Whether the contract functions take ``kept=`` and place excluded entries themselves."""
        return getattr(self.module, "EXACT_MASKING", False)

    @property
    def per_row_slots(self) -> bool:
        """Whether :meth:`permutation` takes per-row ``rows`` ``(..., r)`` (and relaxes the slots it
        is asked for together, so that a row's own slots differ from those of a shared table)."""
        return getattr(self.module, "PER_ROW_SLOTS", False)

    @property
    def fused_rows(self):
        """The module's fused kernel (rows, expectations and column statistics at once), or None."""
        return getattr(self.module, "fused_rows", None)

    @property
    def options(self) -> dict:
        """The method's option checks, by canonical name (empty when it takes none)."""
        return getattr(self.module, "OPTIONS", {})

    @property
    def option_aliases(self) -> dict:
        """Other accepted spellings of the method's options, mapped to their canonical names."""
        return getattr(self.module, "OPTION_ALIASES", {})

    # -- checks (before any work) ----------------------------------------------------------

    def check_mode(self, mode: str) -> str:
        """``mode`` (already one of the library's modes) if the method computes it, else a ValueError."""
        if mode != "hard" and mode not in self.modes:
            allowed = ", ".join(repr(m) for m in self.modes)
            raise ValueError(
                f"method={self.name!r} supports mode={allowed} only (and 'hard', torch's own result), got mode={mode!r}"
            )
        return mode

    def check_options(self, name: str, options) -> dict:
        """``options`` (None or a dict) checked against this method's ``OPTIONS``; canonical keys."""
        if isinstance(options, Mapping) and options and not self.options:
            raise ValueError(
                f"{name} must be empty or None for method={self.name!r}, which takes no options, got {options!r}"
            )
        checked = check_options(name, options, self.options, self.option_aliases)
        for option, combine in getattr(self.module, "OPTION_MERGE", {}).items():
            spellings = [key for key in options or () if self.option_aliases.get(key, key) == option]
            if len(spellings) > 1:
                checked[option] = combine(self.options[option](f"{name}[{key!r}]", options[key]) for key in spellings)
        return checked

    def _needs_permutation(self, what: str) -> None:
        if not self.gives_indices:
            raise ValueError(f"method={self.name!r} has no soft permutation, which {what} needs")

    # -- the contract ----------------------------------------------------------------------

    def permutation(self, xt, softness, mode, descending=False, rows=None, log=False, **options):
        """Soft permutation rows ``(..., r, n)`` of ``xt`` for the sorted slots ``rows`` (None: all)."""
        self._needs_permutation("the soft permutation")
        return self.module.permutation(xt, softness, mode, descending=descending, rows=rows, log=log, **options)

    def argmax(self, xt, softness, mode, descending=True, log=False, **options):
        """Soft argmax ``(..., n)`` of ``xt`` (``descending=False``: the soft argmin).

        The module's own ``argmax`` when it has one (of ``-xt`` for the argmin), else the first
        row of the permutation in the ``descending`` order.
        """
        own = getattr(self.module, "argmax", None)
        if own is not None:
            return own(xt if descending else -xt, softness, mode, log=log, **options)
        # the top slot as a slice, not a tensor: its layout is then known while compiling
        return self.permutation(xt, softness, mode, descending, slice(0, 1), log, **options).squeeze(-2)

    def sort_values(self, xt, softness, mode, descending=False, *, values=None, **options):
        """Soft sorted values ``(..., n)``: of ``xt`` itself, or ``P @ values`` for data ``values``."""
        if values is not None:
            self._needs_permutation("sort_values(values=...)")
        own = getattr(self.module, "sort_values", None)
        if own is not None:
            return own(xt, softness, mode, descending, values=values, **options)
        data = xt if values is None else values
        if self.fused_rows is not None and not options:
            return self.fused_rows(xt, softness, mode, descending, keep=False, values=data)[0]
        return expect(self.permutation(xt, softness, mode, descending, **options), data)

    def rank(self, xt, softness, mode, descending=True, **options):
        """Soft 1-based ranks ``(..., n)`` of ``xt``, in its order."""
        own = getattr(self.module, "rank", None)
        if own is not None:
            return own(xt, softness, mode, descending, **options)
        self._needs_permutation("the default rank")
        n = xt.shape[-1]
        slots = torch.arange(1, n + 1, device=xt.device, dtype=xt.dtype)
        if self.fused_rows is not None and not options:
            # Only the column sums of P and of slot * P, never P itself.
            weights = torch.stack((torch.ones_like(slots), slots), dim=-1).to(compute_dtype(slots.dtype))
            (columns,) = self.fused_rows(xt, softness, mode, descending, keep=False, weights=weights)
            mass, expected = columns.to(xt.dtype).unbind(-2)
        else:
            p = self.permutation(xt, softness, mode, descending, **options)
            kept = options.get("kept")
            if kept is not None:  # only the kept slots [before, before + k) are the method's to give
                before = excluded_before(xt, kept, descending)
                slot_kept = (slots > before) & (slots <= before + kept_count(kept))
                p = torch.where(slot_kept.unsqueeze(-1), p, torch.zeros_like(p))
            mass = p.sum(-2)
            expected = torch.matmul(slots.unsqueeze(0), p).squeeze(-2)
        # An element no slot gives any weight (possible with the sparse modes) keeps its hard rank.
        order = torch.argsort(xt.detach(), dim=-1, descending=descending, stable=True)
        hard = slots.new_empty(mass.shape).scatter(-1, order.expand(mass.shape), slots.expand(mass.shape))
        has_mass = ~(mass <= torch.finfo(mass.dtype).tiny)  # NaN rows stay NaN
        return torch.where(has_mass, expected / torch.where(has_mass, mass, torch.ones_like(mass)), hard)
