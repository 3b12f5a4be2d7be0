"""method="smooth_sort": the entropic projection onto the smoothed permutahedron (issue 16).

The reference below solves the defining problem the plainest way: the bounds from every subset,
and damped Newton on the primal (in the prefix sums, dense Hessian by autograd), nothing shared
with the method's dual solver, product tree or cyclic reduction.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from helpers import F64, HYP, distinct, seed_x
from hypothesis import given
from hypothesis import strategies as hst

import softtorch
from softtorch._core.smooth_permutahedron import smooth_bounds
from softtorch.methods import get_method
from softtorch.methods import smooth_sort as ss

# -- the reference --------------------------------------------------------------------------------


def _smooth_bounds(w, t):
    """``t log e_k(exp(w / t))``, ``k = 1..n``, summing ``exp`` over all subsets (shifted by the max)."""
    n = len(w)
    out = []
    for k in range(1, n + 1):
        sums = [sum(c) / t for c in itertools.combinations(w, k)]
        top = max(sums)
        out.append(t * (top + math.log(math.fsum(math.exp(v - top) for v in sums))))
    return out


def _h(u):
    return u - u * torch.log(u)


def _reference_projection(z, w, softness):
    """The maximizer of <z_sorted, y> + sum h(b - Ay) + sum h(Dy) over sum(y) = b_n, in z's order."""
    n = len(z)
    b_all = _smooth_bounds(w, min(softness, 1.0))
    b, total = torch.tensor(b_all[:-1], dtype=F64), sum(w)
    order = sorted(range(n), key=lambda i: -z[i])
    s = torch.tensor([z[i] for i in order], dtype=F64)

    def objective(prefix):
        y = torch.diff(torch.cat([prefix.new_zeros(1), prefix, prefix.new_full((1,), total)]))
        slack, gap = b - prefix, y[:-1] - y[1:]
        if (slack <= 0).any() or (gap <= 0).any():
            return None
        return (s * y).sum() + _h(slack).sum() + _h(gap).sum()

    # A strictly feasible start: the mean plus a small decreasing spread.
    mean = total / n
    spread = torch.arange(n - 1, -n, -2, dtype=F64) / 2
    room = min(b_all[k - 1] - k * mean for k in range(1, n))
    y0 = mean + 0.5 * room / (n * n) * spread
    prefix = torch.cumsum(y0, 0)[:-1]
    for _ in range(200):
        f = objective(prefix)
        g = torch.autograd.functional.jacobian(objective, prefix)
        hess = torch.autograd.functional.hessian(objective, prefix)
        step = -torch.linalg.solve(hess, g)
        eta = 1.0
        while eta > 1e-12:
            new = objective(prefix + eta * step)
            if new is not None and new >= f - 1e-14 * abs(f):
                break
            eta /= 2
        prefix = prefix + eta * step
        if (g * step).abs().sum() < 1e-26:
            break
    y = torch.diff(torch.cat([prefix.new_zeros(1), prefix, prefix.new_full((1,), total)]))
    out = torch.empty(n, dtype=F64)
    out[order] = y
    return out


def _reference_sort(x, softness):
    n = len(x)
    slots = [j / (n - 1) / softness for j in range(n)]
    return _reference_projection(slots, x, softness)  # ascending: the slots' order


def _reference_rank(x, softness, descending=True):
    n = len(x)
    z = [(-v if descending else v) / softness for v in x]
    return (n - 1) * _reference_projection(z, [j / (n - 1) for j in range(1, n + 1)], softness)


# -- values -----------------------------------------------------------------------------------------


def test_issue_value():
    """The value issue 16 gives (SoftJAX): the definition applies to x itself, not standardized."""
    out = softtorch.sort(seed_x(F64), method="smooth_sort", softness=0.2).values
    torch.testing.assert_close(out, torch.tensor([-0.8572, -0.2221, 0.2973, 0.8821], dtype=F64), atol=5e-5, rtol=0)


CASES = [
    ([-0.2, -1.0, 0.3, 1.0], 0.2),
    ([0.4, -1.3, 2.2, 0.1, -0.6], 0.05),
    ([1.0, 1.5, -0.5], 1.0),
    ([3.0, -2.0, 0.5, 0.6, 1.9, -0.1], 3.0),
    ([0.25, -0.25], 0.5),
    ([2.0, 2.0, -1.0, 0.0], 0.3),  # a tie
]


@pytest.mark.parametrize("x, softness", CASES)
def test_sort_matches_the_defining_problem(x, softness):
    got = ss.sort_values(torch.tensor(x, dtype=F64), softness, "smooth")
    torch.testing.assert_close(got, _reference_sort(x, softness), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("x, softness", CASES)
@pytest.mark.parametrize("descending", [True, False])
def test_rank_matches_the_defining_problem(x, softness, descending):
    got = ss.rank(torch.tensor(x, dtype=F64), softness, "smooth", descending=descending)
    torch.testing.assert_close(got, _reference_rank(x, softness, descending), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("t", [1.0, 0.05])
def test_bounds_are_the_subset_log_sum_exps(t):
    g = torch.Generator().manual_seed(3)
    for n in (1, 2, 5, 7):
        w = torch.randn(3, n, generator=g, dtype=F64) * 2
        b, total = smooth_bounds(w, t)
        for row in range(3):
            want = torch.tensor(_smooth_bounds(w[row].tolist(), t), dtype=F64)
            torch.testing.assert_close(torch.cat([b[row], total[row]]), want)


def test_one_element_and_empty_batch():
    x = torch.tensor([[0.3], [-1.2]], dtype=F64)
    assert torch.equal(softtorch.sort(x, method="smooth_sort").values, x)
    assert torch.equal(softtorch.rank(x, dim=-1, method="smooth_sort"), torch.ones_like(x))
    empty = torch.zeros(0, 5)
    assert softtorch.sort(empty, method="smooth_sort").values.shape == (0, 5)


def test_infinities_take_the_end_slots():
    inf = math.inf
    x = torch.tensor([[0.5, inf, -1.0, 2.0], [-inf, 0.2, 1.5, -inf]], dtype=F64)
    out = softtorch.sort(x, method="smooth_sort", softness=1e-3).values
    want = torch.tensor([[-1.0, 0.5, 2.0, inf], [-inf, -inf, 0.2, 1.5]], dtype=F64)
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)


# -- properties -------------------------------------------------------------------------------------


@HYP
@given(
    rows=hst.integers(1, 3),
    n=hst.integers(2, 9),
    softness=hst.floats(1e-2, 10.0),
    seed=hst.integers(0, 2**16),
)
def test_sort_properties(rows, n, softness, seed):
    """Strictly monotone, sums to sum(x), translation-equivariant, odd (sort(-x) = -reversed sort(x))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, n, generator=g, dtype=F64) * 2
    y = softtorch.sort(x, method="smooth_sort", softness=softness).values
    assert (y.diff(dim=-1) > 0).all()
    torch.testing.assert_close(y.sum(-1), x.sum(-1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(softtorch.sort(x + 3.0, method="smooth_sort", softness=softness).values, y + 3.0)
    torch.testing.assert_close(softtorch.sort(-x, method="smooth_sort", softness=softness).values, -y.flip(-1))
    down = softtorch.sort(x, descending=True, method="smooth_sort", softness=softness).values
    torch.testing.assert_close(down, y.flip(-1))


@HYP
@given(n=hst.integers(2, 9), softness=hst.floats(1e-2, 10.0), seed=hst.integers(0, 2**16))
def test_rank_properties(n, softness, seed):
    """Ranks sum to n (n + 1) / 2, and the two orders mirror each other: up = n + 1 - down."""
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    down = softtorch.rank(x, dim=-1, method="smooth_sort", softness=softness)
    up = softtorch.rank(x, dim=-1, descending=False, method="smooth_sort", softness=softness)
    torch.testing.assert_close(down.sum(-1), torch.full((2,), n * (n + 1) / 2, dtype=F64))
    torch.testing.assert_close(up, n + 1 - down)


def test_tends_to_the_hard_sort():
    x = distinct((4, 12), seed=2)  # gaps >= 0.75
    hard = x.sort(-1).values
    ranks = softtorch.rank(x, dim=-1, method="smooth_sort", mode="hard")
    errors = []
    for softness in (0.1, 0.01, 1e-3):
        errors.append((softtorch.sort(x, method="smooth_sort", softness=softness).values - hard).abs().max().item())
        rank_error = (softtorch.rank(x, dim=-1, method="smooth_sort", softness=softness) - ranks).abs().max().item()
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < 1e-6 and rank_error < 1e-3, (errors, rank_error)


def test_batched_rows_equal_single_rows():
    x = distinct((5, 7), seed=4)
    softness = torch.tensor([[0.05], [0.2], [1.0], [3.0], [0.5]], dtype=F64)
    batch = softtorch.sort(x, method="smooth_sort", softness=softness).values
    for i in range(5):
        one = softtorch.sort(x[i], method="smooth_sort", softness=softness[i, 0].item()).values
        torch.testing.assert_close(batch[i], one, rtol=1e-12, atol=1e-12)
    # any dim: sorting along dim 0 is sorting the transpose
    along0 = softtorch.sort(x.T, dim=0, method="smooth_sort", softness=0.3).values
    torch.testing.assert_close(along0, softtorch.sort(x, method="smooth_sort", softness=0.3).values.T)


def test_value_operators_read_the_soft_sort():
    x = distinct((3, 6), seed=5)
    kw = dict(method="smooth_sort", softness=0.3)
    y = softtorch.sort(x, **kw).values
    torch.testing.assert_close(softtorch.max(x, dim=-1, **kw).values, y[:, -1])
    torch.testing.assert_close(softtorch.min(x, dim=-1, **kw).values, y[:, 0])
    torch.testing.assert_close(softtorch.topk(x, 2, **kw).values, y.flip(-1)[:, :2])
    # median(x, dim) returns soft indices, which a values-only method refuses; the value alone is per row
    for i in range(3):
        torch.testing.assert_close(softtorch.median(x[i], **kw), y[i, 2])
    torch.testing.assert_close(softtorch.quantile(x, 0.5, dim=-1, **kw), (y[:, 2] + y[:, 3]) / 2)


# -- gradients --------------------------------------------------------------------------------------


def test_gradcheck_sort_values_and_softness():
    x = distinct((2, 5), seed=6).requires_grad_()
    s = torch.tensor([[0.3], [1.5]], dtype=F64, requires_grad=True)
    fn = lambda x, s: softtorch.sort(x, method="smooth_sort", softness=s).values  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, s))
    assert torch.autograd.gradcheck(lambda x: softtorch.sort(x, descending=True, method="smooth_sort").values, (x,))


@pytest.mark.parametrize("descending", [True, False])
def test_gradcheck_rank(descending):
    x = distinct((2, 5), seed=7).requires_grad_()
    s = torch.tensor([[0.2], [2.0]], dtype=F64, requires_grad=True)
    fn = lambda x, s: softtorch.rank(x, dim=-1, descending=descending, method="smooth_sort", softness=s)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, s))


def test_gradcheck_reductions():
    x = distinct((2, 6), seed=8).requires_grad_()
    kw = dict(method="smooth_sort", softness=0.4)
    assert torch.autograd.gradcheck(lambda x: softtorch.max(x, dim=-1, **kw).values, (x,))
    assert torch.autograd.gradcheck(lambda x: softtorch.quantile(x, 0.3, dim=-1, **kw), (x,))


# -- arguments --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_smooth_mode_only(mode):
    with pytest.raises(ValueError, match=rf"supports mode='smooth' only.*got mode='{mode}'"):
        softtorch.sort(seed_x(), method="smooth_sort", mode=mode)
    assert get_method("smooth_sort").modes == ("smooth",)


def test_no_soft_indices():
    with pytest.raises(ValueError, match="smooth_sort.*no soft permutation"):
        softtorch.argsort(seed_x(), method="smooth_sort")
    with pytest.raises(ValueError, match="to get indices"):
        softtorch.sort(seed_x(), method="smooth_sort", return_indices=True)
    assert softtorch.sort(seed_x(), method="smooth_sort").indices is None


def test_hard_mode_is_torch():
    x = distinct((3, 5), seed=9)
    assert torch.equal(softtorch.sort(x, method="smooth_sort", mode="hard").values, x.sort(-1).values)


def test_standardize_does_not_apply():
    x = seed_x(F64) * 7.0 + 2.0
    kw = dict(method="smooth_sort", softness=0.2)
    assert not get_method("smooth_sort").standardizes
    assert torch.equal(softtorch.sort(x, standardize=False, **kw).values, softtorch.sort(x, **kw).values)


def test_method_options():
    x = distinct((2, 8), seed=10)
    exact = softtorch.sort(x, method="smooth_sort", softness=0.2).values
    capped = softtorch.sort(x, method="smooth_sort", softness=0.2, method_options={"max_iter": 1}).values
    assert (capped - exact).abs().max() > 1e-3
    loose = softtorch.sort(x, method="smooth_sort", softness=0.2, method_options={"tol": 1e-6}).values
    torch.testing.assert_close(loose, exact, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"method_options accepts the keys 'tol', 'max_iter', got 'sinkhorn_tol'"):
        softtorch.sort(x, method="smooth_sort", method_options={"sinkhorn_tol": 1e-3})
    with pytest.raises(ValueError, match=r"method_options\['tol'\] must be a positive finite number, got -1"):
        softtorch.sort(x, method="smooth_sort", method_options={"tol": -1})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_returns_its_dtype(dtype):
    x = distinct((2, 6), seed=11)
    want = softtorch.sort(x, method="smooth_sort", softness=0.3).values
    got = softtorch.sort(x.to(dtype), method="smooth_sort", softness=0.3).values
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), want, rtol=2e-2, atol=4e-2 * x.abs().max().item())


def test_layer():
    x = distinct((3, 6), seed=12)
    layer = softtorch.nn.SoftSort(softness=0.3, method="smooth_sort")
    torch.testing.assert_close(layer(x), softtorch.sort(x, softness=0.3, method="smooth_sort").values)


@pytest.mark.full
def test_large_batch():
    """(64, 1000) in one batched solve: finite, strictly monotone, sums kept; gradients finite."""
    x = torch.randn(64, 1000, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = softtorch.sort(x, method="smooth_sort", softness=0.1).values
    assert (y.diff(dim=-1) > 0).all()
    torch.testing.assert_close(y.sum(-1), x.sum(-1), rtol=1e-4, atol=1e-3)
    (y * torch.linspace(-1, 1, 1000)).sum().backward()
    assert torch.isfinite(x.grad).all()
