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

__all__ = ["Standardized", "standardize", "VAR_EPS"]

VAR_EPS = 1e-6


class Standardized(NamedTuple):
    """The squashed scores and the statistics needed to map values back."""

    scores: torch.Tensor
    mean: torch.Tensor | None
    std: torch.Tensor | None

    def inverse(self, values: torch.Tensor) -> torch.Tensor:
        """Map values from the squashed space back: ``logit(v) * std + mean`` (identity if not standardized)."""
        if self.mean is None:
            return values
        eps = torch.finfo(values.dtype).eps
        return torch.logit(values.clamp(eps, 1.0 - eps)) * self.std + self.mean


def standardize(x: torch.Tensor, enabled: bool = True) -> Standardized:
    """Squash ``x`` along its last axis (``enabled=False`` passes it through)."""
    if not enabled:
        return Standardized(x, None, None)
    # Statistics over the finite entries only, so +-inf squash to exactly 1 and 0 instead of
    # turning the whole row into NaN (a NaN still makes its own row NaN through its score).
    finite = torch.isfinite(x)
    count = finite.sum(-1, keepdim=True).clamp_min(1).to(x.dtype)
    mean = torch.where(finite, x, torch.zeros_like(x)).sum(-1, keepdim=True) / count
    centred = x - mean
    spread = torch.where(finite, centred, torch.zeros_like(x))
    std = torch.sqrt((spread * spread).sum(-1, keepdim=True) / count + VAR_EPS)
    return Standardized(torch.sigmoid(centred / std), mean, std)
