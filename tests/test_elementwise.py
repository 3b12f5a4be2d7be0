"""Tests for the elementwise family: sigmoidal, softrelu, heaviside, sign, abs, relu, clamp, round."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from _registry import MODES, SOFT_MODES
from hypothesis import given
from hypothesis import strategies as hs

import softtorch as st

SHAPES = ((), (5,), (3, 4, 5))

# The seed README's inputs.
SEED_X = [-0.2, -1.0, 0.3, 1.0]

#: Values that exercise ties: signed zeros, half-integers (round-half-to-even), integers, tiny and large.
SPECIALS = [0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1.0, -1.0, 3.0, 1e-30, -1e-30, 7.25, -1e4 - 0.5]


def _torch_heaviside(x):
    return torch.heaviside(x, torch.tensor(0.5, dtype=x.dtype, device=x.device))


#: name -> (softtorch function, the torch op its hard mode must reproduce)
UNARY = {
    "heaviside": (st.heaviside, _torch_heaviside),
    "sign": (st.sign, torch.sign),
    "abs": (st.abs, torch.abs),
    "relu": (st.relu, torch.relu),
    "round": (st.round, torch.round),
}
STEP_FUNCTIONS = ("heaviside", "sign", "round")

#: Every elementwise callable taking a softness, called on a float tensor ``x``.
WITH_SOFTNESS = {
    "sigmoidal": lambda x, **kw: st.sigmoidal(x, **kw),
    "softrelu": lambda x, **kw: st.softrelu(x, **kw),
    "heaviside": lambda x, **kw: st.heaviside(x, **kw),
    "sign": lambda x, **kw: st.sign(x, **kw),
    "abs": lambda x, **kw: st.abs(x, **kw),
    "relu": lambda x, **kw: st.relu(x, **kw),
    "clamp": lambda x, **kw: st.clamp(x, -0.5, 0.5, **kw),
    "round": lambda x, **kw: st.round(x, **kw),
    "heaviside_st": lambda x, **kw: st.heaviside_st(x, **kw),
    "sign_st": lambda x, **kw: st.sign_st(x, **kw),
    "abs_st": lambda x, **kw: st.abs_st(x, **kw),
    "relu_st": lambda x, **kw: st.relu_st(x, **kw),
    "clamp_st": lambda x, **kw: st.clamp_st(x, -0.5, 0.5, **kw),
    "round_st": lambda x, **kw: st.round_st(x, **kw),
}


def parity_input(shape, dtype, device, seed=0):
    """Random values mixed with half-integers, integers and signed zeros (ties for every step)."""
    g = torch.Generator().manual_seed(seed)
    n = math.prod(shape)
    noise = torch.randn(n, generator=g, dtype=torch.float64) * 3
    halves = torch.round(torch.randn(n, generator=g, dtype=torch.float64) * 4) / 2
    flat = torch.where(torch.arange(n) % 2 == 0, halves, noise).to(dtype)
    k = min(n, len(SPECIALS))
    flat[:k] = torch.tensor(SPECIALS[:k], dtype=dtype)
    return flat.reshape(shape).to(device)


def scalar_inputs(dtype, device):
    return [torch.tensor(v, dtype=dtype, device=device) for v in SPECIALS + [0.3, -0.7]]


def inputs_for(shape, dtype, device):
    return scalar_inputs(dtype, device) if shape == () else [parity_input(shape, dtype, device)]


# --------------------------------------------------------------------------------------------
# Closed forms, written from the specification (independent of the library's kernels)
# --------------------------------------------------------------------------------------------


def ref_sigma(z, mode):
    if mode == "smooth":
        return 1.0 / (1.0 + torch.exp(-z))
    u = torch.clamp(z / 5, -1, 1)
    if mode == "c0":
        return 0.5 + 0.5 * u
    if mode == "c1":
        return -(u**3) / 4 + 3 * u / 4 + 0.5
    return 3 * u**5 / 16 - 5 * u**3 / 8 + 15 * u / 16 + 0.5


def ref_relu(x, s, mode):
    z = x / s
    if mode == "smooth":
        return s * torch.logaddexp(torch.zeros_like(z), z)
    u = torch.clamp(z / 5, -1, 1)
    if mode == "c0":
        inner = (u + 1) ** 2 / 4
    elif mode == "c1":
        inner = -(u**4) / 16 + 3 * u**2 / 8 + u / 2 + 3 / 16
    else:
        inner = u**6 / 32 - 5 * u**4 / 32 + 15 * u**2 / 32 + u / 2 + 5 / 32
    return torch.where(z >= 5, x, 5 * s * inner)


def ref_round(x, s, mode, radius=5):
    c = torch.floor(x)
    out = torch.zeros_like(x)
    for k in range(-radius, radius + 1):
        m = c + k
        out = out + m * (ref_sigma((x - m + 0.5) / s, mode) - ref_sigma((x - m - 0.5) / s, mode))
    return out


# --------------------------------------------------------------------------------------------
# Feature values: the seed README figures and the closed forms
# --------------------------------------------------------------------------------------------

SEED_FIGURES = [
    ("abs_hard", lambda x: st.abs(x, mode="hard"), [0.2, 1.0, 0.3, 1.0]),
    ("abs_soft", lambda x: st.abs(x), [0.1523, 0.9999, 0.2715, 0.9999]),
    ("clamp_hard", lambda x: st.clamp(x, -0.5, 0.5, mode="hard"), [-0.2, -0.5, 0.3, 0.5]),
    ("clamp_soft", lambda x: st.clamp(x, -0.5, 0.5), [-0.1952, -0.4993, 0.2873, 0.4993]),
    ("heaviside_hard", lambda x: st.heaviside(x, mode="hard"), [0.0, 0.0, 1.0, 1.0]),
    ("heaviside_soft", lambda x: st.heaviside(x), [0.1192, 0.0000, 0.9526, 1.0000]),
    ("relu_hard", lambda x: st.relu(x, mode="hard"), [0.0, 0.0, 0.3, 1.0]),
    ("relu_soft", lambda x: st.relu(x), [0.0127, 0.0000, 0.3049, 1.0000]),
    ("round_hard", lambda x: st.round(x, mode="hard"), [-0.0, -1.0, 0.0, 1.0]),
    ("round_soft", lambda x: st.round(x), [-0.0465, -1.0000, 0.1189, 1.0000]),
    ("sign_hard", lambda x: st.sign(x, mode="hard"), [-1.0, -1.0, 1.0, 1.0]),
    ("sign_soft", lambda x: st.sign(x), [-0.7616, -0.9999, 0.9051, 0.9999]),
    ("relu_st", lambda x: st.relu_st(x), [0.0, 0.0, 0.3, 1.0]),
]


@pytest.mark.parametrize("name, call, expected", SEED_FIGURES, ids=[f[0] for f in SEED_FIGURES])
def test_seed_readme_figures(name, call, expected, device):
    x = torch.tensor(SEED_X, device=device)
    got = call(x)
    assert got.dtype == torch.float32 and got.shape == (4,)
    # "the same numbers to 4 decimals": each value rounds to the printed figure.
    torch.testing.assert_close(got.cpu(), torch.tensor(expected), rtol=0, atol=5e-5)


def test_seed_round_hard_keeps_negative_zero(device):
    # The README prints `tensor([-0., -1., 0., 1.])`, as torch.round does.
    out = st.round(torch.tensor(SEED_X, device=device), mode="hard")
    assert torch.signbit(out).tolist() == [True, True, False, False]


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("softness", [0.05, 0.3, 2.0])
def test_sigmoidal_heaviside_sign_abs_match_closed_form(mode, softness, device):
    x = torch.linspace(-3, 3, 241, dtype=torch.float64, device=device)
    sigma = ref_sigma(x / softness, mode)
    torch.testing.assert_close(st.sigmoidal(x, softness=softness, mode=mode), sigma)
    torch.testing.assert_close(st.heaviside(x, softness=softness, mode=mode), sigma)
    torch.testing.assert_close(st.sign(x, softness=softness, mode=mode), 2 * sigma - 1)
    torch.testing.assert_close(st.abs(x, softness=softness, mode=mode), x * (2 * sigma - 1))


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("softness", [0.05, 0.3, 2.0])
def test_relu_and_clamp_match_closed_form(mode, softness, device):
    x = torch.linspace(-3, 3, 241, dtype=torch.float64, device=device)
    relu = ref_relu(x, softness, mode)
    torch.testing.assert_close(st.relu(x, softness=softness, mode=mode), relu)
    torch.testing.assert_close(st.softrelu(x, softness=softness, mode=mode), relu)
    gated = x * ref_sigma(x / softness, mode)
    torch.testing.assert_close(st.relu(x, softness=softness, mode=mode, gated=True), gated)
    clamp = -0.5 + ref_relu(x + 0.5, softness, mode) - ref_relu(x - 0.5, softness, mode)
    torch.testing.assert_close(st.clamp(x, -0.5, 0.5, softness=softness, mode=mode), clamp)
    torch.testing.assert_close(
        st.clamp(x, min=-0.5, softness=softness, mode=mode), -0.5 + ref_relu(x + 0.5, softness, mode)
    )
    torch.testing.assert_close(
        st.clamp(x, max=0.5, softness=softness, mode=mode), x - ref_relu(x - 0.5, softness, mode)
    )
    clamp_gated = (
        -0.5 + (x + 0.5) * ref_sigma((x + 0.5) / softness, mode) - (x - 0.5) * ref_sigma((x - 0.5) / softness, mode)
    )
    torch.testing.assert_close(st.clamp(x, -0.5, 0.5, softness=softness, mode=mode, gated=True), clamp_gated)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("softness, radius", [(0.1, 5), (0.4, 5), (1.0, 5), (0.3, 1), (0.3, 2)])
def test_round_matches_closed_form(mode, softness, radius, device):
    x = torch.linspace(-3.9, 3.9, 157, dtype=torch.float64, device=device)
    torch.testing.assert_close(
        st.round(x, softness=softness, mode=mode, neighbor_radius=radius), ref_round(x, softness, mode, radius)
    )


def test_hand_checked_values(device):
    # c1 at z = -2, 0, 3 (u = -0.4, 0, 0.6): 0.5 + u (3/4 - u^2/4)
    x = torch.tensor([-0.2, 0.0, 0.3], dtype=torch.float64, device=device)
    torch.testing.assert_close(
        st.heaviside(x, mode="c1"), torch.tensor([0.216, 0.5, 0.896], dtype=torch.float64, device=device)
    )
    # c0 relu: 5 s (u + 1)^2 / 4 with s = 0.1: u = -0.4 -> 0.045, u = 0 -> 0.125, u = 0.6 -> 0.32
    torch.testing.assert_close(
        st.relu(x, mode="c0"), torch.tensor([0.045, 0.125, 0.32], dtype=torch.float64, device=device)
    )
    # every mode is 1/2 at 0 and odd-symmetric around it
    for mode in SOFT_MODES:
        assert st.heaviside(torch.tensor(0.0), mode=mode).item() == 0.5
        assert st.sign(torch.tensor(0.0), mode=mode).item() == 0.0
    # smooth relu at 0 is softness * log 2; round of an integer is that integer in smooth mode at small softness
    torch.testing.assert_close(
        st.relu(torch.tensor(0.0, dtype=torch.float64), softness=0.3),
        torch.tensor(0.3 * math.log(2), dtype=torch.float64),
    )
    torch.testing.assert_close(
        st.round(torch.tensor([-2.0, 3.0], dtype=torch.float64), softness=0.01),
        torch.tensor([-2.0, 3.0], dtype=torch.float64),
    )


@pytest.mark.parametrize("mode", ("c0", "c1", "c2"))
@pytest.mark.parametrize("dtype_", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_polynomial_modes_are_exactly_hard_outside_window(mode, dtype_, device, bitwise_equal):
    softness = 0.1
    x = torch.cat([torch.linspace(-4, -0.5, 701), torch.linspace(0.5, 4, 701)]).to(dtype_).to(device)
    for name, (fn, hard) in UNARY.items():
        if name == "round":
            continue
        out = fn(x, softness=softness, mode=mode)
        if name == "abs":  # |x| (2 sigma - 1) with sigma exactly 0 or 1
            bitwise_equal(out.abs(), hard(x))
        elif name == "relu":
            bitwise_equal(out.abs(), hard(x).abs())  # exactly 0 below the window and x above it
        else:
            bitwise_equal(out, hard(x))
    bitwise_equal(st.relu(x, softness=softness, mode=mode, gated=True).abs(), torch.relu(x).abs())


# --------------------------------------------------------------------------------------------
# Hard mode equals torch bit for bit
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_hard_mode_equals_torch(name, shape, dtype, device, bitwise_equal):
    fn, torch_op = UNARY[name]
    for x in inputs_for(shape, dtype, device):
        bitwise_equal(fn(x, mode="hard"), torch_op(x))


CLAMP_BOUNDS = {
    "floats": (-0.5, 1.5),
    "min_only": (-0.5, None),
    "max_only": (None, 1.5),
    "int_bounds": (-1, 2),
    "crossed": (1.0, -1.0),  # torch gives max everywhere when min > max
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("bounds", list(CLAMP_BOUNDS))
def test_hard_clamp_equals_torch(bounds, shape, dtype, device, bitwise_equal):
    lo, hi = CLAMP_BOUNDS[bounds]
    for x in inputs_for(shape, dtype, device):
        bitwise_equal(st.clamp(x, lo, hi, mode="hard"), torch.clamp(x, lo, hi))


@pytest.mark.parametrize("mode", MODES)
def test_clamp_takes_the_0_1_1_bound_names(mode, device, bitwise_equal):
    """``a``/``b`` (softtorch 0.1.1's names) are ``min``/``max``; hand-checked in smooth mode."""
    x = torch.tensor(SEED_X, device=device)
    ref = st.clamp(x, -0.5, 0.5, mode=mode)
    bitwise_equal(st.clamp(x, a=-0.5, b=0.5, mode=mode), ref)
    bitwise_equal(st.clamp(x, -0.5, b=0.5, mode=mode), ref)
    bitwise_equal(st.clamp(x, a=-0.5, mode=mode), st.clamp(x, min=-0.5, mode=mode))
    bitwise_equal(st.clamp_st(x, a=-0.5, b=0.5, mode=mode), st.clamp_st(x, -0.5, 0.5, mode=mode))
    if mode == "smooth":
        expected = torch.tensor([-0.1952, -0.4993, 0.2873, 0.4993])
        torch.testing.assert_close(st.clamp(x, a=-0.5, b=0.5).cpu(), expected, rtol=0, atol=1e-4)
    assert "a" not in inspect.signature(st.nn.SoftClamp).parameters


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("which", ["both", "min_only", "max_only", "broadcast"])
def test_hard_clamp_tensor_bounds_equals_torch(which, shape, dtype, device, bitwise_equal):
    for i, x in enumerate(inputs_for(shape, dtype, device)):
        g = torch.Generator().manual_seed(i)
        lo = (torch.round(torch.randn(shape, generator=g) * 2) / 2 - 1).to(dtype).to(device)  # ties with x
        hi = lo + torch.rand(shape, generator=g).to(dtype).to(device)
        if which == "broadcast":  # bounds of lower rank / size-1 dims
            lo, hi = (lo[0, :, :1], hi[:1, :1, :]) if shape == (3, 4, 5) else (lo.reshape(-1)[:1], hi.reshape(-1)[0])
        if which == "min_only":
            hi = None
        if which == "max_only":
            lo = None
        bitwise_equal(st.clamp(x, lo, hi, mode="hard"), torch.clamp(x, lo, hi))


@pytest.mark.parametrize("name", list(UNARY) + ["clamp"])
@pytest.mark.parametrize("int_dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_and_bool_inputs_promote_to_default_float(name, int_dtype, device, bitwise_equal):
    x = torch.tensor([-3, -1, 0, 1, 2, 7], device=device).to(int_dtype)
    fn, torch_op = UNARY.get(name, (None, None))
    if name == "clamp":
        fn, torch_op = (lambda v, **kw: st.clamp(v, -1.5, 1.5, **kw)), (lambda v: torch.clamp(v, -1.5, 1.5))
    for default in (torch.float32, torch.float64):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(default)
        try:
            promoted = x.to(default)
            bitwise_equal(fn(x, mode="hard"), torch_op(promoted))
            for mode in SOFT_MODES:
                soft = fn(x, mode=mode)
                assert soft.dtype == default
                torch.testing.assert_close(soft, fn(promoted, mode=mode), rtol=0, atol=0)
        finally:
            torch.set_default_dtype(previous)


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_keeps_dtype(name, mode, half, device):
    fn, _ = UNARY[name]
    x = torch.tensor(SEED_X, device=device)
    out = fn(x.to(half), mode=mode)
    assert out.dtype == half
    torch.testing.assert_close(out, fn(x, mode=mode).to(half), **({"rtol": 1e-2, "atol": 1e-2}))


@pytest.mark.parametrize("name", list(UNARY))
def test_hard_mode_ties_and_extremes_follow_torch(name, device, bitwise_equal):
    # +-inf, huge and subnormal values: hard mode is the torch op itself.
    x = torch.tensor([float("inf"), -float("inf"), 3e38, -3e38, 1e-45, -1e-45, 0.5, -0.5], device=device)
    fn, torch_op = UNARY[name]
    bitwise_equal(fn(x, mode="hard"), torch_op(x))


@pytest.mark.parametrize("name", list(UNARY))
def test_hard_mode_nan_follows_torch(name, device):
    # torch.heaviside(nan) and torch.sign(nan) are 0; abs, relu and round keep the NaN.
    x = torch.tensor([float("nan"), 1.0, -0.0], device=device)
    fn, torch_op = UNARY[name]
    torch.testing.assert_close(fn(x, mode="hard"), torch_op(x), rtol=0, atol=0, equal_nan=True)


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------

#: z = x / softness, all away from 0 (where some soft kernels are only continuous when
#: combined with a hard op) and from the window edges |z| = 5.
Z_POINTS = [-7.3, -3.1, -0.9, 0.4, 2.2, 6.6]
#: For round: away from integers and half-integers (the staircase's window edges).
ROUND_POINTS = [-1.23, -0.31, 0.27, 0.81, 1.66, 2.38]
#: For clamp(-0.5, 0.5): x -+ 0.5 away from 0 and from +-0.5 and +-5.
CLAMP_POINTS = [-0.93, -0.41, -0.12, 0.23, 0.64, 1.37]

GRAD_CASES = {
    "sigmoidal": (lambda x, **kw: st.sigmoidal(x, **kw), None),
    "softrelu_gated": (lambda x, **kw: st.softrelu(x, gated=True, **kw), None),
    "heaviside": (lambda x, **kw: st.heaviside(x, **kw), None),
    "sign": (lambda x, **kw: st.sign(x, **kw), None),
    "abs": (lambda x, **kw: st.abs(x, **kw), None),
    "relu": (lambda x, **kw: st.relu(x, **kw), None),
    "relu_gated": (lambda x, **kw: st.relu(x, gated=True, **kw), None),
    "clamp": (lambda x, **kw: st.clamp(x, -0.5, 0.5, **kw), CLAMP_POINTS),
    "clamp_gated": (lambda x, **kw: st.clamp(x, -0.5, 0.5, gated=True, **kw), CLAMP_POINTS),
    "clamp_min_only": (lambda x, **kw: st.clamp(x, min=-0.5, **kw), CLAMP_POINTS),
    "round": (lambda x, **kw: st.round(x, **kw), ROUND_POINTS),
    "round_radius2": (lambda x, **kw: st.round(x, neighbor_radius=2, **kw), ROUND_POINTS),
}


def grad_input(points, softness, device):
    values = [z * softness for z in Z_POINTS] if points is None else points
    return torch.tensor(values, dtype=torch.float64, device=device, requires_grad=True)


@pytest.mark.parametrize("softness", [0.1, 1.0])
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradcheck_and_gradgradcheck(name, mode, softness, device):
    fn, points = GRAD_CASES[name]
    x = grad_input(points, softness, device)
    f = lambda v: fn(v, softness=softness, mode=mode)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_second_derivative_by_double_backward(name, mode, device):
    """``grad(grad(f(x).sum(), x, create_graph=True)[0].sum(), x)`` runs in every mode (the c0
    kernel's first derivative is piecewise constant, yet it must keep a graph, as torch.relu's
    does) and equals the central difference of the first derivative."""
    fn, points = GRAD_CASES[name]
    x = grad_input(points, 0.3, device)

    def first(v):
        v = v.detach().requires_grad_(True)
        return torch.autograd.grad(fn(v, softness=0.3, mode=mode).sum(), v)[0]

    (g,) = torch.autograd.grad(fn(x, softness=0.3, mode=mode).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    step = 1e-6
    expected = (first(x + step) - first(x - step)) / (2 * step)
    torch.testing.assert_close(h, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_gradcheck_through_tensor_clamp_bounds(mode, device):
    x = grad_input(CLAMP_POINTS, 0.1, device)
    lo = torch.full((6,), -0.5, dtype=torch.float64, device=device, requires_grad=True)
    hi = torch.tensor(0.5, dtype=torch.float64, device=device, requires_grad=True)
    f = lambda a, b, c: st.clamp(a, b, c, softness=0.1, mode=mode)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, lo, hi))
    assert torch.autograd.gradgradcheck(f, (x, lo, hi))


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", ["heaviside", "sign", "abs", "relu", "clamp", "round"])
def test_gradcheck_through_tensor_softness(name, mode, device):
    fn, points = GRAD_CASES[name]
    softness = torch.tensor([0.3, 0.2, 0.25, 0.4, 0.3, 0.35], dtype=torch.float64, device=device, requires_grad=True)
    values = [z * 0.3 for z in Z_POINTS] if points is None else points
    x = torch.tensor(values, dtype=torch.float64, device=device, requires_grad=True)
    f = lambda v, s: fn(v, softness=s, mode=mode)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, softness))
    assert torch.autograd.gradgradcheck(f, (x, softness))
    # a requires_grad softness is learnable: the gradient reaches it
    f(x, softness).sum().backward()
    assert softness.grad is not None and torch.isfinite(softness.grad).all() and softness.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(UNARY) + ["clamp"])
def test_hard_mode_backward_never_raises(name, device):
    values = [-1.7, -0.5, -0.2, 0.0, 0.3, 0.5, 1.2, 2.5]
    x = torch.tensor(values, dtype=torch.float64, device=device, requires_grad=True)
    if name == "clamp":
        out = st.clamp(x, -0.5, 0.5, mode="hard")
    else:
        out = UNARY[name][0](x, mode="hard")
    assert out.requires_grad
    out.sum().backward()
    if name in STEP_FUNCTIONS:
        # zero, not missing: torch.heaviside itself has no derivative at all
        assert torch.equal(x.grad, torch.zeros_like(x))
        return
    # relu, abs and clamp: torch's own gradient (including its choice at the kinks)
    torch_op = {"clamp": lambda v: torch.clamp(v, -0.5, 0.5), "relu": torch.relu, "abs": torch.abs}[name]
    reference = x.detach().clone().requires_grad_(True)
    torch_op(reference).sum().backward()
    assert torch.equal(x.grad, reference.grad)
    expected = {
        "relu": [0, 0, 0, 0, 1, 1, 1, 1],
        "abs": [-1, -1, -1, 0, 1, 1, 1, 1],
        "clamp": [0, 1, 1, 1, 1, 1, 0, 0],
    }[name]
    kink_free = [i for i, v in enumerate(values) if v not in ((0.0,) if name != "clamp" else (-0.5, 0.5))]
    assert x.grad[kink_free].tolist() == [float(expected[i]) for i in kink_free]


# --------------------------------------------------------------------------------------------
# Straight-through
# --------------------------------------------------------------------------------------------

ST_PAIRS = {
    "heaviside": (st.heaviside, st.heaviside_st, ()),
    "sign": (st.sign, st.sign_st, ()),
    "abs": (st.abs, st.abs_st, ()),
    "relu": (st.relu, st.relu_st, ()),
    "clamp": (st.clamp, st.clamp_st, (-0.5, 0.5)),
    "round": (st.round, st.round_st, ()),
}


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(ST_PAIRS))
def test_straight_through_forward_hard_backward_soft(name, mode, dtype, device, bitwise_equal, tol):
    fn, fn_st, extra = ST_PAIRS[name]
    base = torch.tensor([-1.3, -0.45, -0.2, 0.05, 0.3, 0.7, 1.6, 2.45], dtype=dtype, device=device)
    kwargs = {"softness": 0.3, "mode": mode}
    x = base.clone().requires_grad_(True)
    out = fn_st(x, *extra, **kwargs)
    bitwise_equal(out.detach(), fn(base, *extra, mode="hard", softness=0.3))
    weights = torch.linspace(-1, 2, 8, dtype=dtype, device=device)
    (grad_st,) = torch.autograd.grad(out, x, weights)
    x2 = base.clone().requires_grad_(True)
    (grad_soft,) = torch.autograd.grad(fn(x2, *extra, **kwargs), x2, weights)
    torch.testing.assert_close(grad_st, grad_soft, **tol)
    assert grad_soft.abs().sum() > 0


def test_st_combinator_wraps_any_function(device, bitwise_equal):
    relu_st = st.st(st.relu)
    assert relu_st.__name__ == "relu_st"
    x = torch.tensor([-0.2, 0.3], device=device, requires_grad=True)
    y = relu_st(x, softness=0.1, mode="smooth")
    bitwise_equal(y.detach(), torch.relu(x.detach()))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.sigmoid(x.detach() / 0.1))

    def pair(v, *, softness=0.1, mode="smooth"):
        return torch.return_types.sort(
            (st.relu(v, softness=softness, mode=mode), st.sign(v, softness=softness, mode=mode))
        )

    pair_st = st.st(pair)
    x2 = torch.tensor([-0.2, 0.3], device=device, requires_grad=True)
    out = pair_st(x2, mode="c1")
    assert isinstance(out, torch.return_types.sort)
    bitwise_equal(out.values.detach(), torch.relu(x2.detach()))
    bitwise_equal(out.indices.detach(), torch.sign(x2.detach()))
    (out.values + out.indices).sum().backward()
    ref = x2.detach().clone().requires_grad_(True)
    (st.relu(ref, mode="c1") + st.sign(ref, mode="c1")).sum().backward()
    torch.testing.assert_close(x2.grad, ref.grad)


def test_st_follows_the_wrapped_functions_mode(device, bitwise_equal):
    """The twin's ``mode`` defaults to the wrapped function's default, and can be passed where
    the wrapped function takes it positionally (not twice)."""
    calls = []

    def soft_relu_c1(v, softness=0.1, mode="c1"):
        calls.append(mode)
        return st.relu(v, softness=softness, mode=mode)

    twin = st.st(soft_relu_c1)
    x = torch.tensor([-0.2, 0.3], device=device, requires_grad=True)
    y = twin(x, 0.5)
    assert calls == ["hard", "c1"]
    bitwise_equal(y.detach(), torch.relu(x.detach()))
    y.sum().backward()
    ref = x.detach().clone().requires_grad_(True)
    st.relu(ref, softness=0.5, mode="c1").sum().backward()
    torch.testing.assert_close(x.grad, ref.grad)
    # the gradient of the soft c1 relu at softness 0.5 (the doc example of softtorch.st)
    torch.testing.assert_close(x.grad.cpu(), torch.tensor([0.4401, 0.5896]), rtol=0, atol=1e-4)

    calls.clear()
    x.grad = None
    twin(x, 0.5, "smooth").sum().backward()
    assert calls == ["hard", "smooth"]
    torch.testing.assert_close(x.grad.cpu(), torch.sigmoid(torch.tensor([-0.4, 0.6])), rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="multiple values for argument 'mode'"):
        twin(x, 0.5, "smooth", mode="c0")
    with pytest.raises(ValueError, match="mode must be one of"):
        twin(x, 0.5, "soft")
    assert inspect.signature(twin).parameters["mode"].default == "c1"


def test_grad_replace_forward_value_backward_gradient(device, bitwise_equal):
    """``grad_replace``: the ``forward=True`` result, the gradient of ``forward=False``, for every
    tensor of the output (here a tuple, a list and a dict)."""

    def step(v, scale=1.0, forward=True):
        out = (v > 0).to(v.dtype) if forward else torch.sigmoid(scale * v)
        return out, [2 * out], {"same": out}

    replaced = st.grad_replace(step)
    x = torch.tensor([-1.0, 2.0], device=device, requires_grad=True)
    y, (y2,), d = replaced(x, scale=2.0)
    bitwise_equal(y.detach(), torch.tensor([0.0, 1.0], device=device))
    bitwise_equal(y2.detach(), torch.tensor([0.0, 2.0], device=device))
    y.sum().backward()
    s = torch.sigmoid(2.0 * x.detach())
    torch.testing.assert_close(x.grad, 2.0 * s * (1 - s))
    assert replaced.__name__ == "step" and d["same"].requires_grad


def test_st_in_hard_mode_is_hard(device):
    x = torch.tensor([-0.2, 0.3], device=device, requires_grad=True)
    out = st.heaviside_st(x, mode="hard")
    assert torch.equal(out.detach(), torch.tensor([0.0, 1.0], device=device))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# --------------------------------------------------------------------------------------------
# Shapes and tensor softness
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (0,), (1,), (2, 0, 3), (3, 4, 5)], ids=str)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(UNARY) + ["clamp"])
def test_output_shape_and_dtype(name, mode, shape, dtype, device):
    x = torch.randn(shape, dtype=dtype, device=device)
    out = st.clamp(x, -0.5, 0.5, mode=mode) if name == "clamp" else UNARY[name][0](x, mode=mode)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(UNARY) + ["clamp"])
@pytest.mark.parametrize("softness_shape", [(4,), (3, 1), (3, 4), (1, 1)], ids=str)
def test_tensor_softness_broadcasts_elementwise(name, mode, softness_shape, device):
    x = parity_input((3, 4), torch.float64, device, seed=3) * 0.4
    values = torch.tensor([0.05, 0.1, 0.3, 0.7, 1.1, 0.2, 0.4, 0.9, 0.15, 0.6, 0.25, 0.8], dtype=torch.float64)
    softness = values[: math.prod(softness_shape)].reshape(softness_shape).to(device)
    fn = (lambda v, **kw: st.clamp(v, -0.5, 0.5, **kw)) if name == "clamp" else UNARY[name][0]
    out = fn(x, softness=softness, mode=mode)
    assert out.shape == x.shape
    full = softness.expand(3, 4)
    expected = torch.stack(
        [torch.stack([fn(x[i, j], softness=float(full[i, j]), mode=mode) for j in range(4)]) for i in range(3)]
    )
    torch.testing.assert_close(out, expected)


def test_clamp_tensor_bounds_broadcast(device):
    x = torch.randn(2, 3, 4, dtype=torch.float64, device=device)
    lo = torch.tensor([-0.5, -0.2, 0.0, -1.0], dtype=torch.float64, device=device)
    hi = torch.tensor([[0.5], [0.2], [1.0]], dtype=torch.float64, device=device)
    out = st.clamp(x, lo, hi, softness=0.2, mode="c2")
    assert out.shape == (2, 3, 4)
    expected = lo + ref_relu(x - lo, 0.2, "c2") - ref_relu(x - hi, 0.2, "c2")
    torch.testing.assert_close(out, expected)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

BAD_SOFTNESS = [
    (0, ValueError, r"softness.*\b0\b"),
    (0.0, ValueError, r"softness.*0\.0"),
    (-1, ValueError, r"softness.*-1"),
    (float("nan"), ValueError, r"softness.*nan"),
    (float("inf"), ValueError, r"softness.*inf"),
    (-float("inf"), ValueError, r"softness.*-inf"),
    ("0.1", TypeError, r"softness.*0\.1"),
    (None, TypeError, r"softness"),
    (True, TypeError, r"softness"),
]


@pytest.mark.parametrize("softness, exc, match", BAD_SOFTNESS, ids=[repr(b[0]) for b in BAD_SOFTNESS])
@pytest.mark.parametrize("name", list(WITH_SOFTNESS))
def test_bad_softness_raises_before_work(name, softness, exc, match, device, raises_before_work):
    x = torch.tensor([-0.2, 0.3], device=device)
    raises_before_work(exc, match, WITH_SOFTNESS[name], x, softness=softness)


@pytest.mark.parametrize("name", list(WITH_SOFTNESS))
def test_bad_tensor_softness_raises(name):
    x = torch.tensor([-0.2, 0.3])
    with pytest.raises(ValueError, match=r"softness.*-0\.5"):
        WITH_SOFTNESS[name](x, softness=torch.tensor([0.1, -0.5]))
    with pytest.raises(ValueError, match="softness"):
        WITH_SOFTNESS[name](x, softness=torch.tensor([0.1, float("nan")]))
    with pytest.raises(TypeError, match="softness.*int64"):
        WITH_SOFTNESS[name](x, softness=torch.tensor([1, 2]))


@pytest.mark.parametrize("mode", ["soft", "C1", "", None, 1])
@pytest.mark.parametrize("name", list(WITH_SOFTNESS))
def test_unknown_mode_raises_listing_modes(name, mode, raises_before_work):
    x = torch.tensor([-0.2, 0.3])
    raises_before_work(ValueError, r"mode.*'hard', 'smooth', 'c0', 'c1', 'c2'", WITH_SOFTNESS[name], x, mode=mode)


@pytest.mark.parametrize("name", list(WITH_SOFTNESS))
def test_complex_input_raises_type_error(name, raises_before_work):
    x = torch.tensor([1 + 1j, -0.5j])
    raises_before_work(TypeError, r"\bx\b.*complex", WITH_SOFTNESS[name], x)


@pytest.mark.parametrize("name", list(WITH_SOFTNESS))
def test_non_tensor_input_raises_type_error(name):
    with pytest.raises(TypeError, match=r"\bx\b.*Tensor"):
        WITH_SOFTNESS[name]([0.1, 0.2])


@pytest.mark.parametrize("radius, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("5", TypeError)])
@pytest.mark.parametrize("fn", [st.round, st.round_st])
def test_round_bad_neighbor_radius(fn, radius, exc, raises_before_work):
    x = torch.tensor([-0.2, 0.3])
    info = raises_before_work(exc, "neighbor_radius", fn, x, neighbor_radius=radius)
    assert str(radius) in str(info.value)


def test_clamp_without_bounds_raises(raises_before_work):
    raises_before_work(ValueError, r"min.*max", st.clamp, torch.tensor([0.1]))


def test_clamp_bad_bound_type_raises():
    with pytest.raises(TypeError, match="min"):
        st.clamp(torch.tensor([0.1]), "a", 1.0)
    with pytest.raises(TypeError, match="max.*complex"):
        st.clamp(torch.tensor([0.1]), 0.0, torch.tensor([1j]))


# --------------------------------------------------------------------------------------------
# Edge cases of the specification (§7)
# --------------------------------------------------------------------------------------------


HUGE = [math.inf, -math.inf, 1e6 + 0.25, -1e6 - 0.25, 1e8, -1e8]
INFINITE_LIMITS = {
    # name -> (call, expected at HUGE given the soft result r at small magnitude)
    "heaviside": (lambda x, m: st.heaviside(x, mode=m), lambda m, d: [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]),
    "sign": (lambda x, m: st.sign(x, mode=m), lambda m, d: [1.0, -1.0, 1.0, -1.0, 1.0, -1.0]),
    "abs": (lambda x, m: st.abs(x, mode=m), lambda m, d: [abs(v) for v in HUGE]),
    "relu": (lambda x, m: st.relu(x, mode=m), lambda m, d: [max(v, 0.0) for v in HUGE]),
    "relu_gated": (lambda x, m: st.relu(x, mode=m, gated=True), lambda m, d: [max(v, 0.0) for v in HUGE]),
    "clamp": (lambda x, m: st.clamp(x, -0.5, 0.5, mode=m), lambda m, d: [0.5, -0.5] * 3),
    "clamp_min_only": (
        lambda x, m: st.clamp(x, min=-0.5, mode=m),
        lambda m, d: [math.inf, -0.5, 1e6 + 0.25, -0.5, 1e8, -0.5],
    ),
    "round": (
        lambda x, m: st.round(x, mode=m),
        # the staircase is periodic: round(1e6 + 0.25) = 1e6 + round(0.25)
        lambda m, d: (
            [math.inf, -math.inf]
            + [
                1e6 + st.round(torch.tensor(0.25, dtype=d), mode=m).item(),
                -1e6 - st.round(torch.tensor(0.25, dtype=d), mode=m).item(),
            ]
            + [1e8, -1e8]
        ),
    ),
}


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("dtype_", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(INFINITE_LIMITS))
def test_soft_modes_handle_infinite_and_huge_inputs(name, dtype_, mode, device):
    # SPEC 7: +-inf and very large magnitudes work (the soft result is the hard limit there).
    call, expected = INFINITE_LIMITS[name]
    x = torch.tensor(HUGE, dtype=dtype_, device=device)
    want = torch.tensor(expected(mode, dtype_), dtype=dtype_, device=device)
    torch.testing.assert_close(call(x, mode), want, rtol=2 * torch.finfo(dtype_).eps, atol=1e-6)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("dtype_", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("softness", [1e-6, 1e-3, 1.0, 1e3, 1e6])
def test_extreme_softness_gives_finite_values_and_gradients(softness, dtype_, mode, device):
    x = torch.tensor([-2.6, -0.7, -1e-3, 0.0, 2e-3, 0.4, 3.3], dtype=dtype_, device=device, requires_grad=True)
    for name, fn in WITH_SOFTNESS.items():
        out = fn(x, softness=softness, mode=mode)
        assert torch.isfinite(out).all(), (name, out)
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert torch.isfinite(grad).all(), (name, grad)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

finite = hs.floats(-50, 50, allow_nan=False, allow_infinity=False, width=64)
softnesses = hs.floats(1e-3, 10.0, allow_nan=False)
vectors = hs.lists(finite, min_size=1, max_size=24)


@pytest.mark.full
@given(
    values=vectors,
    softness=softnesses,
    mode=hs.sampled_from(MODES),
    dtype_=hs.sampled_from([torch.float32, torch.float64]),
)
def test_property_ranges(values, softness, mode, dtype_):
    x = torch.tensor(values, dtype=dtype_)
    h = st.heaviside(x, softness=softness, mode=mode)
    assert ((h >= 0) & (h <= 1)).all()
    s = st.sign(x, softness=softness, mode=mode)
    assert ((s >= -1) & (s <= 1)).all()
    a = st.abs(x, softness=softness, mode=mode)
    assert ((a >= 0) & (a <= x.abs())).all()
    r = st.relu(x, softness=softness, mode=mode)
    assert (r >= 0).all()
    c = st.clamp(x, -1.0, 2.0, softness=softness, mode=mode)
    assert torch.isfinite(c).all()


@pytest.mark.full
@given(values=vectors, softness=softnesses, dtype_=hs.sampled_from([torch.float32, torch.float64]))
def test_property_smooth_relu_bounds_hard_relu(values, softness, dtype_):
    # softplus bound: relu(x) <= s softplus(x / s) <= relu(x) + s log 2 (up to one rounding of x)
    x = torch.tensor(values, dtype=dtype_)
    soft = st.relu(x, softness=softness)
    hard = torch.relu(x)
    ulp = torch.finfo(dtype_).eps * hard
    assert (soft >= hard - ulp).all(), (soft - hard).min()
    assert (soft <= hard + softness * math.log(2) * (1 + 1e-5) + ulp).all()


@pytest.mark.full
@given(
    values=vectors,
    softness=softnesses,
    mode=hs.sampled_from(("c0", "c1", "c2")),
    dtype_=hs.sampled_from([torch.float32, torch.float64]),
)
def test_property_polynomial_relu_is_relu_outside_window(values, softness, mode, dtype_):
    x = torch.tensor(values, dtype=dtype_)
    outside = x.abs() >= 5 * softness
    soft = st.relu(x, softness=softness, mode=mode)
    assert torch.equal(soft[outside], torch.relu(x)[outside]), (x[outside], soft[outside])
    assert (soft >= torch.relu(x) - torch.finfo(dtype_).eps * x.abs()).all()


away_from_zero = hs.one_of(hs.floats(1e-2, 20, width=64), hs.floats(-20, -1e-2, width=64))


@pytest.mark.full
@given(values=hs.lists(away_from_zero, min_size=1, max_size=16), mode=hs.sampled_from(SOFT_MODES))
def test_property_soft_tends_to_hard(values, mode):
    x = torch.tensor(values, dtype=torch.float64)
    s = 1e-4
    for name in ("heaviside", "sign", "abs", "relu"):
        fn, torch_op = UNARY[name]
        torch.testing.assert_close(
            fn(x, softness=s, mode=mode),
            torch_op(x) if name != "heaviside" else _torch_heaviside(x),
            rtol=1e-6,
            atol=1e-6,
        )
    # round: keep 1e-2 away from the half-integer steps
    r = x[((x - torch.floor(x)) - 0.5).abs() >= 1e-2]
    torch.testing.assert_close(st.round(r, softness=s, mode=mode), torch.round(r), rtol=1e-6, atol=1e-6)
    c = x[((x + 0.5).abs() >= 1e-2) & ((x - 0.5).abs() >= 1e-2)]
    torch.testing.assert_close(
        st.clamp(c, -0.5, 0.5, softness=s, mode=mode), torch.clamp(c, -0.5, 0.5), rtol=1e-6, atol=1e-6
    )


@pytest.mark.full
@given(values=vectors, softness=softnesses, mode=hs.sampled_from(SOFT_MODES))
def test_property_symmetries(values, softness, mode):
    x = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(
        st.heaviside(-x, softness=softness, mode=mode), 1 - st.heaviside(x, softness=softness, mode=mode)
    )
    torch.testing.assert_close(st.sign(-x, softness=softness, mode=mode), -st.sign(x, softness=softness, mode=mode))
    torch.testing.assert_close(st.abs(-x, softness=softness, mode=mode), st.abs(x, softness=softness, mode=mode))
    # relu(x) - relu(-x) = x for the non-gated antiderivative
    torch.testing.assert_close(
        st.relu(x, softness=softness, mode=mode) - st.relu(-x, softness=softness, mode=mode), x, rtol=1e-9, atol=1e-9
    )


@pytest.mark.full
@given(values=vectors, softness=hs.floats(1e-3, 0.2), mode=hs.sampled_from(SOFT_MODES))
def test_property_round_integers_shift(values, softness, mode):
    # round(x + k) = round(x) + k for an integer k (the staircase is periodic)
    x = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(
        st.round(x + 3.0, softness=softness, mode=mode),
        st.round(x, softness=softness, mode=mode) + 3.0,
        rtol=1e-9,
        atol=1e-9,
    )
