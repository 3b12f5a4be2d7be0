r"""Fused soft permutations: scores, projection and their backward in cache-sized row blocks.

SoftSort and NeuralSort build row :math:`i` of the soft permutation as the simplex projection
:math:`P_{i\cdot} = \Pi_{mode}(S_{i\cdot})` of scores that are cheap functions of ``n``-vectors
of the scaled input :math:`y = \tilde x / \text{softness}`:

.. math::
    S^{softsort}_{ij} = -|a_i - y_j|, \qquad S^{neuralsort}_{ij} = c_i\, y_j - B_j,

with :math:`a` the sorted :math:`y` (the anchors), :math:`c_i` the slot coefficients and
:math:`B_j = \sum_k \varphi(y_j - y_k)` the soft absolute differences (:class:`_PairwiseSums`).
:class:`_SoftRows` computes, from these vectors, any of: the rows :math:`P` themselves, the
expectations :math:`P v` of a value vector, and the column statistics :math:`W^\top P` (the
weighted column sums soft ranks need), one block of rows at a time. It never keeps an
``n x n`` intermediate: the backward pass recomputes the signs of the score differences (and,
when :math:`P` was not returned, :math:`P` itself) block by block and applies the closed-form
vector-Jacobian products

.. math::
    \bar S = w \odot \Bigl(\bar P - \frac{\langle w, \bar P\rangle}{\textstyle\sum w}\Bigr), \qquad
    w = \begin{cases} P & \text{smooth} \\ m\,[S - \tau]_+^{m - 1} & \text{c0, c1, c2} \end{cases}

(:func:`~softtorch._core.projections.simplex_vjp`), then
:math:`\bar y_j = \sum_i \bar S_{ij} \operatorname{sign}(a_i - y_j)`,
:math:`\bar a_i = -\sum_j \bar S_{ij} \operatorname{sign}(a_i - y_j)` (softsort) or
:math:`\bar y_j = \sum_i c_i \bar S_{ij}`, :math:`\bar B_j = -\sum_i \bar S_{ij}` (neuralsort).
The softness and the sort of the anchors stay outside, in plain autograd on ``n``-vectors.

Two implementations share these formulas. In eager code (no transform, no compile, autograd off
inside the Function, i.e. every forward and every first-order backward) the *fast path* works in
blocks that are contiguous in the returned ``P``: whole batch entries when one fits a block, else
a run of rows of one entry. Scores are written straight into ``P``'s memory (or a workspace
reused by every block when ``P`` is not returned) and projected in place
(``exp_``/``div_``, an in-place ``_softmax``), the backward uses the fused
``_softmax_backward_data`` into a workspace, and column sums accumulate by ``baddbmm_``. Smooth
scores on the CPU are floored some 60 below the row maximum (:func:`_floor`): subnormal
probabilities made every later pass over a block several times slower. The generic path (the
block loops of :class:`_SoftRows` and :class:`_PairwiseSums` written with out-of-place,
differentiable operations) serves double backward, ``torch.func`` transforms and
``torch.compile``.

Measured while building it (randn(64, 1000) float32, smooth, forward + backward with random
cotangents on every output, one CPU thread, a busy machine): softsort ``sort`` 447 -> 275 ms,
``argsort`` 481 -> 225 ms, ``rank`` 396 -> 165 ms, ``topk(k=100)`` 50 -> 21 ms; neuralsort
``sort`` 970 -> 345 ms, ``rank`` 1010 -> 275 ms, ``topk`` 253 -> 135 ms. What each step gave, and
what did not help:

* blocks contiguous in ``P`` and computed in place (no ``copy_`` of a block into a strided ``P``,
  no fresh temporaries, whose page faults cost as much as the arithmetic): the largest gain;
* blocks of 2^17 elements per thread (one core's L2 holds a block and two workspaces): 2^15 and
  2^16 pay the per-block dispatch (~50 us a block, forward + backward), 2^19 and up miss the L2;
  twice that with several threads, as fast on an idle machine and half the fork-joins, which is
  what costs when another process holds a core (2 threads, one busy core: sort 2.6 s at 2^18 per
  thread, 1.5 s at 2^20, 0.8 s at 2^22, the reference 1.6 s; not solved);
* the subnormal floor: NeuralSort's rows held ~2 % subnormals, which doubled the cost of the
  backward's ``_softmax_backward_data`` and ``bmm``;
* a one-column product ``P @ v`` when the values are finite (a host read, CPU only): the
  three-column form that handles infinities costs three times as much;
* ``baddbmm_`` for the column sums, ``-|d|`` as ``abs_`` + ``neg_`` (a ``copysign(d, -1)`` pass
  costs more than both here, 18 against 14 us a block) and the row sums' reciprocal times the
  row instead of a division (8 against 17 us a block): small gains;
* ``topk`` takes its anchors from ``torch.topk``, not a full sort: about 2 ms of its 21;
* tried and dropped: SoftSort's signs from the sorted order (a block's rows hold consecutive
  sorted values, so every column but the block's own anchor columns has one sign over the block:
  column sums times that sign, row sums as one matvec with it, and a gather of the block's own
  columns for the exact corner), which drops the differences, their sign and the product; it
  measured 4 to 11 % slower (the matvec costs about two row sums, plus the gather);

* ``P``'s buffer from :func:`~softtorch._core.memory.empty_paged`, which asks Linux for 2 MiB
  pages: a fresh 256 MB ``P`` cost about 50 ms of page faults (softsort ``sort`` 288 -> 251 ms,
  one thread). Top-k's 26 MB ``P`` gains nothing: the C library hands buffers under 32 MB back
  from its heap, already paged in;
* rows that are not kept (values, ranks, quantiles) in a sparse mode: the forward keeps each
  row's maximum, threshold and Newton correction (``projections.project_sparse_``) and the
  backward rebuilds the row from them (``reproject_``) instead of searching the threshold again,
  which sorts every row: SoftSort's values-only ``sort`` of ``randn(64, 100)`` in c0 35 -> 16 ms,
  NeuralSort's ``rank`` of ``randn(64, 1000)`` in c0 1.73 -> 0.97 s (one thread);
* tried and dropped: top-k's signs from its anchors' columns (every other column lies beyond the
  last anchor, so its sign is known: plain sums, corrected at the ``k`` anchor columns by a
  gather); the gather and the small corrections cost what the sign pass saved (13.5 against
  13.7 ms, two threads).

What remains is mostly memory traffic: writing ``P``, then reading ``P`` and its cotangent back in
the backward (top-k at one thread: the forward's blocks take 4.4 ms in cache, 7.3 ms written
into ``P``).
"""

from __future__ import annotations

import functools
import math

import torch

from .checks import SPARSE_EXPONENT
from .forward_mode import apply, plain_eager
from .kernels import WINDOW
from .memory import empty_paged
from .projections import project_simplex, project_sparse_, reproject_, simplex_vjp

__all__ = ["BLOCK_ELEMENTS", "pairwise_sums", "soft_rows"]

#: Elements of one block of scores ``(..., rows, n)`` per thread: 512 KiB in float32, so that a
#: block and the workspaces of its passes (scores, projection; in the backward the cotangent, the
#: signs and the sums) stay in a core's L2 instead of streaming ``n x n`` temporaries through memory.
BLOCK_ELEMENTS = 1 << 17

SOFTSORT = "softsort"
NEURALSORT = "neuralsort"


def _blocks(n_rows: int, like: torch.Tensor):
    """``(start, stop)`` row ranges of about :data:`BLOCK_ELEMENTS` elements each."""
    per_row = max(1, like.numel())
    step = max(1, BLOCK_ELEMENTS // per_row)
    return [(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


# ----------------------------------------------------------------------------------------------
# B_j = sum_k phi(y_j - y_k): NeuralSort's soft absolute differences in units of the softness
# ----------------------------------------------------------------------------------------------


def _phi(d: torch.Tensor, mode: str) -> torch.Tensor:
    r""":math:`\varphi(d) = d\,(2\sigma_{mode}(d) - 1)`, the soft :math:`|d|` (``d`` scaled)."""
    if mode == "smooth":
        h = d.mul_(0.5)
        return torch.tanh(h).mul_(h).mul_(2.0)  # d tanh(d / 2)
    u = (d / WINDOW).clamp(-1.0, 1.0)  # (clamp_ has no vmap batching rule)
    if mode == "c0":
        return d.mul_(u)
    u2 = u * u
    if mode == "c1":
        odd = u.mul_(u2.mul_(-0.5).add_(1.5))  # 2 sigma - 1 = 1.5 u - 0.5 u^3
    else:
        odd = u.mul_(u2.mul(3.0 / 8.0).sub_(5.0 / 4.0).mul_(u2).add_(15.0 / 8.0))
    return d.mul_(odd)


def _phi_prime(d: torch.Tensor, mode: str) -> torch.Tensor:
    r""":math:`\varphi'(d)`, written with differentiable out-of-place operations (double backward)."""
    if mode == "smooth":
        h = 0.5 * d
        t = torch.tanh(h)
        return t + h * (1.0 - t * t)
    if mode == "c0":
        return torch.where(d.abs() < WINDOW, (2.0 / WINDOW) * d, torch.sign(d))
    u = (d / WINDOW).clamp(-1.0, 1.0)
    u2 = u * u
    one = 1.0 - u2
    if mode == "c1":
        return u * (1.5 - 0.5 * u2) + (1.5 / WINDOW) * d * one
    return u * (15.0 / 8.0 + u2 * (-5.0 / 4.0 + u2 * (3.0 / 8.0))) + (15.0 / 8.0 / WINDOW) * d * one * one


def _part(t: torch.Tensor, a: int, b: int, dim: int = -1) -> torch.Tensor:
    """``t[..., a:b]`` along ``dim``; ``t`` itself for the whole range (a full slice is an
    ``aten::alias``, which has no batching rule under nested vmap)."""
    return t if a == 0 and b == t.shape[dim] else t.narrow(dim, a, b - a)


class _Pieces:
    """Block results ``t[..., a:b]`` (along ``dim``) gathered into one tensor.

    Without autograd they are written into one tensor allocated from the first piece (which
    carries every vmap batch dim): small results kept in a list between the blocks' large
    temporaries would fragment the heap and raise the peak memory by up to an ``n x n`` block.
    With autograd (double backward) they are concatenated.
    """

    def __init__(self, size: int, dim: int = -1):
        self.size, self.dim, self.out, self.parts = size, dim, None, []

    def put(self, a: int, b: int, t: torch.Tensor) -> None:
        if torch.is_grad_enabled():
            self.parts.append(t)
            return
        if self.out is None:
            shape = list(t.shape)
            shape[self.dim] = self.size
            self.out = t.new_empty(shape)
        self.out.narrow(self.dim, a, b - a).copy_(t)

    def result(self) -> torch.Tensor | None:
        if self.parts:
            return torch.cat(self.parts, dim=self.dim)
        return self.out


def _diff(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``rows[..., :, None] - cols[..., None, :]``."""
    return rows.unsqueeze(-1) - cols.unsqueeze(-2)


def _no_autocast(method):
    """Run a Function's ``forward``/``backward`` with autocast off, on the dtype of its first tensor:
    the kernels mix their own float32/float64 computations with matmuls that autocast would run
    in half precision (and hand to the fused softmax backward in a dtype it refuses)."""

    @functools.wraps(method)
    def run(*args):
        tensor = next(a for a in args if isinstance(a, torch.Tensor))
        with torch.autocast(tensor.device.type, enabled=False):
            return method(*args)

    return run


class _PairwiseSums(torch.autograd.Function):
    r""":math:`B_j = \sum_k \varphi(y_j - y_k)` in row blocks, with the closed-form VJP
    :math:`\bar y_j = \sum_k \varphi'(y_j - y_k)(\bar B_j + \bar B_k)` (:math:`\varphi'` is odd).

    Both passes use the symmetry of the pairs: block ``a:b`` of rows meets only the columns
    ``k >= a``; its row sums go to the rows and, for ``k >= b``, its column sums to the columns
    (``+`` for the even :math:`\varphi`, ``-`` for the odd :math:`\varphi'`), which halves the
    work. The double-backward path (autograd enabled) takes the plain full blocks instead.
    """

    generate_vmap_rule = True

    @staticmethod
    @_no_autocast
    def forward(y: torch.Tensor, mode: str) -> torch.Tensor:
        if _eager(y):
            return _fast_pairwise(y, mode, None)
        sums = torch.zeros_like(y)
        for a, b in _blocks(y.shape[-1], y):
            terms = _phi(_diff(_part(y, a, b), _part(y, a, y.shape[-1])), mode)  # (..., r, n - a)
            _add_triangle(sums, terms, a, b, 1.0)
        return sums

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mode = inputs[1]
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        with torch.autocast(y.device.type, enabled=False):
            return _PairwiseSums._backward(ctx, y, grad.to(y.dtype))

    @staticmethod
    def _backward(ctx, y, grad):
        n = y.shape[-1]
        if _eager(y, grad):
            return _fast_pairwise(y, ctx.mode, grad), None
        if not torch.is_grad_enabled():
            # Out of place where a vmapped cotangent meets an unbatched y (batched gradients).
            out = torch.zeros_like(y) + torch.zeros_like(grad)
            for a, b in _blocks(n, y):
                slope = _phi_prime(_diff(_part(y, a, b), _part(y, a, n)), ctx.mode)  # (..., r, n - a)
                pair = _part(grad, a, b).unsqueeze(-1) + _part(grad, a, n).unsqueeze(-2)
                _add_triangle(out, slope * pair, a, b, -1.0)
            return out, None
        pieces = _Pieces(n)
        for a, b in _blocks(n, y):
            slope = _phi_prime(_diff(_part(y, a, b), y), ctx.mode)  # (..., r, n)
            pieces.put(a, b, _part(grad, a, b) * slope.sum(-1) + torch.matmul(slope, grad.unsqueeze(-1)).squeeze(-1))
        return pieces.result(), None

    @staticmethod
    @_no_autocast
    def tangent(ctx, y_tangent, _):
        r""":math:`\dot B_j = \sum_k \varphi'(y_j - y_k)(\dot y_j - \dot y_k)`, in row blocks."""
        (y,) = ctx.saved_tensors
        y_tangent = y_tangent.to(y.dtype)
        parts = []
        for a, b in _blocks(y.shape[-1], y):
            slope = _phi_prime(_diff(_part(y, a, b), y), ctx.mode)  # (..., r, n)
            spread = torch.matmul(slope, y_tangent.unsqueeze(-1)).squeeze(-1)
            parts.append(_part(y_tangent, a, b) * slope.sum(-1) - spread)
        return torch.cat(parts, -1)


def _add_triangle(out, terms, a, b, sign):
    """Add the row sums of ``terms`` (rows ``a:b``, columns ``a:``) to ``out[a:b]`` and ``sign``
    times its column sums over the columns ``b:`` to ``out[b:]`` (in place, no autograd)."""
    n = out.shape[-1]
    out.narrow(-1, a, b - a).add_(terms.sum(-1))
    if b < n:
        out.narrow(-1, b, n - b).add_(terms.narrow(-1, b - a, n - b).sum(-2), alpha=sign)


def _phi_into(d, mode, work):
    r""":math:`\varphi(d)` of a workspace block ``d`` (overwritten), in ``work``'s memory or ``d``'s."""
    if mode != "smooth":
        return _phi(d, mode)
    h = d.mul_(0.5)
    return torch.tanh(h, out=work).mul_(h).mul_(2.0)  # d tanh(d / 2)


def _phi_prime_into(d, mode, work):
    r""":math:`\varphi'(d)` of a workspace block ``d`` (overwritten), in ``work``'s memory or a new tensor."""
    if mode != "smooth":
        return _phi_prime(d, mode)
    h = d.mul_(0.5)
    t = torch.tanh(h, out=work)
    # t + h (1 - t^2), as h - (h t - 1) t ... written t - h (t^2 - 1) with one temporary: d
    return torch.addcmul(t, h, torch.mul(t, t).sub_(1.0), value=-1.0, out=work)


def _fast_pairwise(y, mode, grad):
    r"""Eager :math:`B_j = \sum_k \varphi(y_j - y_k)` (``grad`` None) or its VJP
    :math:`\bar y_j = \sum_k \varphi'(y_j - y_k)(\bar B_j + \bar B_k)`, in contiguous workspace
    blocks: whole batch entries when one fits a block, else rows ``a:b`` of one entry against the
    columns ``a:`` only (the pairs' symmetry, as in :class:`_PairwiseSums`)."""
    n = y.shape[-1]
    batch = y.shape[:-1] if grad is None else torch.broadcast_shapes(y.shape[:-1], grad.shape[:-1])
    size = math.prod(batch)
    flat_y = y.expand(batch + (n,)).reshape(size, n)
    flat_g = None if grad is None else grad.expand(batch + (n,)).reshape(size, n)
    out = flat_y.new_zeros(size, n)
    blocks = _slabs(size, n, n)
    space_d, space_w = _Space(flat_y, blocks, n), _Space(flat_y, blocks, n)
    y_rows, y_cols = flat_y.unsqueeze(-1), flat_y.unsqueeze(-2)
    for b0, b1, a0, a1 in blocks:
        shape = (b1 - b0, a1 - a0, n - a0)
        d = torch.sub(y_rows[b0:b1, a0:a1], y_cols[b0:b1, :, a0:], out=space_d.get(shape))
        work = space_w.get(shape)
        rest = out[b0:b1, a1:]
        if grad is None:
            terms = _phi_into(d, mode, work)
            out[b0:b1, a0:a1].add_(terms.sum(-1))
            if a1 < n:
                rest.add_(terms[..., a1 - a0 :].sum(-2))
            continue
        slope = _phi_prime_into(d, mode, work)  # odd: the pair (k, j) has -slope
        g_rows, g_cols = flat_g[b0:b1, a0:a1], flat_g[b0:b1, a0:]
        own = torch.bmm(slope, g_cols.unsqueeze(-1)).squeeze(-1)
        out[b0:b1, a0:a1].add_(own).addcmul_(g_rows, slope.sum(-1))
        if a1 < n:
            tail = slope[..., a1 - a0 :]
            rest.sub_(torch.bmm(g_rows.unsqueeze(-2), tail).squeeze(-2))
            rest.addcmul_(flat_g[b0:b1, a1:], tail.sum(-2), value=-1.0)
    out = out.view(batch + (n,))
    return out if grad is None else out.sum_to_size(y.shape)


def pairwise_sums(y: torch.Tensor, mode: str) -> torch.Tensor:
    r""":math:`B_j = \sum_k \varphi(y_j - y_k)` for ``y`` ``(..., n)``, with
    :math:`\varphi(d) = d (2\sigma_{mode}(d) - 1)` the soft absolute value of the mode."""
    return apply(_PairwiseSums, y, mode)


# ----------------------------------------------------------------------------------------------
# The rows P, their expectations P v and their column statistics W^T P
# ----------------------------------------------------------------------------------------------


def _scores(kind, y, row_par, neg_col_par, a, b):
    """Scores ``(..., b - a, n)`` of the rows ``a:b``; ``neg_col_par`` is ``-B`` as ``(..., 1, n)``."""
    if kind == SOFTSORT:
        return _diff(_part(row_par, a, b), y).abs_().neg_()
    return torch.addcmul(neg_col_par, _part(row_par, a, b).unsqueeze(-1), y.unsqueeze(-2))


def _project(scores, mode, kind=None):
    """The simplex projection of a block of fresh scores (softmax straight away: no dtype round trips).

    SoftSort's smooth rows are ``exp(S) / sum exp(S)`` in place: every row holds its anchor
    (``S = 0``, its maximum), so no shift is needed and ``exp`` cannot overflow.
    """
    if mode != "smooth":
        return project_simplex(scores, mode)
    if kind == SOFTSORT and not torch.is_grad_enabled():
        e = scores.exp_()
        return e.div_(e.sum(dim=-1, keepdim=True))
    return torch.softmax(scores, dim=-1)


def _project_vjp(p, grad, mode):
    if mode == "smooth" and not torch.is_grad_enabled():
        return torch._softmax_backward_data(grad, p, -1, p.dtype)  # one fused pass
    return simplex_vjp(p, grad, mode)


def _value_columns(values):
    """``(..., n, 3)``: the finite values and the indicators of ``+inf`` and ``-inf`` (see ``expect``)."""
    infinite = torch.isinf(values)
    finite = torch.where(infinite, torch.zeros_like(values), values)
    return torch.stack((finite, (values == math.inf).to(values.dtype), (values == -math.inf).to(values.dtype)), -1)


def _expectations(sums):
    """Expectations from the ``(..., r, 3)`` products with :func:`_value_columns` (``0 * inf = 0``)."""
    value, up, down = sums.unbind(-1)
    value = torch.where(up > 0, math.inf, value)
    value = torch.where(down > 0, -math.inf, value)
    return torch.where((up > 0) & (down > 0), math.nan, value)


class _SoftRows(torch.autograd.Function):
    """Rows ``P`` (``keep``), expectations ``P v`` (``values`` given) and column statistics
    ``W^T P`` (``weights`` ``(r, k)`` given), in that order, for the score ``kind``."""

    generate_vmap_rule = True

    @staticmethod
    @_no_autocast
    def forward(y, row_par, col_par, values, weights, kind, mode, n_rows, keep):
        if _eager(y, row_par, col_par, values, weights):
            return _fast_forward(y, row_par, col_par, values, weights, kind, mode, n_rows, keep)
        neg_col = None if col_par is None else col_par.neg().unsqueeze(-2)
        columns = None if values is None else _value_columns(values.to(y.dtype))
        # Outputs are allocated once, from the first block (which carries every vmap batch dim of
        # the inputs), and filled in place: no small tensors kept between the blocks' temporaries,
        # which would fragment the heap and raise the peak memory.
        rows, expected, stats = _Pieces(n_rows, -2), _Pieces(n_rows, -2), None
        for a, b in _blocks(n_rows, y):
            p = _project(_scores(kind, y, row_par, neg_col, a, b), mode, kind)
            if keep:
                rows.put(a, b, p)
            if values is not None:
                expected.put(a, b, torch.matmul(p, columns))
            if weights is not None:
                part = torch.matmul(_part(weights, a, b, 0).transpose(0, 1).to(p.dtype), p)
                stats = part if stats is None else stats.add_(part)
        outputs = []
        if keep:
            outputs.append(rows.result())
        if values is not None:
            outputs.append(_expectations(expected.result()))
        if weights is not None:
            outputs.append(stats)
        return tuple(outputs)

    @staticmethod
    def setup_context(ctx, inputs, output):
        y, row_par, col_par, values, weights, kind, mode, n_rows, keep = inputs
        ctx.set_materialize_grads(False)
        ctx.kind, ctx.mode, ctx.n_rows, ctx.keep = kind, mode, n_rows, keep
        ctx.has_values, ctx.has_weights = values is not None, weights is not None
        # The eager fast path adds the sparse rows' constants as a last output, without gradient.
        extra = len(output) > int(keep) + ctx.has_values + ctx.has_weights
        ctx.constants = output[-1] if extra else None
        if extra:
            ctx.mark_non_differentiable(output[-1])
        rows = output[0] if keep else None
        expected = output[int(keep)] if values is not None else None
        ctx.save_for_backward(y, row_par, col_par, values, weights, rows, expected)
        ctx.save_for_forward(y, row_par, col_par, values, weights, rows, expected)

    @staticmethod
    def backward(ctx, *grads):
        y = ctx.saved_tensors[0]
        with torch.autocast(y.device.type, enabled=False):
            return _SoftRows._backward(ctx, *(None if g is None else g.to(y.dtype) for g in grads))

    @staticmethod
    def _backward(ctx, *grads):
        y, row_par, col_par, values, weights, rows, expected = ctx.saved_tensors
        grads = list(grads)
        grad_rows = grads.pop(0) if ctx.keep else None
        grad_expected = grads.pop(0) if ctx.has_values else None
        grad_columns = grads.pop(0) if ctx.has_weights else None
        if grad_rows is None and grad_expected is None and grad_columns is None:
            return (None,) * 9
        if _eager(*ctx.saved_tensors, grad_rows, grad_expected, grad_columns):
            return _fast_backward(ctx, grad_rows, grad_expected, grad_columns)
        kind = ctx.kind
        if grad_expected is not None:
            # As in expect: an infinite expectation passes no gradient; infinite values get none.
            grad_expected = torch.where(torch.isinf(expected), 0.0, grad_expected)
            finite_values = torch.where(torch.isinf(values), 0.0, values).to(y.dtype).unsqueeze(-2)
        neg_col = None if col_par is None else col_par.neg().unsqueeze(-2)
        if kind == NEURALSORT:  # rows of [c; 1]: one product gives the sums over i of c_i dS_ij and of dS_ij
            coef_one = torch.stack((row_par, torch.ones_like(row_par))).to(y.dtype)
        grad_y, grad_row_par, grad_col_par, grad_values = None, _Pieces(ctx.n_rows), None, None
        for a, b in _blocks(ctx.n_rows, y):
            diff = None
            if rows is not None:
                p = _part(rows, a, b, -2)
            elif kind == SOFTSORT:
                diff = _diff(_part(row_par, a, b), y)
                p = _project(diff.abs().neg_(), ctx.mode, kind)
            else:
                p = _project(_scores(kind, y, row_par, neg_col, a, b), ctx.mode)
            g = None if grad_rows is None else _part(grad_rows, a, b, -2)
            if grad_expected is not None:
                ge = _part(grad_expected, a, b).unsqueeze(-1)
                g = ge * finite_values if g is None else torch.addcmul(g, ge, finite_values)
                part = torch.matmul(ge.transpose(-1, -2), p)
                grad_values = part if grad_values is None else grad_values + part
            if grad_columns is not None:
                spread = torch.matmul(_part(weights, a, b, 0).to(grad_columns.dtype), grad_columns)
                g = spread if g is None else g + spread
            grad_scores = _project_vjp(p, g, ctx.mode)
            if kind == SOFTSORT:
                sign = torch.sign(_diff(_part(row_par, a, b), y) if diff is None else diff)
                weighted = grad_scores * sign
                dy = weighted.sum(-2)
                grad_row_par.put(a, b, -weighted.sum(-1))
            else:
                dy, dcol = torch.matmul(_part(coef_one, a, b), grad_scores).unbind(-2)
                grad_col_par = -dcol if grad_col_par is None else grad_col_par - dcol
            grad_y = dy if grad_y is None else grad_y + dy
        grad_row_par = grad_row_par.result()
        if grad_values is not None:
            grad_values = torch.where(torch.isinf(values), 0.0, grad_values.squeeze(-2).to(values.dtype))
        return grad_y, grad_row_par, grad_col_par, grad_values, None, None, None, None, None

    @staticmethod
    @_no_autocast
    def tangent(ctx, y_tangent, row_tangent, col_tangent, values_tangent, *_):
        r"""Forward mode: the score tangents :math:`\dot S` of each block of rows
        (:math:`-\operatorname{sign}(a_i - y_j)(\dot a_i - \dot y_j)` for softsort,
        :math:`c_i \dot y_j - \dot B_j` for neuralsort) through the projection's symmetric
        Jacobian give :math:`\dot P`, then :math:`\dot P v + P \dot v` and :math:`W^\top \dot P`."""
        y, row_par, col_par, values, weights, rows, expected = ctx.saved_tensors
        kind, mode = ctx.kind, ctx.mode

        def cast(t):
            return None if t is None else t.to(y.dtype)

        y_tangent, row_tangent, col_tangent = cast(y_tangent), cast(row_tangent), cast(col_tangent)
        neg_col = None if col_par is None else col_par.neg().unsqueeze(-2)
        if values is not None:
            finite_values = torch.where(torch.isinf(values), 0.0, values).to(y.dtype).unsqueeze(-1)
            if values_tangent is not None:
                values_tangent = torch.where(torch.isinf(values), 0.0, cast(values_tangent)).unsqueeze(-1)
        d_rows, d_expected, d_stats = [], [], None
        for a, b in _blocks(ctx.n_rows, y):
            if rows is not None:
                p = _part(rows, a, b, -2)
            else:
                p = _project(_scores(kind, y, row_par, neg_col, a, b), mode)
            d_scores = None
            if kind == SOFTSORT:
                moves = [
                    t
                    for t in (
                        None if row_tangent is None else _part(row_tangent, a, b).unsqueeze(-1),
                        None if y_tangent is None else -y_tangent.unsqueeze(-2),
                    )
                    if t is not None
                ]
                if moves:
                    sign = torch.sign(_diff(_part(row_par, a, b), y))
                    d_scores = -sign * (moves[0] if len(moves) == 1 else moves[0] + moves[1])
            else:
                if y_tangent is not None:
                    d_scores = _part(row_par, a, b).unsqueeze(-1).to(y.dtype) * y_tangent.unsqueeze(-2)
                if col_tangent is not None:
                    shift = col_tangent.unsqueeze(-2)
                    d_scores = -shift if d_scores is None else d_scores - shift
            d_p = torch.zeros_like(p) if d_scores is None else simplex_vjp(p, d_scores, mode)
            if rows is not None:
                d_rows.append(d_p)
            if values is not None:
                d_e = torch.matmul(d_p, finite_values)
                if values_tangent is not None:
                    d_e = d_e + torch.matmul(p, values_tangent)
                d_expected.append(d_e.squeeze(-1))
            if weights is not None:
                part = torch.matmul(_part(weights, a, b, 0).transpose(0, 1).to(d_p.dtype), d_p)
                d_stats = part if d_stats is None else d_stats + part
        tangents = []
        if rows is not None:
            tangents.append(torch.cat(d_rows, -2))
        if values is not None:
            tangents.append(torch.where(torch.isinf(expected), 0.0, torch.cat(d_expected, -1)))
        if weights is not None:
            tangents.append(d_stats)
        return tuple(tangents)


# ----------------------------------------------------------------------------------------------
# The eager fast path: contiguous blocks of P's own memory, preallocated workspaces
# ----------------------------------------------------------------------------------------------


def _eager(*tensors) -> bool:
    """Whether the fast in-place path may run: autograd off (not a double backward), not compiling,
    not under a ``torch.func`` transform or in forward mode, no functorch-wrapped tensor."""
    return not torch.is_grad_enabled() and plain_eager(*tensors)


def _slabs(n_batch: int, n_rows: int, n: int):
    """``(b0, b1, a0, a1)`` blocks of about :data:`BLOCK_ELEMENTS` elements that are contiguous in a
    ``(n_batch, n_rows, n)`` tensor: whole batch entries when one fits, else rows of one entry."""
    # Each thread works on its share of a block in its own core's cache: a block per thread. With
    # several threads every operation on a block is a fork-join of the pool, which waits for the
    # slowest thread: when another process holds a core that wait is a scheduler slice, so the
    # blocks are twice as large there (as fast on an idle machine, half the joins when it is not).
    threads = max(1, torch.get_num_threads())
    elements = BLOCK_ELEMENTS * threads * (2 if threads > 1 else 1)
    per_entry = max(1, n_rows * n)
    if per_entry <= elements:
        step = max(1, elements // per_entry)
        return [(b, min(b + step, n_batch), 0, n_rows) for b in range(0, n_batch, step)]
    step = max(1, elements // max(1, n))
    return [(b, b + 1, a, min(a + step, n_rows)) for b in range(n_batch) for a in range(0, n_rows, step)]


class _Flat:
    """The fast path's operands as contiguous ``(N, .)`` tensors, with the batch shape to restore,
    and the broadcast views the blocks slice (made once: a block's dispatch cost is a good part of
    its time when it holds ~10^5 elements)."""

    def __init__(self, y, row_par, col_par, values, kind):
        lead = [y.shape[:-1]]
        if kind == SOFTSORT:
            lead.append(row_par.shape[:-1])
        if col_par is not None:
            lead.append(col_par.shape[:-1])
        if values is not None:
            lead.append(values.shape[:-1])
        # torch.broadcast_shapes is Python code, ~40 us a call: most calls have one batch shape
        self.batch = lead[0] if all(shape == lead[0] for shape in lead) else torch.broadcast_shapes(*lead)
        self.n = y.shape[-1]
        self.r = row_par.shape[-1]
        self.size = math.prod(self.batch)
        self.kind = kind
        self.y = self.flat(y)
        self.row = self.flat(row_par) if kind == SOFTSORT else row_par
        self.values = self.flat(values)
        self.y_cols = self.y.unsqueeze(-2)  # (N, 1, n)
        self.row_rows = self.row.unsqueeze(-1)  # (N, r, 1) anchors, or (r, 1) slot coefficients
        self.neg_col = None if col_par is None else self.flat(col_par).neg().unsqueeze(-2)  # (N, 1, n)

    @functools.cached_property
    def floor(self):
        """:func:`_floor` of the smooth rows (computed when first needed: it reads the host)."""
        return _floor(self.kind, self.y)

    def flat(self, t, *tail):
        """``t`` ``(..., *tail)`` (default: its last dim) as a ``(N, *tail)`` tensor."""
        if t is None:
            return None
        tail = tail or t.shape[-1:]
        if t.shape[: -len(tail)] != self.batch:
            t = t.expand(self.batch + tail)
        return t.reshape((self.size,) + tail)

    def back(self, t, like):
        """A ``(N, k)`` gradient summed back to the shape of the input ``like``."""
        return t.view(self.batch + t.shape[-1:]).sum_to_size(like.shape)

    def differences(self, out, b0, b1, a0, a1):
        """``a_i - y_j`` of a SoftSort block, written into ``out``."""
        return torch.sub(self.row_rows[b0:b1, a0:a1], self.y_cols[b0:b1], out=out)

    def rows(self, mode, out, b0, b1, a0, a1, constants=None, known=None):
        """The projected rows ``a0:a1`` of the entries ``b0:b1``, in ``out``'s memory. A sparse mode
        writes its rows' constants into ``constants`` (see :func:`project_sparse_`), or rebuilds
        the rows from ``known`` ones without the threshold search."""
        if self.kind == SOFTSORT:
            s = self.differences(out, b0, b1, a0, a1).abs_().neg_()  # -|a_i - y_j|
        else:
            s = torch.addcmul(self.neg_col[b0:b1], self.row_rows[a0:a1], self.y_cols[b0:b1], out=out)
        if mode != "smooth":
            if s.shape[-1] == 0:
                return s
            if known is not None:
                return reproject_(s, SPARSE_EXPONENT[mode], known)
            p, found = project_sparse_(s, SPARSE_EXPONENT[mode])
            if constants is not None:
                constants.copy_(found)
            return p
        if self.kind == SOFTSORT:
            return self.softsort_rows(s)
        if self.floor is not None:
            s.clamp_(min=s.amax(dim=-1, keepdim=True).add_(self.floor))
        return torch._softmax(s, -1, False, out=s)

    def softsort_rows(self, s):
        """SoftSort's smooth rows from their scores ``s``, in place: the scores are at most 0 (0 at
        the anchor's own entry), so no shift is needed."""
        if self.floor is not None:
            s.clamp_(min=self.floor)
        s.exp_()
        return s.mul_(s.sum(dim=-1, keepdim=True).reciprocal_())  # a product: half a division's time


def _floor(kind, y):
    """The lowest score (below the row maximum) the fast smooth rows keep, or None (no floor needed).

    On the CPU, probabilities under the dtype's smallest normal number (``exp`` of scores some 87
    below the maximum in float32) are subnormal, and every later pass over a block holding them
    runs several times slower (NeuralSort's rows hold many). Scores are raised to
    ``log(tiny) + log(n) + 20``: the rows' probabilities then stay normal, even divided by the row
    sum (at most ``n``) and multiplied by a cotangent, and they move by less than ``tiny * e^20``.
    SoftSort's scores ``-|a_i - y_j|`` stay above ``-(max y - min y)``, so it needs the floor
    only for a wide ``y``; GPUs handle subnormals at full speed.
    """
    if y.device.type != "cpu" or y.numel() == 0:
        return None
    floor = math.log(torch.finfo(y.dtype).tiny) + math.log(y.shape[-1]) + 20.0
    if kind == SOFTSORT and not (y.amax() - y.amin() > -floor):
        return None
    return floor


class _Space:
    """A workspace the size of the largest block, handed out as views of each block's shape."""

    def __init__(self, like, blocks, n):
        self.buffer = like.new_empty(max([(b1 - b0) * (a1 - a0) * n for b0, b1, a0, a1 in blocks], default=0))
        self.views = {}

    def get(self, shape):
        view = self.views.get(shape)
        if view is None:
            view = self.views[shape] = self.buffer[: math.prod(shape)].view(shape)
        return view


def _fast_value_columns(values):
    """:func:`_value_columns`, or the values alone as ``(..., n, 1)`` when they are known to be finite:
    a product with one column costs a third of one with three. Knowing it takes a host read, so only
    on the CPU."""
    if values.device.type == "cpu" and not torch.isinf(values).any():
        return values.unsqueeze(-1)
    return _value_columns(values)


def _fast_forward(y, row_par, col_par, values, weights, kind, mode, n_rows, keep):
    f = _Flat(y, row_par, col_par, values, kind)
    size, n, r = f.size, f.n, n_rows
    blocks = _slabs(size, r, n)
    rows = empty_paged(y, (size, r, n)) if keep else None
    space = None if keep else _Space(y, blocks, n)
    # Rows recomputed in the backward (not kept) in a sparse mode: their constants, so that the
    # backward rebuilds them without the sort of the threshold search (half the sorts).
    constants = y.new_empty(size, r, 3) if not keep and mode != "smooth" else None
    if values is not None:
        columns = _fast_value_columns(f.values.to(y.dtype))
        expected = y.new_empty(size, r, columns.shape[-1])
    if weights is not None:
        stats = y.new_zeros(size, weights.shape[1], n)
        weights_t = weights.transpose(0, 1).to(y.dtype).expand(size, -1, -1)  # (N, k, r)
    for b0, b1, a0, a1 in blocks:
        out = rows[b0:b1, a0:a1] if keep else space.get((b1 - b0, a1 - a0, n))
        p = f.rows(mode, out, b0, b1, a0, a1, None if constants is None else constants[b0:b1, a0:a1])
        if values is not None:
            torch.bmm(p, columns[b0:b1], out=expected[b0:b1, a0:a1])
        if weights is not None:
            stats[b0:b1].baddbmm_(weights_t[b0:b1, :, a0:a1], p)
    outputs = []
    if keep:
        outputs.append(rows.view(f.batch + (r, n)))
    if values is not None:
        expected = _expectations(expected) if expected.shape[-1] == 3 else expected.squeeze(-1)
        outputs.append(expected.view(f.batch + (r,)))
    if weights is not None:
        outputs.append(stats.view(f.batch + stats.shape[-2:]))
    if constants is not None:
        outputs.append(constants)  # one more output, for the backward only (see setup_context)
    return tuple(outputs)


def _fast_backward(ctx, grad_rows, grad_expected, grad_columns):
    """The closed-form backward of :func:`_fast_forward`, block by block in workspaces.

    Row sums over a block are reductions; column sums and the sums weighted by the rows'
    coefficients are ``bmm`` products accumulated in place (``baddbmm_``), which also spares an
    allocation per block.
    """
    y, row_par, col_par, values, weights, rows, expected = ctx.saved_tensors
    kind, mode, r = ctx.kind, ctx.mode, ctx.n_rows
    f = _Flat(y, row_par, col_par, values, kind)
    size, n = f.size, f.n
    grad_rows, rows = f.flat(grad_rows, r, n), f.flat(rows, r, n)
    if grad_expected is not None:
        # As in expect: an infinite expectation passes no gradient; infinite values get none.
        infinite = _fast_value_columns(f.values).shape[-1] == 3  # (a host read on the CPU only)
        if infinite:
            grad_expected = torch.where(torch.isinf(expected), 0.0, grad_expected)
            finite = torch.where(torch.isinf(f.values), 0.0, f.values)
        else:
            finite = f.values
        grad_expected = f.flat(grad_expected, r).unsqueeze(-1)
        finite = finite.to(y.dtype).unsqueeze(-2)  # (N, 1, n)
        grad_values = torch.zeros_like(finite)
    if grad_columns is not None:
        grad_columns = f.flat(grad_columns, *grad_columns.shape[-2:])
        weights = weights.to(y.dtype).expand(size, -1, -1)  # (N, r, k)
    if kind == SOFTSORT:
        grad_y = y.new_zeros(size, 1, n)
        grad_row = y.new_empty(size, r)
        ones = y.new_ones(1, 1, r).expand(size, 1, r)
    else:
        sums = y.new_zeros(size, 2, n)  # sum_i c_i dS_ij and sum_i dS_ij
        coef_one = torch.stack((f.row, torch.ones_like(f.row))).to(y.dtype).expand(size, 2, r)
    blocks = _slabs(size, r, n)
    space_g = _Space(y, blocks, n)
    space_p = None if rows is not None else _Space(y, blocks, n)
    space_d = _Space(y, blocks, n) if kind == SOFTSORT else None
    for b0, b1, a0, a1 in blocks:
        shape = (b1 - b0, a1 - a0, n)
        sign = None
        if rows is not None:
            p = rows[b0:b1, a0:a1]
        elif kind == SOFTSORT and mode == "smooth":
            # the differences once: their signs below, the rows from their absolute values
            sign = f.differences(space_d.get(shape), b0, b1, a0, a1)
            p = f.softsort_rows(torch.abs(sign, out=space_p.get(shape)).neg_())
            sign.sign_()
        else:
            known = None if ctx.constants is None else ctx.constants[b0:b1, a0:a1]
            p = f.rows(mode, space_p.get(shape), b0, b1, a0, a1, known=known)
        # The cotangent of the block's rows, from every output
        work = space_g.get(shape)
        g = None
        if grad_columns is not None:
            g = torch.bmm(weights[b0:b1, a0:a1], grad_columns[b0:b1], out=work)
        if grad_rows is not None:
            g = grad_rows[b0:b1, a0:a1] if g is None else g.add_(grad_rows[b0:b1, a0:a1])
        if grad_expected is not None:
            ge = grad_expected[b0:b1, a0:a1]
            g = torch.mul(ge, finite[b0:b1], out=work) if g is None else torch.addcmul(g, ge, finite[b0:b1], out=work)
            grad_values[b0:b1].baddbmm_(ge.transpose(-1, -2), p)
        if mode == "smooth":
            gs = torch._softmax_backward_data(g, p, -1, p.dtype, grad_input=work)
        else:
            gs = simplex_vjp(p, g, mode)
        if kind == SOFTSORT:
            if sign is None:
                sign = f.differences(space_d.get(shape), b0, b1, a0, a1).sign_()
            gs.mul_(sign)
            grad_y[b0:b1].baddbmm_(ones[b0:b1, :, a0:a1], gs)
            torch.sum(gs, -1, out=grad_row[b0:b1, a0:a1])
        else:
            sums[b0:b1].baddbmm_(coef_one[b0:b1, :, a0:a1], gs)
    if kind == SOFTSORT:
        grad_y = f.back(grad_y.squeeze(-2), y)
        grad_row_par, grad_col_par = f.back(grad_row.neg_(), row_par), None
    else:
        grad_y, grad_col_par, grad_row_par = f.back(sums[:, 0], y), f.back(sums[:, 1].neg(), col_par), None
    grad_values_out = None
    if grad_expected is not None:
        grad_values = grad_values.squeeze(-2)
        if infinite:
            grad_values = torch.where(torch.isinf(f.values), 0.0, grad_values)
        grad_values_out = f.back(grad_values, values).to(values.dtype)
    return grad_y, grad_row_par, grad_col_par, grad_values_out, None, None, None, None, None


def soft_rows(kind, y, row_par, col_par, mode, *, keep=True, values=None, weights=None):
    r"""Rows of a fused soft permutation and what is read from them, never holding ``n x n`` temporaries.

    Args:
        kind: ``"softsort"`` (``row_par``: anchors ``(..., r)``, ``col_par`` None) or
            ``"neuralsort"`` (``row_par``: slot coefficients ``(r,)``, constant; ``col_par``: the
            pairwise sums ``B`` ``(..., n)``).
        y: Scaled scores ``(..., n)`` (standardized input divided by the softness).
        mode: ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``.
        keep: Return the rows ``P`` ``(..., r, n)``.
        values: Optional ``(..., n)``: also return the expectations ``P v`` ``(..., r)`` (with
            ``0 * inf = 0``, as :func:`~softtorch._core.expectation.expect`).
        weights: Optional constant ``(r, k)``: also return ``W^T P`` ``(..., k, n)``.

    Returns:
        A tuple of the requested outputs, in the order rows, expectations, column statistics.
    """
    n_rows = row_par.shape[-1]
    outputs = apply(_SoftRows, y, row_par, col_par, values, weights, kind, mode, n_rows, keep)
    return outputs[: int(keep) + (values is not None) + (weights is not None)]  # not the fast path's constants
