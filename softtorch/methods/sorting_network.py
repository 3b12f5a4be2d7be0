r"""Differentiable bitonic sorting network (Petersen et al., ICML 2021).

A bitonic network sorts :math:`N = 2^m` wires with :math:`m(m + 1)/2` layers of :math:`N/2`
disjoint compare-and-swap units. Each unit on a pair :math:`(a, b)` (``a`` on the wire that
receives the minimum) is relaxed with the sigmoidal kernel of the mode:

.. math::
    s = \sigma_{mode}\!\left(\frac{a - b}{\text{softness}}\right), \qquad
    \operatorname{softmin}(a, b) = s\,b + (1 - s)\,a, \qquad
    \operatorname{softmax}(a, b) = s\,a + (1 - s)\,b.

The soft permutation is carried along by the same mixing: the two rows of the permutation that
belong to the two wires are mixed with the same :math:`s`, so every layer is a doubly stochastic
matrix and so is their product :math:`P`, and the soft sorted values are exactly :math:`P\,\tilde x`.

Any ``n`` is padded to the next power of two with sentinel wires that behave like :math:`+\infty`:
every comparison that involves a sentinel is an exact (hard) swap, decided from ``n`` alone, so
sentinels never leak weight into the real wires and end up in the last slots, where they are cut
off. Every layer is a fixed reshape of the wires (partner :math:`i \oplus (2^k - 1)` in the first
layer of stage :math:`k`, :math:`i \oplus j` after it), so the work is
:math:`O(n \log^2 n)` per row for the values and no Python code looks at the data.

The full permutation is carried in block-diagonal form: after stage :math:`k` it only mixes wires
inside blocks of :math:`2^k`, so only the last stage touches a dense :math:`n \times n` matrix
(:math:`O(n^2 \log n)` work per row). A few rows of it (top-k, quantiles, argmax) are instead pulled
back from the output through the symmetric layer matrices in :math:`O(r\, n \log^2 n)`.

.. seealso::
    F. Petersen, C. Borgelt, H. Kuehne, O. Deussen, "Differentiable Sorting Networks for Scalable
    Sorting and Ranking Supervision", ICML 2021.
"""

from __future__ import annotations

import torch

from .._core.checks import SOFT_MODES, check_choice
from .._core.kernels import sigmoidal_kernel
from .._core.zero_grad import with_zero_grad
from ._common import row_softness

__all__ = ["permutation", "sort_values"]


def _schedule(n: int):
    """The padded size ``N`` and the layers ``(block, distance, reverse)`` of the network for ``n`` wires.

    Stage ``block = 2, 4, ..., N``: a first layer pairing wire ``r`` of each block with wire
    ``block - 1 - r`` (``reverse``), then layers pairing ``r`` with ``r + j`` for
    ``j = block/4, ..., 1``. Every unit puts the minimum on the lower wire.
    """
    size = 1
    while size < n:
        size *= 2
    layers = []
    block = 2
    while block <= size:
        layers.append((block, block // 2, True))
        j = block // 4
        while j >= 1:
            layers.append((block, j, False))
            j //= 2
        block *= 2
    return size, layers


def _split(t: torch.Tensor, j: int, reverse: bool, tail: int):
    """The (lower, upper) wires of every unit of a layer; the wire axis is ``-(tail + 1)``."""
    lo, hi = t.unflatten(-(tail + 1), (-1, 2, j)).unbind(-(tail + 2))
    if reverse:
        hi = hi.flip(-(tail + 1))
    return lo, hi


def _merge(lo: torch.Tensor, hi: torch.Tensor, reverse: bool, tail: int) -> torch.Tensor:
    """Inverse of :func:`_split`."""
    if reverse:
        hi = hi.flip(-(tail + 1))
    return torch.stack((lo, hi), dim=-(tail + 2)).flatten(-(tail + 3), -(tail + 1))


def _swap_weights(lo, hi, pad_lo, pad_hi, softness, mode):
    """The weight ``s`` of every unit: ``min = lerp(lo, hi, s)``, ``max = lerp(hi, lo, s)``."""
    s = sigmoidal_kernel((lo - hi) / softness, mode)
    if pad_lo is not None:
        # A sentinel is larger than everything: swap when it sits on the lower wire, keep otherwise.
        s = torch.where(pad_lo | pad_hi, pad_lo.to(s.dtype), s)
    return s


def _mix(lo: torch.Tensor, hi: torch.Tensor, s: torch.Tensor):
    """``((1 - s) lo + s hi, s lo + (1 - s) hi)`` with one shared difference.

    Autograd keeps only that difference (half a state), where ``lerp`` would keep both inputs; the
    result is still exact for the 0/1 entries of a hard permutation.
    """
    step = s * (hi - lo)
    return lo + step, hi - step


def _run_values(xt, softness, mode):
    """The network on ``xt`` ``(..., n)``: padded ascending values ``(..., N)``, the schedule and the
    weights ``s`` of every layer (each ``(..., N / (2j), j)``, sentinel units already hard)."""
    check_choice("mode", mode, SOFT_MODES)
    if xt.dim() == 0:
        raise ValueError("xt must have at least one dimension (the sorted one), got a 0-d tensor")
    n = xt.shape[-1]
    size, layers = _schedule(n)
    tau = row_softness(softness)  # (..., 1, 1) against the (..., units, j) view of a layer
    v = xt if size == n else torch.nn.functional.pad(xt, (0, size - n))
    pad = None if size == n else torch.arange(size, device=xt.device) >= n
    weights = []
    for _, j, reverse in layers:
        lo, hi = _split(v, j, reverse, 0)
        pad_lo = pad_hi = None
        if pad is not None:
            pad_lo, pad_hi = _split(pad, j, reverse, 0)
            pad = _merge(pad_lo & pad_hi, pad_lo | pad_hi, reverse, 0)
        s = _swap_weights(lo, hi, pad_lo, pad_hi, tau, mode)
        # lerp is exact at s = 0 and s = 1, so saturated units move values bit for bit.
        v = _merge(torch.lerp(lo, hi, s), torch.lerp(hi, lo, s), reverse, 0)
        weights.append(s)
    # The sentinels end in the last N - n wires (they never exchanged weight with the real ones).
    return v, size, layers, weights


def _full_permutation(xt, size, layers, weights):
    """All of ``P`` ``(..., N, N)`` (ascending), carried forward in block-diagonal form."""
    perm = xt.new_ones(xt.shape[:-1] + (size, 1, 1))  # (..., N/b, b, b), b = 1
    for (block, j, reverse), s in zip(layers, weights):
        if reverse:
            # Entering a stage: the blocks double, the permutation is block-diagonal in them.
            left, right = perm.unflatten(-3, (-1, 2)).unbind(-3)  # (..., N/b, b/2, b/2) each
            zero = torch.zeros_like(left)
            perm = torch.cat((torch.cat((left, zero), dim=-1), torch.cat((zero, right), dim=-1)), dim=-2)
        plo, phi = _split(perm, j, reverse, 1)  # (..., N/b, b/(2j), j, b)
        perm = _merge(*_mix(plo, phi, s.unflatten(-2, (size // block, -1)).unsqueeze(-1)), reverse, 1)
    return perm.reshape(perm.shape[:-3] + (size, size))


def _some_rows(wires, size, layers, weights, like):
    """Rows ``wires`` (a 1-D index tensor of output wires) of ``P`` ``(..., r, N)``.

    The one-hot rows are pulled back through the layers in reverse order: every layer matrix is
    symmetric, so a row vector is mixed exactly like the wires. Work ``O(r N log^2 N)``.
    """
    rows = torch.nn.functional.one_hot(wires, size).to(like.dtype)  # (r, N)
    for (_, j, reverse), s in zip(reversed(layers), reversed(weights)):
        lo, hi = _split(rows, j, reverse, 0)  # (..., r, N/(2j), j)
        rows = _merge(*_mix(lo, hi, s.unsqueeze(-3)), reverse, 0)
    return rows


def _safe_log(p: torch.Tensor) -> torch.Tensor:
    positive = p > 0
    return torch.where(positive, torch.log(torch.where(positive, p, torch.ones_like(p))), float("-inf"))


def permutation(xt, softness, mode, descending=False, rows=None, log=False):
    r"""Soft permutation matrix of a differentiable bitonic sorting network.

    Relaxes the one-hot matrix of ``torch.sort(xt).indices``: every compare-and-swap unit of the
    network mixes the two permutation rows of its wires,

    .. math::
        s = \sigma_{mode}\!\left(\frac{a - b}{\text{softness}}\right), \quad
        P'_{lo} = (1 - s)\,P_{lo} + s\,P_{hi}, \quad
        P'_{hi} = s\,P_{lo} + (1 - s)\,P_{hi},

    where :math:`a, b` are the soft values on the lower and upper wire. The result is doubly
    stochastic and tends to the hard permutation as ``softness`` goes to 0.

    Args:
        xt (Tensor): scores ``(..., n)``, sorted along the last dimension, ``n >= 1``.
        softness (float or Tensor): positive temperature; a tensor broadcasts against
            ``xt[..., :1]``.
        mode (str): ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``.
        descending (bool): sort largest first. Default: ``False``.
        rows (None, slice or Tensor): the sorted slots to return (a slice or a 1-D tensor of
            non-negative slot indices). A few rows are computed by pulling them back through the
            network, :math:`O(r\, n \log^2 n)`, without forming ``P``. Default: ``None`` (all ``n``).
        log (bool): return :math:`\log P` (``-inf`` where a weight is exactly zero).
            Default: ``False``.

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

    .. seealso::
        Petersen et al., "Differentiable Sorting Networks for Scalable Sorting and Ranking
        Supervision", ICML 2021.
    """
    v, size, layers, weights = _run_values(xt, softness, mode)
    n = xt.shape[-1]
    if rows is None:
        perm = _full_permutation(xt, size, layers, weights)[..., :n, :n]
        if descending:
            perm = perm.flip(-2)
    else:
        if isinstance(rows, slice):
            slots = torch.tensor(list(range(n)[rows]), dtype=torch.long, device=xt.device)
        else:
            slots = rows.to(device=xt.device, dtype=torch.long)
        wires = (n - 1) - slots if descending else slots
        stages = max(1, size.bit_length() - 2)  # log2(N) - 1
        if slots.shape[0] * len(layers) <= 2 * stages * size:
            # Few rows (top-k, quantiles, argmax): pull them back through the network.
            perm = _some_rows(wires, size, layers, weights, xt)[..., :n]
            perm = perm.expand(v.shape[:-1] + perm.shape[-2:])
        else:
            perm = _full_permutation(xt, size, layers, weights)[..., :n, :n].index_select(-2, wires)
    if not layers:  # n = 1: nothing to compare, a constant permutation
        perm = with_zero_grad(perm, xt)
    return _safe_log(perm) if log else perm


def sort_values(xt, softness, mode, descending=False):
    r"""Soft sorted values of ``xt`` from a differentiable bitonic sorting network.

    Relaxes ``torch.sort(xt).values``: every compare-and-swap unit of the network returns

    .. math::
        s = \sigma_{mode}\!\left(\frac{a - b}{\text{softness}}\right), \quad
        \min(a, b) \approx s\,b + (1 - s)\,a, \quad
        \max(a, b) \approx s\,a + (1 - s)\,b.

    The result equals ``permutation(xt, ...) @ xt`` but never forms the permutation:
    :math:`O(n \log^2 n)` work and memory per row.

    Args:
        xt (Tensor): scores ``(..., n)``, sorted along the last dimension, ``n >= 1``.
        softness (float or Tensor): positive temperature; a tensor broadcasts against
            ``xt[..., :1]``.
        mode (str): ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``.
        descending (bool): sort largest first. Default: ``False``.

    Returns:
        Tensor: soft sorted values ``(..., n)``, within ``[min(xt), max(xt)]``.

    Example:
        >>> xt = torch.tensor([0.3, 0.1, 0.8, 0.5])
        >>> sort_values(xt, 1e-3, "c2")
        tensor([0.1000, 0.3000, 0.5000, 0.8000])
        >>> sort_values(xt, 0.1, "smooth", descending=True)
        tensor([0.7698, 0.5091, 0.2702, 0.1509])

    .. seealso::
        Petersen et al., "Differentiable Sorting Networks for Scalable Sorting and Ranking
        Supervision", ICML 2021.
    """
    v = _run_values(xt, softness, mode)[0][..., : xt.shape[-1]]
    return v.flip(-1) if descending else v
