"""Tests of the permutahedron-projection method (softtorch.methods.fast_soft_sort)."""

from __future__ import annotations

import math

import pytest
import torch
from _registry import SOFT_MODES
from hypothesis import given, settings
from hypothesis import strategies as hst

from softtorch._core import isotonic as iso
from softtorch.methods import fast_soft_sort as fss
from softtorch.methods.fast_soft_sort import rank, sort_values

MODES = SOFT_MODES
SIZES = (1, 2, 3, 5, 8, 17)


def distinct(shape, gap=1e-2, dtype=torch.float64, seed=0):
    """Scores in (0, 1) with pairwise gaps of at least ``gap`` along the last dim, in random order."""
    g = torch.Generator().manual_seed(seed)
    *batch, n = shape
    rows = [torch.randperm(int(0.9 / gap), generator=g)[:n] for _ in range(max(1, math.prod(batch)))]
    return (0.05 + torch.stack(rows).to(dtype) * gap).reshape(shape)


def squashed(x):
    """The standardization of softtorch.functional (SPEC 4.1) and its inverse."""
    mean = x.mean(-1, keepdim=True)
    std = torch.sqrt((x - mean).pow(2).mean(-1, keepdim=True) + 1e-6)
    eps = torch.finfo(x.dtype).eps
    return torch.sigmoid((x - mean) / std), lambda v: torch.logit(v.clamp(eps, 1 - eps)) * std + mean


# --- an independent reference: plain sequential PAV, one row at a time, in float64 -------------

_PHI = {"c0": lambda u: u, "c1": lambda u: u * abs(u), "c2": lambda u: u**3}


def _block_value(mode, s, w):
    """Root of sum phi(s_i - g) = sum w_i by bisection (smooth: log-sum-exp difference)."""
    if mode == "smooth":
        top_s, top_w = max(s), max(w)
        lse_s = top_s + math.log(sum(math.exp(v - top_s) for v in s))
        return lse_s - top_w - math.log(sum(math.exp(v - top_w) for v in w))
    target, phi = sum(w), _PHI[mode]
    lo, hi = min(s) - abs(target) - 10, max(s) + abs(target) + 10
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(phi(v - mid) for v in s) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _pav(mode, s, w):
    """Decreasing isotonic solution v for s, w (both decreasing), by a stack of blocks."""
    blocks = []
    for i in range(len(s)):
        blocks.append([i, i + 1, _block_value(mode, s[i : i + 1], w[i : i + 1])])
        while len(blocks) > 1 and blocks[-2][2] < blocks[-1][2]:
            b = blocks.pop()
            a = blocks.pop()
            blocks.append([a[0], b[1], _block_value(mode, s[a[0] : b[1]], w[a[0] : b[1]])])
    v = [0.0] * len(s)
    for a, b, g in blocks:
        v[a:b] = [g] * (b - a)
    return v


def _project(mode, z, w, regularizer="pnorm"):
    """P(z, w) of the module docstring, for lists (c1/c2 "normalized": with the normalization of w)."""
    low, width, scale = 0.0, 1.0, 1.0
    if mode in ("c1", "c2") and regularizer == "normalized":
        low = min(w)
        width = (max(w) - low) or 1.0
        scale = (0.5 if mode == "c1" else 1 / 3) / width
    order = sorted(range(len(z)), key=lambda i: -z[i])
    s = [z[i] * scale for i in order]
    ws = sorted(((v - low) / width for v in w), reverse=True)
    v = _pav(mode, s, ws)
    out = [0.0] * len(z)
    for k, i in enumerate(order):
        u = s[k] - v[k]
        out[i] = u if mode == "smooth" else low + width * _PHI[mode](u)
    return out


def reference_sort(x, softness, mode, descending=False, regularizer="pnorm"):
    n = len(x)
    a = [j / max(n - 1, 1) for j in range(n)]
    values = sorted(_project(mode, [v / softness for v in a], x, regularizer))
    return values[::-1] if descending else values


def reference_rank(x, softness, mode, descending=True, regularizer="pnorm"):
    """1 + (n - 1) P(z, a); the plain p-norm takes the slots (j + 1) / (n - 1) and no 1 + (as 0.1.1)."""
    n = len(x)
    scale = max(n - 1, 1)
    z = [(-v if descending else v) / softness for v in x]
    if mode in ("c1", "c2") and regularizer == "pnorm":
        return [scale * v for v in _project(mode, z, [(j + 1) / scale for j in range(n)], regularizer)]
    return [1 + scale * v for v in _project(mode, z, [j / scale for j in range(n)], regularizer)]


@pytest.fixture(autouse=True)
def _no_minmax(request, monkeypatch):
    """Small c0/smooth batches take the min-max formula; these tests are about the other paths
    (windows, one block, rounds) on small inputs, so it is off unless a test asks for it."""
    if "minmax" not in request.node.name:
        monkeypatch.setattr(iso, "_MINMAX_CELLS", 0)


# --- smoke and exceptions ----------------------------------------------------------------------


def test_public_names():
    assert fss.__all__ == ["sort_values", "rank", "OPTIONS", "REGULARIZERS", "EXACT_MASKING"]


@pytest.mark.parametrize("fn", [sort_values, rank])
def test_bad_mode(fn):
    with pytest.raises(ValueError, match="mode must be one of .*got 'hard'"):
        fn(torch.rand(4), 0.1, "hard")
    with pytest.raises(ValueError, match="mode"):
        fn(torch.rand(1), 0.1, "nope")


@pytest.mark.parametrize("fn", [sort_values, rank])
def test_zero_dim_refused(fn):
    with pytest.raises(ValueError, match="0-d"):
        fn(torch.tensor(0.5), 0.1, "smooth")


# --- the published figure ----------------------------------------------------------------------


def test_seed_readme_figure():
    """st.sort(x, method="fast_soft_sort", softness=2.0).values of the reference README."""
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
    xt, back = squashed(x)
    values = back(sort_values(xt, 2.0, "smooth"))
    torch.testing.assert_close(values, torch.tensor([-0.7462, -0.1971, 0.2938, 0.8569]), rtol=0, atol=6e-5)


def test_figure_other_modes():
    """Pinned values of the other modes on the README input (softness 2.0 and 0.5); c1/c2 with the
    default regularizer are softtorch 0.1.1's values, with "normalized" the library's own."""
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0], dtype=torch.float64)
    xt, back = squashed(x)
    expected = {
        ("c0", 2.0, "pnorm"): [-0.7708, -0.2162, 0.2746, 0.8316],
        ("c1", 2.0, "pnorm"): [-0.9047, -0.2646, 0.3, 1.0],
        ("c2", 2.0, "pnorm"): [-0.9928, -0.2047, 0.3, 1.0],
        ("c1", 2.0, "normalized"): [-0.4634, -0.1759, 0.1651, 0.6002],
        ("c2", 2.0, "normalized"): [-0.4026, -0.1580, 0.1441, 0.5408],
        ("c0", 0.5, "pnorm"): [-1.0, -0.2, 0.3, 1.0],
        ("c1", 0.5, "pnorm"): [-1.0, -0.2, 0.3, 1.0],
        ("c1", 0.5, "normalized"): [-0.9919, -0.2053, 0.3, 1.0],
        ("c2", 0.5, "normalized"): [-0.9067, -0.2633, 0.3, 1.0],
    }
    for (mode, softness, regularizer), values in expected.items():
        got = back(sort_values(xt, softness, mode, regularizer=regularizer))
        torch.testing.assert_close(got, torch.tensor(values, dtype=x.dtype), rtol=0, atol=1e-4)


def test_c1_c2_ranks_of_the_reference():
    """softtorch 0.1.1's c1/c2 ranks on the README input at softness 2.0 (recorded from it)."""
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0], dtype=torch.float64)
    xt, _ = squashed(x)
    expected = {"c1": [2.6805, 3.3613, 2.2209, 1.7373], "c2": [2.7146, 3.7843, 2.0611, 1.44]}
    for mode, ranks in expected.items():
        torch.testing.assert_close(rank(xt, 2.0, mode), torch.tensor(ranks, dtype=x.dtype), rtol=0, atol=1e-4)


def test_regularizer_is_a_method_option():
    """method_options={"regularizer": ...} of the operators reaches the method (values pinned above)."""
    import softtorch as st

    x = torch.tensor([-0.2, -1.0, 0.3, 1.0], dtype=torch.float64)
    normalized = st.sort(
        x, softness=2.0, mode="c1", method="fast_soft_sort", method_options={"regularizer": "normalized"}
    )
    torch.testing.assert_close(
        normalized.values, torch.tensor([-0.4634, -0.1759, 0.1651, 0.6002], dtype=x.dtype), rtol=0, atol=1e-4
    )
    plain = st.sort(x, softness=2.0, mode="c1", method="fast_soft_sort")
    torch.testing.assert_close(
        plain.values, torch.tensor([-0.9047, -0.2646, 0.3, 1.0], dtype=x.dtype), rtol=0, atol=1e-4
    )
    with pytest.raises(
        ValueError, match=r"method_options\['regularizer'\] must be one of 'pnorm', 'normalized', got 'l2'"
    ):
        st.rank(x, method="fast_soft_sort", method_options={"regularizer": "l2"})


@pytest.mark.parametrize("fn", [sort_values, rank])
def test_bad_regularizer(fn):
    with pytest.raises(ValueError, match="regularizer must be one of .*'pnorm'.*'normalized'.*got 'l2'"):
        fn(torch.rand(4), 0.1, "c1", regularizer="l2")


# --- hard limit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", SIZES)
def test_hard_limit(mode, n):
    x = distinct((3, n), seed=n)
    for descending in (False, True):
        torch.testing.assert_close(
            sort_values(x, 1e-3, mode, descending), torch.sort(x, descending=descending).values, rtol=0, atol=1e-12
        )
        order = torch.argsort(x, dim=-1, descending=descending)
        hard = torch.empty_like(x).scatter_(-1, order, torch.arange(1.0, n + 1, dtype=x.dtype).expand_as(x))
        torch.testing.assert_close(rank(x, 1e-3, mode, descending), hard, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_large_softness_pools_everything(mode):
    x = distinct((2, 6))
    values = sort_values(x, 1e6, mode)
    assert (values.amax(-1) - values.amin(-1)).max() < 1e-4
    ranks = rank(x, 1e6, mode)
    assert (ranks.amax(-1) - ranks.amin(-1)).max() < 1e-4


# --- agreement with the independent reference ---------------------------------------------------


@pytest.mark.parametrize(
    "mode, regularizer", [(m, "pnorm") for m in MODES] + [("c1", "normalized"), ("c2", "normalized")]
)
@pytest.mark.parametrize("descending", [False, True])
def test_matches_sequential_pav(mode, regularizer, descending):
    _check_against_pav(mode, descending, regularizer, seed=7, longest=24)


def _check_against_pav(mode, descending, regularizer="pnorm", seed=7, longest=24):
    """Random rows up to ``longest`` elements (every fourth with ties) and softness 0.03 to 30:
    sort_values and rank equal the sequential reference."""
    g = torch.Generator().manual_seed(seed)
    for trial in range(12):
        n = int(torch.randint(1, longest, (), generator=g))
        x = torch.rand(n, generator=g, dtype=torch.float64)
        if trial % 4 == 0:
            x = (x * 4).round() / 4  # ties
        softness = float(10 ** (torch.rand((), generator=g) * 3 - 1.5))
        torch.testing.assert_close(
            sort_values(x, softness, mode, descending, regularizer=regularizer),
            torch.tensor(reference_sort(x.tolist(), softness, mode, descending, regularizer), dtype=x.dtype),
            rtol=0,
            atol=1e-10,
        )
        torch.testing.assert_close(
            rank(x, softness, mode, descending, regularizer=regularizer),
            torch.tensor(reference_rank(x.tolist(), softness, mode, descending, regularizer), dtype=x.dtype),
            rtol=0,
            atol=1e-9,
        )


def test_c0_is_the_euclidean_projection():
    """c0 is the Euclidean projection onto the permutahedron, checked on its defining property:
    sum preserved, and <z - mu, nu - mu> <= 0 for every vertex nu (all permutations, n = 5)."""
    import itertools

    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, generator=g, dtype=torch.float64)
    a = torch.arange(5, dtype=torch.float64) / 4
    for softness in (0.05, 0.5, 2.0):
        z = a / softness
        mu = sort_values(x, softness, "c0")
        vertices = torch.stack([x[list(p)] for p in itertools.permutations(range(5))])
        assert ((vertices - mu) @ (z - mu) <= 1e-10).all()


@pytest.mark.parametrize("mode", MODES)
def test_windows_change_nothing(mode, monkeypatch):
    """The greedy window merges (an acceleration) give exactly the partition of plain rounds."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(8, 300, generator=g, dtype=torch.float64)
    x[:4] = torch.distributions.Cauchy(0.0, 1.0).sample((4, 300)).double()  # heavy tails: long chains
    xt, _ = squashed(x)
    results = []
    for sparse in (8, 10**9):
        monkeypatch.setattr(iso, "_SPARSE", sparse)
        results.append([fn(xt, softness, mode) for fn in (sort_values, rank) for softness in (0.3, 3.0)])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def _rounds_only(monkeypatch):
    """Disable the windowed candidate of c0/smooth and the one-block rows: every row goes through
    the PAV rounds."""
    monkeypatch.setattr(iso, "_windowed", lambda *args, **kwargs: None)
    pooled = iso._pooled

    def never(s, w, mode):
        out, dense, ok = pooled(s, w, mode)
        return out, dense, torch.zeros_like(ok)

    monkeypatch.setattr(iso, "_pooled", never)


@pytest.mark.parametrize("mode", MODES)
def test_one_block_rows(mode, monkeypatch):
    """Rows pooled whole (large softness) and rows that are not, in one batch: the one-block path
    takes the first, the rounds the others, and both agree with the rounds alone, values and
    Jacobian."""
    x = distinct((4, 12), gap=0.05, seed=3)
    softness = torch.tensor([[50.0], [0.3], [50.0], [0.05]], dtype=x.dtype)
    calls = []
    pooled = iso._pooled

    def spy(s, w, mode):
        found = pooled(s, w, mode)
        calls.append(found[2].tolist())
        return found

    monkeypatch.setattr(iso, "_pooled", spy)
    for fn in (sort_values, rank):
        calls.clear()
        got = fn(x, softness, mode)
        assert calls and calls[0][0] and calls[0][2] and not all(calls[0]), calls
        cot = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
        xr = x.clone().requires_grad_()
        grad = torch.autograd.grad(fn(xr, softness, mode), xr, cot)[0]
        with monkeypatch.context() as patch:
            _rounds_only(patch)
            xr = x.clone().requires_grad_()
            expected = fn(xr, softness, mode)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
            torch.testing.assert_close(grad, torch.autograd.grad(expected, xr, cot)[0], rtol=0, atol=1e-9)
        torch.autograd.gradcheck(lambda a, fn=fn: fn(a, softness, mode), (x.clone().requires_grad_(),))


def test_one_block_check_sees_suffixes_far_below_the_first_element():
    """``"smooth"``: the first element e^120 above the others. Pooled with them it changes the
    sums of exponentials of the rest by e^-120 of the first term only; the suffix check rejects
    the one block, and the result is sequential PAV's."""
    s = torch.tensor([[20.0, -100.0, -101.0, -102.0]], dtype=torch.float64)
    w = torch.tensor([[0.0, -101.0, -103.0, -105.0]], dtype=torch.float64)
    assert not iso._pooled(s, w, "smooth")[2].item()
    v = torch.tensor(_pav("smooth", s[0].tolist(), w[0].tolist()), dtype=torch.float64)
    torch.testing.assert_close(iso._Projection.apply(s, w, "smooth", False)[0], s[0] - v, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", [4, 47, 179])
@pytest.mark.parametrize("mode", ["c0", "smooth"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_windowed_candidate_matches_rounds(mode, dtype, seed, monkeypatch):
    """The windowed solution (checked by the KKT conditions, failed rows redone by rounds) equals
    plain PAV rounds, on sparse and dense pooling and on rows mixing both (heavy tails).

    Seeds 47 and 179 give float32 heavy-tailed rows whose windowed candidate is a few hundred
    roundings off yet passed an optimality check run in float32; the check now runs in float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 400, generator=g, dtype=torch.float64)
    x[:6] = torch.tan(math.pi * (torch.rand(6, 400, generator=g, dtype=torch.float64) - 0.5))  # Cauchy
    xt = squashed(x)[0].to(dtype)
    cases = [(fn, softness) for fn in (sort_values, rank) for softness in (0.01, 0.1, 0.3, 2.0)]
    fast = [fn(xt, softness, mode) for fn, softness in cases]
    _rounds_only(monkeypatch)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for (fn, softness), got in zip(cases, fast):
        scale = 400 if fn is rank else 1
        torch.testing.assert_close(got, fn(xt, softness, mode), rtol=0, atol=tol * scale)


@pytest.mark.parametrize("mode", ["c0", "smooth"])
def test_narrow_windows_fall_back_to_rounds(mode, monkeypatch):
    """Windows shorter than the blocks give candidates that fail the optimality check; those
    rows (and only the result matters) come out of the rounds unchanged."""
    x = squashed(torch.randn(16, 200, generator=torch.Generator().manual_seed(2), dtype=torch.float64))[0]
    monkeypatch.setattr(iso, "_CANDIDATE_WIDTH", 4)
    monkeypatch.setattr(iso, "_MIN_CANDIDATE_WIDTH", 2)
    narrow = [sort_values(x, 0.3, mode), rank(x, 0.05, mode)]
    _rounds_only(monkeypatch)
    torch.testing.assert_close(narrow[0], sort_values(x, 0.3, mode), rtol=0, atol=1e-12)
    torch.testing.assert_close(narrow[1], rank(x, 0.05, mode), rtol=0, atol=1e-9)


@pytest.mark.parametrize("mode", ["c0", "smooth"])
@pytest.mark.parametrize("fn", [sort_values, rank])
def test_gradcheck_rounds(mode, fn, monkeypatch):
    """The rounds give the same closed-form Jacobian as the windowed path (test_gradcheck)."""
    _rounds_only(monkeypatch)
    x = torch.tensor([[0.12, 0.83, 0.47, 0.55, 0.31, 0.95], [0.61, 0.05, 0.44, 0.73, 0.52, 0.28]], dtype=torch.float64)
    softness = torch.tensor([[0.37], [1.9]], dtype=torch.float64)
    x.requires_grad_(True)
    softness.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, mode), (x, softness))


def _clustered():
    """(s, w) rows of a sort at softness 0.15 (slots over sorted squashed scores, float64) with a
    few short pooled blocks: the windowed (sparse) path solves them."""
    x = squashed(torch.randn(2, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    w = x.sort(-1, descending=True).values
    s = (torch.arange(199, -1, -1, dtype=torch.float64) / 199 / 0.15).expand_as(w).contiguous()
    return s, w


@pytest.mark.parametrize("mode", ["c0", "smooth"])
@pytest.mark.parametrize("fail_row", [False, True])
def test_gradcheck_windowed(mode, fail_row, monkeypatch):
    """The sparse vector-Jacobian product of the windowed path (clusters; singletons pass ``g``
    to ``w``) is the Jacobian, alone and mixed with rounds for a row whose check fails."""
    s, w = _clustered()
    if fail_row:  # a block of 10 in row 1, longer than windows of 4: rounds for that row only
        w[1] = torch.cat((torch.linspace(1, 0.6, 10), torch.linspace(0.59, 0, 190))).double()
        monkeypatch.setattr(iso, "_CANDIDATE_WIDTH", 4)
    out, clusters, failed = iso._windowed(s, w, mode)
    assert clusters.at.shape[0] >= 2
    assert failed.tolist() == ([1] if fail_row else [])
    s.requires_grad_(True)
    w.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: iso._Projection.apply(a, b, mode, False), (s, w))


@pytest.mark.parametrize("mode", ["c0", "smooth"])
def test_gradcheck_without_pooling(mode):
    """No violation at all: every element is a singleton, output w and VJP (0, g) to (s, w)."""
    x = distinct((2, 40), gap=2e-2, seed=3).requires_grad_(True)
    w = x.detach().sort(-1, descending=True).values
    s = (torch.arange(39, -1, -1, dtype=torch.float64) / 39 / 1e-3).expand_as(w).contiguous()
    assert iso._windowed(s, w, mode)[1].at.numel() == 0
    for fn in (sort_values, rank):
        assert torch.autograd.gradcheck(lambda a, fn=fn: fn(a, 1e-3, mode), (x,))


@pytest.mark.parametrize(
    "y",
    [
        # The pair (0, 20) pools leftwards past the cluster's first element (a slow descent).
        [10 - 0.01 * i for i in range(20)] + [0.0, 20.0] + [-5.0 - i for i in range(8)],
        # ... and rightwards past its last one.
        [30.0, 29.0, 28.0, 0.0, 20.0] + [19.9 - 0.1 * i for i in range(25)],
    ],
    ids=["left", "right"],
)
def test_windowed_cluster_ends_must_stay_singletons(y, monkeypatch):
    """c0 with one violation and a block longer than the window: the cluster's own problem is
    solved exactly (D passes), but its solution pools an end element, so it differs from the whole
    row's. The row must go to the rounds and come out as sequential PAV."""
    y = torch.tensor(y, dtype=torch.float64)
    w = -100.0 * torch.arange(len(y), dtype=torch.float64)  # s = y + w and w decrease
    s, w = (y + w).unsqueeze(0), w.unsqueeze(0)
    for name, value in (("_CANDIDATE_WIDTH", 4), ("_MIN_CANDIDATE_WIDTH", 2), ("_CANDIDATE_CELLS", 100)):
        monkeypatch.setattr(iso, name, value)
    assert iso._windowed(s, w, "c0")[2].tolist() == [0]
    v = torch.tensor(_pav("c0", s[0].tolist(), w[0].tolist()), dtype=torch.float64)
    torch.testing.assert_close(iso._Projection.apply(s, w, "c0", False)[0], s[0] - v, rtol=0, atol=1e-9)


def test_windowed_check_sees_blocks_far_below_the_cluster_top(monkeypatch):
    """``"smooth"``: a block e^100 below the first element of its cluster, longer than the
    window. Its wrong candidate changes D by e^-100 in units of the cluster's top; in units of each
    block's own top the check rejects it, and the rounds give the solution."""
    i = torch.arange(1, 15, dtype=torch.float64)
    s = torch.cat((torch.tensor([20.0], dtype=torch.float64), -99 - i)).unsqueeze(0)
    w = torch.cat((torch.zeros(1, dtype=torch.float64), torch.where(i <= 12, -100 - 2 * i, -124 - 0.1 * (i - 12))))
    w = w.unsqueeze(0)
    for name, value in (("_CANDIDATE_WIDTH", 4), ("_MIN_CANDIDATE_WIDTH", 2), ("_CANDIDATE_CELLS", 100)):
        monkeypatch.setattr(iso, name, value)
    assert iso._windowed(s, w, "smooth")[2].tolist() == [0]
    got = iso._Projection.apply(s, w, "smooth", False)
    _rounds_only(monkeypatch)
    torch.testing.assert_close(got, iso._Projection.apply(s, w, "smooth", False), rtol=0, atol=1e-12)
    v = torch.tensor(_pav("smooth", s[0].tolist(), w[0].tolist()), dtype=torch.float64)
    torch.testing.assert_close(got[0], s[0] - v, rtol=0, atol=1e-9)


def test_radix_sort_of_a_float32_batch():
    """Batches of float32 rows are sorted through two stable 1-D integer radix sorts: same values,
    stable indices and gradient as torch.sort, with ties, signed zeros and infinities."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 70, 1000, generator=g)
    assert x.numel() >= iso._RADIX_MIN
    x[0, 0, :10] = 0.5
    x[0, 1, 3], x[0, 1, 4] = -0.0, 0.0
    x[1, 2, 5], x[1, 2, 6] = float("inf"), -float("inf")
    x[2, 3] = x[2, 3, 0]
    many_rows = torch.randn(300, 110, generator=g)  # row numbers take two bytes
    one_row = torch.randn(1, 10000, generator=g)  # fewer than 2 ** 15 elements: padded keys
    one_row[0, 5:9] = torch.tensor([0.0, -0.0, float("inf"), 0.0])
    one_row[0, 20:30] = -0.25
    assert iso._RADIX_MIN <= one_row.numel() < iso._RADIX_SIZE
    for xx in (x, x.transpose(0, 1), many_rows, one_row, one_row[0]):
        xx = xx.clone().requires_grad_(True)
        values, order = iso.sort_descending(xx, with_order=True)
        expected = torch.sort(xx, dim=-1, descending=True, stable=True)
        assert torch.equal(values, expected.values) and torch.equal(order, expected.indices)
        weights = torch.rand(xx.shape, generator=g)
        (grad,) = torch.autograd.grad((values * weights).sum(), xx)
        (expected_grad,) = torch.autograd.grad((expected.values * weights).sum(), xx)
        assert torch.equal(grad, expected_grad)


@pytest.mark.parametrize("mode", ["c0", "smooth"])
def test_float32_batch_matches_float64(mode):
    """A (40, 1000) float32 batch (radix sort, windows, rounds) agrees with float64."""
    x = squashed(torch.randn(40, 1000, generator=torch.Generator().manual_seed(1)))[0]
    for fn, scale in ((sort_values, 1), (rank, 1000)):
        for softness in (0.1, 1.0):
            got = fn(x, softness, mode).double()
            torch.testing.assert_close(got, fn(x.double(), softness, mode), rtol=0, atol=2e-5 * scale)


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    n=hst.integers(1, 12),
    softness=hst.floats(1e-3, 1e3),
    mode=hst.sampled_from(MODES),
    descending=hst.booleans(),
    seed=hst.integers(0, 2**16),
)
def test_properties(n, softness, mode, descending, seed):
    x = torch.rand(3, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    values = sort_values(x, softness, mode, descending)
    steps = values.diff(dim=-1)
    assert ((-steps if descending else steps) >= -1e-12).all(), "not monotone"
    assert (values >= x.amin(-1, keepdim=True) - 1e-12).all() and (values <= x.amax(-1, keepdim=True) + 1e-12).all()
    if mode == "smooth":  # the exponentials lie in the permutahedron of exp(x)
        torch.testing.assert_close(values.exp().sum(-1), x.exp().sum(-1))
    else:
        torch.testing.assert_close(values.sum(-1), x.sum(-1))
    ranks = rank(x, softness, mode, descending)
    assert (ranks >= 1 - 1e-12).all() and (ranks <= n + 1e-12).all()
    if mode == "smooth":
        a = torch.arange(n, dtype=x.dtype) / max(n - 1, 1)
        torch.testing.assert_close(((ranks - 1) / max(n - 1, 1)).exp().sum(-1), a.exp().sum().expand(3))
    else:
        torch.testing.assert_close(ranks.sum(-1), torch.full((3,), n * (n + 1) / 2, dtype=x.dtype))
    # ranks follow the order of x
    order = torch.argsort(x, dim=-1, descending=descending)
    steps = ranks.gather(-1, order).diff(dim=-1)
    assert (steps >= -1e-9).all()


@pytest.mark.parametrize("mode", MODES)
def test_ties(mode):
    x = torch.tensor([[0.3, 0.7, 0.3, 0.5, 0.7]], dtype=torch.float64)
    for softness in (1e-3, 0.5):
        ranks = rank(x, softness, mode)
        assert ranks[0, 0] == ranks[0, 2] and ranks[0, 1] == ranks[0, 4]
        values = sort_values(x, softness, mode)
        assert (values.diff(dim=-1) >= -1e-12).all()
    # Tied elements share their slots' pooled value: the mean of the slots (smooth: in log space).
    pooled = {"smooth": lambda a, b: math.log((math.exp(a) + math.exp(b)) / 2)}.get(mode, lambda a, b: (a + b) / 2)
    top, bottom = 1 + 4 * pooled(0.0, 0.25), 1 + 4 * pooled(0.75, 1.0)
    expected = torch.tensor([[bottom, top, bottom, 3.0, top]], dtype=x.dtype)
    torch.testing.assert_close(rank(x, 1e-3, mode), expected)
    torch.testing.assert_close(sort_values(x, 1e-3, mode), x.sort().values)


# --- shapes, dtypes, devices ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_batches_are_independent_rows(mode):
    x = distinct((2, 3, 7), gap=1e-3, seed=5)
    softness = torch.tensor([0.3, 1.0, 4.0], dtype=x.dtype).view(1, 3, 1).expand(2, 3, 1)
    for fn in (sort_values, rank):
        batched = fn(x, softness, mode)
        assert batched.shape == x.shape
        for i in range(2):
            for j in range(3):
                torch.testing.assert_close(
                    batched[i, j], fn(x[i, j], float(softness[i, j, 0]), mode), rtol=0, atol=1e-12
                )


@pytest.mark.parametrize("fn", [sort_values, rank])
def test_n1_and_empty(fn):
    x = torch.tensor([[0.4], [0.9]])
    out = fn(x, 0.5, "smooth")
    torch.testing.assert_close(out, x if fn is sort_values else torch.ones_like(x))
    assert fn(torch.rand(0, 5), 0.5, "c1").shape == (0, 5)


def test_softness_broadcasts_over_batch():
    x = torch.rand(5, dtype=torch.float64)
    softness = torch.tensor([[0.1], [1.0]], dtype=torch.float64)
    out = sort_values(x, softness, "c0")
    assert out.shape == (2, 5)
    torch.testing.assert_close(out[1], sort_values(x, 1.0, "c0"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_dtypes(dtype):
    x = distinct((2, 6), dtype=torch.float64)
    for fn in (sort_values, rank):
        out = fn(x.to(dtype), 0.5, "smooth")
        assert out.dtype == dtype
        tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float32: 1e-5}[dtype] * (6 if fn is rank else 1)
        torch.testing.assert_close(out.double(), fn(x.to(dtype).double(), 0.5, "smooth"), rtol=0, atol=tol)


def test_device_follows_input(device):
    x = torch.rand(3, 9, device=device)
    for mode in MODES:
        assert sort_values(x, 0.5, mode).device == x.device
        assert rank(x, torch.full((3, 1), 0.5, device=device), mode).device == x.device


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", MODES)
def test_extreme_softness_is_finite(mode, dtype):
    x = torch.rand(4, 50, dtype=dtype)
    x[0, :10] = x[0, 10]  # ties
    for softness in (1e-6, 1e-2, 1e2, 1e6):
        s = torch.tensor(softness, dtype=dtype, requires_grad=True)
        xx = x.clone().requires_grad_()
        values, ranks = sort_values(xx, s, mode), rank(xx, s, mode)
        (values.sum() + (ranks * torch.arange(50, dtype=dtype)).sum()).backward()
        for t in (values, ranks, xx.grad, s.grad):
            assert torch.isfinite(t).all(), (softness, t)


def test_large_magnitudes():
    """Unstandardized inputs (standardize=False callers): large values stay exact and sorted."""
    x = torch.tensor([[3e6, -1e6, 2e6, 2e6 + 1.0]], dtype=torch.float64)
    for mode in MODES:
        torch.testing.assert_close(sort_values(x, 1e-9, mode), x.sort().values, rtol=1e-12, atol=0)
        out = sort_values(x, 1e-6, mode)
        assert torch.isfinite(out).all() and (out.diff() >= 0).all()


def test_nan_stays_in_its_row():
    x = torch.rand(3, 6, dtype=torch.float64)
    x[1, 2] = float("nan")
    for mode in MODES:
        for fn in (sort_values, rank):
            out = fn(x, 0.5, mode)
            assert torch.isnan(out[1]).any()
            torch.testing.assert_close(out[[0, 2]], fn(x[[0, 2]], 0.5, mode))


# --- gradients --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fn", [sort_values, rank])
@pytest.mark.parametrize("descending", [False, True])
def test_gradcheck(mode, fn, descending):
    # Generic points: softnesses chosen so that some blocks pool and none sits on a merge.
    x = torch.tensor([[0.12, 0.83, 0.47, 0.55, 0.31, 0.95], [0.61, 0.05, 0.44, 0.73, 0.52, 0.28]], dtype=torch.float64)
    softness = torch.tensor([[0.37], [1.9]], dtype=torch.float64)
    x.requires_grad_(True)
    softness.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, mode, descending), (x, softness))


def test_gradient_reaches_a_learnable_softness():
    x = distinct((2, 8))
    raw = torch.zeros((), dtype=torch.float64, requires_grad=True)
    ranks = rank(x, torch.nn.functional.softplus(raw) + 0.1, "smooth")
    ranks[:, 0].sum().backward()
    assert raw.grad is not None and raw.grad != 0


def test_jacobian_of_a_c0_block_is_the_average():
    """Inside one pooled block the c0 Jacobian of the values is the block average (L2 isotonic)."""
    x = torch.tensor([0.1, 0.5, 0.52, 0.9], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: sort_values(v, 2.0, "c0"), x)
    # softness 2: slots 1/6 apart; the gaps 0.4 and 0.38 pool, and so does 0.02 with them
    torch.testing.assert_close(jac, torch.full((4, 4), 0.25, dtype=x.dtype))


# --- consistency ---------------------------------------------------------------------------------------


def test_rank_and_sort_agree_on_order():
    x = distinct((4, 9), seed=9)
    for mode in MODES:
        values = sort_values(x, 0.2, mode)
        ranks = rank(x, 0.2, mode, descending=False)
        # the element with the smallest soft rank is the smallest value
        assert torch.equal(ranks.argmin(-1), x.argmin(-1))
        assert torch.equal(values.argmin(-1), torch.zeros(4, dtype=torch.long))


def _pav_runs(v):
    """Lengths of the runs of equal values of a list (the blocks of a PAV solution)."""
    runs = [1]
    for a, b in zip(v, v[1:]):
        runs[-1:] = [runs[-1] + 1] if a == b else [runs[-1], 1]
    return runs


@pytest.mark.parametrize("mode", ["c0", "smooth"])
def test_end_lengths_are_the_first_and_last_blocks_of_pav(mode):
    """_end_lengths gives the lengths of the first and the last block of the solution: checked
    against sequential PAV on sorts at moderate and strong softness, with ties (where the shorter
    block is taken) and rows that are one block."""
    g = torch.Generator().manual_seed(5)
    n = 60
    for softness in (0.05, 0.5, 3.0, 100.0):
        x = torch.rand(3, n, generator=g, dtype=torch.float64)
        x[1] = (x[1] * 5).round() / 5  # ties
        w = x.sort(-1, descending=True).values
        s = (torch.arange(n - 1, -1, -1, dtype=torch.float64) / ((n - 1) * softness)).expand(3, n)
        head, tail = iso._end_lengths(s, w, mode)
        for r in range(3):
            runs = _pav_runs(_pav(mode, s[r].tolist(), w[r].tolist()))
            assert (head[r].item(), tail[r].item()) == (runs[0], runs[-1]), (softness, r, runs[:3], runs[-3:])


def test_end_blocks_keep_only_long_ones(monkeypatch):
    """_end_blocks pools the end blocks of at least _LONG_END elements and nothing else (None
    when no row has one): a c0 row whose solution is [0..3] [4] ... [n - 3..n - 1]."""
    y = [3.0, 3.0, 3.0, 4.0] + [2.0 - 0.1 * i for i in range(10)] + [0.0, 0.0, 0.5]
    w = torch.zeros(1, len(y), dtype=torch.float64)
    s = torch.tensor([y], dtype=torch.float64)  # s - w = y
    monkeypatch.setattr(iso, "_LONG_END", 5)
    assert iso._end_blocks(s, w, "c0") is None
    monkeypatch.setattr(iso, "_LONG_END", 3)
    start = iso._end_blocks(s, w, "c0")[0].tolist()
    assert start == [True, False, False, False] + [True] * 11 + [False, False]
    monkeypatch.setattr(iso, "_LONG_END", 4)
    assert iso._end_blocks(s, w, "c0")[0].tolist() == [True, False, False, False] + [True] * 13


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softness", [0.2, 1.0, 4.0])
def test_single_long_row_matches_sequential_pav(mode, softness):
    """One row of 400 normal scores (a single row takes the rounds, from the end blocks for
    c0/smooth): long blocks at both ends at strong softness, singletons in the middle."""
    x = torch.randn(400, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    xt, _ = squashed(x)
    torch.testing.assert_close(
        sort_values(xt, softness, mode),
        torch.tensor(reference_sort(xt.tolist(), softness, mode), dtype=xt.dtype),
        rtol=0,
        atol=1e-9,
    )


@pytest.mark.parametrize("mode", ["c0", "smooth"])
@pytest.mark.parametrize("fn", [sort_values, rank])
def test_gradcheck_single_row_from_end_blocks(mode, fn, monkeypatch):
    """A single row whose rounds start from long end blocks keeps the closed-form Jacobian."""
    monkeypatch.setattr(iso, "_LONG_END", 4)
    x = torch.randn(40, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    xt = squashed(x)[0]
    s = (torch.arange(39, -1, -1, dtype=torch.float64) / (39 * 2.0)).unsqueeze(0)
    assert iso._end_blocks(s, xt.sort(descending=True).values.unsqueeze(0), mode) is not None
    softness = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, mode), (xt.clone().requires_grad_(), softness))


def test_first_at_most_matches_a_plain_search():
    """The one-searchsorted search of the c1 windows: the first position with s <= g in the
    asked row, on float32 rows with ties, signed zeros, negative values, and NaN/inf queries."""
    g = torch.Generator().manual_seed(2)
    s = (torch.randn(4, 50, generator=g) * 3).round().sort(-1, descending=True).values
    s[1, 20:30] = 0.0
    s[1, 25:30] = -0.0
    rows = torch.tensor([0, 1, 1, 3, 2, 1])
    q = (torch.randn(6, 7, generator=g) * 4).round()
    q[1, 0], q[2, 1], q[3, 2], q[4, 3], q[5, 4] = -0.0, 0.0, float("nan"), float("inf"), -float("inf")
    got = iso._first_at_most(s, rows, q)
    for i, r in enumerate(rows.tolist()):
        for j in range(7):
            value = q[i, j].item()
            want = 0 if math.isnan(value) else next((k for k in range(50) if s[r, k] <= value), 50)
            assert got[i, j].item() == want, (i, j, value)
    assert iso._first_at_most(s.double(), rows, q.double()) is None


@pytest.mark.parametrize("softness", [0.1, 1.0])
def test_c1_search_matches_bisection(softness, monkeypatch):
    """c1 rounds in float32: the windows searched by _first_at_most give exactly the bisection's
    results (the same comparisons), on sorts and ranks with long blocks."""
    x = torch.randn(6, 300, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    xt = squashed(x)[0].float()
    fast = [fn(xt, softness, "c1") for fn in (sort_values, rank)]
    monkeypatch.setattr(iso, "_first_at_most", lambda *args: None)
    for got, fn in zip(fast, (sort_values, rank)):
        assert torch.equal(got, fn(xt, softness, "c1"))


def test_rounds_smooth_over_a_huge_exponent_range(monkeypatch):
    """``"smooth"`` rounds whose leftward windows span more than float64's exponent range: those
    rows take the sequential log-cumsum-exp, and the result is sequential PAV's."""
    _rounds_only(monkeypatch)
    calls = []
    lcse = torch.logcumsumexp
    monkeypatch.setattr(torch, "logcumsumexp", lambda *a, **k: calls.append(1) or lcse(*a, **k))
    g = torch.Generator().manual_seed(11)
    for _ in range(4):
        s = (torch.randn(2, 12, generator=g, dtype=torch.float64) * 600).sort(-1, descending=True).values
        w = (torch.randn(2, 12, generator=g, dtype=torch.float64) * 600).sort(-1, descending=True).values
        got = iso._Projection.apply(s, w, "smooth", False)
        for r in range(2):
            v = torch.tensor(_pav("smooth", s[r].tolist(), w[r].tolist()), dtype=torch.float64)
            torch.testing.assert_close(got[r], s[r] - v, rtol=0, atol=1e-9)
    assert calls, "no window needed the sequential log-cumsum-exp"


# --- the min-max formula of small batches -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["c0", "smooth"])
@pytest.mark.parametrize("descending", [False, True])
def test_minmax_matches_sequential_pav(mode, descending, monkeypatch):
    _rounds_only(monkeypatch)  # the min-max formula takes what windows and one block would
    _check_against_pav(mode, descending, seed=13, longest=40)


@pytest.mark.parametrize("descending", [False, True])
def test_minmax_wide_exponent_range(descending, monkeypatch):
    """Rows spanning more than float64's exponent range (softness 1e-3 on scores in (0, 1): slots
    or scores 1000 apart) take the in-row exponentials, and still equal the sequential PAV."""
    _rounds_only(monkeypatch)
    calls = []
    minmax = iso._minmax
    monkeypatch.setattr(iso, "_minmax", lambda *a: calls.append(1) or minmax(*a))
    x = torch.tensor([0.52, 0.5, 0.9, 0.1, 0.5004, 0.0, 1.0], dtype=torch.float64)
    for softness in (1e-3, 2e-3):
        got = sort_values(x, softness, "smooth", descending)
        want = reference_sort(x.tolist(), softness, "smooth", descending, "pnorm")
        torch.testing.assert_close(got, torch.tensor(want, dtype=x.dtype), rtol=0, atol=1e-10)
        got = rank(x, softness, "smooth", descending)
        want = reference_rank(x.tolist(), softness, "smooth", descending, "pnorm")
        torch.testing.assert_close(got, torch.tensor(want, dtype=x.dtype), rtol=0, atol=1e-9)
    assert calls
    assert not torch.equal(got, rank(x, 1e-6, "smooth", descending))  # some pooling: not the hard ranks


@pytest.mark.parametrize("mode", ["c0", "smooth"])
def test_minmax_is_used_and_agrees_with_rounds(mode, monkeypatch):
    """A batch small enough for the min-max formula, that the windows and one block miss: the
    formula takes it, and values and Jacobian agree with the rounds; gradcheck."""
    x = torch.rand(3, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cot = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    minmax = iso._minmax
    for fn in (sort_values, rank):
        for softness in (0.05, 0.5, 5.0):
            calls = []
            with monkeypatch.context() as patch:
                _rounds_only(patch)
                patch.setattr(iso, "_minmax", lambda *a, calls=calls: calls.append(1) or minmax(*a))
                xr = x.clone().requires_grad_()
                got = fn(xr, softness, mode)
                grad = torch.autograd.grad(got, xr, cot)[0]
                assert calls
                torch.autograd.gradcheck(lambda a, fn=fn, s=softness: fn(a, s, mode), (x.clone().requires_grad_(),))
            with monkeypatch.context() as patch:
                patch.setattr(iso, "_MINMAX_CELLS", 0)
                _rounds_only(patch)
                xr = x.clone().requires_grad_()
                expected = fn(xr, softness, mode)
                torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
                torch.testing.assert_close(grad, torch.autograd.grad(expected, xr, cot)[0], rtol=0, atol=1e-9)
