r"""torchsort's ``soft_sort`` and ``soft_rank`` on softtorch's isotonic solver.

A drop-in for `torchsort <https://github.com/teddykoker/torchsort>`_ 0.1.10: replace
``import torchsort`` by ``from softtorch.compat import torchsort`` and every call keeps its
numbers and gradients, in pure PyTorch (no C++/CUDA extension to build).

Both functions project onto a permutahedron (Blondel et al., 2020) with torchsort's conventions:
the last dimension of a 2-D tensor, ascending order, rank 1 for the smallest element, and the
strength :math:`\varepsilon` (``regularization_strength``) dividing the integer slots
:math:`\rho = (n, n - 1, \dots, 1)`:

.. math::
    \operatorname{soft\_rank}(x) = P_\Psi\!\left(\frac{x}{\varepsilon},\ \rho\right), \qquad
    \operatorname{soft\_sort}(x) = -P_\Psi\!\left(\frac{\rho}{\varepsilon},\ -x\right),

with :math:`P_\Psi(z, w) = \operatorname{argmin}_{\mu \in \mathcal{P}(w)} \Psi(\mu) - \langle z,
\mu \rangle` over the convex hull :math:`\mathcal{P}(w)` of the permutations of :math:`w`, and
:math:`\Psi` the regularization: ``"l2"``, :math:`\tfrac12 \|\mu\|^2` (softtorch's mode ``"c0"``),
or ``"kl"``, the entropy :math:`\langle \mu, \log \mu - 1 \rangle` (softtorch's ``"smooth"``). For
``"kl"`` torchsort takes the ranks as the projection itself (:math:`\mathcal{P}(\rho)`, so
:math:`\mu = e^{\nu}` for the log-space solution :math:`\nu` of :math:`\mathcal{P}(\log \rho)`) and
the sorted values in log space (:math:`-x` as the exponents of :math:`\mathcal{P}(e^{-x})`); both
are reproduced. As :math:`\varepsilon \to 0` the outputs tend to the hard sort and the ranks
``1..n``; large strengths pool everything to the mean.

**Relation to softtorch's own operators.** With ``method="fast_soft_sort", mode="c0",
standardize=False``, ``softtorch.sort(x, softness=s).values`` equals
``soft_sort(x, "l2", (n - 1) * s)`` and ``softtorch.rank(x, descending=False, softness=s)`` equals
``soft_rank(x, "l2", s / (n - 1))``: softtorch's slots are :math:`a_j = j / (n - 1)`, torchsort's
:math:`j + 1`; a constant added to the slots does not move the projection, and the Euclidean
projection is positively homogeneous, so the factor :math:`n - 1` of the slots moves into the
strength (sorting divides the slots by it, ranking the scores). By default softtorch also
standardizes: it projects :math:`\tilde x = \operatorname{sigmoid}((x - \text{mean}) / \text{std})`
and maps sorted values back, so its softness is a fraction of the range :math:`(0, 1)` of
:math:`\tilde x`, the same for every input scale, where torchsort's strength is in the units of
:math:`x`. softtorch's ``"smooth"`` mode is the entropic projection in log space for both
operators, so it matches neither ``"kl"`` function exactly.

Beyond torchsort: ``dim=`` sorts or ranks any dimension of a tensor of any shape (``dim=None``,
the default, is torchsort's: a 2-D tensor, its last dimension); half precision is computed in
float32; integer inputs are converted to the default floating dtype; a tensor strength receives
gradients. As in torchsort, neighbours of equal value are pooled: where the projection has a kink
(``soft_rank`` of ``1, 2, ..., n`` at strength 1), the gradient is the pooled one.

.. seealso::
    :func:`softtorch.sort`, :func:`softtorch.rank` with ``method="fast_soft_sort"``;
    M. Blondel, O. Teboul, Q. Berthet, J. Djolonga, "Fast Differentiable Sorting and Ranking",
    ICML 2020.
"""

from __future__ import annotations

import torch

from .._core.checks import check_choice, check_dim, check_positive, describe
from .._core.isotonic import project_sorted, sort_descending
from .._core.precision import compute_dtype

__all__ = ["soft_sort", "soft_rank"]

#: torchsort's regularization names and softtorch's mode for each.
REGULARIZATIONS = {"l2": "c0", "kl": "smooth"}


def _prepare(values, regularization, regularization_strength, dim):
    """Checks; returns the input moved to the last dimension in its compute dtype, the mode, the
    strength, and the dimension to move back (None when nothing moved)."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values must be a torch.Tensor, got {describe(values)}")
    check_choice("regularization", regularization, tuple(REGULARIZATIONS))
    if isinstance(regularization_strength, torch.Tensor):
        if not regularization_strength.is_floating_point() or regularization_strength.numel() != 1:
            raise TypeError(
                "regularization_strength must be a positive number or a one-element floating tensor, "
                f"got {describe(regularization_strength)}"
            )
    else:
        check_positive("regularization_strength", regularization_strength)
    if dim is None:
        if values.dim() != 2:
            raise ValueError(
                f"values must be a 2-D tensor (batch, n) when dim is None (torchsort's convention), "
                f"got shape {tuple(values.shape)}; pass dim= for other shapes"
            )
        moved = None
    else:
        if values.dim() == 0:
            raise ValueError("values must have at least one dimension to sort, got a 0-d tensor")
        moved = check_dim(dim, values.dim())
    x = values if values.is_floating_point() else values.to(torch.get_default_dtype())
    x = x.to(compute_dtype(x.dtype))
    if moved is not None:
        x = x.movedim(moved, -1)
    strength = regularization_strength
    if isinstance(strength, torch.Tensor):
        strength = strength.to(x.dtype).reshape(())
    return x, REGULARIZATIONS[regularization], strength, moved


def _finish(out: torch.Tensor, values: torch.Tensor, moved) -> torch.Tensor:
    if moved is not None:
        out = out.movedim(-1, moved)
    return out.to(values.dtype) if values.is_floating_point() else out


def _slots(x: torch.Tensor) -> torch.Tensor:
    """torchsort's slots ``n, n - 1, ..., 1`` (decreasing), shaped like ``x``."""
    n = x.shape[-1]
    return torch.arange(n, 0, -1, dtype=x.dtype, device=x.device).expand_as(x)


def soft_sort(values, regularization="l2", regularization_strength=1.0, *, dim=None):
    r"""Soft sorted values, ascending, as ``torchsort.soft_sort``.

    .. math::
        \operatorname{soft\_sort}(x) = -P_\Psi\!\left(\frac{\rho}{\varepsilon},\ -x\right),
        \qquad \rho = (n, \dots, 1)

    (see the module documentation); ``"l2"`` values are a convex combination of the sorted
    ``values`` keeping their sum, ``"kl"`` ones keep the sum of :math:`e^{-x}`.

    Args:
        values (Tensor): ``(batch, n)`` (any shape with ``dim``).
        regularization (str): ``"l2"`` or ``"kl"``. Default: ``"l2"``.
        regularization_strength (float or Tensor): :math:`\varepsilon > 0`; smaller is closer to
            the hard sort. Default: ``1.0``.
        dim (int, optional): the dimension to sort; ``None`` is torchsort's convention (a 2-D
            tensor, the last dimension). Default: ``None``.

    Shape:
        Output: the shape of ``values``.

    Returns:
        Tensor: the soft sorted values, nondecreasing along the sorted dimension.

    Example:
        >>> x = torch.tensor([[8.0, 0.0, 5.0, 3.0, 2.0, 1.0, 6.0, 7.0, 9.0]])
        >>> soft_sort(x, regularization_strength=1.0)
        tensor([[0.5556, 1.5556, 2.5556, 3.5556, 4.5556, 5.5556, 6.5556, 7.5556, 8.5556]])
        >>> soft_sort(x, regularization_strength=0.1).abs()  # the sign of 0 varies, as in torchsort
        tensor([[0., 1., 2., 3., 5., 6., 7., 8., 9.]])
    """
    x, mode, strength, moved = _prepare(values, regularization, regularization_strength, dim)
    w = sort_descending(-x)[0]
    return _finish(-project_sorted(_slots(x) / strength, w, mode, ties=True), values, moved)


def soft_rank(values, regularization="l2", regularization_strength=1.0, *, dim=None):
    r"""Soft ranks, 1 for the smallest element, as ``torchsort.soft_rank``.

    .. math::
        \operatorname{soft\_rank}(x) = P_\Psi\!\left(\frac{x}{\varepsilon},\ \rho\right),
        \qquad \rho = (n, \dots, 1)

    (see the module documentation); ranks lie in ``[1, n]``; ``"l2"`` ranks sum to
    :math:`n (n + 1) / 2`.

    Args:
        values (Tensor): ``(batch, n)`` (any shape with ``dim``).
        regularization (str): ``"l2"`` or ``"kl"``. Default: ``"l2"``.
        regularization_strength (float or Tensor): :math:`\varepsilon > 0`; smaller is closer to
            the hard ranks. Default: ``1.0``.
        dim (int, optional): the dimension to rank; ``None`` is torchsort's convention (a 2-D
            tensor, the last dimension). Default: ``None``.

    Shape:
        Output: the shape of ``values``.

    Returns:
        Tensor: the soft ranks, in the order of ``values``.

    Example:
        >>> x = torch.tensor([[8.0, 0.0, 5.0, 3.0, 2.0, 1.0, 6.0, 7.0, 9.0]])
        >>> soft_rank(x)
        tensor([[8., 1., 5., 4., 3., 2., 6., 7., 9.]])
        >>> soft_rank(torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]), "kl", 2.0)
        tensor([[1.1326, 1.8674, 3.0000, 4.0000, 5.0000]])
    """
    x, mode, strength, moved = _prepare(values, regularization, regularization_strength, dim)
    s, order = sort_descending(x / strength, with_order=True)
    rho = _slots(x)
    if mode == "smooth":
        out = torch.exp(project_sorted(s, torch.log(rho), mode, ties=True))
    else:
        out = project_sorted(s, rho, mode, ties=True)
    return _finish(torch.empty_like(out).scatter(-1, order, out), values, moved)
