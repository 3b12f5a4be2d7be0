"""softtorch.max / min / argmax / argmin: seed figures, torch parity, shapes, errors, gradients, properties."""

from __future__ import annotations

import itertools

import pytest
import torch
from _registry import DIRECT_GATHERING, DIRECT_INDEX, GATHERING, MODES, SOFT_MODES
from helpers import F64, HYP, assert_one_hot, assert_prob, distinct, seed_x
from hypothesis import given
from hypothesis import strategies as hs

import softtorch as st

METHODS = DIRECT_INDEX

VALUE_OPS = {"max": st.max, "min": st.min}
INDEX_OPS = {"argmax": st.argmax, "argmin": st.argmin}
TORCH = {"max": torch.max, "min": torch.min, "argmax": torch.argmax, "argmin": torch.argmin}


# -- seed figures (seed README, "Tensor-valued operators" and "Operators returning indices") ----------

SEED_FIGURES = [
    ("max", {"mode": "hard"}, 1.0),
    ("max", {}, 0.8874),
    ("min", {"mode": "hard"}, -1.0),
    ("min", {}, -0.8996),
    ("argmax", {"mode": "hard"}, [0, 0, 0, 1]),
    ("argmax", {}, [0.0215, 0.0022, 0.1176, 0.8586]),
    ("argmin", {"mode": "hard"}, [0, 1, 0, 0]),
    ("argmin", {}, [0.0922, 0.8885, 0.0169, 0.0023]),
]


@pytest.mark.parametrize(
    "name,kwargs,want", SEED_FIGURES, ids=[f"{n}-{k.get('mode', 'smooth')}" for n, k, _ in SEED_FIGURES]
)
def test_seed_figures(name, kwargs, want):
    got = getattr(st, name)(seed_x(), **kwargs)
    want = torch.tensor(want, dtype=torch.float32)
    assert got.shape == want.shape
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=6e-4, rtol=0)


def test_seed_defaults_are_softsort_smooth_01():
    x = seed_x()
    explicit = st.argmax(x, softness=0.1, mode="smooth", method="softsort", standardize=True)
    assert torch.equal(st.argmax(x), explicit)
    assert torch.equal(st.max(x), st.max(x, softness=0.1, mode="smooth", method="softsort"))


def test_soft_max_is_expectation_under_soft_argmax():
    x = seed_x(F64)
    for method, mode in itertools.product(DIRECT_GATHERING, SOFT_MODES):
        p = st.argmax(x, method=method, mode=mode, softness=0.3)
        torch.testing.assert_close(st.max(x, method=method, mode=mode, softness=0.3), p @ x)
        q = st.argmin(x, method=method, mode=mode, softness=0.3)
        torch.testing.assert_close(st.min(x, method=method, mode=mode, softness=0.3), q @ x)


def test_soft_max_is_the_end_of_soft_sort():
    """Every method: max/min are the last/first soft sorted values (sorting_network computes them in the
    standardized space and maps them back, SPEC 4.1)."""
    x = distinct((3, 6), seed=11)
    for method, mode in itertools.product(METHODS, SOFT_MODES):
        kw = {"method": method, "mode": mode, "softness": 0.3}
        v = st.sort(x, **kw).values
        torch.testing.assert_close(st.max(x, -1, **kw).values, v[..., -1])
        torch.testing.assert_close(st.min(x, -1, **kw).values, v[..., 0])


# -- hard mode is torch, bit for bit ---------------------------------------------------------------


def _hard_inputs(shape, dtype):
    g = torch.Generator().manual_seed(sum(shape))
    yield torch.randn(shape, generator=g, dtype=dtype)
    yield torch.randint(0, 3, shape, generator=g).to(dtype)  # many ties


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("shape", [(5,), (3, 4, 5)])
@pytest.mark.parametrize("name", ["max", "min"])
def test_hard_values_equal_torch(name, shape, dtype):
    ours, theirs = VALUE_OPS[name], TORCH[name]
    for x in _hard_inputs(shape, dtype):
        got = ours(x, mode="hard")
        assert got.shape == () and got.dtype == dtype
        assert torch.equal(got, theirs(x))
        kept = ours(x, keepdim=True, mode="hard")
        assert torch.equal(
            kept, (torch.amax if name == "max" else torch.amin)(x, dim=tuple(range(x.dim())), keepdim=True)
        )
        for dim, keepdim in itertools.product(range(-x.dim(), x.dim()), (False, True)):
            out = ours(x, dim, keepdim, mode="hard")
            ref = theirs(x, dim, keepdim)
            assert type(out) is type(ref)
            assert torch.equal(out.values, ref.values)
            assert out.indices.shape == ref.indices.shape + (x.shape[dim],)
            assert_one_hot(out.indices, ref.indices, x.shape[dim])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("shape", [(5,), (3, 4, 5)])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_hard_indices_equal_torch(name, shape, dtype):
    ours, theirs = INDEX_OPS[name], TORCH[name]
    for x in _hard_inputs(shape, dtype):
        got = ours(x, mode="hard")
        assert got.dtype == dtype
        assert_one_hot(got, theirs(x), x.numel())
        for dim, keepdim in itertools.product(range(-x.dim(), x.dim()), (False, True)):
            assert_one_hot(ours(x, dim, keepdim, mode="hard"), theirs(x, dim, keepdim), x.shape[dim])


def test_hard_ties_pick_torch_index():
    x = torch.tensor([1.0, 3.0, 3.0, 2.0])
    out = st.max(x, dim=0, mode="hard")
    assert torch.equal(out.values, torch.tensor(3.0))
    assert torch.equal(out.indices, torch.tensor([0.0, 1.0, 0.0, 0.0]))  # torch.max(x, 0).indices == 1
    assert int(torch.max(x, 0).indices) == 1
    assert torch.equal(st.argmax(x, mode="hard"), torch.tensor([0.0, 1.0, 0.0, 0.0]))
    y = torch.tensor([2.0, 1.0, 1.0, 3.0])
    assert torch.equal(st.argmin(y, mode="hard"), torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert torch.equal(st.min(y, 0, mode="hard").indices, torch.tensor([0.0, 1.0, 0.0, 0.0]))


def test_hard_gradients_are_torchs():
    x = torch.tensor([[0.5, 2.0, -1.0], [3.0, 1.0, 2.0]], requires_grad=True)
    st.max(x, dim=1, mode="hard").values.sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))


def test_hard_indices_give_zero_not_missing_gradients():
    """SPEC 9: hard modes never break backward; one-hot indices are step functions with zero gradient."""
    x = torch.tensor([[0.5, 2.0, -1.0]], requires_grad=True)
    for out in (st.argmax(x, -1, mode="hard"), st.argmin(x, mode="hard"), st.max(x, 1, mode="hard").indices):
        (g,) = torch.autograd.grad(out.sum(), x)
        assert torch.equal(g, torch.zeros_like(x))


# -- shapes and API --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_shapes(method, mode):
    x = distinct((3, 4, 5), dim=1, dtype=torch.float32)
    kw = {"method": method, "mode": mode}
    for name, fn in VALUE_OPS.items():
        assert fn(x, **kw).shape == ()
        assert fn(x, keepdim=True, **kw).shape == (1, 1, 1)
        out = fn(x, 1, **kw)
        assert type(out) is getattr(torch.return_types, name)
        assert out.values.shape == (3, 5) and out.indices.shape == (3, 5, 4)
        out = fn(x, -2, keepdim=True, **kw)
        assert out.values.shape == (3, 1, 5) and out.indices.shape == (3, 1, 5, 4)
        assert fn(x, 0, **kw).indices.shape == (4, 5, 3)
    for fn in INDEX_OPS.values():
        assert fn(x, **kw).shape == (60,)
        assert fn(x, 2, **kw).shape == (3, 4, 5)
        assert fn(x, 0, keepdim=True, **kw).shape == (1, 4, 5, 3)
        assert fn(x, 1, **kw).dtype == torch.float32


@pytest.mark.parametrize("method", METHODS)
def test_indices_layout(method):
    """indices[..., i, ..., j]: the distribution for output position i over the n elements along dim."""
    x = distinct((3, 4, 6), dim=1, seed=1)
    p = st.argmax(x, dim=1, method=method, softness=0.2)
    for a, b in itertools.product(range(3), range(6)):
        torch.testing.assert_close(p[a, b], st.argmax(x[a, :, b], method=method, softness=0.2))
    torch.testing.assert_close(st.max(x, 1, method=method, softness=0.2).indices, p)


def test_dim_none_flattens():
    x = distinct((2, 3, 4), dim=-1, seed=2)
    for name, fn in {**VALUE_OPS, **INDEX_OPS}.items():
        for method in METHODS:
            torch.testing.assert_close(
                fn(x, method=method),
                fn(x.reshape(-1), dim=0, method=method)
                if name.startswith("arg")
                else fn(x.reshape(-1), 0, method=method).values,
            )


def test_zero_d_and_single_element():
    for fn in VALUE_OPS.values():
        for mode in MODES:
            x = torch.tensor(2.5)
            assert torch.equal(fn(x, mode=mode), x)
            out = fn(x, 0, mode=mode)
            assert out.values.shape == () and torch.equal(out.indices, torch.ones(1))
            y = torch.tensor([[1.5], [-2.0]])
            torch.testing.assert_close(fn(y, 1, mode=mode).values, y[:, 0])
    for fn in INDEX_OPS.values():
        assert torch.equal(fn(torch.tensor(2.5)), torch.ones(1))


def test_integer_input_is_promoted():
    x = torch.tensor([3, 1, 2])
    out = st.max(x)
    assert out.dtype == torch.get_default_dtype()
    torch.testing.assert_close(out, st.max(x.float()))
    assert torch.equal(st.max(x, mode="hard"), torch.tensor(3.0))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_keeps_dtype(dtype):
    x = seed_x().to(dtype)
    for method, mode in itertools.product(METHODS, MODES):
        v = st.max(x, method=method, mode=mode)
        p = st.argmin(x, method=method, mode=mode)
        assert v.dtype == dtype and p.dtype == dtype
        torch.testing.assert_close(v.float(), st.max(seed_x(), method=method, mode=mode), atol=2e-2, rtol=0)


#: Every way the family returns a soft index.
INDEX_CALLS = (
    lambda x, **k: st.argmax(x, dim=-1, **k),
    lambda x, **k: st.argmin(x, dim=0, **k),
    lambda x, **k: st.argmax(x, **k),
    lambda x, **k: st.max(x, dim=1, **k).indices,
    lambda x, **k: st.min(x, dim=-1, keepdim=True, **k).indices,
)


@pytest.mark.parametrize("mode", SOFT_MODES + ("hard",))
@pytest.mark.parametrize("method", METHODS)
def test_return_log_probs(method, mode):
    x = distinct((3, 7), seed=3)
    for fn in INDEX_CALLS:
        p = fn(x, method=method, mode=mode, softness=0.15)
        logp = fn(x, method=method, mode=mode, softness=0.15, return_log_probs=True)
        assert logp.shape == p.shape
        assert torch.equal(torch.isneginf(logp), p == 0)
        torch.testing.assert_close(logp.exp(), p, atol=1e-12, rtol=0)
    if mode == "c0" and method != "sorting_network":
        assert (st.argmax(x, dim=-1, method=method, mode=mode, softness=0.15) == 0).any()
    # values do not change with the flag
    v = st.max(x, 1, method=method, mode=mode, softness=0.15)
    w = st.max(x, 1, method=method, mode=mode, softness=0.15, return_log_probs=True)
    torch.testing.assert_close(w.values, v.values)


@pytest.mark.parametrize("mode", ("hard", "c0", "smooth"))
@pytest.mark.parametrize("method", GATHERING)
def test_log_prob_eps_floors_and_renormalizes(method, mode):
    """``log_prob_eps``: log of the soft index floored at eps and renormalized (finite everywhere);
    hand-checked against a plain per-row computation."""
    x = distinct((3, 7), seed=3)
    eps = 1e-3
    for fn in INDEX_CALLS:
        p = fn(x, method=method, mode=mode, softness=0.15)
        logp = fn(x, method=method, mode=mode, softness=0.15, return_log_probs=True, log_prob_eps=eps)
        assert logp.shape == p.shape and torch.isfinite(logp).all()
        rows = p.reshape(-1, p.shape[-1])
        expected = torch.stack([torch.log(r.clamp(min=eps) / r.clamp(min=eps).sum()) for r in rows])
        torch.testing.assert_close(logp.reshape(-1, p.shape[-1]), expected, atol=1e-12, rtol=0)
    v = st.max(x, 1, method=method, mode=mode, softness=0.15)
    w = st.max(x, 1, method=method, mode=mode, softness=0.15, return_log_probs=True, log_prob_eps=eps)
    torch.testing.assert_close(w.values, v.values, atol=1e-12, rtol=0)
    # the log-probabilities are differentiable and finite
    xg = x.clone().requires_grad_()
    st.argmax(xg, -1, method=method, mode=mode, softness=0.15, return_log_probs=True, log_prob_eps=eps).sum().backward()
    assert torch.isfinite(xg.grad).all()


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_log_probs_gradient_is_finite(method, mode):
    x = distinct((2, 6), seed=4).requires_grad_()
    logp = st.argmax(x, dim=-1, method=method, mode=mode, softness=0.2, return_log_probs=True)
    logp.masked_fill(torch.isneginf(logp), 0.0).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", DIRECT_GATHERING)
@pytest.mark.parametrize("name", ["max", "min"])
def test_gated_grad(name, method, mode):
    """gated_grad=False: same values; the gradient w.r.t. x is that of ``p.detach() @ x``.

    Only for methods that gather values with the soft index: sorting_network's values come from the
    network in the standardized space (SPEC 4.1), so no index gates them.
    """
    fn = VALUE_OPS[name]
    x0 = distinct((3, 6), seed=5)
    w = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    x = x0.clone().requires_grad_()
    gated = fn(x, 1, method=method, mode=mode, softness=0.4)
    (g_gated,) = torch.autograd.grad((gated.values * w).sum(), x)
    x = x0.clone().requires_grad_()
    plain = fn(x, 1, method=method, mode=mode, softness=0.4, gated_grad=False)
    (g_plain,) = torch.autograd.grad((plain.values * w).sum(), x)
    torch.testing.assert_close(plain.values, gated.values)
    torch.testing.assert_close(plain.indices, gated.indices)
    torch.testing.assert_close(g_plain, w.unsqueeze(-1) * gated.indices.detach())
    assert not torch.allclose(g_plain, g_gated)


# -- errors ------------------------------------------------------------------------------------------

ALL_OPS = {**VALUE_OPS, **INDEX_OPS}


@pytest.mark.parametrize("name", sorted(ALL_OPS))
def test_errors(name):
    fn = ALL_OPS[name]
    x = torch.randn(2, 5)
    for bad in (0, -1, 0.0, float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="softness"):
            fn(x, 1, softness=bad)
    with pytest.raises(ValueError, match="softness"):
        fn(x, 1, softness=torch.tensor([[0.1], [0.0]]))
    with pytest.raises(TypeError, match="softness"):
        fn(x, 1, softness="0.1")
    with pytest.raises(ValueError, match="mode must be one of.*'hard'.*'smooth'.*'c0'.*'c1'.*'c2'.*got 'soft'"):
        fn(x, 1, mode="soft")
    with pytest.raises(
        ValueError,
        match="method must be one of.*'softsort'.*'neuralsort'.*'ot'.*'fast_soft_sort'.*'sorting_network'.*got 'bogo'",
    ):
        fn(x, 1, method="bogo")
    for dim in (2, -3, 5):
        with pytest.raises(ValueError, match=rf"dim must be in \[-2, 1\].*got {dim}"):
            fn(x, dim)
    with pytest.raises(TypeError, match="dim"):
        fn(x, 1.0)
    if name in INDEX_OPS:
        with pytest.raises(ValueError, match="fast_soft_sort.*no soft permutation"):
            fn(x, 1, method="fast_soft_sort")
    else:
        # max/min keep their values with a method that has no permutation; the indices are None.
        out = fn(x, 1, method="fast_soft_sort")
        assert out.indices is None and torch.isfinite(out.values).all()
    with pytest.raises(TypeError, match="complex"):
        fn(torch.randn(4, dtype=torch.complex64))


def test_errors_come_before_work_in_hard_mode():
    x = torch.randn(5)
    with pytest.raises(ValueError, match="softness"):
        st.max(x, mode="hard", softness=-1.0)
    with pytest.raises(ValueError, match="method"):
        st.argmax(x, mode="hard", method="nope")


def test_values_only_fast_soft_sort_is_not_an_index_error():
    """max/min with dim=None have no index output: fast_soft_sort must not be refused for lacking a
    permutation."""
    x = torch.randn(6)
    for fn in VALUE_OPS.values():
        out = fn(x, method="fast_soft_sort")
        assert out.shape == () and torch.isfinite(out)


# -- gradients ---------------------------------------------------------------------------------------

GRAD_OPS = {
    "max": lambda x, s, **k: st.max(x, dim=-1, softness=s, **k).values,
    "min": lambda x, s, **k: st.min(x, dim=0, softness=s, **k).values,
    "max_all": lambda x, s, **k: st.max(x, softness=s, **k),
    "argmax": lambda x, s, **k: st.argmax(x, dim=-1, softness=s, **k),
    "argmin": lambda x, s, **k: st.argmin(x, dim=-1, keepdim=True, softness=s, **k),
}


def _grad_inputs(op):
    x = distinct((2, 5), seed=6).requires_grad_()
    s = torch.tensor(0.4 if op != "max_all" else 0.9, dtype=F64, requires_grad=True)
    return x, s


@pytest.mark.parametrize("fast", [True, pytest.param(False, marks=pytest.mark.full)], ids=["fast", "slow"])
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", sorted(GRAD_OPS))
def test_gradcheck(op, method, mode, fast):
    x, s = _grad_inputs(op)
    torch.autograd.gradcheck(lambda x, s: GRAD_OPS[op](x, s, method=method, mode=mode), (x, s), fast_mode=fast)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize(
    ("op", "method"),
    [(op, "ot") for op in sorted(GRAD_OPS)] + [(op, "fast_soft_sort") for op in ("max", "min", "max_all")],
)
def test_gradcheck_ot_and_fast_soft_sort(op, method, mode):
    """Issue 6: both methods pass gradcheck in float64 in every soft mode, through the public API."""
    x, s = _grad_inputs(op)
    torch.autograd.gradcheck(lambda x, s: GRAD_OPS[op](x, s, method=method, mode=mode), (x, s), fast_mode=True)


@pytest.mark.full
@pytest.mark.parametrize("mode", ["smooth", "c1", "c2"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", sorted(GRAD_OPS))
def test_gradgradcheck(op, method, mode):
    x, s = _grad_inputs(op)
    torch.autograd.gradgradcheck(lambda x, s: GRAD_OPS[op](x, s, method=method, mode=mode), (x, s), fast_mode=True)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_learnable_softness_gets_gradient(method, mode):
    x = distinct((3, 6), seed=7)
    w = torch.linspace(-1.0, 1.0, 6, dtype=F64)
    for op in ("max", "argmax", "min", "argmin"):
        s = torch.tensor(0.5, dtype=F64, requires_grad=True)
        out = GRAD_OPS[op](x, s, method=method, mode=mode)
        (g,) = torch.autograd.grad((out * (w if op.startswith("arg") else w[: 3 if op == "max" else 6])).sum(), s)
        assert torch.isfinite(g) and g != 0, (op, g)


@pytest.mark.parametrize("method", METHODS)
def test_per_channel_softness(method):
    """A softness of shape (C, 1) on an input (B, C, n) equals calling every channel with its own softness."""
    x = distinct((2, 3, 6), seed=8)
    s = torch.tensor([[0.05], [0.3], [2.0]], dtype=F64)
    for mode in ("smooth", "c1"):
        out = st.max(x, -1, softness=s, method=method, mode=mode)
        p = st.argmin(x, -1, softness=s, method=method, mode=mode)
        for c in range(3):
            ref = st.max(x[:, c], -1, softness=float(s[c]), method=method, mode=mode)
            torch.testing.assert_close(out.values[:, c], ref.values)
            torch.testing.assert_close(out.indices[:, c], ref.indices)
            torch.testing.assert_close(p[:, c], st.argmin(x[:, c], -1, softness=float(s[c]), method=method, mode=mode))
    # along another dim: softness broadcasts with that dim set to 1
    s_rows = torch.tensor([[[0.1]], [[1.0]]], dtype=F64)  # (B, 1, 1) for dim=1
    out = st.max(x, 1, softness=s_rows, method=method)
    for b in range(2):
        torch.testing.assert_close(out.values[b], st.max(x[b], 0, softness=float(s_rows[b]), method=method).values)


def test_softness_tensor_rejected_for_dim_none_unless_scalar():
    x = torch.randn(2, 3)
    torch.testing.assert_close(st.max(x, softness=torch.tensor(0.3)), st.max(x, softness=0.3))
    with pytest.raises(ValueError, match="softness"):
        st.max(x, softness=torch.tensor([[0.1], [0.2]]))


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_straight_through(mode):
    x0 = distinct((2, 5), seed=9)
    for st_fn, fn in ((st.max_st, st.max), (st.argmin_st, st.argmin)):
        w = torch.randn(2, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
        x = x0.clone().requires_grad_()
        out = st_fn(x, -1, mode=mode, method="neuralsort")
        hard = fn(x0, -1, mode="hard")
        soft = fn(x, -1, mode=mode, method="neuralsort")
        val, soft_val = (out.values, soft.values) if isinstance(out, tuple) else (out, soft)
        assert torch.equal(val.detach(), hard.values if isinstance(hard, tuple) else hard)
        if isinstance(out, tuple):
            assert torch.equal(out.indices.detach(), hard.indices)
        weight = w[:, 0] if val.dim() == 1 else w
        (g_st,) = torch.autograd.grad((val * weight).sum(), x)
        (g_soft,) = torch.autograd.grad((soft_val * weight).sum(), x)
        torch.testing.assert_close(g_st, g_soft)
    assert torch.equal(st.max_st(seed_x()), torch.tensor(1.0))
    assert torch.equal(st.argmax_st(seed_x()), torch.tensor([0.0, 0.0, 0.0, 1.0]))


def test_argmax_agrees_with_sorting_family():
    """argmax/argmin are the first rows of the descending/ascending soft permutation of every method."""
    x = distinct((3, 7), seed=10)
    for method, mode in itertools.product(METHODS, SOFT_MODES):
        kw = {"method": method, "mode": mode, "softness": 0.25}
        torch.testing.assert_close(st.argmax(x, -1, **kw), st.argsort(x, descending=True, **kw)[..., 0, :])
        torch.testing.assert_close(st.argmin(x, -1, **kw), st.argsort(x, **kw)[..., 0, :])


# -- properties (hypothesis) ----------------------------------------------------------------------------


@hs.composite
def cases(draw, min_n=1):
    ndim = draw(hs.integers(1, 3))
    shape = [draw(hs.integers(1, 3)) for _ in range(ndim)]
    dim = draw(hs.integers(-ndim, ndim - 1))
    shape[dim] = draw(hs.integers(min_n, 12))
    return {
        "shape": tuple(shape),
        "dim": dim,
        "seed": draw(hs.integers(0, 2**16)),
        "method": draw(hs.sampled_from(METHODS)),
        "mode": draw(hs.sampled_from(SOFT_MODES)),
        "softness": draw(hs.floats(0.01, 10.0)),
    }


@HYP
@given(cases(), hs.sampled_from(["argmax", "argmin", "max", "min"]), hs.booleans())
def test_property_soft_indices_are_distributions(case, name, keepdim):
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["shape"], generator=g, dtype=F64) * 3
    kw = {"method": case["method"], "mode": case["mode"], "softness": case["softness"]}
    n = x.shape[case["dim"]]
    out = ALL_OPS[name](x, case["dim"], keepdim, **kw)
    p = out.indices if isinstance(out, tuple) else out
    assert p.shape[-1] == n
    assert_prob(p)
    if isinstance(out, tuple):  # the value is an expectation: between the extremes along dim
        lo = x.amin(case["dim"], keepdim=keepdim)
        hi = x.amax(case["dim"], keepdim=keepdim)
        assert (out.values >= lo - 1e-9).all() and (out.values <= hi + 1e-9).all()
    assert_prob(ALL_OPS["argmax" if name.endswith("max") else "argmin"](x, **kw).unsqueeze(0))


@HYP
@given(cases(min_n=1), hs.floats(0.02, 10.0))
def test_property_small_softness_is_hard(case, spacing):
    x = distinct(case["shape"], case["dim"], case["seed"], spacing=spacing)
    kw = {"method": case["method"], "mode": case["mode"], "softness": 1e-4}
    dim = case["dim"]
    for name in ("max", "min"):
        soft, hard = VALUE_OPS[name](x, dim, **kw), VALUE_OPS[name](x, dim, mode="hard")
        torch.testing.assert_close(soft.values, hard.values, atol=1e-9, rtol=0)
        torch.testing.assert_close(soft.indices, hard.indices, atol=1e-9, rtol=0)
        flat = distinct((x.numel(),), 0, case["seed"], spacing=spacing).reshape(x.shape)  # distinct overall
        torch.testing.assert_close(VALUE_OPS[name](flat, **kw), VALUE_OPS[name](flat, mode="hard"), atol=1e-9, rtol=0)
    for name in ("argmax", "argmin"):
        torch.testing.assert_close(
            INDEX_OPS[name](x, dim, **kw), INDEX_OPS[name](x, dim, mode="hard"), atol=1e-9, rtol=0
        )


@HYP
@given(cases(min_n=2), hs.floats(0.5, 3.0), hs.floats(-5.0, 5.0))
def test_property_affine_invariance(case, a, b):
    """standardize=True: soft indices are invariant to a x + b (a > 0), values move as a v + b.

    Invariance is exact up to the 1e-6 in sqrt(var + 1e-6) (SPEC 4.1); inputs spread over a grid of
    spacing 2 keep var >= 1, where that term moves the scores by < 1e-6 relative.
    """
    x = distinct(case["shape"], case["dim"], case["seed"], spacing=2.0)
    kw = {"method": case["method"], "mode": case["mode"], "softness": case["softness"]}
    for name in ("max", "min"):
        one, two = VALUE_OPS[name](x, case["dim"], **kw), VALUE_OPS[name](a * x + b, case["dim"], **kw)
        torch.testing.assert_close(two.indices, one.indices, atol=1e-4, rtol=0)
        torch.testing.assert_close(two.values, a * one.values + b, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(st.argmax(a * x + b, **kw), st.argmax(x, **kw), atol=1e-4, rtol=0)
