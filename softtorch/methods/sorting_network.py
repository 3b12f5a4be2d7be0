r"""Differentiable sorting networks (Petersen et al., ICML 2021 and ICLR 2022).

A fixed schedule of compare-and-swap units (bitonic, padded to a power of two with exact
:math:`+\infty` sentinels, or odd-even transposition), each relaxed with a sigmoid of the scaled
difference, :math:`s = f((a - b) / \text{softness})`; the permutation rows of the two wires mix
with the same :math:`s`, so :math:`P` is doubly stochastic and the soft values are
:math:`P\,\tilde x`. The networks, the relaxations ``distribution`` accepts and how the
permutation is carried (block-diagonal stages, rows pulled back) are described in the user guide,
:doc:`/user_guide/how_methods_work`; the machinery is :mod:`softtorch._core.sorting_networks`.
Entries a row excludes (``kept=False``) take no part: the row runs the network of its kept
entries alone.
"""

from __future__ import annotations

import torch

from .._core import sorting_networks as _net
from .._core.checks import SOFT_MODES, check_choice, check_nonnegative
from .._core.expectation import expect
from .._core.sorting_networks import DIFFSORT_BITONIC
from .._core.zero_grad import with_zero_grad
from ._common import row_softness

__all__ = ["permutation", "sort_values", "NETWORKS", "DISTRIBUTIONS", "OPTIONS", "OPTION_ALIASES"]

#: Excluded entries (``kept=False``) take no part in the network: a row runs the network of its
#: kept entries alone (see :class:`softtorch._core.sorting_networks.KeptFirst`).
EXACT_MASKING = True

#: The sorting networks of ``method_options["network"]``.
NETWORKS = ("bitonic", "odd_even")
#: The compare-and-swap relaxations of ``method_options["distribution"]`` (mode ``"smooth"``).
DISTRIBUTIONS = ("logistic", "logistic_phi", "cauchy", "gaussian", "reciprocal", "optimal")


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


def _check_relaxation(mode, network, distribution, art_lambda) -> None:
    check_choice("mode", mode, SOFT_MODES)
    if network != DIFFSORT_BITONIC:
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


def _check_input(xt, mode, network, distribution, art_lambda) -> None:
    _check_relaxation(mode, network, distribution, art_lambda)
    if xt.dim() == 0:
        raise ValueError("xt must have at least one dimension (the sorted one), got a 0-d tensor")


def _run_values(xt, softness, mode, network="bitonic", distribution=None, art_lambda=None, count=None):
    """The network on ``xt`` ``(..., n)``: all its wires' values ``(..., N)`` (ascending on the real
    wires), the network and the weights ``s`` of every layer (each ``(..., blocks, d)``); with
    ``count`` (``(..., 1)``) only a row's first ``count`` entries are real wires."""
    _check_input(xt, mode, network, distribution, art_lambda)
    net = _net.get_network(xt.shape[-1], network, xt.device, xt.dtype)
    v, weights = _net.run(xt, row_softness(softness), net, mode, distribution, art_lambda, count)
    return v, net, weights


def _run(xt, softness, mode, network, distribution, art_lambda, kept):
    """:func:`_run_values` and, with ``kept``, on a row's kept entries first (with their
    :class:`~softtorch._core.sorting_networks.KeptFirst`, else ``None``)."""
    _check_input(xt, mode, network, distribution, art_lambda)
    if kept is None:
        return (*_run_values(xt, softness, mode, network, distribution, art_lambda), None)
    first = _net.KeptFirst(xt, kept)
    return (*_run_values(first.gather(xt), softness, mode, network, distribution, art_lambda, first.count), first)


def _safe_log(p: torch.Tensor) -> torch.Tensor:
    positive = p > 0
    return torch.where(positive, torch.log(torch.where(positive, p, torch.ones_like(p))), float("-inf"))


def permutation(
    xt,
    softness,
    mode,
    descending=False,
    rows=None,
    log=False,
    *,
    network="bitonic",
    distribution=None,
    art_lambda=None,
    kept=None,
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
        kept (Tensor, optional): bool ``(..., n)``, False at the entries excluded from the
            relaxation (their scores pushed out, as :mod:`softtorch._core.masking` does): the kept
            sorted slots and columns then hold the permutation of the kept entries alone.
            Default: ``None`` (every entry takes part).

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
    v, net, weights, kept_first = _run(xt, softness, mode, network, distribution, art_lambda, kept)
    return _permutation_from(xt, v, net, weights, descending, rows, log, kept_first)


def _permutation_from(xt, v, net: _net.Network, weights, descending, rows, log, kept_first=None):
    """:func:`permutation` from a run of the network (on the kept entries first with ``kept_first``)."""
    n = xt.shape[-1]
    if rows is None or isinstance(rows, slice):
        slots = torch.arange(n, device=xt.device)[slice(None) if rows is None else rows]
    else:
        slots = rows.to(device=xt.device, dtype=torch.long)
    ascending = (n - 1) - slots if descending else slots
    if rows is None:  # all of P, the kept rows brought to their slots
        perm = _net.full_permutation(xt, net, weights)
        if kept_first is not None:
            perm = perm.gather(-2, kept_first.wires(ascending).unsqueeze(-1).expand(perm.shape))
        elif descending:
            perm = perm.flip(-2)
    else:
        wires = net.offset + ascending if kept_first is None else kept_first.wires(ascending)
        perm = _net.permutation_rows(xt, net, weights, wires)
    if kept_first is not None:
        perm = kept_first.columns_back(perm)
    if not net.layers:  # n = 1: nothing to compare, a constant permutation
        perm = with_zero_grad(perm, xt)
    return _safe_log(perm) if log else perm


def sort_values(
    xt,
    softness,
    mode,
    descending=False,
    *,
    values=None,
    network="bitonic",
    distribution=None,
    art_lambda=None,
    kept=None,
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
        kept (Tensor, optional): bool ``(..., n)``, False at excluded entries (see
            :func:`permutation`): the kept sorted slots hold the soft sort of the kept entries
            alone. Default: ``None``.

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
    if values is not None:
        options = dict(network=network, distribution=distribution, art_lambda=art_lambda, kept=kept)
        return expect(permutation(xt, softness, mode, descending, **options), values)
    if kept is None:
        v, net, _ = _run_values(xt, softness, mode, network, distribution, art_lambda)
        v = v[..., net.offset : net.offset + xt.shape[-1]]
    else:
        _check_input(xt, mode, network, distribution, art_lambda)
        kept_first = _net.KeptFirst(xt, kept)
        v, net, _ = _run_values(
            kept_first.gather(xt), softness, mode, network, distribution, art_lambda, kept_first.count
        )
        n = xt.shape[-1]
        v = v[..., :n].gather(-1, kept_first.wires(torch.arange(n, device=xt.device)))
    return v.flip(-1) if descending else v
