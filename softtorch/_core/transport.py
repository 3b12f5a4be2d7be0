r"""The regularized optimal-transport solver behind ``method="ot"`` (Cuturi, Teboul & Vert, 2019;
Xie et al., 2020; Blondel, Seguy & Rolet, 2018).

The standardized scores are transported onto sorted anchors with the squared cost and an entropic
(``"smooth"``) or p-norm (``"c0"``, ``"c1"``, ``"c2"``) regularizer; the plan's columns at the
anchors of the requested slots are the soft permutation rows. :func:`transport` solves the dual
(Sinkhorn, then a safeguarded Newton method on the semi-dual) for the whole batch and gives
implicit gradients (:class:`_Transport`); :func:`anchor_layout` merges the anchors of the slots
not asked for. The problem, its dual, the anchor layouts and the solver are described in the user
guide, :doc:`/user_guide/how_methods_work`.
"""

from __future__ import annotations

import torch

from .checks import SOFT_MODES, _is_vmapped, check_choice, check_positive, check_positive_int
from .checks import SPARSE_EXPONENT as _EXPONENT
from .expectation import expect
from .forward_mode import apply
from .precision import compute_dtype
from .zero_grad import with_zero_grad

__all__ = ["DEFAULT_TOL", "DEFAULT_MAX_ITER", "anchor_layout", "kept_layout", "transport", "working_scores"]

#: Default tolerance on the relative marginal error of the plan (``tol``).
DEFAULT_TOL = 1e-5
#: Default cap on the solver's Newton iterations (``max_iter``). From its warm start
#: the solver needs 0 to 7 of them on every problem tried (n up to 1000, softness 1e-3 to 10, every
#: mode, float64), up to about 10 for the sparse modes in float32 at softness 1e-3.
DEFAULT_MAX_ITER = 100

# Iterations of the scalar Newton solver for the thresholds of the p-norm modes, and how often it
# checks for convergence.
_THRESHOLD_MAX_ITER = 60
_THRESHOLD_CHECK = 2
# Kernel-domain Sinkhorn (smooth mode): the error is checked once per chunk of iterations; the
# phase ends when every row is within tol, or hands over to Newton when the error falls by less
# than this factor over a chunk.
_SINKHORN_MAX_ITER = 200
_SINKHORN_CHUNK = 5
_SINKHORN_RATE = 0.3
# Conjugate gradients for the backward's linear system on the rows Sinkhorn solved: cap on the
# iterations (the rows still short of the ridge's accuracy then go to Cholesky) and how often
# they check for convergence.
_CG_MAX_ITER = 40
_CG_CHECK = 2
# Levenberg-Marquardt damping of the Newton steps: mu = theta * marginal error, with theta
# divided by 4 after an accepted step and multiplied by 10 after a rejected one.
_THETA_START = 1e-2
_THETA_MIN = 1e-4
_THETA_MAX = 1e4
_THETA_DOWN = 0.25
_THETA_UP = 10.0
# Fraction of the model's predicted increase a step must deliver.
_SUFFICIENT = 1e-4
# Rounding floor of the marginal error, in units of eps * (|f| + |g|) / s * (plan exponent): a row
# whose error stops halving below it has reached the accuracy its dtype allows.
_FLOOR_FACTOR = 4.0


# -- anchor layouts ---------------------------------------------------------------------------------


def anchor_layout(n, rows, descending, dtype, device):
    """Anchors ``b`` (m,), masses ``beta`` (m,) and, per requested row, the anchor it reads.

    ``rows`` is None (every slot), a slice, or 1-D 0-based slots of the ascending (or
    descending) order; repeats are allowed.
    """
    if rows is None:
        b = torch.linspace(0.0, 1.0, n, dtype=dtype, device=device)
        beta = torch.ones(n, dtype=dtype, device=device)
        pick = torch.arange(n - 1, -1, -1, device=device) if descending else torch.arange(n, device=device)
        return b, beta, pick
    slots = list(range(n))[rows] if isinstance(rows, slice) else torch.as_tensor(rows).reshape(-1).tolist()
    if any(not 0 <= i < n for i in slots):
        raise ValueError(f"rows must be 0-based sorted slots in [0, {n - 1}], got {slots}")
    asked = [n - 1 - i if descending else i for i in slots]
    positions, masses, anchor_of = [], [], {}
    prev = -1
    for j in sorted(set(asked)) + [n]:
        lo, hi = prev + 1, j - 1  # the unrequested run between two requested slots
        if lo <= hi:
            positions.append(0.0 if lo == 0 else 1.0 if hi == n - 1 else 0.5 * (lo + hi) / (n - 1))
            masses.append(float(hi - lo + 1))
        if j < n:
            anchor_of[j] = len(positions)
            positions.append(j / max(n - 1, 1))
            masses.append(1.0)
        prev = j
    b = torch.tensor(positions, dtype=dtype, device=device)
    beta = torch.tensor(masses, dtype=dtype, device=device)
    pick = torch.tensor([anchor_of[j] for j in asked], dtype=torch.long, device=device)
    return b, beta, pick


def kept_layout(xt, kept, softness, rows, descending, before):
    r"""The problem whose kept block is, row by row, the problem of the kept entries alone.

    A row of ``n`` scores ``xt`` with ``k`` kept entries (``kept``, ``(..., n)``) is transported
    onto the anchors and masses that :func:`anchor_layout` gives ``k`` entries, followed by
    anchors at a far point :math:`Z`. The requested slots ``rows`` are 0-based slots of the
    ``descending`` order of all ``n`` entries, ``(r,)`` for every row or ``(..., r)`` per row; the
    first ``before`` (``(..., 1)``) of them hold excluded entries, and those among the kept ones
    shape the layout as in :func:`anchor_layout`. The excluded entries move to :math:`Z`, and so do
    ``P`` appended phantom entries when only some slots are asked for (the far anchors, at least
    one, then always have integer masses of at least 1). :math:`Z` lies beyond the kept scores and
    anchors by :math:`1 + \sqrt{2 \ell s}` (:math:`\ell` the exponent below which the plan drops
    entries), so every plan entry between the two blocks is below :math:`e^{-\ell}`: the kept
    block is the problem of the kept entries alone, with their masses and anchors, and its plan
    is theirs.

    Returns the scores ``(..., n + P)``, the anchors ``(..., m)`` (sorted) and masses (``(m,)``
    ones for the full layout, else ``(..., m)``), and ``(..., r)`` the anchor each requested slot
    reads (``r = n`` for ``rows=None``; slots holding an excluded entry read a far anchor).
    """
    n, dtype, device = xt.shape[-1], xt.dtype, xt.device
    count = kept.sum(-1, keepdim=True)
    scale = (count - 1).clamp_min(1).to(dtype)
    s = softness.detach().to(dtype) if isinstance(softness, torch.Tensor) else softness
    high = xt.detach().masked_fill(~kept, float("-inf")).amax(-1, keepdim=True).clamp_min(1.0)
    far = high + 1.0 + torch.sqrt(torch.as_tensor(2.0 * _exp_limit(dtype) * s, dtype=dtype, device=device))
    scores = torch.where(kept, xt, far)
    position = torch.arange(n, device=device)
    if rows is None:
        b = torch.where(position < count, position.to(dtype) / scale, far)
        slot = position - before  # the kept slot of each sorted slot, in the descending order
        pick = (count - 1 - slot if descending else slot).clamp(0, n - 1)
        return scores, b, torch.ones(n, dtype=dtype, device=device), pick
    slots = position[rows] if isinstance(rows, slice) else torch.as_tensor(rows, device=device)
    slots = slots.reshape(-1) if slots.dim() < 2 else slots  # (r,) for every row, or (..., r)
    m = min(n, 2 * slots.shape[-1] + 1) + 1  # at most min(k, 2 r + 1) kept anchors, one far at least
    phantoms = m - 1
    # The kept slot each requested slot asks for, in the ascending order of the kept entries.
    slot = slots - before
    valid = (slot >= 0) & (slot < count)
    asked = torch.where(valid, count - 1 - slot if descending else slot, n)
    requested = torch.zeros(asked.shape[:-1] + (n + 1,), dtype=torch.bool, device=device)
    requested = requested.scatter(-1, asked, True)[..., :n]
    inside = position < count
    # Groups of kept slots: a requested slot alone, a run of unrequested ones together.
    after_requested = torch.nn.functional.pad(requested[..., :-1], (1, 0), value=True)
    starts = inside & (requested | after_requested)
    group = torch.where(inside, starts.cumsum(-1) - 1, m)  # m: outside every kept group
    groups = starts.sum(-1, keepdim=True)
    buffer = torch.zeros(group.shape[:-1] + (m + 1,), dtype=dtype, device=device)  # slot m: outside
    size = buffer.scatter_add(-1, group, inside.to(dtype))[..., :m]
    first = (buffer + n).scatter_reduce(-1, group, position.to(dtype).expand_as(group), "amin")[..., :m]
    lo = torch.where(size > 0, first, 0.0)
    hi = lo + size - 1
    middle = 0.5 * (lo + hi) / scale
    run_at = torch.where(lo == 0, 0.0, torch.where(hi == (count - 1).to(dtype), 1.0, middle))
    single = requested.to(dtype).gather(-1, lo.long().clamp(max=n - 1)) > 0
    b = torch.where(single, lo / scale, run_at)
    # The far anchors: groups .. m - 1, mass 1 each but the last, which takes the rest.
    index = torch.arange(m, device=device)
    kept_group = index < groups
    rest = (n - count + phantoms) - (m - groups) + 1
    beta = torch.where(kept_group, size, torch.where(index == m - 1, rest.to(dtype), 1.0))
    b = torch.where(kept_group, b, far)
    pick = torch.where(valid, group.gather(-1, asked.clamp(max=n - 1)), m - 1)
    scores = torch.cat([scores, far.expand(scores.shape[:-1] + (phantoms,))], -1)
    return scores, b, beta, pick


def _hard_dual(xt, b, beta):
    r"""Anchor potentials ``(B, 1, m)`` of the unregularized problem (the solver's starting point).

    The hard plan sends the sorted scores to the anchors in order (anchor j takes the next
    :math:`\beta_j`). Its dual potentials satisfy, across the boundary between anchors j and j+1
    with last score :math:`x_L` of j and first score :math:`x_R` of j+1,
    :math:`(b_{j+1} - b_j)(b_j + b_{j+1} - 2x_R) \le g_{j+1} - g_j \le (b_{j+1} - b_j)(b_j + b_{j+1} - 2x_L)`;
    the midpoint of that interval is taken. As the softness goes to 0 the regularized potentials
    tend to such a point, so the start is close exactly when the problem is stiffest.
    """
    m = b.shape[-1]
    if m == 1:
        return torch.zeros(xt.shape[0], 1, 1, dtype=xt.dtype, device=xt.device)
    xs = torch.sort(xt, dim=-1).values
    if b.dim() > 1:  # anchors (B, 1, m) and masses (B, m) per row: see kept_layout
        b = b.squeeze(-2)
        ends = torch.cumsum(beta, -1)[..., :-1].round().long().expand(xt.shape[0], m - 1)
        x_l, x_r = xs.gather(-1, ends - 1), xs.gather(-1, ends)
        db = b[:, 1:] - b[:, :-1]
        steps = db * (b[:, 1:] + b[:, :-1] - x_l - x_r)
        g = torch.cat([torch.zeros_like(steps[:, :1]), torch.cumsum(steps, -1)], -1)
        # Centred on the anchors in [0, 1] (those of the kept entries): the far ones would shift
        # every potential by a large constant, which costs digits in float32.
        near = (b <= 1.0).to(g.dtype)
        centre = (g * near).sum(-1, keepdim=True) / near.sum(-1, keepdim=True).clamp_min(1.0)
        return (g - centre).unsqueeze(-2)
    ends = torch.cumsum(beta, 0)[:-1].round().long()  # first element of anchors 1..m-1
    x_l = xs.index_select(-1, ends - 1)
    x_r = xs.index_select(-1, ends)
    db = b[1:] - b[:-1]
    steps = db * (b[1:] + b[:-1] - x_l - x_r)
    g = torch.cat([torch.zeros_like(steps[:, :1]), torch.cumsum(steps, -1)], -1)
    return (g - g.mean(-1, keepdim=True)).unsqueeze(-2)


# -- the regularizer ----------------------------------------------------------------------------------


def _exp_limit(dtype):
    """Exponents below ``-limit`` are dropped: their exponentials are negligible next to 1, and
    keeping them would fill the plan with subnormal floats, which slow CPU kernels tenfold."""
    return 30.0 if dtype == torch.float32 else 300.0


def _plan(u, mode):
    r"""The plan :math:`\Psi'(u)` of the scaled slack ``u = (f + g - C) / s``."""
    if mode == "smooth":
        return torch.exp(torch.where(u < -_exp_limit(u.dtype), float("-inf"), u))
    m = _EXPONENT[mode]
    d = u.clamp_min(0.0)
    return d if m == 1 else d.pow(m)


def _log_plan(u, mode):
    """``log`` of :func:`_plan`, with ``-inf`` (and zero gradient) at the exact zeros."""
    if mode == "smooth":
        return u
    m = _EXPONENT[mode]
    on = u > 0
    return torch.where(on, m * torch.log(torch.where(on, u, torch.ones_like(u))), float("-inf"))


def _curvature(u, plan, mode):
    r""":math:`\Psi''(u)`, the derivative of the plan in the slack (``plan`` = :math:`\Psi'(u)`)."""
    if mode == "smooth":
        return plan
    m = _EXPONENT[mode]
    if m == 1:
        return (u > 0).to(u.dtype)
    # Drop curvatures whose products would be subnormal (see _exp_limit): they change nothing.
    d = torch.where(u > torch.finfo(u.dtype).tiny ** (0.5 / (m - 1)) * 1e3, u, 0.0)
    return m * (d if m == 2 else d * d)


def _penalty(u, plan, mode):
    r""":math:`\sum \Psi(u)` over the last two dims (``plan`` = :math:`\Psi'(u)`)."""
    if mode == "smooth":
        return plan.sum((-2, -1))
    m = _EXPONENT[mode]
    return (plan * u.clamp_min(0.0)).sum((-2, -1)) / (m + 1)


# -- block maximization -------------------------------------------------------------------------------


def _threshold(y, mass, m, dim, start, tol):
    r"""The :math:`\tau` (keepdim along ``dim``) with :math:`\sum [y - \tau]_+^m = \text{mass}`.

    The sum is convex and decreasing in :math:`\tau`, so Newton's method started on the left of
    the root climbs to it monotonically (and exactly, in finitely many steps, for ``m = 1``). A
    start on the right lands on the left after one step; every iterate is kept in the bracket
    :math:`[\max y - \text{mass}^{1/m}, \max y]`, which holds the root. Unlike the sort-based
    closed form of :mod:`softtorch._core.projections`, each step is one elementwise pass (a
    batched sort of the ``(B, n, m)`` scores costs more than the whole solve), and the warm start
    from the current potentials makes 1 to 4 steps enough.
    """
    top = y.amax(dim, keepdim=True)
    low = top - mass ** (1.0 / m)
    tau = low if start is None else torch.minimum(torch.maximum(start, low), top)
    d = torch.empty_like(y)
    for it in range(_THRESHOLD_MAX_ITER):
        torch.sub(y, tau, out=d).clamp_min_(0.0)
        if m == 1:
            excess = d.sum(dim, keepdim=True) - mass
            slope = (d > 0).sum(dim, keepdim=True).to(y.dtype)
        else:
            dm1 = d if m == 2 else d * d
            excess = torch.linalg.vecdot(dm1, d, dim=dim).unsqueeze(dim) - mass
            slope = m * dm1.sum(dim, keepdim=True)
        if it % _THRESHOLD_CHECK == _THRESHOLD_CHECK - 1 and bool((excess.abs() <= tol * mass).all()):
            break
        has = slope > 0
        tau = torch.where(has, tau + excess / torch.where(has, slope, torch.ones_like(slope)), low)
        tau = torch.minimum(torch.maximum(tau, low), top)
    return tau


def _respond(other, K, mass, mode, dim, current, tol):
    r"""Exact block maximization in scaled units: the potential on the side reduced along ``dim``
    that makes the plan's sums along ``dim`` equal ``mass``, given the ``other`` side's potential.

    Returns the potential, the slack ``u`` (``None`` for the smooth mode, which never needs it
    inside the solver) and the plan.
    """
    y = other - K
    if mode == "smooth":
        top = y.amax(dim, keepdim=True)
        e = y.sub_(top).clamp_min_(-_exp_limit(y.dtype)).exp_()
        total = e.sum(dim, keepdim=True)
        return torch.log(mass / total) - top, None, e.mul_(mass / total)
    tau = _threshold(y, mass, _EXPONENT[mode], dim, None if current is None else -current, tol)
    u = y.sub_(tau)
    return -tau, u, _plan(u, mode)


# -- Newton on the semi-dual -------------------------------------------------------------------------


def _ridge(dtype):
    """Ridge of the (unit-scaled) linear systems: relative accuracy of the implicit gradients."""
    return 1e-5 if dtype == torch.float32 else 1e-10


def _damping_floor(dtype):
    """Least damping of the solver's Newton steps. The gradient carries rounding errors of order
    eps in every direction, including the (near-)null directions of the Hessian, where an
    undamped step would blow them up into large moves of the potentials."""
    return 1e-4 if dtype == torch.float32 else 1e-9


def _schur_solve(w, rhs, damping=None):
    r"""Solve :math:`(S + \mu D)\, x = \text{rhs}` for the Schur complement ``S`` of the dual Hessian.

    Here :math:`S = D - w^\top \operatorname{diag}(w \mathbf 1)^{-1} w` and
    :math:`D = \operatorname{diag}(w^\top \mathbf 1)`.

    ``w`` is ``(B, n, m)`` (nonnegative), ``rhs`` ``(B, m, 1)`` with entries summing to 0. ``S`` is
    the Schur complement of the Hessian of the dual on the anchors: positive semidefinite, with the
    constant vector in its kernel (the dual is invariant to ``(f + c, g - c)``) and one more null
    direction per extra connected component of the plan's support. The system is solved scaled by
    ``D`` (the scaled ``S`` has its eigenvalues in [0, 1]); the constant direction is filled in by
    a rank-one term and the rest by the damping :math:`\mu` (``(B, 1, 1)``, at least a small
    ridge, raised for the rows whose Cholesky factorization still fails). Right-hand sides
    orthogonal to every null direction (the backward's) are then solved to a relative accuracy of
    the ridge. Every op is differentiable, so the implicit backward can itself be differentiated.

    ``S`` is the Laplacian of the anchor graph with weights :math:`A_{jk} = \sum_i w_{ij} w_{ik} /
    (w\mathbf 1)_i`, and is built from the off-diagonal weights (all of one sign) rather than as
    :math:`D - A`, whose diagonal cancels almost completely when the plan is nearly a permutation.

    Returns ``x`` ``(B, m, 1)`` and :math:`x^\top S x` ``(B,)``.
    """
    r = w.sum(-1, keepdim=True)
    r = torch.where(r > 0, r, torch.ones_like(r))
    col = w.sum(-2)  # (B, m): the diagonal of D
    floor = col.detach().amax(-1, keepdim=True) * 1e-12 + torch.finfo(col.dtype).tiny
    root = torch.sqrt(torch.maximum(col, floor))
    inv = 1.0 / root
    scaled_w = w * inv.unsqueeze(-2)
    adjacency = (scaled_w / r).mT @ scaled_w  # D^-1/2 A D^-1/2
    adjacency.diagonal(dim1=-2, dim2=-1).zero_()
    degree = (adjacency @ root.unsqueeze(-1)).squeeze(-1) * inv  # diagonal of D^-1/2 S D^-1/2
    q = (root / torch.linalg.vector_norm(root, dim=-1, keepdim=True)).unsqueeze(-1)  # its null vector
    base = torch.baddbmm(adjacency, q, q.mT, beta=-1.0)
    base.diagonal(dim1=-2, dim2=-1).add_(degree)
    ridge = torch.full_like(col[:, :1], _ridge(w.dtype))  # (B, 1)
    if damping is not None:
        ridge = torch.maximum(ridge, damping.view(-1, 1))
    traced = _traced(w, rhs)
    chol, info = torch.linalg.cholesky_ex(base + torch.diag_embed(ridge.expand_as(degree)))
    for _ in range(5):
        bad = info != 0
        if not traced and not bool(bad.any()):
            break
        ridge = torch.where(bad.view(-1, 1), ridge * 100.0, ridge)
        tried, tried_info = torch.linalg.cholesky_ex(base + torch.diag_embed(ridge.expand_as(degree)))
        # traced: a fixed number of attempts, each row keeping its first factorization that worked
        chol = torch.where(bad.view(-1, 1, 1), tried, chol)
        info = torch.where(bad, tried_info, info)
    y = torch.cholesky_solve(rhs * inv.unsqueeze(-1), chol)
    ys = y.squeeze(-1)
    quad = (degree * ys * ys).sum(-1) - (ys * (adjacency @ y).squeeze(-1)).sum(-1)
    return y * inv.unsqueeze(-1), quad


def _marginal_error(plan, beta):
    """Largest relative error of the plan's row sums (target 1) and column sums (target ``beta``), per batch."""
    rows = (plan.sum(-1) - 1.0).abs().amax(-1)
    cols = ((plan.sum(-2) - beta) / beta).abs().amax(-1)
    return torch.maximum(rows, cols)


def _residual(plan, beta):
    r"""Norm of the semi-dual's gradient, :math:`\lVert (\beta - \Gamma^\top \mathbf 1) / \sqrt\beta \rVert`."""
    return torch.linalg.vector_norm((beta - plan.sum(-2)) / beta.sqrt(), dim=-1)


def _pick(mask, a, b):
    """Per batch row: ``a`` where ``mask`` else ``b`` (``None`` stays ``None``)."""
    if a is None:
        return None
    return torch.where(mask.view((-1,) + (1,) * (a.dim() - 1)), a, b)


def _sinkhorn(K, beta, tol):
    r"""Sinkhorn's iterations in the kernel domain from the hard-sort potentials (smooth mode).

    With the plan written as :math:`\operatorname{diag}(a)\,E\,\operatorname{diag}(v)`,
    :math:`E = \max(e^{-K}, e^{-\ell})` (the floor, :math:`\ell` of :func:`_exp_limit`, keeps
    subnormal floats out of the products) and :math:`a = 1 / E \mathbf 1`, :math:`v = \mathbf 1` at
    the start (the potentials of the hard sort, 0 for ``K``, see :func:`_scaled_cost`), each
    iteration is two batched vector-matrix products,
    :math:`v = \beta / E^\top a`, :math:`a = 1 / E v`: far cheaper than a Newton step. They
    converge fast on blurry plans (large softness), where Newton would spend its first steps; the
    error is checked every :data:`_SINKHORN_CHUNK` iterations, and the phase stops when every row
    is within ``tol``, or when the error falls by less than a factor :data:`_SINKHORN_RATE` over a
    chunk (nearly hard plans) or the scalings grow too large to keep in the kernel domain, leaving
    the rest to Newton.

    Returns the scaled potentials ``phi = log a`` ``(B, n, 1)`` and ``gam = log v`` ``(B, 1, m)``
    after a last column update, the plan they give (exact column sums), each row's marginal error
    before that update ``(B,)``, and whether every row is within ``tol``.
    """
    limit = _exp_limit(K.dtype)
    kernel = torch.neg(K).clamp_min_(-limit).exp_()  # every row holds a 1: K >= 0 with row minimum 0
    beta = beta.reshape(-1, 1, beta.shape[-1])  # (1, 1, m), or (B, 1, m) for masses per row
    v = torch.ones_like(K[..., :1, :])
    a = 1.0 / torch.bmm(v, kernel.mT)  # (B, 1, n); row vectors keep the products fast
    last = None
    for it in range(_SINKHORN_MAX_ITER):
        v_new = beta / torch.bmm(a, kernel)
        if it % _SINKHORN_CHUNK == 0:
            # The plan diag(a) E diag(v) has exact row sums; its relative column error is v / v_new - 1.
            err = (v / v_new - 1.0).abs().amax((-2, -1))
            worst, size = torch.stack([err.amax(), v_new.log().abs().amax()]).tolist()
            converged = worst <= tol
            if converged or size > 0.5 * limit or (last is not None and not worst < _SINKHORN_RATE * last):
                break
            last = worst
        v = v_new
        a = 1.0 / torch.bmm(v, kernel.mT)
    plan = kernel.mul_(a.mT).mul_(v_new)
    return torch.log(a).mT, torch.log(v_new), plan, err, converged


def _solve(K, s, beta, mode, tol, max_iter):
    r"""Optimal scaled dual potentials of the regularized transport with the scaled cost ``K = C / s``.

    Returns ``phi (B, n, 1)``, ``gam (B, 1, m)`` (the potentials divided by ``s``), the slack
    :math:`u = \phi \oplus \gamma - K` for the p-norm modes (``None`` for the smooth mode), the
    plan :math:`\Psi'(u)`, and a ``(B,)`` mask of the rows that the Sinkhorn phase alone solved
    (well conditioned: the backward may solve its linear system iteratively on them).

    The solver is Newton's method on the semi-dual :math:`F(g) = \max_f D(f, g)`, which is
    concave, has the column-marginal error :math:`\beta - \Gamma^\top \mathbf 1` as gradient and
    :math:`-S/s` as Hessian (:math:`S` the Schur complement of :func:`_schur_solve`), started from
    the potentials of the hard sort (the caller has subtracted them from the cost, see
    :func:`_scaled_cost`, so the start is 0). Why Newton: Sinkhorn's alternating
    updates, and the alternating exact block ascent of the p-norm modes (the thresholds of
    :func:`_threshold`), converge linearly at a rate that degrades without bound when the plan is
    nearly a permutation with near-ties (thousands of Sinkhorn iterations for n = 5 at softness
    0.01); Newton takes 2 to 7 steps on every problem tried in float64, n = 2 to 1000, softness
    1e-3 to 10, every mode (up to about 10 in float32 at softness 1e-3), at the price of one
    ``m x m`` Cholesky factorization per step, cheap at the sizes OT is used at (m <= n). Where
    Sinkhorn is fast, blurry smooth plans, its iterations are much cheaper than Newton steps, so
    the smooth mode first runs them (:func:`_sinkhorn`) for as long as they converge fast; at
    softness 0.1 and above they usually finish the job alone, and Newton is skipped.

    The p-norm semi-duals are only piecewise smooth and flat along the relative shift of two
    parts of the plan's support that do not touch, where a pure Newton step is unbounded. So the
    step is damped, Levenberg-Marquardt style: :math:`(S + \mu D) x = \beta - \Gamma^\top
    \mathbf 1`, :math:`\mu = \theta \cdot` (marginal error), at least :func:`_damping_floor`,
    with :math:`\theta` lowered after an accepted step and raised after a rejected one. A step is
    accepted if it raises :math:`F` (by a fraction of the model's prediction), or, when the change
    of :math:`F` is below rounding, if it lowers the norm of the gradient; a rejected row takes an
    exact block-ascent step instead (a Sinkhorn step for the smooth mode), which never lowers
    :math:`F`, so the iteration converges for every softness. A row stops when its marginal error
    falls under ``tol``, or stops improving below the rounding floor of the dtype at this softness
    (the slack :math:`(f + g - C)/s` carries rounding errors of order eps (|f| + |g|) / s). A last exact
    column update makes the requested rows (the plan's columns) sum to 1.
    """
    B, n, m = K.shape
    dtype = K.dtype
    eps = torch.finfo(dtype).eps
    one = torch.ones((), dtype=dtype, device=K.device)
    masses = beta.reshape(-1, 1, m)  # (1, 1, m), or (B, 1, m) for masses per row
    inner_tol = max(0.1 * tol, 8 * eps)
    smooth = mode == "smooth"
    order = 1 if smooth else _EXPONENT[mode]
    cap = (1.0 / s.view(-1) + 1.0 + beta.max()).view(-1, 1, 1)  # no useful step moves a potential further

    def rows_of(gam, phi=None):
        return _respond(gam, K, one, mode, -1, phi, inner_tol)

    def gain(new, old):
        # Increase of the scaled semi-dual, summed from differences so that rounding of the
        # (much larger) values themselves does not swamp it.
        out = (new[0] - old[0]).sum((-2, -1)) + ((new[1] - old[1]) * masses).sum((-2, -1))
        if not smooth:
            out = out - (_penalty(new[2], new[3], mode) - _penalty(old[2], old[3], mode))
        return out

    if smooth:
        phi, gam, plan, err, converged = _sinkhorn(K, beta, tol)
        easy = err <= tol
        if converged:
            return phi, gam, None, plan, easy
    else:
        gam = torch.zeros_like(K[..., :1, :])
        easy = torch.zeros(B, dtype=torch.bool, device=K.device)
    phi, u, plan = rows_of(gam)
    cur = (phi, gam, u, plan)
    err = _marginal_error(plan, beta)
    res = _residual(plan, beta)
    theta = torch.full((B,), _THETA_START, dtype=dtype, device=K.device)
    stalled = torch.zeros_like(easy)
    for _ in range(max_iter):
        phi, gam, u, plan = cur
        floor = _FLOOR_FACTOR * order * eps * (phi.abs().amax((-2, -1)) + gam.abs().amax((-2, -1)))
        done = ~(err > tol) | (stalled & (err <= floor))
        if bool(done.all()):
            break
        grad = (beta - plan.sum(-2)).unsqueeze(-1)
        damping = (theta * err).clamp_min(_damping_floor(dtype)).view(-1, 1, 1)
        x, quad = _schur_solve(_curvature(u, plan, mode), grad, damping)
        predicted = (grad * x).sum((-2, -1)) - 0.5 * quad
        step = x.mT
        big = step.abs().amax((-2, -1), keepdim=True)
        step = step * torch.clamp(cap / torch.where(big > 0, big, torch.ones_like(big)), max=1.0)
        noise = 8.0 * eps * (phi.abs().sum((-2, -1)) + (gam.abs() * masses).sum((-2, -1)) + n)
        gam1 = gam + step
        phi1, u1, plan1 = rows_of(gam1, phi)
        new = (phi1, gam1, u1, plan1)
        gain1 = gain(new, cur)
        err1 = _marginal_error(plan1, beta)
        res1 = _residual(plan1, beta)
        # Accept a step that clearly raises F, or, when the change of F is below rounding, one
        # that lowers the norm of the gradient (the column-marginal error).
        ok = ((gain1 > noise) & (gain1 >= _SUFFICIENT * predicted)) | ((gain1 >= -noise) & (res1 < res))
        if not bool((ok | done).all()):
            gam2, _, _ = _respond(phi, K, masses, mode, -2, gam, inner_tol)
            phi2, u2, plan2 = rows_of(gam2, phi)
            fallback = (phi2, gam2, u2, plan2)
            new = tuple(_pick(ok, a, b) for a, b in zip(new, fallback))
            err1 = torch.where(ok, err1, _marginal_error(plan2, beta))
            res1 = torch.where(ok, res1, _residual(plan2, beta))
        theta = torch.where(ok, (theta * _THETA_DOWN).clamp_min(_THETA_MIN), (theta * _THETA_UP).clamp_max(_THETA_MAX))
        if bool(done.any()):
            new = tuple(_pick(done, a, b) for a, b in zip(cur, new))
        phi, gam, u, plan = new
        shift = gam.mean(-1, keepdim=True)  # keep the potentials centred (the dual is shift invariant)
        cur = (phi + shift, gam - shift, u, plan)
        stalled = ~(err1 < 0.5 * err)
        err = torch.where(done, err, err1)
        res = torch.where(done, res, res1)
    phi, gam = cur[0], cur[1]
    gam, u, plan = _respond(phi, K, masses, mode, -2, gam, inner_tol)
    return phi, gam, u, plan, easy


def _schur_cg(w, rhs, active):
    r"""Solve the system of :func:`_schur_solve` (no damping) by conjugate gradients.

    ``rhs`` is a row ``(B, 1, m)``; only the rows in the ``(B,)`` mask ``active`` count for the
    convergence check, made every :data:`_CG_CHECK` iterations. On the rows where Sinkhorn
    converges fast the scaled system :math:`D^{-1/2} S D^{-1/2} + q q^\top` is well conditioned
    (its eigenvalues are :math:`1 - \sigma_k^2`, with :math:`\sigma_k` the singular values of the
    scaled plan, which set Sinkhorn's rate), so a few iterations of two batched vector-matrix
    products each replace a Cholesky factorization. Returns ``x`` ``(B, 1, m)`` and the mask of
    the rows still to solve (inactive or not converged after :data:`_CG_MAX_ITER` iterations).
    """
    dtype = w.dtype
    r = w.sum(-1).unsqueeze(-2)  # (B, 1, n)
    r = torch.where(r > 0, r, torch.ones_like(r))
    col = w.sum(-2, keepdim=True)  # (B, 1, m)
    floor = col.amax(-1, keepdim=True) * 1e-12 + torch.finfo(dtype).tiny
    root = torch.sqrt(torch.maximum(col, floor))
    inv = 1.0 / root
    q = root / torch.linalg.vector_norm(root, dim=-1, keepdim=True)
    diag = 1.0 + _ridge(dtype)
    tiny = torch.finfo(dtype).tiny

    def apply(p):
        back = torch.bmm(torch.bmm(p * inv, w.mT) / r, w) * inv
        return torch.addcmul(p * diag - back, q, (p * q).sum(-1, keepdim=True))

    res = rhs * inv
    x = torch.zeros_like(res)
    p = res
    rr = (res * res).sum(-1, keepdim=True)
    goal = rr * _ridge(dtype) ** 2
    for it in range(_CG_MAX_ITER):
        ap = apply(p)
        alpha = rr / (p * ap).sum(-1, keepdim=True).clamp_min(tiny)
        x = torch.addcmul(x, alpha, p)
        res = torch.addcmul(res, alpha, ap, value=-1.0)
        rr_new = (res * res).sum(-1, keepdim=True)
        if it % _CG_CHECK == _CG_CHECK - 1 and bool(((rr_new <= goal).view(-1) | ~active).all()):
            rr = rr_new
            break
        p = torch.addcmul(res, rr_new / rr.clamp_min(tiny), p)
        rr = rr_new
    return x * inv, ~((rr <= goal).view(-1) & active)


def _traced(*tensors) -> bool:
    """Whether the solver runs under ``torch.compile`` or on tensors batched by ``torch.func.vmap``:
    then it takes no data-dependent branch (no host synchronization, nothing Dynamo cannot trace)."""
    return torch.compiler.is_compiling() or any(_is_vmapped(t) for t in tensors)


def _schur_solve_rows(w, rhs, easy):
    """The solution ``(B, 1, m)`` of :func:`_schur_solve` for a row right-hand side: by
    :func:`_schur_cg` on the ``easy`` rows, by Cholesky on the others and where CG fell short
    (by Cholesky on every row when traced, see :func:`_traced`)."""
    if _traced(w, rhs) or not bool(easy.any()):
        return _schur_solve(w, rhs.mT)[0].mT
    x, redo = _schur_cg(w, rhs, easy)
    if bool(redo.any()):
        idx = redo.nonzero().view(-1)
        x = x.index_copy(0, idx, _schur_solve(w.index_select(0, idx), rhs.index_select(0, idx).mT)[0].mT)
    return x


def _scaled_cost(xt, s, b, beta):
    r"""The scaled cost :math:`K = (C - f^0 \oplus g^0) / s` ``(B, n, m)`` and the shifts ``f0``, ``g0``.

    :math:`f^0, g^0` are the potentials of the hard sort (:func:`_hard_dual`), so :math:`K \ge 0`
    is zero on the hard assignment (each row's minimum is 0). The plan does not change (row and
    column shifts of the cost are absorbed by the potentials, whatever they depend on, so the
    shift needs no gradient), but the potentials the solver works with become :math:`O(1)` in
    units of the softness instead of :math:`O(1/s)`: the slack is then computed from small
    numbers, which in float32 gains two digits at small softness.
    """
    cost = (xt.unsqueeze(-1) - b).square_()
    g0 = _hard_dual(torch.nan_to_num(xt), b, beta)
    cost.sub_(g0)
    f0 = cost.amin(-1, keepdim=True)
    return cost.sub_(f0).div_(s), f0, g0


def _slack_grad(grad_out, u, v, mode, log):
    r"""Gradient of the loss in the slack :math:`u` from that of the plan (``v`` = :math:`\Psi''(u)`)
    or, with ``log``, of the log-plan."""
    if not log:
        return grad_out * v
    if mode == "smooth":
        return grad_out
    on = u > 0
    return torch.where(on, grad_out * _EXPONENT[mode] / torch.where(on, u, torch.ones_like(u)), 0.0)


def _rows_where(bad, value, t):
    """``t`` with its batch rows in the ``(B, 1, 1)`` mask ``bad`` set to ``value``."""
    return torch.where(bad.view((-1,) + (1,) * (t.dim() - 1)), torch.full_like(t, value), t)


class _Transport(torch.autograd.Function):
    r"""``(xt, s, x) -> (out, phi, gam)``: the plan, the log-plan or the values
    :math:`\Gamma^\top x`, and the scaled optimal potentials, differentiated implicitly.

    With :math:`K = C / s`, :math:`u = \phi \oplus \gamma - K`, :math:`\Gamma = \Psi'(u)` and
    :math:`V = \Psi''(u)`, a perturbation :math:`dK` moves the slack by :math:`du = d\phi \oplus
    d\gamma - dK`, and keeping both marginals fixed gives the linear system
    :math:`H (d\phi, d\gamma) = ((V \odot dK)\mathbf 1, (V \odot dK)^\top \mathbf 1)` with the dual
    Hessian :math:`H = \begin{pmatrix} \operatorname{diag}(V\mathbf 1) & V \\ V^\top &
    \operatorname{diag}(V^\top\mathbf 1) \end{pmatrix}`. For the incoming gradients :math:`\bar u`
    (of the slack, from that of the output) and :math:`(\bar\phi, \bar\gamma)`, the adjoint
    :math:`H(\lambda, \mu) = (\bar u \mathbf 1 + \bar\phi, \bar u^\top \mathbf 1 + \bar\gamma)`,
    solved through the Schur complement on the anchors (:func:`_schur_solve_rows`), gives

    .. math::
        \frac{\partial L}{\partial K} = Z = V \odot (\lambda \oplus \mu) - \bar u, \qquad
        \frac{\partial L}{\partial \tilde x_i} = \frac2s \sum_j Z_{ij} (\tilde x_i - b_j), \qquad
        \frac{\partial L}{\partial s} = -\frac1s \sum_{ij} Z_{ij} K_{ij}.

    As :math:`Z \mathbf 1 = \bar\phi`, the score gradient only needs :math:`Z b = \lambda \odot V b
    + V (\mu \odot b) - \bar u b`, and :math:`Z` is built only for a softness that needs a
    gradient. For the values :math:`y = \Gamma^\top x` and their gradient :math:`\bar y`,
    :math:`\bar u = V \odot x \bar y^\top` is never built either: its products with
    :math:`\mathbf 1` and :math:`b` are :math:`x \odot V \bar y` and :math:`x \odot V (\bar y \odot
    b)`, and :math:`\partial L / \partial x = \Gamma \bar y`, so the backward costs a few batched
    vector-matrix products besides the solve (and only that product when the scores and the
    softness need no gradient). The system
    is singular along :math:`(\mathbf 1, -\mathbf 1)`, and consistent because the potentials only
    enter through :math:`\phi \oplus \gamma`. The potentials are outputs so that the backward,
    rebuilt from them and the inputs, can itself be differentiated (through the Cholesky solve).
    Rows with a NaN or infinite score or softness give NaN.

    Forward mode (:meth:`tangent`) solves the same system for the tangents:
    :math:`H (\dot\phi, \dot\gamma) = ((V \odot \dot K)\mathbf 1, (V \odot \dot K)^\top
    \mathbf 1)`, then :math:`\dot u = \dot\phi \oplus \dot\gamma - \dot K` and
    :math:`\dot\Gamma = V \odot \dot u`. The numerical solve is one custom operator
    (:func:`_solve_op`) under ``torch.compile``, so that its convergence tests (host
    synchronizations) stay inside an opaque kernel, and ``vmap`` folds its batch dims into the
    solver's batch (:meth:`vmap`). The other outputs (shifts, slack, plan, the mask of bad rows
    and of the rows Sinkhorn solved) are for the backward only.
    """

    @staticmethod
    def forward(xt, s, b, beta, mode, log, tol, max_iter, x):
        solve = _solve_op if torch.compiler.is_compiling() else _solve_rows
        return solve(xt, s, b, beta, mode, log, tol, max_iter, x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        xt, s, b, _, mode, log, _, _, x = inputs
        out, phi, gam, f0, g0, u, plan, bad, easy = output
        ctx.mark_non_differentiable(f0, g0, u, plan, bad, easy)
        ctx.mode, ctx.log = mode, log
        plan = out if _plan_is_out(x, log) else plan
        ctx.save_for_backward(xt, s, b, x, phi, gam, f0, g0, u, plan, bad, easy)
        ctx.save_for_forward(xt, s, b, x, phi, gam, f0, g0, u, plan, bad)

    @staticmethod
    def vmap(info, in_dims, xt, s, b, beta, mode, log, tol, max_iter, x):
        """The vmapped dims folded into the solver's batch; anchors shared by every row stay shared."""
        size = info.batch_size
        rows = xt.shape[1] if in_dims[0] is not None else xt.shape[0]

        def fold(t, d):
            if t is None:
                return None
            t = t.unsqueeze(0).expand(size, *t.shape) if d is None else t.movedim(d, 0)
            return t.reshape(size * t.shape[1], *t.shape[2:])

        def fold_anchors(t, d, per_row):
            """``b`` ``(m,)``/``(R, 1, m)`` or ``beta`` ``(m,)``/``(R, m)``, folded like the rows."""
            if d is None:
                return t if t.dim() == 1 else fold(t, None)  # shared by every row / per row
            t = t.movedim(d, 0)
            if t.dim() == 2:  # one anchor set per vmapped sample, the same for its rows
                t = t.view(size, 1, *per_row).expand(size, rows, *per_row)
            return t.reshape(size * rows, *per_row)

        m = b.shape[-1] if in_dims[2] is None else b.movedim(in_dims[2], 0).shape[-1]
        b, beta = fold_anchors(b, in_dims[2], (1, m)), fold_anchors(beta, in_dims[3], (m,))
        xt, s, x = fold(xt, in_dims[0]), fold(s, in_dims[1]), fold(x, in_dims[8])
        out = apply(_Transport, xt, s, b, beta, mode, log, tol, max_iter, x)
        out = tuple(
            t.new_empty(size, 0) if t.dim() == 1 and t.numel() == 0 else t.view(size, -1, *t.shape[1:]) for t in out
        )
        return out, (0,) * len(out)

    @staticmethod
    def backward(ctx, grad_out, grad_phi, grad_gam, *_):
        xt, s, b, x, phi, gam, f0, g0, u, plan, bad, easy = ctx.saved_tensors
        mode = ctx.mode
        s = _rows_where(bad, 1.0, s)
        plan = _finite_plan(bad, x, ctx.log, plan)
        grad_out, grad_phi, grad_gam = (_rows_where(bad, 0.0, t) for t in (grad_out, grad_phi, grad_gam))
        create_graph = torch.is_grad_enabled()
        if create_graph:  # rebuild the slack from the inputs and the potentials, with its graph
            K = _cost(xt, s, b, f0, g0, bad)
            u = phi + gam - K
            plan = _plan(u, mode)
        grad_xt = grad_s = grad_x = None
        if x is not None:
            ybar = grad_out.unsqueeze(-2)
            if ctx.needs_input_grad[8]:
                grad_x = torch.bmm(ybar, plan.mT).view_as(x)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            v = _curvature(u, plan, mode)
            ends = torch.stack([torch.ones_like(b), b], -2).reshape(-1, 2, b.shape[-1]).expand(xt.shape[0], 2, -1)
            # sums: the rows ubar 1 and ubar b, (B, 2, n); cols: ubar^T 1, (B, 1, m)
            if x is not None:  # ubar = V * (x ybar^T), used through its products only
                sums = torch.bmm(ybar * ends, v.mT) * x.unsqueeze(-2)
                cols = torch.bmm(x.unsqueeze(-2), v) * ybar
            else:
                ubar = _slack_grad(grad_out, u, v, mode, ctx.log)
                sums = torch.bmm(ends, ubar.mT)
                cols = ubar.sum(-2, keepdim=True)
            r = v.sum(-1).unsqueeze(-2)  # (B, 1, n)
            r = torch.where(r > 0, r, torch.ones_like(r))
            a = sums[:, :1] + grad_phi.mT
            rhs = cols + grad_gam - torch.bmm(a / r, v)
            mu = _schur_solve(v, rhs.mT)[0].mT if create_graph else _schur_solve_rows(v, rhs, easy)
            prods = torch.bmm(torch.cat([ends[:, 1:], mu, mu * b], -2), v.mT)  # V b, V mu, V (mu b)
            lam = (a - prods[:, 1:2]) / r
            zb = lam * prods[:, :1] + prods[:, 2:] - sums[:, 1:]  # Z b, (B, 1, n)
            grad_xt = ((2.0 / s.view(-1, 1)) * (xt * grad_phi.squeeze(-1) - zb.squeeze(-2))).view_as(xt)
            if ctx.needs_input_grad[1]:
                if x is not None:
                    ubar = v * (x.unsqueeze(-1) * ybar)
                if not create_graph:
                    K = _cost(xt, s, b, f0, g0, bad) if mode == "smooth" else phi + gam - u
                grad_s = -((v * (lam.mT + mu) - ubar) * K).sum((-2, -1), keepdim=True) / s
        grad_xt, grad_s, grad_x = (
            None if t is None else _rows_where(bad, float("nan"), t) for t in (grad_xt, grad_s, grad_x)
        )
        return grad_xt, grad_s, None, None, None, None, None, None, grad_x

    @staticmethod
    def tangent(ctx, xt_tangent, s_tangent, _b, _beta, _mode, _log, _tol, _max_iter, x_tangent):
        xt, s, b, x, phi, gam, f0, g0, u, plan, bad = ctx.saved_tensors
        mode = ctx.mode
        s = _rows_where(bad, 1.0, s)
        plan = _finite_plan(bad, x, ctx.log, plan)
        v = _curvature(u, plan, mode)
        d_cost = None  # the scaled cost's tangent, (2 (xt - b) xt' - K s') / s
        if xt_tangent is not None:
            d_cost = (xt.unsqueeze(-1) - b) * (2.0 * xt_tangent.unsqueeze(-1) / s)
        if s_tangent is not None:
            cost = _cost(xt, s, b, f0, g0, bad) if mode == "smooth" else phi + gam - u
            move = cost * (-s_tangent / s)
            d_cost = move if d_cost is None else d_cost + move
        if d_cost is None:
            d_phi, d_gam, d_slack = torch.zeros_like(phi), torch.zeros_like(gam), torch.zeros_like(plan)
        else:
            pushed = v * d_cost
            row_rhs = pushed.sum(-1, keepdim=True)  # (B, n, 1)
            r = v.sum(-1, keepdim=True)
            r = torch.where(r > 0, r, torch.ones_like(r))
            rhs = pushed.sum(-2, keepdim=True) - torch.matmul((row_rhs / r).mT, v)  # (B, 1, m)
            d_gam = _schur_solve(v, rhs.mT)[0].mT
            d_phi = (row_rhs - torch.matmul(v, d_gam.mT)) / r
            d_slack = d_phi + d_gam - d_cost
        d_plan = v * d_slack
        if x is not None:
            infinite = torch.isinf(x)
            d_out = torch.matmul(d_plan.mT, torch.where(infinite, 0.0, x).unsqueeze(-1)).squeeze(-1)
            if x_tangent is not None:
                moved = torch.where(infinite, 0.0, x_tangent).unsqueeze(-1)
                d_out = d_out + torch.matmul(plan.mT, moved).squeeze(-1)
        elif not ctx.log:
            d_out = d_plan
        elif mode == "smooth":
            d_out = d_slack
        else:
            on = u > 0
            d_out = torch.where(on, d_slack * _EXPONENT[mode] / torch.where(on, u, torch.ones_like(u)), 0.0)
        d_out, d_phi, d_gam = (_rows_where(bad, float("nan"), t) for t in (d_out, d_phi, d_gam))
        return d_out, d_phi, d_gam, None, None, None, None, None, None


def _solve_rows(xt, s, b, beta, mode, log, tol, max_iter, x):
    """The forward pass of :class:`_Transport`: ``(out, phi, gam, f0, g0, u, plan, bad, easy)``."""
    K, f0, g0 = _scaled_cost(xt, s, b, beta)
    # A non-finite score makes its whole row of K non-finite, so one column tells the bad rows.
    bad = ~(torch.isfinite(K[..., :1]).all(-2, keepdim=True) & torch.isfinite(s))
    any_bad = _traced(xt, s) or bool(bad.any())
    if any_bad:  # NaN / inf rows: solve a dummy problem, return NaN
        K = _rows_where(bad, 0.0, K)
        s = _rows_where(bad, 1.0, s)
    phi, gam, u, plan, easy = _solve(K, s, beta, mode, tol, max_iter)
    if x is not None:  # expect: an infinite value with zero weight adds 0, not NaN
        out = expect(plan.mT, x)
    elif log:
        out = _log_plan(phi + gam - K if u is None else u, mode)
    else:
        out = plan
    if any_bad:
        out = _rows_where(bad, float("nan"), out)
    # Empty placeholders: the plan when it is the output itself (an output marked non-differentiable
    # may not be the differentiable one; it is taken back from the output), and the smooth mode's
    # slack, which the backward never needs (it rebuilds the cost where it needs one, see _cost).
    plan = plan.new_empty(0) if _plan_is_out(x, log) else plan
    u = plan.new_empty(0) if mode == "smooth" else u
    return out, phi, gam, f0, g0, u, plan, bad, easy


def _plan_is_out(x, log):
    """Whether the output of :class:`_Transport` is its plan."""
    return x is None and not log


def _finite_plan(bad, x, log, plan):
    """The plan with the bad rows zeroed where it was taken from the (NaN) output."""
    return _rows_where(bad, 0.0, plan) if _plan_is_out(x, log) else plan


def _cost(xt, s, b, f0, g0, bad):
    """The scaled cost ``K`` of :func:`_scaled_cost` rebuilt from its shifts (with autograd; bad rows 0)."""
    return _rows_where(bad, 0.0, ((xt.unsqueeze(-1) - b).square() - f0 - g0) / s)


@torch.library.custom_op("softtorch::transport_solve", mutates_args=())
def _solve_op(
    xt: torch.Tensor,
    s: torch.Tensor,
    b: torch.Tensor,
    beta: torch.Tensor,
    mode: str,
    log: bool,
    tol: float,
    max_iter: int,
    x: torch.Tensor | None,
) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
    torch.Tensor,
]:  # fmt: skip
    """:func:`_solve_rows` as one operator for ``torch.compile`` (its iterations stop on convergence
    tests, which Dynamo cannot trace without breaking the graph)."""
    out = _solve_rows(xt, s, b, beta, mode, log, tol, max_iter, x)
    # a custom operator's outputs may not alias its inputs
    return tuple(t.clone() if t is xt or t is s else t for t in out)


@_solve_op.register_fake
def _(xt, s, b, beta, mode, log, tol, max_iter, x):
    B, n = xt.shape
    m = b.shape[-1]  # anchors (m,) shared, or (B, 1, m) per row
    out = xt.new_empty(B, m) if x is not None else xt.new_empty(B, n, m)
    u = xt.new_empty(0) if mode == "smooth" else xt.new_empty(B, n, m)
    plan = xt.new_empty(0) if _plan_is_out(x, log) else xt.new_empty(B, n, m)
    flags = xt.new_empty(B, 1, 1, dtype=torch.bool)
    return (
        out, xt.new_empty(B, n, 1), xt.new_empty(B, 1, m), xt.new_empty(B, n, 1), xt.new_empty(B, 1, m),
        u, plan, flags, xt.new_empty(B, dtype=torch.bool),
    )  # fmt: skip


# -- entry points ------------------------------------------------------------------------------------


def _check_options(mode, tol, max_iter):
    """The library's checks of the solver options (``max_iter = 0`` gives the warm start's plan)."""
    check_choice("mode", mode, SOFT_MODES)
    check_positive("tol", tol)
    check_positive_int("max_iter", max_iter, low=0)


def working_scores(xt, mode, tol, max_iter):
    """Check the options and ``xt``; return ``xt`` in the dtype the solver runs in."""
    _check_options(mode, tol, max_iter)
    if xt.dim() == 0:
        raise ValueError("xt must have at least one dimension (the elements are the last dim), got a 0-d tensor")
    return xt.to(compute_dtype(xt.dtype))


def transport(xt, softness, b, beta, mode, log, tol, max_iter, x=None):
    """Plan (or log-plan) ``(..., n, m)`` between the scores ``xt (..., n)`` and the anchors, or
    with ``x`` (same shape as ``xt``) the values ``(..., m)`` it sends to the anchors.

    The anchors ``b`` and masses ``beta`` are ``(m,)`` for every row, or ``(..., m)`` per row
    (each sorted, integer masses summing to ``n``, as :func:`kept_layout` makes them).
    """
    batch, n, m = xt.shape[:-1], xt.shape[-1], b.shape[-1]
    flat = xt.reshape(-1, n)
    B = flat.shape[0]
    if b.dim() > 1:
        b = b.expand(batch + (m,)).reshape(B, 1, m)
    if beta.dim() > 1:
        beta = beta.expand(batch + (m,)).reshape(B, m)
    if isinstance(softness, torch.Tensor):
        s = softness.to(flat.dtype).expand(batch + (1,)).reshape(B, 1, 1)
    else:
        s = torch.full((B, 1, 1), float(softness), dtype=flat.dtype, device=flat.device)
    shape = batch + ((m,) if x is not None else (n, m))
    if B == 0:
        return with_zero_grad(flat.new_zeros(shape), xt, softness)
    x = None if x is None else x.reshape(B, n)
    out = apply(_Transport, flat, s, b, beta, mode, log, float(tol), int(max_iter), x)[0]
    return out.reshape(shape)
