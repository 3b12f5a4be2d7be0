r"""Standardization of the sorted dimension (SPEC 4.1).

.. math::
    \tilde x = \operatorname{sigmoid}\!\left(\frac{x - \mu}{\sqrt{\operatorname{var}(x) + 10^{-6}}}\right)

along the last axis (population variance). It makes every sorting method invariant to
:math:`a x + b` with :math:`a > 0` and keeps the scores in :math:`(0, 1)`, where one softness
scale fits all inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .forward_mode import apply

__all__ = ["Standardized", "standardize", "VAR_EPS"]

VAR_EPS = 1e-6


class Standardized(NamedTuple):
    """The squashed scores and the statistics needed to map values back."""

    scores: torch.Tensor
    mean: torch.Tensor | None
    std: torch.Tensor | None

    def inverse(self, values: torch.Tensor) -> torch.Tensor:
        r"""Map values from the squashed space back (identity if not standardized).

        .. math::
            x = \operatorname{logit}(\operatorname{clamp}(v, \epsilon, 1 - \epsilon))\, \sigma + \mu

        with :math:`\epsilon` the machine epsilon of ``values``' dtype.
        """
        if self.mean is None:
            return values
        eps = torch.finfo(values.dtype).eps
        # logit(v, eps) clamps to [eps, 1 - eps] itself, with the clamp's gradient mask.
        return torch.logit(values, eps) * self.std + self.mean


class _Standardize(torch.autograd.Function):
    r"""The masked standardization :math:`t = (x - \mu) / \sigma` with its statistics and a closed-form VJP.

    Over the finite entries :math:`F` of a row (:math:`n = \max(|F|, 1)`),

    .. math::
        \mu = \frac1n \sum_{i \in F} x_i, \qquad
        \sigma = \sqrt{\frac1n \sum_{i \in F} (x_i - \mu)^2 + 10^{-6}}, \qquad
        t = \frac{x - \mu}{\sigma}.

    Outputs ``(t, t_finite, mean, std, finite, count)``: ``t_finite`` is :math:`t` with the
    non-finite entries zeroed (the backward's copy of :math:`t`, an output so that the backward stays
    differentiable), ``finite`` (the 0/1 indicator of :math:`F`) and ``count`` (:math:`n`) are
    constants. With cotangents :math:`g` (of :math:`t`), :math:`g_\mu, g_\sigma` and
    :math:`\bar t = t \mathbb 1_F`, the gradient at :math:`i \in F` is

    .. math::
        \frac{g_i - \overline{g} - \bar t_i\, \overline{g \bar t}}{\sigma}
        + \frac{g_\mu + g_\sigma \bar t_i}{n},

    bars being means over :math:`F`; it is 0 off :math:`F`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor):
        # No host sync and no boolean temporaries: x - x is 0 on finite entries and NaN on the others.
        finite = torch.sub(x, x).add_(1.0).nan_to_num_(nan=0.0)
        count = finite.sum(-1, keepdim=True).clamp_min_(1.0)
        zeroed = x.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        mean = zeroed.sum(-1, keepdim=True).div_(count)
        spread = zeroed.sub_(mean).mul_(finite)
        std = (spread * spread).sum(-1, keepdim=True).div_(count).add_(VAR_EPS).sqrt_()
        t = torch.sub(x, mean).div_(std)
        return t, spread.div_(std), mean, std, finite, count

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, t_finite, _, std, finite, count = output
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(finite, count)
        ctx.save_for_backward(t_finite, std, finite, count)
        ctx.save_for_forward(t_finite, std, finite, count)

    @staticmethod
    def backward(ctx, grad_t, grad_t_finite, grad_mean, grad_std, _grad_finite, _grad_count):
        t_finite, std, finite, count = ctx.saved_tensors
        if grad_t_finite is not None:  # t_finite is t on the finite entries, where the gradient lives
            grad_t = grad_t_finite if grad_t is None else grad_t + grad_t_finite
        if grad_t is None and grad_mean is None and grad_std is None:
            return None
        # Per-row coefficients of 1 and of t in the gradient through mean and std.
        k_one = torch.zeros_like(count) if grad_mean is None else grad_mean / count
        k_t = torch.zeros_like(count) if grad_std is None else grad_std / count
        if grad_t is None:
            return torch.addcmul(finite * k_one, t_finite, k_t)
        # grad = (g + c_one * finite + c_t * t_finite) / std: the per-row c_one and c_t gather the
        # centring of g, the rescaling of t and the mean and std cotangents (all times std).
        g = grad_t * finite
        c_one = std * k_one - g.sum(-1, keepdim=True) / count
        c_t = std * k_t - (g * t_finite).sum(-1, keepdim=True) / count
        return torch.addcmul(torch.addcmul(g, finite, c_one), t_finite, c_t) / std

    @staticmethod
    def tangent(ctx, x_tangent):
        r"""Forward mode: :math:`\dot\mu = \overline{\dot x}`, :math:`\dot\sigma = \overline{\bar t \dot x}`,
        :math:`\dot t = (\dot x - \dot\mu - \bar t \dot\sigma) / \sigma` on the finite entries (0 elsewhere)."""
        t_finite, std, finite, count = ctx.saved_tensors
        dx = x_tangent * finite
        d_mean = dx.sum(-1, keepdim=True) / count
        d_std = (dx * t_finite).sum(-1, keepdim=True) / count
        d_t = (dx - finite * d_mean - t_finite * d_std) / std
        return d_t, d_t, d_mean, d_std, None, None


def standardize(x: torch.Tensor, enabled: bool = True) -> Standardized:
    r"""Squash ``x`` along its last axis (``enabled=False`` passes it through).

    .. math::
        \tilde x = \operatorname{sigmoid}\!\left(\frac{x - \mu}{\sigma}\right), \qquad
        \sigma = \sqrt{\operatorname{var}(x) + 10^{-6}}

    with the mean and population variance over the finite entries only, so :math:`\pm\infty`
    squash to exactly 1 and 0 instead of turning the whole row into NaN (a NaN still gives a NaN
    score, in its own row only). Gradients reach ``x`` through the scores and through ``mean`` and
    ``std``, computed in closed form (see :class:`_Standardize`): 0 at the :math:`\pm\infty`
    entries and finite at the others; a row holding a NaN gets NaN gradients through its scores,
    as under plain autograd, and no other row is touched.
    """
    if not enabled:
        return Standardized(x, None, None)
    t, _, mean, std, _, _ = apply(_Standardize, x)
    return Standardized(torch.sigmoid(t), mean, std)
