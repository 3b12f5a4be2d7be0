"""The sorting methods, behind one registry.

Each method is a module of functions in this package (the contract it follows, and the defaults
filled in for what it leaves out, are in :mod:`softtorch.methods.base`) and one row of the
registry below, which wraps it in a :class:`~softtorch.methods.base.SortingMethod`. The operators
in :mod:`softtorch.functional` only ever look methods up here.
"""

from __future__ import annotations

from .._core.checks import check_choice
from . import fast_soft_sort, neuralsort, ot, smooth_sort, softsort, sorting_network
from .base import SortingMethod

__all__ = ["METHOD_NAMES", "SortingMethod", "get_method", "check_method_options"]

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
