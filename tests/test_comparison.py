"""Tests for the comparison family: greater, greater_equal, less, less_equal, eq, not_equal, isclose."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from _registry import MODES, SOFT_MODES
from hypothesis import given
from hypothesis import strategies as hs

import softtorch as st

SHAPES = ((), (5,), (3, 4, 5))

SEED_X = [-0.2, -1.0, 0.3, 1.0]
SEED_Y = [0.2, -0.5, 0.5, -1.0]

#: name -> (softtorch function, torch op, straight-through twin)
OPS = {
    "greater": (st.greater, torch.greater, st.greater_st),
    "greater_equal": (st.greater_equal, torch.greater_equal, st.greater_equal_st),
    "less": (st.less, torch.less, st.less_st),
    "less_equal": (st.less_equal, torch.less_equal, st.less_equal_st),
    "eq": (st.eq, torch.eq, st.eq_st),
    "not_equal": (st.not_equal, torch.not_equal, st.not_equal_st),
    "isclose": (st.isclose, torch.isclose, st.isclose_st),
}
ALL_CALLABLES = {**{n: f for n, (f, _, _) in OPS.items()}, **{n + "_st": s for n, (_, _, s) in OPS.items()}}

SCALARS = [0.0, -0.0, 1.5, -1.5, 0.3, 1e-30, 1.0 + 1e-6, 1.0]


def pair_input(shape, dtype, device, seed=0):
    """``x`` and ``y`` with exact ties, signed zeros, near-ties (inside isclose's tolerance) and generic values."""
    g = torch.Generator().manual_seed(seed)
    n = math.prod(shape)
    x = (torch.round(torch.randn(n, generator=g, dtype=torch.float64) * 4) / 2).to(dtype)
    other = (torch.round(torch.randn(n, generator=g, dtype=torch.float64) * 4) / 2).to(dtype)
    noise = torch.randn(n, generator=g, dtype=torch.float64).to(dtype)
    kind = torch.arange(n) % 4
    y = torch.where(kind == 0, x, torch.where(kind == 1, other, torch.where(kind == 2, x * (1 + 3e-6), noise)))
    y = y.to(dtype)
    head_x = torch.tensor([-0.0, 0.0, 0.0, 2.0, -1.0], dtype=dtype)
    head_y = torch.tensor([0.0, -0.0, 0.0, 2.0, 1.0], dtype=dtype)
    k = min(n, 5)
    x[:k], y[:k] = head_x[:k], head_y[:k]
    return x.reshape(shape).to(device), y.reshape(shape).to(device)


def pair_inputs_for(shape, dtype, device):
    if shape == ():
        return [
            (torch.tensor(a, dtype=dtype, device=device), torch.tensor(b, dtype=dtype, device=device))
            for a, b in itertools.product(SCALARS, repeat=2)
        ]
    return [pair_input(shape, dtype, device)]


def ref_sigma(z, mode):
    if mode == "smooth":
        return 1.0 / (1.0 + torch.exp(-z))
    u = torch.clamp(z / 5, -1, 1)
    if mode == "c0":
        return 0.5 + 0.5 * u
    if mode == "c1":
        return -(u**3) / 4 + 3 * u / 4 + 0.5
    return 3 * u**5 / 16 - 5 * u**3 / 8 + 15 * u / 16 + 0.5


def ref_soft_abs(d, s, mode):
    return d * (2 * ref_sigma(d / s, mode) - 1)


# --------------------------------------------------------------------------------------------
# Feature values
# --------------------------------------------------------------------------------------------

SEED_FIGURES = [
    ("greater_hard", lambda x, y: st.greater(x, y, mode="hard"), [0.0, 0.0, 0.0, 1.0]),
    ("greater_soft", lambda x, y: st.greater(x, y), [0.0180, 0.0067, 0.1192, 1.0000]),
    ("greater_equal_hard", lambda x, y: st.greater_equal(x, y, mode="hard"), [0.0, 0.0, 0.0, 1.0]),
    ("greater_equal_soft", lambda x, y: st.greater_equal(x, y), [0.0180, 0.0067, 0.1192, 1.0000]),
    ("less_hard", lambda x, y: st.less(x, y, mode="hard"), [1.0, 1.0, 1.0, 0.0]),
    ("less_soft", lambda x, y: st.less(x, y), [0.9820, 0.9933, 0.8808, 0.0000]),
    ("less_equal_hard", lambda x, y: st.less_equal(x, y, mode="hard"), [1.0, 1.0, 1.0, 0.0]),
    ("less_equal_soft", lambda x, y: st.less_equal(x, y), [0.9820, 0.9933, 0.8808, 0.0000]),
    ("eq_hard", lambda x, y: st.eq(x, y, mode="hard"), [0.0, 0.0, 0.0, 0.0]),
    ("eq_soft", lambda x, y: st.eq(x, y), [0.0414, 0.0143, 0.3580, 0.0000]),
    ("not_equal_hard", lambda x, y: st.not_equal(x, y, mode="hard"), [1.0, 1.0, 1.0, 1.0]),
    ("not_equal_soft", lambda x, y: st.not_equal(x, y), [0.9586, 0.9857, 0.6420, 1.0000]),
    ("isclose_hard", lambda x, y: st.isclose(x, y, mode="hard"), [0.0, 0.0, 0.0, 0.0]),
    ("isclose_soft", lambda x, y: st.isclose(x, y), [0.0414, 0.0143, 0.3580, 0.0000]),
    ("greater_st", lambda x, y: st.greater_st(x, y), [0.0, 0.0, 0.0, 1.0]),
]


@pytest.mark.parametrize("name, call, expected", SEED_FIGURES, ids=[f[0] for f in SEED_FIGURES])
def test_seed_readme_figures(name, call, expected, device):
    x = torch.tensor(SEED_X, device=device)
    y = torch.tensor(SEED_Y, device=device)
    got = call(x, y)
    assert got.dtype == torch.float32 and got.shape == (4,)
    torch.testing.assert_close(got.cpu(), torch.tensor(expected), rtol=0, atol=5e-5)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("softness", [0.05, 0.3, 2.0])
def test_values_match_closed_forms(mode, softness, device):
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(64, generator=g, dtype=torch.float64) * 2).to(device)
    y = (torch.randn(64, generator=g, dtype=torch.float64) * 2).to(device)
    eps = 1e-10
    kw = {"softness": softness, "mode": mode}
    d = x - y
    gt = ref_sigma((d - eps) / softness, mode)
    ge = ref_sigma((d + eps) / softness, mode)
    torch.testing.assert_close(st.greater(x, y, **kw), gt)
    torch.testing.assert_close(st.greater_equal(x, y, **kw), ge)
    torch.testing.assert_close(st.less(x, y, **kw), 1 - ge)
    torch.testing.assert_close(st.less_equal(x, y, **kw), 1 - gt)
    eq = (2 * (1 - ref_sigma((ref_soft_abs(d, softness, mode) - eps) / softness, mode))).clamp(0, 1)
    torch.testing.assert_close(st.eq(x, y, **kw), eq)
    torch.testing.assert_close(st.not_equal(x, y, **kw), 1 - eq)
    for rtol, atol in [(1e-5, 1e-8), (0.1, 0.2), (0.0, 0.5)]:
        gap = ref_soft_abs(d, softness, mode) - atol - rtol * ref_soft_abs(y, softness, mode) - eps
        close = (2 * (1 - ref_sigma(gap / softness, mode))).clamp(0, 1)
        torch.testing.assert_close(st.isclose(x, y, rtol, atol, **kw), close)
        torch.testing.assert_close(st.isclose(x, y, rtol=rtol, atol=atol, **kw), close)
    # a custom epsilon moves the ties
    torch.testing.assert_close(st.greater(x, y, epsilon=0.05, **kw), ref_sigma((d - 0.05) / softness, mode))


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_exact_ties(mode, device):
    # float64 resolves the epsilon shift: strict < 1/2 < non-strict at a tie; eq is exactly 1.
    x = torch.tensor([-1.5, 0.0, 0.3, 2.0], dtype=torch.float64, device=device)
    assert (st.greater(x, x, mode=mode) < 0.5).all()
    assert (st.greater_equal(x, x, mode=mode) > 0.5).all()
    assert (st.less(x, x, mode=mode) < 0.5).all()
    assert (st.less_equal(x, x, mode=mode) > 0.5).all()
    assert torch.equal(st.eq(x, x, mode=mode), torch.ones_like(x))
    assert torch.equal(st.not_equal(x, x, mode=mode), torch.zeros_like(x))
    assert torch.equal(st.isclose(x, x, mode=mode), torch.ones_like(x))


# --------------------------------------------------------------------------------------------
# Hard mode equals torch bit for bit
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(OPS))
def test_hard_mode_equals_torch(name, shape, dtype, device, bitwise_equal):
    fn, torch_op, _ = OPS[name]
    for x, y in pair_inputs_for(shape, dtype, device):
        bitwise_equal(fn(x, y, mode="hard"), torch_op(x, y).to(dtype))


@pytest.mark.parametrize("rtol, atol", [(0.0, 0.0), (1e-3, 0.0), (0.0, 0.5), (0.1, 0.25)])
def test_hard_isclose_tolerances_equal_torch(rtol, atol, dtype, device, bitwise_equal):
    x, y = pair_input((3, 4, 5), dtype, device, seed=2)
    bitwise_equal(st.isclose(x, y, rtol, atol, mode="hard"), torch.isclose(x, y, rtol, atol).to(dtype))
    # exactly on the boundary |x - y| = atol
    a = torch.tensor([0.0, 0.5, 1.0, -0.25], dtype=dtype, device=device)
    b = a + 0.5
    bitwise_equal(st.isclose(a, b, rtol, atol, mode="hard"), torch.isclose(a, b, rtol, atol).to(dtype))


@pytest.mark.parametrize("name", list(OPS))
def test_hard_mode_infinities_follow_torch(name, device, bitwise_equal):
    inf = math.inf
    x = torch.tensor([inf, inf, -inf, inf, 1.0, -inf, 3e38], device=device)
    y = torch.tensor([inf, -inf, -inf, 1.0, inf, 0.0, -3e38], device=device)
    fn, torch_op, _ = OPS[name]
    bitwise_equal(fn(x, y, mode="hard"), torch_op(x, y).float())


@pytest.mark.parametrize("name", list(OPS))
def test_hard_mode_nan_follows_torch(name, device):
    nan = math.nan
    x = torch.tensor([nan, 1.0, nan, 0.5], device=device)
    y = torch.tensor([1.0, nan, nan, 0.5], device=device)
    fn, torch_op, _ = OPS[name]
    torch.testing.assert_close(fn(x, y, mode="hard"), torch_op(x, y).float(), rtol=0, atol=0, equal_nan=True)


BROADCAST = [((3, 1), (1, 4)), ((5,), (3, 5)), ((), (2, 3)), ((2, 1, 4), (3, 1)), ((4,), ())]


@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(OPS))
def test_broadcasting_like_torch(name, mode, shapes, device, bitwise_equal):
    fn, torch_op, _ = OPS[name]
    g = torch.Generator().manual_seed(7)
    x = (torch.round(torch.randn(shapes[0], generator=g) * 2) / 2).to(device)
    y = (torch.round(torch.randn(shapes[1], generator=g) * 2) / 2).to(device)
    out = fn(x, y, mode=mode)
    assert out.shape == torch.broadcast_shapes(x.shape, y.shape)
    if mode == "hard":
        bitwise_equal(out, torch_op(x, y).float())
    else:
        xb, yb = torch.broadcast_tensors(x, y)
        torch.testing.assert_close(out, fn(xb.contiguous(), yb.contiguous(), mode=mode))


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("int_dtype", [torch.int64, torch.bool])
def test_integer_and_bool_inputs_promote_to_default_float(name, int_dtype, device, bitwise_equal):
    fn, torch_op, _ = OPS[name]
    x = torch.tensor([-2, 0, 1, 1, 3], device=device).to(int_dtype)
    y = torch.tensor([0, 0, 1, 2, -1], device=device).to(int_dtype)
    for default in (torch.float32, torch.float64):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(default)
        try:
            bitwise_equal(fn(x, y, mode="hard"), torch_op(x, y).to(default))
            for mode in SOFT_MODES:
                out = fn(x, y, mode=mode)
                assert out.dtype == default
                assert torch.equal(out, fn(x.to(default), y.to(default), mode=mode))
        finally:
            torch.set_default_dtype(previous)


def test_mixed_float_dtypes_promote_like_torch(device):
    x = torch.tensor([0.1, 0.7], dtype=torch.float32, device=device)
    y = torch.tensor([0.3, 0.2], dtype=torch.float64, device=device)
    for name, (fn, _, _) in OPS.items():
        for mode in MODES:
            assert fn(x, y, mode=mode).dtype == torch.float64, (name, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(OPS))
def test_python_number_operand_like_torch(name, mode, dtype, device, bitwise_equal):
    """A Python number on either side is taken as a 0-d tensor of the other operand's dtype, as
    torch's binary ops do: the result is that of the equivalent full tensor, in that dtype."""
    fn, _, _ = OPS[name]
    x = torch.tensor(SEED_X, dtype=dtype, device=device)
    for number in (0.25, -1, 0.3):
        full = torch.full_like(x, number)
        bitwise_equal(fn(x, number, mode=mode), fn(x, full, mode=mode))
        bitwise_equal(fn(number, x, mode=mode), fn(full, x, mode=mode))
        assert fn(x, number, mode=mode).dtype == dtype
    # an integer tensor and a float number compare in the default float dtype, as torch does
    ints = torch.tensor([0, 1, 2], device=device)
    bitwise_equal(
        fn(ints, 1.5, mode=mode),
        fn(ints.to(torch.get_default_dtype()), torch.full((3,), 1.5, device=device), mode=mode),
    )


def test_python_number_operand_hand_checked(device):
    x = torch.tensor([-0.2, 0.3], device=device)
    # sigmoid((x - 0 - 1e-10) / 0.1): sigmoid(-2) and sigmoid(3)
    torch.testing.assert_close(st.greater(x, 0.0).cpu(), torch.tensor([0.119203, 0.952574]), rtol=0, atol=1e-6)
    torch.testing.assert_close(st.less(0.0, x).cpu(), 1 - torch.tensor([0.880797, 0.047426]), rtol=0, atol=1e-6)
    assert torch.equal(st.greater(x, 0.0, mode="hard").cpu(), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("name", list(OPS))
def test_two_numbers_or_a_non_number_are_refused(name, raises_before_work):
    fn = OPS[name][0]
    raises_before_work(TypeError, r"x must be a torch\.Tensor, got float 0\.5", fn, 0.5, 1.0)
    raises_before_work(TypeError, r"y must be a torch\.Tensor or a real number, got str 'a'", fn, torch.ones(2), "a")
    raises_before_work(TypeError, r"y must be a torch\.Tensor or a real number, got bool True", fn, torch.ones(2), True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(OPS))
def test_half_precision_keeps_dtype(name, mode, device):
    fn, _, _ = OPS[name]
    x = torch.tensor(SEED_X, device=device)
    y = torch.tensor(SEED_Y, device=device)
    for half in (torch.float16, torch.bfloat16):
        out = fn(x.to(half), y.to(half), mode=mode)
        assert out.dtype == half
        torch.testing.assert_close(
            out.float(), fn(x.to(half).float(), y.to(half).float(), mode=mode), rtol=0, atol=1e-2
        )


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------

Z_POINTS = [-7.3, -3.1, -0.9, 0.4, 2.2, 6.6]  # (x - y) / softness: away from 0 and from |z| = 5
Y_POINTS = [0.31, -0.72, 1.13, -0.18, 0.87, -1.41]  # |y| away from 5 softness (isclose's |y|_soft)


def grad_pair(softness, device):
    y = torch.tensor(Y_POINTS, dtype=torch.float64, device=device)
    x = y + torch.tensor(Z_POINTS, dtype=torch.float64, device=device) * softness
    return x.requires_grad_(True), y.requires_grad_(True)


@pytest.mark.parametrize("softness", [0.1, 1.0])
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(OPS) + ["isclose_loose"])
def test_gradcheck_and_gradgradcheck(name, mode, softness, device):
    if name == "isclose_loose":
        f = lambda a, b: st.isclose(a, b, rtol=0.05, atol=0.01, softness=softness, mode=mode)  # noqa: E731
    else:
        fn = OPS[name][0]
        f = lambda a, b: fn(a, b, softness=softness, mode=mode)  # noqa: E731
    x, y = grad_pair(softness, device)
    assert torch.autograd.gradcheck(f, (x, y))
    assert torch.autograd.gradgradcheck(f, (x, y))


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(OPS))
def test_gradcheck_through_tensor_softness(name, mode, device):
    fn = OPS[name][0]
    x, y = grad_pair(0.3, device)
    softness = torch.tensor([[0.3], [0.25]], dtype=torch.float64, device=device, requires_grad=True)
    f = lambda a, b, s: fn(a, b, softness=s, mode=mode)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, y, softness))
    assert torch.autograd.gradgradcheck(f, (x, y, softness))


@pytest.mark.parametrize("name", list(OPS))
def test_hard_mode_backward_gives_zero_gradients(name, device):
    fn = OPS[name][0]
    x = torch.tensor([-1.0, 0.0, 0.5, 2.0, 0.3], dtype=torch.float64, device=device, requires_grad=True)
    y = torch.tensor([0.0, 0.0, 0.5, -1.0, 0.3 + 1e-9], dtype=torch.float64, device=device, requires_grad=True)
    out = fn(x, y, mode="hard")
    assert out.requires_grad
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.equal(y.grad, torch.zeros_like(y))


# --------------------------------------------------------------------------------------------
# Straight-through
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(OPS))
def test_straight_through_forward_hard_backward_soft(name, mode, dtype, device, bitwise_equal, tol):
    fn, _, fn_st = OPS[name]
    bx = torch.tensor([-0.4, 0.1, 0.3, 0.0, 1.2, -0.7], dtype=dtype, device=device)
    by = torch.tensor([0.2, 0.1, 0.1, 0.05, -0.2, -0.9], dtype=dtype, device=device)
    x, y = bx.clone().requires_grad_(True), by.clone().requires_grad_(True)
    out = fn_st(x, y, softness=0.3, mode=mode)
    bitwise_equal(out.detach(), fn(bx, by, softness=0.3, mode="hard"))
    w = torch.linspace(-1, 2, 6, dtype=dtype, device=device)
    gx, gy = torch.autograd.grad(out, (x, y), w)
    x2, y2 = bx.clone().requires_grad_(True), by.clone().requires_grad_(True)
    rx, ry = torch.autograd.grad(fn(x2, y2, softness=0.3, mode=mode), (x2, y2), w)
    torch.testing.assert_close(gx, rx, **tol)
    torch.testing.assert_close(gy, ry, **tol)
    assert rx.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# Tensor softness
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(OPS))
def test_tensor_softness_broadcasts_elementwise(name, mode, device):
    fn = OPS[name][0]
    x, y = pair_input((3, 4), torch.float64, device, seed=4)
    x = x + 0.1 * torch.arange(12, dtype=torch.float64, device=device).reshape(3, 4) / 12
    softness = torch.tensor([[0.05], [0.3], [1.2]], dtype=torch.float64, device=device)
    out = fn(x, y, softness=softness, mode=mode)
    expected = torch.stack([fn(x[i], y[i], softness=float(softness[i, 0]), mode=mode) for i in range(3)])
    torch.testing.assert_close(out, expected)
    per_element = softness.expand(3, 4).contiguous()
    out2 = fn(x, y, softness=per_element, mode=mode)
    torch.testing.assert_close(out2, expected)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

BAD_SOFTNESS = [
    (0, ValueError, r"softness.*\b0\b"),
    (-1, ValueError, r"softness.*-1"),
    (float("nan"), ValueError, r"softness.*nan"),
    (float("inf"), ValueError, r"softness.*inf"),
    ("0.1", TypeError, r"softness.*0\.1"),
]


@pytest.mark.parametrize("softness, exc, match", BAD_SOFTNESS, ids=[repr(b[0]) for b in BAD_SOFTNESS])
@pytest.mark.parametrize("name", list(ALL_CALLABLES))
def test_bad_softness_raises_before_work(name, softness, exc, match, raises_before_work):
    x, y = torch.tensor([-0.2, 0.3]), torch.tensor([0.1, 0.3])
    raises_before_work(exc, match, ALL_CALLABLES[name], x, y, softness=softness)


@pytest.mark.parametrize("name", list(ALL_CALLABLES))
def test_unknown_mode_raises_listing_modes(name, raises_before_work):
    x, y = torch.tensor([-0.2, 0.3]), torch.tensor([0.1, 0.3])
    raises_before_work(
        ValueError, r"mode.*'hard', 'smooth', 'c0', 'c1', 'c2'.*'soft'", ALL_CALLABLES[name], x, y, mode="soft"
    )


@pytest.mark.parametrize("name", list(ALL_CALLABLES))
@pytest.mark.parametrize("which", ["x", "y"])
def test_complex_input_raises_type_error(name, which, raises_before_work):
    real, cplx = torch.tensor([0.1, 0.2]), torch.tensor([1j, 0.5 + 0j])
    args = (cplx, real) if which == "x" else (real, cplx)
    raises_before_work(TypeError, rf"\b{which}\b.*complex", ALL_CALLABLES[name], *args)


@pytest.mark.parametrize("arg, value", [("rtol", -1e-5), ("atol", -1.0), ("rtol", float("nan")), ("atol", "0.1")])
def test_isclose_bad_tolerance_raises(arg, value):
    x, y = torch.tensor([0.1]), torch.tensor([0.1])
    with pytest.raises((ValueError, TypeError), match=arg):
        st.isclose(x, y, **{arg: value})


@pytest.mark.parametrize("name", list(OPS))
def test_shape_mismatch_raises_naming_arguments(name, raises_before_work):
    # SPEC 7: shape mismatches are errors that name the argument, raised before any work.
    fn = OPS[name][0]
    info = raises_before_work(ValueError, r"(?s)\bx\b.*\by\b|\by\b.*\bx\b", fn, torch.zeros(3), torch.zeros(4))
    assert "3" in str(info.value) and "4" in str(info.value)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

finite = hs.floats(-20, 20, allow_nan=False, allow_infinity=False, width=64)
softnesses = hs.floats(1e-3, 10.0)


@hs.composite
def pairs(draw, min_size=1, max_size=16):
    n = draw(hs.integers(min_size, max_size))
    x = draw(hs.lists(finite, min_size=n, max_size=n))
    # ties on purpose: y repeats some of x
    y = [a if draw(hs.booleans()) else draw(finite) for a in x]
    return x, y


@pytest.mark.full
@given(
    xy=pairs(), softness=softnesses, mode=hs.sampled_from(MODES), dtype_=hs.sampled_from([torch.float32, torch.float64])
)
def test_property_outputs_are_soft_booleans(xy, softness, mode, dtype_):
    x, y = (torch.tensor(v, dtype=dtype_) for v in xy)
    for name, (fn, _, _) in OPS.items():
        out = fn(x, y, softness=softness, mode=mode)
        assert ((out >= 0) & (out <= 1)).all(), (name, out)


@pytest.mark.full
@given(
    xy=pairs(), softness=softnesses, mode=hs.sampled_from(MODES), dtype_=hs.sampled_from([torch.float32, torch.float64])
)
def test_property_complements(xy, softness, mode, dtype_):
    x, y = (torch.tensor(v, dtype=dtype_) for v in xy)
    kw = {"softness": softness, "mode": mode}
    assert torch.equal(st.less(x, y, **kw), 1 - st.greater_equal(x, y, **kw))
    assert torch.equal(st.less_equal(x, y, **kw), 1 - st.greater(x, y, **kw))
    assert torch.equal(st.not_equal(x, y, **kw), 1 - st.eq(x, y, **kw))
    # swapping the operands
    torch.testing.assert_close(st.greater(x, y, **kw), st.less(y, x, **kw), rtol=0, atol=1e-6)
    torch.testing.assert_close(st.eq(x, y, **kw), st.eq(y, x, **kw), rtol=0, atol=1e-6)


@pytest.mark.full
@given(xy=pairs(), softness=softnesses, mode=hs.sampled_from(SOFT_MODES))
def test_property_monotone_in_x(xy, softness, mode):
    x, y = (torch.tensor(v, dtype=torch.float64) for v in xy)
    kw = {"softness": softness, "mode": mode}
    assert (st.greater(x + 0.1, y, **kw) >= st.greater(x, y, **kw)).all()
    assert (st.less(x + 0.1, y, **kw) <= st.less(x, y, **kw)).all()


separated = hs.one_of(hs.floats(1e-2, 10, width=64), hs.floats(-10, -1e-2, width=64))


@pytest.mark.full
@given(
    y=hs.lists(finite, min_size=1, max_size=12),
    gaps=hs.lists(hs.one_of(separated, hs.just(0.0)), min_size=12, max_size=12),
    mode=hs.sampled_from(SOFT_MODES),
)
def test_property_soft_tends_to_hard(y, gaps, mode):
    y = torch.tensor(y, dtype=torch.float64)
    x = y + torch.tensor(gaps[: len(y)], dtype=torch.float64)
    tie = x == y
    kw = {"softness": 1e-4, "mode": mode}
    for name, (fn, torch_op, _) in OPS.items():
        out, hard = fn(x, y, **kw), torch_op(x, y).double()
        if name in ("eq", "not_equal", "isclose"):  # exact at ties, and away from them
            torch.testing.assert_close(out, hard, rtol=0, atol=1e-6)
        else:  # strict vs non-strict is decided by epsilon at a tie: 1/2 there
            torch.testing.assert_close(out[~tie], hard[~tie], rtol=0, atol=1e-6)
