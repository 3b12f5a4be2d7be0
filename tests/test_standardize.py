"""Tests of ``softtorch._core.standardize``: the closed-form autograd function against a plain
autograd reference (values and gradients, rows with +-inf and NaN), gradcheck (batched, double
backward), ``torch.func.vmap`` / ``torch.func.grad`` and ``torch.compile``."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from softtorch._core.standardize import VAR_EPS, Standardized, standardize

INF, NAN = math.inf, math.nan
F64 = torch.float64
ROWS, N = 7, 9
NAN_ROW = 2  # the one row of `inputs` holding a NaN


def reference(x: torch.Tensor) -> Standardized:
    """Plain autograd: statistics over the finite entries, which alone reach them through ``where``
    (so a +-inf entry's zero derivative never multiplies an infinity); the non-finite entries go
    to the sigmoid unchanged: +-inf to exactly 1 and 0, NaN to NaN."""
    finite = torch.isfinite(x)
    zero = torch.zeros_like(x)
    count = finite.sum(-1, keepdim=True).clamp_min(1).to(x.dtype)
    safe = torch.where(finite, x, zero)
    mean = safe.sum(-1, keepdim=True) / count
    spread = torch.where(finite, safe - mean, zero)
    std = torch.sqrt((spread * spread).sum(-1, keepdim=True) / count + VAR_EPS)
    return Standardized(torch.sigmoid(torch.where(finite, spread / std, x)), mean, std)


def inputs(dtype=F64, device="cpu") -> torch.Tensor:
    """Rows of shifted, scaled normals; row 1 has +-inf, row 2 a NaN, row 3 is constant (std at its
    floor sqrt(1e-6); 0.75 has an exact mean, so t is exactly 0 and not 1000x a rounding error),
    row 4 is all +-inf, row 5 has a single finite entry."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, N, generator=g, dtype=F64) * 3.0 + 1.5
    x[1, 2], x[1, 5] = INF, -INF
    x[NAN_ROW, 4] = NAN
    x[3] = 0.75
    x[4] = torch.tensor([INF, -INF] * (N // 2) + [INF], dtype=F64)
    x[5, 1:] = INF
    return x.to(dtype=dtype, device=device)


def weights(x: torch.Tensor, seed: int = 1):
    """Cotangent weights for the scores, mean, std and inverse outputs."""
    g = torch.Generator().manual_seed(seed)
    row = x.shape[:-1] + (1,)
    return [torch.randn(s, generator=g, dtype=F64).to(x) for s in (x.shape, row, row, x.shape)]


def outputs(std_fn, x):
    """Scores, mean, std and ``inverse`` of (permuted, shrunk) scores, as a soft sort would use them."""
    s = std_fn(x)
    return s.scores, s.mean, s.std, s.inverse(0.9 * s.scores.flip(-1) + 0.05)


def loss(std_fn, x, w):
    return sum((o * wi).nan_to_num(nan=0.0).sum() for o, wi in zip(outputs(std_fn, x), w))


def assert_grads_close(got, want, tol):
    """Close up to the dtype's tolerance, absolute errors measured against the largest gradient (a
    constant row divides by sqrt(1e-6), which also scales its rounding errors)."""
    scale = max(1.0, float(want.nan_to_num(nan=0.0).abs().max()))
    torch.testing.assert_close(got, want, equal_nan=True, rtol=tol["rtol"], atol=tol["atol"] * scale)


def grad_of(std_fn, x, w):
    leaf = x.detach().clone().requires_grad_()
    (g,) = torch.autograd.grad(loss(std_fn, leaf, w), leaf)
    return g


# ----------------------------------------------------------------------------------------------
# values and gradients against the reference
# ----------------------------------------------------------------------------------------------


def test_values_match_reference(dtype, tol, device):
    x = inputs(dtype, device)
    for got, want in zip(outputs(standardize, x), outputs(reference, x)):
        torch.testing.assert_close(got, want, equal_nan=True, **tol)
    s = standardize(x)
    assert s.scores[1, 2] == 1 and s.scores[1, 5] == 0  # +-inf squash to exactly 1 and 0
    assert torch.isnan(s.scores[NAN_ROW, 4]) and torch.isfinite(s.scores[NAN_ROW, :4]).all()
    assert torch.isfinite(s.mean).all() and torch.isfinite(s.std).all()  # a NaN is left out of the statistics
    finite_scores = s.scores[torch.isfinite(x)]
    assert ((finite_scores > 0) & (finite_scores < 1)).all()


def test_values_of_a_plain_row(dtype, tol, device):
    """A finite row: the textbook formula, population variance."""
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0, 4.0], dtype=dtype, device=device)
    mean, var = x.mean(), x.var(correction=0)
    s = standardize(x)
    torch.testing.assert_close(s.mean, mean.reshape(1), **tol)
    torch.testing.assert_close(s.std, torch.sqrt(var + VAR_EPS).reshape(1), **tol)
    torch.testing.assert_close(s.scores, torch.sigmoid((x - mean) / torch.sqrt(var + VAR_EPS)), **tol)


def test_gradients_match_reference(dtype, tol, device):
    x = inputs(dtype, device)
    w = weights(x)
    got, want = grad_of(standardize, x, w), grad_of(reference, x, w)
    keep = torch.arange(ROWS, device=device) != NAN_ROW
    assert_grads_close(got[keep], want[keep], tol)
    assert torch.isfinite(got[keep]).all()  # rows with +-inf included
    assert (got[~torch.isfinite(x) & keep[:, None]] == 0).all()
    assert got[0].abs().sum() > 0 and got[1].abs().sum() > 0  # not vacuous


@pytest.mark.parametrize("path", ["scores", "mean", "std", "stats_only"])
def test_gradient_of_each_output_matches_reference(path, dtype, tol, device):
    """Each cotangent alone (the backward skips the absent ones); ``stats_only`` is the caller
    detaching the scores (``gated_grad=False``) while mapping values back with mean and std."""
    x = inputs(dtype, device)
    keep = torch.arange(ROWS, device=device) != NAN_ROW
    v = torch.rand(x.shape, generator=torch.Generator().manual_seed(3), dtype=F64).to(x)

    def pick(std_fn):
        leaf = x.detach().clone().requires_grad_()
        s = std_fn(leaf)
        out = {"scores": s.scores, "mean": s.mean, "std": s.std, "stats_only": s.inverse(v)}[path]
        (g,) = torch.autograd.grad((out * torch.linspace(-1, 2, out.shape[-1]).to(out)).nan_to_num().sum(), leaf)
        return g

    got, want = pick(standardize), pick(reference)
    assert_grads_close(got[keep], want[keep], tol)
    assert torch.isfinite(got[keep]).all()
    if path != "scores":  # through the statistics only, even the NaN row's gradient is finite
        assert_grads_close(got, want, tol)


def test_nan_row_does_not_touch_other_rows(dtype, tol, device):
    x = inputs(dtype, device)
    others = torch.arange(ROWS, device=device) != NAN_ROW
    w = weights(x)
    w_others = [wi[others] for wi in w]
    with_nan, without = outputs(standardize, x), outputs(standardize, x[others])
    for a, b in zip(with_nan, without):
        torch.testing.assert_close(a[others], b, **tol)
    g_with, g_without = grad_of(standardize, x, w), grad_of(standardize, x[others], w_others)
    assert_grads_close(g_with[others], g_without, tol)
    assert torch.isfinite(g_with[others]).all()


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_computes_like_the_reference(half, device):
    """No promotion inside: half inputs are computed in their own dtype, like the reference."""
    x = inputs(F64, device)[[0, 1, 3]].to(half) / 2
    s, r = standardize(x), reference(x)
    assert s.scores.dtype == s.mean.dtype == s.std.dtype == half
    for a, b in zip(s, r):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    leaf = x.clone().requires_grad_()
    outs = outputs(standardize, leaf)
    sum(o.float().sum() for o in outs).backward()
    assert leaf.grad.dtype == half and torch.isfinite(leaf.grad).all()


def test_disabled_and_inverse(device):
    x = inputs(F64, device)[[0, 3]]
    off = standardize(x, enabled=False)
    assert off.scores is x and off.mean is None and off.std is None and off.inverse(x) is x
    s = standardize(x)
    torch.testing.assert_close(s.inverse(s.scores), x, rtol=1e-10, atol=1e-10)  # logit undoes the sigmoid
    eps = torch.finfo(F64).eps
    ends = torch.tensor([[0.0, 1.0]] * 2, dtype=F64, device=device)
    torch.testing.assert_close(s.inverse(ends), torch.logit(ends.clamp(eps, 1 - eps)) * s.std + s.mean)


# ----------------------------------------------------------------------------------------------
# gradcheck: first and second order, batched
# ----------------------------------------------------------------------------------------------


def _finite_inputs(device, rows=3, n=5):
    g = torch.Generator().manual_seed(4)
    grid = torch.rand(rows, n, generator=g).argsort(-1).to(F64)
    x = grid + 0.25 * torch.rand(rows, n, generator=g, dtype=F64) - 2.0
    return x.to(device).requires_grad_()


def test_gradcheck_all_outputs(device):
    x = _finite_inputs(device)
    fn = lambda x: outputs(standardize, x)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), check_batched_grad=True)
    assert torch.autograd.gradgradcheck(fn, (x,), check_batched_grad=True)


def test_gradcheck_with_infinite_entries(device):
    """+-inf entries are constants: zero derivative there, exact derivatives at the others."""
    x = _finite_inputs(device).detach()
    x[0, 1], x[1, 3] = INF, -INF
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: outputs(standardize, x), (x,), check_batched_grad=True)


@pytest.mark.parametrize("path", ["scores", "stats_only"])
def test_gradcheck_partial_paths(path, device):
    x = _finite_inputs(device)
    v = torch.linspace(0.1, 0.9, x.shape[-1], dtype=F64, device=device)

    def fn(x):
        s = standardize(x)
        return s.scores if path == "scores" else (s.mean, s.std, s.inverse(v))

    assert torch.autograd.gradcheck(fn, (x,), check_batched_grad=True)
    assert torch.autograd.gradgradcheck(fn, (x,))


# ----------------------------------------------------------------------------------------------
# function transforms, compile, no host synchronization
# ----------------------------------------------------------------------------------------------


def test_vmap_equals_the_batched_call(dtype, tol, device):
    x = inputs(dtype, device).reshape(ROWS, 1, N).expand(ROWS, 2, N) * torch.tensor([[1.0], [-2.0]]).to(device, dtype)
    got = torch.func.vmap(lambda r: outputs(standardize, r))(x)
    for a, b in zip(got, outputs(standardize, x)):
        torch.testing.assert_close(a, b, equal_nan=True, **tol)


def test_func_grad_and_vmap_of_grad_equal_autograd(dtype, tol, device):
    x = inputs(dtype, device)
    keep = torch.arange(ROWS, device=device) != NAN_ROW
    w = weights(x)
    want = grad_of(standardize, x, w)
    per_row = torch.func.vmap(torch.func.grad(lambda r, *wr: loss(standardize, r, wr)))(x, *w)
    assert_grads_close(per_row[keep], want[keep], tol)
    whole = torch.func.grad(lambda x: loss(standardize, x, w))(x)
    assert_grads_close(whole, want, tol)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo tracing an autograd.Function
def test_compile_fullgraph_matches_eager(device):
    x = inputs(torch.float32, device)
    keep = torch.arange(ROWS, device=device) != NAN_ROW
    w = weights(x)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(lambda x: outputs(standardize, x), fullgraph=True, backend="aot_eager")
        leaf_c, leaf_e = x.clone().requires_grad_(), x.clone().requires_grad_()
        got, want = compiled(leaf_c), outputs(standardize, leaf_e)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, equal_nan=True, rtol=1e-6, atol=1e-6)
        grads = [
            torch.autograd.grad(sum((o * wi).nan_to_num().sum() for o, wi in zip(outs, w)), leaf)[0]
            for outs, leaf in ((got, leaf_c), (want, leaf_e))
        ]
        torch.testing.assert_close(grads[0][keep], grads[1][keep], rtol=1e-5, atol=1e-5)
    finally:
        torch._dynamo.reset()


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_no_host_synchronization(device):
    x = inputs(F64, device).requires_grad_()
    recorder = _OpRecorder()
    with recorder:
        loss(standardize, x, weights(x)).backward()
    syncs = [op for op in recorder.ops if "_local_scalar_dense" in op or "nonzero" in op]
    assert not syncs, syncs
    assert any("_Standardize" in op or "nan_to_num" in op for op in recorder.ops)  # the recorder saw the work


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch's first jvp
def test_forward_mode_matches_reference(dtype, tol, device):
    """``jvp`` (forward mode, also under the +-inf rows) and ``hessian`` (forward over reverse)."""
    x = inputs(dtype, device)
    keep = torch.arange(ROWS, device=device) != NAN_ROW
    x = x[keep]
    tangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=F64).to(x)
    _, got = torch.func.jvp(lambda x: outputs(standardize, x), (x,), (tangent,))
    _, want = torch.func.jvp(lambda x: outputs(reference, x), (x,), (tangent,))
    for a, b in zip(got, want):
        assert_grads_close(a, b, tol)
    row = x[0]
    w = weights(row)
    got_h = torch.func.hessian(lambda r: loss(standardize, r, w))(row)
    want_h = torch.func.hessian(lambda r: loss(reference, r, w))(row)
    assert_grads_close(got_h, want_h, {"rtol": 100 * tol["rtol"], "atol": 100 * tol["atol"]})
