"""The sorting methods, behind one dispatch table.

Every method module answers the same questions on standardized scores ``xt`` of shape ``(..., n)``
(softness a float or a tensor broadcasting against ``(..., 1)``):

* ``permutation(xt, softness, mode, descending=False, rows=None, log=False)`` -> ``(..., r, n)``:
  rows of the soft permutation (``P[..., i, j]`` = weight of element j in sorted slot i), for the
  slots ``rows`` (``None``: all ``n``);
* ``argmax(xt, softness, mode, log=False)`` -> ``(..., n)`` (optional; default: first row of the
  descending permutation);
* ``sort_values(...)``: soft sorted values without holding the permutation. Methods whose
  ``values_from_scores`` is False gather them from the input: ``sort_values(x, xt, softness, mode,
  descending)``; methods whose ``values_from_scores`` is True compute them in the score space:
  ``sort_values(xt, softness, mode, descending)``, and the caller maps them back;
* ``fused_rows(xt, softness, mode, descending=False, rows=None, *, keep=True, values=None,
  weights=None)`` (optional; softsort, neuralsort): the rows, their expectations ``P @ values``
  and the column statistics ``weights^T P`` from one fused kernel
  (:mod:`softtorch._core.fused_permutation`), as a tuple of the requested outputs. The operators
  use it, when present, for sort, topk, median and rank.

A method with options declares them in its module: ``OPTIONS`` maps each option name to its check
(``check(label, value) -> value``, as in :func:`softtorch._core.checks.check_options`) and
``OPTION_ALIASES`` maps other accepted spellings to those names. The user's ``method_options``
dict is checked against the chosen method's ``OPTIONS`` and passed to every function of the method
as keyword arguments, which the functions take with their defaults.

A method that declares ``EXACT_MASKING = True`` receives ``kept=`` (see
:attr:`SortingMethod.exact_masking`) in every function when a row may hold excluded entries.

A method may also declare ``MODES``, the soft modes it computes (default: all; it refuses the
others itself), and ``STANDARDIZES = False`` when it is defined on the input itself (the
``standardize`` argument then does not apply).

The operators in :mod:`softtorch.functional` only ever look methods up here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from .._core.checks import SOFT_MODES, check_choice, check_options
from . import fast_soft_sort, neuralsort, ot, smooth_sort, softsort, sorting_network

__all__ = ["METHOD_NAMES", "SortingMethod", "get_method", "check_method_options"]


class SortingMethod(NamedTuple):
    name: str
    module: object
    #: Whether the method has a permutation (and so can return soft indices).
    gives_indices: bool
    #: Whether soft values are computed in the squashed score space (then mapped back) rather
    #: than gathered from the input with the soft permutation.
    values_from_scores: bool

    @property
    def options(self) -> dict:
        """The method's option checks, by canonical name (empty when it takes none)."""
        return getattr(self.module, "OPTIONS", {})

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
    def exact_masking(self) -> bool:
        """Whether the method leaves excluded entries out of its relaxation itself (``EXACT_MASKING =
        True``): its functions then take ``kept``, a ``(..., n)`` bool tensor (True = kept entry),
        whenever a row may hold excluded entries, and give the kept sorted slots the result of the
        row without the excluded entries (see :mod:`softtorch._core.masking`)."""
        return getattr(self.module, "EXACT_MASKING", False)

    @property
    def option_aliases(self) -> dict:
        """Other accepted spellings of the method's options, mapped to their canonical names."""
        return getattr(self.module, "OPTION_ALIASES", {})

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


_METHODS = {
    "softsort": SortingMethod("softsort", softsort, True, False),
    "neuralsort": SortingMethod("neuralsort", neuralsort, True, False),
    "ot": SortingMethod("ot", ot, True, False),
    "fast_soft_sort": SortingMethod("fast_soft_sort", fast_soft_sort, False, True),
    "sorting_network": SortingMethod("sorting_network", sorting_network, True, True),
    "smooth_sort": SortingMethod("smooth_sort", smooth_sort, False, True),
}

#: Every method name the API accepts.
METHOD_NAMES = tuple(_METHODS)


def get_method(method, needs_indices: bool = False) -> SortingMethod:
    """Look up ``method``; refuse unknown names, and methods without a permutation when indices are needed."""
    check_choice("method", method, METHOD_NAMES)
    found = _METHODS[method]
    if needs_indices and not found.gives_indices:
        with_indices = ", ".join(repr(m.name) for m in _METHODS.values() if m.gives_indices)
        raise ValueError(
            f"method={method!r} computes sorted values only and has no soft permutation; "
            f"use one of {with_indices} to get indices"
        )
    return found


#: Older per-method option arguments, kept for drop-in use: ``ot_kwargs`` holds options of
#: ``"ot"`` only. Each is checked whatever the method and used only by its own method.
LEGACY_OPTION_ARGS = {"ot_kwargs": "ot"}


def check_method_options(method: SortingMethod, method_options=None, **legacy) -> dict:
    """The keyword options for ``method``'s functions from ``method_options`` and the legacy arguments.

    ``method_options`` is checked against the method's own ``OPTIONS``; each legacy argument of
    :data:`LEGACY_OPTION_ARGS` (``ot_kwargs=...``) against its owner's, and merged only when the
    owner is ``method``. An option given both ways is refused.
    """
    options = method.check_options("method_options", method_options)
    for arg, value in legacy.items():
        owner = _METHODS[LEGACY_OPTION_ARGS[arg]]
        checked = owner.check_options(arg, value)
        if owner is not method:
            continue
        twice = sorted(set(checked) & set(options))
        if twice:
            raise ValueError(f"{arg} and method_options both set {', '.join(map(repr, twice))}; give each option once")
        options = {**checked, **options}
    return options
