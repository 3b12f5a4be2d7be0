r"""Batched projections of scores onto the probability simplex.

Every soft operator that turns a score vector into a probability vector goes through
:func:`project_simplex` (or :func:`log_project_simplex` for log-probabilities). The scores
:math:`z \in \mathbb{R}^n` (already divided by the softness) are mapped to the solution of
a regularized linear program over the simplex :math:`\Delta^n`:

.. math::
    p^\star(z) = \operatorname*{arg\,max}_{p \in \Delta^n} \; \langle z, p \rangle - \Omega(p),
    \qquad
    \Omega(p) = \begin{cases}
        \sum_i p_i \log p_i & \text{smooth (softmax)} \\
        \tfrac{m}{m + 1} \sum_i p_i^{(m + 1)/m} & \text{c0, c1, c2 with } m = 1, 2, 3
    \end{cases}

The polynomial regularizers are Tsallis entropies (up to scale and a linear term): ``"c0"``
is sparsemax (:math:`\Omega = \tfrac12 \lVert p \rVert^2`), ``"c1"`` is 1.5-entmax of
:math:`2z` and ``"c2"`` is :math:`\tfrac43`-entmax of :math:`3z`. Their solution is
:math:`p_i = [z_i - \tau]_+^m` with the threshold :math:`\tau` fixed by
:math:`\sum_i p_i = 1`, so the output has exact zeros and is continuous (c0), once (c1) or
twice (c2) continuously differentiable in :math:`z`.

The threshold is found in closed form: sort the scores; for every candidate support size
:math:`k`, the threshold :math:`\tau_k` that gives the top :math:`k` scores unit mass is
consistent if :math:`\tau_k < z_{(k)}`; keep the largest consistent :math:`k` and solve its
equation exactly (linear for c0, quadratic for c1, a depressed cubic by Cardano's formula for
c2), then polish with one Newton step. Everything is tensor code over the last dimension: no
Python loops over rows, no host synchronization and no data-dependent Python branching, so
the functions work under ``torch.func.vmap`` and ``torch.compile(fullgraph=True)``. Gradients
use the closed-form Jacobian (the sort is never differentiated).
"""

from __future__ import annotations

import torch

from .checks import SOFT_MODES, check_choice
from .checks import SPARSE_EXPONENT as _EXPONENT
from .forward_mode import apply
from .precision import compute_dtype

__all__ = ["project_simplex", "log_project_simplex", "simplex_vjp"]


# Scores more than this far below the maximum are clamped to it before the threshold search.
# Every polynomial mode has tau >= max(z) - 1, so such entries are never in the support, and
# the clamp keeps all intermediate moments bounded (no overflow for huge scores, no
# ``-inf - -inf`` for masked entries, which therefore get probability exactly 0).
_FLOOR = -2.0


def _check_mode(mode) -> str:
    return check_choice("mode", mode, SOFT_MODES)


def _check_scores(scores) -> None:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise TypeError(f"scores must be a floating-point tensor, got dtype {scores.dtype}")
    if scores.dim() == 0:
        raise ValueError("scores must have at least one dimension (the simplex is the last dim), got a 0-d tensor")


def _closed_form_threshold(y: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Threshold :math:`\tau` with :math:`\sum_i [y_i - \tau]_+^m = 1` and support size
    :math:`K`, both of shape ``(..., 1)`` and dtype of ``y``.

    ``y`` must come from :func:`_shift` (row maximum 0, clamped below at :data:`_FLOOR`), so
    every consistent support lies in :math:`[-1, 0]` and every cumulative sum below is bounded
    by :math:`8n`. Runs without autograd (inside the forward of the custom functions); the
    in-place updates only touch temporaries, to spare allocations on large inputs.
    """
    n = y.shape[-1]
    # contiguous: torch.searchsorted below wants contiguous rows (no-op for contiguous input).
    ys = torch.sort(y, dim=-1, descending=True).values.contiguous()
    k = torch.arange(1, n + 1, device=y.device, dtype=y.dtype)
    # Cumulative power sums c_r(k) = sum_{j<=k} ys_j^r of the sorted scores.
    c1 = torch.cumsum(ys, dim=-1)
    if m >= 2:
        sq = ys * ys
        c2 = torch.cumsum(sq, dim=-1)
    if m == 3:
        cube = sq * ys
        c3 = torch.cumsum(cube, dim=-1)
    # Support size. The top-k threshold tau_k solves g_k(tau) = sum_{j<=k} (ys_j - tau)^m = 1
    # on the branch where g_k decreases (tau <= mean of the top k), so tau_k < ys_k (k is
    # consistent) iff g_k(ys_k) < 1: a polynomial in ys_k whose coefficients are the
    # cumulative sums, which decides consistency without solving for every tau_k.
    # g_k(ys_k) = sum_{j<=k} (ys_j - ys_k)^m is nondecreasing in k (every term grows as ys_k
    # decreases), so the consistent k form a prefix {1, ..., K} (k = 1 always qualifies,
    # g_1 = 0) and the largest one is found by binary search. A NaN row gets some K and
    # stays NaN.
    # (Only in-place ops with vmap batching rules: ys, sq and cube are not used afterwards.)
    if m == 1:
        g = ys.mul_(-k).add_(c1)  # c1 - k ys
    elif m == 2:
        g = sq.mul_(k).add_(c2).sub_(ys.mul_(c1), alpha=2.0)  # c2 - 2 ys c1 + k ys^2
    else:
        # c3 - 3 ys c2 + 3 ys^2 c1 - k ys^3
        g = cube.mul_(-k).add_(c3).sub_(ys.mul_(c2), alpha=3.0).add_(sq.mul_(c1), alpha=3.0)
    one = torch.ones_like(g[..., :1], memory_format=torch.contiguous_format)
    kk = torch.searchsorted(g, one).clamp(1, n)
    kf = kk.to(y.dtype)
    s1 = torch.gather(c1, -1, kk - 1)
    mu = s1 / kf
    if m == 1:
        # sum_{j<=K} (ys_j - tau) = 1.
        return mu - 1.0 / kf, kf
    s2 = torch.gather(c2, -1, kk - 1)
    # Centered second moment M2 = sum_{j<=K} (ys_j - mu)^2 (>= 0 up to rounding).
    m2 = (s2 - s1 * mu).clamp_min(0.0)
    if m == 2:
        # With u = mu - tau: M2 + K u^2 = 1, and u >= 0 on the decreasing branch
        # (the sort-based exact 1.5-entmax of Peters, Niculae & Martins 2019).
        return mu - torch.sqrt(((1.0 - m2) / kf).clamp_min(0.0)), kf
    # With u = mu - tau and the centered moments M2, M3 of the top K:
    #     K u^3 + 3 M2 u + (M3 - 1) = 0,  i.e.  u^3 + P u + Q = 0,
    # P = 3 M2 / K >= 0, Q = (M3 - 1) / K. The left side is strictly increasing in u
    # (derivative 3u^2 + P >= 0), so there is exactly one real root and Cardano's
    # discriminant D = (Q/2)^2 + (P/3)^3 >= 0 is a sum of two nonnegative terms (no
    # cancellation). With A = -sign(Q) cbrt(|Q|/2 + sqrt(D)), the larger-magnitude Cardano
    # term, the other term is -P/(3A), which has the same sign as A, so u = A - P/(3A) is
    # evaluated without cancellation: the exact root to a few ulps in one pass, with no
    # iteration count to choose and no bracket to maintain (these are (..., 1) tensors, so the
    # cost is negligible either way).
    s3 = torch.gather(c3, -1, kk - 1)
    m3 = s3 - 3.0 * mu * s2 + 2.0 * mu * mu * s1
    p3 = m2 / kf  # P / 3
    q2 = 0.5 * (m3 - 1.0) / kf  # Q / 2
    mag = (q2.abs() + torch.sqrt(q2 * q2 + p3 * p3 * p3)).pow(1.0 / 3.0)
    a = torch.where(q2 > 0, -mag, mag)
    nonzero = a != 0
    safe_a = torch.where(nonzero, a, 1.0)
    return mu - torch.where(nonzero, a - p3 / safe_a, 0.0), kf


def _newton_step(u: torch.Tensor, m: int, k: torch.Tensor) -> torch.Tensor:
    r"""Newton correction :math:`\delta` (shape ``(..., 1)``) for the threshold, given
    ``u = y - tau`` (not clamped) and the support size ``k`` found with ``tau``: the
    polished threshold is :math:`\tau + \delta`.

    One Newton step on :math:`f(\tau) = \sum_i [y_i - \tau]_+^m - 1` with exact
    (non-cumulative) sums. The cumulative sums of :func:`_closed_form_threshold` lose a few
    digits to cancellation on long float32 rows (and can misjudge the support by entries
    within rounding of the threshold); :math:`f` is convex and decreasing with a simple root
    and :math:`\tau` is already close, so one step squares the relative error, and for
    :math:`m = 1` it is exact on a fixed support (for :math:`m = 1`, :math:`-f'` is the
    support size, taken as ``k``: the support of ``u`` differs from it only by entries within
    rounding of the threshold). For :math:`m > 1`, :math:`f'(\tau) < 0` because the top
    entry is always in the support; the guard only protects degenerate (NaN) rows.
    """
    d = u.clamp_min(0.0)
    if m == 1:
        return (d.sum(dim=-1, keepdim=True) - 1.0) / k
    dm1 = d if m == 2 else d * d
    df = m * dm1.sum(dim=-1, keepdim=True)
    f = dm1.mul_(d).sum(dim=-1, keepdim=True) - 1.0  # d is not used after this
    ok = df > 0
    return torch.where(ok, f / torch.where(ok, df, 1.0), 0.0)


def _shift(z: torch.Tensor) -> torch.Tensor:
    """Shift each row so that its maximum is 0 (exact near the top) and clamp at the floor."""
    return (z - z.amax(dim=-1, keepdim=True)).clamp_min_(_FLOOR)


def _support_weights(p: torch.Tensor, m: int) -> torch.Tensor:
    r"""Weights :math:`w = m [z - \tau]_+^{m-1} = m p^{(m-1)/m}` on the support, 0 elsewhere.

    Written as a differentiable function of the output ``p`` (with a safe argument off the
    support) so that the backward pass is itself differentiable (double backward).
    """
    if m == 1:
        return torch.sign(p)  # p >= 0: the support indicator, in one pass
    on = p > 0
    safe = torch.where(on, p, 1.0)
    root = torch.sqrt(safe) if m == 2 else safe.pow(2.0 / 3.0)
    return torch.where(on, root, 0.0).mul_(m)


def _weighted_vjp(w: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``w * (grad - <w, grad> / sum(w))`` over the last dim: the projection's Jacobian (symmetric) times ``grad``."""
    wg = (w * grad).sum(dim=-1, keepdim=True)
    return w * (grad - wg / w.sum(dim=-1, keepdim=True))


def simplex_vjp(p: torch.Tensor, grad: torch.Tensor, mode: str) -> torch.Tensor:
    r"""The projection's vector-Jacobian product from its output :math:`p = \Pi_{mode}(z)`.

    .. math::
        \bar z = w \odot \Bigl(\bar p - \frac{\langle w, \bar p \rangle}{\textstyle\sum_j w_j}\Bigr),
        \qquad w = \begin{cases} p & \text{smooth} \\ m\, p^{(m - 1)/m} & \text{c0, c1, c2} \end{cases}

    The Jacobian is symmetric, so this is also the Jacobian-vector product. Written with
    differentiable operations of ``p`` and ``grad`` (double backward).

    Example:
        >>> import torch
        >>> p = project_simplex(torch.tensor([1.0, 0.8, -1.0]), "c0")
        >>> simplex_vjp(p, torch.tensor([1.0, 0.0, 5.0]), "c0")
        tensor([ 0.5000, -0.5000,  0.0000])
    """
    if mode == "smooth":
        return p * (grad - (p * grad).sum(dim=-1, keepdim=True))
    return _weighted_vjp(_support_weights(p, _EXPONENT[_check_mode(mode)]), grad)


def project_sparse_(scores: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The forward of :class:`_SimplexProjection` in place, without autograd: ``scores`` ``(..., n)``
    become :math:`[z - \tau]_+^m` (``m`` 1, 2, 3 for c0, c1, c2), bit for bit, and the row constants
    ``(..., 3)`` (maximum, threshold, Newton correction) from which :func:`reproject_` rebuilds
    them without the sort the threshold search takes."""
    top = scores.amax(dim=-1, keepdim=True)
    p, tau, delta = _project_shifted_(scores.sub_(top).clamp_min_(_FLOOR), m)
    return p, torch.cat((top, tau, delta), dim=-1)


def _project_shifted_(y: torch.Tensor, m: int):
    r"""``[y - \tau]_+^m`` of rows shifted by :func:`_shift`, in ``y``'s memory, with the threshold
    and its Newton correction ``(..., 1)``: the forward of :class:`_SimplexProjection`."""
    tau, k = _closed_form_threshold(y, m)
    u = y.sub_(tau)
    delta = _newton_step(u, m, k)
    p = u.sub_(delta).clamp_min_(0.0)
    return (p if m == 1 else p.pow_(m)), tau, delta


def reproject_(scores: torch.Tensor, m: int, constants: torch.Tensor) -> torch.Tensor:
    """``scores`` replaced in place by the projection that :func:`project_sparse_` gave them, from
    its row ``constants``: the same operations, without the threshold search."""
    top, tau, delta = constants.split(1, dim=-1)
    p = scores.sub_(top).clamp_min_(_FLOOR).sub_(tau).sub_(delta).clamp_min_(0.0)
    return p if m == 1 else p.pow_(m)


class _SimplexProjection(torch.autograd.Function):
    r""":math:`p = [z - \tau]_+^m` with the closed-form VJP
    :math:`g_z = w \odot (g - \langle w, g \rangle / \textstyle\sum w)`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: torch.Tensor, m: int) -> torch.Tensor:
        return _project_shifted_(_shift(z), m)[0]  # in _shift's temporary

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.m = inputs[1]
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad):
        (p,) = ctx.saved_tensors
        return _weighted_vjp(_support_weights(p, ctx.m), grad), None

    @staticmethod
    def tangent(ctx, z_tangent, _):
        # The Jacobian is symmetric: the tangent map is the VJP's.
        (p,) = ctx.saved_tensors
        return _weighted_vjp(_support_weights(p, ctx.m), z_tangent)


class _Threshold(torch.autograd.Function):
    r"""The threshold :math:`\tau(y)` (shape ``(..., 1)``) of a row-max-shifted ``y``, with the
    implicit-function gradient :math:`\partial\tau / \partial y = w / \textstyle\sum w`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(y: torch.Tensor, m: int) -> torch.Tensor:
        y = y.clamp_min(_FLOOR)
        tau, k = _closed_form_threshold(y, m)
        return tau + _newton_step(y.sub_(tau), m, k)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.m = inputs[1]
        ctx.save_for_backward(inputs[0], output)
        ctx.save_for_forward(inputs[0], output)

    @staticmethod
    def _slope(ctx):
        """The threshold's gradient ``w / sum(w)``, ``(..., n)``."""
        y, tau = ctx.saved_tensors
        on = y > tau
        if ctx.m == 1:
            w = on.to(y.dtype)
        else:
            d = torch.where(on, y - tau, 0.0)
            w = d if ctx.m == 2 else d * d
        return w / w.sum(dim=-1, keepdim=True)

    @staticmethod
    def backward(ctx, grad):
        return grad * _Threshold._slope(ctx), None

    @staticmethod
    def tangent(ctx, y_tangent, _):
        return (y_tangent * _Threshold._slope(ctx)).sum(dim=-1, keepdim=True)


def project_simplex(scores: torch.Tensor, mode: str) -> torch.Tensor:
    r"""Project scores onto the probability simplex along the last dimension.

    Solves, independently for every row :math:`z` of ``scores``,

    .. math::
        p^\star = \operatorname*{arg\,max}_{p \ge 0,\ \mathbf{1}^\top p = 1}
            \langle z, p \rangle - \Omega(p),
        \qquad
        \Omega(p) = \begin{cases}
            \sum_i p_i \log p_i & \text{smooth:}\ p = \operatorname{softmax}(z) \\
            \tfrac12 \lVert p \rVert_2^2 & \text{c0:}\ p = [z - \tau]_+ \\
            \tfrac23 \sum_i p_i^{3/2} & \text{c1:}\ p = [z - \tau]_+^2 \\
            \tfrac34 \sum_i p_i^{4/3} & \text{c2:}\ p = [z - \tau]_+^3
        \end{cases}

    where :math:`\tau` is the unique threshold with :math:`\sum_i p_i = 1`. The polynomial
    modes give exact zeros below the threshold. Entries equal to ``-inf`` (masked) get
    probability 0 (a row that is entirely ``-inf`` gives NaN); a row containing NaN gives NaN
    in that row only. Rows sum to 1 up to about :math:`n` ulps of the compute dtype.
    Gradients use the closed-form Jacobian
    :math:`\partial p / \partial z = \operatorname{diag}(w) - w w^\top / \sum_j w_j` with
    :math:`w_i = m [z_i - \tau]_+^{m-1}` on the support (0 elsewhere), and are themselves
    differentiable.

    Args:
        scores: Floating tensor of shape ``(..., n)``, already divided by the softness.
            float16/bfloat16 are computed in float32.
        mode: One of ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``.

    Returns:
        Tensor of the same shape and dtype as ``scores`` whose last dim sums to 1.

    Raises:
        ValueError: If ``mode`` is not one of the allowed values, or ``scores`` is 0-d.
        TypeError: If ``scores`` is not a floating-point tensor.

    Example:
        >>> import torch
        >>> project_simplex(torch.tensor([1.0, 0.8, -1.0]), "c0")
        tensor([0.6000, 0.4000, 0.0000])
        >>> project_simplex(torch.tensor([0.8, 0.6, -1.0]), "c1")
        tensor([0.6400, 0.3600, 0.0000])
        >>> project_simplex(torch.tensor([5.0, 4.0, 3.0, -6.0]) / 6, "c2") * 216
        tensor([125.0000,  64.0000,  27.0000,   0.0000])
        >>> project_simplex(torch.tensor([[0.0, 0.0], [1.0, -1.0]]), "smooth")
        tensor([[0.5000, 0.5000],
                [0.8808, 0.1192]])
    """
    _check_mode(mode)
    _check_scores(scores)
    dtype = scores.dtype
    ct = compute_dtype(dtype)
    if mode == "smooth":
        return torch.softmax(scores, dim=-1, dtype=ct).to(dtype)
    if scores.shape[-1] == 0:
        return scores.clone()
    out = apply(_SimplexProjection, scores.to(ct), _EXPONENT[mode])
    return out.to(dtype)


def log_project_simplex(scores: torch.Tensor, mode: str) -> torch.Tensor:
    r"""Logarithm of :func:`project_simplex`, computed without taking the log of a rounded
    probability.

    .. math::
        \log p^\star_i = \begin{cases}
            z_i - \operatorname{logsumexp}(z) & \text{smooth} \\
            m \log(z_i - \tau) & \text{c0, c1, c2 (}m = 1, 2, 3\text{), if } z_i > \tau \\
            -\infty & \text{c0, c1, c2, otherwise}
        \end{cases}

    with :math:`p^\star` and :math:`\tau` as in :func:`project_simplex`. Gradients are finite
    everywhere: entries off the support get gradient 0, and the threshold is differentiated
    through the implicit function theorem, :math:`\partial \tau / \partial z = w / \sum w`
    with :math:`w_i = [z_i - \tau]_+^{m-1}` on the support.

    Args:
        scores: Floating tensor of shape ``(..., n)``, already divided by the softness.
        mode: One of ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``.

    Returns:
        Tensor of the same shape and dtype as ``scores``.

    Raises:
        ValueError: If ``mode`` is not one of the allowed values, or ``scores`` is 0-d.
        TypeError: If ``scores`` is not a floating-point tensor.

    Example:
        >>> import torch
        >>> log_project_simplex(torch.tensor([1.0, 0.8, -1.0]), "c0").exp()
        tensor([0.6000, 0.4000, 0.0000])
        >>> log_project_simplex(torch.tensor([0.8, 0.6, -1.0]), "c1")
        tensor([-0.4463, -1.0217,    -inf])
    """
    _check_mode(mode)
    _check_scores(scores)
    dtype = scores.dtype
    ct = compute_dtype(dtype)
    if mode == "smooth":
        return torch.log_softmax(scores, dim=-1, dtype=ct).to(dtype)
    if scores.shape[-1] == 0:
        return scores.clone()
    m = _EXPONENT[mode]
    z = scores.to(ct)
    # The problem is shift-invariant, so the shift needs no gradient.
    y = z - z.detach().amax(dim=-1, keepdim=True)
    tau = apply(_Threshold, y, m)
    # Written with ``y <= tau`` (not ``y > tau``) so that a NaN row stays NaN.
    off = y <= tau
    safe = torch.where(off, 1.0, y - tau)
    return torch.where(off, float("-inf"), m * torch.log(safe)).to(dtype)
