r"""Sorting networks: their layers, a run of the relaxed network, and its soft permutation.

A network on ``N`` wires is a list of layers of disjoint compare-and-swap units (:class:`Layer`);
:func:`network` builds them (and caches them per size, layout, device and dtype), :func:`run`
relaxes every unit with a step function of the scaled difference of its two wires and returns the
wires' values and every unit's weight ``s``, and :func:`full_permutation` / :func:`some_rows` turn
the weights into rows of the soft permutation: every unit mixes the two permutation rows of its
wires, ``P'_lo = P_lo + s (P_hi - P_lo)`` and ``P'_hi = P_hi - s (P_hi - P_lo)``.

**The values** (:class:`_NetworkRun`). A bitonic network with the logistic step runs as one
autograd Function over all its layers: the wires are held wire-major (``N x B``), so the two wires
of every unit are two views with contiguous runs of ``d B`` entries, each layer is a handful of
in-place ops on two alternating buffers, and the backward walks the layers in reverse in closed
form from the saved weights and differences (``O(T N)`` per row). Other steps, a softness with a
gradient and ``torch.func`` transforms run layer by layer in plain autograd (:func:`_plain_run`).

**Bitonic layouts.** ``N = 2^m``; stage ``k`` merges blocks of ``2^k`` wires with the layers of
distances ``2^(k-1), ..., 1`` (bits ``k - 1, ..., 0`` of the wire index; the units of blocks whose
bit ``k`` is set put the minimum on the upper wire). After stage ``k`` the permutation is block
diagonal in blocks of ``2^k``, so a stage only ever touches ``N 2^k`` entries per row. Padding
wires (``n < N``) are sentinels that behave like :math:`+\infty`: every unit that touches one has
a fixed weight (an exact swap exactly when the sentinel sits where the minimum goes, decided from
``n`` alone), so they never mix with the real wires and end up in the last slots.

**Excluded entries** (:class:`KeptFirst`): a row's kept entries are gathered in front, the
excluded ones after become per-row sentinels, and every layer after the row's own network (the
first ``m' (m' + 1) / 2`` layers for ``2^m'`` kept-and-padded wires; the first ``k`` layers of
the odd-even network) is the identity for the row, so the kept slots hold exactly the network of
the kept entries alone (:func:`run` with ``count``).

**The full permutation** (:class:`_BitonicPermutation`). The layers of a stage are multiplied into
at most two groups of small matrices (:func:`_group_matrix`): the top bits ``low .. k - 1`` (one
``G x G`` matrix per block and *lane* ``l`` of the low bits) and the low bits ``0 .. low - 1`` (one
``L x L`` matrix per block and top index ``j``). Each group is then applied to the block-diagonal
permutation with batched matrix products on strided views, so that nothing is transposed: the
top group reads the two half blocks of the previous stage directly (never the zeros between them,
one product per lane and half) and writes ``(R, K, G, L, 2^k)``, which the low group reads as one
contiguous batched product, writing the natural row order (small strided outputs go through a
contiguous buffer, :func:`_bmm_into`). The first three stages mix the rows of ``8 x 8`` identity
blocks layer by layer (:func:`_first_stages`); stages 4 to 6 are a top group alone. The batch is
processed in chunks of :data:`CHUNK_ELEMENTS` per ``N x N`` buffer, so every workspace is reused
from the allocator's heap and mostly stays in cache; only the returned permutation is large.

The backward is in closed form: it recomputes a chunk's forward (keeping the stage inputs ``X``
and the top groups' outputs, ``O(n^2)`` per row, never one matrix per layer), then walks the
stages in reverse with ``dM = dY X^T`` and ``dX = M^T dY`` for each product ``Y = M X``; the
cotangents of the small group matrices reach the unit weights in closed form (:func:`_group_vjp`,
the doubling of :func:`_group_matrix` in reverse, from the matrices and doubling products the
forward kept: about ``3 N G`` entries per row and stage). Double backward (and
``torch.compile`` / ``torch.func`` transforms, which cannot see through the chunked kernel) use
the plain autograd form, :func:`_staged_permutation`.

A few rows (top-k, quantiles, argmax) are instead pulled back from the output through the
transposed products in ``O(r N log^2 N)`` (:func:`some_rows`). The odd-even network mixes the rows
layer by layer.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .forward_mode import plain_eager
from .kernels import sigmoidal_kernel
from .memory import empty_paged

__all__ = [
    "Layer",
    "Network",
    "DIFFSORT_BITONIC",
    "DEFAULT_ART_LAMBDA",
    "get_network",
    "run",
    "full_permutation",
    "some_rows",
]

#: diffsort's bitonic layout (padding wires first, comparators that touch them skipped).
DIFFSORT_BITONIC = "_diffsort_bitonic"
#: Default exponent of the activation replacement trick of ``"logistic_phi"``.
DEFAULT_ART_LAMBDA = 0.25


class Layer(NamedTuple):
    """One layer: units pair wire ``start + 2d u + r`` with ``start + 2d u + d + r`` (``r < d``) for
    ``u < blocks``. ``sign`` (``None`` or ``(blocks, d)`` of +-1) is -1 on the units that put the
    minimum on the upper wire; ``fixed`` (``None`` or a bool ``(blocks, d)``) marks the units whose
    weight is ``fixed_value`` whatever the data (padding)."""

    start: int
    blocks: int
    d: int
    sign: torch.Tensor | None = None
    fixed: torch.Tensor | None = None
    fixed_value: torch.Tensor | None = None

    @property
    def stop(self) -> int:
        return self.start + 2 * self.d * self.blocks


class Network(NamedTuple):
    """``size`` wires, the real ones ``offset .. offset + n - 1``, and the layers (in order)."""

    size: int
    offset: int
    layers: list
    #: Bitonic layouts: stage ``k = 1, ..., log2(size)`` is the ``k`` layers of distances
    #: ``2^(k-1), ..., 1``; after it the permutation is block-diagonal in blocks of ``2^k``.
    staged: bool


_CACHE: dict = {}


def get_network(n: int, network: str, device, dtype) -> Network:
    """:func:`_build_network`, kept per ``(n, network, device, dtype)`` outside of compilation."""
    if torch.compiler.is_compiling():
        return _build_network(n, network, device, dtype)
    key = (n, network, device, dtype)
    if key not in _CACHE:
        if len(_CACHE) >= 64:
            _CACHE.clear()
        _CACHE[key] = _build_network(n, network, device, dtype)
    return _CACHE[key]


def _build_network(n: int, network: str, device, dtype) -> Network:
    r"""The layers of ``network`` on ``n`` wires (their constant tensors on ``device`` in ``dtype``).

    Bitonic: stage ``k`` merges blocks of ``2^k`` wires; unit ``(i, i + d)`` is descending when bit
    ``k`` of ``i`` is set (the lower half of the next merge sorts up, the upper half down). The
    default pads with sentinel wires at the end that behave like :math:`+\infty` (a unit with one
    swaps exactly when the sentinel sits where the minimum goes); diffsort's layout puts the padding
    wires first and skips every unit that touches one.
    """
    if network == "odd_even":
        layers = [Layer(i % 2, (n - i % 2) // 2, 1) for i in range(n) if (n - i % 2) // 2 > 0]
        return Network(n, 0, layers, False)
    size = 1 << max(0, (n - 1).bit_length())
    wire = torch.arange(size, device=device)
    diffsort = network == DIFFSORT_BITONIC
    pad = wire >= n  # where the sentinels are before each layer
    layers = []
    block = 2
    while block <= size:
        d = block // 2
        while d >= 1:
            lo_wire = wire.view(-1, 2, d)[:, 0]
            descending = (lo_wire & block) != 0
            sign = 1.0 - 2.0 * descending.to(dtype)
            fixed = value = None
            if diffsort and size > n:
                fixed = lo_wire < size - n
                value = torch.zeros((), dtype=dtype, device=device)
            elif size > n:
                pad_lo, pad_hi = pad.view(-1, 2, d).unbind(-2)
                both, either = pad_lo & pad_hi, pad_lo | pad_hi
                fixed, value = either, ((pad_lo != descending) & ~both).to(dtype)
                pad = torch.stack(
                    (torch.where(descending, either, both), torch.where(descending, both, either)), -2
                ).flatten()
            layers.append(Layer(0, size // (2 * d), d, sign, fixed, value))
            d //= 2
        block *= 2
    return Network(size, size - n if diffsort else 0, layers, True)


def _split(t: torch.Tensor, layer: Layer, tail: int):
    """The (lower, upper) wires of every unit of ``layer``, each ``(..., blocks, d, *tail)``; the
    wire axis of ``t`` is ``-(tail + 1)``."""
    axis = -(tail + 1)
    region = t.narrow(axis, layer.start, layer.stop - layer.start) if layer.stop - layer.start < t.shape[axis] else t
    return region.unflatten(axis, (layer.blocks, 2, layer.d)).unbind(-(tail + 2))


def _merge(t: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, layer: Layer, tail: int) -> torch.Tensor:
    """Inverse of :func:`_split`: ``t`` with the wires of ``layer`` replaced by ``lo`` and ``hi``."""
    axis = -(tail + 1)
    region = torch.stack((lo, hi), dim=-(tail + 2)).flatten(-(tail + 3), axis)
    if layer.stop - layer.start == t.shape[axis]:
        return region
    parts = (t.narrow(axis, 0, layer.start), region, t.narrow(axis, layer.stop, t.shape[axis] - layer.stop))
    return torch.cat([p for p in parts if p.shape[axis]], dim=axis)


def _step(z: torch.Tensor, diff: torch.Tensor, mode: str, distribution, art_lambda) -> torch.Tensor:
    """The relaxed step :math:`f(z)` of a unit, ``z = (a - b) / softness`` and ``diff = a - b``."""
    if mode != "smooth" or distribution in (None, "logistic"):
        return sigmoidal_kernel(z, mode)
    if distribution == "logistic_phi":
        lam = DEFAULT_ART_LAMBDA if art_lambda is None else art_lambda
        return torch.sigmoid(z / (diff.abs() + 1e-10).pow(lam))
    if distribution == "cauchy":
        return 0.5 + torch.atan(z) / math.pi
    if distribution == "gaussian":
        return torch.special.ndtr(z)
    if distribution == "reciprocal":
        return 0.5 + 0.5 * z / (2.0 + z.abs())
    # optimal: linear in the middle, reciprocal tails (the where never sees a division by zero).
    tail = 1.0 / (16.0 * z.abs().clamp_min(0.25))
    return torch.where(z > 0.25, 1.0 - tail, torch.where(z < -0.25, tail, z + 0.5))


def run(xt: torch.Tensor, tau, net: Network, mode: str, distribution=None, art_lambda=None, count=None):
    """The relaxed network on ``xt`` ``(..., n)`` with softness ``tau`` (broadcasting against every
    layer's ``(..., blocks, d)``): all its wires' values ``(..., N)`` (ascending on the real wires)
    and the weights ``s`` of every layer (each ``(..., blocks, d)``).

    ``count`` (``(..., 1)`` integers, optional): only the first ``count`` wires of a row are real,
    the others are sentinels (:func:`_row_sentinels`), and the row runs the network of ``count``
    wires, whose result lands on the first ``count`` wires.

    A bitonic network with the logistic step and a softness without gradient runs as one Function
    over all layers (:class:`_NetworkRun`); everything else layer by layer in plain autograd.
    """
    n = xt.shape[-1]
    # The padding wires hold zeros: their units' weights are fixed, so the value never matters.
    v = xt if net.size == n else torch.nn.functional.pad(xt, (net.offset, net.size - n - net.offset))
    sentinels = None if count is None else _row_sentinels(net, count)
    batch_shape = xt.shape[:-1]
    row_tau = _row_softness(tau, batch_shape, xt)
    if row_tau is not None and net.staged and net.layers and mode == "smooth" and distribution in (None, "logistic"):
        batch = math.prod(batch_shape)
        if sentinels is not None:
            sentinels = [tuple(_rows(t, batch_shape, batch) for t in pair) for pair in sentinels]
        flat, stacked = _NetworkRun.apply(v.reshape(batch, net.size), row_tau, net, sentinels)
        weights = [stacked[:, i].view(batch_shape + (layer.blocks, layer.d)) for i, layer in enumerate(net.layers)]
        return flat.view(batch_shape + (net.size,)), weights
    return _plain_run(v, tau, net, mode, distribution, art_lambda, sentinels)


def _plain_run(v, tau, net: Network, mode: str, distribution, art_lambda, sentinels):
    """:func:`run` layer by layer in plain autograd on the padded wires ``v`` ``(..., N)``."""
    weights = []
    for index, layer in enumerate(net.layers):
        lo, hi = _split(v, layer, 0)
        diff = lo - hi if layer.sign is None else (lo - hi) * layer.sign
        s = _step(diff / tau, diff, mode, distribution, art_lambda)
        if sentinels is not None:
            fixed, value = sentinels[index]
            s = torch.where(fixed, value.to(s.dtype), s)
        elif layer.fixed is not None:
            s = torch.where(layer.fixed, layer.fixed_value, s)
        # lerp is exact at s = 0 and s = 1, so saturated units move values bit for bit.
        v = _merge(v, torch.lerp(lo, hi, s), torch.lerp(hi, lo, s), layer, 0)
        weights.append(s)
    return v, weights


def _rows(t: torch.Tensor, batch_shape, batch: int) -> torch.Tensor:
    """``t`` ``(..., blocks, d)`` broadcast to ``batch_shape`` and flattened to ``(B, blocks, d)``."""
    return t.expand(batch_shape + t.shape[-2:]).reshape((batch,) + t.shape[-2:])


def _row_softness(tau, batch_shape, like: torch.Tensor):
    """``tau`` as a float or a ``(B, 1, 1)`` tensor for :class:`_NetworkRun`; ``None`` where the
    Function does not serve (a softness with gradient or not one per row, a transform, a dtype
    other than float32/float64)."""
    if like.dtype not in (torch.float32, torch.float64) or not _eager(like):
        return None
    if not isinstance(tau, torch.Tensor):
        return float(tau)
    if tau.requires_grad or not _eager(tau) or tau.dim() > len(batch_shape) + 2:
        return None
    rows = batch_shape + (1, 1)
    try:
        if torch.broadcast_shapes(tau.shape, rows) != rows:
            return None
    except RuntimeError:
        return None
    return tau.to(like.dtype).expand(rows).reshape(-1, 1, 1)


_BIASES: dict = {}


def _biases(net: Network) -> list:
    """Per layer of a bitonic ``net``: ``None``, or ``+-inf`` on the padding units (whose weight
    is then exactly 1 or 0) and 0 elsewhere, added to the scaled differences. Kept per network."""
    key = id(net)
    if key not in _BIASES or _BIASES[key][0] is not net:
        if len(_BIASES) >= 64:
            _BIASES.clear()
        biases = []
        for layer in net.layers:
            bias = None
            if layer.fixed is not None:
                inf = torch.full_like(layer.sign, math.inf)
                bias = torch.where(layer.fixed, torch.where(layer.fixed_value > 0.5, inf, -inf), 0.0)
            biases.append(bias)
        _BIASES[key] = (net, biases)
    return _BIASES[key][1]


class _NetworkRun(torch.autograd.Function):
    r"""All layers of a bitonic network with the logistic step: the padded wires ``(B, N)`` and
    the softness (a float or ``(B, 1, 1)``, no gradient) give the output wires ``(B, N)`` and
    every unit's weight ``(B, T, N / 2)``.

    A unit with wires ``a, b``, difference :math:`\delta = a - b` and :math:`s = \sigma(c\,\delta)`
    (:math:`c` = sign / softness) returns ``lerp(a, b, s)``, ``lerp(b, a, s)``. The forward keeps
    :math:`s` and :math:`\delta` of every layer (``O(T N)`` per row); the backward walks the layers
    in reverse: with the output cotangents :math:`\bar a, \bar b` and the weight's own
    :math:`\bar s`, :math:`e = ((\bar b - \bar a)\,\delta + \bar s)\, s (1 - s)\, c`, then
    :math:`\bar a \leftarrow (1 - s)\,\bar a + s\,\bar b + e` and
    :math:`\bar b \leftarrow s\,\bar a + (1 - s)\,\bar b - e`.

    The wires are held wire-major, ``(N, B)``: a layer's lower and upper wires are then two views
    whose inner runs are ``d B`` contiguous entries, so no op walks a stride-2 axis; two wire
    buffers alternate and every op writes into its buffer in place. Double backward
    differentiates :func:`_plain_run`.
    """

    @staticmethod
    def forward(ctx, wires, tau, net, sentinels):
        batch, size = wires.shape
        layers = net.layers
        weights = wires.new_empty(len(layers), size // 2, batch)
        diffs = torch.empty_like(weights)
        cur = wires.t().clone(memory_format=torch.contiguous_format)  # never a view of the input
        nxt = torch.empty_like(cur)
        inv_tau = 1.0 / tau if not isinstance(tau, torch.Tensor) else (1.0 / tau).view(1, 1, batch)
        coefs = [layer.sign.unsqueeze(-1) * inv_tau for layer in layers]
        biases = [None if bias is None else bias.unsqueeze(-1) for bias in _biases(net)]
        masks = None if sentinels is None else [tuple(t.permute(1, 2, 0) for t in pair) for pair in sentinels]
        for i, (layer, coef, bias) in enumerate(zip(layers, coefs, biases)):
            shape = (layer.blocks, layer.d, batch)
            lo, hi = cur.view(layer.blocks, 2, layer.d, batch).unbind(1)
            diff, s = diffs[i].view(shape), weights[i].view(shape)
            torch.sub(lo, hi, out=diff)
            if bias is None:
                torch.mul(diff, coef, out=s)
            else:
                torch.addcmul(bias, diff, coef, out=s)
            s.sigmoid_()
            if masks is not None:
                fixed, value = masks[i]
                torch.where(fixed, value.to(s.dtype), s, out=s)
            new_lo, new_hi = nxt.view(layer.blocks, 2, layer.d, batch).unbind(1)
            # lerp is exact at s = 0 and s = 1, so saturated units move values bit for bit.
            torch.lerp(lo, hi, s, out=new_lo)
            torch.lerp(hi, lo, s, out=new_hi)
            cur, nxt = nxt, cur
        ctx.net, ctx.tau, ctx.sentinels, ctx.coefs, ctx.masks = net, tau, sentinels, coefs, masks
        ctx.save_for_backward(wires, weights, diffs)
        ctx.set_materialize_grads(False)
        return cur.t(), weights.permute(2, 0, 1)

    @staticmethod
    def backward(ctx, grad_wires, grad_weights):
        wires, weights, diffs = ctx.saved_tensors
        net = ctx.net
        if torch.is_grad_enabled():  # double backward: the same layers in plain autograd
            with torch.enable_grad():
                v, w = _plain_run(wires, ctx.tau, net, "smooth", None, None, ctx.sentinels)
                stacked = _stacked(w, wires.shape[0])
            outs = [(o, g) for o, g in ((v, grad_wires), (stacked, grad_weights)) if g is not None]
            grad = torch.autograd.grad([o for o, _ in outs], wires, [g for _, g in outs], create_graph=True)[0]
            return grad, None, None, None
        batch, size = wires.shape
        buffers = [wires.new_empty(size, batch) for _ in range(2)]
        cur = buffers[1].zero_() if grad_wires is None else buffers[1].copy_(grad_wires.t())
        grad_weights = None if grad_weights is None else grad_weights.permute(1, 2, 0)
        for i in reversed(range(len(net.layers))):
            layer, coef = net.layers[i], ctx.coefs[i]
            shape = (layer.blocks, layer.d, batch)
            ga, gb = cur.view(layer.blocks, 2, layer.d, batch).unbind(1)
            s, diff = weights[i].view(shape), diffs[i].view(shape)
            e = gb - ga
            e.mul_(diff)
            if grad_weights is not None:
                e.add_(grad_weights[i].view(shape))
            e.mul_(torch.addcmul(s, s, s, value=-1.0)).mul_(coef)
            if ctx.masks is not None:
                e.masked_fill_(ctx.masks[i][0], 0.0)
            nxt = buffers[i % 2] if buffers[i % 2] is not cur else buffers[(i + 1) % 2]
            new_a, new_b = nxt.view(layer.blocks, 2, layer.d, batch).unbind(1)
            torch.lerp(ga, gb, s, out=new_a)
            torch.lerp(gb, ga, s, out=new_b)
            new_a.add_(e)
            new_b.sub_(e)
            cur = nxt
        return cur.t(), None, None, None


def _row_sentinels(net: Network, count: torch.Tensor) -> list:
    r"""Per-row fixed unit weights when only the first ``count`` wires of a row are real.

    One ``(fixed, value)`` pair of bool tensors (each of the layer's ``(..., blocks, d)`` shape)
    per layer. A unit is fixed when it touches a sentinel (a wire ``>= count``, which behaves like
    :math:`+\infty`: an exact swap exactly when the sentinel sits where the minimum goes, decided
    from ``count`` alone) or when the layer is not part of the row's own network: the bitonic
    network of ``2^m'`` wires (``m' = ceil(log2 count)``) is the first ``m' (m' + 1) / 2`` layers
    of the one of ``N`` wires restricted to its first block, and the odd-even network of ``count``
    wires is its first ``count`` layers; every later layer is the identity for the row.
    """
    wire = torch.arange(net.size, device=count.device)
    pad = wire >= count  # (..., N): where the row's sentinels are before each layer
    if net.staged:
        powers = torch.ones((), dtype=count.dtype, device=count.device) << torch.arange(
            net.size.bit_length() - 1, device=count.device
        )
        stages = (count > powers).sum(-1, keepdim=True)  # (..., 1): m' = ceil(log2 count)
    units = []
    for number, layer in enumerate(net.layers):
        if net.staged:  # stage k holds the layers k (k - 1) / 2 .. k (k + 1) / 2 - 1
            active = (math.isqrt(8 * number + 1) + 1) // 2 <= stages
        else:
            active = number < count
        pad_lo, pad_hi = _split(pad, layer, 0)
        descending = torch.zeros((), dtype=torch.bool, device=count.device) if layer.sign is None else layer.sign < 0
        both, either = pad_lo & pad_hi, pad_lo | pad_hi
        unit_active = active.unsqueeze(-1)  # (..., 1, 1) against (..., blocks, d)
        units.append((either | ~unit_active, (pad_lo != descending) & ~both & unit_active))
        moved = _merge(pad, torch.where(descending, either, both), torch.where(descending, both, either), layer, 0)
        pad = torch.where(active, moved, pad)
    return units


def _mix(lo: torch.Tensor, hi: torch.Tensor, s: torch.Tensor):
    """``((1 - s) lo + s hi, s lo + (1 - s) hi)`` with one shared difference.

    Autograd keeps only that difference (half a state), where ``lerp`` would keep both inputs; the
    result is still exact for the 0/1 entries of a hard permutation.
    """
    step = s * (hi - lo)
    return lo + step, hi - step


#: Most layers of a bitonic stage multiplied into one small matrix before it is applied to ``P``.
_GROUP_BITS = 5


def _groups(k: int):
    """The bits ``k - 1, ..., 0`` of stage ``k`` in runs of at most :data:`_GROUP_BITS`, highest first."""
    count = -(-k // _GROUP_BITS)
    sizes = [k // count + (1 if i < k % count else 0) for i in range(count)]
    runs, top = [], k
    for size in sizes:
        runs.append((top - size, top))
        top -= size
    return runs


def _group_matrix(stage_weights, k: int, lo: int, hi: int, batch: int, size: int, olds=None) -> torch.Tensor:
    """The product of the layers of bits ``hi - 1, ..., lo`` of stage ``k``: ``(B, K, H, L, G, G)``.

    Wire ``i`` of block ``K`` of ``2^k`` wires is ``(h, j, l)`` with ``j`` the ``G = 2^(hi - lo)``
    values of the group's bits; every ``(K, h, l)`` has its own ``G x G`` matrix. Built by doubling:
    the layers of bits ``lo, ..., t - 1`` (applied after bit ``t``) act within the two halves of
    bit ``t``, so with bit ``t`` the product becomes ``[[A (1 - s), A s], [B s, B (1 - s)]]``, the
    halves' products ``A``, ``B`` scaled column by column with the weights ``s`` of bit ``t``:
    two products per half and bit, about ``2 G^2`` entries written per matrix in all. With
    ``olds`` (a list), the product before every bit is appended to it (for :func:`_group_vjp`).
    """
    mat = None  # (B, K, H, 2a, L, c, c): the product of bits lo .. t - 1
    for t in range(lo, hi):
        s = _bit_weights(stage_weights, k, lo, hi, t, batch, size)  # (B, K, H, a, L, c)
        if olds is not None:
            olds.append(mat)
        if mat is None:  # c = 1: the bit's units themselves, (B, K, H, a, L, 2, 2)
            s = s.squeeze(-1)
            mat = torch.stack((torch.stack((1 - s, s), -1), torch.stack((s, 1 - s), -1)), -2)
            continue
        above, c = s.shape[-3], s.shape[-1]
        old = mat.view(s.shape[:-3] + (above, 2) + s.shape[-2:-1] + (c, c))
        halves, s = old.unbind(4), s.unsqueeze(-2)  # each (B, K, H, a, L, r, q)
        if plain_eager(s) and not (torch.is_grad_enabled() and (s.requires_grad or mat.requires_grad)):
            new = mat.new_empty(s.shape[:-2] + (2, c, 2, c))  # (B, K, H, a, L, u, r, v, q)
            for u in range(2):
                torch.mul(halves[u], s, out=new[..., u, :, 1 - u, :])
                torch.sub(halves[u], new[..., u, :, 1 - u, :], out=new[..., u, :, u, :])
        else:  # the same entries without out= (autograd, transforms)
            cross = [half * s for half in halves]
            stay = [half - x for half, x in zip(halves, cross)]
            rows = (torch.stack((stay[0], cross[0]), -2), torch.stack((cross[1], stay[1]), -2))
            new = torch.stack(rows, -4)
        mat = new
    g = 1 << (hi - lo)
    return mat.reshape(batch, size >> k, 1 << (k - hi), 1 << lo, g, g)


def _bit_weights(stage_weights, k, lo, hi, t, batch, size) -> torch.Tensor:
    """The weights of bit ``t`` of a group of stage ``k`` as ``(B, K, H, a, L, c)``."""
    above, c = 1 << (hi - t - 1), 1 << (t - lo)
    s = stage_weights[k - 1 - t].reshape(batch, size >> k, 1 << (k - hi), above, c, 1 << lo)
    return s.transpose(-2, -1)


def _group_vjp(stage_weights, k: int, lo: int, hi: int, batch: int, size: int, dmat, grads, olds=None) -> None:
    r"""The vector-Jacobian product of :func:`_group_matrix` in closed form: the cotangent ``dmat``
    ``(B, K, H, L, G, G)`` of the group's product, pulled back to the weights of its bits, each
    added into ``grads[k - 1 - t]`` (shaped like ``stage_weights``, or ``None`` to be set).

    Walks the doubling in reverse. Bit ``t`` made ``new[(u, r), (u, q)] = old_u[r, q] (1 - s_q)``
    and ``new[(u, r), (1 - u, q)] = old_u[r, q] s_q``; with ``D_u = d new[(u, .), (1 - u, .)] -
    d new[(u, .), (u, .)]``: ``d old_u = d new[(u, .), (u, .)] + s D_u`` and
    ``d s_q = sum_{u, r} old_u[r, q] D_u[r, q]``. ``olds``: the products before every bit (from
    :func:`_group_matrix`), recomputed when ``None``.
    """
    if olds is None:
        olds = []
        with torch.no_grad():
            _group_matrix(stage_weights, k, lo, hi, batch, size, olds)
    d = dmat
    for t in reversed(range(lo, hi)):
        s = _bit_weights(stage_weights, k, lo, hi, t, batch, size)  # (B, K, H, a, L, c)
        above, c = s.shape[-3], s.shape[-1]
        dnew = d.reshape(s.shape[:-1] + (2, c, 2, c))  # (B, K, H, a, L, u, r, v, q)
        if olds[t - lo] is None:  # c = 1: old is 1
            pair = dnew[..., 0, :, 1, :] + dnew[..., 1, :, 0, :]
            ds = (pair - dnew[..., 0, :, 0, :] - dnew[..., 1, :, 1, :]).squeeze(-2)
        else:
            old = olds[t - lo].view(s.shape[:-3] + (above, 2) + s.shape[-2:-1] + (c, c))
            prev = dnew.new_empty(old.shape)  # the layout of the previous product
            s_rows = s.unsqueeze(-2)
            ds = None
            for u in range(2):
                stay = dnew[..., u, :, u, :]
                diff = dnew[..., u, :, 1 - u, :] - stay  # (B, K, H, a, L, r, q)
                torch.addcmul(stay, diff, s_rows, out=prev[:, :, :, :, u])
                part = diff.mul_(old[:, :, :, :, u]).sum(-2)
                ds = part if ds is None else ds.add_(part)
            d = prev
        target = stage_weights[k - 1 - t]
        ds = ds.transpose(-2, -1).reshape(target.shape)
        i = k - 1 - t
        grads[i] = ds if grads[i] is None else grads[i] + ds


def _stage_weights(stacked, k: int):
    """The layers of stage ``k`` from ``(B, T, N / 2)`` stacked weights (or the list of the ``T``
    layers' ``(B, N / 2)``): ``k`` tensors, the one of distance ``2^t`` shaped ``(B, N / 2^(t+1), 2^t)``."""
    layers = stacked if isinstance(stacked, list) else stacked.unbind(1)
    rows, size = layers[0].shape[0], 2 * layers[0].shape[-1]
    first = k * (k - 1) // 2
    return [layers[first + i].view(rows, size >> (k - i), 1 << (k - 1 - i)) for i in range(k)]


def _staged_permutation(stacked: torch.Tensor, size: int) -> torch.Tensor:
    """All of ``P`` ``(B, N, N)`` of a bitonic network in plain autograd, stage by stage.

    Before stage ``k`` the permutation is ``N / 2^(k-1)`` diagonal blocks; the stage's layers are
    multiplied, a few bits at a time (:func:`_groups`), into small matrices that are applied to the
    rows of each block with one batched matrix product. The first group of a stage reads the two
    half blocks directly (never the zeros between them).
    """
    batch = stacked.shape[0]
    perm = None  # (B, N / C, C, C) after each stage
    for k in range(1, size.bit_length()):
        stage_weights = _stage_weights(stacked, k)
        block = 1 << k
        blocks = size // block
        for lo, hi in _groups(k):
            mat = _group_matrix(stage_weights, k, lo, hi, batch, size)  # (B, K, H, L, G, G)
            g, tails = 1 << (hi - lo), 1 << lo
            if hi == k:  # the top bits: the input is the two half blocks of the previous stage
                if perm is None:
                    halves = stacked.new_ones(batch, blocks, 1, 2, 1, 1, 1)
                else:
                    halves = perm.view(batch, blocks, 2, g // 2, tails, block // 2).transpose(-3, -2).unsqueeze(2)
                mat = mat.unflatten(-1, (2, g // 2)).movedim(-2, 3)  # (B, K, 1, 2, L, G, G/2)
                out = torch.matmul(mat, halves)  # (B, K, 1, 2, L, G, C/2)
                perm = out.squeeze(2).permute(0, 1, 4, 3, 2, 5).reshape(batch, blocks, block, block)
            else:
                rows = perm.view(batch, blocks, 1 << (k - hi), g, tails, block).transpose(-3, -2)
                perm = torch.matmul(mat, rows).transpose(-3, -2).reshape(batch, blocks, block, block)
    return perm.reshape(batch, size, size)


def some_rows(wires: torch.Tensor, net: Network, weights, like: torch.Tensor) -> torch.Tensor:
    """Rows ``wires`` (an index tensor ``(r,)`` of output wires, or ``(..., r)`` per row) of ``P``
    ``(..., r, N)``.

    The one-hot rows are pulled back through the layers in reverse order: every layer matrix is
    symmetric, so a row vector is mixed exactly like the wires. Work ``O(r N L)``; a bitonic
    network applies the transposed group matrices of :func:`_group_matrix` instead of single layers.
    """
    rows = torch.nn.functional.one_hot(wires, net.size).to(like.dtype)  # (..., r, N)
    if not weights:
        return rows
    r = rows.shape[-2]
    if net.staged:
        size, batch_shape = net.size, weights[0].shape[:-2]
        batch = math.prod(batch_shape)
        stacked = _stacked(weights, batch)
        # (B, N, r): P^T = M_1 ... M_L, M_L first; shared rows are broadcast, not copied
        cols = rows.mT.expand(batch, size, r) if rows.dim() == 2 else rows.reshape(batch, r, size).mT
        for k in range(size.bit_length() - 1, 0, -1):
            stage_weights = _stage_weights(stacked, k)
            for lo, hi in reversed(_groups(k)):
                mat = _group_matrix(stage_weights, k, lo, hi, batch, size).mT
                view = cols.reshape(batch, size >> k, 1 << (k - hi), 1 << (hi - lo), 1 << lo, r).transpose(-3, -2)
                cols = torch.matmul(mat, view).transpose(-3, -2).reshape(batch, size, r)
        return cols.mT.reshape(batch_shape + (r, size))
    rows = rows.expand(weights[0].shape[:-2] + (r, net.size))
    for layer, s in zip(reversed(net.layers), reversed(weights)):
        lo, hi = _split(rows, layer, 0)  # (..., r, blocks, d)
        rows = _merge(rows, *_mix(lo, hi, s.unsqueeze(-3)), layer, 0)
    return rows


# ----------------------------------------------------------------------------------------------
# The full permutation of a bitonic network: grouped layers, cache-sized chunks, closed-form VJP
# ----------------------------------------------------------------------------------------------

#: Elements of one ``N x N`` buffer per chunk of rows (16 MiB in float32): the chunk's workspace
#: stays in the cache hierarchy and in the allocator's heap instead of being faulted in afresh.
CHUNK_ELEMENTS = 1 << 22


#: Bits of every stage's top group past the sixth (at most ``G = 32``): each such stage then costs
#: ``2^(m - 4)`` matrix products per row, whatever its size.
_TOP_BITS = 5
#: Stages formed together by mixing the rows of the identity layer by layer (:func:`_first_stages`,
#: blocks of ``2^3``); the next ones up to the sixth are a top group alone (no low group).
_FIRST_BITS = 3


def _low_bits(k: int) -> int:
    """The bits of stage ``k``'s low group (0: the stage is its top group alone). Stage 6 is one
    top group of ``G = 64``: a low group of one bit would be ``2 x 2`` products, which run at about
    1 GFLOP/s in ``bmm`` (13 ms forward at 64 x 1024 against about 3 ms for the larger top)."""
    return 0 if k <= _TOP_BITS + 1 else k - _TOP_BITS


def _first_stages(weights, k0: int) -> torch.Tensor:
    """The permutation after stages ``1 .. k0``: ``(R, N / 2^k0, 2^k0, 2^k0)``, block diagonal.

    Every layer mixes the rows of the blocks (initially identities) with its unit weights; in plain
    autograd, as the blocks are small (``N 2^k0`` entries per row).
    """
    like = weights[0] if isinstance(weights, list) else weights
    rows, size, block = like.shape[0], 2 * like.shape[-1], 1 << k0
    perm = torch.eye(block, dtype=like.dtype, device=like.device).expand(rows, size >> k0, block, block)
    for k in range(1, k0 + 1):
        for i, s in enumerate(_stage_weights(weights, k)):
            d = 1 << (k - 1 - i)
            lo, hi = perm.reshape(rows, size >> k0, block // (2 * d), 2, d, block).unbind(3)
            s = s.reshape(rows, size >> k0, block // (2 * d), d, 1)
            perm = torch.stack(_mix(lo, hi, s), dim=3).view(rows, size >> k0, block, block)
    return perm


def _top_matrices(stage_weights, k, low, rows, size, olds=None):
    """The top group of stage ``k`` split by the half block its columns read: ``(L, 2, R K, G, G/2)``.

    ``G = 2^(k - low)``, ``L = 2^low``; item ``(l, t, (r, K))`` maps the ``G / 2`` wires
    ``(j', l)`` of half ``t`` of block ``K`` to the ``G`` wires ``(j, l)`` of the block.
    """
    mat = _group_matrix(stage_weights, k, low, k, rows, size, olds)  # (R, K, 1, L, G, G)
    blocks, lanes, g = size >> k, 1 << low, 1 << (k - low)
    mat = mat.view(rows, blocks, lanes, g, 2, g // 2).permute(2, 4, 0, 1, 3, 5)
    return mat.reshape(lanes, 2, rows * blocks, g, g // 2)


def _low_matrices(stage_weights, k, low, rows, size, olds=None):
    """The low group of stage ``k``: ``(R K G, L, L)``, one per ``(block, j)``."""
    mat = _group_matrix(stage_weights, k, 0, low, rows, size, olds)  # (R, K, G, 1, L, L)
    lanes = 1 << low
    return mat.reshape(-1, lanes, lanes)


def _groups_vjp(weights, size: int, cot_groups, grads, olds) -> None:
    """The cotangents of every stage's top and low group matrices (as :func:`_chunk_matrices`
    lays them out) pulled back to the layers' weights, added into ``grads`` (one per layer);
    ``olds`` are the doubling products that :func:`_chunk_matrices` kept."""
    rows = weights.shape[0]
    for k, (dtop, dlow), (top_olds, low_olds) in zip(range(_FIRST_BITS + 1, size.bit_length()), cot_groups, olds):
        stage_weights = _stage_weights(weights, k)
        low, blocks = _low_bits(k), size >> k
        lanes, g = 1 << low, 1 << (k - low)
        stage_grads = [None] * k
        dtop = dtop.view(lanes, 2, rows, blocks, g, g // 2).permute(2, 3, 0, 4, 1, 5)
        dtop = dtop.reshape(rows, blocks, 1, lanes, g, g)
        _group_vjp(stage_weights, k, low, k, rows, size, dtop, stage_grads, top_olds)
        if dlow is not None:
            dlow = dlow.view(rows, blocks, g, 1, lanes, lanes)
            _group_vjp(stage_weights, k, 0, low, rows, size, dlow, stage_grads, low_olds)
        first = k * (k - 1) // 2
        for i, grad in enumerate(stage_grads):
            grads[first + i] = grad.reshape(rows, size // 2)


def _half_slabs(q, low, t):
    """Rows ``(j', l)`` of half ``t`` of every block of the contiguous compact ``q``
    ``(R, 2K, h, h)``, by lane: a strided view ``(R K, L, G / 2, h)``."""
    rows, half = q.shape[0], q.shape[-1]
    lanes = 1 << low
    return q.view(rows * (q.shape[1] // 2), 2, half // lanes, lanes, half)[:, t].transpose(1, 2)


def _bmm4(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, space) -> None:
    """``out = a @ b`` for ``(R K, L, ., .)`` strided views: one batched product per block
    ``(r, K)`` when there are fewer blocks than lanes (the last stages), else one per lane."""
    if a.shape[0] < a.shape[1]:
        for i in range(a.shape[0]):
            _bmm_into(a[i], b[i], out[i], space)
    else:
        for i in range(a.shape[1]):
            _bmm_into(a[:, i], b[:, i], out[:, i], space)


class _Workspace:
    """Buffers reused by the chunks of one call, one per name (sized by the first, largest chunk):
    fresh large allocations would be faulted in (zeroed by the system) for every chunk."""

    def __init__(self, like: torch.Tensor):
        self.like, self.buffers = like, {}

    def empty(self, name, *shape) -> torch.Tensor:
        numel = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < numel:
            buffer = self.buffers[name] = self.like.new_empty(numel)
        return buffer[:numel].view(shape)


def _chunk_matrices(weights, size: int, olds=None):
    """The first stages' blocks (:func:`_first_stages`) and, for every later stage, its top and
    low group matrices (:func:`_top_matrices`, :func:`_low_matrices`), from ``(R, T, N / 2)``
    (or the list of the layers' ``(R, N / 2)``). With ``olds`` (a list), every stage appends
    the doubling products of its two groups (for :func:`_groups_vjp`)."""
    rows, m = (weights[0] if isinstance(weights, list) else weights).shape[0], size.bit_length() - 1
    first = _first_stages(weights, min(m, _FIRST_BITS))
    groups = []
    for k in range(_FIRST_BITS + 1, m + 1):
        stage_weights = _stage_weights(weights, k)
        low = _low_bits(k)
        kept = None if olds is None else ([], [])
        top = _top_matrices(stage_weights, k, low, rows, size, None if kept is None else kept[0])
        low_mats = _low_matrices(stage_weights, k, low, rows, size, None if kept is None else kept[1]) if low else None
        groups.append((top, low_mats))
        if olds is not None:
            olds.append(kept)
    return first, groups


def _rows_of(first, groups, size, start, stop):
    """The matrices of :func:`_chunk_matrices` for the batch rows ``start .. stop - 1`` (views)."""
    sliced = []
    for k, (top, low_mats) in enumerate(groups, _FIRST_BITS + 1):
        blocks, g = size >> k, 1 << (k - _low_bits(k))
        if low_mats is not None:
            low_mats = low_mats[start * blocks * g : stop * blocks * g]
        sliced.append((top[:, :, start * blocks : stop * blocks], low_mats))
    return first[start:stop], sliced


#: Largest strided output matrix that a batched product writes directly: ``bmm`` runs MKL's batched
#: kernel only into a contiguous output, and else calls one small product per matrix, so the small
#: ones go through a contiguous buffer and one copy.
_STRIDED_OUT = 1 << 13


def _bmm_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, space) -> None:
    """``torch.bmm(a, b, out=out)`` for a strided view ``out``, through a buffer when it is small."""
    if out.is_contiguous() or out.shape[-1] * out.shape[-2] > _STRIDED_OUT:
        torch.bmm(a, b, out=out)
    else:
        buffer = space.empty("bmm", *out.shape)
        torch.bmm(a, b, out=buffer)
        out.copy_(buffer)


def _chunk_forward(first, groups, size, out, space, keep=None):
    """The permutation of one chunk of ``R`` rows into ``out`` ``(R, N, N)``.

    ``first`` and ``groups`` come from :func:`_chunk_matrices`. Stage ``k`` maps the compact
    block-diagonal ``q`` ``(R, N / 2^(k-1), 2^(k-1), 2^(k-1))`` to ``(R, N / 2^k, 2^k, 2^k)``:
    the top group (one batched product per lane ``l`` and half ``t``, reading the half blocks
    directly) into ``mid`` laid out ``(R, K, G, L, 2^k)``, then the low group (one batched
    product) into the next ``q``; a stage without a low group writes its top group's products
    into the next ``q`` directly (``L = 1``: the layouts agree). With ``keep`` (a list), the stage
    inputs and the ``mid`` buffers are appended to it for the backward, and the last product is
    skipped.
    """
    rows = first.shape[0]
    m = size.bit_length() - 1
    q = first
    if not groups and keep is None:
        out.copy_(q.view(rows, size, size))
    for k, (top, low_mats) in enumerate(groups, _FIRST_BITS + 1):
        block, low = 1 << k, _low_bits(k)
        lanes, g, half = 1 << low, 1 << (k - low), block // 2
        # Without keep, two stage buffers alternate; with it, every stage keeps its own.
        if k < m:
            nxt = space.empty(("q", k if keep is not None else k % 2), rows, size >> k, block, block)
        else:  # the backward (keep) never needs the last product
            nxt = out.view(rows, 1, size, size) if keep is None else None
        if low:
            mid = space.empty(("mid", k if keep is not None else 0), rows, size >> k, g, lanes, block)
        else:
            mid = nxt
        if keep is not None:
            keep.append((q, mid))
        if mid is None:
            break
        mid_halves = mid.view(rows * (size >> k), g, lanes, 2, half)
        for t in range(2):  # (R K, L, G, G / 2) @ (R K, L, G / 2, h) into (R K, L, G, h)
            _bmm4(top[:, t].transpose(0, 1), _half_slabs(q, low, t), mid_halves[:, :, :, t].transpose(1, 2), space)
        if nxt is not None and low:
            torch.bmm(low_mats, mid.view(-1, lanes, block), out=nxt.view(-1, lanes, block))
        q = nxt
    return out


def _chunk_backward(first, groups, cots, size, grad, space):
    """The cotangents of one chunk's matrices (:func:`_rows_of` views of :func:`_chunk_matrices`,
    detached) from the cotangent ``grad`` ``(R, N, N)`` (contiguous) of its permutation, written
    into ``cots`` (the same views of the cotangent tensors).

    Recomputes the chunk's forward (keeping the stage inputs and the top groups' outputs), then
    walks the stages backwards: for a product ``Y = M X`` the cotangents are ``dM = dY X^T`` and
    ``dX = M^T dY``.
    """
    rows = first.shape[0]
    kept = []
    _chunk_forward(first, groups, size, None, space, keep=kept)
    dq = grad.view(rows, 1, size, size)
    for k in range(size.bit_length() - 1, _FIRST_BITS, -1):
        q, mid = kept[k - _FIRST_BITS - 1]
        top, low_mats = groups[k - _FIRST_BITS - 1]
        dtop, dlow = cots[1][k - _FIRST_BITS - 1]
        block, low = 1 << k, _low_bits(k)
        lanes, g, half = 1 << low, 1 << (k - low), block // 2
        if low:
            dy = dq.view(-1, lanes, block)
            torch.bmm(dy, mid.view(-1, lanes, block).transpose(1, 2), out=dlow)  # dY X^T, X = (R K G, L, 2^k)
            dmid = space.empty("dmid", rows * (size >> k) * g, lanes, block)  # rows (j, l)
            torch.bmm(low_mats.transpose(1, 2), dy, out=dmid)
        else:  # the top group wrote the stage's output itself
            dmid = dq
        dmid = dmid.reshape(rows * (size >> k), g, lanes, 2, half)
        dq_prev = space.empty(("dq", k % 2), rows, size >> (k - 1), half, half)
        for t in range(2):
            dy = dmid[:, :, :, t].transpose(1, 2)  # (R K, L, G, h)
            top_t = top[:, t].transpose(0, 1)  # (R K, L, G, G / 2)
            _bmm4(dy, _half_slabs(q, low, t).transpose(-1, -2), dtop[:, t].transpose(0, 1), space)
            _bmm4(top_t.transpose(-1, -2), dy, _half_slabs(dq_prev, low, t), space)
        dq = dq_prev
    cots[0].copy_(dq.view(cots[0].shape))


class KeptFirst:
    """A row's kept entries gathered in front, in their order (the network's real wires), with
    the excluded ones after as sentinels; ``top`` excluded entries sort before the kept ones.

    The excluded entries' scores were pushed beyond the kept ones on their own side
    (:mod:`softtorch._core.masking`), so ``top`` counts those below the kept ones. Sorted slot
    ``i`` (ascending) of the row is its network's wire ``(i - top) mod n``: the kept slots
    ``top .. top + count - 1`` are wires ``0 .. count - 1``.
    """

    def __init__(self, xt: torch.Tensor, kept: torch.Tensor):
        kept = kept.to(xt.device)
        self.order = torch.argsort((~kept).to(torch.int8), dim=-1, stable=True)
        self.count = kept.sum(-1, keepdim=True)
        highest = xt.detach().masked_fill(~kept, float("-inf")).amax(-1, keepdim=True)
        self.top = (~kept & (xt.detach() < highest)).sum(-1, keepdim=True)

    def gather(self, xt: torch.Tensor) -> torch.Tensor:
        return xt.gather(-1, self.order)

    def wires(self, slots: torch.Tensor) -> torch.Tensor:
        """The wires ``(..., r)`` of ascending sorted ``slots`` ``(r,)``."""
        return torch.remainder(slots - self.top, self.order.shape[-1])

    def columns_back(self, p: torch.Tensor) -> torch.Tensor:
        """Rows ``(..., r, n)`` over the gathered entries, back over the original ones."""
        index = self.order.unsqueeze(-2).expand(p.shape)
        return torch.zeros_like(p).scatter(-1, index, p)


class _BitonicPermutation(torch.autograd.Function):
    """The real block ``(B, n, n)`` of the permutation of a bitonic network from its unit weights
    ``(B, T, N / 2)`` (every layer's, in order), chunk by chunk (see the module docstring)."""

    @staticmethod
    def forward(ctx, weights, size, offset, n):
        batch = weights.shape[0]
        out = empty_paged(weights, (batch, size, size))  # 2 MiB pages: see _core/memory.py
        step = max(1, CHUNK_ELEMENTS // (size * size))
        space = _Workspace(weights)
        olds = []  # kept for the backward, with the matrices: about 3 N G entries per row and stage
        matrices = _chunk_matrices(weights, size, olds)
        for start in range(0, batch, step):
            first, groups = _rows_of(*matrices, size, start, start + step)
            _chunk_forward(first, groups, size, out[start : start + step], space)
        ctx.size, ctx.offset, ctx.n, ctx.groups, ctx.olds = size, offset, n, matrices[1], olds
        ctx.save_for_backward(weights)
        return out[:, offset : offset + n, offset : offset + n]

    @staticmethod
    def backward(ctx, grad):
        (weights,) = ctx.saved_tensors
        size, offset, n = ctx.size, ctx.offset, ctx.n
        real = slice(offset, offset + n)
        if torch.is_grad_enabled():  # double backward: the same products in plain autograd
            perm = _staged_permutation(weights, size)[:, real, real]
            return torch.autograd.grad(perm, weights, grad, create_graph=True)[0], None, None, None
        # The first stages in autograd (small blocks), one leaf per layer; the groups in closed form.
        layers = list(weights.unbind(1))
        first_layers = min(m := size.bit_length() - 1, _FIRST_BITS) * (min(m, _FIRST_BITS) + 1) // 2
        leaves = [layer.detach().requires_grad_() for layer in layers[:first_layers]]
        with torch.enable_grad():
            first = _first_stages(leaves + layers[first_layers:], min(m, _FIRST_BITS))
        groups = ctx.groups
        cot_first = first.new_empty(first.shape)
        cot_groups = [tuple(None if mat is None else mat.new_empty(mat.shape) for mat in pair) for pair in groups]
        detached = (first.detach(), groups)
        cot_all = (cot_first, cot_groups)
        step = max(1, CHUNK_ELEMENTS // (size * size))
        space = _Workspace(weights)
        for start in range(0, weights.shape[0], step):
            chunk = grad[start : start + step]
            if n == size:
                padded = chunk.contiguous()
            else:  # only the padding rows and columns are zeroed, the real block is copied over
                padded = space.empty("grad", chunk.shape[0], size, size)
                padded[:, real, real] = chunk
                padded[:, :offset].zero_()
                padded[:, offset + n :].zero_()
                padded[:, real, :offset].zero_()
                padded[:, real, offset + n :].zero_()
            views = _rows_of(*detached, size, start, start + step)
            cot_views = _rows_of(*cot_all, size, start, start + step)
            _chunk_backward(*views, cot_views, size, padded, space)
        grads = list(torch.autograd.grad(first, leaves, cot_first)) + [None] * (len(layers) - first_layers)
        _groups_vjp(weights, size, cot_groups, grads, ctx.olds)
        return torch.stack(grads, dim=1), None, None, None


def _stacked(weights, batch: int) -> torch.Tensor:
    """The layers' weights ``(..., blocks, d)`` as one ``(B, T, N / 2)`` tensor."""
    return torch.stack([w.reshape(batch, w.shape[-2] * w.shape[-1]) for w in weights], dim=1)


def _eager(t: torch.Tensor) -> bool:
    """Whether the chunked kernel may run: not while compiling, not under a ``torch.func`` transform
    or in forward mode (the kernel has a closed-form backward only; the staged products serve there)."""
    return plain_eager(t)


def full_permutation(xt: torch.Tensor, net: Network, weights) -> torch.Tensor:
    """The real block ``(..., n, n)`` of the permutation ``P`` (ascending) of a run of ``net``."""
    n = xt.shape[-1]
    real = slice(net.offset, net.offset + n)
    batch_shape = xt.shape[:-1]
    if not net.layers:  # one wire
        return xt.new_ones(batch_shape + (1, 1))
    if not net.staged:
        size = net.size
        perm = torch.eye(size, dtype=xt.dtype, device=xt.device).expand(batch_shape + (size, size))
        for layer, s in zip(net.layers, weights):
            plo, phi = _split(perm, layer, 1)  # (..., blocks, d, N)
            perm = _merge(perm, *_mix(plo, phi, s.unsqueeze(-1)), layer, 1)
        return perm[..., real, real]
    stacked = _stacked(weights, math.prod(batch_shape))
    if _eager(stacked):
        perm = _BitonicPermutation.apply(stacked, net.size, net.offset, n)
    else:
        perm = _staged_permutation(stacked, net.size)[:, real, real]
    return perm.reshape(batch_shape + (n, n))


def permutation_rows(xt: torch.Tensor, net: Network, weights, wires: torch.Tensor) -> torch.Tensor:
    """Rows ``(..., r, n)`` of the real columns of ``P`` for output ``wires`` (``(r,)``, or
    ``(..., r)`` per row): pulled back (:func:`some_rows`) while that is cheaper than the whole
    permutation, which costs about ``2 N^2`` per stage against ``r N`` per layer."""
    n = xt.shape[-1]
    real = slice(net.offset, net.offset + n)
    if not net.staged or wires.shape[-1] * len(net.layers) <= 2 * max(1, net.size.bit_length() - 2) * net.size:
        perm = some_rows(wires, net, weights, xt)[..., real]
        return perm.expand(xt.shape[:-1] + perm.shape[-2:])
    full, index = full_permutation(xt, net, weights), wires - net.offset
    if index.dim() == 1:
        return full.index_select(-2, index)
    return full.gather(-2, index.unsqueeze(-1).expand(index.shape + (n,)))
