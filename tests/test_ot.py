"""Tests of the optimal-transport sorting method (softtorch.methods.ot).

The references below are written from the OT problems in the module docstring with plain,
slow solvers (log-domain Sinkhorn; block coordinate ascent with bisection thresholds), so they
share no code with the library's Newton solver.
"""

from __future__ import annotations

import pytest
import torch
from _registry import SOFT_MODES
from torch.autograd import gradcheck, gradgradcheck

import softtorch as st
from softtorch._core import transport as solver
from softtorch.methods import ot
from softtorch.methods.ot import argmax, permutation, sort_values

MODES = SOFT_MODES
SOFTNESS = (1e-3, 1e-2, 0.1, 1.0, 10.0)
F64 = torch.float64
EXPONENT = {"c0": 1, "c1": 2, "c2": 3}


def standardize(x):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return torch.sigmoid((x - mean) / torch.sqrt(var + 1e-6))


def scores(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return standardize(torch.randn(shape, generator=g, dtype=F64)).to(dtype)


def gapped(shape, gap=0.15, seed=0):
    """Scores in (0, 1) with pairwise gaps of at least ``gap`` along the last dim, in random order.

    With 6 elements the anchors are 0.2 apart, so a swap costs 2 * 0.15 * 0.2 = 0.06 = 60 softness
    at softness 1e-3: the entropic plan is within exp(-30) of the hard one."""
    g = torch.Generator().manual_seed(seed)
    *batch, n = shape
    rows = [torch.randperm(n, generator=g) for _ in range(max(1, int(torch.tensor(batch).prod())))]
    return (0.5 + (torch.stack(rows).to(F64) - (n - 1) / 2) * gap).reshape(shape)


def hard_permutation(xt, descending=False):
    index = torch.sort(xt, dim=-1, descending=descending).indices
    return torch.nn.functional.one_hot(index, xt.shape[-1]).to(xt.dtype)


# -- independent references ---------------------------------------------------------------------------


def ref_sinkhorn(xt, s, b, beta, iters=2000):
    """Entropic plan (unit element masses, anchor masses beta) by plain log-domain Sinkhorn."""
    C = (xt[:, None] - b[None, :]) ** 2
    f, g = torch.zeros(len(xt), dtype=F64), torch.zeros(len(b), dtype=F64)
    for _ in range(iters):
        f = -s * torch.logsumexp((g[None, :] - C) / s, dim=1)
        g = s * torch.log(beta) - s * torch.logsumexp((f[:, None] - C) / s, dim=0)
    return torch.exp((f[:, None] + g[None, :] - C) / s)


def _bisect_potential(slack, s, m, mass, iters=60):
    """Per row of ``slack`` (other potential minus cost): the t with sum_j [(t + slack_j) / s]_+^m = mass."""
    lo = -slack.max(1).values
    hi = lo + s * mass ** (1.0 / m)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        over = (((mid[:, None] + slack) / s).clamp_min(0) ** m).sum(1) > mass
        lo, hi = torch.where(over, lo, mid), torch.where(over, mid, hi)
    return 0.5 * (lo + hi)


def ref_polynomial(xt, s, mode, b, beta, iters=100):
    """p-norm regularized plan by alternating exact block maximization of the dual."""
    m = EXPONENT[mode]
    C = (xt[:, None] - b[None, :]) ** 2
    f, g = torch.zeros(len(xt), dtype=F64), torch.zeros(len(b), dtype=F64)
    for _ in range(iters):
        f = _bisect_potential(g[None, :] - C, s, m, torch.ones(len(xt), dtype=F64))
        g = _bisect_potential((f[:, None] - C).T, s, m, beta)
    return ((f[:, None] + g[None, :] - C) / s).clamp_min(0) ** m


# -- smoke and exceptions -------------------------------------------------------------------------------


def test_public_names():
    assert set(ot.__all__) == {
        "permutation",
        "argmax",
        "sort_values",
        "DEFAULT_TOL",
        "DEFAULT_MAX_ITER",
        "OPTIONS",
        "OPTION_ALIASES",
        "OPTION_MERGE",
        "EXACT_MASKING",
        "PER_ROW_SLOTS",
    }
    assert set(ot.OPTIONS) == {"tol", "max_iter"}
    assert ot.DEFAULT_TOL == 1e-5


def test_bad_arguments():
    xt = torch.rand(4)
    with pytest.raises(ValueError, match="mode must be one of .*got 'hard'"):
        permutation(xt, 0.1, "hard")
    with pytest.raises(ValueError, match="tol must be a positive finite number, got -1"):
        permutation(xt, 0.1, "smooth", tol=-1)
    with pytest.raises(TypeError, match="max_iter must be an int, got float 2.5"):
        permutation(xt, 0.1, "smooth", max_iter=2.5)
    with pytest.raises(ValueError, match=r"max_iter must be in \[0, inf\), got -1"):
        permutation(xt, 0.1, "smooth", max_iter=-1)
    with pytest.raises(ValueError, match=r"rows must be 0-based sorted slots in \[0, 3\], got \[4\]"):
        permutation(xt, 0.1, "smooth", rows=torch.tensor([4]))
    with pytest.raises(ValueError, match="0-d"):
        permutation(torch.tensor(0.5), 0.1, "smooth")


# -- the published figure ---------------------------------------------------------------------------------


def test_seed_readme_figure():
    # sort(x, method="ot", softness=0.1).values of the seed README: the entropic plan with
    # epsilon = softness, cost (xt_i - j/(n-1))^2 on the standardized scores, values = P @ x.
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
    values = permutation(standardize(x), 0.1, "smooth") @ x
    expected = torch.tensor([-0.7324, -0.2396, 0.3286, 0.7434])
    torch.testing.assert_close(values, expected, atol=5e-5, rtol=0)
    torch.testing.assert_close(sort_values(standardize(x), 0.1, "smooth", values=x), values)


# -- the plans ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("mode", MODES)
def test_doubly_stochastic_and_finite(mode, dtype):
    xt = scores((8, 50), dtype, seed=1)
    w = torch.randn(8, 50, 50, dtype=dtype, generator=torch.Generator().manual_seed(2))
    for softness in SOFTNESS:
        x = xt.clone().requires_grad_()
        s = torch.full((8, 1), softness, dtype=dtype, requires_grad=True)
        p = permutation(x, s, mode)
        assert torch.isfinite(p).all() and (p >= 0).all()
        ones = torch.ones(8, 50, dtype=dtype)
        torch.testing.assert_close(p.sum(-1), ones, atol=1e-4, rtol=0, msg=f"rows, softness {softness}")
        torch.testing.assert_close(p.sum(-2), ones, atol=1e-4, rtol=0, msg=f"columns, softness {softness}")
        (p * w).sum().backward()
        assert torch.isfinite(x.grad).all() and torch.isfinite(s.grad).all(), f"softness {softness}"
        # The values path (its own backward) on the same problems.
        values_in = (xt * 4.0 - 2.0).requires_grad_()
        x.grad = s.grad = None
        v = sort_values(x, s, mode, values=values_in)
        assert torch.isfinite(v).all(), f"values, softness {softness}"
        (v * w[..., 0]).sum().backward()
        grads = (x.grad, s.grad, values_in.grad)
        assert all(torch.isfinite(g).all() for g in grads), f"values gradients, softness {softness}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
def test_hard_limit(mode, descending):
    xt = gapped((3, 6), seed=3)
    for dtype in (torch.float32, F64):
        p = permutation(xt.to(dtype), 1e-3, mode, descending=descending)
        torch.testing.assert_close(p, hard_permutation(xt, descending).to(dtype), atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_matches_independent_reference(mode):
    xt = scores((5,), F64, seed=4)
    b, beta = torch.linspace(0, 1, 5, dtype=F64), torch.ones(5, dtype=F64)
    s = 0.1 if mode == "smooth" else 0.5
    ref = ref_sinkhorn(xt, s, b, beta) if mode == "smooth" else ref_polynomial(xt, s, mode, b, beta)
    torch.testing.assert_close(permutation(xt, s, mode, tol=1e-10), ref.T, atol=1e-7, rtol=0)
    # The reduced layout of the top 2 (anchors 0, 3/4, 1 with masses 3, 1, 1).
    b, beta = torch.tensor([0.0, 0.75, 1.0], dtype=F64), torch.tensor([3.0, 1.0, 1.0], dtype=F64)
    ref = ref_sinkhorn(xt, s, b, beta) if mode == "smooth" else ref_polynomial(xt, s, mode, b, beta)
    top = permutation(xt, s, mode, descending=True, rows=torch.tensor([0, 1]), tol=1e-10)
    torch.testing.assert_close(top, ref.T[[2, 1]], atol=1e-7, rtol=0)


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_polynomial_modes_are_sparse(mode):
    p = permutation(scores((4, 30), F64, seed=5), 0.05, mode)
    assert (p == 0).float().mean() > 0.5
    logp = permutation(scores((4, 30), F64, seed=5), 0.05, mode, log=True)
    assert torch.equal(logp == float("-inf"), p == 0)
    torch.testing.assert_close(logp.exp(), p)


def test_smooth_log_and_large_softness():
    xt = scores((3, 6), F64, seed=6)
    torch.testing.assert_close(permutation(xt, 0.2, "smooth", log=True).exp(), permutation(xt, 0.2, "smooth"))
    torch.testing.assert_close(
        permutation(xt, 1e4, "smooth"), torch.full((3, 6, 6), 1 / 6, dtype=F64), atol=1e-4, rtol=0
    )


def test_descending_rows_and_full_layout_agree():
    xt = scores((2, 3, 7), F64, seed=7)
    for mode in MODES:
        full = permutation(xt, 0.2, mode, tol=1e-12)
        torch.testing.assert_close(permutation(xt, 0.2, mode, rows=torch.arange(7), tol=1e-12), full)
        torch.testing.assert_close(permutation(xt, 0.2, mode, descending=True, tol=1e-12), full.flip(-2))
        # Asking for all but one slot merges nothing either.
        rows = torch.tensor([5, 0, 1, 2, 3, 4])
        torch.testing.assert_close(permutation(xt, 0.2, mode, rows=rows, tol=1e-12), full[..., rows, :])


def test_layouts():
    def layout(n, rows, descending=False):
        b, beta, pick = solver.anchor_layout(n, torch.tensor(rows), descending, F64, "cpu")
        return b.tolist(), beta.tolist(), pick.tolist()

    assert layout(7, [0], descending=True) == ([0.0, 1.0], [6.0, 1.0], [1])  # argmax
    assert layout(7, [0, 1, 2], descending=True) == ([0.0, 4 / 6, 5 / 6, 1.0], [4.0, 1.0, 1.0, 1.0], [3, 2, 1])
    assert layout(7, [0, 1]) == ([0.0, 1 / 6, 1.0], [1.0, 1.0, 5.0], [0, 1])  # bottom 2
    assert layout(5, [2, 2]) == ([0.0, 0.5, 1.0], [2.0, 1.0, 2.0], [1, 1])  # median
    assert layout(7, [1, 5]) == ([0.0, 1 / 6, 0.5, 5 / 6, 1.0], [1.0, 1.0, 3.0, 1.0, 1.0], [1, 3])


@pytest.mark.parametrize("mode", MODES)
def test_argmax_and_topk_layouts(mode):
    xt = gapped((4, 6), seed=8)
    for dtype in (torch.float32, F64):
        x = xt.to(dtype)
        a = argmax(x, 1e-3, mode)
        torch.testing.assert_close(a, torch.nn.functional.one_hot(x.argmax(-1), 6).to(dtype), atol=1e-4, rtol=0)
        top = permutation(x, 1e-3, mode, descending=True, rows=torch.arange(3))
        hard = torch.nn.functional.one_hot(torch.topk(x, 3).indices, 6).to(dtype)
        torch.testing.assert_close(top, hard, atol=1e-4, rtol=0)
        bottom = permutation(x, 1e-3, mode, rows=torch.arange(2))
        hard = torch.nn.functional.one_hot(torch.topk(x, 2, largest=False).indices, 6).to(dtype)
        torch.testing.assert_close(bottom, hard, atol=1e-4, rtol=0)
        # Soft: probability rows, and the argmax is the first row of the top-k layout with k = 1.
        soft = argmax(x, 0.3, mode)
        assert (soft >= 0).all()
        torch.testing.assert_close(soft.sum(-1), torch.ones(4, dtype=dtype), atol=1e-5, rtol=0)
        rows = permutation(x, 0.3, mode, descending=True, rows=torch.arange(3))
        torch.testing.assert_close(rows.sum(-1), torch.ones(4, 3, dtype=dtype), atol=1e-5, rtol=0)
        torch.testing.assert_close(permutation(x, 0.3, mode, descending=True, rows=torch.tensor([0]))[..., 0, :], soft)
        assert torch.isfinite(argmax(x, 0.3, mode, log=True)).any(-1).all()


def test_tensor_softness_per_row():
    xt = scores((3, 6), F64, seed=9)
    s = torch.tensor([[0.05], [0.3], [2.0]], dtype=F64)
    for mode in MODES:
        batched = permutation(xt, s, mode, tol=1e-12)
        for i in range(3):
            torch.testing.assert_close(batched[i], permutation(xt[i], float(s[i]), mode, tol=1e-12))


# -- gradients ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode):
    xt = scores((2, 5), F64, seed=10).requires_grad_()
    s = torch.tensor([[0.1], [0.4]], dtype=F64, requires_grad=True)

    def full(xt, s):
        return permutation(xt, s, mode, tol=1e-12)

    def top2(xt, s):
        return permutation(xt, s, mode, descending=True, rows=torch.tensor([0, 1]), tol=1e-12)

    def arg(xt, s):
        return argmax(xt, s, mode, tol=1e-12)

    for fn in (full, top2, arg):
        assert gradcheck(fn, (xt, s), eps=1e-6, atol=1e-6, rtol=1e-4), fn.__name__


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
def test_sort_values_gradcheck(mode, descending):
    # The values have their own backward (the plan is contracted with x inside the autograd
    # function): check it against finite differences in the scores, the values and the softness,
    # with one row per backward solver (Newton-solved rows go to Cholesky, Sinkhorn-solved ones
    # to conjugate gradients).
    xt = scores((3, 6), F64, seed=14).requires_grad_()
    x = torch.randn(3, 6, dtype=F64, generator=torch.Generator().manual_seed(15)).requires_grad_()
    s = torch.tensor([[0.02], [0.3], [2.0]], dtype=F64, requires_grad=True)

    def fn(xt, x, s):
        return sort_values(xt, s, mode, descending, values=x, tol=1e-12)

    assert gradcheck(fn, (xt, x, s), eps=1e-6, atol=1e-6, rtol=1e-4)
    if mode in ("smooth", "c2") and not descending:
        assert gradgradcheck(fn, (xt, x, s), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_sort_values_equal_permutation_times_x(mode):
    xt = scores((4, 7), F64, seed=16)
    x = torch.randn(4, 7, dtype=F64, generator=torch.Generator().manual_seed(17))
    s = torch.tensor([[1e-3], [0.05], [0.3], [3.0]], dtype=F64)
    ybar = torch.randn(4, 7, dtype=F64, generator=torch.Generator().manual_seed(18))
    grads = []
    for direct in (True, False):
        leaves = [t.clone().requires_grad_() for t in (xt, x, s)]
        if direct:
            values = sort_values(leaves[0], leaves[2], mode, True, values=leaves[1], tol=1e-12)
        else:
            p = permutation(leaves[0], leaves[2], mode, descending=True, tol=1e-12)
            values = (p @ leaves[1].unsqueeze(-1)).squeeze(-1)
        (values * ybar).sum().backward()
        grads.append((values.detach(),) + tuple(t.grad for t in leaves))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)
    # Scores without gradient (gated_grad=False upstream): only the values get one, P^T ybar.
    x_leaf = x.clone().requires_grad_()
    (sort_values(xt, s, mode, True, values=x_leaf, tol=1e-12) * ybar).sum().backward()
    torch.testing.assert_close(x_leaf.grad, grads[1][2], atol=1e-9, rtol=1e-7)


def test_float32_fast_path_matches_float64():
    # The benchmark case: blurry entropic plans, solved by Sinkhorn alone, backward by conjugate
    # gradients. float32 values and gradients agree with float64 to about the solver tolerance.
    g = torch.Generator().manual_seed(19)
    x = torch.randn(64, 100, generator=g, dtype=F64)
    xt = standardize(x)
    ybar = torch.randn(64, 100, generator=g, dtype=F64)
    out = []
    for dtype in (torch.float32, F64):
        leaves = [t.to(dtype).requires_grad_() for t in (x, xt)]
        values = sort_values(leaves[1], 0.1, "smooth", values=leaves[0])
        (values * ybar.to(dtype)).sum().backward()
        out.append([values.detach().double()] + [t.grad.double() for t in leaves])
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, atol=2e-4 * float(b.abs().max()), rtol=0)


def test_conjugate_gradients_match_cholesky():
    xt = scores((6, 30), F64, seed=20)
    b, beta, _ = solver.anchor_layout(30, None, False, F64, "cpu")
    s = torch.tensor([0.05, 0.1, 0.3, 1.0, 3.0, 10.0], dtype=F64).view(-1, 1, 1)
    K, _, _ = solver._scaled_cost(xt, s, b, beta)
    _, _, _, plan, easy = solver._solve(K, s, beta, "smooth", 1e-10, 100)
    rhs = torch.randn(6, 1, 30, dtype=F64, generator=torch.Generator().manual_seed(21))
    rhs = rhs - rhs.mean(-1, keepdim=True)
    exact = solver._schur_solve(plan, rhs.mT)[0].mT
    x, redo = solver._schur_cg(plan, rhs, torch.ones(6, dtype=torch.bool))
    assert not redo.any()
    torch.testing.assert_close(x, exact, atol=1e-8 * float(exact.abs().max()), rtol=0)
    # Rows left out of CG (or short of convergence) go to Cholesky.
    active = torch.tensor([True, False, True, False, True, True])
    _, redo = solver._schur_cg(plan, rhs, active)
    assert torch.equal(redo, ~active)
    torch.testing.assert_close(solver._schur_solve_rows(plan, rhs, active), exact, atol=1e-8, rtol=0)


def test_gradcheck_log_and_gradgradcheck():
    xt = scores((1, 4), F64, seed=11).requires_grad_()
    s = torch.tensor([[0.2]], dtype=F64, requires_grad=True)
    assert gradcheck(lambda xt, s: permutation(xt, s, "smooth", log=True, tol=1e-12), (xt, s), eps=1e-6, atol=1e-6)
    for mode in ("smooth", "c2"):

        def fn(xt, s, mode=mode):
            return permutation(xt, s, mode, tol=1e-12)

        assert gradgradcheck(fn, (xt, s), eps=1e-6, atol=1e-5, rtol=1e-3)


# -- edge cases -------------------------------------------------------------------------------------------


def test_n_equals_one_and_empty_batch():
    assert torch.equal(permutation(torch.rand(3, 1), 0.1, "c0"), torch.ones(3, 1, 1))
    assert torch.equal(permutation(torch.rand(3, 1), 0.1, "smooth", log=True), torch.zeros(3, 1, 1))
    assert permutation(torch.rand(0, 4), 0.1, "smooth").shape == (0, 4, 4)
    assert argmax(torch.rand(0, 4), 0.1, "c1").shape == (0, 4)


def test_half_precision_and_ties():
    p = permutation(torch.tensor([0.2, 0.2, 0.7], dtype=torch.float16), 1e-3, "smooth")
    assert p.dtype == torch.float16
    expected = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float16)
    torch.testing.assert_close(p, expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_nan_stays_in_its_row(mode):
    xt = scores((3, 5), F64, seed=12)
    xt[1, 2] = float("nan")
    xt.requires_grad_()
    p = permutation(xt, 0.1, mode)
    assert torch.isnan(p[1]).all() and torch.isfinite(p[[0, 2]]).all()
    p[[0, 2]].sum().backward()
    assert torch.isfinite(xt.grad[[0, 2]]).all()
    xt.grad = None
    x = torch.randn(3, 5, dtype=F64, generator=torch.Generator().manual_seed(22)).requires_grad_()
    values = sort_values(xt, 0.1, mode, values=x)
    assert torch.isnan(values[1]).all() and torch.isfinite(values[[0, 2]]).all()
    values[[0, 2]].sum().backward()
    assert torch.isfinite(xt.grad[[0, 2]]).all() and torch.isfinite(x.grad[[0, 2]]).all()


@pytest.mark.parametrize("mode", MODES)
def test_finite_at_extreme_softness(mode):
    xt = scores((2, 8), torch.float32, seed=13).requires_grad_()
    for softness in (1e-6, 1e6):
        s = torch.tensor(softness, requires_grad=True)
        p = permutation(xt, s, mode)
        p[..., 0, :].sum().backward()
        assert torch.isfinite(p).all() and torch.isfinite(xt.grad).all() and torch.isfinite(s.grad)


# -- through the public operators --------------------------------------------------------------------


def _ot_losses(mode):
    w = torch.arange(1.0, 6.0, dtype=torch.float64)
    kw = {"method": "ot", "mode": mode, "softness": 1.0}
    return {
        "argmax": lambda x: (w * st.argmax(x, **kw)).sum(),
        "argsort": lambda x: (w * st.argsort(x, **kw)).sum(),
        "sort": lambda x: (w * st.sort(x, return_indices=False, **kw).values).sum(),
        "quantile": lambda x: st.quantile(x, 0.5, dim=-1, **kw),
        "rank": lambda x: (w * st.rank(x, -1, **kw)).sum(),
    }


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2"])
def test_gradient_does_not_depend_on_earlier_calls(mode):
    """Two backward passes on two fresh graphs give the same gradient, whatever ran in between
    (finite-difference calls on inputs without grad, another softness, another size), and match
    the central differences."""
    x = torch.tensor([-0.8, -0.1, 0.3, 0.5, 1.2], dtype=torch.float64)
    for name, loss in _ot_losses(mode).items():
        first = x.clone().requires_grad_(True)
        (g1,) = torch.autograd.grad(loss(first), first)
        loss(x + 1e-3)  # no graph
        st.argmax(
            torch.randn(3, 7, dtype=torch.float64, requires_grad=True), -1, method="ot", mode=mode
        ).sum().backward()
        second = x.clone().requires_grad_(True)
        (g2,) = torch.autograd.grad(loss(second), second)
        assert torch.equal(g1, g2), name
        step = 1e-6
        fd = torch.stack([(loss(x + step * e) - loss(x - step * e)) / (2 * step) for e in torch.eye(5, dtype=x.dtype)])
        torch.testing.assert_close(g1, fd, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2"])
@pytest.mark.parametrize("q", [0.3, 0.5, 0.9])
def test_quantile_scalar_q_is_the_vector_q_path(mode, q):
    """A scalar ``q`` and the 1-element vector ``[q]`` are the same OT problem: the same values,
    and the reflection ``quantile(-x, 1 - q) = -quantile(x, q)`` of the symmetric layout."""
    x = torch.tensor(
        [[0.3, -1.2, 0.8, 0.1, 0.6], [2.0, -0.5, -0.4, 1.1, 0.0], [0.0, 0.9, -2.0, 0.6, 0.4]], dtype=torch.float64
    )
    kw = {"method": "ot", "mode": mode, "softness": 0.3}
    for dim in (-1, 0):
        scalar = st.quantile(x, q, dim=dim, **kw)
        vector = st.quantile(x, torch.tensor([q], dtype=x.dtype), dim=dim, **kw)
        torch.testing.assert_close(scalar, vector[0], atol=1e-12, rtol=0)
        torch.testing.assert_close(st.quantile(-x, 1 - q, dim=dim, **kw), -scalar, atol=1e-6, rtol=0)
    # a symmetric row has its median at 0
    sym = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(
        st.quantile(sym, 0.5, dim=-1, **kw), torch.zeros(2, dtype=torch.float64), atol=1e-7, rtol=0
    )


@pytest.mark.parametrize("descending", [False, True])
def test_kept_layout_is_the_anchor_layout_of_the_kept_entries(descending):
    """Row by row, the kept block of kept_layout has the anchors and masses anchor_layout gives the
    kept entries for the requested slots among them, and every requested kept slot reads its anchor."""
    n = 8
    g = torch.Generator().manual_seed(5)
    kept = torch.rand(6, n, generator=g) > 0.35
    kept[0], kept[1] = True, False
    kept[2, 1:] = False
    before = (torch.rand(6, 1, generator=g) * (n - kept.sum(-1, keepdim=True) + 1)).long()
    xt = torch.rand(6, n, generator=g, dtype=torch.float64)
    rows = torch.tensor([0, 2, 3, 6])
    scores, b, beta, pick = solver.kept_layout(xt, kept, 0.3, rows, descending, before)
    m = b.shape[-1]
    assert scores.shape == (6, n + m - 1) and beta.shape == (6, m) and pick.shape == (6, 4)
    for r in range(6):
        k, top = int(kept[r].sum()), int(before[r])
        assert beta[r].sum() == scores.shape[-1] and (beta[r] >= 1).all()  # integer masses >= 1, all mass
        assert torch.equal(scores[r, :n][kept[r]], xt[r][kept[r]]) and (scores[r, :n][~kept[r]] > 2).all()
        inside = [int(i) - top for i in rows if 0 <= int(i) - top < k]
        if k == 0:
            assert (b[r] > 2).all()
            continue
        if not inside:  # no requested kept slot: one anchor holds them all
            want_b, want_beta = torch.zeros(1, dtype=torch.float64), torch.tensor([float(k)], dtype=torch.float64)
        else:
            want_b, want_beta, want_pick = solver.anchor_layout(
                k, torch.tensor(inside), descending, torch.float64, "cpu"
            )
        kb = len(want_b)
        torch.testing.assert_close(b[r, :kb], want_b, rtol=0, atol=1e-15)
        torch.testing.assert_close(beta[r, :kb], want_beta, rtol=0, atol=0)
        assert (b[r, kb:] > 2).all()  # the far anchors
        if inside:
            valid = [(0 <= int(i) - top < k) for i in rows]
            assert pick[r][torch.tensor(valid)].tolist() == want_pick.tolist()
