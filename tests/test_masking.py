"""Masking (issue 18): ``-inf`` entries (``+inf`` ascending) and ``mask=False`` entries are excluded.

Excluded entries get zero weight in the kept slots, sit in their hard slots with their exact
(infinite) values, leave the standardization of the rest of the row alone, and every output at a
kept slot equals that of the row without them, for every method and mode. References are the
same calls on the kept entries only, row by row in a plain loop (rows keep 5, 6, 4, 1 and all 7
of their entries). ``ot`` runs with a tight solver tolerance here: its results are exact up to
the tolerance of its iterative solver, which stops at a relative marginal error of 1e-5 by
default (about 3e-6 on these values), wherever the row's problem is embedded.
"""

import pytest
import torch
from _registry import METHODS, method_modes

import softtorch as st
import softtorch.nn as snn
from softtorch.methods import METHOD_NAMES, get_method

F64 = torch.float64
INF = float("inf")
#: Methods whose kept slots equal the row without the excluded entries (to 1e-6) in every mode.
EXACT = set(METHOD_NAMES)
CASES = method_modes()
TOL = dict(rtol=0, atol=1e-6)
ROWS, N = 5, 7


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, N, generator=g, dtype=F64)
    keep = torch.ones(ROWS, N, dtype=torch.bool)
    keep[0, [1, 4]] = False
    keep[1, 6] = False
    keep[2, [0, 2, 3]] = False
    keep[3, [0, 1, 2, 4, 5, 6]] = False  # one kept entry
    return x, keep  # row 4 keeps everything


def _kw(method, mode, softness=0.3):
    kw = dict(softness=softness, mode=mode, method=method)
    if method == "ot":
        kw["method_options"] = {"tol": 1e-11}
    return kw


def _exact(method, mode):
    return mode == "hard" or method in EXACT


def _close_or_finite(got, want, method, mode):
    if _exact(method, mode):
        torch.testing.assert_close(got, want, **TOL)
    else:
        assert torch.isfinite(got).all()


def _indices(method):
    return get_method(method).gives_indices


@pytest.mark.parametrize("method, mode", CASES)
def test_sort_topk_excluded_entries(method, mode):
    x, keep = _data()
    kw = _kw(method, mode)
    for order, fill in ((True, -INF), (False, INF)):
        xm = x.masked_fill(~keep, fill)
        out = st.sort(xm, descending=order, **kw)
        by_mask = st.sort(x, descending=order, mask=keep, **kw)
        torch.testing.assert_close(by_mask.values, out.values, rtol=0, atol=0)
        for b in range(ROWS):
            kept, nk = x[b][keep[b]], int(keep[b].sum())
            ref = st.sort(kept, descending=order, **kw)
            _close_or_finite(out.values[b, :nk], ref.values, method, mode)
            assert torch.equal(out.values[b, nk:], torch.full((N - nk,), fill, dtype=F64))
            if _indices(method):
                assert torch.equal(out.indices[b, :nk][:, ~keep[b]], torch.zeros(nk, N - nk, dtype=F64))
                hard_slots = out.indices[b, nk:]  # one-hot on the excluded entries, in index order
                want = torch.nn.functional.one_hot(torch.nonzero(~keep[b]).squeeze(-1), N).to(F64)
                assert torch.equal(hard_slots, want)
                if _exact(method, mode):
                    torch.testing.assert_close(out.indices[b, :nk][:, keep[b]], ref.indices, **TOL)
    for largest, fill in ((True, -INF), (False, INF)):
        top = st.topk(x.masked_fill(~keep, fill), 3, largest=largest, **kw)
        for b in range(ROWS):
            kept, nk = x[b][keep[b]], int(keep[b].sum())
            ref = st.topk(kept, min(3, nk), largest=largest, **kw)
            _close_or_finite(top.values[b, :nk], ref.values, method, mode)
            if _indices(method):
                assert torch.equal(
                    top.indices[b, : min(3, nk)][:, ~keep[b]], torch.zeros(min(3, nk), N - nk, dtype=F64)
                )
                if _exact(method, mode):
                    torch.testing.assert_close(top.indices[b, : min(3, nk)][:, keep[b]], ref.indices, **TOL)


@pytest.mark.parametrize("method, mode", CASES)
def test_excluded_entries_first_and_on_both_sides(method, mode):
    """``+inf`` entries sort before the kept ones (descending): the kept slots follow them."""
    x, keep = _data()
    kw = _kw(method, mode)
    both = keep.clone()
    both[0, 0] = False  # row 0: +inf at 0, -inf at 1 and 4
    xm = x.masked_fill(~keep, INF)
    xm[0, 0], xm[0, [1, 4]] = INF, -INF
    for order in (True, False):
        out = st.sort(xm, descending=order, **kw)
        ranks = st.rank(xm, dim=-1, descending=order, **kw)
        quick = st.topk(xm, 4, largest=order, **kw).values
        for b in range(ROWS):
            kept = x[b][both[b] if b == 0 else keep[b]]
            nk = kept.numel()
            first = int((xm[b] == (INF if order else -INF)).sum())
            ref = st.sort(kept, descending=order, **kw).values
            _close_or_finite(out.values[b, first : first + nk], ref, method, mode)
            assert torch.isinf(out.values[b, :first]).all() and torch.isinf(out.values[b, first + nk :]).all()
            inside = torch.isfinite(xm[b])
            _close_or_finite(ranks[b][inside], first + st.rank(kept, descending=order, **kw), method, mode)
            slots = slice(first, min(4, first + nk))
            if slots.stop <= first:  # every top-4 slot holds an excluded entry
                continue
            # Asking for the top 4 slots asks for the top 4 - first kept ones (ot relaxes the slots
            # it is asked for together, so the reference is that top-k, not a prefix of the sort).
            quick_ref = st.topk(kept, slots.stop - first, largest=order, **kw).values
            _close_or_finite(quick[b, slots], quick_ref, method, mode)


@pytest.mark.parametrize("method, mode", CASES)
def test_rank_and_argsort_excluded_entries(method, mode):
    x, keep = _data()
    kw = _kw(method, mode)
    xm = x.masked_fill(~keep, -INF)
    ranks = st.rank(xm, dim=-1, **kw)
    assert torch.equal(ranks, st.rank(x, dim=-1, mask=keep, **kw))
    for b in range(ROWS):
        nk = int(keep[b].sum())
        _close_or_finite(ranks[b][keep[b]], st.rank(x[b][keep[b]], **kw), method, mode)
        want = torch.arange(nk + 1, N + 1, dtype=F64)  # the excluded entries rank last, in index order
        assert torch.equal(ranks[b][~keep[b]], want)
    if not _indices(method):
        return
    p = st.argsort(xm, descending=True, **kw)
    for b in range(ROWS):
        nk = int(keep[b].sum())
        assert torch.equal(p[b, :nk][:, ~keep[b]], torch.zeros(nk, N - nk, dtype=F64))
        if _exact(method, mode):
            ref = st.argsort(x[b][keep[b]], descending=True, **kw)
            torch.testing.assert_close(p[b, :nk][:, keep[b]], ref, **TOL)


@pytest.mark.parametrize("method, mode", CASES)
def test_max_argmax_min_excluded_entries(method, mode):
    x, keep = _data()
    kw = _kw(method, mode)
    for fn, fill in ((st.max, -INF), (st.min, INF)):
        out = fn(x.masked_fill(~keep, fill), dim=-1, **kw)
        by_mask = fn(x, dim=-1, mask=keep, **kw)
        torch.testing.assert_close(by_mask.values, out.values, rtol=0, atol=0)
        for b in range(ROWS):
            ref = fn(x[b][keep[b]], dim=0, **kw)
            _close_or_finite(out.values[b], ref.values, method, mode)
            if _indices(method):
                assert torch.equal(out.indices[b][~keep[b]], torch.zeros(int((~keep[b]).sum()), dtype=F64))
                if _exact(method, mode):
                    torch.testing.assert_close(out.indices[b][keep[b]], ref.indices, **TOL)
    if _indices(method):
        xm = x.masked_fill(~keep, -INF)
        am = st.argmax(xm, dim=-1, **kw)
        assert torch.equal(am, st.max(xm, dim=-1, **kw).indices)


@pytest.mark.parametrize("method, mode", CASES)
def test_quantile_median_with_mask_count_kept_entries_only(method, mode):
    x, keep = _data()
    kw = _kw(method, mode)
    indices = _indices(method)
    q = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=F64)
    for interpolation in ("linear", "nearest", "midpoint"):
        out = st.quantile(x, q, dim=-1, mask=keep, interpolation=interpolation, return_argquantile=indices, **kw)
        values = out.values if indices else out
        for b in range(ROWS):
            kept = x[b][keep[b]]
            ref = st.quantile(kept, q, dim=0, interpolation=interpolation, return_argquantile=indices, **kw)
            ref_values = ref.values if indices else ref
            _close_or_finite(values[:, b], ref_values, method, mode)
            if mode == "hard":  # and the hard reference is torch's
                torch.testing.assert_close(values[:, b], torch.quantile(kept, q, interpolation=interpolation))
            if indices:
                assert torch.equal(out.indices[:, b][:, ~keep[b]], torch.zeros(5, int((~keep[b]).sum()), dtype=F64))
                if _exact(method, mode):
                    torch.testing.assert_close(out.indices[:, b][:, keep[b]], ref.indices, **TOL)
    if not indices:  # median(x, dim) returns soft indices, which these methods have not: they refuse
        with pytest.raises(ValueError, match="not supported for median with an integer dim"):
            st.median(x, dim=-1, mask=keep, **kw)
        return
    med = st.median(x, dim=-1, mask=keep, **kw)
    for b in range(ROWS):
        kept = x[b][keep[b]]
        ref = st.median(kept, dim=0, **kw)
        _close_or_finite(med.values[b], ref.values, method, mode)
        if mode == "hard":
            assert med.values[b] == torch.median(kept)
        if _exact(method, mode):
            torch.testing.assert_close(med.indices[b][keep[b]], ref.indices, **TOL)
            assert torch.equal(med.indices[b][~keep[b]], torch.zeros(int((~keep[b]).sum()), dtype=F64))
    am = st.argmedian(x, dim=-1, mask=keep, **kw)
    torch.testing.assert_close(am, st.median(x, dim=-1, mask=keep, **kw).indices, rtol=0, atol=0)
    aq = st.argquantile(x, 0.3, dim=-1, mask=keep, **kw)
    torch.testing.assert_close(aq, st.quantile(x, 0.3, dim=-1, mask=keep, return_argquantile=True, **kw).indices)


@pytest.mark.parametrize("method, mode", CASES)
def test_gradients_finite_and_zero_at_excluded_entries(method, mode):
    x, keep = _data()
    xm = x.masked_fill(~keep, -INF).requires_grad_(True)
    kw = _kw(method, mode)
    outs = [
        st.topk(xm, 3, **kw).values[:, :1],  # row 3 keeps one entry: its other top-3 slots are -inf
        st.rank(xm, dim=-1, **kw),
        st.max(xm, dim=-1, **kw).values,
        st.sort(xm, descending=True, **kw).values[:, :1],
        st.quantile(xm, 0.4, dim=-1, mask=keep, **kw),
    ]
    if _indices(method):
        outs.append(st.argmax(xm, dim=-1, **kw) @ torch.arange(7.0, dtype=F64))
    loss = sum((o * torch.linspace(0.5, 1.5, o.shape[-1], dtype=F64)).sum() for o in outs)
    assert torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, xm)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[~keep], torch.zeros(int((~keep).sum()), dtype=F64))
    if mode != "hard":
        assert grad[keep].abs().sum() > 0


#: Every method in every soft mode; smooth and c1 in the default run, the others in the full one.
GRADCHECK = [
    pytest.param(method, mode, marks=() if mode in ("smooth", "c1") else pytest.mark.full)
    for method in METHODS
    for mode in get_method(method).modes
]


@pytest.mark.parametrize("method, mode", GRADCHECK)
def test_gradcheck_through_excluded_entries(method, mode):
    """gradcheck of the kept entries' outputs, with -inf entries inserted as constants."""
    v = torch.randn(5, generator=torch.Generator().manual_seed(2), dtype=F64, requires_grad=True)
    pad = torch.tensor([-INF, -INF], dtype=F64)

    def f(v):
        row = torch.cat([v[:2], pad[:1], v[2:], pad[1:]])
        kw = _kw(method, mode, softness=0.4)
        outs = [st.topk(row, 3, **kw).values, st.rank(row, **kw)[[0, 1, 3, 4, 5]], st.max(row, **kw)]
        if _indices(method):
            outs.append(st.sort(row, **kw).indices[2:, [0, 1, 3, 4, 5]])
        return tuple(outs)

    assert torch.autograd.gradcheck(f, (v,))


@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_ot_gradgradcheck_through_excluded_entries(mode):
    """ot's implicit backward stays differentiable when the row is transported with its kept layout."""
    v = torch.randn(4, generator=torch.Generator().manual_seed(1), dtype=F64, requires_grad=True)
    pad = torch.tensor([-INF], dtype=F64)

    def f(v):
        row = torch.cat([v[:2], pad, v[2:]])
        kw = _kw("ot", mode, softness=0.5)
        return st.sort(row, **kw).values[1:], st.topk(row, 2, **kw).values

    assert torch.autograd.gradgradcheck(f, (v,))


@pytest.mark.parametrize("method", ["ot", "fast_soft_sort", "smooth_sort"])
def test_gradcheck_per_row_softness_with_excluded_entries(method):
    """A per-row softness tensor gets gradients through rows with -inf and +inf entries."""
    x = torch.tensor([[0.3, -INF, 1.2, -0.4, 0.9], [INF, 0.1, -0.7, 0.5, -INF]], dtype=F64)

    def f(s):
        kw = _kw(method, "smooth", softness=s)
        values, top = st.sort(x, **kw).values, st.topk(x, 2, **kw).values
        finite = (torch.where(torch.isfinite(v), v, 0.0) for v in (values, top))
        return (*finite, st.rank(x, dim=-1, **kw))

    assert torch.autograd.gradcheck(f, (torch.tensor([[0.4], [0.7]], dtype=F64, requires_grad=True),))


@pytest.mark.parametrize("method", sorted(EXACT))
def test_standardize_off_and_issue_examples(method):
    """The issue's reports: all -inf top-k, NaN without standardization, weight on a masked argmax, +inf rows."""
    s = torch.tensor([0.3, -INF, 1.0, 0.2], dtype=F64)
    kept = s[[0, 2, 3]]
    opts = _kw(method, "smooth", softness=0.1)
    opts.pop("softness")
    for standardize in (True, False):
        kw = dict(opts, standardize=standardize)
        top = st.topk(s, 2, **kw)
        torch.testing.assert_close(top.values, st.topk(kept, 2, **kw).values, **TOL)
        if _indices(method):
            assert top.indices[:, 1].abs().max() == 0
    if _indices(method):
        assert st.argmax(s, **opts)[1] == 0
    up = torch.tensor([0.3, INF, -1.0], dtype=F64)
    out = st.sort(up, **opts)
    assert out.values[-1] == INF and torch.isfinite(out.values[:2]).all()
    torch.testing.assert_close(out.values[:2], st.sort(up[[0, 2]], **opts).values, **TOL)


@pytest.mark.parametrize("mode", ["c1", "c2"])
def test_fast_soft_sort_normalized_regularizer_masks_exactly(mode):
    x, keep = _data()
    kw = dict(softness=0.8, mode=mode, method="fast_soft_sort", method_options={"regularizer": "normalized"})
    values = st.sort(x, mask=keep, **kw).values
    ranks = st.rank(x, dim=-1, mask=keep, **kw)
    for b in range(ROWS):
        kept, nk = x[b][keep[b]], int(keep[b].sum())
        torch.testing.assert_close(values[b, :nk], st.sort(kept, **kw).values, **TOL)
        torch.testing.assert_close(ranks[b][keep[b]], st.rank(kept, **kw), **TOL)


@pytest.mark.parametrize("method", ["ot", "fast_soft_sort", "smooth_sort"])
def test_float32_masked_rows_match_kept_rows(method):
    """The exact masking also holds in float32 (to its precision) and with a per-row softness."""
    x, keep = _data()
    x32 = x.float()
    softness = torch.tensor([[0.2], [0.5], [1.0], [0.3], [0.7]])
    out = st.sort(x32, mask=keep, softness=softness, method=method, mode="smooth").values
    for b in range(ROWS):
        kept, nk = x32[b][keep[b]], int(keep[b].sum())
        ref = st.sort(kept, softness=float(softness[b]), method=method, mode="smooth").values
        torch.testing.assert_close(out[b, :nk], ref, rtol=0, atol=2e-5)


@pytest.mark.parametrize("method, mode", [case for case in CASES if case[1] != "hard"])
def test_all_kept_mask_gives_the_unmasked_result(method, mode):
    """A mask that keeps everything runs the excluding path (as every call on an accelerator
    does): the same results as without it, to float32 rounding."""
    x = torch.randn(4, 9, generator=torch.Generator().manual_seed(3))
    keep = torch.ones(4, 9, dtype=torch.bool)
    kw = dict(softness=0.3, mode=mode, method=method)
    calls = [
        lambda **m: st.sort(x, descending=True, **kw, **m).values,
        lambda **m: st.rank(x, dim=-1, **kw, **m),
        lambda **m: st.topk(x, 3, **kw, **m).values,
        lambda **m: st.max(x, dim=-1, **kw, **m).values,
    ]
    if _indices(method):
        calls.append(lambda **m: st.topk(x, 3, **kw, **m).indices)
        calls.append(lambda **m: st.argmax(x, dim=-1, **kw, **m))
    for call in calls:
        torch.testing.assert_close(call(mask=keep), call(), rtol=0, atol=1e-6)


def test_layers_take_mask_at_call_time():
    x, keep = _data()
    for layer, fn in (
        (snn.SoftTopK(2), lambda m: st.topk(x, 2, mask=m).values),
        (snn.SoftRank(dim=-1, straight_through=True), lambda m: st.rank_st(x, dim=-1, mask=m)),
        (snn.SoftQuantile(0.5, dim=-1), lambda m: st.quantile(x, 0.5, dim=-1, mask=m)),
        (snn.SoftArgmax(dim=-1, mode="c1"), lambda m: st.argmax(x, dim=-1, mode="c1", mask=m)),
    ):
        assert torch.equal(layer(x, mask=keep), fn(keep))
    with pytest.raises(TypeError, match=r"unexpected keyword\(s\) mas; per-call keywords it takes: mask"):
        snn.SoftTopK(2)(x, mas=keep)
    with pytest.raises(TypeError, match=r"per-call keywords it takes: none"):
        snn.SoftAbs()(x, mask=keep)


def test_mask_broadcasts_and_dim_none():
    x, keep = _data()
    column = torch.tensor([True, True, False, True, True, True, True])
    out = st.sort(x, descending=True, mask=column, mode="c0")
    want = st.sort(x[:, column], descending=True, mode="c0").values
    torch.testing.assert_close(out.values[:, :6], want, **TOL)
    flat = st.median(x, mask=keep)
    torch.testing.assert_close(flat, st.median(x[keep]), **TOL)


@pytest.mark.full
@pytest.mark.parametrize("method, mode", [case for case in CASES if case[1] != "hard" and case[0] in EXACT])
def test_random_masks_sweep(method, mode):
    """Random sizes, masks (including rows with one or no kept entry), signs of the infinities,
    softness and orders: kept slots, ranks and top-k equal the per-row loop."""
    g = torch.Generator().manual_seed(7)
    for trial in range(6):
        n = 2 + trial
        x = torch.randn(4, n, generator=g, dtype=F64)
        keep = torch.rand(4, n, generator=g) > 0.4
        keep[0] = False
        keep[1, 1:] = False
        high = torch.rand(4, n, generator=g) > 0.5
        xm = torch.where(keep, x, torch.where(high, INF, -INF))
        softness = float(0.05 + 2 * torch.rand((), generator=g))
        kw = _kw(method, mode, softness=softness)
        for order in (True, False):
            values = st.sort(xm, descending=order, **kw).values
            ranks = st.rank(xm, dim=-1, descending=order, **kw)
            top = st.topk(xm, 2 if n > 2 else 1, largest=order, **kw).values
            for b in range(4):
                kept, nk = x[b][keep[b]], int(keep[b].sum())
                if nk == 0:
                    assert torch.isinf(values[b]).all() and torch.isfinite(ranks[b]).all()
                    continue
                first = int((xm[b] == (INF if order else -INF)).sum())
                ref = st.sort(kept, descending=order, **kw).values
                torch.testing.assert_close(values[b, first : first + nk], ref, **TOL)
                torch.testing.assert_close(ranks[b][keep[b]], first + st.rank(kept, descending=order, **kw), **TOL)
                asked = min(top.shape[-1], first + nk) - first
                if asked > 0:
                    want = st.topk(kept, asked, largest=order, **kw).values
                    torch.testing.assert_close(top[b, first : first + asked], want, **TOL)
