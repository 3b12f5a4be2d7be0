"""Masking (issue 18): ``-inf`` entries (``+inf`` ascending) and ``mask=False`` entries are excluded.

Excluded entries get zero weight in the kept slots, sit in their hard slots with their exact
(infinite) values, leave the standardization of the rest of the row alone, and every output at a
kept slot equals that of the row without them. References are the same calls on the kept entries
only, row by row in a plain loop. Methods whose relaxation depends on the row length (``ot``,
``sorting_network``, ``fast_soft_sort``) are exact in hard mode only; for them the tests check
what holds in every mode: zero weight on excluded columns, exact placement, finite values and
gradients.
"""

import pytest
import torch
from _registry import method_modes

import softtorch as st
import softtorch.nn as snn
from softtorch.methods import get_method

F64 = torch.float64
INF = float("inf")
#: Methods whose relaxation of the kept entries does not see the excluded ones at all.
EXACT = {"softsort", "neuralsort"}
CASES = method_modes()
TOL = dict(rtol=0, atol=1e-6)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, generator=g, dtype=F64)
    keep = torch.ones(3, 7, dtype=torch.bool)
    keep[0, [1, 4]] = False
    keep[1, 6] = False
    keep[2, [0, 2, 3]] = False
    return x, keep


def _exact(method, mode):
    return mode == "hard" or method in EXACT


def _close_or_finite(got, want, method, mode):
    if _exact(method, mode):
        torch.testing.assert_close(got, want, **TOL)
    else:
        assert torch.isfinite(got).all()


@pytest.mark.parametrize("method, mode", CASES)
def test_sort_topk_excluded_entries(method, mode):
    x, keep = _data()
    kw = dict(softness=0.3, mode=mode, method=method)
    indices = get_method(method).gives_indices
    for order, fill in ((True, -INF), (False, INF)):
        xm = x.masked_fill(~keep, fill)
        out = st.sort(xm, descending=order, **kw)
        by_mask = st.sort(x, descending=order, mask=keep, **kw)
        torch.testing.assert_close(by_mask.values, out.values, rtol=0, atol=0)
        for b in range(3):
            kept, nk = x[b][keep[b]], int(keep[b].sum())
            ref = st.sort(kept, descending=order, **kw)
            _close_or_finite(out.values[b, :nk], ref.values, method, mode)
            assert torch.equal(out.values[b, nk:], torch.full((7 - nk,), fill, dtype=F64))
            if indices:
                assert torch.equal(out.indices[b, :nk][:, ~keep[b]], torch.zeros(nk, 7 - nk, dtype=F64))
                hard_slots = out.indices[b, nk:]  # one-hot on the excluded entries, in index order
                want = torch.nn.functional.one_hot(torch.nonzero(~keep[b]).squeeze(-1), 7).to(F64)
                assert torch.equal(hard_slots, want)
                if _exact(method, mode):
                    torch.testing.assert_close(out.indices[b, :nk][:, keep[b]], ref.indices, **TOL)
    xm = x.masked_fill(~keep, -INF)
    top = st.topk(xm, 3, **kw)
    for b in range(3):
        ref = st.topk(x[b][keep[b]], 3, **kw)
        _close_or_finite(top.values[b], ref.values, method, mode)
        if indices:
            assert torch.equal(top.indices[b][:, ~keep[b]], torch.zeros(3, int((~keep[b]).sum()), dtype=F64))
            if _exact(method, mode):
                torch.testing.assert_close(top.indices[b][:, keep[b]], ref.indices, **TOL)


@pytest.mark.parametrize("method, mode", CASES)
def test_rank_and_argsort_excluded_entries(method, mode):
    x, keep = _data()
    kw = dict(softness=0.3, mode=mode, method=method)
    xm = x.masked_fill(~keep, -INF)
    ranks = st.rank(xm, dim=-1, **kw)
    assert torch.equal(ranks, st.rank(x, dim=-1, mask=keep, **kw))
    for b in range(3):
        nk = int(keep[b].sum())
        _close_or_finite(ranks[b][keep[b]], st.rank(x[b][keep[b]], **kw), method, mode)
        want = torch.arange(nk + 1, 8, dtype=F64)  # the excluded entries rank last, in index order
        assert torch.equal(ranks[b][~keep[b]], want)
    if not get_method(method).gives_indices:
        return
    p = st.argsort(xm, descending=True, **kw)
    for b in range(3):
        nk = int(keep[b].sum())
        assert torch.equal(p[b, :nk][:, ~keep[b]], torch.zeros(nk, 7 - nk, dtype=F64))
        if _exact(method, mode):
            ref = st.argsort(x[b][keep[b]], descending=True, **kw)
            torch.testing.assert_close(p[b, :nk][:, keep[b]], ref, **TOL)


@pytest.mark.parametrize("method, mode", CASES)
def test_max_argmax_min_excluded_entries(method, mode):
    x, keep = _data()
    kw = dict(softness=0.3, mode=mode, method=method)
    indices = get_method(method).gives_indices
    for fn, fill in ((st.max, -INF), (st.min, INF)):
        out = fn(x.masked_fill(~keep, fill), dim=-1, **kw)
        by_mask = fn(x, dim=-1, mask=keep, **kw)
        torch.testing.assert_close(by_mask.values, out.values, rtol=0, atol=0)
        for b in range(3):
            ref = fn(x[b][keep[b]], dim=0, **kw)
            _close_or_finite(out.values[b], ref.values, method, mode)
            if indices:
                assert torch.equal(out.indices[b][~keep[b]], torch.zeros(int((~keep[b]).sum()), dtype=F64))
                if _exact(method, mode):
                    torch.testing.assert_close(out.indices[b][keep[b]], ref.indices, **TOL)
    if indices:
        am = st.argmax(x.masked_fill(~keep, -INF), dim=-1, **kw)
        assert torch.equal(am, st.max(x.masked_fill(~keep, -INF), dim=-1, **kw).indices)


@pytest.mark.parametrize("method, mode", CASES)
def test_quantile_median_with_mask_count_kept_entries_only(method, mode):
    x, keep = _data()
    kw = dict(softness=0.3, mode=mode, method=method)
    indices = get_method(method).gives_indices
    q = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=F64)
    for interpolation in ("linear", "nearest", "midpoint"):
        out = st.quantile(x, q, dim=-1, mask=keep, interpolation=interpolation, return_argquantile=indices, **kw)
        values = out.values if indices else out
        for b in range(3):
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
    if not indices:  # median(x, dim) returns soft indices, which fast_soft_sort has not: it refuses
        with pytest.raises(ValueError, match="not supported for median with an integer dim"):
            st.median(x, dim=-1, mask=keep, **kw)
        return
    med = st.median(x, dim=-1, mask=keep, **kw)
    for b in range(3):
        kept = x[b][keep[b]]
        ref = st.median(kept, dim=0, **kw)
        _close_or_finite(med.values[b], ref.values, method, mode)
        if mode == "hard":
            assert med.values[b] == torch.median(kept)
        if indices and _exact(method, mode):
            torch.testing.assert_close(med.indices[b][keep[b]], ref.indices, **TOL)
            assert torch.equal(med.indices[b][~keep[b]], torch.zeros(int((~keep[b]).sum()), dtype=F64))
    if indices:
        am = st.argmedian(x, dim=-1, mask=keep, **kw)
        torch.testing.assert_close(am, st.median(x, dim=-1, mask=keep, **kw).indices, rtol=0, atol=0)
        aq = st.argquantile(x, 0.3, dim=-1, mask=keep, **kw)
        torch.testing.assert_close(aq, st.quantile(x, 0.3, dim=-1, mask=keep, return_argquantile=True, **kw).indices)


@pytest.mark.parametrize("method, mode", CASES)
def test_gradients_finite_and_zero_at_excluded_entries(method, mode):
    x, keep = _data()
    xm = x.masked_fill(~keep, -INF).requires_grad_(True)
    kw = dict(softness=0.3, mode=mode, method=method)
    outs = [
        st.topk(xm, 3, **kw).values,
        st.rank(xm, dim=-1, **kw),
        st.max(xm, dim=-1, **kw).values,
        st.sort(xm, descending=True, **kw).values[:, :4],
        st.quantile(xm, 0.4, dim=-1, mask=keep, **kw),
    ]
    if get_method(method).gives_indices:
        outs.append(st.argmax(xm, dim=-1, **kw) @ torch.arange(7.0, dtype=F64))
    loss = sum((o * torch.linspace(0.5, 1.5, o.shape[-1], dtype=F64)).sum() for o in outs)
    assert torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, xm)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[~keep], torch.zeros(int((~keep).sum()), dtype=F64))
    if mode != "hard":
        assert grad[keep].abs().sum() > 0


@pytest.mark.parametrize("method", sorted(EXACT))
@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_gradcheck_through_excluded_entries(method, mode):
    """gradcheck of the kept entries' outputs, with -inf entries inserted as constants."""
    v = torch.randn(5, generator=torch.Generator().manual_seed(2), dtype=F64, requires_grad=True)
    pad = torch.tensor([-INF, -INF], dtype=F64)

    def f(v):
        row = torch.cat([v[:2], pad[:1], v[2:], pad[1:]])
        kw = dict(softness=0.4, mode=mode, method=method)
        return st.topk(row, 3, **kw).values, st.rank(row, **kw)[[0, 1, 3, 4, 5]], st.max(row, **kw)

    assert torch.autograd.gradcheck(f, (v,))


@pytest.mark.parametrize("method", sorted(EXACT))
def test_standardize_off_and_issue_examples(method):
    """The issue's reports: all -inf top-k, NaN without standardization, weight on a masked argmax, +inf rows."""
    s = torch.tensor([0.3, -INF, 1.0, 0.2], dtype=F64)
    kept = s[[0, 2, 3]]
    for standardize in (True, False):
        kw = dict(method=method, standardize=standardize)
        top = st.topk(s, 2, **kw)
        torch.testing.assert_close(top.values, st.topk(kept, 2, **kw).values, **TOL)
        assert top.indices[:, 1].abs().max() == 0
    assert st.argmax(s, method=method)[1] == 0
    up = torch.tensor([0.3, INF, -1.0], dtype=F64)
    out = st.sort(up, method=method)
    assert out.values[-1] == INF and torch.isfinite(out.values[:2]).all()
    torch.testing.assert_close(out.values[:2], st.sort(up[[0, 2]], method=method).values, **TOL)


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
