"""Tests for selection with soft indices: where, take_along_dim, take, index_select, narrow."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as hs

import softtorch as st

SEED_X = [-0.2, -1.0, 0.3, 1.0]
SEED_Y = [0.2, -0.5, 0.5, -1.0]
FUZZY_A = [0.1, 0.2, 0.8, 1.0]

DIMS_3D = [0, 1, 2, -1, -2, -3]


def one_hot(index, n, dtype):
    return F.one_hot(index, n).to(dtype)


def random_x(shape, dtype, device, seed=0):
    """Random values without zeros (so signed zeros cannot make an exact selection differ)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    x = torch.where(x == 0, torch.ones_like(x), x)
    return x.to(dtype).to(device)


def dirichlet(shape, device, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = -torch.log(torch.rand(shape, generator=g, dtype=torch.float64))
    return (w / w.sum(-1, keepdim=True)).to(dtype).to(device)


# --------------------------------------------------------------------------------------------
# where
# --------------------------------------------------------------------------------------------


def test_where_seed_readme_figure(device):
    out = st.where(
        torch.tensor(FUZZY_A, device=device), torch.tensor(SEED_X, device=device), torch.tensor(SEED_Y, device=device)
    )
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.cpu(), torch.tensor([0.16, -0.6, 0.34, 1.0]), rtol=0, atol=5e-5)


@pytest.mark.parametrize(
    "shapes", [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()), ((4,), (2, 1, 4), (1,)), ((), (5,), (5,))], ids=str
)
def test_where_boolean_condition_equals_torch(shapes, dtype, device):
    g = torch.Generator().manual_seed(3)
    c = (torch.rand(shapes[0], generator=g) < 0.5).to(device)
    x = random_x(shapes[1], dtype, device, seed=1)
    y = random_x(shapes[2], dtype, device, seed=2)
    out = st.where(c.to(dtype), x, y)
    ref = torch.where(c, x, y)
    assert out.shape == ref.shape and out.dtype == dtype
    assert torch.equal(out, ref)
    # a bool condition is promoted
    assert torch.equal(st.where(c, x, y), ref)


def test_where_soft_condition_is_convex(device):
    c = torch.rand(3, 4, dtype=torch.float64, device=device)
    x = torch.randn(3, 4, dtype=torch.float64, device=device)
    y = torch.randn(4, dtype=torch.float64, device=device)
    out = st.where(c, x, y)
    torch.testing.assert_close(out, c * x + (1 - c) * y)
    assert (out >= torch.minimum(x, y) - 1e-12).all() and (out <= torch.maximum(x, y) + 1e-12).all()


def test_where_python_number_branches_like_torch(dtype, device, bitwise_equal):
    """Either branch may be a Python number (as in torch.where): it takes the dtype of the other
    branch, or of the condition when both are numbers."""
    c = torch.tensor([0.1, 0.2, 0.8, 1.0], dtype=dtype, device=device)
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0], dtype=dtype, device=device)
    bitwise_equal(st.where(c, x, 0.0), st.where(c, x, torch.zeros_like(x)))
    bitwise_equal(st.where(c, 2, x), st.where(c, torch.full_like(x, 2.0), x))
    both = st.where(c, 1.0, 0.0)
    assert both.dtype == dtype
    bitwise_equal(both, c)
    # hand-checked: 0.1 * -0.2 + 0.9 * 0.5, 0.8 * 0.3 + 0.2 * 0.5
    torch.testing.assert_close(
        st.where(c[1:3], x[[0, 2]], 0.5).cpu().double(),
        torch.tensor([0.36, 0.34], dtype=torch.float64),
        rtol=0,
        atol=1e-3,
    )
    # an integer branch tensor is promoted before a number takes its dtype
    bitwise_equal(st.where(c, torch.arange(4, device=device), 0.5), st.where(c, torch.arange(4.0, device=device), 0.5))


def test_where_gradcheck(device):
    c = torch.tensor([0.1, 0.35, 0.5, 0.72, 0.9, 0.2], dtype=torch.float64, device=device, requires_grad=True)
    x = torch.randn(6, dtype=torch.float64, device=device, requires_grad=True)
    y = torch.randn(2, 1, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(st.where, (c, x, y))
    assert torch.autograd.gradgradcheck(st.where, (c, x, y))


def test_where_bad_input(raises_before_work):
    real = torch.ones(2)
    raises_before_work(TypeError, r"condition.*complex", st.where, torch.tensor([1j, 0j]), real, real)
    raises_before_work(TypeError, r"\bx\b.*complex", st.where, real, torch.tensor([1j, 0j]), real)
    raises_before_work(TypeError, r"\by\b.*complex", st.where, real, real, torch.tensor([1j, 0j]))


# --------------------------------------------------------------------------------------------
# take_along_dim
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 7])
@pytest.mark.parametrize("dim", DIMS_3D)
def test_take_along_dim_one_hot_equals_torch(dim, k, dtype, device, bitwise_equal):
    x = random_x((3, 4, 5), dtype, device)
    shape = list(x.shape)
    n = shape[dim]
    shape[dim] = k
    g = torch.Generator().manual_seed(k)
    idx = torch.randint(0, n, shape, generator=g).to(device)
    out = st.take_along_dim(x, one_hot(idx, n, dtype), dim=dim)
    bitwise_equal(out, torch.take_along_dim(x, idx, dim=dim))


@pytest.mark.parametrize("dim", [1, -2])
def test_take_along_dim_broadcasts_index_like_torch(dim, dtype, device, bitwise_equal):
    x = random_x((3, 4, 5), dtype, device)
    idx = torch.tensor([[[3, 0, 1, 2, 3], [1, 1, 0, 2, 0]]], device=device)  # (1, 2, 5): broadcasts over dim 0
    out = st.take_along_dim(x, one_hot(idx, 4, dtype), dim=dim)
    bitwise_equal(out, torch.take_along_dim(x, idx, dim=dim))


def test_take_along_dim_flattened(dtype, device, bitwise_equal):
    x = random_x((3, 4), dtype, device)
    idx = torch.tensor([11, 0, 5, 5], device=device)
    bitwise_equal(st.take_along_dim(x, one_hot(idx, 12, dtype)), torch.take_along_dim(x, idx))


@pytest.mark.parametrize("dim", DIMS_3D)
def test_take_along_dim_soft_index_is_expectation(dim, device):
    x = random_x((3, 4, 5), torch.float64, device)
    shape = list(x.shape)
    n = shape[dim]
    shape[dim] = 2
    p = dirichlet(shape + [n], device)
    out = st.take_along_dim(x, p, dim=dim)
    expected = sum(p[..., j] * x.narrow(dim, j, 1) for j in range(n))
    torch.testing.assert_close(out, expected)
    lo, hi = x.amin(dim, keepdim=True), x.amax(dim, keepdim=True)
    assert ((out >= lo - 1e-12) & (out <= hi + 1e-12)).all()


def test_take_along_dim_gradcheck(device):
    x = torch.randn(2, 3, dtype=torch.float64, device=device, requires_grad=True)
    p = dirichlet((2, 4, 3), device).requires_grad_(True)
    f = lambda a, b: st.take_along_dim(a, b, dim=1)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, p))
    assert torch.autograd.gradgradcheck(f, (x, p))


# --------------------------------------------------------------------------------------------
# take
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index_shape", [(), (3,), (2, 3)], ids=str)
def test_take_one_hot_equals_torch(index_shape, dtype, device, bitwise_equal):
    x = random_x((3, 4), dtype, device)
    g = torch.Generator().manual_seed(len(index_shape))
    idx = torch.randint(0, 12, index_shape, generator=g).to(device)
    bitwise_equal(st.take(x, one_hot(idx, 12, dtype)), torch.take(x, idx))


def test_take_soft_index_is_expectation(device):
    x = random_x((3, 4), torch.float64, device)
    p = dirichlet((2, 5, 12), device)
    out = st.take(x, p)
    assert out.shape == (2, 5)
    torch.testing.assert_close(out, p @ x.reshape(-1))
    assert ((out >= x.min()) & (out <= x.max())).all()


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_take_along_a_dim_selects_in_that_dim(dim, dtype, device, bitwise_equal):
    """``take(x, P, dim)`` (softtorch 0.1.1's form): the k rows of P select along ``dim``; one-hot
    rows give :func:`torch.index_select`, a single row of shape (n,) removes the dim."""
    x = random_x((3, 4, 5), dtype, device)
    n = x.shape[dim]
    idx = torch.tensor([n - 1, 0, 1], device=device)
    bitwise_equal(st.take(x, one_hot(idx, n, dtype), dim=dim), torch.index_select(x, dim, idx))
    bitwise_equal(st.take(x, one_hot(idx[:1], n, dtype)[0], dim=dim), x.select(dim, n - 1))


def test_take_along_a_dim_hand_checked(device):
    x = torch.tensor([[0.3, -1.2, 0.8, 0.1], [2.0, -0.5, -0.4, 1.1]], dtype=torch.float64, device=device)
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.0, 1.0, 0.0, 0.0]], dtype=torch.float64, device=device)
    # row 0: 0.03 - 0.24 + 0.24 + 0.04; row 1: 0.2 - 0.1 - 0.12 + 0.44
    expected = torch.tensor([[0.07, -1.2], [0.42, -0.5]], dtype=torch.float64)
    torch.testing.assert_close(st.take(x, p, dim=1).cpu(), expected)
    # 0.25 * row 0 + 0.75 * row 1
    expected = torch.tensor([[1.575, -0.675, -0.1, 0.85]], dtype=torch.float64)
    torch.testing.assert_close(
        st.take(x, torch.tensor([[0.25, 0.75]], dtype=torch.float64, device=device), dim=0).cpu(), expected
    )


def test_take_gradcheck(device):
    x = torch.randn(2, 3, dtype=torch.float64, device=device, requires_grad=True)
    p = dirichlet((4, 6), device).requires_grad_(True)
    assert torch.autograd.gradcheck(st.take, (x, p))
    assert torch.autograd.gradgradcheck(st.take, (x, p))


# --------------------------------------------------------------------------------------------
# index_select
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 6])
@pytest.mark.parametrize("dim", DIMS_3D)
def test_index_select_one_hot_equals_torch(dim, k, dtype, device, bitwise_equal):
    x = random_x((3, 4, 5), dtype, device)
    n = x.shape[dim]
    idx = torch.arange(k, device=device) * 7 % n
    bitwise_equal(st.index_select(x, one_hot(idx, n, dtype), dim=dim), torch.index_select(x, dim, idx))


@pytest.mark.parametrize("dim", DIMS_3D)
def test_index_select_single_index(dim, dtype, device, bitwise_equal):
    x = random_x((3, 4, 5), dtype, device)
    n = x.shape[dim]
    i = n - 2
    p = one_hot(torch.tensor(i, device=device), n, dtype)  # shape (n,)
    bitwise_equal(st.index_select(x, p, dim=dim), torch.index_select(x, dim, torch.tensor([i], device=device)))
    bitwise_equal(st.index_select(x, p, dim=dim, keepdim=False), x.select(dim, i))


@pytest.mark.parametrize("dim", DIMS_3D)
def test_index_select_soft_index_is_expectation(dim, device):
    x = random_x((3, 4, 5), torch.float64, device)
    n = x.shape[dim]
    p = dirichlet((2, n), device)
    out = st.index_select(x, p, dim=dim)
    expected = torch.cat([sum(p[r, j] * x.narrow(dim, j, 1) for j in range(n)) for r in range(2)], dim=dim)
    torch.testing.assert_close(out, expected)


def test_index_select_gradcheck(device):
    x = torch.randn(3, 4, dtype=torch.float64, device=device, requires_grad=True)
    p = dirichlet((2, 3), device).requires_grad_(True)
    f = lambda a, b: st.index_select(a, b, dim=0)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, p))
    assert torch.autograd.gradgradcheck(f, (x, p))
    q = dirichlet((4,), device).requires_grad_(True)
    g = lambda a, b: st.index_select(a, b, dim=-1, keepdim=False)  # noqa: E731
    assert torch.autograd.gradcheck(g, (x, q))


# --------------------------------------------------------------------------------------------
# narrow
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 2, "n"])
@pytest.mark.parametrize("dim", DIMS_3D)
def test_narrow_one_hot_equals_torch(dim, length, dtype, device, bitwise_equal):
    x = random_x((3, 4, 5), dtype, device)
    n = x.shape[dim]
    length = n if length == "n" else length
    for start in range(min(n - length, n - 1) + 1):  # a soft start is a distribution over [0, n)
        p = one_hot(torch.tensor(start, device=device), n, dtype)
        bitwise_equal(st.narrow(x, p, length, dim=dim), torch.narrow(x, dim, start, length))


@pytest.mark.parametrize("dim", [0, -1])
def test_narrow_does_not_wrap_around(dim, dtype, device, bitwise_equal):
    x = random_x((4, 5), dtype, device)
    n, length = x.shape[dim], 3
    for start in range(n - length + 1, n):  # starts past n - length fold onto n - length
        p = one_hot(torch.tensor(start, device=device), n, dtype)
        bitwise_equal(st.narrow(x, p, length, dim=dim), torch.narrow(x, dim, n - length, length))


def test_narrow_default_dim_is_zero(device, bitwise_equal):
    x = random_x((4, 3), torch.float32, device)
    p = one_hot(torch.tensor(1, device=device), 4, torch.float32)
    bitwise_equal(st.narrow(x, p, 2), torch.narrow(x, 0, 1, 2))


@pytest.mark.parametrize("dim", DIMS_3D)
def test_narrow_soft_start_is_expectation(dim, device):
    x = random_x((3, 4, 5), torch.float64, device)
    n, length = x.shape[dim], 2
    p = dirichlet((n,), device)
    out = st.narrow(x, p, length, dim=dim)
    folded = list(p[: n - length]) + [p[n - length :].sum()]
    expected = sum(w * torch.narrow(x, dim, s, length) for s, w in enumerate(folded))
    torch.testing.assert_close(out, expected)


def test_narrow_one_distribution_per_slice(device):
    # x (3, 4, 5) narrowed along dim 1: one start distribution per (row, column) slice -> (3, 5, 4)
    x = random_x((3, 4, 5), torch.float64, device)
    p = dirichlet((3, 5, 4), device)
    out = st.narrow(x, p, 2, dim=1)
    assert out.shape == (3, 2, 5)
    for a in range(3):
        for c in range(5):
            expected = st.narrow(x[a, :, c], p[a, c], 2, dim=0)
            torch.testing.assert_close(out[a, :, c], expected)


def test_narrow_gradcheck(device):
    x = torch.randn(5, 2, dtype=torch.float64, device=device, requires_grad=True)
    p = dirichlet((5,), device).requires_grad_(True)
    f = lambda a, b: st.narrow(a, b, 3, dim=0)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, p))
    assert torch.autograd.gradgradcheck(f, (x, p))


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [5, 6, 100])
def test_narrow_length_larger_than_n_raises(length, raises_before_work):
    x = torch.randn(4, 3)
    info = raises_before_work(ValueError, r"length.*\b4\b", st.narrow, x, torch.full((4,), 0.25), length, dim=0)
    assert str(length) in str(info.value)


def test_narrow_negative_length_and_zero_dim_raise(raises_before_work):
    raises_before_work(ValueError, r"length.*-1", st.narrow, torch.randn(4), torch.full((4,), 0.25), -1)
    raises_before_work(TypeError, r"length", st.narrow, torch.randn(4), torch.full((4,), 0.25), 1.5)
    raises_before_work(ValueError, r"\bx\b.*0-d", st.narrow, torch.tensor(1.0), torch.ones(1), 1)


MISMATCH_CASES = {
    # name -> (function, x, soft index whose last axis is 3 where n = 4, extra keyword arguments)
    "take_along_dim": (st.take_along_dim, (2, 4), (2, 1, 3), {"dim": 1}),
    "take_along_dim_flat": (st.take_along_dim, (2, 2), (1, 3), {}),
    "take": (st.take, (2, 2), (3,), {}),
    "index_select": (st.index_select, (4, 2), (2, 3), {"dim": 0}),
    "narrow": (st.narrow, (2, 4), (3,), {"length": 2, "dim": 1}),
}


@pytest.mark.parametrize("name", list(MISMATCH_CASES))
def test_soft_index_size_mismatch_names_both_sizes(name, raises_before_work):
    fn, x_shape, index_shape, kwargs = MISMATCH_CASES[name]
    x, index = torch.randn(x_shape), torch.full(index_shape, 1 / 3)
    info = raises_before_work(ValueError, r"soft_(index|start)", fn, x, index, **kwargs)
    message = str(info.value)
    assert "4" in message and "3" in message, message


def test_take_along_dim_wrong_rank_raises(raises_before_work):
    raises_before_work(
        ValueError, r"soft_index.*dimensions", st.take_along_dim, torch.randn(2, 4), torch.full((4,), 0.25), dim=1
    )


def test_index_select_wrong_rank_raises(raises_before_work):
    raises_before_work(
        ValueError,
        r"soft_index.*\(n,\) or \(k, n\)",
        st.index_select,
        torch.randn(4, 2),
        torch.full((1, 2, 4), 0.25),
        dim=0,
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: st.take_along_dim(torch.randn(2, 4), torch.full((2, 1, 4), 0.25), dim=2),
        lambda: st.index_select(torch.randn(2, 4), torch.full((4,), 0.25), dim=-3),
        lambda: st.narrow(torch.randn(2, 4), torch.full((4,), 0.25), 2, dim=2),
    ],
    ids=["take_along_dim", "index_select", "narrow"],
)
def test_dim_out_of_range_raises(call):
    with pytest.raises(ValueError, match=r"dim.*\[-2, 1\]"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda c: st.take_along_dim(c, torch.full((2, 1, 4), 0.25), dim=1),
        lambda c: st.take(c, torch.full((8,), 0.125)),
        lambda c: st.index_select(c, torch.full((2,), 0.5), dim=0),
        lambda c: st.narrow(c, torch.full((4,), 0.25), 2, dim=1),
    ],
    ids=["take_along_dim", "take", "index_select", "narrow"],
)
def test_complex_input_raises_type_error(call):
    with pytest.raises(TypeError, match=r"\bx\b.*complex"):
        call(torch.zeros(2, 4, dtype=torch.complex64))


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@hs.composite
def tensors_and_dims(draw):
    shape = tuple(draw(hs.lists(hs.integers(1, 4), min_size=1, max_size=3)))
    ndim = len(shape)
    dim = draw(hs.integers(-ndim, ndim - 1))
    seed = draw(hs.integers(0, 2**16))
    return shape, dim, seed


@pytest.mark.full
@given(case=tensors_and_dims(), k=hs.integers(1, 5))
def test_property_one_hot_reproduces_torch_exactly(case, k):
    shape, dim, seed = case
    x = random_x(shape, torch.float32, "cpu", seed)
    n = shape[dim]
    g = torch.Generator().manual_seed(seed)
    index_shape = list(shape)
    index_shape[dim] = k
    idx = torch.randint(0, n, index_shape, generator=g)
    assert torch.equal(st.take_along_dim(x, one_hot(idx, n, x.dtype), dim=dim), torch.take_along_dim(x, idx, dim=dim))
    sel = torch.randint(0, n, (k,), generator=g)
    assert torch.equal(st.index_select(x, one_hot(sel, n, x.dtype), dim=dim), torch.index_select(x, dim, sel))
    flat = torch.randint(0, x.numel(), (k, 2), generator=g)
    assert torch.equal(st.take(x, one_hot(flat, x.numel(), x.dtype)), torch.take(x, flat))
    length = int(torch.randint(1, n + 1, (), generator=g))  # length 0: test_narrow_one_hot_equals_torch
    start = int(torch.randint(0, min(n - length, n - 1) + 1, (), generator=g))  # a start position in [0, n)
    p = one_hot(torch.tensor(start), n, x.dtype)
    assert torch.equal(st.narrow(x, p, length, dim=dim), torch.narrow(x, dim, start, length))


@pytest.mark.full
@given(case=tensors_and_dims(), k=hs.integers(1, 5))
def test_property_soft_indices_give_convex_combinations(case, k):
    shape, dim, seed = case
    x = random_x(shape, torch.float64, "cpu", seed)
    n = shape[dim]
    lo, hi = x.amin(dim, keepdim=True) - 1e-12, x.amax(dim, keepdim=True) + 1e-12
    index_shape = list(shape)
    index_shape[dim] = k
    out = st.take_along_dim(x, dirichlet(index_shape + [n], "cpu", seed=seed), dim=dim)
    assert ((out >= lo) & (out <= hi)).all()
    out = st.index_select(x, dirichlet((k, n), "cpu", seed=seed + 1), dim=dim)
    assert ((out >= lo) & (out <= hi)).all()
    out = st.take(x, dirichlet((k, x.numel()), "cpu", seed=seed + 2))
    assert ((out >= x.min() - 1e-12) & (out <= x.max() + 1e-12)).all()
    # narrow: each output is a convex combination of the windows' entries
    length = max(1, n // 2)
    out = st.narrow(x, dirichlet((n,), "cpu", seed=seed + 3), length, dim=dim)
    assert out.shape[dim] == length
    assert ((out >= lo) & (out <= hi)).all()
