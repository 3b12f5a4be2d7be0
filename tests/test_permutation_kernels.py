"""The fused soft-permutation kernels (softtorch._core.fused_permutation): values against a plain
dense computation written here, and float64 gradcheck / gradgradcheck of every autograd Function
in every soft mode."""

from __future__ import annotations

import os

import pytest
import torch
from _registry import SOFT_MODES

from softtorch._core import fused_permutation as fp
from softtorch._core import memory
from softtorch._core.expectation import expect
from softtorch._core.kernels import sigmoidal_kernel
from softtorch._core.memory import empty_paged
from softtorch._core.projections import project_simplex

MODES = SOFT_MODES
F64 = torch.float64


def distinct(shape, seed, scale=0.25):
    """Well-separated values (pairwise gaps >= 0.4 * scale), so sparse supports are locally constant."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(shape, generator=g).argsort(-1).to(F64)
    return scale * (grid + 0.1 + 0.3 * torch.rand(shape, generator=g, dtype=F64))


def dense_sums(y, mode):
    """B_j = sum_k |d| (2 sigma(d) - 1) with d = y_j - y_k, the plain n x n way."""
    d = y.unsqueeze(-1) - y.unsqueeze(-2)
    return (d * (2.0 * sigmoidal_kernel(d, mode) - 1.0)).sum(-1)


def dense_rows(kind, y, row_par, col_par, mode):
    if kind == fp.SOFTSORT:
        scores = -(row_par.unsqueeze(-1) - y.unsqueeze(-2)).abs()
    else:
        scores = row_par.unsqueeze(-1) * y.unsqueeze(-2) - col_par.unsqueeze(-2)
    return project_simplex(scores, mode)


def _args(kind, seed=0):
    y = distinct((2, 5), seed)
    if kind == fp.SOFTSORT:
        row_par = y.sort(-1).values[..., [0, 2, 3]] + 0.01
        col_par = None
    else:
        row_par = torch.tensor([-4.0, 0.0, 2.0], dtype=F64)
        col_par = distinct((2, 5), seed + 1)
    return y, row_par, col_par


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Blocks of a few rows, so that the block loops (not one block) are what is checked."""
    monkeypatch.setattr(fp, "BLOCK_ELEMENTS", 10)


@pytest.mark.parametrize("mode", MODES)
def test_pairwise_sums_equal_the_dense_sum(mode):
    y = distinct((3, 7), 0, scale=1.0)
    torch.testing.assert_close(fp.pairwise_sums(y, mode), dense_sums(y, mode))


@pytest.mark.parametrize("mode", MODES)
def test_pairwise_sums_gradcheck_and_gradgradcheck(mode):
    y = distinct((2, 5), 3, scale=1.0).requires_grad_()
    assert torch.autograd.gradcheck(lambda y: fp.pairwise_sums(y, mode), (y,))
    assert torch.autograd.gradgradcheck(lambda y: fp.pairwise_sums(y, mode), (y,))


@pytest.mark.parametrize("kind", [fp.SOFTSORT, fp.NEURALSORT])
@pytest.mark.parametrize("mode", MODES)
def test_soft_rows_outputs_equal_the_dense_rows(kind, mode):
    y, row_par, col_par = _args(kind)
    v = torch.tensor([1.0, -2.0, 0.5, 3.0, float("inf")], dtype=F64)
    w = torch.tensor([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]], dtype=F64)
    rows, expected, columns = fp.soft_rows(kind, y, row_par, col_par, mode, values=v, weights=w)
    p = dense_rows(kind, y, row_par, col_par, mode)
    torch.testing.assert_close(rows, p)
    finite = torch.where(torch.isinf(v), 0.0, v)
    plain = (p * finite).sum(-1)
    torch.testing.assert_close(expected, torch.where(p[..., -1] > 0, float("inf"), plain))
    torch.testing.assert_close(columns, w.T @ p)
    # values only: the same expectations without the rows
    (alone,) = fp.soft_rows(kind, y, row_par, col_par, mode, keep=False, values=v)
    torch.testing.assert_close(alone, expected)


@pytest.mark.parametrize("kind", [fp.SOFTSORT, fp.NEURALSORT])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("outputs", ["rows", "rows+values", "values", "columns"])
def test_soft_rows_gradcheck_and_gradgradcheck(kind, mode, outputs):
    y, row_par, col_par = _args(kind, seed=4)
    v = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.25], dtype=F64)
    w = torch.tensor([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]], dtype=F64)
    keep = outputs.startswith("rows")
    with_values = "values" in outputs
    with_columns = outputs == "columns"
    leaves = [y, v]
    if kind == fp.SOFTSORT:
        leaves.append(row_par)
    else:
        leaves.append(col_par)
    leaves = [t.clone().requires_grad_() for t in leaves]

    def fn(y, v, par):
        rp, cp = (par, None) if kind == fp.SOFTSORT else (row_par, par)
        return fp.soft_rows(
            kind, y, rp, cp, mode, keep=keep, values=v if with_values else None, weights=w if with_columns else None
        )

    assert torch.autograd.gradcheck(fn, leaves)
    assert torch.autograd.gradgradcheck(fn, leaves)


def test_soft_rows_vmap_matches_a_loop():
    y, row_par, _ = _args(fp.SOFTSORT)
    got = torch.func.vmap(lambda y, a: fp.soft_rows(fp.SOFTSORT, y, a, None, "c1")[0])(y, row_par)
    expected = torch.stack([fp.soft_rows(fp.SOFTSORT, y[b], row_par[b], None, "c1")[0] for b in range(2)])
    torch.testing.assert_close(got, expected)


# -- the eager fast path (contiguous blocks in place) against the generic block code ---------------


def _outputs_and_vjp(kind, mode, y, row_par, col_par, v, w, keep, seed=11):
    """Every output of soft_rows and the gradients of a seeded random cotangent on all of them."""
    leaves = [t.clone().requires_grad_() for t in (y, row_par if kind == fp.SOFTSORT else col_par, v)]
    rp, cp = (leaves[1], None) if kind == fp.SOFTSORT else (row_par, leaves[1])
    outs = fp.soft_rows(kind, leaves[0], rp, cp, mode, keep=keep, values=leaves[2], weights=w)
    g = torch.Generator().manual_seed(seed)
    cots = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in outs]
    grads = torch.autograd.grad(outs, leaves, cots, allow_unused=True)
    return [o.detach() for o in outs] + [torch.zeros_like(t) if d is None else d for t, d in zip(leaves, grads)]


@pytest.mark.parametrize("block", [10, 1 << 20], ids=["row-blocks", "whole-entries"])
@pytest.mark.parametrize("kind", [fp.SOFTSORT, fp.NEURALSORT])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("keep", [True, False])
def test_fast_path_equals_the_generic_blocks(block, kind, mode, keep, monkeypatch):
    """Outputs and gradients of the in-place path equal the autograd-friendly one, for both block
    layouts, a values vector broadcast over a (2, 3) batch and weights (rank's column statistics)."""
    monkeypatch.setattr(fp, "BLOCK_ELEMENTS", block)
    y = distinct((2, 3, 6), 5)
    if kind == fp.SOFTSORT:
        row_par, col_par = y.sort(-1).values[..., [0, 2, 3, 5]], None
    else:
        row_par, col_par = torch.tensor([-5.0, -1.0, 1.0, 3.0], dtype=F64), distinct((2, 3, 6), 6)
    v = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.25, -1.5], dtype=F64)  # broadcast over the batch
    w = torch.tensor([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0], [1.0, 4.0]], dtype=F64)
    fast = _outputs_and_vjp(kind, mode, y, row_par, col_par, v, w, keep)
    monkeypatch.setattr(fp, "_eager", lambda *tensors: False)
    generic = _outputs_and_vjp(kind, mode, y, row_par, col_par, v, w, keep)
    assert len(fast) == len(generic) == (6 if keep else 5)
    for a, b in zip(fast, generic):
        torch.testing.assert_close(a, b)


def test_fast_path_infinite_values_match_expect(monkeypatch):
    """Infinite values take the three-column products: +-inf expectations, no gradient through them."""
    y, row_par, _ = _args(fp.SOFTSORT)
    v = torch.tensor([1.0, -2.0, 0.5, 3.0, float("inf")], dtype=F64)
    fast = _outputs_and_vjp(fp.SOFTSORT, "c1", y, row_par, None, v, None, True)
    monkeypatch.setattr(fp, "_eager", lambda *tensors: False)
    generic = _outputs_and_vjp(fp.SOFTSORT, "c1", y, row_par, None, v, None, True)
    for a, b in zip(fast, generic):
        torch.testing.assert_close(a, b)
    assert torch.isinf(fast[1]).any() and fast[-1][-1] == 0.0


@pytest.mark.parametrize("kind", [fp.SOFTSORT, fp.NEURALSORT])
def test_fast_rows_hold_no_subnormals(kind):
    """Scores far below the row maximum are floored (float32, CPU): no subnormal probability, and the
    rows still equal the dense softmax to float32 accuracy."""
    g = torch.Generator().manual_seed(0)
    # Integers (exact products c_i y_j, so both ways round alike), differences up to 156: exp underflows float32
    y = torch.stack([torch.randperm(40, generator=g) for _ in range(3)]).float() * 4.0
    if kind == fp.SOFTSORT:
        row_par, col_par = y.sort(-1).values, None
    else:
        row_par, col_par = torch.linspace(-39.0, 39.0, 40), fp.pairwise_sums(y, "smooth")
    (p,) = fp.soft_rows(kind, y, row_par, col_par, "smooth")
    tiny = torch.finfo(torch.float32).tiny
    assert not ((p > 0) & (p < tiny)).any()
    torch.testing.assert_close(p, dense_rows(kind, y, row_par, col_par, "smooth"), atol=1e-6, rtol=1e-5)


def _vm_flags(address):
    """The VmFlags of the mapping of this process that holds ``address`` (Linux /proc/self/smaps)."""
    current = None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                start, end = (int(part, 16) for part in head.split("-"))
                current = start <= address < end
            elif head == "VmFlags:" and current:
                return line.split()[1:]
    return None


@pytest.mark.skipif(
    not os.path.isdir("/sys/kernel/mm/transparent_hugepage"), reason="no transparent huge pages (a Linux feature)"
)
def test_large_permutation_buffers_ask_for_huge_pages():
    """A buffer of at least memory.MIN_BYTES has its whole 2 MiB pages advised as huge pages (the
    'hg' flag of its mapping) before its first write; a small one keeps ordinary pages."""
    like = torch.zeros(1)
    big = empty_paged(like, (memory.MIN_BYTES // 4 + 1000,))
    assert big.shape == (memory.MIN_BYTES // 4 + 1000,) and big.dtype == like.dtype
    inside = -(-big.data_ptr() // (1 << 21)) * (1 << 21)  # the first whole 2 MiB page
    assert "hg" in _vm_flags(inside)
    big.fill_(2.0)
    assert big.sum().item() == 2.0 * big.numel()
    small = empty_paged(like, (1000,))
    assert small.shape == (1000,) and "hg" not in (_vm_flags(small.data_ptr()) or [])


def test_softsort_rows_are_written_into_a_paged_buffer(monkeypatch):
    """The fused forward takes the rows' buffer from empty_paged (with the rows' shape)."""
    seen = []

    def spy(like, shape):
        seen.append(tuple(shape))
        return like.new_empty(shape)

    monkeypatch.setattr(fp, "empty_paged", spy)
    y, row_par, _ = _args(fp.SOFTSORT)
    (p,) = fp.soft_rows(fp.SOFTSORT, y, row_par, None, "smooth")
    assert seen == [tuple(p.shape)]
    torch.testing.assert_close(p, dense_rows(fp.SOFTSORT, y, row_par, None, "smooth"))


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_expect_of_few_rows_is_the_plain_sum(rows):
    """expect's products for one or two rows (a product and a sum) and for more (a matmul) equal a
    sum over the entries written here, batch dims broadcast, with float64 gradients."""
    g = torch.Generator().manual_seed(rows)
    p = torch.rand(4, 1, rows, 6, generator=g, dtype=F64).requires_grad_()
    v = torch.randn(3, 6, generator=g, dtype=F64).requires_grad_()
    out = expect(p, v)
    plain = torch.stack(
        [
            torch.stack([sum(p[a, 0, i, j] * v[b, j] for j in range(6)) for i in range(rows)])
            for a in range(4)
            for b in range(3)
        ]
    ).view(4, 3, rows)
    torch.testing.assert_close(out, plain)
    assert torch.autograd.gradcheck(expect, (p, v))


@pytest.mark.parametrize("kind", [fp.SOFTSORT, fp.NEURALSORT])
@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_sparse_rows_not_kept_are_rebuilt_without_a_threshold_search(kind, mode, monkeypatch):
    """Values without P in a sparse mode: the backward rebuilds the rows from the forward's row
    constants (no threshold search runs in it), and the gradient equals the generic block code's."""
    y, row_par, col_par = _args(kind)
    v = torch.linspace(-1.0, 2.0, y.shape[-1], dtype=F64)
    fast = _outputs_and_vjp(kind, mode, y, row_par, col_par, v, None, False)
    searches = []
    real = fp.project_sparse_
    monkeypatch.setattr(fp, "project_sparse_", lambda *args: searches.append(1) or real(*args))
    y_ = y.detach().requires_grad_()
    (expected,) = fp.soft_rows(kind, y_, row_par, col_par, mode, keep=False, values=v)
    forward_searches = len(searches)
    expected.sum().backward()
    assert forward_searches > 0 and len(searches) == forward_searches
    monkeypatch.setattr(fp, "_eager", lambda *tensors: False)
    generic = _outputs_and_vjp(kind, mode, y, row_par, col_par, v, None, False)
    for a, b in zip(fast, generic):
        torch.testing.assert_close(a, b)
