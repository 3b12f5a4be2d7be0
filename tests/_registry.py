"""The methods and modes the tests run over, in one place, read from the library's registry.

A new method (one module and one registry row in :mod:`softtorch.methods`) joins every list here
by its declared capabilities, so no test file names it. Tests that need a narrower set ask for a
capability, not a name.
"""

from __future__ import annotations

from softtorch._core.checks import MODES, SOFT_MODES
from softtorch.methods import METHOD_NAMES, get_method

__all__ = [
    "MODES",
    "SOFT_MODES",
    "METHODS",
    "INDEX_METHODS",
    "VALUE_METHODS",
    "GATHERING",
    "DIRECT",
    "DIRECT_INDEX",
    "DIRECT_GATHERING",
    "modes_of",
    "method_modes",
]

#: Every method the API accepts.
METHODS = METHOD_NAMES


def _where(test, methods=METHODS) -> tuple:
    return tuple(name for name in methods if test(get_method(name)))


#: Methods with a soft permutation (soft indices, argsort, argquantile ...).
INDEX_METHODS = _where(lambda m: m.gives_indices)
#: Methods without one: values and ranks only.
VALUE_METHODS = _where(lambda m: not m.gives_indices)
#: Methods whose soft values are gathered from the input with the permutation, ``P @ x``.
GATHERING = _where(lambda m: m.gives_indices and not m.values_from_scores)
#: Methods computed in closed form (no iterative solver, so no ``tol`` option): their results hold
#: to rounding, where an iterative solver's hold to its tolerance.
DIRECT = _where(lambda m: "tol" not in m.options)
#: Closed-form methods with a permutation.
DIRECT_INDEX = tuple(name for name in DIRECT if name in INDEX_METHODS)
#: Closed-form methods whose values are gathered with the permutation.
DIRECT_GATHERING = tuple(name for name in DIRECT if name in GATHERING)


def modes_of(method: str, hard: bool = True) -> tuple:
    """The modes ``method`` computes: ``"hard"`` (when ``hard``) and its declared soft modes."""
    return (("hard",) if hard else ()) + tuple(get_method(method).modes)


def method_modes(methods=METHODS, hard: bool = True) -> list:
    """``(method, mode)`` pairs for every mode each of ``methods`` computes."""
    return [(name, mode) for name in methods for mode in modes_of(name, hard)]
