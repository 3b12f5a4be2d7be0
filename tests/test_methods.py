"""The softsort and neuralsort method modules, called directly, and their row-block memory path.

Every method answers the same questions on standardized scores ``xt`` of shape ``(..., n)``
(``permutation``, ``argmax``, ``sort_values``, ``rank``; see :mod:`softtorch.methods.base`). The references below
are written from SPEC §3/§4.3 with plain loops and a bisection for the simplex threshold, so they
share no code with the library.
"""

from __future__ import annotations

import math

import pytest
import torch
from _registry import DIRECT_INDEX, SOFT_MODES

import softtorch
import softtorch._core.fused_permutation as fused
from softtorch.methods import METHOD_NAMES, get_method, neuralsort, softsort

METHODS = {name: get_method(name) for name in ("softsort", "neuralsort")}  # their contract functions
F64 = torch.float64


# -- independent references (SPEC §3, §4.1, §4.2, §4.3) ---------------------------------------------


def ref_sigmoidal(z: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "smooth":
        return 1.0 / (1.0 + torch.exp(-z))
    u = torch.clamp(z / 5.0, -1.0, 1.0)
    if mode == "c0":
        return 0.5 + 0.5 * u
    if mode == "c1":
        return -(u**3) / 4 + 3 * u / 4 + 0.5
    return 3 * u**5 / 16 - 5 * u**3 / 8 + 15 * u / 16 + 0.5


def ref_project(z: torch.Tensor, mode: str) -> torch.Tensor:
    """Simplex projection of each row of ``z``: softmax, or ``[z - tau]_+^m`` with the threshold by bisection."""
    if mode == "smooth":
        e = torch.exp(z - z.max(-1, keepdim=True).values)
        return e / e.sum(-1, keepdim=True)
    m = {"c0": 1, "c1": 2, "c2": 3}[mode]
    hi = z.max(-1, keepdim=True).values
    lo = hi - 1.0  # sum_i [z_i - tau]_+^m >= 1 at tau = max - 1
    for _ in range(64):  # the bracket shrinks to 2^-64
        mid = 0.5 * (lo + hi)
        mass = ((z - mid).clamp_min(0.0) ** m).sum(-1, keepdim=True)
        lo, hi = torch.where(mass > 1, mid, lo), torch.where(mass > 1, hi, mid)
    return (z - 0.5 * (lo + hi)).clamp_min(0.0) ** m


def ref_standardize(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return torch.sigmoid((x - mean) / torch.sqrt(var + 1e-6))


def ref_softsort(xt, s, mode, descending=False):
    """Row i: projection of -|anchor_i - xt_j| / s, anchors the hard-sorted scores."""
    anchors = torch.sort(xt, descending=descending).values
    return ref_project(-(anchors.unsqueeze(-1) - xt.unsqueeze(-2)).abs() / s, mode)


def ref_neuralsort(xt, s, mode, descending=False):
    """Row i (1-based, descending): projection of ((n + 1 - 2i) xt_j - sum_k |xt_j - xt_k|_soft) / s."""
    n = xt.shape[-1]
    diff = xt.unsqueeze(-1) - xt.unsqueeze(-2)
    sums = (diff * (2.0 * ref_sigmoidal(diff / s, mode) - 1.0)).sum(-1)  # sum_k |xt_j - xt_k|_soft
    coef = torch.tensor([n + 1.0 - 2 * i for i in range(1, n + 1)], dtype=xt.dtype)
    p = ref_project((coef.unsqueeze(-1) * xt.unsqueeze(-2) - sums.unsqueeze(-2)) / s, mode)
    return p if descending else p.flip(-2)


REFERENCES = {"softsort": ref_softsort, "neuralsort": ref_neuralsort}


def distinct(shape, seed=0, dtype=F64):
    """Values with pairwise gaps >= 0.5 along the last dim (a shuffled grid plus small noise)."""
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    order = torch.rand(shape, generator=g).argsort(-1).to(dtype)
    return order + 0.5 * torch.rand(shape, generator=g, dtype=dtype) - 0.3 * n


def scores(shape, seed=0):
    return ref_standardize(distinct(shape, seed))


def force_chunks(monkeypatch, chunk_elements=64):
    """Force row blocks of about ``chunk_elements`` elements on tiny inputs (several blocks per call)."""
    monkeypatch.setattr(fused, "BLOCK_ELEMENTS", chunk_elements)


@pytest.fixture
def small_chunks(monkeypatch):
    force_chunks(monkeypatch)


# -- dispatch table --------------------------------------------------------------------------------


class TestDispatch:
    def test_lookup(self):
        for name in DIRECT_INDEX:
            method = get_method(name)
            assert method.name == name
            assert method.gives_indices
        assert get_method("softsort").module is softsort
        assert get_method("neuralsort").module is neuralsort

    def test_unknown_method_lists_all(self):
        with pytest.raises(ValueError, match="method must be one of") as info:
            get_method("bubble")
        for name in METHOD_NAMES:
            assert repr(name) in str(info.value)
        assert "'bubble'" in str(info.value)

    def test_later_methods_are_known(self):
        """'ot' and 'fast_soft_sort' are accepted names: either available or announced as not yet."""
        for name in ("ot", "fast_soft_sort"):
            try:
                method = get_method(name)
            except NotImplementedError as err:
                assert repr(name) in str(err)
            else:
                assert method.name == name

    def test_fast_soft_sort_has_no_indices(self):
        with pytest.raises(ValueError, match="fast_soft_sort.*no soft permutation"):
            get_method("fast_soft_sort", needs_indices=True)


# -- permutation / argmax / sort_values against the references --------------------------------------


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_permutation_matches_reference(name, mode, descending):
    xt = scores((2, 3, 7), seed=1)
    for s in (0.05, 0.3, 2.0):
        got = METHODS[name].permutation(xt, s, mode, descending=descending)
        want = REFERENCES[name](xt, s, mode, descending)
        assert got.shape == (2, 3, 7, 7)
        torch.testing.assert_close(got, want, atol=1e-9, rtol=0)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_rows_selects_slots(name, mode):
    module = METHODS[name]
    xt = scores((4, 6), seed=2)
    full = module.permutation(xt, 0.2, mode, descending=True)
    rows = torch.tensor([4, 0, 2])
    torch.testing.assert_close(module.permutation(xt, 0.2, mode, descending=True, rows=rows), full[..., rows, :])
    torch.testing.assert_close(module.permutation(xt, 0.2, mode, rows=slice(1, 3)), full.flip(-2)[..., 1:3, :])


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_log_permutation(name, mode):
    module = METHODS[name]
    xt = scores((3, 6), seed=3)
    p = module.permutation(xt, 0.1, mode)
    logp = module.permutation(xt, 0.1, mode, log=True)
    assert torch.equal(torch.isneginf(logp), p == 0)
    torch.testing.assert_close(logp.exp(), p, atol=1e-12, rtol=0)
    if mode == "smooth":
        assert torch.isfinite(logp).all()
        # the stable log-softmax keeps resolving probabilities far below float64's tiny
        deep = module.permutation(xt, 1e-4, mode, log=True)
        assert torch.isfinite(deep).all() and deep.min() < -1000
    elif mode == "c0":
        assert (p == 0).any(), "at softness 0.1 sparsemax rows must have exact zeros"


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_argmax_is_first_descending_row(name, mode):
    module = METHODS[name]
    xt = scores((2, 5, 8), seed=4)
    for s in (0.03, 0.5):
        first = module.permutation(xt, s, mode, descending=True)[..., 0, :]
        torch.testing.assert_close(module.argmax(xt, s, mode), first, atol=1e-12, rtol=0)
        torch.testing.assert_close(module.argmax(xt, s, mode, log=True).exp(), first, atol=1e-12, rtol=0)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_sort_values_is_permutation_times_x(name, mode, descending):
    module = METHODS[name]
    x = distinct((3, 9), seed=5) * 2.5 + 1.0
    xt = ref_standardize(x)
    got = module.sort_values(xt, 0.2, mode, descending=descending, values=x)
    want = REFERENCES[name](xt, 0.2, mode, descending) @ x.unsqueeze(-1)
    torch.testing.assert_close(got, want.squeeze(-1), atol=1e-9, rtol=0)


def test_hand_checked_two_elements():
    """n = 2, x = [0, 1]: x~ = sigmoid(+-1/sqrt(1/4 + 1e-6)/2) and the rows in closed form."""
    s = 0.1
    z = 0.5 / math.sqrt(0.25 + 1e-6)
    lo, hi = 1 / (1 + math.exp(z)), 1 / (1 + math.exp(-z))
    gap = hi - lo
    # softsort, smooth: slot 0 anchored at lo: softmax([0, -gap / s])
    w = 1 / (1 + math.exp(-gap / s))
    x = torch.tensor([0.0, 1.0], dtype=F64)
    p = softtorch.argsort(x, softness=s, method="softsort")
    torch.testing.assert_close(p, torch.tensor([[w, 1 - w], [1 - w, w]], dtype=F64))
    torch.testing.assert_close(
        softtorch.sort(x, softness=s, method="softsort").values, torch.tensor([1 - w, w], dtype=F64)
    )
    # neuralsort, smooth: the soft |.| sums are equal (|d|_soft is even), so slot 0 = softmax(-(x~)/s)
    w = 1 / (1 + math.exp(-gap / s))
    torch.testing.assert_close(
        softtorch.argsort(x, softness=s, method="neuralsort"), torch.tensor([[w, 1 - w], [1 - w, w]], dtype=F64)
    )
    # c0 with a wide gap: one-hot rows (sparsemax saturates when gap / s >= 1)
    p = softtorch.argsort(x, softness=gap / 1.5, mode="c0", method="softsort")
    assert torch.equal(p, torch.eye(2, dtype=F64))
    # c0 with a narrow gap: [z - tau]_+ with z = [0, -gap/s] gives [1/2 + gap/(2s), 1/2 - gap/(2s)]
    s = 4 * gap
    p = softtorch.argsort(x, softness=s, mode="c0", method="softsort")
    torch.testing.assert_close(p[0], torch.tensor([0.625, 0.375], dtype=F64))


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_public_sort_uses_standardized_method(name, mode):
    """The public operator = method permutation on the standardized input, values gathered from x."""
    x = distinct((2, 3, 6), seed=6) * 3.0 - 2.0
    xt = ref_standardize(x.movedim(1, -1))
    p = REFERENCES[name](xt, 0.25, mode, True)
    out = softtorch.sort(x, dim=1, descending=True, softness=0.25, mode=mode, method=name)
    torch.testing.assert_close(out.indices, p.movedim(-2, 1), atol=1e-9, rtol=0)
    torch.testing.assert_close(out.values, (p @ x.movedim(1, -1).unsqueeze(-1)).squeeze(-1).movedim(-1, 1))
    raw = softtorch.argsort(x, dim=1, softness=0.25, mode=mode, method=name, standardize=False)
    torch.testing.assert_close(
        raw, REFERENCES[name](x.movedim(1, -1), 0.25, mode, False).movedim(-2, 1), atol=1e-9, rtol=0
    )


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_tensor_softness_per_row(name, mode):
    """A softness of shape (..., 1) gives each row its own temperature."""
    module = METHODS[name]
    xt = scores((3, 7), seed=7)
    s = torch.tensor([[0.05], [0.4], [3.0]], dtype=F64)
    got = module.permutation(xt, s, mode)
    for r in range(3):
        torch.testing.assert_close(got[r], module.permutation(xt[r], float(s[r]), mode))
    x = distinct((3, 7), seed=8)
    vals = module.sort_values(xt, s, mode, values=x)
    for r in range(3):
        torch.testing.assert_close(vals[r], module.sort_values(xt[r], float(s[r]), mode, values=x[r]))


# -- the row-chunked, checkpointed path -----------------------------------------------------------


def _values_and_grads(name, mode, descending, return_indices=False):
    x = (distinct((3, 2, 9), seed=9) * 1.7).requires_grad_()
    s = torch.tensor([[0.3], [0.8]], dtype=F64, requires_grad=True)
    out = softtorch.sort(
        x, softness=s, mode=mode, method=name, descending=descending, return_indices=return_indices
    ).values
    w = torch.linspace(-1.0, 2.0, out.numel(), dtype=F64).reshape(out.shape)
    gx, gs = torch.autograd.grad((out * w).sum(), (x, s))
    return out.detach(), gx, gs


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_chunked_equals_dense(name, mode, descending, monkeypatch):
    dense = _values_and_grads(name, mode, descending)
    calls = []

    def counting(real):
        def count(*args, **kwargs):
            found = real(*args, **kwargs)
            calls.append(len(found))
            return found

        return count

    force_chunks(monkeypatch)
    # the generic blocks (double backward) and the eager fast path's contiguous slabs
    monkeypatch.setattr(fused, "_blocks", counting(fused._blocks))
    monkeypatch.setattr(fused, "_slabs", counting(fused._slabs))
    chunked = _values_and_grads(name, mode, descending)
    assert max(calls) > 1, "BLOCK_ELEMENTS=64 must force several row blocks"
    for a, b in zip(dense, chunked):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-12)
    # and the values-only path equals the path that builds the permutation
    with_p = _values_and_grads(name, mode, descending, return_indices=True)
    for a, b in zip(with_p, chunked):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_chunked_gradcheck(name, mode, small_chunks):
    x = distinct((2, 9), seed=10).requires_grad_()
    s = torch.tensor([[0.4], [0.9]], dtype=F64, requires_grad=True)
    torch.autograd.gradcheck(
        lambda x, s: softtorch.sort(x, softness=s, mode=mode, method=name, return_indices=False).values,
        (x, s),
        fast_mode=True,
    )


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_chunked_path_saves_no_square_tensor(name, mode, monkeypatch):
    """Values only: what autograd keeps for backward is O(n) per row, never an n x n tensor,
    whatever the block size (the backward recomputes the rows block by block)."""
    batch, n = 2, 64

    def largest_saved(chunk_elements):
        if chunk_elements is None:
            monkeypatch.undo()  # the library's own block size: this small input is one block
        else:
            force_chunks(monkeypatch, chunk_elements)
        sizes = []

        def pack(t):
            sizes.append(t.numel())
            return t

        x = torch.randn(batch, n, dtype=torch.float32, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = softtorch.sort(x, softness=0.2, mode=mode, method=name, return_indices=False).values
        out.sum().backward()
        assert torch.isfinite(x.grad).all()
        return max(sizes)

    assert largest_saved(None) <= batch * n
    assert largest_saved(batch * n * 4) <= batch * n


@pytest.mark.full
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_chunked_large_batch_matches_dense(name, mode, monkeypatch):
    x = torch.randn(5, 3, 40, dtype=F64, requires_grad=True)
    results = []
    for chunked in (False, True):
        if chunked:
            force_chunks(monkeypatch, 200)
        out = softtorch.sort(x, dim=-1, softness=0.1, mode=mode, method=name, return_indices=False).values
        (g,) = torch.autograd.grad((out * out).sum(), x)
        results.append((out.detach(), g))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
