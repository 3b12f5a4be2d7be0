r"""Differentiable sorting networks (Petersen et al., ICML 2021 and ICLR 2022).

A fixed schedule of compare-and-swap units (bitonic, padded to a power of two with exact
:math:`+\infty` sentinels, or odd-even transposition), each relaxed with a sigmoid of the scaled
difference, :math:`s = f((a - b) / \text{softness})`; the permutation rows of the two wires mix
with the same :math:`s`, so :math:`P` is doubly stochastic and the soft values are
:math:`P\,\tilde x`. The networks, the relaxations ``distribution`` accepts and how the
permutation is carried (block-diagonal stages, rows pulled back) are described in the user guide,
:doc:`/user_guide/how_methods_work`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .._core.checks import SOFT_MODES, check_choice, check_nonnegative
from .._core.expectation import expect
from .._core.kernels import sigmoidal_kernel
from .._core.zero_grad import with_zero_grad
from ._common import row_softness

__all__ = ["permutation", "sort_values", "NETWORKS", "DISTRIBUTIONS", "OPTIONS", "OPTION_ALIASES"]

#: The sorting networks of ``method_options["network"]``.
NETWORKS = ("bitonic", "odd_even")
#: The compare-and-swap relaxations of ``method_options["distribution"]`` (mode ``"smooth"``).
DISTRIBUTIONS = ("logistic", "logistic_phi", "cauchy", "gaussian", "reciprocal", "optimal")
#: Default exponent of the activation replacement trick of ``"logistic_phi"``.
DEFAULT_ART_LAMBDA = 0.25
#: diffsort's bitonic layout (padding wires first, comparators that touch them skipped), used by
#: :mod:`softtorch.compat.diffsort` only.
_DIFFSORT_BITONIC = "_diffsort_bitonic"


def _check_network(label, value):
    return check_choice(label, value, NETWORKS)


def _check_distribution(label, value):
    return check_choice(label, value, DISTRIBUTIONS)


#: The options the functions take: ``network``, ``distribution`` and ``art_lambda`` (see the module
#: docstring). diffsort's spellings ``sorting_network_type`` and ``interpolation_type`` are accepted.
OPTIONS = {"network": _check_network, "distribution": _check_distribution, "art_lambda": check_nonnegative}
OPTION_ALIASES = {"sorting_network_type": "network", "interpolation_type": "distribution"}
#: Soft values run the network on the scores (O(n log^2 n)), mapped back by the caller.
VALUES_FROM_SCORES = True
#: Every compare-and-swap mixes two rows with weights summing to 1: P is doubly stochastic.
DOUBLY_STOCHASTIC = True
#: The relaxed units do not compose into a monotone map: soft sorted values may decrease
#: (Petersen et al., 2022; its monotone distributions apply to mode "smooth" only).
MONOTONE = False


class _Layer(NamedTuple):
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


class _Network(NamedTuple):
    """``size`` wires, the real ones ``offset .. offset + n - 1``, and the layers (in order)."""

    size: int
    offset: int
    layers: list
    #: Bitonic layouts: stage ``k = 1, ..., log2(size)`` is the ``k`` layers of distances
    #: ``2^(k-1), ..., 1``; after it the permutation is block-diagonal in blocks of ``2^k``.
    staged: bool


_CACHE: dict = {}


def _network(n: int, network: str, device, dtype) -> _Network:
    """:func:`_build_network`, kept per ``(n, network, device, dtype)`` outside of compilation."""
    if torch.compiler.is_compiling():
        return _build_network(n, network, device, dtype)
    key = (n, network, device, dtype)
    if key not in _CACHE:
        if len(_CACHE) >= 64:
            _CACHE.clear()
        _CACHE[key] = _build_network(n, network, device, dtype)
    return _CACHE[key]


def _build_network(n: int, network: str, device, dtype) -> _Network:
    r"""The layers of ``network`` on ``n`` wires (their constant tensors on ``device`` in ``dtype``).

    Bitonic: stage ``k`` merges blocks of ``2^k`` wires; unit ``(i, i + d)`` is descending when bit
    ``k`` of ``i`` is set (the lower half of the next merge sorts up, the upper half down). The
    default pads with sentinel wires at the end that behave like :math:`+\infty` (a unit with one
    swaps exactly when the sentinel sits where the minimum goes); diffsort's layout puts the padding
    wires first and skips every unit that touches one.
    """
    if network == "odd_even":
        layers = [_Layer(i % 2, (n - i % 2) // 2, 1) for i in range(n) if (n - i % 2) // 2 > 0]
        return _Network(n, 0, layers, False)
    size = 1 << max(0, (n - 1).bit_length())
    wire = torch.arange(size, device=device)
    diffsort = network == _DIFFSORT_BITONIC
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
            layers.append(_Layer(0, size // (2 * d), d, sign, fixed, value))
            d //= 2
        block *= 2
    return _Network(size, size - n if diffsort else 0, layers, True)


def _split(t: torch.Tensor, layer: _Layer, tail: int):
    """The (lower, upper) wires of every unit of ``layer``, each ``(..., blocks, d, *tail)``; the
    wire axis of ``t`` is ``-(tail + 1)``."""
    axis = -(tail + 1)
    region = t.narrow(axis, layer.start, layer.stop - layer.start) if layer.stop - layer.start < t.shape[axis] else t
    return region.unflatten(axis, (layer.blocks, 2, layer.d)).unbind(-(tail + 2))


def _merge(t: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, layer: _Layer, tail: int) -> torch.Tensor:
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


def _check_relaxation(mode, network, distribution, art_lambda) -> None:
    check_choice("mode", mode, SOFT_MODES)
    if network != _DIFFSORT_BITONIC:
        check_choice("network", network, NETWORKS)
    if distribution is not None:
        check_choice("distribution", distribution, DISTRIBUTIONS)
        if mode != "smooth":
            raise ValueError(
                f"distribution applies to mode='smooth' only (modes 'c0', 'c1', 'c2' use their polynomial "
                f"kernels), got distribution={distribution!r} with mode={mode!r}"
            )
    if art_lambda is not None:
        check_nonnegative("art_lambda", art_lambda)
        if distribution != "logistic_phi":
            raise ValueError(
                f"art_lambda applies to distribution='logistic_phi' only, got art_lambda={art_lambda!r} "
                f"with distribution={distribution!r}"
            )


def _run_values(xt, softness, mode, network="bitonic", distribution=None, art_lambda=None):
    """The network on ``xt`` ``(..., n)``: all its wires' values ``(..., N)`` (ascending on the real
    wires), the network and the weights ``s`` of every layer (each ``(..., blocks, d)``)."""
    _check_relaxation(mode, network, distribution, art_lambda)
    if xt.dim() == 0:
        raise ValueError("xt must have at least one dimension (the sorted one), got a 0-d tensor")
    n = xt.shape[-1]
    net = _network(n, network, xt.device, xt.dtype)
    tau = row_softness(softness)  # (..., 1, 1) against the (..., blocks, d) view of a layer
    # The padding wires hold zeros: their units' weights are fixed, so the value never matters.
    v = xt if net.size == n else torch.nn.functional.pad(xt, (net.offset, net.size - n - net.offset))
    weights = []
    for layer in net.layers:
        lo, hi = _split(v, layer, 0)
        diff = lo - hi if layer.sign is None else (lo - hi) * layer.sign
        s = _step(diff / tau, diff, mode, distribution, art_lambda)
        if layer.fixed is not None:
            s = torch.where(layer.fixed, layer.fixed_value, s)
        # lerp is exact at s = 0 and s = 1, so saturated units move values bit for bit.
        v = _merge(v, torch.lerp(lo, hi, s), torch.lerp(hi, lo, s), layer, 0)
        weights.append(s)
    return v, net, weights


def _mix(lo: torch.Tensor, hi: torch.Tensor, s: torch.Tensor):
    """``((1 - s) lo + s hi, s lo + (1 - s) hi)`` with one shared difference.

    Autograd keeps only that difference (half a state), where ``lerp`` would keep both inputs; the
    result is still exact for the 0/1 entries of a hard permutation.
    """
    step = s * (hi - lo)
    return lo + step, hi - step


#: Most layers of a bitonic stage multiplied into one small matrix before it is applied to ``P``.
_GROUP_BITS = 4


def _groups(k: int):
    """The bits ``k - 1, ..., 0`` of stage ``k`` in runs of at most :data:`_GROUP_BITS`, highest first."""
    count = -(-k // _GROUP_BITS)
    sizes = [k // count + (1 if i < k % count else 0) for i in range(count)]
    runs, top = [], k
    for size in sizes:
        runs.append((top - size, top))
        top -= size
    return runs


def _group_matrix(stage_weights, k: int, lo: int, hi: int, batch: int, size: int) -> torch.Tensor:
    """The product of the layers of bits ``hi - 1, ..., lo`` of stage ``k``: ``(B, K, H, L, G, G)``.

    Wire ``i`` of block ``K`` of ``2^k`` wires is ``(h, j, l)`` with ``j`` the ``G = 2^(hi - lo)``
    values of the group's bits; every ``(K, h, l)`` has its own ``G x G`` matrix, built by mixing
    the rows of the identity (each layer mixes rows ``j`` and ``j + 2^(t - lo)``).
    """
    blocks, heads, tails, g = size >> k, 1 << (k - hi), 1 << lo, 1 << (hi - lo)
    mat = None
    for t in range(hi - 1, lo - 1, -1):
        s = stage_weights[k - 1 - t]  # (B, N / 2^(t+1), 2^t): the layer of distance 2^t
        a, b = 1 << (hi - t - 1), 1 << (t - lo)
        s = s.reshape(batch, blocks, heads, a, b, tails).permute(0, 1, 2, 5, 3, 4).unsqueeze(-1)
        if mat is None:
            eye = torch.eye(g, dtype=s.dtype, device=s.device).view(a, 2, b, g)
            mlo, mhi = eye[:, 0], eye[:, 1]
        else:
            mlo, mhi = mat.unflatten(-2, (a, 2, b)).unbind(-3)
        step = s * (mhi - mlo)
        mat = torch.stack((mlo + step, mhi - step), dim=-3).flatten(-4, -2)
    return mat


def _staged_permutation(xt, net: _Network, weights):
    """All of ``P`` ``(..., N, N)`` of a bitonic network, stage by stage in block-diagonal form.

    Before stage ``k`` the permutation is ``N / 2^(k-1)`` diagonal blocks; the stage's layers are
    multiplied, a few bits at a time (:func:`_groups`), into small matrices that are applied to the
    rows of each block with one batched matrix product. The first group of a stage reads the two
    half blocks directly (never the zeros between them).
    """
    size = net.size
    batch_shape = xt.shape[:-1]
    batch = math.prod(batch_shape)
    weights = [w.reshape(batch, *w.shape[-2:]) for w in weights]
    perm = None  # (B, N / C, C, C) after each stage
    first = 0
    for k in range(1, size.bit_length()):
        stage_weights = weights[first : first + k]
        first += k
        block = 1 << k
        blocks = size // block
        for lo, hi in _groups(k):
            mat = _group_matrix(stage_weights, k, lo, hi, batch, size)  # (B, K, H, L, G, G)
            g, tails = 1 << (hi - lo), 1 << lo
            if hi == k:  # the top bits: the input is the two half blocks of the previous stage
                if perm is None:
                    halves = xt.new_ones(batch, blocks, 1, 2, 1, 1, 1)
                else:
                    halves = perm.view(batch, blocks, 2, g // 2, tails, block // 2).transpose(-3, -2).unsqueeze(2)
                mat = mat.unflatten(-1, (2, g // 2)).movedim(-2, 3)  # (B, K, 1, 2, L, G, G/2)
                out = torch.matmul(mat, halves)  # (B, K, 1, 2, L, G, C/2)
                perm = out.squeeze(2).permute(0, 1, 4, 3, 2, 5).reshape(batch, blocks, block, block)
            else:
                rows = perm.view(batch, blocks, 1 << (k - hi), g, tails, block).transpose(-3, -2)
                perm = torch.matmul(mat, rows).transpose(-3, -2).reshape(batch, blocks, block, block)
    if perm is None:  # one wire
        return xt.new_ones(batch_shape + (1, 1))
    return perm.reshape(batch_shape + (size, size))


def _full_permutation(xt, net: _Network, weights):
    """All of ``P`` ``(..., N, N)`` (ascending)."""
    if net.staged:
        return _staged_permutation(xt, net, weights)
    size = net.size
    perm = torch.eye(size, dtype=xt.dtype, device=xt.device).expand(xt.shape[:-1] + (size, size))
    for layer, s in zip(net.layers, weights):
        plo, phi = _split(perm, layer, 1)  # (..., blocks, d, N)
        perm = _merge(perm, *_mix(plo, phi, s.unsqueeze(-1)), layer, 1)
    return perm


def _some_rows(wires, net: _Network, weights, like):
    """Rows ``wires`` (a 1-D index tensor of output wires) of ``P`` ``(..., r, N)``.

    The one-hot rows are pulled back through the layers in reverse order: every layer matrix is
    symmetric, so a row vector is mixed exactly like the wires. Work ``O(r N L)``; a bitonic
    network applies the transposed group matrices of :func:`_group_matrix` instead of single layers.
    """
    rows = torch.nn.functional.one_hot(wires, net.size).to(like.dtype)  # (r, N)
    if not weights:
        return rows
    if net.staged:
        size, batch_shape = net.size, weights[0].shape[:-2]
        batch = math.prod(batch_shape)
        flat = [w.reshape(batch, *w.shape[-2:]) for w in weights]
        r = rows.shape[0]
        cols = rows.mT.expand(batch, size, r)  # (B, N, r): P^T = M_1 ... M_L, M_L first
        last = len(flat)
        for k in range(size.bit_length() - 1, 0, -1):
            stage_weights = flat[last - k : last]
            last -= k
            for lo, hi in reversed(_groups(k)):
                mat = _group_matrix(stage_weights, k, lo, hi, batch, size).mT
                view = cols.reshape(batch, size >> k, 1 << (k - hi), 1 << (hi - lo), 1 << lo, r).transpose(-3, -2)
                cols = torch.matmul(mat, view).transpose(-3, -2).reshape(batch, size, r)
        return cols.mT.reshape(batch_shape + rows.shape)
    rows = rows.expand(weights[0].shape[:-2] + rows.shape)
    for layer, s in zip(reversed(net.layers), reversed(weights)):
        lo, hi = _split(rows, layer, 0)  # (..., r, blocks, d)
        rows = _merge(rows, *_mix(lo, hi, s.unsqueeze(-3)), layer, 0)
    return rows


def _safe_log(p: torch.Tensor) -> torch.Tensor:
    positive = p > 0
    return torch.where(positive, torch.log(torch.where(positive, p, torch.ones_like(p))), float("-inf"))


def permutation(
    xt, softness, mode, descending=False, rows=None, log=False, *, network="bitonic", distribution=None, art_lambda=None
):
    r"""Soft permutation matrix of a differentiable sorting network.

    Relaxes the one-hot matrix of ``torch.sort(xt).indices``: every compare-and-swap unit of the
    network mixes the two permutation rows of its wires,

    .. math::
        s = f\!\left(\frac{a - b}{\text{softness}}\right), \quad
        P'_{lo} = (1 - s)\,P_{lo} + s\,P_{hi}, \quad
        P'_{hi} = s\,P_{lo} + (1 - s)\,P_{hi},

    where :math:`a, b` are the soft values on the lower and upper wire and :math:`f` is the mode's
    sigmoidal kernel or the chosen ``distribution``. The result is doubly stochastic and tends to
    the hard permutation as ``softness`` goes to 0.

    Args:
        xt (Tensor): scores ``(..., n)``, sorted along the last dimension, ``n >= 1``.
        softness (float or Tensor): positive temperature (diffsort's ``1 / steepness``); a tensor
            broadcasts against ``xt[..., :1]``.
        mode (str): ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``.
        descending (bool): sort largest first. Default: ``False``.
        rows (None, slice or Tensor): the sorted slots to return (a slice or a 1-D tensor of
            non-negative slot indices). A few rows are computed by pulling them back through the
            network, :math:`O(r\, n \log^2 n)`, without forming ``P``. Default: ``None`` (all ``n``).
        log (bool): return :math:`\log P` (``-inf`` where a weight is exactly zero).
            Default: ``False``.
        network (str): ``"bitonic"`` or ``"odd_even"``. Default: ``"bitonic"``.
        distribution (str, optional): the relaxation :math:`f` in mode ``"smooth"``: ``"logistic"``,
            ``"logistic_phi"``, ``"cauchy"``, ``"gaussian"``, ``"reciprocal"`` or ``"optimal"``.
            Default: ``None`` (the mode's kernel; logistic for ``"smooth"``).
        art_lambda (float, optional): exponent of ``"logistic_phi"``. Default: ``None`` (0.25).

    Returns:
        Tensor: ``P`` of shape ``(..., n, n)`` (``(..., r, n)`` with ``rows``); ``P[..., i, j]`` is
        the weight of element ``j`` in sorted slot ``i``.

    Example:
        >>> xt = torch.tensor([0.3, 0.1, 0.8])
        >>> permutation(xt, 1e-3, "c1")
        tensor([[0., 1., 0.],
                [1., 0., 0.],
                [0., 0., 1.]])
        >>> P = permutation(xt, 0.1, "smooth")
        >>> P.round(decimals=2)
        tensor([[0.2500, 0.7500, 0.0000],
                [0.7400, 0.2500, 0.0000],
                [0.0000, 0.0000, 0.9900]])
        >>> torch.allclose(P.sum(-2), torch.ones(3)) and torch.allclose(P.sum(-1), torch.ones(3))
        True
        >>> permutation(xt, 0.1, "smooth", network="odd_even", distribution="cauchy").round(decimals=2)
        tensor([[0.2600, 0.7300, 0.0100],
                [0.6900, 0.2600, 0.0500],
                [0.0500, 0.0100, 0.9400]])

    .. seealso::
        Petersen et al., "Differentiable Sorting Networks for Scalable Sorting and Ranking
        Supervision", ICML 2021; "Monotonic Differentiable Sorting Networks", ICLR 2022.
    """
    v, net, weights = _run_values(xt, softness, mode, network, distribution, art_lambda)
    return _permutation_from(xt, v, net, weights, descending, rows, log)


def _permutation_from(xt, v, net: _Network, weights, descending, rows, log):
    """:func:`permutation` from a run of the network."""
    n = xt.shape[-1]
    real = slice(net.offset, net.offset + n)
    if rows is None:
        perm = _full_permutation(xt, net, weights)[..., real, real]
        if descending:
            perm = perm.flip(-2)
    else:
        if isinstance(rows, slice):
            slots = torch.tensor(list(range(n)[rows]), dtype=torch.long, device=xt.device)
        else:
            slots = rows.to(device=xt.device, dtype=torch.long)
        wires = net.offset + ((n - 1) - slots if descending else slots)
        # Pulling r rows back costs r N per layer; the block-diagonal full P about 2 N^2 per stage
        # (a dense one N^2 per layer).
        stages = max(1, net.size.bit_length() - 2)
        if not net.staged or slots.shape[0] * len(net.layers) <= 2 * stages * net.size:
            perm = _some_rows(wires, net, weights, xt)[..., real]
            perm = perm.expand(v.shape[:-1] + perm.shape[-2:])
        else:
            perm = _full_permutation(xt, net, weights)[..., :, real].index_select(-2, wires)
    if not net.layers:  # n = 1: nothing to compare, a constant permutation
        perm = with_zero_grad(perm, xt)
    return _safe_log(perm) if log else perm


def sort_values(
    xt, softness, mode, descending=False, *, values=None, network="bitonic", distribution=None, art_lambda=None
):
    r"""Soft sorted values of ``xt`` from a differentiable sorting network.

    Relaxes ``torch.sort(xt).values``: every compare-and-swap unit of the network returns

    .. math::
        s = f\!\left(\frac{a - b}{\text{softness}}\right), \quad
        \min(a, b) \approx s\,b + (1 - s)\,a, \quad
        \max(a, b) \approx s\,a + (1 - s)\,b.

    The result equals ``permutation(xt, ...) @ xt`` but never forms the permutation:
    :math:`O(n \log^2 n)` work and memory per row for the bitonic network.

    Args:
        xt (Tensor): scores ``(..., n)``, sorted along the last dimension, ``n >= 1``.
        softness (float or Tensor): positive temperature (diffsort's ``1 / steepness``); a tensor
            broadcasts against ``xt[..., :1]``.
        mode (str): ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``.
        descending (bool): sort largest first. Default: ``False``.
        values (Tensor, optional): data ``(..., n)`` to carry along instead: returns
            ``permutation(xt, ...) @ values``. Default: ``None`` (the network's own values of ``xt``).
        network (str): ``"bitonic"`` or ``"odd_even"``. Default: ``"bitonic"``.
        distribution (str, optional): the relaxation in mode ``"smooth"`` (see :func:`permutation`).
            Default: ``None`` (the mode's kernel).
        art_lambda (float, optional): exponent of ``"logistic_phi"``. Default: ``None`` (0.25).

    Returns:
        Tensor: soft sorted values ``(..., n)``, within ``[min(xt), max(xt)]``.

    Example:
        >>> xt = torch.tensor([0.3, 0.1, 0.8, 0.5])
        >>> sort_values(xt, 1e-3, "c2")
        tensor([0.1000, 0.3000, 0.5000, 0.8000])
        >>> sort_values(xt, 0.1, "smooth", descending=True)
        tensor([0.7698, 0.5091, 0.2702, 0.1509])
        >>> sort_values(xt, 0.1, "smooth", network="odd_even", distribution="optimal")
        tensor([0.1125, 0.3000, 0.5000, 0.7875])

    .. seealso::
        Petersen et al., "Differentiable Sorting Networks for Scalable Sorting and Ranking
        Supervision", ICML 2021; "Monotonic Differentiable Sorting Networks", ICLR 2022.
    """
    v, net, weights = _run_values(xt, softness, mode, network, distribution, art_lambda)
    if values is not None:
        return expect(_permutation_from(xt, v, net, weights, descending, None, False), values)
    v = v[..., net.offset : net.offset + xt.shape[-1]]
    return v.flip(-1) if descending else v
