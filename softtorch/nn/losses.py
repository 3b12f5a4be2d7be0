"""Loss layers for ranking and top-k objectives; the math lives in :mod:`softtorch.functional.losses`.

Each takes ``(input, target)`` and a ``reduction`` (``"mean"``, ``"sum"`` or ``"none"``) like
torch's losses, and a softness that can be learned like every softtorch layer's.
"""

from __future__ import annotations

from ..functional import losses as F
from ..methods import get_method
from .base import SoftModule

__all__ = ["SpearmanLoss", "KendallTauLoss", "TopKCrossEntropyLoss", "NDCGLoss"]

_LOSS_CHECKS = {"reduction": F.check_reduction}
_PERMUTATION_CHECKS = {**_LOSS_CHECKS, "method": lambda v: get_method(v, needs_indices=True)}


class SpearmanLoss(SoftModule):
    r"""``1 - ρ_soft``: one minus the soft Spearman correlation of :func:`softtorch.spearman_corrcoef`.

    Args:
        dim (int): the dimension holding each list. Default: ``-1``.
        softness, mode, method, standardize, ot_kwargs: as in :func:`softtorch.spearman_corrcoef`
            (``method`` defaults to ``"fast_soft_sort"``).
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``.
        straight_through, learnable, device, dtype: see :class:`softtorch.nn.SoftModule`.

    Shape:
        ``input`` and ``target``: :math:`(*)`; output: a scalar, or :math:`(*)` without ``dim``
        for ``reduction="none"``.

    Attributes:
        softness: the positive temperature in use.

    Example:
        >>> import torch, softtorch
        >>> loss = softtorch.nn.SpearmanLoss(softness=1.0)
        >>> loss(torch.tensor([[0.1, 0.9, 0.4, 0.3]]), torch.tensor([[1.0, 4.0, 3.0, 2.0]]))
        tensor(0.0455)
    """

    function = F.spearman_loss
    inputs = ("input", "target")
    config_checks = _LOSS_CHECKS


class KendallTauLoss(SoftModule):
    r"""``1 - τ_soft``: one minus the soft Kendall correlation of :func:`softtorch.kendall_tau`.

    Args:
        dim (int): the dimension holding each list. Default: ``-1``.
        softness, mode, standardize: as in :func:`softtorch.kendall_tau`.
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``.
        straight_through, learnable, device, dtype: see :class:`softtorch.nn.SoftModule`.

    Shape:
        ``input`` and ``target``: :math:`(*)`; output: a scalar, or :math:`(*)` without ``dim``
        for ``reduction="none"``.

    Attributes:
        softness: the positive temperature in use.

    Example:
        >>> import torch, softtorch
        >>> loss = softtorch.nn.KendallTauLoss(mode="hard")
        >>> loss(torch.tensor([0.1, 0.9, 0.4, 0.3]), torch.tensor([1.0, 4.0, 2.0, 3.0]))
        tensor(0.3333)
    """

    function = F.kendall_tau_loss
    inputs = ("input", "target")
    config_checks = _LOSS_CHECKS


class TopKCrossEntropyLoss(SoftModule):
    r"""Top-k cross-entropy of :func:`softtorch.topk_cross_entropy` (difftopk's ``TopKCrossEntropyLoss``).

    Args:
        k (int): the top-k the true class should be in. Default: ``1``.
        p_k (sequence of float, optional): a distribution over :math:`k = 1, \dots, K` replacing
            ``k``. Default: ``None``.
        softness, mode, method, standardize, ot_kwargs: as in :func:`softtorch.topk_cross_entropy`;
            ``method="sorting_network"`` is difftopk's relaxation.
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``.
        straight_through, learnable, device, dtype: see :class:`softtorch.nn.SoftModule`.

    Shape:
        ``input``: :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, ...)`; ``target``: class
        indices of ``input``'s shape without the class dim; output: a scalar, or ``target``'s
        shape for ``reduction="none"``.

    Attributes:
        softness: the positive temperature in use (learnable with ``learnable=True``).

    Example:
        >>> import torch, softtorch
        >>> loss = softtorch.nn.TopKCrossEntropyLoss(p_k=[0.5, 0.5], learnable=True)
        >>> out = loss(torch.tensor([[2.0, 1.0, 0.1, -1.0]]), torch.tensor([1]))
        >>> out.detach()
        tensor(0.5151)
    """

    function = F.topk_cross_entropy
    inputs = ("input", "target")
    config_checks = {**_PERMUTATION_CHECKS, "p_k": F.check_p_k}


class NDCGLoss(SoftModule):
    r"""``1 - NeuralNDCG@k`` of :func:`softtorch.ndcg`, for relevance labels of any shape :math:`(..., n)`.

    Args:
        k (int, optional): the cutoff; ``None`` uses the whole list. Default: ``None``.
        dim (int): the dimension holding each list. Default: ``-1``.
        softness, mode, method, standardize, ot_kwargs, sinkhorn_iter: as in :func:`softtorch.ndcg`.
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``.
        straight_through, learnable, device, dtype: see :class:`softtorch.nn.SoftModule`.

    Shape:
        ``input`` and ``target``: :math:`(*)`; output: a scalar, or :math:`(*)` without ``dim``
        for ``reduction="none"``.

    Attributes:
        softness: the positive temperature in use.

    Example:
        >>> import torch, softtorch
        >>> loss = softtorch.nn.NDCGLoss(k=2, mode="hard")
        >>> loss(torch.tensor([0.2, 0.9, 0.4, 0.1]), torch.tensor([2.0, 0.0, 1.0, 0.0]))
        tensor(0.8262)
    """

    function = F.ndcg_loss
    inputs = ("input", "target")
    config_checks = {**_PERMUTATION_CHECKS, "k": F.check_ndcg_k, "sinkhorn_iter": F.check_sinkhorn_iter}
