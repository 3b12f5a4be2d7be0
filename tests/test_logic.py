"""Tests for the logic family: logical_not, logical_and, logical_or, logical_xor, all, any."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hs

import softtorch as st

FUZZY_A = [0.1, 0.2, 0.8, 1.0]
FUZZY_B = [0.7, 0.3, 0.1, 0.9]

BINARY = {
    "logical_and": (st.logical_and, torch.logical_and),
    "logical_or": (st.logical_or, torch.logical_or),
    "logical_xor": (st.logical_xor, torch.logical_xor),
}
REDUCTIONS = {"all": (st.all, torch.all), "any": (st.any, torch.any)}


# --------------------------------------------------------------------------------------------
# Feature values
# --------------------------------------------------------------------------------------------

SEED_FIGURES = [
    ("and", lambda a, b: st.logical_and(a, b), [0.07, 0.06, 0.08, 0.9]),
    ("or", lambda a, b: st.logical_or(a, b), [0.73, 0.44, 0.82, 1.0]),
    ("not", lambda a, b: st.logical_not(a), [0.9, 0.8, 0.2, 0.0]),
    ("xor", lambda a, b: st.logical_xor(a, b), [0.6411, 0.3464, 0.7256, 0.1000]),
    ("all", lambda a, b: st.all(a), 0.0160),
    ("any", lambda a, b: st.any(a), 1.0),
]


@pytest.mark.parametrize("name, call, expected", SEED_FIGURES, ids=[f[0] for f in SEED_FIGURES])
def test_seed_readme_figures(name, call, expected, device):
    a = torch.tensor(FUZZY_A, device=device)
    b = torch.tensor(FUZZY_B, device=device)
    got = call(a, b)
    want = torch.tensor(expected)
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=5e-5)


def test_closed_forms(device):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 5, generator=g, dtype=torch.float64).to(device)
    y = torch.rand(4, 5, generator=g, dtype=torch.float64).to(device)
    torch.testing.assert_close(st.logical_not(x), 1 - x)
    torch.testing.assert_close(st.logical_and(x, y), x * y)
    torch.testing.assert_close(st.logical_or(x, y), x + y - x * y)
    a, b = x * (1 - y), (1 - x) * y
    torch.testing.assert_close(st.logical_xor(x, y), a + b - a * b)
    torch.testing.assert_close(st.all(x, -1), x.prod(-1))
    torch.testing.assert_close(st.any(x, -1), 1 - (1 - x).prod(-1))
    # geometric means
    torch.testing.assert_close(st.logical_and(x, y, use_geometric_mean=True), (x * y).sqrt())
    torch.testing.assert_close(st.logical_or(x, y, use_geometric_mean=True), 1 - ((1 - x) * (1 - y)).sqrt())
    torch.testing.assert_close(st.all(x, -1, use_geometric_mean=True), x.prod(-1) ** (1 / 5))
    torch.testing.assert_close(st.all(x, dim=0, use_geometric_mean=True), x.prod(0) ** (1 / 4))
    torch.testing.assert_close(st.any(x, dim=0, use_geometric_mean=True), 1 - (1 - x).prod(0) ** (1 / 4))
    torch.testing.assert_close(st.all(x, dim=None, use_geometric_mean=True), x.prod() ** (1 / 20))


def test_geometric_mean_clamps_zeros(device):
    x = torch.tensor([0.0, 1.0], dtype=torch.float64, device=device)
    out = st.all(x, use_geometric_mean=True)
    assert torch.isfinite(out) and 0 <= out.item() < 1e-5
    x = x.requires_grad_(True)
    st.all(x, use_geometric_mean=True).backward()
    assert torch.isfinite(x.grad).all()


def test_geometric_mean_floor_is_epsilon(device):
    """The inputs of the geometric mean's logarithm are floored at ``epsilon`` (default 1e-10,
    softtorch 0.1.1's): hand-checked on [0.1, 0.2, 0.8, 1.0]."""
    x = torch.tensor([0.1, 0.2, 0.8, 1.0], dtype=torch.float64, device=device)
    # any: 1 - (0.9 * 0.8 * 0.2 * 1e-10) ** (1 / 4)
    torch.testing.assert_close(st.any(x, use_geometric_mean=True).item(), 1 - (0.144 * 1e-10) ** 0.25)
    torch.testing.assert_close(st.any(x, use_geometric_mean=True).item(), 0.998052, atol=1e-6, rtol=0)
    # all with a floor above 0.1: (0.15 * 0.2 * 0.8 * 1.0) ** (1 / 4)
    torch.testing.assert_close(st.all(x, -1, epsilon=0.15, use_geometric_mean=True).item(), 0.024**0.25)
    torch.testing.assert_close(st.any(x, epsilon=1e-4, use_geometric_mean=True).item(), 1 - (0.144 * 1e-4) ** 0.25)
    # the product ignores epsilon; epsilon 0 still floors at the dtype's smallest normal number
    assert st.all(x, epsilon=0.5).item() == pytest.approx(0.016)
    zero = torch.tensor([0.0, 1.0], dtype=torch.float64, device=device)
    tiny = torch.finfo(torch.float64).tiny
    torch.testing.assert_close(st.all(zero, epsilon=0.0, use_geometric_mean=True).item(), tiny**0.5)


# --------------------------------------------------------------------------------------------
# Exact on hard booleans
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_ops_exact_on_booleans(name, dtype, device, bitwise_equal):
    fn, torch_op = BINARY[name]
    pairs = torch.tensor(list(itertools.product([False, True], repeat=2)), device=device)
    a, b = pairs[:, 0], pairs[:, 1]
    bitwise_equal(fn(a.to(dtype), b.to(dtype)), torch_op(a, b).to(dtype))
    # bool tensors are promoted to the default float dtype
    out = fn(a, b)
    assert out.dtype == torch.get_default_dtype()
    assert torch.equal(out, torch_op(a, b).to(out.dtype))


def test_not_exact_on_booleans(dtype, device, bitwise_equal):
    a = torch.tensor([False, True], device=device)
    bitwise_equal(st.logical_not(a.to(dtype)), torch.logical_not(a).to(dtype))
    assert torch.equal(st.logical_not(a), torch.tensor([1.0, 0.0], device=device))


DIMS = [None, 0, 1, 2, -1, -2, -3]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions_exact_on_booleans_and_shapes(name, dim, keepdim, dtype, device):
    fn, torch_op = REDUCTIONS[name]
    g = torch.Generator().manual_seed(1)
    # dense for all(), sparse for any(): both outcomes occur along every dim
    b = (torch.rand(3, 4, 5, generator=g) < (0.85 if name == "all" else 0.15)).to(device)
    if dim is None:
        out = fn(b.to(dtype), dim=None, keepdim=keepdim)
        ref = torch_op(b)
        ref = ref.reshape([1] * b.dim()) if keepdim else ref
    else:
        out = fn(b.to(dtype), dim=dim, keepdim=keepdim)
        ref = torch_op(b, dim=dim, keepdim=keepdim)
    assert out.shape == ref.shape
    assert torch.equal(out, ref.to(dtype))
    assert ref.numel() == 1 or (bool(ref.any()) and not bool(ref.all()))


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2, -3, None])
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions_soft_values_along_dim(name, dim, device):
    fn, _ = REDUCTIONS[name]
    x = torch.rand(3, 4, 5, dtype=torch.float64, device=device)
    prod = x.prod() if dim is None else x.prod(dim)
    one_minus = (1 - x).prod() if dim is None else (1 - x).prod(dim)
    expected = prod if name == "all" else 1 - one_minus
    torch.testing.assert_close(fn(x, dim=dim), expected)


def test_reductions_without_dim_reduce_everything_like_torch(device):
    x = torch.rand(2, 3, dtype=torch.float64, device=device)
    torch.testing.assert_close(st.all(x), x.prod())
    torch.testing.assert_close(st.any(x), 1 - (1 - x).prod())
    assert st.all(x).shape == torch.all(x > 0.5).shape == ()


def test_hard_all_any_equal_torch_without_dim(device):
    """On hard booleans (e.g. hard-mode comparisons) st.all/st.any are torch.all/torch.any, dim omitted too."""
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        x = torch.rand(3, 4, generator=g, dtype=torch.float64).to(device)
        x[0] = 0.9  # one row all true: a dim=-1 default would not reduce it to the same answer
        hard = st.greater(x, 0.5 * torch.ones_like(x), mode="hard")
        assert st.all(hard).item() == torch.all(x > 0.5).item()
        assert st.any(hard).item() == torch.any(x > 0.5).item()
        assert torch.equal(st.all(hard, dim=-1).bool(), torch.all(x > 0.5, dim=-1))


def test_reductions_on_zero_dim_and_empty(device):
    x = torch.tensor(0.3, device=device)
    torch.testing.assert_close(st.all(x), x)
    torch.testing.assert_close(st.any(x), x)
    e = torch.zeros(2, 0, device=device)
    assert torch.equal(st.all(e, -1), torch.ones(2, device=device))  # empty product, like torch.all
    assert torch.equal(st.any(e, -1), torch.zeros(2, device=device))
    assert torch.equal(st.all(e), torch.ones((), device=device))


BROADCAST = [((3, 1), (1, 4)), ((5,), (3, 5)), ((), (2, 3)), ((2, 1, 4), (3, 1))]


@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_broadcasting_like_torch(name, shapes, device):
    fn, torch_op = BINARY[name]
    a = torch.rand(shapes[0], device=device) < 0.5
    b = torch.rand(shapes[1], device=device) < 0.5
    out = fn(a.float(), b.float())
    ref = torch_op(a, b)
    assert out.shape == ref.shape
    assert torch.equal(out, ref.float())


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------

X_POINTS = [0.12, 0.35, 0.51, 0.68, 0.83, 0.94]
Y_POINTS = [0.77, 0.21, 0.46, 0.09, 0.63, 0.38]

GRAD_CASES = {
    "logical_not": (lambda x, y: st.logical_not(x), 1),
    "logical_and": (lambda x, y: st.logical_and(x, y), 2),
    "logical_or": (lambda x, y: st.logical_or(x, y), 2),
    "logical_xor": (lambda x, y: st.logical_xor(x, y), 2),
    "logical_and_geo": (lambda x, y: st.logical_and(x, y, use_geometric_mean=True), 2),
    "logical_or_geo": (lambda x, y: st.logical_or(x, y, use_geometric_mean=True), 2),
    "logical_xor_geo": (lambda x, y: st.logical_xor(x, y, use_geometric_mean=True), 2),
    "all": (lambda x, y: st.all(x.reshape(2, 3), dim=-1), 1),
    "all_dim0_keepdim": (lambda x, y: st.all(x.reshape(2, 3), dim=0, keepdim=True), 1),
    "all_none": (lambda x, y: st.all(x, dim=None), 1),
    "any": (lambda x, y: st.any(x.reshape(2, 3), dim=1), 1),
    "all_geo": (lambda x, y: st.all(x.reshape(2, 3), use_geometric_mean=True), 1),
    "any_geo": (lambda x, y: st.any(x.reshape(3, 2), dim=-2, use_geometric_mean=True), 1),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradcheck_and_gradgradcheck(name, device):
    fn, arity = GRAD_CASES[name]
    x = torch.tensor(X_POINTS, dtype=torch.float64, device=device, requires_grad=True)
    y = torch.tensor(Y_POINTS, dtype=torch.float64, device=device, requires_grad=True)
    inputs = (x, y) if arity == 2 else (x,)
    f = (lambda a, b: fn(a, b)) if arity == 2 else (lambda a: fn(a, None))  # noqa: E731
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

_ONES = torch.ones(2)
CALLS = {
    "logical_not": lambda x: st.logical_not(x),
    "logical_and_x": lambda x: st.logical_and(x, _ONES),
    "logical_and_y": lambda x: st.logical_and(_ONES, x),
    "logical_or": lambda x: st.logical_or(x, _ONES),
    "logical_xor": lambda x: st.logical_xor(_ONES, x),
    "all": lambda x: st.all(x),
    "any": lambda x: st.any(x),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_complex_input_raises_type_error(name, raises_before_work):
    which = "y" if name.endswith("_y") or name == "logical_xor" else "x"
    raises_before_work(TypeError, rf"\b{which}\b.*complex", CALLS[name], torch.tensor([0.5j, 1 + 0j]))


@pytest.mark.parametrize("dim", [3, -4, 10])
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_dim_out_of_range_raises(name, dim, raises_before_work):
    fn, _ = REDUCTIONS[name]
    info = raises_before_work(ValueError, r"dim.*\[-3, 2\]", fn, torch.rand(2, 3, 4), dim=dim)
    assert str(dim) in str(info.value)


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_dim_bad_type_raises(name):
    fn, _ = REDUCTIONS[name]
    with pytest.raises(TypeError, match="dim"):
        fn(torch.rand(2, 3), dim=1.0)


@pytest.mark.parametrize("name", list(BINARY))
def test_shape_mismatch_raises_naming_arguments(name, raises_before_work):
    # SPEC 7: shape mismatches are errors that name the argument, raised before any work.
    fn, _ = BINARY[name]
    info = raises_before_work(ValueError, r"(?s)\bx\b.*\by\b|\by\b.*\bx\b", fn, torch.rand(3), torch.rand(4))
    assert "3" in str(info.value) and "4" in str(info.value)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

unit = hs.floats(0.0, 1.0, allow_nan=False, width=64)


@hs.composite
def unit_pairs(draw):
    n = draw(hs.integers(1, 12))
    return draw(hs.lists(unit, min_size=n, max_size=n)), draw(hs.lists(unit, min_size=n, max_size=n))


@pytest.mark.full
@given(xy=unit_pairs(), geo=hs.booleans(), dtype_=hs.sampled_from([torch.float32, torch.float64]))
def test_property_outputs_in_unit_interval(xy, geo, dtype_):
    x, y = (torch.tensor(v, dtype=dtype_) for v in xy)
    outs = [
        st.logical_not(x),
        st.logical_and(x, y, use_geometric_mean=geo),
        st.logical_or(x, y, use_geometric_mean=geo),
        st.logical_xor(x, y, use_geometric_mean=geo),
        st.all(x, use_geometric_mean=geo),
        st.any(x, use_geometric_mean=geo),
        st.all(torch.stack([x, y]), dim=0, use_geometric_mean=geo),
        st.any(torch.stack([x, y]), dim=0, use_geometric_mean=geo),
    ]
    for out in outs:
        assert ((out >= 0) & (out <= 1)).all(), out


@pytest.mark.full
@given(xy=unit_pairs())
def test_property_de_morgan_and_symmetry(xy):
    x, y = (torch.tensor(v, dtype=torch.float64) for v in xy)
    torch.testing.assert_close(
        st.logical_or(x, y), st.logical_not(st.logical_and(st.logical_not(x), st.logical_not(y)))
    )
    torch.testing.assert_close(st.logical_and(x, y), st.logical_and(y, x))
    torch.testing.assert_close(st.logical_or(x, y), st.logical_or(y, x))
    torch.testing.assert_close(st.logical_xor(x, y), st.logical_xor(y, x))
    torch.testing.assert_close(st.any(x), 1 - st.all(1 - x))
    # pairs agree with the reductions over a stacked axis
    torch.testing.assert_close(st.all(torch.stack([x, y]), dim=0), st.logical_and(x, y))
    torch.testing.assert_close(st.any(torch.stack([x, y]), dim=0), st.logical_or(x, y))


@pytest.mark.full
@given(xy=unit_pairs())
def test_property_monotone(xy):
    x, y = (torch.tensor(v, dtype=torch.float64) for v in xy)
    bigger = (x + 0.1).clamp(max=1.0)
    assert (st.logical_and(bigger, y) >= st.logical_and(x, y) - 1e-15).all()
    assert (st.logical_or(bigger, y) >= st.logical_or(x, y) - 1e-15).all()
    assert (st.all(bigger) >= st.all(x) - 1e-15).all()
