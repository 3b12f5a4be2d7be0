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
    mean = x.mean(-1, keepdim=True)
    centred = x - mean
    std = torch.sqrt((centred * centred).mean(-1, keepdim=True) + VAR_EPS)
    return Standardized(torch.sigmoid(centred / std), mean, std)
