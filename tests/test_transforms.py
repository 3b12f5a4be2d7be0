"""Function transforms: ``torch.compile(fullgraph=True)``, ``torch.func.vmap``, ``torch.func.grad`` and
batched gradcheck over the elementwise, comparison, logic and selection families and the softsort,
neuralsort and sorting_network methods of the sorting family (SPEC 5).

One table, :data:`CASES`, says how to call every function on a batch of inputs; every transform
runs over it. Compiles are the expensive part: one compiled function evaluates a whole family in
one configuration (mode, method), so a family costs one compile, not one per function.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import pytest
import torch
from _registry import DIRECT_INDEX, MODES, SOFT_MODES
from helpers import assert_grads_close

import softtorch as st

S = 0.3  # softness: polynomial windows of +-1.5, wide enough for every gradient to be non-trivial
METHODS = DIRECT_INDEX
B, N = 3, 6  # batch size and size of the operated (last) dim
F64 = torch.float64

# Tracing a torch.autograd.Function makes dynamo warn (a torch-internal DeprecationWarning), and
# importing inductor warns about torch.jit; both would be errors under `-W error`.
COMPILE_WARNINGS = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ----------------------------------------------------------------------------------------------
# Inputs: a batch of B samples (leading dim); the functions are written for ONE sample, so that
# vmap over the leading dim can be compared with a loop over samples.
# ----------------------------------------------------------------------------------------------


def distinct(shape, seed, dtype=F64, device="cpu"):
    """A permutation of a grid along the last dim plus noise: pairwise gaps >= 0.5, no integers."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(shape, generator=g).argsort(-1).to(F64)
    noise = 0.1 + 0.3 * torch.rand(shape, generator=g, dtype=F64)
    return (grid + noise - 0.45 * shape[-1]).to(dtype=dtype, device=device)


def fuzzy(shape, seed, dtype=F64, device="cpu"):
    """Soft booleans in [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    return (0.1 + 0.8 * torch.rand(shape, generator=g, dtype=F64)).to(dtype=dtype, device=device)


def dirichlet(shape, seed, dtype=F64, device="cpu"):
    """Strictly positive probability vectors on the last axis."""
    g = torch.Generator().manual_seed(seed)
    w = 0.2 + torch.rand(shape, generator=g, dtype=F64)
    return (w / w.sum(-1, keepdim=True)).to(dtype=dtype, device=device)


INPUTS = {
    "x": lambda **k: (distinct((B, N), 0, **k),),
    "xy": lambda **k: (distinct((B, N), 0, **k), distinct((B, N), 1, **k) * 0.9),
    "p": lambda **k: (fuzzy((B, N), 2, **k),),
    "pq": lambda **k: (fuzzy((B, N), 2, **k), fuzzy((B, N), 3, **k)),
    "where": lambda **k: (fuzzy((B, N), 2, **k), distinct((B, N), 0, **k), distinct((B, N), 1, **k)),
    "take_along_dim": lambda **k: (distinct((B, N), 0, **k), dirichlet((B, 4, N), 4, **k)),
    "take": lambda **k: (distinct((B, 2, 3), 0, **k), dirichlet((B, 4, N), 5, **k)),
    "index_select": lambda **k: (distinct((B, 2, N), 0, **k), dirichlet((B, N), 6, **k)),
    "narrow": lambda **k: (distinct((B, N), 0, **k), dirichlet((B, N), 7, **k)),
}

Q = (0.3, 0.75)


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    inputs: str
    make: object  # make(mode, method) -> function of one sample's tensors


def _elementwise():
    fns = {
        "heaviside": lambda m, _: lambda x: st.heaviside(x, softness=S, mode=m),
        "sign": lambda m, _: lambda x: st.sign(x, softness=S, mode=m),
        "abs": lambda m, _: lambda x: st.abs(x, softness=S, mode=m),
        "relu": lambda m, _: lambda x: st.relu(x, softness=S, mode=m),
        "relu_gated": lambda m, _: lambda x: st.relu(x, softness=S, mode=m, gated=True),
        "clamp": lambda m, _: lambda x: st.clamp(x, -0.5, 0.5, softness=S, mode=m),
        "clamp_gated_max": lambda m, _: lambda x: st.clamp(x, max=0.7, softness=S, mode=m, gated=True),
        "round": lambda m, _: lambda x: st.round(x, softness=S, mode=m),
        "sigmoidal": lambda m, _: lambda x: st.sigmoidal(x, S, m),
        "softrelu": lambda m, _: lambda x: st.softrelu(x, S, m),
        "relu_st": lambda m, _: lambda x: st.relu_st(x, softness=S, mode=m),
    }
    return [Case(name, "elementwise", "x", make) for name, make in fns.items()]


def _comparison():
    names = ("greater", "greater_equal", "less", "less_equal", "eq", "not_equal")

    def make(name):
        fn = getattr(st, name)
        return lambda m, _: lambda x, y: fn(x, y, softness=S, mode=m)

    cases = [Case(name, "comparison", "xy", make(name)) for name in names]
    cases.append(
        Case("isclose", "comparison", "xy", lambda m, _: lambda x, y: st.isclose(x, y, 0.1, 0.2, softness=S, mode=m))
    )
    cases.append(Case("greater_st", "comparison", "xy", lambda m, _: lambda x, y: st.greater_st(x, y, mode=m)))
    return cases


def _logic():
    return [
        Case("logical_not", "logic", "p", lambda m, _: st.logical_not),
        Case("logical_and", "logic", "pq", lambda m, _: st.logical_and),
        Case("logical_or", "logic", "pq", lambda m, _: st.logical_or),
        Case("logical_xor", "logic", "pq", lambda m, _: st.logical_xor),
        Case("logical_xor_geo", "logic", "pq", lambda m, _: lambda x, y: st.logical_xor(x, y, use_geometric_mean=True)),
        Case("all", "logic", "p", lambda m, _: lambda x: st.all(x, -1)),
        Case("any_geo", "logic", "p", lambda m, _: lambda x: st.any(x, -1, use_geometric_mean=True)),
        Case("all_none", "logic", "p", lambda m, _: lambda x: st.all(x, None, keepdim=True)),
    ]


def _selection():
    return [
        Case("where", "selection", "where", lambda m, _: st.where),
        Case("take_along_dim", "selection", "take_along_dim", lambda m, _: lambda x, i: st.take_along_dim(x, i, -1)),
        Case("take", "selection", "take", lambda m, _: st.take),
        Case("index_select", "selection", "index_select", lambda m, _: lambda x, i: st.index_select(x, i, -1)),
        Case("narrow", "selection", "narrow", lambda m, _: lambda x, i: st.narrow(x, i, 3, -1)),
    ]


def _sorting():
    def kw(m, method):
        return {"softness": S, "mode": m, "method": method}

    fns = {
        "sort": lambda m, me: lambda x: st.sort(x, **kw(m, me), return_indices=True),
        "sort_values": lambda m, me: lambda x: st.sort(x, descending=True, **kw(m, me), return_indices=False).values,
        "argsort": lambda m, me: lambda x: st.argsort(x, **kw(m, me)),
        "argsort_log": lambda m, me: lambda x: st.argsort(x, **kw(m, me), return_log_probs=True).exp(),
        "topk": lambda m, me: lambda x: st.topk(x, 2, **kw(m, me)),
        "topk_smallest": lambda m, me: lambda x: st.topk(x, 3, largest=False, **kw(m, me)).values,
        "rank": lambda m, me: lambda x: st.rank(x, -1, **kw(m, me)),
        "quantile": lambda m, me: lambda x: st.quantile(x, 0.3, -1, **kw(m, me), return_argquantile=True),
        "quantile_levels": lambda m, me: (
            lambda x: st.quantile(x, torch.tensor(Q, dtype=x.dtype, device=x.device), -1, **kw(m, me))
        ),
        "argquantile": lambda m, me: lambda x: st.argquantile(x, 0.6, -1, interpolation="midpoint", **kw(m, me)),
        "median": lambda m, me: lambda x: st.median(x, -1, **kw(m, me)),
        "median_all": lambda m, me: lambda x: st.median(x, **kw(m, me)),
        "argmedian": lambda m, me: lambda x: st.argmedian(x, -1, **kw(m, me)),
        "max": lambda m, me: lambda x: st.max(x, -1, **kw(m, me)),
        "max_all": lambda m, me: lambda x: st.max(x, **kw(m, me)),
        "min": lambda m, me: lambda x: st.min(x, -1, keepdim=True, **kw(m, me)),
        "argmax": lambda m, me: lambda x: st.argmax(x, -1, **kw(m, me)),
        "argmin": lambda m, me: lambda x: st.argmin(x, -1, **kw(m, me)),
        "sort_st": lambda m, me: lambda x: st.sort_st(x, **kw(m, me), return_indices=True),
    }
    return [Case(name, "sorting", "x", make) for name, make in fns.items()]


CASES = _elementwise() + _comparison() + _logic() + _selection() + _sorting()
FAMILIES = ("elementwise", "comparison", "logic", "selection", "sorting")


def variants(family):
    """(mode, method) configurations of a family."""
    if family in ("logic", "selection"):
        return [(None, None)]
    if family == "sorting":
        return [("hard", "softsort")] + list(itertools.product(SOFT_MODES, METHODS))
    return [(m, None) for m in MODES]


def _id(mode, method):
    return "-".join(p for p in (mode, method) if p) or "plain"


def case_params(families=FAMILIES, soft_only=False):
    params = []
    for case in CASES:
        if case.family not in families:
            continue
        for mode, method in variants(case.family):
            if soft_only and mode == "hard":
                continue
            params.append(pytest.param(case, mode, method, id=f"{case.name}-{_id(mode, method)}"))
    return params


def tensors_of(out):
    """The tensors of an output (a tensor or a possibly nested (named)tuple; None entries dropped)."""
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for part in out if part is not None for t in tensors_of(part)]


def per_sample(fn, inputs):
    """``fn`` applied to each sample, outputs stacked: what ``vmap(fn)`` must return."""
    outs = [tensors_of(fn(*(t[b] for t in inputs))) for b in range(B)]
    return [torch.stack(column) for column in zip(*outs)]


#: Functions whose hard mode is piecewise constant (a zero gradient); the others gather or pass values.
STEPS = {
    "heaviside", "sign", "round", "sigmoidal", "greater", "greater_equal", "less", "less_equal", "eq", "not_equal",
    "isclose", "greater_st", "argsort", "argsort_log", "rank", "argquantile", "argmedian", "argmax", "argmin",
}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# torch.func.vmap
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case, mode, method", case_params())
def test_vmap_equals_per_sample_calls(case, mode, method, device):
    fn = case.make(mode, method)
    inputs = INPUTS[case.inputs](device=device)
    with warnings.catch_warnings():
        # Hard quantile values are torch.quantile's, bit for bit; aten::quantile has no vmap batching
        # rule, so vmap runs it through functorch's (correct, slower) per-sample fallback, which warns.
        warnings.filterwarnings("ignore", r".*batching rule for aten::quantile", UserWarning)
        got = tensors_of(torch.func.vmap(fn)(*inputs))
    expected = per_sample(fn, inputs)
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "name",
    ["relu", "round", "greater", "isclose"] + [f"{op}-{m}" for op in ("sort", "max", "quantile") for m in METHODS],
)
def test_vmap_over_a_batch_of_softness(name, device):
    """A tensor softness batched by vmap: the value checks must not branch on the batched values."""
    x, y = INPUTS["xy"](device=device)
    softness = torch.tensor([0.05, 0.3, 2.0], dtype=F64, device=device)
    op, _, method = name.partition("-")
    calls = {
        "relu": lambda s: st.relu(x, softness=s, mode="c1"),
        "round": lambda s: st.round(x, softness=s),
        "greater": lambda s: st.greater(x, y, softness=s, mode="c2"),
        "isclose": lambda s: st.isclose(x, y, softness=s),
        "sort": lambda s: st.sort(x, softness=s, method=method, mode="c1").values,
        "max": lambda s: st.max(x, -1, softness=s, method=method).indices,
        "quantile": lambda s: st.quantile(x, 0.4, -1, softness=s, method=method, mode="smooth"),
    }
    got = torch.func.vmap(calls[op])(softness)
    expected = torch.stack([calls[op](float(s)) for s in softness])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_vmap_over_quantile_levels(method, device):
    (x,) = INPUTS["x"](device=device)
    levels = torch.tensor([0.0, 0.35, 1.0], dtype=F64, device=device)
    got = torch.func.vmap(lambda q: st.quantile(x, q, -1, method=method, softness=S))(levels)
    expected = torch.stack([st.quantile(x, float(q), -1, method=method, softness=S) for q in levels])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# torch.func.grad
# ----------------------------------------------------------------------------------------------


def _weights(outputs, seed=11):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=g, dtype=F64).to(o) for o in outputs]


@pytest.mark.parametrize("case, mode, method", case_params())
def test_func_grad_equals_autograd(case, mode, method, device):
    fn = case.make(mode, method)
    inputs = [t[0] for t in INPUTS[case.inputs](device=device)]  # one sample
    weights = _weights(tensors_of(fn(*inputs)))

    def loss(*tensors):
        return sum((o * w).sum() for o, w in zip(tensors_of(fn(*tensors)), weights))

    argnums = tuple(range(len(inputs)))
    got = torch.func.grad(loss, argnums=argnums)(*inputs)
    leaves = [t.clone().requires_grad_() for t in inputs]
    expected = torch.autograd.grad(loss(*leaves), leaves, allow_unused=True, materialize_grads=True)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)
    total = sum(float(e.abs().sum()) for e in expected)
    if mode == "hard" and case.name in STEPS:
        assert total == 0.0  # hard steps have zero gradients
    elif mode in (None, "smooth"):
        assert total > 0.0  # the comparison is not vacuous (sparse modes may give exact zeros)


def test_func_grad_reaches_a_tensor_softness(device):
    x, y = INPUTS["xy"](device=device)
    s = torch.tensor(0.4, dtype=F64, device=device)
    for fn in (
        lambda s: st.relu(x, softness=s, mode="c2").sum(),
        lambda s: st.less(x, y, softness=s).sum(),
        lambda s: (st.sort(x, softness=s, method="sorting_network").values * x).sum(),
        lambda s: (st.rank(x, -1, softness=s, method="softsort", mode="c1") * x).sum(),
    ):
        got = torch.func.grad(fn)(s)
        leaf = s.clone().requires_grad_()
        (expected,) = torch.autograd.grad(fn(leaf), leaf)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        assert expected != 0


# ----------------------------------------------------------------------------------------------
# gradcheck with check_batched_grad=True (float64, distinct values, every soft mode)
# ----------------------------------------------------------------------------------------------


def _gradcheck(case, mode, method, device):
    fn = case.make(mode, method)
    inputs = [t[:2].clone().requires_grad_() for t in INPUTS[case.inputs](device=device)]

    def batched(*tensors):  # the function of one sample, on a batch of 2 (vmap keeps it honest)
        return tuple(tensors_of(torch.func.vmap(fn)(*tensors)))

    assert torch.autograd.gradcheck(batched, inputs, check_batched_grad=True, fast_mode=False)


def _gradcheck_params():
    """Every soft configuration; for the sorting family CI runs one method per (function, mode),
    rotating, and ``-m full`` the others."""
    params = []
    for p in case_params(soft_only=True):
        case, mode, method = p.values
        if case.name.endswith("_st"):
            continue  # straight-through: the backward pass is not the forward's derivative, by design
        marks = ()
        if case.family == "sorting":
            rotation = METHODS[(SOFT_MODES.index(mode) + len(case.name)) % len(METHODS)]
            if method != rotation:
                marks = (pytest.mark.full,)
        params.append(pytest.param(case, mode, method, id=p.id, marks=marks))
    return params


@pytest.mark.parametrize("case, mode, method", _gradcheck_params())
def test_gradcheck_with_batched_grad(case, mode, method, device):
    _gradcheck(case, mode, method, device)


# ----------------------------------------------------------------------------------------------
# torch.compile(fullgraph=True): one compiled function per family and configuration
# ----------------------------------------------------------------------------------------------


#: The sorting functions CI compiles with every method (``-m full`` compiles all of them): each
#: compiled sorting function unrolls its method's graph, so the whole family takes ~10-40 s.
SORTING_CORE = ("sort", "topk_smallest", "rank", "quantile_levels", "argmax", "median_all")


def _family_fn(family, mode, method, names=None):
    """One function evaluating every case of the family (or those in ``names``) on one sample."""
    cases = [c for c in CASES if c.family == family and (names is None or c.name in names)]
    fns = [(c, c.make(mode, method)) for c in cases]

    def run(inputs_by_kind):
        return [tensors_of(fn(*inputs_by_kind[c.inputs])) for c, fn in fns]

    return cases, run


def _batched_inputs(family, device):
    """The family's inputs with the batch folded into the functions' own batch dims where they have one."""
    kinds = {c.inputs for c in CASES if c.family == family}
    return {kind: INPUTS[kind](device=device, dtype=torch.float32) for kind in sorted(kinds)}


def _check_compiled(family, mode, method, device, backend, grads=True, names=None):
    torch._dynamo.reset()
    try:
        cases, run = _family_fn(family, mode, method, names)
        base = _batched_inputs(family, device)
        # one sample per kind: the functions are written for a single sample
        eager_in = {k: [t[0].clone().requires_grad_(grads) for t in v] for k, v in base.items()}
        comp_in = {k: [t[0].clone().requires_grad_(grads) for t in v] for k, v in base.items()}
        compiled = torch.compile(run, fullgraph=True, backend=backend)
        eager_out, comp_out = run(eager_in), compiled(comp_in)
        for case, e_list, c_list in zip(cases, eager_out, comp_out):
            assert len(e_list) == len(c_list) > 0, case.name
            for e, c in zip(e_list, c_list):
                torch.testing.assert_close(c, e, rtol=2e-6, atol=2e-6, msg=lambda m, n=case.name: f"{n}: {m}")
        if not grads:
            return
        flat_e = [t for lst in eager_out for t in lst]
        flat_c = [t for lst in comp_out for t in lst]
        weights = [torch.linspace(-1, 1, t.numel(), device=device).reshape(t.shape) for t in flat_e]
        leaves_e = [t for v in eager_in.values() for t in v]
        leaves_c = [t for v in comp_in.values() for t in v]
        loss_e = sum((t * w).sum() for t, w in zip(flat_e, weights) if t.requires_grad)
        loss_c = sum((t * w).sum() for t, w in zip(flat_c, weights) if t.requires_grad)
        assert_grads_close(loss_c, loss_e, leaves_c, leaves_e, rtol=1e-5, atol=1e-5)
    finally:
        torch._dynamo.reset()


def _compile_params():
    """CI: every family but sorting in every mode, all its functions in one compile; the sorting
    family in hard mode and with each method once (its core functions). ``-m full``: the rest."""
    params = []
    for family in FAMILIES:
        for mode, method in variants(family):
            marks = (pytest.mark.full,) if family == "sorting" else ()
            params.append(pytest.param(family, mode, method, id=f"{family}-{_id(mode, method)}", marks=marks))
    return params


@COMPILE_WARNINGS
@pytest.mark.parametrize("family, mode, method", _compile_params())
def test_compile_fullgraph_equals_eager(family, mode, method, device):
    _check_compiled(family, mode, method, device, backend="aot_eager")


@COMPILE_WARNINGS
@pytest.mark.parametrize(
    "mode, method", [("hard", "softsort"), ("c0", "softsort"), ("smooth", "neuralsort"), ("c2", "sorting_network")]
)
def test_compile_fullgraph_sorting_core(mode, method, device):
    # the relaxed network unrolls into a graph ~10x larger than the others': CI compiles two functions
    names = ("sort", "quantile_levels") if method == "sorting_network" else SORTING_CORE
    _check_compiled("sorting", mode, method, device, backend="aot_eager", names=names)


@COMPILE_WARNINGS
def test_compile_fullgraph_with_tensor_softness_and_levels(device):
    """Tensor softness (per row) and tensor quantile levels: the value checks are skipped while compiling."""
    x = distinct((B, N), 0, dtype=torch.float32, device=device)
    s = torch.tensor([[0.1], [0.3], [1.0]], device=device)
    q = torch.tensor(Q, device=device)

    def run(x, s, q):
        return (
            st.relu(x, softness=s, mode="c1"),
            st.greater(x, x.flip(-1), softness=s),
            st.sort(x, softness=s, mode="c2", method="softsort").values,
            st.quantile(x, q, -1, softness=s, method="sorting_network"),
            st.argmax(x, -1, softness=s, method="neuralsort"),
        )

    torch._dynamo.reset()
    try:
        compiled = torch.compile(run, fullgraph=True, backend="aot_eager")
        for got, expected in zip(compiled(x, s, q), run(x, s, q)):
            torch.testing.assert_close(got, expected, rtol=2e-6, atol=2e-6)
    finally:
        torch._dynamo.reset()


# inductor compiles are slow: CI runs the elementwise family once, `-m full` the rest.
INDUCTOR = [
    pytest.param("elementwise", "c1", None, id="elementwise-c1"),
    pytest.param("comparison", "smooth", None, id="comparison-smooth", marks=pytest.mark.full),
    pytest.param("logic", None, None, id="logic", marks=pytest.mark.full),
    pytest.param("selection", None, None, id="selection", marks=pytest.mark.full),
    *(pytest.param("sorting", "c1", m, id=f"sorting-c1-{m}", marks=pytest.mark.full) for m in METHODS),
]


@COMPILE_WARNINGS
@pytest.mark.parametrize("family, mode, method", INDUCTOR)
def test_compile_inductor_equals_eager(family, mode, method, device):
    _check_compiled(family, mode, method, device, backend="inductor", grads=family != "elementwise")
