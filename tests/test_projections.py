"""Tests of the simplex projections in ``softtorch._core.projections``.

The reference for the polynomial modes is a plain float64 bisection on the threshold
(200 halvings of the bracket [max - 1, max]); its gradients come from the implicit function
theorem applied to the bisection root.
"""

from __future__ import annotations

import os

import pytest
import torch
from _registry import SOFT_MODES
from hypothesis import given, settings
from hypothesis import strategies as st

from softtorch._core import projections
from softtorch._core.projections import log_project_simplex, project_simplex

POLY = {"c0": 1, "c1": 2, "c2": 3}
MODES = SOFT_MODES
DYNAMO_WARNING = "ignore:.*should not be instantiated:DeprecationWarning"  # raised inside torch._dynamo

fast = settings(max_examples=40, deadline=None, database=None)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, scale=1.0, dtype=torch.float64):
    return (torch.randn(*shape, generator=_gen(seed), dtype=torch.float64) * scale).to(dtype)


# ----------------------------------------------------------------------------- references


def bisection_tau(z: torch.Tensor, m: int, iters: int = 200) -> torch.Tensor:
    """Threshold of the row-max-shifted float64 scores ``z - max(z)``, by bisection."""
    y = z.double() - z.double().amax(dim=-1, keepdim=True)
    lo = torch.full_like(y[..., :1], -1.0)  # f(lo) >= 0
    hi = torch.zeros_like(lo)  # f(hi) = -1 < 0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = (y - mid).clamp_min(0).pow(m).sum(dim=-1, keepdim=True) > 1
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    return 0.5 * (lo + hi)


def bisection_project(z: torch.Tensor, m: int) -> torch.Tensor:
    y = z.double() - z.double().amax(dim=-1, keepdim=True)
    return (y - bisection_tau(z, m)).clamp_min(0).pow(m)


def implicit_project(z: torch.Tensor, m: int) -> torch.Tensor:
    """Bisection projection made differentiable through the implicit function theorem.

    With F(z, tau) = sum_i [z_i - tau]_+^m - 1 and the (detached) root tau0, the value of
    tau0 - F(z, tau0) / F_tau(tau0) equals tau0 and its gradient is -F_z / F_tau.
    """
    y = z - z.detach().amax(dim=-1, keepdim=True)
    tau0 = bisection_tau(z.detach(), m)
    F = (y - tau0).clamp_min(0).pow(m).sum(dim=-1, keepdim=True) - 1
    on = y.detach() > tau0
    F_tau = -(m * (y.detach() - tau0).clamp_min(0).pow(m - 1) * on).sum(dim=-1, keepdim=True)
    tau = tau0 - F / F_tau
    return (y - tau).clamp_min(0).pow(m)


def reference(z: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "smooth":
        return torch.softmax(z.double(), dim=-1)
    return bisection_project(z, POLY[mode])


def margin_to_threshold(z: torch.Tensor, m: int) -> float:
    y = z.double() - z.double().amax(dim=-1, keepdim=True)
    return float((y - bisection_tau(z, m)).abs().min())


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("shape", [(3, 1), (2, 3, 7), (5, 100)])
@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_matches_bisection_float64(mode, shape):
    for seed, scale in enumerate([0.05, 0.5, 2.0, 30.0]):
        z = randn(*shape, seed=seed, scale=scale)
        p = project_simplex(z, mode)
        assert p.shape == z.shape and p.dtype == torch.float64
        torch.testing.assert_close(p, bisection_project(z, POLY[mode]), rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_four_element_sort_scores_at_softness_half(mode):
    # A few score vectors of a 4-element input at softness 0.5 (scores = values / 0.5).
    x = torch.tensor([0.3, -1.2, 2.5, 0.9], dtype=torch.float64)
    z = torch.stack([x / 0.5, -x / 0.5, (x - x.mean()) / 0.5, x.flip(0) / 0.5])
    torch.testing.assert_close(project_simplex(z, mode), reference(z, mode), rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(3, 1), (2, 3, 7), (5, 100)])
def test_smooth_is_softmax(shape):
    z = randn(*shape, seed=1, scale=3.0)
    torch.testing.assert_close(project_simplex(z, "smooth"), torch.softmax(z, dim=-1), rtol=0, atol=0)
    torch.testing.assert_close(log_project_simplex(z, "smooth"), torch.log_softmax(z, dim=-1), rtol=0, atol=0)


def test_hand_checked_values():
    # sparsemax: tau = (1 + 0.8 - 1) / 2 = -0.6 ... in shifted terms, p = z - 0.4.
    p = project_simplex(torch.tensor([1.0, 0.8, -1.0], dtype=torch.float64), "c0")
    torch.testing.assert_close(p, torch.tensor([0.6, 0.4, 0.0], dtype=torch.float64), rtol=0, atol=1e-15)
    # c1: tau = 0 gives 0.8^2 + 0.6^2 = 1, and -1 < 0 is outside.
    p = project_simplex(torch.tensor([0.8, 0.6, -1.0], dtype=torch.float64), "c1")
    torch.testing.assert_close(p, torch.tensor([0.64, 0.36, 0.0], dtype=torch.float64), rtol=0, atol=1e-15)
    # c2: tau = 0 gives (5^3 + 4^3 + 3^3) / 6^3 = 216 / 216 = 1, and -1 < 0 is outside.
    p = project_simplex(torch.tensor([5.0, 4.0, 3.0, -6.0], dtype=torch.float64) / 6, "c2")
    expected = torch.tensor([125.0, 64.0, 27.0, 0.0], dtype=torch.float64) / 216
    torch.testing.assert_close(p, expected, rtol=0, atol=1e-15)
    # Exact zeros, not just small values.
    assert p[3].item() == 0.0
    # Ties: k equal scores share the mass equally, (-tau)^m = 1 / k.
    for mode in POLY:
        p = project_simplex(torch.tensor([2.0, 2.0, 2.0, 2.0, -3.0], dtype=torch.float64), mode)
        expected = torch.tensor([0.25, 0.25, 0.25, 0.25, 0.0], dtype=torch.float64)
        torch.testing.assert_close(p, expected, rtol=0, atol=1e-15)
        assert p[4].item() == 0.0
    # n = 1.
    for mode in MODES:
        assert project_simplex(torch.tensor([[-7.5]]), mode).tolist() == [[1.0]]


def test_c1_is_entmax15_of_2z():
    # 1.5-entmax(x) = [x / 2 - tau]_+^2; with x = 2z this is the c1 projection. Check the
    # stationarity condition of the Tsallis-1.5 problem directly: on the support,
    # z_i - sqrt(p_i) is the same constant (= tau) for every i.
    z = randn(4, 9, seed=3)
    p = project_simplex(z, "c1")
    on = p > 0
    tau = z - p.sqrt()
    hi = torch.where(on, tau, -torch.inf).amax(-1, keepdim=True)
    lo = torch.where(on, tau, torch.inf).amin(-1, keepdim=True)
    assert float((hi - lo).max()) < 1e-12
    assert bool(((z <= hi) | on).all())  # off the support, z_i <= tau


@fast
@given(
    values=st.lists(st.floats(-20, 20, allow_nan=False, width=64), min_size=1, max_size=24),
    mode=st.sampled_from(MODES),
    shift=st.sampled_from([0.0, -1e3, 1e5]),
)
def test_probability_vector_float64(values, mode, shift):
    z = torch.tensor(values, dtype=torch.float64) + shift
    p = project_simplex(z, mode)
    assert bool((p >= 0).all())
    assert abs(float(p.sum()) - 1.0) <= 1e-12
    torch.testing.assert_close(p, reference(z, mode), rtol=0, atol=1e-9)
    if mode in POLY:
        y = z - z.max()
        tau = bisection_tau(z, POLY[mode])
        assert bool((p[y < tau - 1e-9] == 0).all())  # exact zeros off the support
        assert bool((p[y > tau + 1e-9] > 0).all())


@fast
@given(
    values=st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=40),
    mode=st.sampled_from(MODES),
)
def test_probability_vector_float32(values, mode):
    z = torch.tensor(values, dtype=torch.float32)
    p = project_simplex(z, mode)
    assert p.dtype == torch.float32
    assert bool((p >= 0).all())
    assert abs(float(p.double().sum()) - 1.0) <= 2e-6
    torch.testing.assert_close(p.double(), reference(z, mode), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", MODES)
def test_hard_limit_is_one_hot_argmax(mode, dtype):
    z = randn(6, 50, seed=4, dtype=dtype) * 1e6
    p = project_simplex(z, mode)
    expected = torch.nn.functional.one_hot(z.argmax(-1), 50).to(dtype)
    assert torch.equal(p, expected)


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_float32_huge_scores_and_near_ties(mode):
    g = _gen(5)
    # ~1e6 offsets with sub-ulp noise: many exact ties after rounding to float32.
    tied = 1e6 + 0.3 * torch.randn(8, 300, generator=g)
    spread = 1e6 * torch.randn(8, 300, generator=g) + torch.randn(8, 300, generator=g)
    near = 1e6 + 1e-3 * torch.arange(300.0).expand(8, 300)
    for z in (tied.float(), spread.float(), near.float()):
        p = project_simplex(z, mode)
        assert bool(torch.isfinite(p).all()) and bool((p >= 0).all())
        torch.testing.assert_close(p.double().sum(-1), torch.ones(8, dtype=torch.float64), rtol=0, atol=300 * 1.2e-7)
        torch.testing.assert_close(p.double(), bisection_project(z, POLY[mode]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_float64_scores_1e6_large_and_1e_minus_6_apart(mode):
    z = 1e6 + 1e-6 * torch.tensor([3.0, 0.0, 1.0, 2.0, -1.0], dtype=torch.float64)
    p = project_simplex(z, mode)
    torch.testing.assert_close(p, bisection_project(z, POLY[mode]), rtol=0, atol=1e-10)
    assert torch.equal(p.argsort(descending=True), torch.tensor([0, 3, 2, 1, 4]))


@pytest.mark.parametrize("mode", MODES)
def test_nan_row_is_isolated(mode):
    z = randn(4, 6, seed=6)
    bad = z.clone()
    bad[2, 3] = float("nan")
    bad.requires_grad_()
    keep = [0, 1, 3]
    p = project_simplex(bad, mode)
    assert bool(p[2].isnan().all())
    torch.testing.assert_close(p[keep], project_simplex(z[keep], mode), rtol=0, atol=0)
    logp = log_project_simplex(bad, mode)
    assert bool(logp[2].isnan().all())
    torch.testing.assert_close(logp[keep], log_project_simplex(z[keep], mode), rtol=0, atol=0)
    (p[keep] * torch.arange(6.0, dtype=torch.float64)).sum().backward()
    assert bool(torch.isfinite(bad.grad[keep]).all())


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_masked_minus_inf_entries(mode):
    z = torch.tensor([[1.0, float("-inf"), 0.8, float("-inf")], [0.5, 0.2, float("-inf"), -0.1]], requires_grad=True)
    p = project_simplex(z, mode)
    finite = torch.tensor([[1.0, -50.0, 0.8, -50.0], [0.5, 0.2, -50.0, -0.1]])
    torch.testing.assert_close(p, project_simplex(finite, mode), rtol=0, atol=0)
    assert p[0, 1].item() == 0.0 and p[1, 2].item() == 0.0
    (p * torch.arange(4.0)).sum().backward()
    assert bool(torch.isfinite(z.grad).all())
    logp = log_project_simplex(z, mode)
    assert logp[0, 1].item() == float("-inf")


@pytest.mark.parametrize("bad", ["hard", "C0", "", None, 1])
def test_bad_mode_raises(bad):
    msg = r"mode must be one of 'smooth', 'c0', 'c1', 'c2', got " + repr(bad).replace("(", r"\(")
    with pytest.raises(ValueError, match=msg):
        project_simplex(torch.zeros(3), bad)
    with pytest.raises(ValueError, match=msg):
        log_project_simplex(torch.zeros(3), bad)


def test_bad_scores_raise():
    with pytest.raises(TypeError, match="floating-point"):
        project_simplex(torch.arange(3), "c0")
    with pytest.raises(ValueError, match="at least one dimension"):
        project_simplex(torch.tensor(1.0), "c1")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", MODES)
def test_half_precision_in_and_out(mode, dtype):
    z = randn(3, 10, seed=7, dtype=dtype)
    p = project_simplex(z, mode)
    logp = log_project_simplex(z, mode)
    assert p.dtype == dtype and logp.dtype == dtype
    torch.testing.assert_close(p.double(), reference(z, mode), rtol=0, atol=1e-2)
    torch.testing.assert_close(p.double().sum(-1), torch.ones(3, dtype=torch.float64), rtol=0, atol=2e-2)


def test_empty_last_dim():
    for mode in MODES:
        assert project_simplex(torch.zeros(2, 0), mode).shape == (2, 0)


def test_public_api():
    assert projections.__all__ == ["project_simplex", "log_project_simplex", "simplex_vjp"]


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2"])
def test_simplex_vjp_equals_the_autograd_vjp(mode):
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 7, generator=g, dtype=torch.float64).requires_grad_()
    cot = torch.randn(3, 7, generator=g, dtype=torch.float64)
    p = projections.project_simplex(z, mode)
    (expected,) = torch.autograd.grad(p, z, cot)
    got = projections.simplex_vjp(p.detach(), cot, mode)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert got.abs().sum() > 0


# ----------------------------------------------------------------------------- gradients


def _distinct_scores(seed: int, shape=(3, 6)) -> torch.Tensor:
    z = randn(*shape, seed=seed)
    for m in POLY.values():  # finite differences must not straddle the support boundary
        assert margin_to_threshold(z, m) > 1e-3
    return z.requires_grad_()


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode):
    z = _distinct_scores(8)
    assert torch.autograd.gradcheck(lambda x: project_simplex(x, mode), (z,))
    assert torch.autograd.gradgradcheck(lambda x: project_simplex(x, mode), (z,))


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
@pytest.mark.parametrize("seed,shape", [(8, (3, 6)), (9, (2, 2, 5)), (10, (1, 12))])
def test_custom_backward_matches_implicit_reference(mode, seed, shape):
    z = _distinct_scores(seed, shape).detach()
    m = POLY[mode]
    jac = torch.autograd.functional.jacobian(lambda x: project_simplex(x, mode), z)
    jac_ref = torch.autograd.functional.jacobian(lambda x: implicit_project(x, m), z)
    torch.testing.assert_close(jac, jac_ref, rtol=0, atol=1e-9)
    # Closed form: w (I - w w^T / sum w) restricted to the support, with w = m (z - tau)^(m-1).
    row = z.reshape(-1, shape[-1])[0]
    y = row - row.max()
    w = (m * (y - bisection_tau(row, m)).clamp_min(0).pow(m - 1)) * (y > bisection_tau(row, m))
    expected = torch.diag(w) - torch.outer(w, w) / w.sum()
    got = torch.autograd.functional.jacobian(lambda x: project_simplex(x, mode), row)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-9)


def test_gradients_are_shift_invariant_and_sum_to_zero():
    z = randn(4, 8, seed=11).requires_grad_()
    g = randn(4, 8, seed=12)
    for mode in MODES:
        (grad,) = torch.autograd.grad(project_simplex(z, mode), z, g)
        torch.testing.assert_close(grad.sum(-1), torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- log-probabilities


@pytest.mark.parametrize("mode", MODES)
def test_log_project_matches_project(mode):
    z = randn(2, 3, 15, seed=13, scale=2.0)
    p = project_simplex(z, mode)
    logp = log_project_simplex(z, mode)
    torch.testing.assert_close(logp.exp(), p, rtol=1e-12, atol=0)
    if mode in POLY:
        assert torch.equal(logp == float("-inf"), p == 0)
        assert bool((p == 0).any())  # the test exercises off-support entries


def test_log_gradcheck_smooth():
    z = _distinct_scores(14)
    assert torch.autograd.gradcheck(lambda x: log_project_simplex(x, "smooth"), (z,))
    assert torch.autograd.gradgradcheck(lambda x: log_project_simplex(x, "smooth"), (z,))


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_log_gradient_on_support_matches_implicit_reference(mode):
    z = _distinct_scores(15, (2, 7)).detach()
    support = project_simplex(z, mode) > 0
    assert not bool(support.all())
    jac = torch.autograd.functional.jacobian(lambda x: log_project_simplex(x, mode)[support], z)
    jac_ref = torch.autograd.functional.jacobian(lambda x: implicit_project(x, POLY[mode])[support].log(), z)
    torch.testing.assert_close(jac, jac_ref, rtol=0, atol=1e-9)
    assert torch.autograd.gradcheck(lambda x: log_project_simplex(x, mode)[support], (z.clone().requires_grad_(),))


def test_log_c1_gradient_finite_with_zeros():
    z = torch.tensor([[1.0, 0.8, -1.0, -5.0], [0.0, 0.0, 0.3, -0.9]], dtype=torch.float64, requires_grad=True)
    logp = log_project_simplex(z, "c1")
    assert bool((logp == float("-inf")).any())
    loss = torch.where(torch.isfinite(logp), logp, 0.0).sum() + logp.clamp_min(-30.0).sum()
    (grad,) = torch.autograd.grad(loss, z, retain_graph=True)
    assert bool(torch.isfinite(grad).all())
    assert bool((grad[logp == float("-inf")] == 0).all())
    # Cross-entropy against a target on the support (the typical use) also has finite grads.
    (grad,) = torch.autograd.grad(-logp[:, 0].sum(), z)
    assert bool(torch.isfinite(grad).all())


# ----------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("mode", MODES)
def test_vmap_matches_eager(mode):
    z = randn(4, 5, 9, seed=16)
    eager = project_simplex(z, mode)
    torch.testing.assert_close(torch.func.vmap(lambda r: project_simplex(r, mode))(z), eager, rtol=0, atol=0)
    nested = torch.func.vmap(torch.func.vmap(lambda r: log_project_simplex(r, mode)))(z)
    torch.testing.assert_close(nested, log_project_simplex(z, mode), rtol=0, atol=0)
    # vmap over the custom backward (generate_vmap_rule) and over the jacobian.
    weights = torch.arange(9.0, dtype=torch.float64)
    grads = torch.func.vmap(torch.func.grad(lambda r: (project_simplex(r, mode) * weights).sum()))(z[0])
    zz = z[0].clone().requires_grad_()
    (ref,) = torch.autograd.grad((project_simplex(zz, mode) * weights).sum(), zz)
    torch.testing.assert_close(grads, ref, rtol=0, atol=1e-14)
    jac = torch.func.vmap(torch.func.jacrev(lambda r: project_simplex(r, mode)))(z[0])
    torch.testing.assert_close(jac[1], torch.autograd.functional.jacobian(lambda r: project_simplex(r, mode), z[0, 1]))


@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous_input_and_vmap_over_inner_dim(mode):
    x = randn(4, 6, 5, seed=18)
    expected = project_simplex(x.transpose(0, 2).contiguous(), mode)
    torch.testing.assert_close(project_simplex(x.transpose(0, 2), mode), expected, rtol=0, atol=1e-15)
    logp = log_project_simplex(x.transpose(0, 2), mode)
    torch.testing.assert_close(logp, log_project_simplex(x.transpose(0, 2).contiguous(), mode), rtol=0, atol=1e-12)
    mapped = torch.func.vmap(lambda r: project_simplex(r, mode), in_dims=1, out_dims=1)(x)
    torch.testing.assert_close(mapped, project_simplex(x, mode), rtol=0, atol=1e-15)


def _all_modes(x):
    outs = [project_simplex(x, mode) for mode in MODES]
    outs.append(log_project_simplex(x, "c2").clamp_min(-50.0))
    return torch.stack(outs)


def _check_compiled(compiled):
    z = randn(3, 7, seed=17, dtype=torch.float32).requires_grad_()
    weights = torch.linspace(-1, 1, 7)
    out = compiled(z)
    (grad,) = torch.autograd.grad((out * weights).sum(), z)
    ref = _all_modes(z)
    (ref_grad,) = torch.autograd.grad((ref * weights).sum(), z)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings(DYNAMO_WARNING)
def test_compile_fullgraph_matches_eager():
    # aot_eager traces forward and backward through dynamo (fullgraph: no graph breaks) and
    # AOTAutograd without paying for C++ code generation.
    _check_compiled(torch.compile(_all_modes, fullgraph=True, backend="aot_eager"))


@pytest.mark.skipif(not os.environ.get("SOFTTORCH_TEST_INDUCTOR"), reason="slow; set SOFTTORCH_TEST_INDUCTOR=1")
@pytest.mark.filterwarnings(DYNAMO_WARNING)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inductor import
def test_compile_inductor_matches_eager():
    _check_compiled(torch.compile(_all_modes, fullgraph=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_in_place_projection_and_its_rebuild_are_the_projection(mode, dtype):
    """project_sparse_ gives project_simplex's rows bit for bit (ties, a row far below its maximum,
    -inf entries), and reproject_ rebuilds them from the row constants alone, bit for bit; the
    threshold it returns is the bisection's."""
    z = randn(6, 40, seed=3, scale=2.0, dtype=dtype)
    z[1, :20] = z[1, 20:]  # ties
    z[2, 5:] = -30.0  # far below the maximum (clamped at the floor)
    z[3, ::3] = -float("inf")
    expected = project_simplex(z, mode)
    p, constants = projections.project_sparse_(z.clone(), POLY[mode])
    assert torch.equal(p, expected) and constants.shape == (6, 3)
    assert torch.equal(projections.reproject_(z.clone(), POLY[mode], constants), expected)
    top, tau, delta = constants.double().unbind(-1)
    reference = bisection_tau(z.double().masked_fill(torch.isinf(z), -1e3), POLY[mode]).squeeze(-1)
    torch.testing.assert_close(tau + delta, reference, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)
    assert torch.equal(top, z.double().amax(-1))
