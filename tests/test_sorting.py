"""softtorch.sort / argsort / topk / rank / quantile / argquantile / median / argmedian.

Seed README figures, torch parity in hard mode (bit for bit), shapes and API, errors, gradients
and hypothesis properties, for the closed-form methods with a permutation (``_registry.DIRECT_INDEX``).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from _registry import DIRECT_GATHERING, DIRECT_INDEX, GATHERING, MODES, SOFT_MODES, method_modes
from helpers import F64, HYP, assert_one_hot, assert_prob, distinct, seed_x
from hypothesis import given
from hypothesis import strategies as hs

import softtorch as st
from softtorch.methods import METHOD_NAMES, get_method

METHODS = DIRECT_INDEX
INTERPOLATIONS = ("linear", "lower", "higher", "nearest", "midpoint")


def hard_rank(x, dim, descending):
    """1-based rank, ties broken by position (stable), as argsort(argsort(x)) + 1."""
    if dim is None:
        return hard_rank(x.reshape(-1), 0, descending).reshape(x.shape)
    order = torch.argsort(x, dim=dim, descending=descending, stable=True)
    return (torch.argsort(order, dim=dim) + 1).to(x.dtype)


def mix(p, x, dim):
    """Expected values of distributions ``p`` (output layout + [n]) over ``x`` along ``dim``: works for the
    ``(..., r, ..., n)`` layout by moving both to the end."""
    xm = x.movedim(dim, -1).unsqueeze(-2)  # (..., 1, n)
    pm = p.movedim(dim, -2)  # (..., r, n)
    return (pm * xm).sum(-1).movedim(-1, dim)


# -- seed figures ------------------------------------------------------------------------------------

SEED_FIGURES = [
    # Tensor-valued operators
    ("st.sort(x, mode='hard').values", [-1.0, -0.2, 0.3, 1.0]),
    ("st.sort(x).values", [-0.8792, -0.1641, 0.2767, 0.8738]),
    ("st.quantile(x, q=0.2, mode='hard')", -0.52),
    ("st.quantile(x, q=0.2)", -0.4501),
    ("st.median(x, mode='hard')", -0.2),
    ("st.median(x)", -0.1641),
    ("st.topk(x, k=3, mode='hard').values", [1.0, 0.3, -0.2]),
    ("st.topk(x, k=3).values", [0.8738, 0.2767, -0.1641]),
    ("st.rank(x, mode='hard', descending=False)", [2.0, 1.0, 3.0, 4.0]),
    ("st.rank(x, descending=False)", [1.9950, 1.0548, 3.0239, 3.9228]),
    # Sort: sweep over methods
    ("st.sort(x, method='softsort', softness=0.1).values", [-0.8996, -0.1705, 0.2847, 0.8874]),
    ("st.sort(x, method='neuralsort', softness=0.1).values", [-0.8792, -0.1641, 0.2767, 0.8738]),
    ("st.sort(x, method='sorting_network', softness=0.1).values", [-0.7999, -0.2672, 0.3847, 0.7863]),
    # Sort: sweep over modes
    ("st.sort(x, softness=0.5, mode='hard').values", [-1.0, -0.2, 0.3, 1.0]),
    ("st.sort(x, softness=0.5, mode='smooth').values", [-0.6057, -0.1997, 0.2729, 0.6281]),
    ("st.sort(x, softness=0.5, mode='c0').values", [-1.0000, -0.6313, 0.6525, 0.9824]),
    ("st.sort(x, softness=0.5, mode='c1').values", [-0.9982, -0.5432, 0.5814, 0.9837]),
    ("st.sort(x, softness=0.5, mode='c2').values", [-0.9978, -0.4905, 0.5425, 0.9903]),
    # Operators returning indices
    ("st.argquantile(x, q=0.2, mode='hard')", [0.6, 0.4, 0.0, 0.0]),
    ("st.argquantile(x, q=0.2)", [0.5403, 0.3693, 0.0902, 0.0001]),
    ("st.median(x, mode='hard', dim=0).indices", [1, 0, 0, 0]),
    ("st.median(x, dim=0).indices", [0.8009, 0.0491, 0.1498, 0.0002]),
    ("st.argsort(x, mode='hard')", [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    (
        "st.argsort(x)",
        [
            [0.1494, 0.8496, 0.0009, 0.0000],
            [0.8009, 0.0491, 0.1498, 0.0002],
            [0.1418, 0.0001, 0.7899, 0.0681],
            [0.0011, 0.0000, 0.1784, 0.8205],
        ],
    ),
    ("st.topk(x, k=3, mode='hard').indices", [[0, 0, 0, 1], [0, 0, 1, 0], [1, 0, 0, 0]]),
    (
        "st.topk(x, k=3).indices",
        [[0.0011, 0.0000, 0.1784, 0.8205], [0.1418, 0.0001, 0.7899, 0.0681], [0.8009, 0.0491, 0.1498, 0.0002]],
    ),
    # Straight-through
    ("st.sort_st(x).values", [-1.0, -0.2, 0.3, 1.0]),
    ("st.topk_st(x, k=3).indices", [[0, 0, 0, 1], [0, 0, 1, 0], [1, 0, 0, 0]]),
]


@pytest.mark.parametrize("expr,want", SEED_FIGURES, ids=[e for e, _ in SEED_FIGURES])
def test_seed_figures(expr, want):
    got = eval(expr, {"st": st, "x": seed_x()})
    want = torch.tensor(want, dtype=torch.float32)
    assert got.shape == want.shape
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=6e-4, rtol=0)


def test_seed_hard_figures_are_bit_exact():
    x = seed_x()
    assert torch.equal(st.sort(x, mode="hard").values, torch.sort(x).values)
    assert torch.equal(st.quantile(x, q=0.2, mode="hard"), torch.quantile(x, q=0.2))
    assert torch.equal(st.median(x, mode="hard"), torch.median(x))
    assert torch.equal(st.topk(x, k=3, mode="hard").values, torch.topk(x, k=3).values)
    assert torch.equal(st.sort_st(x).values, torch.sort(x).values)
    assert torch.equal(st.topk_st(x, k=3).indices, st.topk(x, k=3, mode="hard").indices)


# -- hard mode is torch, bit for bit ----------------------------------------------------------------


def _hard_inputs(shape, dtype):
    g = torch.Generator().manual_seed(sum(shape))
    yield torch.randn(shape, generator=g, dtype=dtype)
    yield torch.randint(0, 3, shape, generator=g).to(dtype)  # many ties


SHAPES = [(5,), (3, 4, 5)]
DTYPES = [torch.float32, F64]


def _dims(x):
    return range(-x.dim(), x.dim())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_hard_sort_argsort(shape, dtype):
    for x in _hard_inputs(shape, dtype):
        for dim, descending in itertools.product(_dims(x), (False, True)):
            ref = torch.sort(x, dim=dim, descending=descending)
            out = st.sort(x, dim, descending, mode="hard")
            assert type(out) is torch.return_types.sort
            assert torch.equal(out.values, ref.values)
            n = x.shape[dim]
            assert out.indices.shape == x.shape + (n,)
            assert_one_hot(out.indices, ref.indices, n)
            assert_one_hot(st.argsort(x, dim, descending, mode="hard"), torch.argsort(x, dim, descending), n)
            values_only = st.sort(x, dim, descending, mode="hard", return_indices=False)
            assert values_only.indices is None and torch.equal(values_only.values, ref.values)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_hard_topk(shape, dtype):
    for x in _hard_inputs(shape, dtype):
        for dim, largest, sorted_ in itertools.product(_dims(x), (True, False), (True, False)):
            n = x.shape[dim]
            for k in (1, 3, n):
                ref = torch.topk(x, k, dim, largest=largest, sorted=sorted_)
                out = st.topk(x, k, dim, largest=largest, sorted=sorted_, mode="hard")
                assert type(out) is torch.return_types.topk
                assert torch.equal(out.values, ref.values)
                assert_one_hot(out.indices, ref.indices, n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_hard_rank(shape, dtype):
    for x in _hard_inputs(shape, dtype):
        for descending in (True, False):
            assert torch.equal(st.rank(x, descending=descending, mode="hard"), hard_rank(x, None, descending))
            for dim in _dims(x):
                got = st.rank(x, dim, descending, mode="hard")
                assert got.dtype == dtype
                assert torch.equal(got, hard_rank(x, dim, descending))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_hard_quantile(shape, dtype):
    qs = [0.0, 0.2, 0.5, 0.625, 1.0, torch.tensor(0.3, dtype=dtype), torch.tensor([0.1, 0.375, 0.5, 0.9], dtype=dtype)]
    for x in _hard_inputs(shape, dtype):
        for q, interpolation, keepdim in itertools.product(qs, INTERPOLATIONS, (False, True)):
            for dim in [None, *_dims(x)]:
                kw = {"dim": dim, "keepdim": keepdim, "interpolation": interpolation}
                ref = torch.quantile(x, q, **kw)
                got = st.quantile(x, q, **kw, mode="hard")
                assert got.dtype == dtype
                assert torch.equal(got, ref), (q, kw)
                res = st.quantile(x, q, **kw, mode="hard", return_argquantile=True)
                assert isinstance(res, st.QuantileResult) and torch.equal(res.values, ref)
                p = st.argquantile(x, q, **kw, mode="hard")
                n = x.numel() if dim is None else x.shape[dim]
                assert p.shape == ref.shape + (n,)
                assert torch.equal(res.indices, p)
                assert_prob(p, atol=1e-6)
                # the two-point mix of one-hots reproduces the value
                if dim is None:
                    aligned = x.reshape(-1)
                else:
                    aligned = x.movedim(dim, -1)
                    if keepdim:
                        aligned = aligned.unsqueeze(dim % x.dim())
                torch.testing.assert_close((p * aligned).sum(-1), ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_hard_median(shape, dtype):
    for x in _hard_inputs(shape, dtype):
        ref = torch.median(x)
        got = st.median(x, mode="hard")
        assert got.shape == () and torch.equal(got, ref)
        assert torch.equal(st.argmedian(x, mode="hard") @ x.reshape(-1), ref)
        for dim, keepdim in itertools.product(_dims(x), (False, True)):
            ref = torch.median(x, dim, keepdim)
            out = st.median(x, dim, keepdim, mode="hard")
            assert type(out) is torch.return_types.median
            assert torch.equal(out.values, ref.values)
            assert_one_hot(out.indices, ref.indices, x.shape[dim])
            assert_one_hot(st.argmedian(x, dim, keepdim, mode="hard"), ref.indices, x.shape[dim])


def test_hard_ties_follow_torch():
    x = torch.tensor([1.0, 3.0, 3.0, 2.0])
    for descending in (False, True):
        assert_one_hot(
            st.sort(x, descending=descending, mode="hard").indices, torch.sort(x, descending=descending).indices, 4
        )
    assert_one_hot(st.topk(x, 2, mode="hard").indices, torch.topk(x, 2).indices, 4)
    med = torch.median(x, 0)
    out = st.median(x, 0, mode="hard")
    assert torch.equal(out.values, med.values)
    assert_one_hot(out.indices, med.indices, 4)
    assert torch.equal(st.rank(x, mode="hard"), torch.tensor([4.0, 1.0, 2.0, 3.0]))
    assert torch.equal(st.rank(x, descending=False, mode="hard"), torch.tensor([1.0, 3.0, 4.0, 2.0]))


def test_hard_gradients_flow_like_torch():
    x = torch.tensor([0.5, 2.0, -1.0], requires_grad=True)
    w = torch.tensor([1.0, 10.0, 100.0])
    (st.sort(x, mode="hard").values * w).sum().backward()
    assert torch.equal(x.grad, torch.tensor([10.0, 100.0, 1.0]))
    x.grad = None
    (st.quantile(x, 0.25, mode="hard") + st.median(x, mode="hard")).backward()
    torch.testing.assert_close(x.grad, torch.tensor([1.5, 0.0, 0.5]))


def test_hard_steps_give_zero_not_missing_gradients():
    """SPEC 9: hard modes never break backward; step functions (ranks, one-hot indices) give zero gradients."""
    x = torch.tensor([[0.5, 2.0, -1.0]], requires_grad=True)
    for out in (st.rank(x, -1, mode="hard"), st.argsort(x, mode="hard"), st.argquantile(x, 0.5, -1, mode="hard")):
        (g,) = torch.autograd.grad(out.sum(), x)
        assert torch.equal(g, torch.zeros_like(x))


# -- shapes and API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_shapes(method, mode):
    x = distinct((3, 4, 5), dim=1, dtype=torch.float32)
    kw = {"method": method, "mode": mode}
    out = st.sort(x, 1, **kw)
    assert type(out) is torch.return_types.sort
    assert out.values.shape == (3, 4, 5) and out.indices.shape == (3, 4, 5, 4)
    assert st.argsort(x, 0, **kw).shape == (3, 4, 5, 3)
    out = st.topk(x, 2, 1, **kw)
    assert type(out) is torch.return_types.topk
    assert out.values.shape == (3, 2, 5) and out.indices.shape == (3, 2, 5, 4)
    assert st.rank(x, **kw).shape == (3, 4, 5)
    assert st.rank(x, -1, **kw).shape == (3, 4, 5)
    q2 = torch.tensor([0.1, 0.5])
    assert st.quantile(x, 0.3, **kw).shape == ()
    assert st.quantile(x, q2, **kw).shape == (2,)
    assert st.quantile(x, 0.3, 1, **kw).shape == (3, 5)
    assert st.quantile(x, q2, 1, **kw).shape == (2, 3, 5)
    assert st.quantile(x, q2, 1, keepdim=True, **kw).shape == (2, 3, 1, 5)
    assert st.quantile(x, q2, None, keepdim=True, **kw).shape == (2, 1, 1, 1)
    assert st.quantile(x, torch.tensor(0.3), -1, **kw).shape == (3, 4)
    res = st.quantile(x, q2, 1, return_argquantile=True, **kw)
    assert isinstance(res, st.QuantileResult) and res._fields == ("values", "indices")
    assert res.values.shape == (2, 3, 5) and res.indices.shape == (2, 3, 5, 4)
    assert st.argquantile(x, 0.3, **kw).shape == (60,)
    assert st.argquantile(x, q2, **kw).shape == (2, 60)
    assert st.argquantile(x, q2, 2, keepdim=True, **kw).shape == (2, 3, 4, 1, 5)
    assert st.median(x, **kw).shape == ()
    out = st.median(x, 1, **kw)
    assert type(out) is torch.return_types.median
    assert out.values.shape == (3, 5) and out.indices.shape == (3, 5, 4)
    out = st.median(x, 1, keepdim=True, **kw)
    assert out.values.shape == (3, 1, 5) and out.indices.shape == (3, 1, 5, 4)
    assert st.argmedian(x, **kw).shape == (60,)
    assert st.argmedian(x, -3, keepdim=True, **kw).shape == (1, 4, 5, 3)
    for t in (st.sort(x, 1, **kw).values, st.rank(x, **kw), st.quantile(x, q2, 1, **kw), st.argsort(x, **kw)):
        assert t.dtype == torch.float32


def test_quantile_keeps_torch_layout_in_soft_mode():
    x = distinct((3, 4, 5), dim=2, seed=1)
    q2 = torch.tensor([0.1, 0.5, 0.8], dtype=F64)
    for dim, keepdim in itertools.product([None, 0, 1, 2, -1], (False, True)):
        for q in (0.3, q2, torch.tensor(0.7, dtype=F64)):
            ref = torch.quantile(x, q, dim=dim, keepdim=keepdim)
            assert st.quantile(x, q, dim, keepdim).shape == ref.shape
            n = x.numel() if dim is None else x.shape[dim]
            assert st.argquantile(x, q, dim, keepdim).shape == ref.shape + (n,)


@pytest.mark.parametrize("method", METHODS)
def test_indices_layout(method):
    """indices[..., i, ..., j] = probability that sorted slot i (along dim) holds element j."""
    x = distinct((3, 4, 6), dim=1, seed=2)
    kw = {"method": method, "softness": 0.2}
    p = st.argsort(x, 1, **kw)
    assert p.shape == (3, 4, 6, 4)
    for a, b in itertools.product(range(3), range(6)):
        torch.testing.assert_close(p[a, :, b, :], st.argsort(x[a, :, b], **kw))
    torch.testing.assert_close(st.sort(x, 1, **kw).indices, p)
    if method in GATHERING:
        torch.testing.assert_close(st.sort(x, 1, **kw).values, mix(p, x, 1))
    t = st.topk(x, 2, 1, **kw)
    torch.testing.assert_close(t.indices, st.argsort(x, 1, descending=True, **kw)[:, :2])
    torch.testing.assert_close(t.values, st.sort(x, 1, descending=True, **kw).values[:, :2])


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_operators_agree(method, mode):
    """All operators read rows of the same soft permutation."""
    x = distinct((2, 3, 7), dim=-1, seed=3)
    kw = {"method": method, "mode": mode, "softness": 0.3}
    asc = st.argsort(x, **kw)
    desc = st.argsort(x, descending=True, **kw)
    torch.testing.assert_close(st.sort(x, **kw).indices, asc)
    torch.testing.assert_close(st.topk(x, 3, **kw).indices, desc[..., :3, :])
    torch.testing.assert_close(st.topk(x, 3, largest=False, **kw).indices, asc[..., :3, :])
    torch.testing.assert_close(st.argmedian(x, -1, **kw), asc[..., 3, :])
    torch.testing.assert_close(st.median(x, -1, **kw).indices, asc[..., 3, :])
    torch.testing.assert_close(st.argquantile(x, 0.5, -1, **kw), asc[..., 3, :])
    # q = 0.25 on n = 7: position 1.5, the linear mix of slots 1 and 2
    torch.testing.assert_close(st.argquantile(x, 0.25, -1, **kw), 0.5 * (asc[..., 1, :] + asc[..., 2, :]))
    # ranks: expected slot number under each element's (normalized) slot distribution
    slots = torch.arange(1, 8, dtype=F64)
    expected = (slots.unsqueeze(-1) * desc).sum(-2) / desc.sum(-2)
    torch.testing.assert_close(st.rank(x, -1, **kw), expected)
    if method in GATHERING:
        torch.testing.assert_close(st.quantile(x, 0.25, -1, **kw), (st.argquantile(x, 0.25, -1, **kw) * x).sum(-1))
        torch.testing.assert_close(st.median(x, -1, **kw).values, (asc[..., 3, :] * x).sum(-1))


def test_dim_none():
    x = distinct((2, 3, 4), dim=-1, seed=4)
    flat = x.reshape(-1)
    for method in METHODS:
        kw = {"method": method}
        torch.testing.assert_close(st.median(x, **kw), st.median(flat, 0, **kw).values)
        assert st.median(x, **kw).shape == ()
        torch.testing.assert_close(st.argmedian(x, **kw), st.argmedian(flat, 0, **kw))
        r = st.rank(x, **kw)
        assert r.shape == x.shape
        torch.testing.assert_close(r, st.rank(flat, 0, **kw).reshape(x.shape))
        torch.testing.assert_close(st.quantile(x, 0.3, **kw), st.quantile(flat, 0.3, 0, **kw))
        torch.testing.assert_close(st.argquantile(x, 0.3, **kw), st.argquantile(flat, 0.3, 0, **kw))


def test_vector_q_stacks_on_a_leading_axis():
    x = distinct((3, 6), seed=5)
    qs = [0.0, 0.25, 0.5, 0.9, 1.0]
    for method, interpolation in itertools.product(METHODS, INTERPOLATIONS):
        kw = {"method": method, "interpolation": interpolation}
        out = st.quantile(x, torch.tensor(qs, dtype=F64), -1, **kw)
        p = st.argquantile(x, torch.tensor(qs, dtype=F64), -1, **kw)
        for i, q in enumerate(qs):
            torch.testing.assert_close(out[i], st.quantile(x, q, -1, **kw))
            torch.testing.assert_close(p[i], st.argquantile(x, q, -1, **kw))


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_soft_interpolation_weights(interpolation):
    """n = 5, q = 0.375: position 1.5 between slots 1 and 2; each interpolation picks torch's weight."""
    x = distinct((5,), seed=6)
    asc = st.argsort(x, softness=0.3)
    weight = {"linear": 0.5, "lower": 0.0, "higher": 1.0, "nearest": 1.0, "midpoint": 0.5}[
        interpolation
    ]  # round(1.5) = 2
    want = (1 - weight) * asc[1] + weight * asc[2]
    torch.testing.assert_close(st.argquantile(x, 0.375, interpolation=interpolation, softness=0.3), want)
    # and at q = 0.625 (position 2.5, round half to even -> 2)
    weight = {"linear": 0.5, "lower": 0.0, "higher": 1.0, "nearest": 0.0, "midpoint": 0.5}[interpolation]
    want = (1 - weight) * asc[2] + weight * asc[3]
    torch.testing.assert_close(st.argquantile(x, 0.625, interpolation=interpolation, softness=0.3), want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_return_log_probs(method, mode):
    x = distinct((3, 7), seed=7)
    kw = {"method": method, "mode": mode, "softness": 0.15}
    q2 = torch.tensor([0.2, 0.7], dtype=F64)
    getters = [
        lambda **k: st.argsort(x, **k),
        lambda **k: st.argsort(x, 0, descending=True, **k),
        lambda **k: st.sort(x, **k).indices,
        lambda **k: st.topk(x, 3, **k).indices,
        lambda **k: st.topk(x, 2, 0, largest=False, **k).indices,
        lambda **k: st.argquantile(x, q2, -1, **k),
        lambda **k: st.quantile(x, 0.3, 1, return_argquantile=True, **k).indices,
        lambda **k: st.argmedian(x, 1, **k),
        lambda **k: st.argmedian(x, **k),
        lambda **k: st.median(x, 0, **k).indices,
    ]
    for get in getters:
        p = get(**kw)
        logp = get(return_log_probs=True, **kw)
        assert logp.shape == p.shape
        assert torch.equal(torch.isneginf(logp), p == 0)
        torch.testing.assert_close(logp.exp(), p, atol=1e-12, rtol=0)
    if mode == "c0" and method in GATHERING:
        assert (st.argsort(x, **kw) == 0).any()
    # values do not depend on the flag
    torch.testing.assert_close(st.sort(x, return_log_probs=True, **kw).values, st.sort(x, **kw).values)
    torch.testing.assert_close(st.topk(x, 3, return_log_probs=True, **kw).values, st.topk(x, 3, **kw).values)
    torch.testing.assert_close(st.quantile(x, q2, 1, return_log_probs=True, **kw), st.quantile(x, q2, 1, **kw))
    torch.testing.assert_close(st.median(x, 1, return_log_probs=True, **kw).values, st.median(x, 1, **kw).values)


def floored_log_loop(p, eps):
    """Plain reference: each distribution (last axis) floored at eps, renormalized, logged."""
    flat_p = p.reshape(-1, p.shape[-1])
    flat_out = torch.empty_like(flat_p)
    for r in range(flat_p.shape[0]):
        row = [max(float(v), eps) for v in flat_p[r]]
        total = sum(row)
        for j, v in enumerate(row):
            flat_out[r, j] = torch.log(torch.tensor(v / total, dtype=F64))
    return flat_out.reshape(p.shape)


@pytest.mark.parametrize("mode", ["hard", "smooth", "c0"])
@pytest.mark.parametrize("method", GATHERING)
def test_log_prob_eps_floors_and_renormalizes(method, mode):
    """``log_prob_eps`` (softtorch's newest API): the log of the probabilities floored at eps and
    renormalized, finite even at the exact zeros of c0 and of the hard one-hots; the values and
    the plain log-probabilities (``log_prob_eps=None``) are unchanged."""
    x = distinct((3, 7), seed=7)
    kw = {"method": method, "mode": mode, "softness": 0.15}
    q2 = torch.tensor([0.2, 0.7], dtype=F64)
    getters = [
        lambda **k: st.argsort(x, **k),
        lambda **k: st.sort(x, **k).indices,
        lambda **k: st.topk(x, 3, **k).indices,
        lambda **k: st.argquantile(x, q2, -1, **k),
        lambda **k: st.quantile(x, 0.3, 1, return_argquantile=True, **k).indices,
        lambda **k: st.argmedian(x, 1, **k),
        lambda **k: st.argmedian(x, **k),
        lambda **k: st.median(x, 0, **k).indices,
    ]
    for eps in (1e-6, 0.05):
        for get in getters:
            p = get(**kw)
            logp = get(return_log_probs=True, log_prob_eps=eps, **kw)
            assert torch.isfinite(logp).all()
            torch.testing.assert_close(logp, floored_log_loop(p, eps), atol=1e-10, rtol=0)
            # without return_log_probs the floor has no effect
            assert torch.equal(get(log_prob_eps=eps, **kw), p)
    if mode != "smooth":
        assert torch.isneginf(st.argsort(x, return_log_probs=True, **kw)).any()
    values = st.sort(x, return_log_probs=True, log_prob_eps=0.05, **kw).values
    torch.testing.assert_close(values, st.sort(x, **kw).values, atol=1e-12, rtol=0)


def test_log_prob_eps_hand_checked():
    """A one-hot over n = 4 floored at 0.1: (1, 0.1, 0.1, 0.1) / 1.3."""
    x = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=F64)
    logp = st.argsort(x, mode="hard", return_log_probs=True, log_prob_eps=0.1)
    expected = torch.log(torch.tensor([0.1, 1.0, 0.1, 0.1], dtype=F64) / 1.3)
    torch.testing.assert_close(logp[0], expected)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_log_probs_gradient_is_finite(method, mode):
    x = distinct((2, 6), seed=8).requires_grad_()
    logp = st.argsort(x, method=method, mode=mode, softness=0.2, return_log_probs=True)
    logp.masked_fill(torch.isneginf(logp), 0.0).sum().backward()
    assert torch.isfinite(x.grad).all()


VALUE_CALLS = {
    "sort": lambda x, **k: st.sort(x, 1, **k),
    "topk": lambda x, **k: st.topk(x, 3, 1, **k),
    "quantile": lambda x, **k: st.quantile(x, torch.tensor([0.2, 0.5], dtype=F64), 1, return_argquantile=True, **k),
    "median": lambda x, **k: st.median(x, 1, **k),
}


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", DIRECT_GATHERING)
@pytest.mark.parametrize("op", sorted(VALUE_CALLS))
def test_gated_grad(op, method, mode):
    """gated_grad=False: same values, and the gradient is that of ``indices.detach() @ x``.

    Only for the methods that gather values with the soft permutation; for sorting_network the
    values come from the network itself (SPEC 4.1), where no index gates them.
    """
    call = VALUE_CALLS[op]
    x0 = distinct((2, 6, 3), dim=1, seed=9)
    kw = {"method": method, "mode": mode, "softness": 0.4}
    x = x0.clone().requires_grad_()
    gated = call(x, **kw)
    w = torch.randn(gated.values.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    (g_gated,) = torch.autograd.grad((gated.values * w).sum(), x)
    x = x0.clone().requires_grad_()
    plain = call(x, gated_grad=False, **kw)
    (g_plain,) = torch.autograd.grad((plain.values * w).sum(), x)
    torch.testing.assert_close(plain.values, gated.values)
    torch.testing.assert_close(plain.indices, gated.indices)
    xr = x0.clone().requires_grad_()
    detached = gated.indices.detach()
    if op == "quantile":  # (K, B, 3, n): x is (B, n, 3)
        values = (detached * xr.movedim(1, -1).unsqueeze(0)).sum(-1)
    elif op == "median":  # (B, 3, n)
        values = (detached * xr.movedim(1, -1)).sum(-1)
    else:  # (B, r, 3, n)
        values = mix(detached, xr, 1)
    (g_ref,) = torch.autograd.grad((values * w).sum(), xr)
    torch.testing.assert_close(g_plain, g_ref)
    assert not torch.allclose(g_plain, g_gated)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_return_indices_false(method, mode):
    x0 = distinct((2, 5, 3), dim=1, seed=10)
    kw = {"method": method, "mode": mode, "softness": 0.3}
    for descending in (False, True):
        x = x0.clone().requires_grad_()
        full = st.sort(x, 1, descending, **kw)
        (g_full,) = torch.autograd.grad((full.values * x0).sum(), x)
        x = x0.clone().requires_grad_()
        values_only = st.sort(x, 1, descending, return_indices=False, **kw)
        assert type(values_only) is torch.return_types.sort
        assert values_only.indices is None
        (g_values,) = torch.autograd.grad((values_only.values * x0).sum(), x)
        torch.testing.assert_close(values_only.values, full.values, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(g_values, g_full, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_topk_smallest(method, mode):
    x = distinct((3, 6), seed=11)
    out = st.topk(x, 4, largest=False, method=method, mode=mode)
    asc = st.sort(x, method=method, mode=mode)
    torch.testing.assert_close(out.values, asc.values[..., :4])
    torch.testing.assert_close(out.indices, asc.indices[..., :4, :])
    hard = torch.topk(x, 4, largest=False)
    if mode == "hard":
        assert torch.equal(out.values, hard.values)
    else:  # soft smallest values sit near the hard ones, far from the largest
        assert (out.values - hard.values).abs().max() < (x.max() - x.min()) / 2


@pytest.mark.parametrize("method", METHODS)
def test_per_channel_softness(method):
    """softness of shape (C, 1) on (B, C, n) equals calling every channel with its own softness."""
    x = distinct((2, 3, 6), seed=12)
    s = torch.tensor([[0.05], [0.3], [2.0]], dtype=F64)
    q2 = torch.tensor([0.1, 0.6], dtype=F64)
    for mode in ("smooth", "c1"):
        kw = {"method": method, "mode": mode}
        calls = [
            (lambda x, **k: st.sort(x, **k).values, lambda o, c: o[:, c]),
            (lambda x, **k: st.argsort(x, descending=True, **k), lambda o, c: o[:, c]),
            (lambda x, **k: st.topk(x, 2, **k).indices, lambda o, c: o[:, c]),
            (lambda x, **k: st.rank(x, -1, **k), lambda o, c: o[:, c]),
            (lambda x, **k: st.quantile(x, q2, -1, **k), lambda o, c: o[:, :, c]),
            (lambda x, **k: st.argquantile(x, 0.4, -1, **k), lambda o, c: o[:, c]),
            (lambda x, **k: st.median(x, -1, **k).values, lambda o, c: o[:, c]),
            (lambda x, **k: st.sort(x, return_indices=False, **k).values, lambda o, c: o[:, c]),
        ]
        for call, pick in calls:
            out = call(x, softness=s, **kw)
            for c in range(3):
                torch.testing.assert_close(pick(out, c), call(x[:, c], softness=float(s[c]), **kw))


def test_softness_tensor_with_dim_none():
    x = torch.randn(2, 3)
    torch.testing.assert_close(st.rank(x, softness=torch.tensor(0.3)), st.rank(x, softness=0.3))
    with pytest.raises(ValueError, match="softness"):
        st.median(x, softness=torch.tensor([[0.1], [0.2]]))


def test_zero_d_input_shapes_match_torch():
    """0-d inputs work (SPEC 7) with torch's shapes; soft indices add an axis of size n = 1."""
    x = torch.tensor(1.5)
    for mode in MODES:
        out = st.sort(x, mode=mode)
        ref = torch.sort(x)
        assert out.values.shape == ref.values.shape and torch.equal(out.values, x)
        assert out.indices.shape == ref.indices.shape + (1,)
        out = st.topk(x, 1, mode=mode)
        assert out.values.shape == torch.topk(x, 1).values.shape
        assert st.argsort(x, mode=mode).shape == (1,)
        assert st.rank(x, mode=mode).shape == ()
        assert st.rank(x, 0, mode=mode).shape == ()
        assert torch.equal(st.median(x, mode=mode), x)
        assert st.median(x, 0, mode=mode).values.shape == ()
        assert torch.equal(st.quantile(x, 0.5, mode=mode), torch.quantile(x, 0.5))
        assert st.quantile(x, 0.5, 0, mode=mode).shape == torch.quantile(x, 0.5, 0).shape


@pytest.mark.parametrize("method", METHODS)
def test_single_element_rows(method):
    x = torch.tensor([[1.5], [-2.0]], requires_grad=True)
    for mode in SOFT_MODES:
        kw = {"method": method, "mode": mode}
        out = st.sort(x, **kw)
        assert torch.equal(out.values, x.detach()) and torch.equal(out.indices, torch.ones(2, 1, 1))
        (g,) = torch.autograd.grad(out.values.sum(), x)
        assert torch.equal(g, torch.ones(2, 1))
        assert torch.equal(st.rank(x, -1, **kw), torch.ones(2, 1))
        torch.testing.assert_close(st.quantile(x, 0.3, -1, **kw), x.detach()[:, 0])
        torch.testing.assert_close(st.median(x, -1, **kw).values, x.detach()[:, 0])
        torch.testing.assert_close(st.topk(x, 1, **kw).values, x.detach())
        # constant outputs still take part in backward (zero gradient), as for n > 1
        for const in (st.argsort(x, **kw), st.rank(x, -1, **kw), st.argmedian(x, -1, **kw)):
            (g,) = torch.autograd.grad(const.sum(), x)
            assert torch.equal(g, torch.zeros_like(x))


def test_empty_batch():
    x = torch.randn(0, 5)
    for method in METHODS:
        assert st.sort(x, method=method).values.shape == (0, 5)
        assert st.argsort(x, method=method).shape == (0, 5, 5)
        assert st.rank(x, -1, method=method).shape == (0, 5)
        assert st.quantile(x, torch.tensor([0.2, 0.4]), -1, method=method).shape == (2, 0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_keeps_dtype(dtype):
    """float16/bfloat16 return the same dtype in every mode (SPEC 2), quantile included."""
    x = seed_x().to(dtype)
    for method, mode in itertools.product(METHODS, MODES):
        kw = {"method": method, "mode": mode}
        outs = [
            st.sort(x, **kw).values,
            st.argsort(x, **kw),
            st.topk(x, 2, **kw).values,
            st.rank(x, **kw),
            st.median(x, **kw),
            st.quantile(x, 0.2, **kw),
            st.argquantile(x, 0.2, **kw),
        ]
        for t in outs:
            assert t.dtype == dtype and torch.isfinite(t).all()
    torch.testing.assert_close(st.quantile(x, 0.2, mode="hard").float(), torch.tensor(-0.52), atol=1e-2, rtol=0)


def test_integer_input_is_promoted():
    x = torch.tensor([3, 1, 2])
    assert st.sort(x).values.dtype == torch.get_default_dtype()
    assert torch.equal(st.sort(x, mode="hard").values, torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(st.rank(x), st.rank(x.float()))


def test_nan_stays_in_its_row():
    """NaN in a row gives NaN only in that row's outputs (SPEC 7)."""
    x = distinct((3, 5), seed=13, dtype=torch.float32)
    x[1, 2] = float("nan")
    for method, mode in itertools.product(METHODS, SOFT_MODES):
        kw = {"method": method, "mode": mode}
        outs = {
            "sort": st.sort(x, **kw).values,
            "argsort": st.argsort(x, **kw),
            "rank": st.rank(x, -1, **kw),
            "median.indices": st.median(x, -1, **kw).indices,
            "quantile": st.quantile(x, 0.3, -1, **kw),
        }
        for name, out in outs.items():
            rows = torch.isnan(out.reshape(3, -1)).any(-1)
            assert rows.tolist() == [False, True, False], (name, method, mode, out)


def test_infinite_inputs_give_valid_indices():
    """Rows with +-inf (SPEC 7): soft indices stay probability vectors and the infinities keep their ends."""
    x = torch.tensor([[0.5, float("inf"), -1.0, float("-inf"), 2.0], [0.1, 0.2, 0.3, 0.4, 0.5]])
    for method, mode in itertools.product(METHODS, SOFT_MODES):
        p = st.argsort(x, method=method, mode=mode, softness=1e-3)
        assert not torch.isnan(p).any(), (method, mode, p)
        assert_prob(p)
        assert p[0, 0].argmax() == 3 and p[0, -1].argmax() == 1
        assert torch.equal(st.argsort(x[1:], method=method, mode=mode), st.argsort(x, method=method, mode=mode)[1:])


@pytest.mark.parametrize("method", METHODS)
def test_extreme_softness_and_magnitudes_stay_finite(method):
    for mode, softness, dtype, scale in itertools.product(SOFT_MODES, (1e-6, 1e6), DTYPES, (1.0, 1e6)):
        x = (distinct((2, 5), seed=14, dtype=dtype) * scale).requires_grad_()
        kw = {"method": method, "mode": mode, "softness": softness}
        outs = [st.sort(x, **kw).values, st.argsort(x, **kw), st.rank(x, -1, **kw), st.quantile(x, 0.3, -1, **kw)]
        loss = sum((o * torch.linspace(-1, 1, o.shape[-1], dtype=dtype)).sum() for o in outs)
        (g,) = torch.autograd.grad(loss, x)
        assert all(torch.isfinite(o).all() for o in outs) and torch.isfinite(g).all(), (mode, softness, dtype, scale)


# -- errors ------------------------------------------------------------------------------------------

ERROR_OPS = {
    "sort": lambda x, **k: st.sort(x, **k),
    "argsort": lambda x, **k: st.argsort(x, **k),
    "topk": lambda x, **k: st.topk(x, 2, **k),
    "rank": lambda x, **k: st.rank(x, **k),
    "quantile": lambda x, **k: st.quantile(x, 0.3, **k),
    "argquantile": lambda x, **k: st.argquantile(x, 0.3, **k),
    "median": lambda x, **k: st.median(x, **k),
    "argmedian": lambda x, **k: st.argmedian(x, **k),
}


@pytest.mark.parametrize("name", sorted(ERROR_OPS))
def test_common_errors(name):
    call = ERROR_OPS[name]
    x = torch.randn(2, 5)
    for bad in (0, -1, 0.0, float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="softness must be .*positive"):
            call(x, dim=-1, softness=bad)
    with pytest.raises(ValueError, match="softness"):
        call(x, dim=-1, softness=torch.tensor([[0.1], [-1.0]]))
    with pytest.raises(TypeError, match="softness.*'0.1'"):
        call(x, dim=-1, softness="0.1")
    with pytest.raises(ValueError, match="mode must be one of .*'hard'.*'c2'.*got 'soft'"):
        call(x, dim=-1, mode="soft")
    with pytest.raises(ValueError, match=f"method must be one of {', '.join(map(repr, METHOD_NAMES))}, got 'quick'"):
        call(x, dim=-1, method="quick")
    for dim in (2, -3):
        with pytest.raises(ValueError, match=rf"dim must be in \[-2, 1\].*got {dim}"):
            call(x, dim=dim)
    with pytest.raises(TypeError, match="complex"):
        call(torch.randn(5, dtype=torch.complex64), dim=-1)


def test_k_out_of_range():
    x = torch.randn(3, 5)
    for k in (0, 6, -1):
        with pytest.raises(ValueError, match=rf"k must be in \[1, 5\], got {k}"):
            st.topk(x, k)
        with pytest.raises(ValueError, match=r"k must be in \[1, 5\]"):
            st.topk(x, k, mode="hard")
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\], got 4"):
        st.topk(x, 4, dim=0)
    with pytest.raises(TypeError, match="k must be an int"):
        st.topk(x, 2.0)


def test_q_out_of_range():
    x = torch.randn(3, 5)
    for fn in (st.quantile, st.argquantile):
        for q in (1.5, -0.1, float("nan")):
            with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
                fn(x, q)
        for q in (torch.tensor([0.5, 1.2]), torch.tensor(-0.2), torch.tensor([float("nan")])):
            with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
                fn(x, q, dim=-1)
        with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
            fn(x, 1.01, mode="hard")
        with pytest.raises(ValueError, match="q must be a float or a 0-d/1-D tensor"):
            fn(x, torch.full((2, 2), 0.5))
        with pytest.raises(TypeError, match="q must be a float"):
            fn(x, "0.5")


def test_unknown_interpolation():
    with pytest.raises(
        ValueError, match="interpolation must be one of 'linear', 'lower', 'higher', 'nearest', 'midpoint', got 'cubic'"
    ):
        st.quantile(torch.randn(5), 0.3, interpolation="cubic")
    with pytest.raises(ValueError, match="interpolation"):
        st.argquantile(torch.randn(5), 0.3, interpolation="cubic", mode="hard")


def test_median_keepdim_needs_dim():
    with pytest.raises(ValueError, match="keepdim=True needs an integer dim"):
        st.median(torch.randn(5), keepdim=True)


@pytest.mark.parametrize("mode", ["hard", "smooth", "c0"])
def test_argmedian_and_argmax_keepdim_without_dim(mode):
    """``dim=None, keepdim=True``: one soft index over every element, of shape (1, ..., 1, n)
    (softtorch 0.1.1's layout); the same numbers as without keepdim."""
    x = distinct((3, 4), seed=2)
    for fn in (st.argmedian, st.argmax, st.argmin, lambda v, **k: st.argquantile(v, 0.3, **k)):
        kept = fn(x, dim=None, keepdim=True, mode=mode)
        assert kept.shape == (1, 1, 12)
        assert torch.equal(kept.reshape(-1), fn(x, dim=None, mode=mode))
    # the hard argmedian of all 12 elements is the one-hot of the lower median
    hard = st.argmedian(x, dim=None, keepdim=True, mode="hard").reshape(-1)
    assert hard.argmax() == x.reshape(-1).median(0).indices and hard.sum() == 1


def test_median_with_a_dim_needs_soft_indices(raises_before_work):
    """``median(x, dim)`` returns (values, indices): a method without a permutation is refused
    (as in softtorch 0.1.1); ``dim=None`` (the value alone) takes it."""
    x = distinct((3, 5), seed=1)
    raises_before_work(
        ValueError,
        r"method='fast_soft_sort' is not supported for median with an integer dim",
        st.median,
        x,
        dim=1,
        method="fast_soft_sort",
    )
    assert st.median(x, method="fast_soft_sort").shape == ()
    with pytest.raises(ValueError, match="not supported for median with an integer dim"):
        st.nn.SoftMedian(dim=-1, method="fast_soft_sort")
    assert st.nn.SoftMedian(dim=None, method="fast_soft_sort")(x).shape == ()


def test_fast_soft_sort_refuses_indices():
    x = torch.randn(2, 5)
    calls = [
        # Explicit index requests; value outputs (sort, topk, median with a dim) return indices=None.
        lambda: st.argsort(x, method="fast_soft_sort"),
        lambda: st.sort(x, method="fast_soft_sort", return_indices=True),
        lambda: st.sort(x, method="fast_soft_sort", return_indices=True, mode="hard"),
        lambda: st.argquantile(x, 0.5, method="fast_soft_sort"),
        lambda: st.quantile(x, 0.5, -1, return_argquantile=True, method="fast_soft_sort"),
        lambda: st.argmedian(x, method="fast_soft_sort"),
        lambda: st.argmax(x, method="fast_soft_sort"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="method='fast_soft_sort'.*no soft permutation.*'softsort'"):
            call()


def test_values_only_calls_accept_fast_soft_sort():
    """Value outputs without indices must not be refused for lacking a permutation (the method itself
    may not be available yet: NotImplementedError is fine)."""
    x = torch.randn(2, 5)
    calls = [
        lambda: st.sort(x, method="fast_soft_sort", return_indices=False, softness=2.0).values,
        lambda: st.median(x, method="fast_soft_sort", softness=2.0),
        lambda: st.quantile(x, 0.3, -1, method="fast_soft_sort", softness=2.0),
    ]
    for call in calls:
        try:
            out = call()
        except NotImplementedError:
            continue
        assert torch.isfinite(out).all()


BEFORE_WORK = {
    "k": (lambda x: st.topk(x, 6), "k must be in"),
    "k_hard": (lambda x: st.topk(x, 0, mode="hard"), "k must be in"),
    "q": (lambda x: st.quantile(x, 1.5, -1), "q must lie in"),
    "interpolation": (lambda x: st.argquantile(x, 0.5, interpolation="cubic"), "interpolation"),
    "dim": (lambda x: st.sort(x, dim=2), "dim must be in"),
    "method": (lambda x: st.rank(x, method="quick"), "method must be one of"),
    "fast_soft_sort": (lambda x: st.argsort(x, method="fast_soft_sort"), "no soft permutation"),
    "mode": (lambda x: st.median(x, -1, mode="soft"), "mode must be one of"),
    "softness": (lambda x: st.sort(x, softness=-0.5), "softness"),
    "keepdim": (lambda x: st.median(x, keepdim=True), "keepdim"),
}


@pytest.mark.parametrize("case", sorted(BEFORE_WORK))
def test_errors_are_raised_before_any_work(case, raises_before_work):
    """SPEC 7: every argument error is raised before any computation (views of x are not work)."""
    call, match = BEFORE_WORK[case]
    raises_before_work(ValueError, match, call, torch.randn(2, 5))


# -- ot_kwargs -----------------------------------------------------------------------------------------

OT_CALLS = {
    "sort": lambda x, **k: st.sort(x, **k).values,
    "sort_values_only": lambda x, **k: st.sort(x, return_indices=False, **k).values,
    "argsort": lambda x, **k: st.argsort(x, **k),
    "topk": lambda x, **k: st.topk(x, 2, **k).values,
    "rank": lambda x, **k: st.rank(x, -1, **k),
    "quantile": lambda x, **k: st.quantile(x, 0.3, -1, **k),
    "argquantile": lambda x, **k: st.argquantile(x, 0.3, -1, **k),
    "median": lambda x, **k: st.median(x, -1, **k).values,
    "argmedian": lambda x, **k: st.argmedian(x, -1, **k),
    "max": lambda x, **k: st.max(x, -1, **k).values,
    "min": lambda x, **k: st.min(x, -1, **k).values,
    "argmax": lambda x, **k: st.argmax(x, -1, **k),
    "argmin": lambda x, **k: st.argmin(x, -1, **k),
}


@pytest.mark.parametrize("op", sorted(OT_CALLS))
def test_ot_kwargs_reach_the_solver(op):
    """A loose tolerance or a one-iteration cap changes the result; the reference library's
    spellings of the options mean the same."""
    x = distinct((3, 7), seed=4)
    call = OT_CALLS[op]
    for mode, softness, options, alias in (
        ("smooth", 0.1, {"tol": 0.5}, {"sinkhorn_tol": 0.5}),
        ("c1", 1.0, {"max_iter": 1}, {"sinkhorn_max_iter": 1}),
        ("c1", 1.0, {"max_iter": 1}, {"lbfgs_max_iter": 1}),
        ("smooth", 0.1, {"tol": 0.5}, {"lbfgs_tol": 0.5}),
    ):
        converged = call(x, method="ot", softness=softness, mode=mode)
        tight = call(x, method="ot", softness=softness, mode=mode, ot_kwargs={"tol": 1e-9, "max_iter": 500})
        rough = call(x, method="ot", softness=softness, mode=mode, ot_kwargs=options)
        aliased = call(x, method="ot", softness=softness, mode=mode, ot_kwargs=alias)
        torch.testing.assert_close(tight, converged, atol=1e-4, rtol=0)
        assert (rough - converged).abs().max() > 1e-5, (mode, options)
        torch.testing.assert_close(aliased, rough, atol=0, rtol=0)


@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_ot_kwargs_under_two_spellings_take_the_most_demanding_value(mode):
    """The reference's tests pass its Sinkhorn and its L-BFGS pair together; one solver serves
    both here, and it runs with the smaller tolerance and the larger iteration cap."""
    x = distinct((3, 7), seed=4)
    call = OT_CALLS["argsort"]
    both = {"sinkhorn_tol": 0.5, "lbfgs_tol": 1e-9, "sinkhorn_max_iter": 1, "lbfgs_max_iter": 500}
    merged = call(x, method="ot", softness=1.0, mode=mode, ot_kwargs=both)
    plain = call(x, method="ot", softness=1.0, mode=mode, ot_kwargs={"tol": 1e-9, "max_iter": 500})
    torch.testing.assert_close(merged, plain, atol=0, rtol=0)
    rough = call(x, method="ot", softness=1.0, mode=mode, ot_kwargs={"tol": 0.5, "max_iter": 1})
    assert (rough - plain).abs().max() > 1e-5


def test_ot_kwargs_are_ignored_by_other_methods_and_kept_by_layers():
    x = distinct((3, 7), seed=5)
    plain = st.sort(x, method="neuralsort").values
    assert torch.equal(st.sort(x, method="neuralsort", ot_kwargs={"max_iter": 1}).values, plain)
    layer = st.nn.SoftSort(method="ot", softness=1.0, ot_kwargs={"max_iter": 1})
    assert "ot_kwargs={'max_iter': 1}" in repr(layer)
    torch.testing.assert_close(layer(x), st.sort(x, method="ot", softness=1.0, ot_kwargs={"max_iter": 1}).values)


@pytest.mark.parametrize("op", sorted(OT_CALLS))
def test_method_options_mean_the_same_as_ot_kwargs(op):
    """``method_options`` is the generic spelling: it reaches the solver exactly as ``ot_kwargs``."""
    x = distinct((3, 7), seed=6)
    call = OT_CALLS[op]
    rough = call(x, method="ot", softness=1.0, mode="c1", ot_kwargs={"max_iter": 1})
    generic = call(x, method="ot", softness=1.0, mode="c1", method_options={"max_iter": 1})
    both = call(x, method="ot", softness=1.0, mode="c1", method_options={"max_iter": 1}, ot_kwargs={"tol": 1e-5})
    converged = call(x, method="ot", softness=1.0, mode="c1")
    assert (rough - converged).abs().max() > 1e-5
    torch.testing.assert_close(generic, rough, atol=0, rtol=0)
    torch.testing.assert_close(both, rough, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"method": "ot", "method_options": {"eps": 1}}, ValueError, r"accepts the keys 'tol'.*got 'eps'"),
        ({"method": "ot", "method_options": {"tol": -1.0}}, ValueError, r"method_options\['tol'\] must be a positive"),
        ({"method": "softsort", "method_options": {"tol": 1e-3}}, ValueError, r"empty or None for method='softsort'"),
        (
            {"method": "ot", "method_options": {"tol": 1e-3}, "ot_kwargs": {"sinkhorn_tol": 1e-4}},
            ValueError,
            r"ot_kwargs and method_options both set 'tol'",
        ),
    ],
)
def test_bad_method_options(kwargs, exc, match, raises_before_work):
    x = distinct((2, 5), seed=1)
    raises_before_work(exc, match, st.sort, x, **kwargs)
    with pytest.raises(exc, match=match):
        st.nn.SoftSort(**kwargs)


def test_method_options_are_kept_by_layers():
    x = distinct((3, 7), seed=5)
    layer = st.nn.SoftSort(method="ot", softness=1.0, mode="c1", method_options={"max_iter": 1})
    assert "method_options={'max_iter': 1}" in repr(layer)
    expected = st.sort(x, method="ot", softness=1.0, mode="c1", method_options={"max_iter": 1}).values
    torch.testing.assert_close(layer(x), expected, atol=0, rtol=0)
    assert st.sort(x, method="softsort", method_options={}).values.equal(st.sort(x, method="softsort").values)


@pytest.mark.parametrize(
    ("ot_kwargs", "exc", "match"),
    [
        ([("tol", 1e-3)], TypeError, r"ot_kwargs must be a dict or None, got list"),
        ({"eps": 1e-3}, ValueError, r"ot_kwargs accepts the keys 'tol', 'max_iter'.*got 'eps'"),
        ({"tol": 0.0}, ValueError, r"ot_kwargs\['tol'\] must be a positive finite number, got 0.0"),
        ({"tol": float("nan")}, ValueError, r"ot_kwargs\['tol'\] must be a positive finite number, got nan"),
        ({"tol": "1e-3"}, TypeError, r"ot_kwargs\['tol'\] must be a positive number, got str"),
        ({"max_iter": 0}, ValueError, r"ot_kwargs\['max_iter'\] must be in \[1, inf\), got 0"),
        ({"sinkhorn_max_iter": 2.5}, TypeError, r"ot_kwargs\['sinkhorn_max_iter'\] must be an int, got float"),
    ],
)
def test_bad_ot_kwargs(ot_kwargs, exc, match, raises_before_work):
    raises_before_work(exc, match, st.sort, torch.randn(2, 5), method="ot", ot_kwargs=ot_kwargs)
    with pytest.raises(exc, match=match):
        st.nn.SoftSort(method="ot", ot_kwargs=ot_kwargs)


# -- gradients ---------------------------------------------------------------------------------------

GRAD_OPS = {
    "sort": lambda x, s, **k: st.sort(x, softness=s, **k).values,
    "sort_values_only": lambda x, s, **k: st.sort(x, descending=True, return_indices=False, softness=s, **k).values,
    "argsort": lambda x, s, **k: st.argsort(x, softness=s, **k),
    "topk": lambda x, s, **k: st.topk(x, 3, softness=s, **k).values,
    "topk_indices": lambda x, s, **k: st.topk(x, 2, largest=False, softness=s, **k).indices,
    "rank": lambda x, s, **k: st.rank(x, -1, softness=s, **k),
    "quantile": lambda x, s, **k: st.quantile(x, torch.tensor([0.2, 0.5], dtype=F64), -1, softness=s, **k),
    "argquantile": lambda x, s, **k: st.argquantile(x, 0.3, -1, softness=s, **k),
    "median": lambda x, s, **k: st.median(x, -1, softness=s, **k).values,
    "median_all": lambda x, s, **k: st.median(x, softness=s, **k),
    "argmedian": lambda x, s, **k: st.argmedian(x, -1, softness=s, **k),
}


def _grad_inputs():
    x = distinct((2, 5), seed=15).requires_grad_()
    s = torch.tensor([[0.4], [0.7]], dtype=F64, requires_grad=True)
    return x, s


def _grad_call(op, method, mode):
    def call(x, s):
        return GRAD_OPS[op](x, s if op != "median_all" else s[0, 0], method=method, mode=mode)

    return call


@pytest.mark.parametrize("fast", [True, pytest.param(False, marks=pytest.mark.full)], ids=["fast", "slow"])
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", sorted(GRAD_OPS))
def test_gradcheck(op, method, mode, fast):
    torch.autograd.gradcheck(_grad_call(op, method, mode), _grad_inputs(), fast_mode=fast)


VALUE_GRAD_OPS = ("sort", "sort_values_only", "topk", "rank", "quantile", "median_all")


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize(
    ("op", "method"),
    [(op, "ot") for op in sorted(GRAD_OPS)] + [(op, "fast_soft_sort") for op in VALUE_GRAD_OPS],
)
def test_gradcheck_ot_and_fast_soft_sort(op, method, mode):
    """Issue 6: both methods pass gradcheck in float64 in every soft mode, through the public API."""
    torch.autograd.gradcheck(_grad_call(op, method, mode), _grad_inputs(), fast_mode=True)


@pytest.mark.full
@pytest.mark.parametrize("mode", ["smooth", "c1", "c2"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", sorted(GRAD_OPS))
def test_gradgradcheck(op, method, mode):
    torch.autograd.gradgradcheck(_grad_call(op, method, mode), _grad_inputs(), fast_mode=True)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_learnable_softness_gets_gradient(method, mode):
    x = distinct((3, 6), seed=16)
    for op in sorted(GRAD_OPS, key=lambda name: name == "sort_values_only"):
        s = torch.tensor(0.5, dtype=F64, requires_grad=True)
        out = GRAD_OPS[op](x, s, method=method, mode=mode)
        w = torch.randn(out.shape, dtype=F64, generator=torch.Generator().manual_seed(2))
        (g,) = torch.autograd.grad((out * w).sum(), s)
        assert torch.isfinite(g) and g != 0, (op, g)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_straight_through(mode):
    x0 = distinct((2, 5), seed=17)
    w = torch.randn(2, 5, dtype=F64, generator=torch.Generator().manual_seed(3))
    pairs = [
        (lambda x, **k: st.sort_st(x, **k).values, lambda x, **k: st.sort(x, **k).values),
        (lambda x, **k: st.argsort_st(x, **k)[..., 0, :], lambda x, **k: st.argsort(x, **k)[..., 0, :]),
        (lambda x, **k: st.rank_st(x, -1, **k), lambda x, **k: st.rank(x, -1, **k)),
        (lambda x, **k: st.topk_st(x, 5, **k).values, lambda x, **k: st.topk(x, 5, **k).values),
        (
            lambda x, **k: st.quantile_st(x, torch.tensor([0.3, 0.6, 0.7, 0.8, 0.9], dtype=F64), -1, **k).T,
            lambda x, **k: st.quantile(x, torch.tensor([0.3, 0.6, 0.7, 0.8, 0.9], dtype=F64), -1, **k).T,
        ),
        (lambda x, **k: st.argmedian_st(x, -1, **k), lambda x, **k: st.argmedian(x, -1, **k)),
    ]
    for st_fn, fn in pairs:
        x = x0.clone().requires_grad_()
        out = st_fn(x, mode=mode)
        assert torch.equal(out.detach(), fn(x0, mode="hard"))  # the hard result bit for bit
        (g_st,) = torch.autograd.grad((out * w).sum(), x)
        (g_soft,) = torch.autograd.grad((fn(x, mode=mode) * w).sum(), x)
        torch.testing.assert_close(g_st, g_soft)
    assert torch.equal(st.topk_st(seed_x(), k=3).indices, st.topk(seed_x(), k=3, mode="hard").indices)
    assert torch.equal(st.median_st(seed_x()), torch.median(seed_x()))


# -- properties (hypothesis) -------------------------------------------------------------------------


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
        "descending": draw(hs.booleans()),
    }


def _kw(case, **extra):
    return {"method": case["method"], "mode": case["mode"], "softness": case["softness"], **extra}


def _random(case, scale=3.0):
    g = torch.Generator().manual_seed(case["seed"])
    return torch.randn(case["shape"], generator=g, dtype=F64) * scale


@HYP
@given(cases(), hs.floats(0.0, 1.0))
def test_property_soft_indices_are_distributions(case, q):
    x = _random(case)
    dim, n = case["dim"], x.shape[case["dim"]]
    kw = _kw(case)
    k = 1 + case["seed"] % n
    for p in (
        st.argsort(x, dim, case["descending"], **kw),
        st.sort(x, dim, case["descending"], **kw).indices,
        st.topk(x, k, dim, largest=case["descending"], **kw).indices,
        st.argquantile(x, q, dim, **kw),
        st.argquantile(x, torch.tensor([q, 1 - q], dtype=F64), None, **kw),
        st.argmedian(x, dim, **kw),
        st.median(x, dim, keepdim=True, **kw).indices,
    ):
        assert p.shape[-1] in (n, x.numel())
        assert_prob(p)
    values = st.sort(x, dim, **kw).values
    assert (values >= x.amin(dim, keepdim=True) - 1e-9).all() and (values <= x.amax(dim, keepdim=True) + 1e-9).all()


@HYP
@given(cases())
def test_property_sorting_network_is_doubly_stochastic(case):
    x = _random(case)
    p = st.argsort(x, case["dim"], case["descending"], **_kw(case, method="sorting_network"))
    p = p.movedim(case["dim"] % x.dim(), -2)  # (..., slot, element)
    ones = torch.ones(p.shape[:-1], dtype=F64)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), ones, atol=1e-10, rtol=0)
    torch.testing.assert_close(p.sum(-2), ones, atol=1e-10, rtol=0)


@HYP
@given(cases())
def test_property_ranks_lie_in_1_n(case):
    x = _random(case)
    n = x.shape[case["dim"]]
    r = st.rank(x, case["dim"], case["descending"], **_kw(case))
    assert r.shape == x.shape
    assert (r >= 1 - 1e-9).all() and (r <= n + 1e-9).all()
    r_all = st.rank(x, None, case["descending"], **_kw(case))
    assert r_all.shape == x.shape
    assert (r_all >= 1 - 1e-9).all() and (r_all <= x.numel() + 1e-9).all()


@HYP
@given(cases(), hs.floats(0.02, 10.0), hs.sampled_from(INTERPOLATIONS), hs.floats(0.0, 1.0))
def test_property_small_softness_is_hard(case, spacing, interpolation, q):
    """At softness 1e-4 every method gives the hard result (values and one-hot indices) on spaced inputs."""
    x = distinct(case["shape"], case["dim"], case["seed"], spacing=spacing)
    dim, desc, n = case["dim"], case["descending"], x.shape[case["dim"]]
    kw = _kw(case, softness=1e-4)
    close = {"atol": 1e-9, "rtol": 1e-12}
    soft, hard = st.sort(x, dim, desc, **kw), st.sort(x, dim, desc, mode="hard")
    torch.testing.assert_close(soft.values, hard.values, **close)
    torch.testing.assert_close(soft.indices, hard.indices, **close)
    torch.testing.assert_close(st.argsort(x, dim, desc, **kw), hard.indices, **close)
    k = 1 + case["seed"] % n
    soft, hard = st.topk(x, k, dim, largest=desc, **kw), st.topk(x, k, dim, largest=desc, mode="hard")
    torch.testing.assert_close(soft.values, hard.values, **close)
    torch.testing.assert_close(soft.indices, hard.indices, **close)
    torch.testing.assert_close(st.rank(x, dim, desc, **kw), st.rank(x, dim, desc, mode="hard"), **close)
    soft = st.quantile(x, q, dim, interpolation=interpolation, return_argquantile=True, **kw)
    hard = st.quantile(x, q, dim, interpolation=interpolation, return_argquantile=True, mode="hard")
    torch.testing.assert_close(soft.values, hard.values, **close)
    torch.testing.assert_close(soft.indices, hard.indices, **close)
    soft, hard = st.median(x, dim, **kw), st.median(x, dim, mode="hard")
    torch.testing.assert_close(soft.values, hard.values, **close)
    torch.testing.assert_close(soft.indices, hard.indices, **close)
    flat = distinct((x.numel(),), 0, case["seed"], spacing=spacing).reshape(x.shape)  # distinct overall
    torch.testing.assert_close(st.median(flat, **kw), st.median(flat, mode="hard"), **close)
    torch.testing.assert_close(st.rank(flat, **kw), st.rank(flat, mode="hard"), **close)


@HYP
@given(cases(min_n=2), hs.floats(0.5, 3.0), hs.floats(-5.0, 5.0))
def test_property_affine_invariance(case, a, b):
    """standardize=True: soft indices and ranks are invariant to a x + b (a > 0); values become a v + b.

    Exact up to the 1e-6 in sqrt(var + 1e-6) (SPEC 4.1): on a grid of spacing 2 (var >= 1) that term
    moves the standardized scores by < 1e-6 relative, hence the 1e-4 tolerances.
    """
    x = distinct(case["shape"], case["dim"], case["seed"], spacing=2.0)
    y = a * x + b
    dim, desc = case["dim"], case["descending"]
    kw = _kw(case)
    tol = {"atol": 1e-4, "rtol": 1e-5}
    one, two = st.sort(x, dim, desc, **kw), st.sort(y, dim, desc, **kw)
    torch.testing.assert_close(two.indices, one.indices, **tol)
    torch.testing.assert_close(two.values, a * one.values + b, **tol)
    torch.testing.assert_close(st.rank(y, dim, desc, **kw), st.rank(x, dim, desc, **kw), **tol)
    qs = torch.tensor([0.1, 0.5, 0.8], dtype=F64)
    torch.testing.assert_close(st.quantile(y, qs, dim, **kw), a * st.quantile(x, qs, dim, **kw) + b, **tol)
    torch.testing.assert_close(st.argmedian(y, dim, **kw), st.argmedian(x, dim, **kw), **tol)


@HYP
@given(cases(min_n=2), hs.booleans())
def test_property_soft_sort_is_monotone(case, standardize):
    """Soft sorted values are monotone for softsort and neuralsort, in every mode.

    Why it holds: every mode's projection has Jacobian J = diag(w) - w w^T / sum(w) with w >= 0
    (softmax: w = p; sparsemax: w = 1 on the support; entmax: w = m p^((m-1)/m)). The slot-i value is
    <p(z_i), x>. NeuralSort's scores move with the slot as dz/dc = x~ / s, and SoftSort's with its
    anchor as dz/da = sign(x~ - a) / s; both are nondecreasing functions of x~, as x is. The derivative
    of the value along the slots is then a w-weighted covariance of two comonotone sequences, which is
    >= 0 (Chebyshev's sum inequality), and the anchors/coefficients are ordered with the slots.

    Not asserted for sorting_network: a relaxed compare-and-swap network is not order preserving (its
    output can decrease between slots, e.g. x = [1.0, 0.7, 0.5], softness=2.0, standardize=False
    gives [0.7478, 0.7554, 0.6969], n = 3 being padded to 4).
    """
    method = ("softsort", "neuralsort")[case["seed"] % 2]
    x = _random(case) ** 3
    dim, desc = case["dim"], case["descending"]
    v = st.sort(x, dim, desc, **_kw(case, method=method, standardize=standardize)).values
    steps = v.diff(dim=dim)
    scale = x.abs().max() * 1e-12
    assert (steps <= scale).all() if desc else (steps >= -scale).all()


# -- percentile -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, mode", method_modes())
def test_percentile_is_quantile_of_q_over_100_bit_for_bit(mode, method):
    x = distinct((3, 7), seed=11, dtype=torch.float32)
    for q in (0.0, 12.5, 30.0, 100.0, torch.tensor([5.0, 50.0, 95.0])):
        level = q / 100
        got = st.percentile(x, q, -1, softness=0.3, mode=mode, method=method)
        assert torch.equal(got, st.quantile(x, level, -1, softness=0.3, mode=mode, method=method)), (q, mode)
        if get_method(method).gives_indices:
            both = st.percentile(x, q, -1, softness=0.3, mode=mode, method=method, return_argpercentile=True)
            dist = st.argpercentile(x, q, -1, softness=0.3, mode=mode, method=method)
            expected = st.argquantile(x, level, -1, softness=0.3, mode=mode, method=method)
            assert torch.equal(both.indices, expected) and torch.equal(dist, expected)
            assert torch.equal(both.values, got)


def test_percentile_hand_checked_and_layers():
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
    # sorted: -1.0, -0.2, 0.3, 1.0; q = 25 -> position 0.75: -1.0 + 0.75 * 0.8 = -0.4
    torch.testing.assert_close(st.percentile(x, 25.0, mode="hard"), torch.tensor(-0.4))
    torch.testing.assert_close(st.argpercentile(x, 25.0, mode="hard"), torch.tensor([0.75, 0.25, 0.0, 0.0]))
    torch.testing.assert_close(st.percentile_st(x, 25.0), torch.tensor(-0.4))
    assert torch.equal(st.nn.SoftPercentile(25.0, -1, mode="c1")(x), st.percentile(x, 25.0, -1, mode="c1"))
    assert torch.equal(st.nn.SoftArgpercentile(60.0, -1)(x), st.argpercentile(x, 60.0, -1))
    with pytest.raises(ValueError, match=r"q must lie in \[0, 100\], got 101"):
        st.nn.SoftPercentile(101, -1)
    with pytest.raises(ValueError, match=r"q must lie in \[0, 100\], got \[-1\.0\]"):
        st.percentile(x, torch.tensor([-1.0]))


# -- layer configuration as attributes ------------------------------------------------------------------


def test_layers_expose_their_configuration_as_attributes():
    assert st.nn.SoftSort(dim=0).dim == 0
    assert st.nn.SoftTopK(k=3).k == 3
    layer = st.nn.SoftTopK(k=3, method="softsort", return_indices=True)
    assert (layer.method, layer.mode, layer.largest, layer.return_indices) == ("softsort", "smooth", True, True)
    x = distinct((2, 6), seed=3, dtype=torch.float32)
    layer.k = 2
    assert layer(x).values.shape == (2, 2)
    layer.return_indices = False
    assert layer(x).shape == (2, 2)
    with pytest.raises(ValueError, match=r"k must be in \[1, inf\), got 0"):
        layer.k = 0
    with pytest.raises(ValueError, match=r"mode must be one of"):
        layer.mode = "soft"
    with pytest.raises(ValueError, match=r"empty or None for method='neuralsort'"):
        st.nn.SoftSort(method="ot", method_options={"tol": 1e-6}).method = "neuralsort"
    assert layer.k == 2 and layer.mode == "smooth"
    with pytest.raises(AttributeError):
        layer.no_such_setting  # noqa: B018
