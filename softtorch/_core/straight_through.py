"""The straight-through combinator: hard values forward, soft gradients backward."""

from __future__ import annotations

import functools
import inspect

import torch

from .checks import check_mode

__all__ = ["straight_through", "st", "grad_replace"]


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
    if isinstance(hard, list):
        return [_combine(h, s) for h, s in zip(hard, soft)]
    if isinstance(hard, dict):
        return {key: _combine(value, soft[key]) for key, value in hard.items()}
    raise TypeError(f"straight-through expects tensors, or tuples, lists or dicts of them, got {type(hard).__name__}")


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


def _mode_parameter(fn):
    """``fn``'s default ``mode`` ("smooth" when it has none) and the position at which it takes
    ``mode`` positionally (None when it cannot)."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return "smooth", None
    for position, p in enumerate(parameters):
        if p.name == "mode" and p.kind is not inspect.Parameter.VAR_KEYWORD:
            default = "smooth" if p.default is inspect.Parameter.empty else p.default
            positional = p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            return default, (position if positional else None)
    return "smooth", None


def st(fn):
    """Turn a softtorch function with a ``mode`` argument into its straight-through twin.

    The twin computes the hard result in the forward pass and backpropagates the gradient of the
    soft result in the requested ``mode``: ``(hard - soft).detach() + soft``, applied to every
    tensor of the output. The twin's ``mode`` defaults to ``fn``'s own default (``"smooth"`` when
    ``fn`` has no ``mode`` parameter), and may be given positionally where ``fn`` takes it so.

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
    default, position = _mode_parameter(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if position is not None and len(args) > position:
            if "mode" in kwargs:
                raise TypeError(f"{wrapper.__name__}() got multiple values for argument 'mode'")
            mode = args[position]

            def call(m):
                return fn(*args[:position], m, *args[position + 1 :], **kwargs)

        else:
            mode = kwargs.pop("mode", default)

            def call(m):
                return fn(*args, mode=m, **kwargs)

        check_mode(mode)
        if mode == "hard":
            return call("hard")
        return _combine(call("hard"), call(mode))

    wrapper.__doc__ = (
        f"Straight-through :func:`~softtorch.{fn.__name__}`: the hard result forward, the gradient of the "
        f"soft result (in ``mode``) backward. Takes the same arguments as :func:`~softtorch.{fn.__name__}`."
    )
    wrapper.__name__ = f"{fn.__name__}_st"
    wrapper.__qualname__ = wrapper.__name__
    return wrapper


def grad_replace(fn):
    """Decorate a function taking ``forward: bool``: its ``forward=True`` result, with the gradient
    of its ``forward=False`` result.

    The wrapped function is called twice, and every tensor of the output is
    ``(forward_result - backward_result).detach() + backward_result``. It is :func:`st` for
    functions that choose their computation with a flag instead of a ``mode``.

    Example:
        >>> import torch, softtorch
        >>> @softtorch.grad_replace
        ... def step(x, forward=True):
        ...     return (x > 0).to(x.dtype) if forward else torch.sigmoid(x)
        >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
        >>> y = step(x)
        >>> y.detach()
        tensor([0., 1.])
        >>> y.sum().backward(); x.grad
        tensor([0.1966, 0.1050])
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return _combine(fn(*args, forward=True, **kwargs), fn(*args, forward=False, **kwargs))

    return wrapper
