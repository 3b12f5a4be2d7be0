r"""Soft elementwise operators: heaviside, sign, abs, relu, clamp and round.

All of them are built on one sigmoidal kernel of :math:`z = x / \text{softness}`
(:func:`sigmoidal`) and its antiderivative (:func:`softrelu`).
"""

from __future__ import annotations

import torch

from .._core.checks import check_bool, check_bound, check_broadcast, check_positive_int, describe
from .._core.kernels import WINDOW, relu_kernel, sigmoidal_kernel
from .._core.precision import is_half
from .._core.prepare import as_float_like, prepare_elementwise
from .._core.straight_through import st
from .._core.zero_grad import with_zero_grad

__all__ = [
    "sigmoidal",
    "softrelu",
    "heaviside",
    "sign",
    "abs",
    "relu",
    "clamp",
    "round",
    "heaviside_st",
    "sign_st",
    "abs_st",
    "relu_st",
    "clamp_st",
    "round_st",
]


def sigmoidal(x, softness=0.1, mode="smooth"):
    r"""The sigmoidal kernel every soft step is built on.

    It is the soft Heaviside step :math:`\sigma_{mode}(x / \text{softness})`; ``mode="hard"``
    gives the step itself with value 1/2 at 0.

    .. math::
        \sigma_{smooth}(z) = \frac{1}{1 + e^{-z}}, \qquad
        \sigma_{c0}(z) = \tfrac12 + \tfrac12 u, \qquad
        \sigma_{c1}(z) = \tfrac12 + \tfrac34 u - \tfrac14 u^3, \qquad
        \sigma_{c2}(z) = \tfrac12 + \tfrac{15}{16} u - \tfrac58 u^3 + \tfrac{3}{16} u^5,

    where :math:`z = x / \text{softness}` and :math:`u = \operatorname{clamp}(z / 5, -1, 1)`, so the
    polynomial modes are exactly 0 or 1 outside :math:`|x| \le 5\,\text{softness}`.

    Args:
        x (Tensor): input of any shape.
        softness (float or Tensor): temperature, positive; a tensor broadcasts against ``x``.
            Default: ``0.1``.
        mode (str): ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"`` or ``"c2"``. Default: ``"smooth"``.

    Shape:
        Output has the shape of ``x`` (broadcast with ``softness``).

    Returns:
        Tensor: values in :math:`[0, 1]`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.sigmoidal(torch.tensor([-0.2, 0.0, 0.3]), softness=0.1, mode="c1")
        tensor([0.2160, 0.5000, 0.8960])
    """
    x, softness, mode = prepare_elementwise("x", x, softness, mode)
    if mode == "hard":
        return with_zero_grad(torch.heaviside(x.detach(), x.new_tensor(0.5)), x)
    return sigmoidal_kernel(x / softness, mode)


def _finite_only(x, soft_fn, hard_value):
    """``soft_fn`` on the finite entries of ``x``; ``hard_value`` (the limit) at +-inf.

    Keeps ``inf - inf`` and ``0 * inf`` out of both the forward and the backward pass.
    """
    finite = torch.isfinite(x) | torch.isnan(x)
    safe = torch.where(finite, x, torch.zeros_like(x))
    return torch.where(finite, soft_fn(safe), hard_value)


def softrelu(x, softness=0.1, mode="smooth", gated=False):
    r"""Soft rectifier: the antiderivative of :func:`sigmoidal`, or ``x`` gated by it.

    .. math::
        \operatorname{relu}_{soft}(x) = \text{softness} \int_{-\infty}^{x/\text{softness}}
        \sigma_{mode}(t)\, dt \quad \text{or, with } \texttt{gated=True}, \quad
        x \, \sigma_{mode}(x / \text{softness}).

    The smooth non-gated form is :math:`\text{softness} \cdot \operatorname{softplus}(x / \text{softness})`.
    The polynomial modes are exactly 0 below :math:`-5\,\text{softness}` and exactly ``x`` above
    :math:`5\,\text{softness}`.

    Args:
        x (Tensor): input of any shape.
        softness (float or Tensor): temperature. Default: ``0.1``.
        mode (str): one of ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``. Default: ``"smooth"``.
        gated (bool): use :math:`x\,\sigma(x)` instead of the antiderivative. Default: ``False``.

    Shape:
        Output has the shape of ``x``.

    Returns:
        Tensor: the soft ReLU of ``x``.

    Example:
        >>> import torch, softtorch
        >>> softtorch.softrelu(torch.tensor([-0.2, 0.0, 0.3]), mode="c0")
        tensor([0.0450, 0.1250, 0.3200])
    """
    x, softness, mode = prepare_elementwise("x", x, softness, mode)
    check_bool("gated", gated)
    if mode == "hard":
        return torch.relu(x)
    if is_half(x):
        # x / softness and softness * relu_kernel leave float16's range: compute in float32
        return softrelu(x.float(), softness, mode, gated).to(x.dtype)
    if gated:
        return _finite_only(x, lambda t: t * sigmoidal_kernel(t / softness, mode), torch.relu(x))
    z = x / softness
    if mode == "smooth":
        return softness * relu_kernel(z, mode)
    # Above the window the polynomial relu is x itself: return x, not softness * (x / softness).
    return torch.where(z >= WINDOW, x, softness * relu_kernel(z, mode))


def heaviside(x, *, softness=0.1, mode="smooth"):
    r"""Soft Heaviside step, a relaxation of ``torch.heaviside(x, 0.5)``.

    .. math::
        H_{soft}(x) = \sigma_{mode}(x / \text{softness})

    Args:
        x (Tensor): input of any shape.
        softness (float or Tensor): temperature. Default: ``0.1``.
        mode (str): one of ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``. Default: ``"smooth"``.

    Shape:
        Output has the shape of ``x``.

    Returns:
        Tensor: values in :math:`[0, 1]`; 1/2 at 0 in every mode.

    .. note::
        ``mode="hard"`` equals ``torch.heaviside(x, torch.tensor(0.5))`` and has a zero gradient.

    .. seealso:: :class:`softtorch.nn.SoftHeaviside`, :func:`heaviside_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.heaviside(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([1.1920e-01, 4.5398e-05, 9.5257e-01, 9.9995e-01])
    """
    return sigmoidal(x, softness=softness, mode=mode)


def sign(x, *, softness=0.1, mode="smooth"):
    r"""Soft sign, a relaxation of :func:`torch.sign`.

    .. math::
        \operatorname{sign}_{soft}(x) = 2\,\sigma_{mode}(x / \text{softness}) - 1

    Args:
        x (Tensor): input of any shape.
        softness (float or Tensor): temperature. Default: ``0.1``.
        mode (str): one of ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``. Default: ``"smooth"``.

    Shape:
        Output has the shape of ``x``.

    Returns:
        Tensor: values in :math:`[-1, 1]`.

    .. seealso:: :class:`softtorch.nn.SoftSign`, :func:`sign_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.sign(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([-0.7616, -0.9999,  0.9051,  0.9999])
    """
    x, softness, mode = prepare_elementwise("x", x, softness, mode)
    if mode == "hard":
        return torch.sign(x)
    return 2.0 * sigmoidal_kernel(x / softness, mode) - 1.0


def abs(x, *, softness=0.1, mode="smooth"):
    r"""Soft absolute value, a relaxation of :func:`torch.abs`.

    .. math::
        |x|_{soft} = x \cdot \operatorname{sign}_{soft}(x)

    Args:
        x (Tensor): input of any shape.
        softness (float or Tensor): temperature. Default: ``0.1``.
        mode (str): one of ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``. Default: ``"smooth"``.

    Shape:
        Output has the shape of ``x``.

    Returns:
        Tensor: nonnegative values, :math:`\le |x|`.

    .. seealso:: :class:`softtorch.nn.SoftAbs`, :func:`abs_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.abs(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([0.1523, 0.9999, 0.2715, 0.9999])
    """
    x, softness, mode = prepare_elementwise("x", x, softness, mode)
    if mode == "hard":
        return torch.abs(x)
    return x * (2.0 * sigmoidal_kernel(x / softness, mode) - 1.0)


def relu(x, *, softness=0.1, mode="smooth", gated=False):
    r"""Soft ReLU, a relaxation of :func:`torch.nn.functional.relu`.

    .. math::
        \operatorname{relu}_{soft}(x) = \text{softness} \int_{-\infty}^{x/\text{softness}} \sigma_{mode}(t)\,dt
        \quad\text{or, gated,}\quad x\,\sigma_{mode}(x/\text{softness})

    Args:
        x (Tensor): input of any shape.
        softness (float or Tensor): temperature. Default: ``0.1``.
        mode (str): one of ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``. Default: ``"smooth"``.
        gated (bool): use the gated form. Default: ``False``.

    Shape:
        Output has the shape of ``x``.

    Returns:
        Tensor: the soft ReLU; the non-gated polynomial modes equal ReLU outside
        :math:`|x| \le 5\,\text{softness}`.

    .. seealso:: :func:`softrelu` (the same function), :class:`softtorch.nn.SoftReLU`, :func:`relu_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.relu(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([1.2693e-02, 4.5399e-06, 3.0486e-01, 1.0000e+00])
    """
    return softrelu(x, softness=softness, mode=mode, gated=gated)


def _bound_alias(name, value, alias, alias_value):
    """A bound given under its torch name or its softtorch 0.1.1 name (``a``/``b``), not both."""
    check_bound(alias, alias_value)
    if alias_value is None:
        return value
    if value is not None:
        raise ValueError(
            f"{alias} is another name for {name}: give one of them, got {name}={describe(value)} and "
            f"{alias}={describe(alias_value)}"
        )
    return alias_value


def clamp(x, min=None, max=None, *, softness=0.1, mode="smooth", gated=False, a=None, b=None):
    r"""Soft clamp, a relaxation of :func:`torch.clamp`.

    .. math::
        \operatorname{clamp}_{soft}(x) = \min + \operatorname{relu}_{soft}(x - \min)
        - \operatorname{relu}_{soft}(x - \max)

    A missing bound drops its term (``min=None`` gives :math:`x - \operatorname{relu}_{soft}(x - \max)`).

    Args:
        x (Tensor): input of any shape.
        min (float or Tensor, optional): lower bound, broadcasting with ``x``. Default: ``None``.
        max (float or Tensor, optional): upper bound, broadcasting with ``x``. Default: ``None``.
        softness (float or Tensor): temperature. Default: ``0.1``.
        mode (str): one of ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``. Default: ``"smooth"``.
        gated (bool): use the gated soft ReLU. Default: ``False``.
        a (float or Tensor, optional): ``min`` under the name softtorch 0.1.1 gave it; give one
            of the two. Default: ``None``.
        b (float or Tensor, optional): ``max`` under its softtorch 0.1.1 name. Default: ``None``.

    Shape:
        Output has the broadcast shape of ``x``, ``min`` and ``max``.

    Returns:
        Tensor: the softly clamped values.

    .. seealso:: :class:`softtorch.nn.SoftClamp`, :func:`clamp_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.clamp(torch.tensor([-0.2, -1.0, 0.3, 1.0]), -0.5, 0.5)
        tensor([-0.1952, -0.4993,  0.2873,  0.4993])
    """
    x, softness, mode = prepare_elementwise("x", x, softness, mode)
    check_bool("gated", gated)
    min, max = _bound_alias("min", min, "a", a), _bound_alias("max", max, "b", b)
    if min is None and max is None:
        raise ValueError("clamp needs at least one of min or max, got min=None and max=None")
    check_bound("min", min)
    check_bound("max", max)
    shaped = {"x": x, "min": min, "max": max, "softness": softness}
    check_broadcast(**{name: t for name, t in shaped.items() if isinstance(t, torch.Tensor)})
    lo = None if min is None else as_float_like(min, x, "min")
    hi = None if max is None else as_float_like(max, x, "max")
    if mode == "hard":
        return torch.clamp(x, lo, hi)
    if is_half(x):
        # lo + relu(x - lo) - relu(x - hi) cancels: in half precision it loses every digit
        return clamp(x.float(), min, max, softness=softness, mode=mode, gated=gated).to(x.dtype)
    if lo is None:
        return hi - softrelu(hi - x, softness, mode, gated)
    if hi is None:
        return lo + softrelu(x - lo, softness, mode, gated)
    # relu(t) - relu(-t) = t for every mode, so both forms are the same function; each is
    # evaluated on the side where its leading bound is near x, so a huge x neither cancels
    # catastrophically nor makes inf - inf.
    from_below = lo + softrelu(x - lo, softness, mode, gated) - softrelu(x - hi, softness, mode, gated)
    from_above = hi - softrelu(hi - x, softness, mode, gated) + softrelu(lo - x, softness, mode, gated)
    return torch.where(x > 0.5 * (lo + hi), from_above, from_below)


def round(x, *, softness=0.1, mode="smooth", neighbor_radius=5):
    r"""Soft rounding, a relaxation of :func:`torch.round`.

    A staircase of soft steps centred on the half-integers around ``x``:

    .. math::
        \operatorname{round}_{soft}(x) = \sum_{m = c - r}^{c + r} m
        \left(\sigma_{mode}\!\left(\tfrac{x - m + 1/2}{\text{softness}}\right)
        - \sigma_{mode}\!\left(\tfrac{x - m - 1/2}{\text{softness}}\right)\right),
        \qquad c = \lfloor x \rfloor,\ r = \texttt{neighbor\_radius}.

    Args:
        x (Tensor): input of any shape.
        softness (float or Tensor): temperature. Default: ``0.1``.
        mode (str): one of ``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``. Default: ``"smooth"``.
        neighbor_radius (int): how many integers on each side of ``floor(x)`` take part, at least 1.
            Default: ``5``.

    Shape:
        Output has the shape of ``x``.

    Returns:
        Tensor: the softly rounded values.

    .. seealso:: :class:`softtorch.nn.SoftRound`, :func:`round_st`.

    Example:
        >>> import torch, softtorch
        >>> softtorch.round(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([-0.0465, -1.0000,  0.1189,  1.0000])
    """
    x, softness, mode = prepare_elementwise("x", x, softness, mode)
    radius = check_positive_int("neighbor_radius", neighbor_radius)
    if mode == "hard":
        return torch.round(x)
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = softness.unsqueeze(-1) if isinstance(softness, torch.Tensor) and softness.dim() > 0 else softness

    def staircase(t):
        centre = torch.floor(t).detach()
        dist = (t - centre).unsqueeze(-1) - offsets  # t - m for each neighbour m = centre + offset
        mass = sigmoidal_kernel((dist + 0.5) / s, mode) - sigmoidal_kernel((dist - 0.5) / s, mode)
        return centre * mass.sum(-1) + (mass * offsets).sum(-1)

    return _finite_only(x, staircase, x)


heaviside_st = st(heaviside)
sign_st = st(sign)
abs_st = st(abs)
relu_st = st(relu)
clamp_st = st(clamp)
round_st = st(round)
