"""The sorting methods, behind one registry.

Each method is a module of functions in this package (the contract it follows, and the defaults
filled in for what it leaves out, are in :mod:`softtorch.methods.base`) and one row of the
registry below, which wraps it in a :class:`~softtorch.methods.base.SortingMethod`. The operators
in :mod:`softtorch.functional` only ever look methods up here.
"""

from __future__ import annotations

import textwrap

from .._core.checks import SOFT_MODES, check_choice
from . import fast_soft_sort, neuralsort, ot, smooth_sort, softsort, sorting_network
from .base import SortingMethod

__all__ = [
    "METHOD_NAMES",
    "REDUCTION_METHOD",
    "SortingMethod",
    "get_method",
    "check_method_options",
    "check_median_method",
    "method_arg_doc",
]

_METHODS = {
    method.name: method
    for method in (
        SortingMethod("softsort", softsort),
        SortingMethod("neuralsort", neuralsort),
        SortingMethod("ot", ot),
        SortingMethod("fast_soft_sort", fast_soft_sort),
        SortingMethod("sorting_network", sorting_network),
        SortingMethod("smooth_sort", smooth_sort),
    )
}

#: Every method name the API accepts.
METHOD_NAMES = tuple(_METHODS)

#: The default method of the reductions (max, min, argmax, argmin), as in softtorch 0.1.1: the
#: SoftSort row of the maximum (the sorting operators default to ``"neuralsort"``).
REDUCTION_METHOD = "softsort"


def _listed(items, last: str = "or") -> str:
    """``a, b or c`` (``last="and"``: ``a, b and c``)."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {last} " + items[-1]


def _notes(method: SortingMethod, values_only: str) -> str:
    notes = [] if method.gives_indices else [values_only]
    if tuple(method.modes) != tuple(SOFT_MODES):
        notes.append(", ".join(f'``mode="{m}"``' for m in method.modes) + " only")
    if not method.standardizes:
        notes.append("never standardized")
    return f" ({'; '.join(notes)})" if notes else ""


def method_arg_doc(default: str, *, indices: bool = False, values_only: str = "values and ranks only") -> str:
    """The ``method`` entry of an operator's ``Args``, written from the registry (so a new method
    appears in every operator's documentation): the names it accepts, with what the methods
    without full support give (``values_only``), and the ``default``. ``indices``: the operator
    returns soft indices, so only methods with a permutation are listed and the others refused."""
    listed = [m for m in _METHODS.values() if m.gives_indices or not indices]
    text = "method (str): " + _listed(f'``"{m.name}"``{_notes(m, values_only)}' for m in listed) + "."
    if indices:
        refused = [f'``"{m.name}"``' for m in _METHODS.values() if not m.gives_indices]
        if refused:
            text += f" ({_listed(refused, 'and')} have no soft permutation and raise here.)"
    text += f' Default: ``"{default}"``.'
    return textwrap.fill(text, 100, initial_indent=" " * 8, subsequent_indent=" " * 12, break_on_hyphens=False)


def get_method(method, needs_indices: bool = False, *, refusal: str | None = None) -> SortingMethod:
    """Look up ``method``; refuse unknown names, and methods without a permutation when indices are needed.

    ``refusal`` replaces the message for a method without a permutation; it is formatted with
    ``method`` (the name's repr) and ``with_indices`` (the methods that have one).
    """
    check_choice("method", method, METHOD_NAMES)
    found = _METHODS[method]
    if needs_indices and not found.gives_indices:
        with_indices = ", ".join(repr(m.name) for m in _METHODS.values() if m.gives_indices)
        if refusal is None:
            refusal = (
                "method={method} computes sorted values only and has no soft permutation; "
                "use one of {with_indices} to get indices"
            )
        raise ValueError(refusal.format(method=repr(method), with_indices=with_indices))
    return found


def check_median_method(method, dim) -> None:
    """``median(x, dim)`` returns soft indices: refuse a method without them (for ``dim=None``, the
    value alone, every method serves). Shared by :func:`softtorch.median` and its layer."""
    if dim is not None:
        get_method(method, needs_indices=True, refusal=_MEDIAN_REFUSAL)


_MEDIAN_REFUSAL = (
    "method={method} is not supported for median with an integer dim: it computes sorted values only, "
    "with no soft indices for the (values, indices) result; use one of {with_indices}, or dim=None for "
    "the value alone"
)


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
