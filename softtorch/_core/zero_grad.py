"""Attaching a zero gradient to a hard (piecewise constant) result."""

from __future__ import annotations

import torch

from .forward_mode import apply

__all__ = ["with_zero_grad"]


class _ZeroGrad(torch.autograd.Function):
    """Returns ``value`` unchanged; the inputs it is attached to receive zero gradients."""

    generate_vmap_rule = True

    @staticmethod
    def forward(value, *inputs):
        return value.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_forward(output)
        ctx.shapes = [(t.shape, t.dtype, t.device) if isinstance(t, torch.Tensor) else None for t in inputs[1:]]

    @staticmethod
    def backward(ctx, grad):
        zeros = [None if s is None else torch.zeros(s[0], dtype=s[1], device=s[2]) for s in ctx.shapes]
        return (None, *zeros)

    @staticmethod
    def tangent(ctx, *tangents):
        (value,) = ctx.saved_tensors
        return torch.zeros_like(value)


def with_zero_grad(value: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
    """``value`` (a step of ``inputs``) connected to the graph with a zero gradient.

    Hard-mode outputs of step functions are piecewise constant: their true gradient is zero
    almost everywhere. Attaching it keeps ``loss.backward()`` working when the hard output is the
    only path from the loss to the inputs, without the NaNs an expression like ``0 * x`` gives at
    infinite inputs.
    """
    if not any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs):
        return value
    return apply(_ZeroGrad, value, *inputs)
