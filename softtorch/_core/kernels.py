r"""The elementwise mode kernels.

Every soft operator is built on one sigmoidal kernel :math:`\sigma_{mode}(z)` of the scaled
argument :math:`z = x / \text{softness}` and on its antiderivative (the soft ReLU). The
polynomial modes are exactly 0 or 1 outside :math:`|z| \le 5` and continuous (c0), once (c1)
or twice (c2) continuously differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import SOFT_MODES

__all__ = ["WINDOW", "sigmoidal_kernel", "relu_kernel", "soft_abs"]

_SOFT_CHOICES = ", ".join(map(repr, SOFT_MODES))

#: Half-width of the transition of the polynomial modes, in units of softness.
WINDOW = 5.0


def _window(z: torch.Tensor) -> torch.Tensor:
    """``clamp(z / 5, -1, 1)``, whose derivative keeps a graph to ``z``.

    :func:`torch.clamp`'s derivative is a mask with no graph, so a double backward through the c0
    kernel (linear in the clamp) would find nothing to differentiate. Inside the window the term
    ``relu(w - 1)`` is exactly 0 and so is its derivative, but that derivative is built from ``w``
    (as :func:`torch.relu`'s is): the second derivative comes out as the zero it is.
    """
    w = z / WINDOW
    return torch.where(w.abs() <= 1.0, w - F.relu(w - 1.0), w.clamp(-1.0, 1.0))


def sigmoidal_kernel(z: torch.Tensor, mode: str) -> torch.Tensor:
    r"""The sigmoidal kernel :math:`\sigma_{mode}(z)` for a soft ``mode`` (``z`` already scaled).

    .. math::
        \sigma_{smooth}(z) = \frac{1}{1 + e^{-z}}, \quad
        \sigma_{c0} = \tfrac12 + \tfrac12 u, \quad
        \sigma_{c1} = -\tfrac14 u^3 + \tfrac34 u + \tfrac12, \quad
        \sigma_{c2} = \tfrac{3}{16} u^5 - \tfrac58 u^3 + \tfrac{15}{16} u + \tfrac12,

    with :math:`u = \operatorname{clamp}(z / 5, -1, 1)`.
    """
    if mode == "smooth":
        return torch.sigmoid(z)
    u = _window(z)
    if mode == "c0":
        return 0.5 + 0.5 * u
    u2 = u * u
    if mode == "c1":
        return 0.5 + u * (0.75 - 0.25 * u2)
    if mode == "c2":
        return 0.5 + u * (15.0 / 16.0 + u2 * (-5.0 / 8.0 + u2 * (3.0 / 16.0)))
    raise ValueError(f"mode must be one of {_SOFT_CHOICES} here, got {mode!r}")


def relu_kernel(z: torch.Tensor, mode: str) -> torch.Tensor:
    r"""Antiderivative of :func:`sigmoidal_kernel` in ``z``, zero at :math:`z \to -\infty`.

    Multiplied by the softness it is the non-gated soft ReLU. The polynomial modes equal 0 for
    :math:`z \le -5` and :math:`z` for :math:`z \ge 5`.
    """
    if mode == "smooth":
        return F.softplus(z)
    u = _window(z)
    if mode == "c0":
        inner = 0.25 * (u + 1.0) ** 2
    elif mode == "c1":
        u2 = u * u
        inner = u2 * (3.0 / 8.0 - u2 / 16.0) + 0.5 * u + 3.0 / 16.0
    elif mode == "c2":
        u2 = u * u
        inner = u2 * (15.0 / 32.0 + u2 * (-5.0 / 32.0 + u2 / 32.0)) + 0.5 * u + 5.0 / 32.0
    else:
        raise ValueError(f"mode must be one of {_SOFT_CHOICES} here, got {mode!r}")
    # Above the window the antiderivative continues as z itself (u is clamped at 1 there).
    return torch.where(z >= WINDOW, z, WINDOW * inner)


def soft_abs(d: torch.Tensor, softness, mode: str) -> torch.Tensor:
    r"""The soft absolute value of the mode, :math:`|d|_{soft} = d\,(2\sigma_{mode}(d / \text{softness}) - 1)`.

    Even, non-negative, below :math:`|d|` and equal to it once :math:`|d| \ge 5\,\text{softness}`
    in the polynomial modes. Soft comparisons use it for :math:`|x - y|`; NeuralSort's row scores
    sum it over pairs (:func:`softtorch._core.fused_permutation.pairwise_sums` evaluates the same
    function in place, in units of the softness).
    """
    return d * (2.0 * sigmoidal_kernel(d / softness, mode) - 1.0)
