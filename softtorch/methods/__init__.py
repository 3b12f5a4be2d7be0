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

The operators in :mod:`softtorch.functional` only ever look methods up here.
"""

from __future__ import annotations

from typing import NamedTuple

from .._core.checks import check_choice
from . import fast_soft_sort, neuralsort, ot, softsort, sorting_network

__all__ = ["METHOD_NAMES", "SortingMethod", "get_method"]


class SortingMethod(NamedTuple):
    name: str
    module: object
    #: Whether the method has a permutation (and so can return soft indices).
    gives_indices: bool
    #: Whether soft values are computed in the squashed score space (then mapped back) rather
    #: than gathered from the input with the soft permutation.
    values_from_scores: bool


_METHODS = {
    "softsort": SortingMethod("softsort", softsort, True, False),
    "neuralsort": SortingMethod("neuralsort", neuralsort, True, False),
    "ot": SortingMethod("ot", ot, True, False),
    "fast_soft_sort": SortingMethod("fast_soft_sort", fast_soft_sort, False, True),
    "sorting_network": SortingMethod("sorting_network", sorting_network, True, True),
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
