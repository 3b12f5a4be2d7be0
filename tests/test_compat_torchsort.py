"""Tests of softtorch.compat.torchsort against a plain sequential PAV written here (torchsort's
definitions: projections onto the permutahedron of the slots n, ..., 1), and torchsort's README
examples (numbers recorded by hand from its README and from torchsort 0.1.10)."""

from __future__ import annotations

import math

import pytest
import torch

from softtorch.compat import torchsort

# --- the independent reference: one row at a time, in Python floats ----------------------------


def _lse(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _value(reg, s, w):
    """Value of one block: the mean of s - w (l2) or LSE(s) - LSE(w) (kl, in log space)."""
    if reg == "l2":
        return sum(a - b for a, b in zip(s, w)) / len(s)
    return _lse(s) - _lse(w)


def _pav(reg, s, w):
    """Blocks ``[start, end, value]`` of the decreasing isotonic solution for decreasing s, w."""
    blocks = []
    for i in range(len(s)):
        blocks.append([i, i + 1, _value(reg, s[i : i + 1], w[i : i + 1])])
        while len(blocks) > 1 and blocks[-2][2] <= blocks[-1][2]:
            _, end, _ = blocks.pop()
            start = blocks.pop()[0]
            blocks.append([start, end, _value(reg, s[start:end], w[start:end])])
    return blocks


def _projection(reg, z, w, g):
    """P(z, w) (kl: in log space, over the permutahedron of e^w) in the order of z, and the
    vector-Jacobian products (grad_z, grad_w) for the cotangent g, from the blocks."""
    n = len(z)
    oz = sorted(range(n), key=lambda i: -z[i])
    ow = sorted(range(n), key=lambda i: -w[i])
    s, ws, gs = [z[i] for i in oz], [w[i] for i in ow], [g[i] for i in oz]
    out, grad_z, grad_w = [0.0] * n, [0.0] * n, [0.0] * n
    for start, end, value in _pav(reg, s, ws):
        span = range(start, end)
        total = sum(gs[k] for k in span)
        if reg == "l2":
            in_s = in_w = [1 / (end - start)] * (end - start)
        else:  # d value / d s_k = softmax(s_B)_k, d value / d w_k = -softmax(w_B)_k
            ls, lw = _lse(s[start:end]), _lse(ws[start:end])
            in_s = [math.exp(s[k] - ls) for k in span]
            in_w = [math.exp(ws[k] - lw) for k in span]
        for j, k in enumerate(span):
            out[oz[k]] = s[k] - value
            grad_z[oz[k]] = gs[k] - in_s[j] * total
            grad_w[ow[k]] = in_w[j] * total
    return out, grad_z, grad_w


def reference_rank(reg, x, eps, g):
    """Ranks P(x / eps, rho) (kl: exp of the log-space projection onto P(log rho)) and d/dx of <g, ranks>."""
    n = len(x)
    rho = [float(n - j) for j in range(n)]
    z = [v / eps for v in x]
    if reg == "l2":
        out, grad_z, _ = _projection(reg, z, rho, g)
        return out, [v / eps for v in grad_z]
    log_ranks, _, _ = _projection(reg, z, [math.log(r) for r in rho], [0.0] * n)
    ranks = [math.exp(v) for v in log_ranks]
    _, grad_z, _ = _projection(reg, z, [math.log(r) for r in rho], [a * b for a, b in zip(g, ranks)])
    return ranks, [v / eps for v in grad_z]


def reference_sort(reg, x, eps, g):
    """Sorted values -P(rho / eps, -x) and d/dx of <g, values> (= the w-VJP of P: two signs cancel)."""
    n = len(x)
    out, _, grad_w = _projection(reg, [(n - j) / eps for j in range(n)], [-v for v in x], g)
    return [-v for v in out], grad_w


# --- agreement with the reference ---------------------------------------------------------------

STRENGTHS = (0.01, 0.1, 1.0, 10.0, 100.0)


@pytest.mark.parametrize("shape", [(1, 5), (8, 100), (3, 1000)])
@pytest.mark.parametrize("regularization", ["l2", "kl"])
@pytest.mark.parametrize("op", ["sort", "rank"])
def test_matches_sequential_pav(shape, regularization, op):
    g = torch.Generator().manual_seed(shape[1])
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    cot = torch.randn(shape, generator=g, dtype=torch.float64)
    fn, ref = (torchsort.soft_sort, reference_sort) if op == "sort" else (torchsort.soft_rank, reference_rank)
    for eps in STRENGTHS:
        xr = x.clone().requires_grad_()
        got = fn(xr, regularization, eps)
        got.backward(cot)
        rows = [ref(regularization, row, eps, c) for row, c in zip(x.tolist(), cot.tolist())]
        expected = torch.tensor([r[0] for r in rows], dtype=x.dtype)
        grad = torch.tensor([r[1] for r in rows], dtype=x.dtype)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5, msg=lambda m, eps=eps: f"eps={eps}: {m}")
        torch.testing.assert_close(xr.grad, grad, rtol=0, atol=1e-5, msg=lambda m, eps=eps: f"eps={eps}: {m}")


def test_sort_and_rank_are_the_hard_ones_at_small_strength():
    x = torch.tensor([[0.3, -1.2, 2.0, 0.5]], dtype=torch.float64)
    for reg in ("l2", "kl"):
        torch.testing.assert_close(torchsort.soft_sort(x, reg, 1e-4), x.sort(-1).values)
        torch.testing.assert_close(
            torchsort.soft_rank(x, reg, 1e-4), torch.tensor([[2.0, 1.0, 4.0, 3.0]], dtype=x.dtype)
        )


def test_large_strength_pools_everything():
    x = torch.tensor([[0.3, -1.2, 2.0, 0.5]], dtype=torch.float64)
    # Still spread by about (n - 1) / eps (values) and x / eps (ranks).
    torch.testing.assert_close(torchsort.soft_sort(x, "l2", 1e6), x.mean().expand(1, 4), rtol=0, atol=2e-6)
    torch.testing.assert_close(
        torchsort.soft_rank(x, "l2", 1e6), torch.full((1, 4), 2.5, dtype=x.dtype), rtol=0, atol=2e-6
    )


# --- torchsort's README ---------------------------------------------------------------------------


def test_readme_examples():
    x = torch.tensor([[8, 0, 5, 3, 2, 1, 6, 7, 9]])
    four = dict(rtol=0, atol=5e-5)
    torch.testing.assert_close(
        torchsort.soft_sort(x, regularization_strength=1.0),
        torch.tensor([[0.5556, 1.5556, 2.5556, 3.5556, 4.5556, 5.5556, 6.5556, 7.5556, 8.5556]]),
        **four,
    )
    torch.testing.assert_close(
        torchsort.soft_sort(x, regularization_strength=0.1), torch.tensor([[0.0, 1, 2, 3, 5, 6, 7, 8, 9]]), **four
    )
    torch.testing.assert_close(torchsort.soft_rank(x), torch.tensor([[8.0, 1, 5, 4, 3, 2, 6, 7, 9]]), **four)
    xf = x.float().requires_grad_()
    (grad,) = torch.autograd.grad(torchsort.soft_sort(xf)[0, 0], xf)
    torch.testing.assert_close(grad, torch.full((1, 9), 1 / 9), **four)


def test_readme_spearman():
    def spearmanr(pred, target, **kw):
        pred = torchsort.soft_rank(pred, **kw)
        target = torchsort.soft_rank(target, **kw)
        pred = pred - pred.mean()
        pred = pred / pred.norm()
        target = target - target.mean()
        target = target / target.norm()
        return (pred * target).sum()

    pred = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]], requires_grad=True)
    target = torch.tensor([[5.0, 6.0, 7.0, 8.0, 7.0]])
    spearman = spearmanr(pred, target)
    torch.testing.assert_close(spearman, torch.tensor(0.8321), rtol=0, atol=5e-5)
    (grad,) = torch.autograd.grad(spearman, pred)
    expected = torch.tensor([[-5.5470e-02, 0.0, 5.5470e-02, 1.1094e-01, -1.1094e-01]])
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-6)


def test_kl_values_recorded_from_torchsort():
    """Values of torchsort 0.1.10 for "kl" (recorded), which the module documents."""
    x = torch.tensor([[8.0, 0, 5, 3, 2, 1, 6, 7, 9]], dtype=torch.float64)
    torch.testing.assert_close(
        torchsort.soft_sort(x, "kl", 1.0), torch.arange(9, dtype=x.dtype).unsqueeze(0) + 0.011568, rtol=0, atol=1e-6
    )
    y = torch.tensor([[1.0, 2, 3, 4, 5]], dtype=torch.float64, requires_grad=True)
    ranks = torchsort.soft_rank(y, "kl", 2.0)
    torch.testing.assert_close(ranks, torch.tensor([[1.132622, 1.867378, 3, 4, 5]], dtype=x.dtype), rtol=0, atol=1e-6)
    (grad,) = torch.autograd.grad(ranks[0, 0], y)
    torch.testing.assert_close(grad, torch.tensor([[0.352506, -0.352506, 0, 0, 0]], dtype=x.dtype), rtol=0, atol=1e-6)


# --- gradients, shapes, dtypes, arguments ----------------------------------------------------------


@pytest.mark.parametrize("regularization", ["l2", "kl"])
@pytest.mark.parametrize("fn", [torchsort.soft_sort, torchsort.soft_rank])
def test_gradcheck(regularization, fn):
    x = torch.tensor([[0.3, -1.2, 2.0, 0.5, 0.45], [1.0, 0.9, -0.3, 0.2, 0.0]], dtype=torch.float64)
    strength = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, e: fn(a, regularization, e), (x.requires_grad_(), strength))


@pytest.mark.parametrize("fn", [torchsort.soft_sort, torchsort.soft_rank])
def test_dim_takes_any_shape(fn):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 3, generator=g)
    got = fn(x, "kl", 0.5, dim=1)
    expected = fn(x.movedim(1, -1).reshape(-1, 6), "kl", 0.5).reshape(2, 3, 6).movedim(-1, 1)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(fn(x[0, :, 0], dim=0), fn(x[0, :, 0].unsqueeze(0))[0])


def test_half_precision_computes_in_float32():
    x = torch.tensor([[0.3, -1.2, 2.0, 0.5]])
    for fn in (torchsort.soft_sort, torchsort.soft_rank):
        got = fn(x.half(), "l2", 0.5)
        assert got.dtype == torch.float16
        torch.testing.assert_close(got.float(), fn(x, "l2", 0.5), rtol=0, atol=2e-3)


def test_bad_arguments():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"values must be a 2-D tensor .* got shape \(3,\)"):
        torchsort.soft_rank(torch.randn(3))
    with pytest.raises(ValueError, match="regularization must be one of 'l2', 'kl', got 'l1'"):
        torchsort.soft_sort(x, "l1")
    with pytest.raises(ValueError, match="regularization_strength must be a positive finite number, got 0"):
        torchsort.soft_sort(x, "l2", 0)
    with pytest.raises(TypeError, match="regularization_strength must be a positive number"):
        torchsort.soft_rank(x, "l2", "1")
    with pytest.raises(ValueError, match=r"dim must be in \[-2, 1\]"):
        torchsort.soft_rank(x, dim=2)
    with pytest.raises(TypeError, match="values must be a torch.Tensor"):
        torchsort.soft_sort([[1.0, 2.0]])
