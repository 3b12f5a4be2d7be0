r"""Batched exact isotonic regression for projections onto the permutahedron (Blondel et al., 2020).

The solver behind ``method="fast_soft_sort"`` and :mod:`softtorch.compat.torchsort`:
:func:`project_sorted` returns :math:`\phi(s - v)` for the decreasing isotonic solution :math:`v`
of decreasing ``(..., n)`` rows ``s``, ``w``, with its closed-form vector-Jacobian product. The
reduction to isotonic regression, the block equations of every regularizer, the Jacobian, the
algorithm (windows, one block, min-max, batched pool-adjacent-violators rounds) and the designs
measured are in the user guide, :doc:`/user_guide/how_methods_work`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from .forward_mode import in_transform

__all__ = ["project_sorted", "sort_descending"]

# The regularizers, one per soft mode: "smooth" (entropic, in log space), "c0" (Euclidean), "c1",
# "c2" (the plain p-norm problems with phi(u) = u |u| and u^3).


class _Blocks:
    """A partition of every row of a ``(R, n)`` batch into contiguous blocks.

    ``start[r, i]`` is True where a block begins. Block-level quantities are ``(R, n)`` tensors
    indexed by the block number ``b`` in its row; entries ``b >= nb[r]`` are padding (block values
    there are NaN, so no comparison with them ever holds). Block sums are one ``scatter_add``, and
    ``expand`` reads a block quantity back at every element.
    """

    def __init__(self, start: torch.Tensor, dtype: torch.dtype):
        rows, n = start.shape
        self.rows, self.n, self.dtype = rows, n, dtype
        self.bid = start.cumsum(-1) - 1  # block number of every element
        ones = torch.ones((1, 1), dtype=dtype, device=start.device).expand(rows, n)
        self.bcount = ones.new_zeros((rows, n)).scatter_add_(1, self.bid, ones)  # 0 for padding
        self.bvalid = self.bcount.clamp(max=1)  # 1 for blocks, 0 for padding
        self.nan_pad = 0.0 / self.bvalid  # 0 for blocks, NaN for padding

    @classmethod
    def singletons(cls, rows: int, n: int, dtype: torch.dtype, device) -> _Blocks:
        """The finest partition, built without any work on data."""
        blk = cls.__new__(cls)
        blk.rows, blk.n, blk.dtype = rows, n, dtype
        blk.bid = torch.arange(n, device=device).expand(rows, n)
        blk.bcount = blk.bvalid = torch.ones((1, 1), dtype=dtype, device=device).expand(rows, n)
        blk.nan_pad = torch.zeros((1, 1), dtype=dtype, device=device).expand(rows, n)
        return blk

    @functools.cached_property
    def bfirst(self) -> torch.Tensor:
        """First element of every block (``n`` for padding), block-level."""
        return (self.bcount.cumsum(-1) - self.bcount).to(torch.long)

    @functools.cached_property
    def _bfirst_in(self) -> torch.Tensor:
        return self.bfirst.clamp(max=self.n - 1)

    @functools.cached_property
    def first(self) -> torch.Tensor:
        """First element of the own block, per element."""
        return self.bfirst.gather(-1, self.bid)

    @functools.cached_property
    def local(self) -> torch.Tensor:
        """Position inside the own block, per element."""
        return (torch.arange(self.n, device=self.bid.device) - self.first).to(self.dtype)

    @functools.cached_property
    def count(self) -> torch.Tensor:
        """Size of the own block, per element."""
        return self.expand(self.bcount)

    @staticmethod
    def _index(index: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return index if v.dim() == 2 else index.unsqueeze(-1).expand(v.shape)

    def bsum(self, v: torch.Tensor, init: torch.Tensor | None = None) -> torch.Tensor:
        """Block sums of the element quantity ``v`` ``(R, n)`` or ``(R, n, C)``, block-level
        (added to ``init``, zeros by default)."""
        out = v.new_zeros(v.shape) if init is None else init.clone()
        return out.scatter_add_(1, self._index(self.bid, v), v)

    @functools.cached_property
    def one_pad(self) -> torch.Tensor:
        """0 for blocks, 1 for padding."""
        return 1 - self.bvalid

    def expand(self, b: torch.Tensor) -> torch.Tensor:
        """The block quantity ``b`` (``(R, n)`` or ``(R, n, C)``) read back at every element."""
        return b.gather(1, self._index(self.bid, b))

    def at_first(self, v: torch.Tensor) -> torch.Tensor:
        """The element quantity ``v`` at the first element of each block, block-level."""
        return v.gather(1, self._index(self._bfirst_in, v))


class _Window:
    """Candidate merges around the violating block pairs ``(left, left + 1)`` of rows ``rows``.

    Rows ``0..V-1`` grow from the left block of each pair to the right, rows ``V..2V-1`` from the
    right block to the left. Column ``j`` of an anchor ``a`` with direction ``d = +-1`` holds the
    union ``U_j`` of blocks ``a, a + d, ..., a + j d`` and the candidate block ``a + (j + 1) d`` it
    is compared with. The block quantities ``channels`` are read through sliding windows of a
    NaN-padded copy (one gather for all of them): past the row ends every value is NaN, so no
    comparison with a missing candidate holds.
    """

    def __init__(self, blk: _Blocks, rows, left, width: int, gamma, channels):
        count, n = rows.shape[0], blk.n
        # Channel-major copy of the block quantities, NaN-padded by `width` on both row ends.
        padded = torch.nn.functional.pad(torch.stack(channels + [gamma]), (width, width), value=float("nan"))
        flat = padded.view(padded.shape[0], -1)
        t = torch.arange(width, device=rows.device)
        base = (rows * (n + 2 * width) + width + left).unsqueeze(-1)
        right, leftward = base + t, base + 1 - t  # members a + j d, anchors left and left + 1
        picked = flat.index_select(1, torch.cat((right, leftward)).view(-1)).view(-1, 2 * count, width)
        self.members = picked.unbind(0)  # C + 1 of (2V, K)
        self.g = flat[-1].index_select(0, torch.cat((right + 1, leftward - 1)).view(-1)).view(2 * count, width)
        self.count, self.blk, self._rows, self._left = count, blk, rows, left

    @functools.cached_property
    def sign(self) -> torch.Tensor:
        """+1 for the rightward rows, -1 for the leftward ones, ``(2V, 1)``."""
        ones = self.g.new_ones((self.count, 1))
        return torch.cat((ones, -ones))

    @functools.cached_property
    def right(self) -> torch.Tensor:
        return (self.sign + 1) / 2

    @functools.cached_property
    def rows(self) -> torch.Tensor:
        return torch.cat((self._rows, self._rows))

    @functools.cached_property
    def anchor(self) -> torch.Tensor:
        return torch.cat((self._left, self._left + 1))

    def violates(self, union_gamma: torch.Tensor) -> torch.Tensor:
        """The union and its candidate violate the decreasing order (union below a candidate on
        its right, above a candidate on its left)."""
        return (union_gamma - self.g) * self.sign < 0

    def violates_root(self, F: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """Same test from ``F = sum_U phi(s_i - g)`` at the candidate's value ``g``: the union's
        value is below ``g`` iff ``F < W`` (``F`` decreases in ``g``)."""
        return (F - W) * self.sign < 0


def _flag(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``mask`` as 0/1 of ``like``'s dtype: arithmetic masking, much cheaper than ``torch.where``
    on CPU."""
    return mask.to(like.dtype)


# --- the regularizers -------------------------------------------------------------------------
# ``values(s, w, blk)`` -> (gamma, aux): the exact value of every block (block-level, NaN on
#     padding) and what the other methods reuse; ``singletons(s, w)`` is the same for the finest
#     partition;
# ``channels(blk, aux)``: the block quantities a window needs; ``window(win, blk, aux)`` -> (2V, K)
#     bool: does union U_j violate the order with its candidate;
# ``final(s, w, blk, aux)`` -> (out, direct, weight, alpha, beta): the outputs phi(s - v) and the
#     pieces of the vector-Jacobian product, U = sum_B weight * g, grad_s = direct * g - alpha * U,
#     grad_w = beta * U (``direct``/``weight`` None means 1).


class _L2:
    @staticmethod
    def values(s, w, blk):
        total = blk.bsum(s - w)
        return total / blk.bcount, total  # padding: 0 / 0

    @staticmethod
    def singletons(s, w):
        y = s - w
        return y, y

    @staticmethod
    def channels(blk, total):
        return [total, blk.bcount]

    @staticmethod
    def window(win, blk, total):
        sums, sizes = win.members[:2]
        return win.violates(sums.cumsum(-1) / sizes.cumsum(-1))

    @staticmethod
    def final(s, w, blk, total):
        inv = 1.0 / blk.count
        return (s - blk.expand(blk.bsum(s)) * inv) + blk.expand(blk.bsum(w)) * inv, None, None, inv, inv


class _KL:
    @staticmethod
    def values(s, w, blk):
        # s and w decrease inside a block: its first element is its maximum. Padding blocks sum
        # to 0: log(1) there (log(0) takes a slow path on CPU), then NaN.
        s0, w0 = blk.at_first(s), blk.at_first(w)
        ls = s0 + torch.log(blk.bsum(torch.exp(s - blk.expand(s0)), blk.one_pad))
        lw = w0 + torch.log(blk.bsum(torch.exp(w - blk.expand(w0)), blk.one_pad))
        return ls - lw + blk.nan_pad, (ls, lw)

    @staticmethod
    def singletons(s, w):
        return s - w, (s, w)

    @staticmethod
    def channels(blk, lse):
        return list(lse)

    @staticmethod
    def window(win, blk, lse):
        return win.violates(_union_lse(win, win.members[0]) - _union_lse(win, win.members[1]))

    @staticmethod
    def final(s, w, blk, lse):
        ls, lw = blk.expand(lse[0]), blk.expand(lse[1])
        return s - ls + lw, None, None, torch.exp(s - ls), torch.exp(w - lw)


def _union_lse(win: _Window, terms: torch.Tensor) -> torch.Tensor:
    """``log(cumsum(exp(terms)))`` along the windows (the log-sums of the unions).

    Going right, every member's elements are at most the anchor's largest, so no term exceeds the
    anchor's by more than ``log(n)``: shifted by the anchor's term the cumsum neither overflows nor
    loses the anchor (terms that underflow are below ``1e-38`` of it). Going left the largest term
    moves with the window: those rows are shifted by their largest term and summed in float64,
    exact while every partial sum stays above ``1e-280`` of it (a range of 640 in the terms); the
    rare rows beyond take the (several times slower) sequential ``logcumsumexp``.
    """
    count = win.count
    right = terms[:count]
    ref = right[:, :1]
    right = torch.log(torch.exp(right - ref).cumsum(-1)) + ref
    left = terms[count:].double()
    top = left.nan_to_num(nan=-math.inf).amax(-1, keepdim=True)
    top = top.nan_to_num(neginf=0.0)  # an all-NaN window stays NaN
    sums = torch.exp(left - top).cumsum(-1)
    left = torch.log(sums) + top
    far = (sums < 1e-280).any(-1)  # NaN padding compares False
    if bool(far.any()):  # a host synchronization, in the rounds only
        rows = far.nonzero().squeeze(-1)
        left[rows] = torch.logcumsumexp(terms[count:][rows].double(), -1)
    return torch.cat((right, left.to(terms.dtype)))


class _Power:
    """``phi(u) = sign(u) |u|^(q - 1)``, q = 3 (c1) or 4 (c2), on blocks centred at their mean."""

    def __init__(self, q: int):
        self.q = q

    def values(self, s, w, blk):
        m = blk.bcount
        centre = blk.bsum(s) / m  # NaN on padding
        d = s - blk.expand(centre)
        W = blk.bsum(w)
        d2 = d * d
        M2 = blk.bsum(d2)
        if self.q == 4:
            M3 = blk.bsum(d2 * d)
            t = _cubic_root(m, M2, M3, W)
            return centre + t, (centre, d, t, M2, M3, W, None)
        t, prefix = _c1_root(d, d2, m, M2, W, blk)
        return centre + t, (centre, d, t, M2, None, W, prefix + (s,))

    def singletons(self, s, w):
        # One element: phi(s - gamma) = w, so s - gamma = sign(w) |w|^(1 / (q - 1)).
        t = -torch.sign(w) * w.abs().pow(1.0 / (self.q - 1))
        zero = torch.zeros_like(s)
        prefix = (zero, zero, zero, s) if self.q == 3 else None
        return s + t, (s, zero, t, zero, zero, w, prefix)

    def channels(self, blk, aux):
        centre, d, t, M2, M3, W, prefix = aux
        if self.q == 4:
            return [blk.bcount, centre, M2, W, M3]
        return [blk.bcount, centre, M2, W, blk.bfirst.to(centre.dtype)]

    def window(self, win, blk, aux):
        m, centre, M2, W, extra = win.members[:5]
        ref = centre[:, :1]  # the anchor's centre
        e = centre - ref  # member centres relative to the anchor's
        h = win.g - ref  # candidate values relative to the anchor's
        Wc = W.cumsum(-1)
        me = m * e
        if self.q == 4:
            # sum_U (s_i - g)^3 = sum_b M3 + 3 (c_b - g) M2 + m (c_b - g)^3, expanded in h.
            A0 = (extra + e * (3 * M2 + me * e)).cumsum(-1)
            A1 = (3 * (M2 + me * e)).cumsum(-1)
            A2 = (3 * me).cumsum(-1)
            A3 = m.cumsum(-1)
            return win.violates_root(A0 - h * (A1 - h * (A2 - h * A3)), Wc)
        # sum_b sum_i (s_i - g)^2 = sum_b M2 + m (c_b - g)^2, expanded in h.
        C0 = (M2 + me * e).cumsum(-1)
        C1 = (2 * me).cumsum(-1)
        C2 = m.cumsum(-1)
        total = C0 - h * (C1 - h * C2)
        # A candidate on the right has a value at most its largest s, which is at most every s of
        # the union on its left (w >= 0): all of the union is above g, F = T(all). On the left, g
        # can fall inside the union: F = 2 T(above g) - T(all).
        above = _c1_above(win, blk, aux[6], m, centre, extra, C0, C1, C2, h)
        above = win.right * total + (1 - win.right) * above
        return win.violates_root(2 * above - total, Wc)

    def final(self, s, w, blk, aux):
        centre, d, t, M2, M3, W, prefix = aux
        u = d - blk.expand(t)
        if self.q == 3:
            out, slope = u * u.abs(), 2 * u.abs()
        else:
            out, slope = u * u * u, 3 * u * u
        total = blk.expand(blk.bsum(slope))
        # A block with zero slope everywhere (out = 0 = W) keeps out = W whatever s: its d/ds is 0
        # and its d/dw the block mean (the limit of the general formula).
        flat = _flag(total == 0, total)
        safe = total + flat
        return out, slope, slope + flat, slope / safe, (1 - flat) / safe + flat / blk.count


def _cubic_root(m, M2, M3, W):
    """The real root of ``m t^3 + 3 M2 t + (W - M3) = 0`` (block-level, Cardano)."""
    p = 3 * M2 / m
    q = (W - M3) / m
    # Rescale to O(1) coefficients: t^3 + P t + Q = 0 in units of `scale` (1 when p = q = 0).
    scale = torch.maximum(q.abs().pow(1.0 / 3.0), p.sqrt())
    scale = scale + _flag(scale == 0, scale)
    P, Q = p / scale**2, q / scale**3
    A = (Q.abs() / 2 + torch.sqrt(Q * Q / 4 + P**3 / 27)).pow(1.0 / 3.0)
    B = P / (3 * A + _flag(A == 0, A))
    den = A * A + P / 3 + B * B
    return -Q / (den + _flag(den == 0, den)) * scale


def _c1_root(d, d2, m, M2, W, blk):
    """Block root ``t`` of ``sum_B (d_i - t) |d_i - t| = W_B`` (``d`` centred per block, decreasing
    inside it), and the in-block exclusive prefix sums ``(L0, L1, L2)`` of ``d^0, d, d^2``."""
    n = d.shape[-1]
    m_e, M2_e, W_e = blk.count, blk.expand(M2), blk.expand(W)
    first, L0 = blk.first, blk.local
    # Row-wide cumsums of terms that sum to zero over every block (d is centred; d^2 is shifted by
    # its block mean), so the running total does not carry earlier blocks into later ones.
    e2 = d2 - M2_e / m_e
    c1 = torch.cumsum(d, -1) - d
    c2 = torch.cumsum(e2, -1) - e2
    L1 = c1 - c1.gather(-1, first)
    L2 = c2 - c2.gather(-1, first) + L0 * (M2_e / m_e)
    # F_j = sum_B phi(d_i - d_j) = 2 sum_{i<j} (d_i - d_j)^2 - sum_B (d_i - d_j)^2 increases along
    # the block (d decreases), and d_j > t iff F_j < W.
    F = 2 * (L2 - d * (2 * L1 - d * L0)) - (M2_e + m_e * d2)
    k = blk.bsum(_flag(F < W_e, d))
    # With +1 on the k largest d of the block and -1 on the others, T_r = sum sign d^r; the sums
    # over the k largest are the inclusive prefix sums at the k-th element.
    kl = k.to(torch.long)
    top = (blk.bfirst + kl - 1).clamp(0, n - 1)
    has_top = _flag(kl >= 1, d)
    T0 = 2 * k - m
    T1 = 2 * has_top * (L1 + d).gather(-1, top)  # sum_B d = 0
    T2 = 2 * has_top * (L2 + d2).gather(-1, top) - M2
    rhs = T2 - W
    sq = torch.sqrt((T1 * T1 - T0 * rhs).clamp_min(0))
    # Root on the decreasing branch, in the form without cancellation for the sign of T1.
    pos = _flag(T1 >= 0, T1)
    num = pos * rhs + (1 - pos) * (T1 - sq)
    den = pos * (T1 + sq) + (1 - pos) * T0
    t = num / (den + _flag(den == 0, den))
    # The root lies between the k-th and (k+1)-th largest d of the block: clamp away rounding.
    big = torch.finfo(d.dtype).max
    hi = d.gather(-1, top) + big * (1 - has_top)
    lo = d.gather(-1, (blk.bfirst + kl).clamp(0, n - 1)) - big * _flag(k >= m, d)
    return torch.minimum(torch.maximum(t, lo), hi), (L0, L1, L2)


def _c1_above(win, blk, prefix, m, centre, first, C0, C1, C2, h):
    """For leftward windows: ``sum (s_i - g)^2`` over the elements of each union above its
    candidate's value ``g``. The union's blocks entirely above ``g`` come from the coefficient
    cumsums ``C`` (evaluated at ``h = g - ref``), the top part of the block that straddles ``g``
    from the in-block prefix sums ``(L0, L1, L2)``. (Rightward rows give garbage, unused.)"""
    n, width = blk.n, h.shape[-1]
    L0, L1, L2, s = prefix
    base = (win.rows * n).unsqueeze(-1)
    # The union of column j spans [first element of member j, end of the anchor block).
    lo = first.nan_to_num(nan=float(n)).to(torch.long).clamp(0, n)
    end = (first[:, :1] + m[:, :1]).to(torch.long)
    hi = end.expand_as(lo)
    g = win.g
    below = _first_at_most(s, win.rows, g)
    if below is not None:
        lo = torch.minimum(torch.maximum(below, lo), hi)
    for _ in range(n.bit_length() if below is None else 0):  # first element of the union with s <= g
        mid = (lo + hi) // 2
        active = lo < hi
        above = _take(s, base + mid.clamp(max=n - 1)) > g
        lo = lo + (active & above).to(torch.long) * (mid + 1 - lo)
        hi = hi + (active & ~above).to(torch.long) * (mid - hi)
    inside = lo < end
    k_flat = base + lo.clamp(max=n - 1)
    q = _take(blk.bid, k_flat)  # the straddling block
    tq = (win.anchor.unsqueeze(-1) - q + 1) * inside.to(torch.long) - 1  # its member index (-1: none)
    col = tq.clamp(0, width - 1)
    below_q = C0.gather(-1, col) - h * (C1.gather(-1, col) - h * C2.gather(-1, col))
    full = (C0 - h * (C1 - h * C2)) - below_q * _flag(tq >= 0, h)
    delta = centre.gather(-1, col) - g
    part = _take(L2, k_flat) + delta * (2 * _take(L1, k_flat) + delta * _take(L0, k_flat))
    return full + part * _flag(inside, h)


def _first_at_most(s: torch.Tensor, rows: torch.Tensor, g: torch.Tensor) -> torch.Tensor | None:
    """For float32 ``(R, n)`` rows ``s`` (decreasing): the first position with ``s <= g`` in row
    ``rows[i]`` for every ``g[i, j]`` (``n`` if none, 0 for NaN ``g``), by one ``searchsorted``
    over the whole batch; None for other dtypes (the caller bisects).

    ``0 - s`` increases along a row (``-0`` becomes ``+0``); its bits, with the magnitude bits of
    negative numbers flipped, are an int32 in the same order, and ``row * 2^32`` on top orders
    the whole batch as one increasing int64 sequence. ``s <= g`` is ``0 - s >= 0 - g``, exactly.
    """
    if s.dtype != torch.float32:
        return None
    rows_n, n = s.shape

    def keys(v: torch.Tensor) -> torch.Tensor:
        bits = (0.0 - v).view(torch.int32)
        return (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64) + 2**31

    offset = torch.arange(rows_n, device=s.device).unsqueeze(-1) << 32
    flat = (keys(s) + offset).view(-1)
    query = keys(g.nan_to_num(nan=math.inf)) + (rows.unsqueeze(-1) << 32)
    found = torch.searchsorted(flat, query.reshape(-1)).view(g.shape) - (rows * n).unsqueeze(-1)
    return found.masked_fill(torch.isnan(g), 0)


def _take(v: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``v.take(index)`` through ``index_select`` (several times faster on CPU)."""
    return v.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)


_REGULARIZERS = {"c0": _L2, "smooth": _KL, "c1": _Power(3), "c2": _Power(4)}
#: Windows (V pairs x 2 directions x width blocks) are used when violations are at most 1 in
#: _SPARSE elements, with width up to _WINDOW_BUDGET * elements / V and _MAX_WINDOW.
_MAX_WINDOW = 64
_WINDOW_BUDGET = 0.25
_SPARSE = 8
#: Candidate windows: width at most _CANDIDATE_WIDTH, with (violations x width^2) at most
#: _CANDIDATE_CELLS times the elements (no windows below _MIN_CANDIDATE_WIDTH), and (clusters x
#: longest cluster x width) at most _CLUSTER_CELLS times the elements; the optimality check allows
#: _CHECK_ROUNDINGS roundings of a cluster's magnitudes per element; e^(s - max s), e^(w - max w)
#: are used over a range of at most _EXP_RANGE.
_CANDIDATE_WIDTH = 32
_CANDIDATE_CELLS = 0.5
_MIN_CANDIDATE_WIDTH = 4
_CHECK_ROUNDINGS = 16
_CLUSTER_CELLS = 4
_EXP_RANGE = 700.0  # float64: clusters are solved in float64
#: Batches of at least _RADIX_SIZE float32 elements, and single rows of at least _RADIX_MIN, are
#: sorted by radix sort on CPU, which torch uses for 1-D integer tensors of at least _RADIX_SIZE
#: elements: a shorter row is padded (CPU time at 1 x 10000: 0.45 ms against torch.sort's 0.55;
#: 8192 break even; padded batches of several rows, sorted twice, gain nothing).
_RADIX_MIN = 2**13
_RADIX_SIZE = 2**15
#: Rows the windows miss are solved by the min-max formula when they are at most this many
#: (rows x n x n) pairs (CPU time at 1 x 64: 0.075 ms for "c0", 0.13 for "smooth", where the
#: rounds take 0.55 to 0.73 and the one-block check 0.05 to 0.09).
_MINMAX_CELLS = 2**16
#: End blocks shorter than this are left to the rounds' windows (see :func:`_end_blocks`).
_LONG_END = 64


def _rounds(s: torch.Tensor, w: torch.Tensor, mode: str, ties: bool = False, start=None):
    """PAV on ``(R, n)`` rows (``s`` and ``w`` decreasing), all rows and blocks at once: the
    block ids and the pieces of ``final``. ``start`` (``(R, n)`` bool, True where a block begins)
    is a partition to start from, whose blocks must lie inside blocks of the solution (None:
    every element a block of its own)."""
    rows, n = s.shape
    reg = _REGULARIZERS[mode]
    if start is None:
        blk = _Blocks.singletons(rows, n, s.dtype, s.device)
        gamma, aux = reg.singletons(s, w)
    else:
        blk = _Blocks(start, s.dtype)
        gamma, aux = reg.values(s, w, blk)
    for _ in range(n):  # every round but the last merges at least one pair: at most n - 1 merges
        # Block b against b + 1 (NaN padding: False); with `ties`, equal values merge too.
        violated = (gamma[:, :-1] <= gamma[:, 1:]) if ties else (gamma[:, :-1] < gamma[:, 1:])
        count = int(violated.sum())  # the one host synchronization of the round
        if count == 0:
            break
        width = int(min(n - 1, _MAX_WINDOW, _WINDOW_BUDGET * rows * n / count))
        if _SPARSE * count <= rows * n and width > 1:
            row, left = violated.nonzero(as_tuple=True)
            # Grow every violating pair greedily on both sides, up to `width` blocks: each
            # absorbed block violates the order with the union before it, so it belongs to the
            # same block of the solution. One round then settles chains that plain adjacent
            # merging would absorb one block per round.
            bad = reg.window(_Window(blk, row, left, width, gamma, reg.channels(blk, aux)), blk, aux)
            bad[:, 0] = True  # the pair itself
            grow = bad.to(torch.long).cumprod(-1).sum(-1)
            # Clear the starts of blocks left + 2 - grow_left ... left + grow_right.
            marks = torch.zeros(rows * (n + 1), dtype=torch.long, device=s.device)
            base = row * (n + 1)
            marks.index_add_(0, base + left + 2 - grow[count:], torch.ones_like(row))
            marks.index_add_(0, base + left + grow[:count] + 1, -torch.ones_like(row))
            keep = marks.view(rows, n + 1)[:, :n].cumsum(-1) == 0
        else:  # dense violations: merge the pairs only
            keep = torch.cat((violated.new_ones((rows, 1)), ~violated), -1)
        keep = keep.gather(-1, blk.bid)
        start = keep if start is None else start & keep
        blk = _Blocks(start, s.dtype)
        gamma, aux = reg.values(s, w, blk)
    return blk.bid, reg.final(s, w, blk, aux)


def _first_block_values(s: torch.Tensor, w: torch.Tensor, mode: str, width: int) -> torch.Tensor:
    r""":math:`\max_{j < k < j + K} \gamma_{j..k}` for every start ``j < L`` of ``(C, L + K - 1)``
    rows of decreasing ``s``, ``w`` (float64, ``K = width``; columns past ``L`` are padding):
    ``(C, L)``, the best block of two to ``K`` elements from ``j``.

    ``"c0"``: :math:`\gamma_{j..k} = (P_{k+1} - P_j) / (k - j + 1)` from the in-row prefix sums
    :math:`P_0 = 0, P_{i + 1} = P_i + s_i - w_i`. ``"smooth"``:
    :math:`\gamma_{j..k} = \log \frac{\sum_{i=j}^{k} e^{s_i - s_0}}{\sum_{i=j}^{k} e^{w_i - w_0}}
    + s_0 - w_0`, the sums taken along each window (sums of positive terms, so no cancellation,
    where a difference of prefix sums would lose every digit of a window far below the row's
    first term) and the logarithm once, after the maximum. The terms are in ``(0, 1]`` and do not
    underflow while ``s`` and ``w`` span less than ``_EXP_RANGE``; the caller checks that.
    """
    if mode == "c0":
        length = s.shape[-1] - width + 1
        prefix = torch.nn.functional.pad((s - w).cumsum(-1), (1, 0))
        sums = prefix[:, 2:].unfold(1, width - 1, 1) - prefix[:, :length, None]
        return (sums / torch.arange(2, width + 1, dtype=s.dtype, device=s.device)).amax(-1)
    count = s.shape[0]
    terms = torch.exp(torch.cat((s - s[:, :1], w - w[:, :1])))
    sums = terms.unfold(1, width, 1).cumsum(-1)[..., 1:]  # (2C, L, K - 1)
    return torch.log((sums[:count] / sums[count:]).amax(-1)) + (s[:, :1] - w[:, :1])


class _Dense(NamedTuple):
    """The solution of every row of a batch as block ids and the pieces of ``final`` (the rounds;
    block ids of shape ``(R, 1)``: every row is one block)."""

    bid: torch.Tensor
    direct: torch.Tensor | None
    weight: torch.Tensor | None
    alpha: torch.Tensor
    beta: torch.Tensor

    def vjp(self, g: torch.Tensor, needs_s: bool, needs_w: bool):
        """``(grad_s, grad_w)`` for the cotangent ``g`` of the outputs (block by block, see the
        Jacobian in :doc:`/user_guide/how_methods_work`)."""
        terms = g if self.weight is None else self.weight * g
        if self.bid.shape[-1] == 1 < terms.shape[-1]:  # every row one block
            U = terms.sum(-1, keepdim=True)
        else:
            U = terms.new_zeros(terms.shape).scatter_add_(1, self.bid, terms).gather(1, self.bid)  # block sums
        grad_s = (g if self.direct is None else self.direct * g) - self.alpha * U if needs_s else None
        return grad_s, (self.beta * U if needs_w else None)


class _Sparse(NamedTuple):
    """The solution of ``"c0"``/``"smooth"`` rows that pool only inside short clusters.

    Outside the clusters every element is a block of its own: the output is ``w`` and the
    vector-Jacobian product is ``(0, g)``. Cluster ``c`` holds the elements ``at[c]`` (flat
    indices into the ``(R, n)`` batch; the padding past its end repeats the last one and writes to
    the extra slot ``R * n`` through ``to``), with block ids ``bid`` local to the cluster (every
    padding entry a block of its own) and the pieces ``alpha``, ``beta`` of ``final``.
    """

    at: torch.Tensor
    to: torch.Tensor
    bid: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor

    def vjp(self, g: torch.Tensor, needs_s: bool, needs_w: bool):
        """``(grad_s, grad_w)``: the block formula inside the clusters, ``(0, g)`` outside."""
        local = g.reshape(-1).index_select(0, self.at.view(-1)).view(self.at.shape)
        U = torch.zeros_like(local).scatter_add_(1, self.bid, local).gather(1, self.bid)  # block sums
        grad_s = _patched(torch.zeros_like(g), self.to, local - self.alpha * U) if needs_s else None
        return grad_s, (_patched(g, self.to, self.beta * U) if needs_w else None)


def _patched(base: torch.Tensor, to: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A copy of the ``(R, n)`` ``base`` with ``values`` written at the flat indices ``to``
    (index ``R * n``, the padding, goes to a scratch slot)."""
    size = base.numel()
    out = base.new_empty(size + 1)
    out[:size] = base.reshape(-1)
    out.index_copy_(0, to.view(-1), values.reshape(-1))
    return out[:size].view(base.shape)


def _windowed(s: torch.Tensor, w: torch.Tensor, mode: str, ties: bool = False):
    """Exact solution of the rows whose blocks are short, for ``"c0"`` and ``"smooth"``.

    Returns ``(outputs, _Sparse, failed rows)``, or None when violations are too dense for windows
    of a useful width ``K``. A block of the solution with more than one element contains a
    violation ``y_c < y_{c + 1}`` of the singleton values :math:`y = s - w`; so the elements
    within ``K - 2`` before and ``K - 1`` after the violations, joined where they overlap or touch
    into clusters ``[p, q]``, are solved on their own, and every other element is a singleton.
    In a cluster, the value of the first block of the sub-problem on ``j, ..., q`` is
    :math:`u_j = \\max_{k} \\gamma_{j..k}` (a decreasing solution takes the block of largest
    value), and the solution is the running minimum

    .. math::
        v_i = \\min_{p \\le j \\le i} u_j

    (for ``i`` in a block ``B = [b, e]``: ``j = b`` gives :math:`\\gamma_B`, and any ``j`` in or
    before ``B`` has :math:`\\gamma_{j..e} \\le \\gamma_B`). With ``k < j + K``, :math:`u_j` is
    exact when the blocks are shorter than ``K``. The candidate is then checked against the
    optimality (KKT) conditions of the whole row: with
    :math:`D_i = \\sum_{t \\le i} \\phi(s_t - v_t) - w_t` (``"smooth"``: :math:`e^{s_t - v_t} -
    e^{w_t}`, each term in units of :math:`e^{w}` at the first element of its block, which changes
    no sign or zero below), it is the solution iff ``v`` decreases,
    :math:`D \\le 0` everywhere and :math:`D = 0` where ``v`` steps down and at the row end (the
    multipliers of the order constraints are :math:`-D`). Singletons add nothing to ``D``, so
    this holds when every cluster has it on its own (``D`` back to 0 at ``q``) and its end elements
    stay singletons, :math:`v_p = y_p` and :math:`v_q = y_q`: there is no violation at ``p - 1`` or
    at ``q``, so ``v`` then decreases across the ends. Rows with a failing
    cluster (a block longer than the window) are left to :func:`_rounds`. Clusters are computed
    in float64, checked with a tolerance of a few roundings of their magnitudes per element: the
    check must tell a block value a few float32 roundings off from the rounding itself.
    """
    rows, n = s.shape
    y = s - w
    sites = (y[:, :-1] <= y[:, 1:]) if ties else (y[:, :-1] < y[:, 1:])
    site_row, site_col = sites.nonzero(as_tuple=True)  # one host synchronization
    count = site_row.shape[0]
    if count == 0:  # every element is a singleton
        empty, nothing = site_row.new_empty((0, 0)), s.new_empty((0, 0))
        return w.clone(), _Sparse(empty, empty, empty, nothing, nothing), site_row.new_empty((0,))
    width = min(_CANDIDATE_WIDTH, n, math.isqrt(int(_CANDIDATE_CELLS * rows * n / count)))
    if width < min(_MIN_CANDIDATE_WIDTH, n):
        return None
    # Segments [c - K + 2, c + K - 1] around the violations (sorted by row, then column), clipped
    # to the row, joined into clusters [p, q] where they overlap or touch.
    lo = (site_col - (width - 2)).clamp_min(0)
    hi = (site_col + (width - 1)).clamp_max(n - 1)
    opens = torch.ones_like(site_row, dtype=torch.bool)
    opens[1:] = (site_row[1:] != site_row[:-1]) | (lo[1:] > hi[:-1] + 1)
    first = opens.nonzero().squeeze(-1)  # one host synchronization
    last = torch.cat((first[1:] - 1, first.new_full((1,), count - 1)))
    row, p, q = site_row[first], lo[first], hi[last]
    length = int((q - p).max()) + 1  # one host synchronization
    if first.shape[0] * length * width > _CLUSTER_CELLS * rows * n:
        return None
    # Cluster elements, then K - 1 columns of padding (w = +inf: blocks reaching there get the
    # value -inf); gathered at the clusters' last element so that every value stays finite.
    q_ = q.unsqueeze(-1)
    position = p.unsqueeze(-1) + torch.arange(length + width - 1, device=s.device)
    inside = position <= q_
    at = (row * n).unsqueeze(-1) + torch.minimum(position, q_)
    s_c, w_c = _take(s, at).double(), _take(w, at).double()
    best = _first_block_values(s_c, w_c.masked_fill(~inside, math.inf), mode, width)
    s_c, w_c, inside, at = s_c[:, :length], w_c[:, :length], inside[:, :length], at[:, :length].contiguous()
    y_c = s_c - w_c
    # u_j (exactly y_j when j starts a singleton); +inf on the padding carries v_q along it.
    u = torch.maximum(best, y_c).masked_fill_(~inside, math.inf)
    v = u.cummin(-1).values
    out = w_c + (y_c - v)  # s - v: phi(s - v) for c0, log phi(s - v) for smooth; w on singletons
    # Blocks: runs of equal v (every padding entry on its own).
    opens = torch.cat((inside.new_ones((inside.shape[0], 1)), (v[:, :-1] > v[:, 1:]) | ~inside[:, 1:]), -1)
    bid = opens.cumsum(-1) - 1
    if mode == "smooth":
        # In units of e^w at each block's first (largest) element: every block's terms are O(1),
        # so D sees a wrong block however far below the cluster's first element it lies.
        head = (torch.arange(length, device=s.device) * opens).cummax(-1).values
        top = w_c.gather(1, head)
        ew, eo = torch.exp(w_c - top), torch.exp(out - top)
        term = eo - ew
    else:
        term = y_c - v
    term = term * inside  # exactly 0 on singletons and padding
    D = term.cumsum(-1)
    # NaN-safe: a non-finite candidate fails every comparison.
    tol = (_CHECK_ROUNDINGS * torch.finfo(torch.float64).eps * length) * (s_c.abs().amax(-1) + w_c.abs().amax(-1) + 1)
    slack = ((v[:, :-1] - v[:, 1:]) * D[:, :-1]).sum(-1)
    # A cluster's end elements are singletons (v = y): with y_(p - 1) >= y_p and y_q >= y_(q + 1)
    # (no violation there), v decreases across its ends. (v_p >= y_p and v_q <= y_q always.)
    ok = (
        (D.amax(-1) <= tol)
        & (slack >= -tol * (v[:, 0] - v[:, -1]))
        & (D[:, -1].abs() <= tol)
        & ((p == 0) | (v[:, 0] <= y_c[:, 0]))
        & ((q == n - 1) | (v[:, -1] >= y_c[:, -1]))
    )
    if mode == "smooth":  # e^(s - s_p) and e^(w - w_p) do not underflow
        ok = ok & (torch.maximum(s_c[:, 0] - s_c[:, -1], w_c[:, 0] - w_c[:, -1]) <= _EXP_RANGE)
    bad = torch.zeros(rows, dtype=torch.long, device=s.device).index_add_(0, row, (~ok).to(torch.long))
    if mode == "smooth":
        total = torch.zeros_like(ew).scatter_add_(1, bid, ew).gather(1, bid)  # block sums of e^w
        alpha, beta = eo / total, ew / total
    else:
        alpha = beta = torch.zeros_like(v).scatter_add_(1, bid, torch.ones_like(v)).gather(1, bid).reciprocal_()
    to = torch.where(inside, at, rows * n)
    solution = _Sparse(at, to, bid, alpha.to(s.dtype), beta.to(s.dtype))
    failed = bad.nonzero().squeeze(-1)  # one host synchronization
    return _patched(w, to, out.to(s.dtype)), solution, failed


@functools.lru_cache(maxsize=32)
def _minmax_layout(n: int, device: torch.device):
    """Constants of :func:`_minmax` for rows of ``n``, columns ``q`` standing for ``k = n - 1 - q``:
    ``1 / (k - j + 1)`` where ``k >= j`` (0 elsewhere) and the mask of those pairs, ``(n, n)``."""
    j = torch.arange(n, device=device).unsqueeze(-1)
    size = n - torch.arange(n, device=device) - j  # k - j + 1
    valid = size >= 1
    return torch.where(valid, 1.0 / size.clamp_min(1).double(), 0.0), valid


def _minmax(s: torch.Tensor, w: torch.Tensor, mode: str) -> tuple[torch.Tensor, _Dense]:
    r"""Exact solution of small ``(R, n)`` batches, ``"c0"`` and ``"smooth"``, by the min-max formula

    .. math::
        v_i = \min_{j \le i} \max_{k \ge i} \gamma_{j..k}

    over every pair ``j <= k`` at once (``R n^2`` entries, in float64), with the columns taken
    in reverse (``q = n - 1 - k``): the maximum over ``k >= i`` is then a ``cummax`` along the
    columns, and the minimum over ``j <= i`` a plain ``amin`` once the pairs with ``j > i`` are
    masked. ``"c0"``: :math:`\gamma_{j..k}` from the prefix sums of ``s - w``. ``"smooth"``:
    :math:`\gamma_{j..k} = \log \frac{\sum_{j..k} e^{s}}{\sum_{j..k} e^{w}}`, ordered as the
    ratio of the two sums, which are differences of suffix sums of :math:`e^{s - s_{n-1}}` and
    :math:`e^{w - w_{n-1}}` (the terms of a block are at most its first one, so each difference
    is exact to about ``n`` roundings of itself): the logarithm is taken once, on the ``n``
    solution values. Rows spanning more than float64's exponent range take the ``n^2``
    exponentials of the in-row differences instead. About 15 operations for any input; the blocks
    are the runs of equal ``v``, and the Jacobian pieces come from them.
    """
    rows, n = s.shape
    s64, w64 = s.double(), w.double()
    both = torch.stack((s64, w64)) if mode == "smooth" else None  # s and w through one set of operations
    inverse, valid = _minmax_layout(n, s.device)
    if mode == "c0":
        prefix = torch.nn.functional.pad((s64 - w64).cumsum(-1), (1, 0))  # P_t = sum_{i < t} y_i
        # gamma[j, q] = (P_{k + 1} - P_j) / (k - j + 1), k = n - 1 - q
        gamma = (prefix[:, 1:].flip(-1).unsqueeze(-2) - prefix[:, :-1].unsqueeze(-1)) * inverse
        offset = None
    elif bool(torch.maximum(s64[:, 0] - s64[:, -1], w64[:, 0] - w64[:, -1]).amax() <= _EXP_RANGE):
        # One host synchronization (the exponent range of the whole batch).
        tail = torch.exp(both - both[..., -1:]).flip(-1).cumsum(-1)  # tail[q] = T_(n - 1 - q)
        head, after = tail.flip(-1), torch.nn.functional.pad(tail[..., :-1], (1, 0))  # T_j; T_(k + 1) at q
        sums = head.unsqueeze(-1) - after.unsqueeze(-2)  # sum over j..k, in units of the last term
        gamma = sums[0] / sums[1]
        offset = s64[:, -1:] - w64[:, -1:]
    else:
        upper = valid.flip(-1)  # [j, k]: k >= j
        ls = torch.exp((s64[:, None, :] - s64[:, :, None]).masked_fill(~upper, -math.inf)).cumsum(-1)
        lw = torch.exp((w64[:, None, :] - w64[:, :, None]).masked_fill(~upper, -math.inf)).cumsum(-1)
        gamma = (torch.log(ls / lw) + (s64 - w64).unsqueeze(-1)).flip(-1)
        offset = None
    best = torch.where(valid, gamma.cummax(-1).values, math.inf)  # [j, q]: max over k >= i = n - 1 - q
    v = best.amin(-2).flip(-1)
    if offset is not None:
        v = torch.log(v) + offset
    start = torch.cat((v.new_ones((rows, 1), dtype=torch.bool), v[:, 1:] < v[:, :-1]), -1)
    bid = start.cumsum(-1) - 1
    if mode == "c0":
        size = torch.zeros_like(s64).scatter_add_(1, bid, torch.ones_like(s64)).gather(1, bid)
        alpha = beta = size.reciprocal_().to(s.dtype)
    else:
        # In-block softmaxes of s and w (stacked); a block's first term is its largest.
        first = (torch.arange(n, device=s.device) * start).cummax(-1).values.expand(2, rows, n)
        e = torch.exp(both - both.gather(-1, first))
        ids = bid.expand(2, rows, n)
        alpha, beta = (e / torch.zeros_like(e).scatter_add_(-1, ids, e).gather(-1, ids)).to(s.dtype).unbind(0)
    return (s64 - v).to(s.dtype), _Dense(bid, None, None, alpha, beta)


def _pooled(s: torch.Tensor, w: torch.Tensor, mode: str):
    r"""Every ``(R, n)`` row as one block: its outputs, the dense solution, and which rows it solves.

    The one-block candidate, of value :math:`\gamma`, is the solution iff
    :math:`D_i = \sum_{t \le i} \phi(s_t - \gamma) - w_t \le 0` for every ``i`` (the optimality
    conditions of :func:`_windowed` with no step), checked in float64 with a tolerance of a few
    roundings per element. As :math:`D_n = 0`, that is: every suffix ``i + 1, ...`` has a value of
    its own at least :math:`\gamma`; ``"smooth"`` checks it in that form, with suffix sums of
    exponentials in units of the smallest one, which sees a suffix however far below the row's
    first element it lies (prefix sums in units of the first one would not). Strong softness pools
    whole rows (every row of a sort or rank of standardized normal scores at softness 2), and then
    this is all the work.
    """
    rows, n = s.shape
    s64, w64 = s.double(), w.double()
    rounding = _CHECK_ROUNDINGS * torch.finfo(torch.float64).eps * n
    if mode in ("c0", "smooth"):  # closed form; the block sums are row sums
        if mode == "c0":
            ls, lw = s64.sum(-1, keepdim=True) / n, w64.sum(-1, keepdim=True) / n
        else:
            ls, lw = torch.logsumexp(s64, -1, keepdim=True), torch.logsumexp(w64, -1, keepdim=True)
        out = s64 - ls + lw  # s - gamma
        direct = weight = None
    else:
        start = torch.zeros((rows, n), dtype=torch.bool, device=s.device)
        start[:, 0] = True
        blk = _Blocks(start, torch.float64)
        reg = _REGULARIZERS[mode]
        out, direct, weight, alpha, beta = reg.final(s64, w64, blk, reg.values(s64, w64, blk)[1])
    if mode == "smooth":
        # Suffix sums in units of e^(w_(n - 1)), the smallest term of w: sums of positive terms,
        # each exact to n roundings of itself, however small next to the first element.
        low = w64[:, -1:]
        a, b = torch.exp(out - low).flip(-1).cumsum(-1), torch.exp(w64 - low).flip(-1).cumsum(-1)
        a, b = a[:, :-1], b[:, :-1]  # the suffixes from 1, ..., n - 1 (reversed)
        ok = ((a - b) >= -rounding * (a + b)).all(-1)
        ok = ok & (torch.maximum(out[:, 0], w64[:, 0]) - low[:, 0] <= _EXP_RANGE)  # no overflow
    else:
        D = (out - w64).cumsum(-1)[:, :-1]
        scale = out.abs().amax(-1) + w64.abs().amax(-1) + 1
        ok = (D <= (rounding * scale).unsqueeze(-1)).all(-1)
    if mode == "c0":
        alpha = beta = torch.full((1, 1), 1.0 / n, dtype=s.dtype, device=s.device).expand(rows, n)
    elif mode == "smooth":
        alpha, beta = torch.exp(s64 - ls), torch.exp(w64 - lw)  # the softmaxes of the row
    pieces = [None if p is None else p.to(s.dtype) for p in (direct, weight, alpha, beta)]
    # Block ids of shape (R, 1): every row is one block (see _Dense).
    return out.to(s.dtype), _Dense(torch.zeros((rows, 1), dtype=torch.long, device=s.device), *pieces), ok


def _end_lengths(s: torch.Tensor, w: torch.Tensor, mode: str):
    """``(R, 1)`` lengths of the first and the last block of the solution of ``(R, n)`` rows
    (see :func:`_end_blocks`), 1 and 1 for ``"smooth"`` rows beyond ``_EXP_RANGE``."""
    s64, w64 = s.double(), w.double()
    size = torch.arange(1, s.shape[-1] + 1, dtype=torch.float64, device=s.device)
    if mode == "c0":
        y = s64 - w64
        head = (y.cumsum(-1) / size).argmax(-1, keepdim=True) + 1
        tail = (y.flip(-1).cumsum(-1) / size).argmin(-1, keepdim=True) + 1
        return head, tail
    # Terms in units of the first (largest) one, in [e^-700, 1]: the suffix sums of the tail keep
    # every digit, and the ratio of two of them is the ratio in any common unit.
    terms = torch.exp(torch.stack((s64, w64)) - torch.stack((s64[:, :1], w64[:, :1])))
    ahead, behind = terms.cumsum(-1), terms.flip(-1).cumsum(-1)
    head = (ahead[0] / ahead[1]).argmax(-1, keepdim=True) + 1
    tail = (behind[0] / behind[1]).argmin(-1, keepdim=True) + 1
    usable = torch.maximum(s64[:, :1] - s64[:, -1:], w64[:, :1] - w64[:, -1:]) <= _EXP_RANGE
    return torch.where(usable, head, 1), torch.where(usable, tail, 1)


def _end_blocks(s: torch.Tensor, w: torch.Tensor, mode: str) -> torch.Tensor | None:
    r"""``(R, n)`` bool, True where a block begins: the first and the last block of the solution
    of every row where they are long (``_LONG_END`` elements or more), every other element on its
    own (``"c0"`` and ``"smooth"``), for :func:`_rounds`; None where no row has a long one.

    The first block of a decreasing solution is ``[0, k]`` for the ``k`` that maximizes the block
    value :math:`\gamma_{0..k}` (its value is :math:`v_0 = \max_k \gamma_{0..k}`); the last is
    ``[j, n - 1]`` for the ``j`` that minimizes :math:`\gamma_{j..n-1}`. Both come from prefix
    and suffix sums, in float64: ``"c0"`` of ``s - w``, ``"smooth"`` of :math:`e^{s - s_0}` and
    :math:`e^{w - w_0}`. The first maximizer and minimizer are taken, so a rounding tie gives
    the shorter block, which still lies inside the solution's. At strong softness these two
    blocks are long (a sixth of the row each for a sort of normal scores at softness 1), and
    every round of adjacent merges they save is a pass over the row; shorter ones the rounds'
    windows absorb at once. Rows whose ``s`` or ``w`` spans more than ``_EXP_RANGE`` (``"smooth"``) keep singletons.
    """
    n = s.shape[-1]
    head, tail = _end_lengths(s, w, mode)
    head, tail = head * (head >= _LONG_END), tail * (tail >= _LONG_END)
    if not bool((head + tail).any()):  # one host synchronization
        return None
    position = torch.arange(n, device=s.device)
    return ~(((position > 0) & (position < head)) | (position > n - tail))


def _isotonic(s: torch.Tensor, w: torch.Tensor, mode: str, ties: bool = False):
    """Decreasing isotonic solution of ``(R, n)`` rows: the outputs ``phi(s - v)``, the sparse
    solution (None if not used) and the dense parts ``[(rows, _Dense)]`` that replace it on their
    rows (``rows`` None: all of them). Windows first for ``"c0"`` and ``"smooth"`` (batches of
    several rows), then whole rows as one block; the rows both miss by the min-max formula when
    few and short (``"c0"``, ``"smooth"``), by the rounds otherwise (``"c0"``, ``"smooth"``: from
    the first and last blocks, :func:`_end_blocks`)."""
    # A single row the windows miss would pay for them and for the rounds: it takes the rounds.
    found = _windowed(s, w, mode, ties=ties) if mode in ("c0", "smooth") and s.shape[0] > 1 else None
    if found is None:
        out, sparse, rest = None, None, None
    else:
        out, sparse, rest = found
        if not rest.numel():
            return out, sparse, []
    sub_s, sub_w = (s, w) if rest is None else (s.index_select(0, rest), w.index_select(0, rest))
    if mode in ("c0", "smooth") and sub_s.shape[0] * sub_s.shape[1] ** 2 <= _MINMAX_CELLS:
        # Few and short rows: the min-max formula, cheaper than the one-block check and the rounds
        small_out, small = _minmax(sub_s, sub_w, mode)
        if rest is None:
            return small_out, None, [(None, small)]
        out[rest] = small_out
        return out, sparse, [(rest, small)]
    # A row is one block only if its first singleton value is at most its last (the row's value
    # lies between them): most rows of moderate softness fail this, and skip the one-block check.
    ends = _REGULARIZERS[mode].singletons(sub_s[:, [0, -1]], sub_w[:, [0, -1]])[0]
    candidate = ends[:, 0] <= ends[:, 1]
    if bool(candidate.any()):  # one host synchronization
        pooled_out, pooled, ok = _pooled(sub_s, sub_w, mode)
        ok = ok & candidate
    else:
        ok = candidate
    missed = (~ok).nonzero().squeeze(-1)  # one host synchronization
    if not missed.numel():
        if rest is None:
            return pooled_out, None, [(None, pooled)]
        out[rest] = pooled_out
        return out, sparse, [(rest, pooled)]
    if missed.numel() == sub_s.shape[0]:  # no row is one block
        left_s, left_w = sub_s, sub_w
    else:
        left_s, left_w = sub_s.index_select(0, missed), sub_w.index_select(0, missed)
    # A single row starts from its end blocks (batches gain less than the prefix sums cost).
    start = _end_blocks(left_s, left_w, mode) if mode in ("c0", "smooth") and left_s.shape[0] == 1 else None
    bid, (rounds_out, *pieces) = _rounds(left_s, left_w, mode, ties, start)
    rounds = _Dense(bid, *pieces)
    if missed.numel() == sub_s.shape[0]:
        if rest is None:
            return rounds_out, None, [(None, rounds)]
        out[rest] = rounds_out
        return out, sparse, [(rest, rounds)]
    solved = ok.nonzero().squeeze(-1)
    pooled = _Dense(*(None if p is None else p[solved] for p in pooled))
    rows_ok, rows_missed = (solved, missed) if rest is None else (rest[solved], rest[missed])
    if out is None:
        out = torch.empty_like(s)
    out[rows_ok] = pooled_out[solved]
    out[rows_missed] = rounds_out
    return out, sparse, [(rows_ok, pooled), (rows_missed, rounds)]


class _Projection(torch.autograd.Function):
    """``phi(s - v)`` for the isotonic solution ``v`` of ``(s, w)``, with its closed-form VJP."""

    @staticmethod
    def forward(ctx, s, w, mode, ties):
        out, sparse, parts = _isotonic(s, w, mode, ties)
        ctx.has_sparse = sparse is not None
        ctx.layout = [(rows is not None, dense.direct is not None, dense.weight is not None) for rows, dense in parts]
        saved = list(sparse or ())
        for rows, dense in parts:
            saved += [t for t in (rows, *dense) if t is not None]
        ctx.mode = mode
        ctx.save_for_backward(s, w, out, *saved)  # s, w and out for a double backward only
        return out

    @staticmethod
    def backward(ctx, g):
        if torch.is_grad_enabled():  # double backward: differentiate the block formula itself
            return _differentiable_vjp(ctx, g)
        saved = list(ctx.saved_tensors)[3:]
        needs = ctx.needs_input_grad[:2]
        g = g.contiguous()
        if ctx.has_sparse:
            grad_s, grad_w = _Sparse(*saved[:5]).vjp(g, *needs)
            saved = saved[5:]
        else:
            grad_s = torch.zeros_like(g) if needs[0] else None
            grad_w = torch.zeros_like(g) if needs[1] else None
        for has_rows, has_direct, has_weight in ctx.layout:
            rows = saved.pop(0) if has_rows else None
            bid = saved.pop(0)
            direct = saved.pop(0) if has_direct else None
            weight = saved.pop(0) if has_weight else None
            dense = _Dense(bid, direct, weight, saved.pop(0), saved.pop(0))
            if rows is None:  # every row
                grad_s, grad_w = dense.vjp(g, *needs)
                continue
            sub_s, sub_w = dense.vjp(g[rows], *needs)
            if grad_s is not None:
                grad_s[rows] = sub_s
            if grad_w is not None:
                grad_w[rows] = sub_w
        return grad_s, grad_w, None, None


def _block_firsts(sparse, parts, rows: int, n: int, device) -> torch.Tensor:
    """``(R, n)`` long: the position of the first element of every element's block, from the
    solver's layout (the sparse clusters, then the dense parts, which replace them on their rows)."""
    position = torch.arange(n, device=device)
    first = position.expand(rows, n).clone()  # every element a block of its own
    if sparse is not None:
        column = sparse.at % n
        local = torch.full_like(column, n).scatter_reduce(1, sparse.bid, column, "amin").gather(1, sparse.bid)
        first = _patched(first, sparse.to, local)
    for sub_rows, dense in parts:
        if dense.bid.shape[-1] == 1 < n:  # every row one block
            part = torch.zeros_like(position).expand(dense.bid.shape[0], n)
        else:
            part = torch.full_like(dense.bid, n).scatter_reduce(1, dense.bid, position.expand_as(dense.bid), "amin")
            part = part.gather(1, dense.bid)
        if sub_rows is None:
            first = part.expand(rows, n).clone()
        else:
            first[sub_rows] = part
    return first


def _block_sums(v: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """The sum over its block at every element (differentiable, with vmap batching rules)."""
    return torch.zeros_like(v).scatter_add(-1, first.expand_as(v), v).gather(-1, first.expand_as(v))


def _block_formula(s, w, first, out, mode):
    r""":math:`\phi(s - \gamma_B)` for the blocks ``first`` in differentiable torch operations.

    ``out`` (the solver's output, no gradient) only gives the starting point of the p-norm modes:
    their block equation :math:`\sum_B \phi(s_i - \gamma) = W_B` is polished by two Newton steps,
    the first from that (detached) start, the second from the first, so that the result carries
    exact first and second derivatives (a Newton step at the root passes on the derivatives of
    its start to one order higher). ``"c0"`` and ``"smooth"`` are closed forms.
    """
    if mode == "c0":
        count = _block_sums(torch.ones_like(s), first)
        return s - _block_sums(s - w, first) / count
    if mode == "smooth":

        def lse(t):
            top = torch.full_like(t, -math.inf).scatter_reduce(-1, first.expand_as(t), t.detach(), "amax")
            top = top.gather(-1, first.expand_as(t))
            return top + torch.log(_block_sums(torch.exp(t - top), first))

        return s - (lse(s) - lse(w))
    q = 3 if mode == "c1" else 4
    out = out.detach()
    root = torch.sign(out) * out.abs().sqrt() if q == 3 else torch.sign(out) * out.abs().pow(1.0 / 3.0)
    count = _block_sums(torch.ones_like(s), first)
    gamma = _block_sums(s.detach() - root, first) / count
    total = _block_sums(w, first)
    for _ in range(2):
        u = s - gamma
        value = u * u.abs() if q == 3 else u * u * u
        slope = 2.0 * u.abs() if q == 3 else 3.0 * u * u
        slope = _block_sums(slope, first)
        ok = slope > 0
        gamma = gamma + torch.where(ok, (_block_sums(value, first) - total) / torch.where(ok, slope, 1.0), 0.0)
    u = s - gamma
    return u * u.abs() if q == 3 else u * u * u


def _differentiable_vjp(ctx, g):
    """The backward as a differentiable function of ``(s, w)``: the block formula rebuilt on the
    solver's blocks and differentiated by autograd (with ``create_graph``)."""
    s, w, out, *saved = ctx.saved_tensors
    sparse = _Sparse(*saved[:5]) if ctx.has_sparse else None
    saved = saved[5:] if ctx.has_sparse else saved
    parts = []
    for has_rows, has_direct, has_weight in ctx.layout:
        rows = saved.pop(0) if has_rows else None
        bid = saved.pop(0)
        direct = saved.pop(0) if has_direct else None
        weight = saved.pop(0) if has_weight else None
        parts.append((rows, _Dense(bid, direct, weight, saved.pop(0), saved.pop(0))))
    first = _block_firsts(sparse, parts, s.shape[0], s.shape[1], s.device)
    with torch.enable_grad():
        leaves = [t if t.requires_grad else t.detach().requires_grad_() for t in (s, w)]
        rebuilt = _block_formula(leaves[0], leaves[1], first, out, ctx.mode)
        grads = torch.autograd.grad(rebuilt, leaves, g, create_graph=True, allow_unused=True)
    needs = ctx.needs_input_grad[:2]
    return (grads[0] if needs[0] else None), (grads[1] if needs[1] else None), None, None


@torch.library.custom_op("softtorch::isotonic_blocks", mutates_args=())
def _blocks_op(s: torch.Tensor, w: torch.Tensor, mode: str, ties: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The solver's output and its blocks (:func:`_block_firsts`), no gradient: one operator for
    ``torch.compile``, where its data-dependent layout could not be traced."""
    out, sparse, parts = _isotonic(s, w, mode, ties)
    return out.clone() if out is s or out is w else out, _block_firsts(sparse, parts, s.shape[0], s.shape[1], s.device)


@_blocks_op.register_fake
def _(s, w, mode, ties):
    return torch.empty_like(s), torch.empty_like(s, dtype=torch.long)


@_blocks_op.register_vmap
def _(info, in_dims, s, w, mode, ties):
    size = info.batch_size
    s, w = (t.movedim(d, 0) if d is not None else t.expand(size, *t.shape) for t, d in zip((s, w), in_dims[:2]))
    rows, n = s.shape[1], s.shape[-1]
    out, first = _blocks_op(s.reshape(-1, n), w.reshape(-1, n), mode, ties)
    return (out.view(size, rows, n), first.view(size, rows, n)), (0, 0)


def project_sorted(s: torch.Tensor, w: torch.Tensor, mode: str, ties: bool = False) -> torch.Tensor:
    r""":math:`\phi(s - v)` (``"smooth"``: :math:`s - v`) for the decreasing isotonic solution
    :math:`v` of decreasing ``s`` and ``w`` of one shape ``(..., n)``, differentiable in both.

    With ``ties``, neighbours of equal value are pooled as well (same outputs; where the
    projection has a kink there, the gradient is the pooled one, as torchsort's).

    Example:
        >>> s = torch.tensor([3.0, 2.0, 1.0])
        >>> project_sorted(s, torch.tensor([2.0, 1.5, 0.0]), "c0")  # y = s - w = (1, 0.5, 1): pools the last two
        tensor([2.0000, 1.2500, 0.2500])
    """
    shape = s.shape
    n = shape[-1]
    if s.numel() == 0:
        return s + w  # nothing to pool; keeps shapes and autograd
    s, w = s.reshape(-1, n).contiguous(), w.reshape(-1, n).contiguous()
    if in_transform():
        # compile and torch.func: the blocks from the solver, the values and every derivative
        # (forward mode, vmap, higher orders) from the block formula in plain torch operations
        out, first = _blocks_op(s.detach(), w.detach(), mode, ties)
        return _block_formula(s, w, first, out, mode).view(shape)
    return _Projection.apply(s, w, mode, ties).view(shape)


def sort_descending(x: torch.Tensor, with_order: bool = False):
    """``torch.sort(x, -1, descending=True, stable=True)``: the values and, with ``with_order``,
    the indices.

    On CPU, torch sorts rows by comparisons but a 1-D integer tensor of at least ``2 ** 15``
    elements by radix sort, much faster for a batch of float32 rows. Two stable 1-D sorts order
    the whole batch (least significant key first): one of the int32 keys ``-b``, with ``b`` the
    bits of each magnitude, negated for negative numbers (an integer in the order of the floats),
    then one of the row numbers, in the narrowest integer type that holds them (one radix pass
    for up to 256 rows; none for one row). A single row of ``2 ** 13`` to ``2 ** 15`` elements is
    padded with keys after every other (stable: after equal ones too). The values are gathered
    with autograd.
    """
    n = x.shape[-1]
    small = x.numel() < (_RADIX_MIN if x.numel() == n else _RADIX_SIZE)
    if x.device.type != "cpu" or x.dtype != torch.float32 or small or n == 0:
        out = torch.sort(x, dim=-1, descending=True, stable=True)
        return (out.values, out.indices) if with_order else (out.values, None)
    flat = x.reshape(-1)
    rows = flat.numel() // n
    bits = flat.detach().contiguous().view(torch.int32)
    sign = bits >> 31  # 0 or -1
    key = (bits & 0x7FFFFFFF).bitwise_xor_(sign).sub_(sign).neg_()  # -(+-magnitude): decreasing in x, -0 = 0
    if rows == 1:  # padded to the radix sort's length when shorter
        pad = max(_RADIX_SIZE - n, 0)
        position = torch.nn.functional.pad(key, (0, pad), value=torch.iinfo(torch.int32).max)
        position = position.sort(stable=True).indices[:n]
    else:
        by_value = key.sort(stable=True).indices
        row_type = torch.uint8 if rows <= 2**8 else torch.int16 if rows <= 2**15 else torch.int32
        row_of = torch.arange(rows, dtype=row_type, device=x.device).repeat_interleave(n)
        position = by_value.index_select(0, row_of.index_select(0, by_value).sort(stable=True).indices)
    values = flat.index_select(0, position).view(x.shape)
    if not with_order:
        return values, None
    return values, (position.view(rows, n) - torch.arange(0, rows * n, n, device=x.device).unsqueeze(-1)).view(x.shape)
