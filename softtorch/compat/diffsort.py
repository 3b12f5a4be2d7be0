r"""Drop-in ``DiffSortNet`` (diffsort 0.2.0) and ``DiffTopkNet`` (difftopk 0.2.0) on softtorch's networks.

Switching is one line::

    # from diffsort import DiffSortNet
    from softtorch.compat.diffsort import DiffSortNet

The layers take the peers' arguments and return their outputs in their conventions:

* the input is a ``(batch, size)`` matrix, sorted ascending along dim 1, on the raw values (no
  standardization, unlike :func:`softtorch.sort`);
* the permutation is ``X[b, i, j]`` = weight of input element ``i`` in sorted slot ``j``, so
  ``sorted = (x.unsqueeze(1) @ X).squeeze(1)``: the transpose of softtorch's ``P[..., slot, element]``;
* ``steepness`` is ``1 / softness``, ``distribution`` the compare-and-swap relaxation (see
  :mod:`softtorch.methods.sorting_network`) and ``art_lambda`` the exponent of ``"logistic_phi"``;
* ``"bitonic"`` pads ``size`` to a power of two as diffsort does: padding wires come first and every
  comparator that touches one is skipped. For sizes that are not powers of two this is a different
  network from softtorch's own ``method_options={"network": "bitonic"}`` (which pads with
  :math:`+\infty` sentinels), and for a few sizes (22 among 2..33) diffsort's layout does not sort
  exactly even as the steepness grows; it is reproduced as is. ``"odd_even"`` needs no padding.

``device`` is accepted for the signature and ignored: the network runs where the input lies.
``return_permutation=False`` (an addition) skips the permutation and returns ``(values, None)``,
in :math:`O(n \log^2 n)` memory per row for the bitonic network.
"""

from __future__ import annotations

import torch

from .._core.checks import check_bool, check_choice, check_nonnegative, check_positive, check_positive_int
from .._core.precision import compute_dtype
from .._core.sorting_networks import DIFFSORT_BITONIC
from ..methods import sorting_network as _network

__all__ = ["DiffSortNet", "DiffTopkNet"]

#: The ``sorting_network_type`` values, mapped to softtorch's layouts.
NETWORK_TYPES = {"bitonic": DIFFSORT_BITONIC, "odd_even": "odd_even"}


def _distribution(distribution, interpolation_type):
    """diffsort's rule: ``interpolation_type`` (deprecated) overrides the default ``distribution``."""
    if interpolation_type is not None:
        check_choice("interpolation_type", interpolation_type, _network.DISTRIBUTIONS)
        if distribution not in (None, "cauchy", interpolation_type):
            raise ValueError(
                f"distribution and interpolation_type name the same thing; got distribution={distribution!r} "
                f"and interpolation_type={interpolation_type!r}"
            )
        return interpolation_type
    return check_choice("distribution", distribution, _network.DISTRIBUTIONS)


def _configure(layer, sorting_network_type, size, steepness, art_lambda, interpolation_type, distribution):
    """Check and store the configuration the two layers share."""
    check_choice("sorting_network_type", sorting_network_type, tuple(NETWORK_TYPES))
    layer.sorting_network_type = sorting_network_type
    layer.size = check_positive_int("size", size)
    layer.steepness = check_positive("steepness", steepness)
    layer.art_lambda = check_nonnegative("art_lambda", art_lambda)
    layer.distribution = _distribution(distribution, interpolation_type)


def _run(layer, vectors):
    """The network on ``vectors``: ``(vectors in the compute dtype, values of all wires, network, weights)``."""
    if not isinstance(vectors, torch.Tensor) or not vectors.is_floating_point():
        raise TypeError(f"vectors must be a floating-point torch.Tensor, got {type(vectors).__name__}")
    if vectors.dim() != 2 or vectors.shape[1] != layer.size:
        raise ValueError(f"vectors must have shape (batch, {layer.size}), got {tuple(vectors.shape)}")
    x = vectors.to(compute_dtype(vectors.dtype))
    lam = layer.art_lambda if layer.distribution == "logistic_phi" else None
    net = NETWORK_TYPES[layer.sorting_network_type]
    v, layout, weights = _network._run_values(x, 1.0 / layer.steepness, "smooth", net, layer.distribution, lam)
    return x, v, layout, weights


def _repr(layer, k=None) -> str:
    size = f"size={layer.size}" + ("" if k is None else f", k={k}")
    lam = f", art_lambda={layer.art_lambda}" if layer.distribution == "logistic_phi" else ""
    return (
        f"{layer.sorting_network_type!r}, {size}, steepness={layer.steepness}, distribution={layer.distribution!r}{lam}"
    )


class DiffSortNet(torch.nn.Module):
    r"""Sort the rows of a matrix with a differentiable sorting network; diffsort's ``DiffSortNet``.

    Args:
        sorting_network_type (str): ``"bitonic"`` or ``"odd_even"``.
        size (int): the number of elements of every row.
        device: accepted for diffsort's signature; the network runs on the input's device.
        steepness (float): inverse temperature, ``1 / softness``. Default: ``10.0``.
        art_lambda (float): exponent of ``"logistic_phi"``. Default: ``0.25``.
        interpolation_type (str, optional): diffsort's deprecated name of ``distribution``.
        distribution (str): ``"logistic"``, ``"logistic_phi"``, ``"cauchy"``, ``"gaussian"``,
            ``"reciprocal"`` or ``"optimal"``. Default: ``"cauchy"``.
        return_permutation (bool): return the permutation matrices (keyword only; not in diffsort).
            Default: ``True``.

    Shape:
        - Input: ``(B, size)``.
        - Output: ``(B, size)`` ascending values and ``(B, size, size)`` permutations ``X`` with
          ``X[b, i, j]`` the weight of element ``i`` in slot ``j``.

    Example:
        >>> from softtorch.compat.diffsort import DiffSortNet
        >>> sorter = DiffSortNet("bitonic", 4, steepness=20.0)  # Cauchy relaxation
        >>> values, X = sorter(torch.tensor([[0.3, 0.1, 0.8, 0.5]]))
        >>> values
        tensor([[0.1470, 0.2846, 0.5158, 0.7526]])
        >>> X.round(decimals=2)
        tensor([[[0.1500, 0.7900, 0.0600, 0.0100],
                 [0.8200, 0.1500, 0.0100, 0.0200],
                 [0.0200, 0.0100, 0.1000, 0.8700],
                 [0.0100, 0.0600, 0.8300, 0.1000]]])
    """

    def __init__(
        self,
        sorting_network_type: str,
        size: int,
        device="cpu",
        steepness: float = 10.0,
        art_lambda: float = 0.25,
        interpolation_type: str | None = None,
        distribution: str = "cauchy",
        *,
        return_permutation: bool = True,
    ):
        super().__init__()
        _configure(self, sorting_network_type, size, steepness, art_lambda, interpolation_type, distribution)
        self.device = device
        check_bool("return_permutation", return_permutation)
        self.return_permutation = return_permutation

    def forward(self, vectors):
        x, v, net, weights = _run(self, vectors)
        values = v[..., net.offset : net.offset + self.size].to(vectors.dtype)
        if not self.return_permutation:
            return values, None
        perm = _network._permutation_from(x, v, net, weights, False, None, False)
        return values, perm.mT.to(vectors.dtype)

    def extra_repr(self) -> str:
        return _repr(self)


class DiffTopkNet(torch.nn.Module):
    r"""Soft top-k membership from a differentiable sorting network; difftopk's ``DiffTopkNet``.

    Returns ``(None, X)`` like difftopk: ``X[b, i, j]`` is the weight of element ``i`` in slot
    ``size - k + j`` of the ascending order, so the last column is the soft argmax. The ``k`` rows of
    the permutation are pulled back through the network without forming it.

    Args:
        sorting_network_type (str): ``"bitonic"`` or ``"odd_even"``.
        size (int): the number of elements of every row.
        k (int): the number of top slots, ``1 <= k <= size``.
        sparse (bool): difftopk's sparse networks need ``torch_sparse``; only ``False`` is supported.
        device: accepted for difftopk's signature; the network runs on the input's device.
        steepness (float): inverse temperature, ``1 / softness``. Default: ``10.0``.
        art_lambda (float): exponent of ``"logistic_phi"``. Default: ``0.25``.
        interpolation_type (str, optional): the deprecated name of ``distribution``.
        distribution (str): the relaxation, as for :class:`DiffSortNet`. Default: ``"cauchy"``.

    Shape:
        - Input: ``(B, size)``.
        - Output: ``None`` and ``(B, size, k)``.

    Example:
        >>> from softtorch.compat.diffsort import DiffTopkNet
        >>> _, X = DiffTopkNet("odd_even", 4, k=2, steepness=20.0)(torch.tensor([[0.3, 0.1, 0.8, 0.5]]))
        >>> X.round(decimals=2)  # columns: the second largest, the largest
        tensor([[[0.1100, 0.0000],
                 [0.0100, 0.0000],
                 [0.0900, 0.9000],
                 [0.7800, 0.1000]]])
    """

    def __init__(
        self,
        sorting_network_type: str,
        size: int,
        k: int,
        sparse: bool = False,
        device="cpu",
        steepness: float = 10.0,
        art_lambda: float = 0.25,
        interpolation_type: str | None = None,
        distribution: str = "cauchy",
    ):
        super().__init__()
        _configure(self, sorting_network_type, size, steepness, art_lambda, interpolation_type, distribution)
        self.device = device
        self.k = check_positive_int("k", k, high=self.size)
        check_bool("sparse", sparse)
        if sparse:
            raise ValueError(
                "sparse must be False: difftopk's sparse networks (torch_sparse) are not supported, got True"
            )
        self.sparse = sparse

    def forward(self, vectors):
        x, v, net, weights = _run(self, vectors)
        rows = slice(self.size - self.k, self.size)
        return None, _network._permutation_from(x, v, net, weights, False, rows, False).mT.to(vectors.dtype)

    def extra_repr(self) -> str:
        return _repr(self, self.k)
