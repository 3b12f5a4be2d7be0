"""The straight-through combinator: hard values forward, soft gradients backward."""

from __future__ import annotations

import functools

import torch

from .checks import check_mode

__all__ = ["straight_through", "st"]


def _combine(hard, soft):
    if hard is None or soft is None:
        # A method without a permutation (fast_soft_sort) gives no soft indices: the hard ones
        # (zero gradient) are the result.
        return hard
    if isinstance(hard, torch.Tensor):
        # hard - (soft - soft) rather than (hard - soft) + soft: the forward value is the hard
        # result bit for bit (signed zeros included); the gradient is the soft one. A soft value
        # that is not finite (an expectation with weight on an infinite input) would make
        # inf - inf: there the zero is written out, and the hard value passes unchanged.
        finite = torch.isfinite(soft.detach())
        return hard.detach() - torch.where(finite, soft.detach() - soft, 0.0)
    if isinstance(hard, tuple):
        parts = [_combine(h, s) for h, s in zip(hard, soft)]
        # namedtuples take fields positionally; torch.return_types take one sequence
        return type(hard)(*parts) if hasattr(hard, "_fields") else type(hard)(parts)
    raise TypeError(f"straight-through expects tensors or tuples of tensors, got {type(hard).__name__}")


def straight_through(fn, *args, mode: str = "smooth", **kwargs):
    """Call ``fn`` in hard and in ``mode`` and return ``(hard - soft).detach() + soft``.

    The result has the hard values and the gradient of the soft result.
    """
    check_mode(mode)
    if mode == "hard":
        return fn(*args, mode="hard", **kwargs)
    hard = fn(*args, mode="hard", **kwargs)
    soft = fn(*args, mode=mode, **kwargs)
    return _combine(hard, soft)


def st(fn):
    """Turn a softtorch function with a ``mode`` argument into its straight-through twin.

    The twin computes the hard result in the forward pass and backpropagates the gradient of the
    soft result in the requested ``mode``: ``(hard - soft).detach() + soft``, applied to every
    tensor of the output.

    Example:
        >>> import torch, softtorch
        >>> relu_st = softtorch.st(softtorch.relu)
        >>> x = torch.tensor([-0.2, 0.3], requires_grad=True)
        >>> y = relu_st(x)
        >>> y.detach()
        tensor([0.0000, 0.3000])
        >>> y.sum().backward(); x.grad
        tensor([0.1192, 0.9526])
    """

    @functools.wraps(fn)
    def wrapper(*args, mode: str = "smooth", **kwargs):
        return straight_through(fn, *args, mode=mode, **kwargs)

    wrapper.__doc__ = (
        f"Straight-through :func:`~softtorch.{fn.__name__}`: the hard result forward, the gradient of the "
        f"soft result (in ``mode``) backward. Takes the same arguments as :func:`~softtorch.{fn.__name__}`."
    )
    wrapper.__name__ = f"{fn.__name__}_st"
    wrapper.__qualname__ = wrapper.__name__
    return wrapper
