"""The method contract (:mod:`softtorch.methods.base`), checked for every method of the registry.

Every test runs over ``METHOD_NAMES`` and each method's declared modes, and selects by declared
capability (``gives_indices``, ``values_from_scores``, ``modes``, ``options``), so a new method
(one module and one registry row) is tested here without editing this file. The expected values
are the hard sort and ranks written out below, and the identities the contract states.
"""

from __future__ import annotations

import types

import pytest
import torch
from _registry import METHODS, SOFT_MODES, method_modes

import softtorch as st
import softtorch.methods as methods_registry
from softtorch.methods import get_method
from softtorch.methods.base import SortingMethod

F64 = torch.float64
SOFT_CASES = method_modes(hard=False)
INDEX_CASES = [(m, mode) for m, mode in SOFT_CASES if get_method(m).gives_indices]
#: A method refusing a soft mode, for each such pair in the registry.
REFUSED = [(m, mode) for m in METHODS for mode in SOFT_MODES if mode not in get_method(m).modes]

# Scores in (0, 1) with gaps of 0.1 or more (a batch of two rows of five).
XT = torch.tensor([[0.5, 0.1, 0.9, 0.3, 0.7], [0.2, 0.8, 0.4, 0.6, 0.05]], dtype=F64)
DATA = torch.tensor([[1.0, -2.0, 3.0, 0.5, -1.0], [4.0, 0.0, -3.0, 2.0, 1.0]], dtype=F64)


def _tight(method) -> dict:
    """Options making an iterative solver exact to rounding (for comparisons and gradchecks)."""
    return {"tol": 1e-12} if "tol" in method.options else {}


def hard_ranks(x, descending=True):
    """1-based ranks in a plain loop: 1 + the number of elements ahead (distinct values)."""
    out = torch.empty_like(x)
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            ahead = sum(1 for k in range(x.shape[1]) if (x[r, k] > x[r, j] if descending else x[r, k] < x[r, j]))
            out[r, j] = 1 + ahead
    return out


# -- capabilities ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_declarations_are_coherent(name):
    method = get_method(name)
    assert isinstance(method, SortingMethod) and method.name == name
    assert method.gives_indices == hasattr(method.module, "permutation")
    assert set(method.modes) <= set(SOFT_MODES) and method.modes
    assert isinstance(method.standardizes, bool) and isinstance(method.exact_masking, bool)
    assert method.doubly_stochastic <= method.gives_indices
    if not method.gives_indices:  # values only: the module computes them itself
        assert method.values_from_scores
        assert callable(method.module.sort_values) and callable(method.module.rank)
        with pytest.raises(ValueError, match=f"method={name!r}.*no soft permutation"):
            get_method(name, needs_indices=True)
        with pytest.raises(ValueError, match=f"method={name!r}"):
            st.argsort(DATA, method=name, mode=method.modes[0])
    for option, check in method.options.items():
        assert callable(check), option
    for alias, option in method.option_aliases.items():
        assert option in method.options, alias


@pytest.mark.parametrize("name, mode", REFUSED)
def test_unsupported_mode_is_refused_before_any_work(name, mode, raises_before_work):
    match = f"method={name!r}.*got mode={mode!r}"
    raises_before_work(ValueError, match, st.sort, DATA, softness=0.3, mode=mode, method=name)
    with pytest.raises(ValueError, match=match):  # a layer refuses it when built
        st.nn.SoftSort(mode=mode, method=name)


@pytest.mark.parametrize("name", METHODS)
def test_options_are_checked(name):
    method = get_method(name)
    mode = method.modes[0]
    with pytest.raises(ValueError, match="'no_such_option'"):
        st.sort(DATA, mode=mode, method=name, method_options={"no_such_option": 1})
    for option in method.options:
        with pytest.raises((TypeError, ValueError), match=repr(option)):
            st.sort(DATA, mode=mode, method=name, method_options={option: object()})


# -- the four contract functions -------------------------------------------------------------------


@pytest.mark.parametrize("name, mode", SOFT_CASES)
def test_shapes_and_orders(name, mode):
    method = get_method(name)
    opts = _tight(method)
    up = method.sort_values(XT, 0.2, mode, **opts)
    down = method.sort_values(XT, 0.2, mode, descending=True, **opts)
    assert up.shape == XT.shape and up.dtype == F64
    if method.monotone:
        assert (up.diff(dim=-1) >= 0).all()
        scores = torch.rand(20, 9, generator=torch.Generator().manual_seed(3), dtype=F64)
        wide = method.sort_values(scores, 1.0, mode, **opts)
        assert (wide.diff(dim=-1) >= 0).all()
    torch.testing.assert_close(down, up.flip(-1), rtol=0, atol=1e-9)
    ranks = method.rank(XT, 0.2, mode, **opts)
    assert ranks.shape == XT.shape and torch.isfinite(ranks).all()
    # (no permutation equivariance here: a sorting network's relaxation depends on the input order)
    if not method.gives_indices:
        with pytest.raises(ValueError, match="no soft permutation"):
            method.sort_values(XT, 0.2, mode, values=DATA)
        with pytest.raises(ValueError, match="no soft permutation"):
            method.argmax(XT, 0.2, mode)


@pytest.mark.parametrize("name, mode", INDEX_CASES)
def test_permutation_rows_and_the_defaults_built_on_them(name, mode):
    method = get_method(name)
    opts = _tight(method)
    p = method.permutation(XT, 0.2, mode, **opts)
    assert p.shape == (2, 5, 5)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 5, dtype=F64), rtol=0, atol=1e-8)  # row-stochastic
    if method.doubly_stochastic:
        torch.testing.assert_close(p.sum(-2), torch.ones(2, 5, dtype=F64), rtol=0, atol=1e-6)
        torch.testing.assert_close(method.sort_values(XT, 0.2, mode, values=DATA, **opts).sum(-1), DATA.sum(-1))
    desc = method.permutation(XT, 0.2, mode, descending=True, **opts)
    torch.testing.assert_close(desc, p.flip(-2), rtol=0, atol=1e-8)
    # A few rows may come from a smaller problem (ot merges the other anchors): probability rows
    # in the asked order, the hard rows at a small softness.
    rows = torch.tensor([4, 0, 0])
    some = method.permutation(XT, 0.2, mode, descending=True, rows=rows, **opts)
    assert some.shape == (2, 3, 5) and (some >= 0).all()
    torch.testing.assert_close(some.sum(-1), torch.ones(2, 3, dtype=F64), rtol=0, atol=1e-8)
    torch.testing.assert_close(some[..., 1, :], some[..., 2, :], rtol=0, atol=0)
    hard = torch.nn.functional.one_hot(XT.argsort(-1, descending=True)[..., rows], 5).to(F64)
    sharp = method.permutation(XT, 1e-3, mode, descending=True, rows=rows, **opts)
    torch.testing.assert_close(sharp, hard, rtol=0, atol=1e-8)
    log = method.permutation(XT, 0.2, mode, log=True, **opts)
    torch.testing.assert_close(log.exp(), p, rtol=0, atol=1e-8)
    # argmax: the first descending row (the argmin: the first ascending row), asked for alone
    first = torch.tensor([0])
    top = method.permutation(XT, 0.2, mode, descending=True, rows=first, **opts)[..., 0, :]
    bottom = method.permutation(XT, 0.2, mode, rows=first, **opts)[..., 0, :]
    torch.testing.assert_close(method.argmax(XT, 0.2, mode, **opts), top, rtol=0, atol=1e-6)
    torch.testing.assert_close(method.argmax(XT, 0.2, mode, False, **opts), bottom, rtol=0, atol=1e-6)
    # sort_values(values=v) = P @ v; and the scores' own soft sort is P @ xt unless computed in score space
    got = method.sort_values(XT, 0.2, mode, values=DATA, **opts)
    torch.testing.assert_close(got, (p @ DATA.unsqueeze(-1)).squeeze(-1), rtol=0, atol=1e-8)
    if not method.values_from_scores:
        own = method.sort_values(XT, 0.2, mode, **opts)
        torch.testing.assert_close(own, (p @ XT.unsqueeze(-1)).squeeze(-1), rtol=0, atol=1e-8)
    # rank: the expected slot of each element, sum_i i P_ij / sum_i P_ij
    slots = torch.arange(1, 6, dtype=F64)
    want = (slots[:, None] * desc).sum(-2) / desc.sum(-2)
    torch.testing.assert_close(method.rank(XT, 0.2, mode, **opts), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name, mode", SOFT_CASES)
def test_tends_to_the_hard_sort(name, mode):
    method = get_method(name)
    opts = _tight(method)
    torch.testing.assert_close(method.sort_values(XT, 1e-3, mode, **opts), XT.sort().values, rtol=0, atol=1e-8)
    torch.testing.assert_close(method.rank(XT, 1e-3, mode, **opts), hard_ranks(XT), rtol=0, atol=1e-8)
    torch.testing.assert_close(method.rank(XT, 1e-3, mode, False, **opts), hard_ranks(XT, False), rtol=0, atol=1e-8)
    if method.gives_indices:
        one_hot = torch.nn.functional.one_hot(XT.argsort(-1), 5).to(F64)
        torch.testing.assert_close(method.permutation(XT, 1e-3, mode, **opts), one_hot, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", METHODS)
def test_hard_mode_is_torch(name):
    x = DATA.to(torch.float32)
    for descending in (False, True):
        out = st.sort(x, descending=descending, mode="hard", method=name)
        ref = torch.sort(x, descending=descending)
        assert torch.equal(out.values, ref.values)
        assert torch.equal(out.indices.argmax(-1), ref.indices)
    assert torch.equal(st.rank(x, -1, mode="hard", method=name), hard_ranks(x))


@pytest.mark.parametrize("name, mode", SOFT_CASES)
def test_gradcheck(name, mode):
    method = get_method(name)
    opts = _tight(method)
    xt = XT[:, :4].clone().requires_grad_()
    data = DATA[:, :4].clone().requires_grad_()
    softness = torch.tensor([[0.3], [0.5]], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, s: method.sort_values(a, s, mode, **opts), (xt, softness))
    assert torch.autograd.gradcheck(lambda a, s: method.rank(a, s, mode, **opts), (xt, softness))
    if method.gives_indices:
        assert torch.autograd.gradcheck(lambda a, v: method.sort_values(a, 0.3, mode, values=v, **opts), (xt, data))
        assert torch.autograd.gradcheck(lambda a: method.argmax(a, 0.3, mode, **opts), (xt,))


# -- a new method is one module and one registry row -------------------------------------------------


def _plain_softsort_rows(xt, softness, mode, descending=False, rows=None, log=False):
    """A method module with nothing but ``permutation``: SoftSort's smooth rows, written plainly."""
    anchors = xt.sort(-1, descending=descending).values
    if rows is not None:
        anchors = anchors[..., rows]
    scores = -(anchors.unsqueeze(-1) - xt.unsqueeze(-2)).abs() / softness
    return scores.log_softmax(-1) if log else scores.softmax(-1)


def test_a_new_method_needs_only_its_permutation(monkeypatch):
    module = types.SimpleNamespace(permutation=_plain_softsort_rows, MODES=("smooth",))
    monkeypatch.setitem(methods_registry._METHODS, "plain", SortingMethod("plain", module))
    monkeypatch.setattr(methods_registry, "METHOD_NAMES", (*methods_registry.METHOD_NAMES, "plain"))
    x = DATA
    kw = dict(softness=0.2, mode="smooth")
    for op in (
        lambda m: st.sort(x, **kw, method=m).values,
        lambda m: st.sort(x, **kw, method=m).indices,
        lambda m: st.topk(x, 2, **kw, method=m).values,
        lambda m: st.rank(x, -1, **kw, method=m),
        lambda m: st.max(x, -1, **kw, method=m).values,
        lambda m: st.argmin(x, -1, **kw, method=m),
        lambda m: st.quantile(x, 0.3, -1, **kw, method=m),
    ):
        torch.testing.assert_close(op("plain"), op("softsort"))
    with pytest.raises(ValueError, match="method='plain' supports mode='smooth' only"):
        st.sort(x, softness=0.2, mode="c0", method="plain")


def _method_entry(fn) -> str:
    return fn.__doc__.split("method (str):")[1].split("standardize (bool)")[0]


def test_operator_docs_list_every_method():
    """The ``method`` entries of the operators' docs are written from the registry: every method,
    and for the operators returning soft indices those with a permutation, the others refused."""
    for fn in (st.sort, st.rank, st.quantile, st.max):
        for name in METHODS:
            assert f'``"{name}"``' in _method_entry(fn), (fn.__name__, name)
    for fn in (st.argsort, st.argmax, st.argquantile):
        entry = _method_entry(fn)
        if "have no soft permutation" in entry:  # the refused methods come last, in parentheses
            entry = entry.partition("have no soft permutation")[0].rpartition("(")[0]
        for name in METHODS:
            assert (f'``"{name}"``' in entry) == get_method(name).gives_indices, (fn.__name__, name)
