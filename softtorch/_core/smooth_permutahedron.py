r"""The entropic projection onto a smoothed permutahedron (the solver of ``method="smooth_sort"``).

For slots :math:`s` sorted decreasingly, bounds :math:`b_1, \dots, b_{n-1}` on the prefix sums
and a total :math:`b_n`, :func:`project` computes

.. math::
    y^\star = \operatorname*{argmax}_{\mathbf 1^\top y = b_n}\ \langle s, y \rangle
    + \sum_{k=1}^{n-1} h\bigl(b_k - (Ay)_k\bigr) + \sum_{k=1}^{n-1} h(y_k - y_{k+1}),
    \qquad h(u) = u - u \log u,

(:math:`A` the prefix sums) with the smoothed permutahedron bounds of :func:`smooth_bounds`,
:math:`b_k = t \log e_k(e^{w / t})` (:math:`e_k` the elementary symmetric polynomial).

**Dual.** With multipliers :math:`\alpha` (prefix bounds), :math:`\beta` (gaps) and :math:`\nu`
(sum), stationarity in :math:`y` fixes :math:`\alpha = Ds + L\beta` and :math:`\nu = s_n - \beta_{n-1}`
(:math:`D` the forward differences, :math:`L = DD^\top` the second differences), which leaves the
convex :math:`(n-1)`-dimensional problem

.. math::
    \min_\beta\ g(\beta) = \langle \alpha, b \rangle + \nu b_n + \sum_k e^{-\alpha_k} + \sum_k e^{-\beta_k},
    \qquad \nabla g = L(b - e^{-\alpha}) - b_n \mathbf e_{n-1} - e^{-\beta},
    \qquad \nabla^2 g = L\, \mathrm{diag}(e^{-\alpha}) L + \mathrm{diag}(e^{-\beta}).

The slacks are :math:`b_k - (Ay)_k = e^{-\alpha_k}` and the gaps :math:`y_k - y_{k+1} = e^{-\beta_k}`,
so :math:`y` is read off the prefix sums :math:`b - e^{-\alpha}`. The Hessian is symmetric positive
definite and pentadiagonal (band 2, not tridiagonal: :math:`L` is tridiagonal and appears twice):
as a block-tridiagonal matrix of 2 x 2 blocks it is solved by block cyclic reduction,
:math:`O(n)` work per row in :math:`O(\log n)` batched steps (cyclic reduction of a positive
definite matrix is a block Cholesky factorization of a reordering, so it is stable). Damped Newton
from :math:`\beta = 0` (the full step when every row passes Armijo, else a ladder of step sizes
evaluated for all rows at once) runs on every row together until every row's Newton decrement
is below tolerance, at most ``max_iter`` iterations (one host synchronization each), in float64.

**Gradients** by implicit differentiation of :math:`\nabla g(\beta^\star) = 0`: for a cotangent
:math:`\bar y`, with :math:`r = D\bar y`, :math:`\sigma = e^{-\alpha}` and one more solve
:math:`q = (\nabla^2 g)^{-1} L (\sigma \odot r)`, :math:`p = r - Lq`,

.. math::
    \bar s = D^\top (\sigma \odot p), \qquad \bar b = p, \qquad \bar b_n = \bar y_n + q_{n-1}.

**Bounds.** :math:`\log e_k(e^{v})` for all :math:`k` by the recursion over elements
:math:`e_k \leftarrow e_k + e^{v_j} e_{k-1}` in log space: :math:`O(n^2)` work per row in
:math:`n` batched steps, stable (log-sum-exps of sums, no subtraction, unlike Newton's identities
or dividing a factor out). A balanced tree of log-semiring polynomial products takes
:math:`\log_2 n` steps for the same :math:`O(n^2)` work, but streams :math:`O(n^2)` memory per
row through every level; the recursion stays in cache and was 10x faster on CPU. Its backward is
the adjoint recursion, with the states recomputed from checkpoints every ``_SEGMENT`` elements
(:math:`O(n^{3/2})` memory per row).
"""

from __future__ import annotations

import torch

from .forward_mode import in_transform

__all__ = ["smooth_bounds", "project"]

_ARMIJO = 1e-4
_STEPS = 2.0 ** -torch.arange(0, 30, 3, dtype=torch.float64)  # 1, 1/8, ..., 2^-27
_SEGMENT = 32  # elements between the checkpoints of the bounds' recursion


# ---------------------------------------------------------------------------- bounds


def _esp_step(state: torch.Tensor, v: torch.Tensor, j: int) -> None:
    """Add element ``j`` in place: ``log e_k <- logaddexp(log e_k, v_j + log e_{k-1})``, ``k = 1..j+1``.

    As ``max + log(1 + exp(-|difference|))``: ``log`` of a number in ``[1, 2]`` is as accurate (in
    absolute terms, which is what a log-coefficient needs) as ``log1p`` and much faster than
    ``torch.logaddexp`` on CPU. The new top coefficient ``k = j + 1`` is a plain sum.
    """
    old, new = state[:, 1 : j + 1], v[:, j : j + 1] + state[:, :j]
    top = v[:, j] + state[:, j]
    state[:, 1 : j + 1] = torch.maximum(old, new).add_((old - new).abs_().neg_().exp_().add_(1.0).log_())
    state[:, j + 1] = top


class _LogESP(torch.autograd.Function):
    r"""``log e_k(exp(v))`` for ``k = 0..n``: rows ``(R, n)`` -> ``(R, n + 1)``.

    The recursion over elements, with its adjoint in the backward: with
    :math:`p_k = e_k^{(j)} / e_k^{(j+1)}` the share of the subsets without element ``j``,
    :math:`\bar v_j = \sum_k \bar E_k (1 - p_k)` and :math:`\bar E_k \leftarrow \bar E_k p_k +
    \bar E_{k+1} (1 - p_{k+1})`. The states are recomputed segment by segment from checkpoints
    every ``_SEGMENT`` elements, so memory stays :math:`O(n^{3/2})` per row.
    """

    @staticmethod
    def forward(v):
        rows, n = v.shape
        state = torch.full((rows, n + 1), -torch.inf, dtype=v.dtype, device=v.device)
        state[:, 0] = 0.0
        checkpoints = []
        for j in range(n):
            if j % _SEGMENT == 0:
                checkpoints.append(state.clone())
            _esp_step(state, v, j)
        return state, torch.stack(checkpoints)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(inputs[0], output[1])

    @staticmethod
    def backward(ctx, grad, _grad_checkpoints):
        v, checkpoints = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: differentiate the plain recursion
            return _rebuilt_vjp(_plain_log_esp, (v,), grad)[0]
        n = v.shape[1]
        grad_v = torch.zeros_like(v)
        adj = grad.clone()
        for c in range(checkpoints.shape[0] - 1, -1, -1):
            first, stop = c * _SEGMENT, min((c + 1) * _SEGMENT, n)
            state = checkpoints[c].clone()
            states = []  # the active part (k = 0..j+1) of the state before each element j
            for j in range(first, stop):
                states.append(state[:, : j + 2].clone())
                _esp_step(state, v, j)
            states.append(state[:, : stop + 1])
            for j in range(stop - 1, first - 1, -1):
                before, after = states[j - first], states[j - first + 1]
                keep = torch.exp(before[:, 1:] - after[:, 1 : j + 2])  # p_k, k = 1..j+1
                take = adj[:, 1 : j + 2] * (1.0 - keep)
                grad_v[:, j] = take.sum(-1)
                adj[:, 1 : j + 1] = adj[:, 1 : j + 1] * keep[:, :-1] + take[:, 1:]
                adj[:, j + 1] = 0.0
        return grad_v


def _plain_log_esp(v: torch.Tensor) -> torch.Tensor:
    """:class:`_LogESP`'s recursion in out-of-place torch operations (``(..., n)`` -> ``(..., n + 1)``):
    every transform and every derivative order applies, at the price of ``n`` steps of autograd."""
    n = v.shape[-1]
    state = torch.cat([torch.zeros_like(v[..., :1]), torch.full_like(v, -torch.inf)], -1)
    for j in range(n):
        vj = v[..., j : j + 1]
        active = torch.logaddexp(state[..., 1 : j + 1], vj + state[..., :j])
        state = torch.cat([state[..., :1], active, vj + state[..., j : j + 1], state[..., j + 2 :]], -1)
    return state


def _rebuilt_vjp(function, inputs, grad):
    """The VJP of ``function`` at ``inputs`` for ``grad``, with a graph (a double backward)."""
    with torch.enable_grad():
        leaves = [t if t.requires_grad else t.detach().requires_grad_() for t in inputs]
        out = function(*leaves)
        return torch.autograd.grad(out, leaves, grad, create_graph=True, allow_unused=True)


def _log_esp(v: torch.Tensor) -> torch.Tensor:
    """``log e_k(exp(v))`` for ``k = 0..n`` along the last axis: ``(..., n)`` -> ``(..., n + 1)``."""
    n = v.shape[-1]
    if in_transform():
        return _plain_log_esp(v)
    return _LogESP.apply(v.reshape(-1, n))[0].view(*v.shape[:-1], n + 1)


def smooth_bounds(w: torch.Tensor, t):
    """Smoothed permutahedron bounds of ``w`` ``(..., n)``: ``b_k = t log e_k(exp(w / t))``,
    ``k = 1..n-1`` ``(..., n - 1)``, and ``b_n = sum(w)`` exactly ``(..., 1)``."""
    return t * _log_esp(w / t)[..., 1:-1], w.sum(-1, keepdim=True)


# ---------------------------------------------------------------------------- linear algebra


def _second_diff(v: torch.Tensor) -> torch.Tensor:
    """``L v`` with ``L = tridiag(-1, 2, -1)`` along the last axis."""
    out = 2.0 * v
    out[..., 1:] -= v[..., :-1]
    out[..., :-1] -= v[..., 1:]
    return out


def _inv2(m: torch.Tensor) -> torch.Tensor:
    """Inverses of ``(..., 2, 2)`` matrices."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    return torch.stack([d, -b, -c, a], -1).div_((a * d - b * c).unsqueeze(-1)).unflatten(-1, (2, 2))


def _cyclic_reduction(low, diag, up, f):
    """Solve the block-tridiagonal system ``low_i x_{i-1} + diag_i x_i + up_i x_{i+1} = f_i``.

    Blocks ``(R, m, 2, 2)``, right side ``(R, m, 2, 1)``, ``m = 2^L - 1``, ``low_0 = up_{m-1} = 0``.
    Each level eliminates the even blocks and keeps the odd ones.
    """
    if diag.shape[1] == 1:
        return _inv2(diag) @ f
    inv_e = _inv2(diag[:, 0::2])
    low_e, up_e, f_e = low[:, 0::2], up[:, 0::2], f[:, 0::2]
    to_left = low[:, 1::2] @ inv_e[:, :-1]  # low_i diag_{i-1}^{-1}
    to_right = up[:, 1::2] @ inv_e[:, 1:]  # up_i diag_{i+1}^{-1}
    x_odd = _cyclic_reduction(
        -to_left @ low_e[:, :-1],
        diag[:, 1::2] - to_left @ up_e[:, :-1] - to_right @ low_e[:, 1:],
        -to_right @ up_e[:, 1:],
        f[:, 1::2] - to_left @ f_e[:, :-1] - to_right @ f_e[:, 1:],
    )
    pad = torch.nn.functional.pad(x_odd, (0, 0, 0, 0, 1, 1))
    x_even = inv_e @ (f_e - low_e @ pad[:, :-1] - up_e @ pad[:, 1:])
    return torch.cat([torch.stack([x_even[:, :-1], x_odd], 2).flatten(1, 2), x_even[:, -1:]], 1)


def _solve_hessian(slack: torch.Tensor, gap: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve ``(L diag(slack) L + diag(gap)) x = rhs`` for rows ``(R, m)``."""
    rows, m = rhs.shape
    zero = slack.new_zeros(rows, 1)
    s_prev = torch.cat([zero, slack[:, :-1]], 1)
    s_next = torch.cat([slack[:, 1:], zero], 1)
    d0 = s_prev + 4.0 * slack + s_next + gap  # H[i, i]
    d1 = -2.0 * (slack[:, :-1] + slack[:, 1:])  # H[i, i + 1]
    d2 = slack[:, 1:-1]  # H[i, i + 2]
    # Pad to 2 (2^L - 1) unknowns with decoupled identity rows, group them in pairs.
    blocks = (1 << ((m + 1) // 2).bit_length()) - 1
    size = 2 * blocks
    one = torch.nn.functional.pad(d0, (0, size - m), value=1.0)
    d1 = torch.nn.functional.pad(d1, (0, size - 1 - d1.shape[1]))
    d2 = torch.nn.functional.pad(d2, (0, size - 2 - d2.shape[1]))
    f = torch.nn.functional.pad(rhs, (0, size - m)).view(rows, blocks, 2, 1)
    a0, a1 = one[:, 0::2], one[:, 1::2]
    c01 = d1[:, 0::2]
    diag = torch.stack([torch.stack([a0, c01], -1), torch.stack([c01, a1], -1)], -2)
    # up_I couples (2I, 2I + 1) to (2I + 2, 2I + 3): [[H02, 0], [H12, H13]].
    h02 = d2[:, 0::2]
    h12 = torch.nn.functional.pad(d1[:, 1::2], (0, blocks - d1[:, 1::2].shape[1]))
    h13 = torch.nn.functional.pad(d2[:, 1::2], (0, blocks - d2[:, 1::2].shape[1]))
    h02 = torch.nn.functional.pad(h02, (0, blocks - h02.shape[1]))
    up = torch.stack([torch.stack([h02, torch.zeros_like(h02)], -1), torch.stack([h12, h13], -1)], -2)
    up[:, -1] = 0.0
    low = torch.cat([torch.zeros_like(up[:, :1]), up[:, :-1].transpose(-1, -2)], 1)
    return _cyclic_reduction(low, diag, up, f).reshape(rows, size)[:, :m]


def _dual(beta, ds, s_last, b, bn, with_scale=False):
    """``(slack, gap, g(beta), scale)`` of the dual at ``beta`` (any leading dims); ``scale`` (None
    unless ``with_scale``) is the sum of the magnitudes of the terms of ``g``, which bounds its
    rounding error over ``eps``."""
    alpha = ds + _second_diff(beta)
    slack, gap = torch.exp(-alpha), torch.exp(-beta)
    linear = alpha * b
    last = ((s_last - beta[..., -1:]) * bn).squeeze(-1)
    barrier = slack.sum(-1) + gap.sum(-1)
    scale = linear.abs().sum(-1) + last.abs() + barrier if with_scale else None
    return slack, gap, linear.sum(-1) + last + barrier, scale


def _newton(s, b, bn, tol, max_iter):
    """Slacks and gaps ``(R, n - 1)`` at the dual optimum, by damped Newton on every row at once."""
    ds, s_last = s[:, :-1] - s[:, 1:], s[:, -1:]
    beta = torch.zeros_like(b)
    steps = _STEPS.to(b.device).view(-1, 1, 1)
    rounding = 8.0 * torch.finfo(b.dtype).eps
    for _ in range(max_iter):
        slack, gap, value, scale = _dual(beta, ds, s_last, b, bn, with_scale=True)
        grad = _second_diff(b - slack) - gap
        grad[:, -1] -= bn[:, 0]
        step = -_solve_hessian(slack, gap, grad)
        decrement = -(grad * step).sum(-1)  # the squared Newton decrement, >= 0
        # Armijo, with room for the rounding of g: the full step when every row accepts it, else
        # the largest acceptable step of the ladder per row (the smallest when none is).
        bound = value + rounding * scale
        full = beta + step
        if bool((_dual(full, ds, s_last, b, bn)[2] <= bound - _ARMIJO * decrement).all()):
            beta = full
        else:
            trial = beta + steps * step  # (K, R, m)
            ok = _dual(trial, ds, s_last, b, bn)[2] <= bound - _ARMIJO * steps.view(-1, 1) * decrement
            first = torch.where(ok.any(0), ok.to(torch.int8).argmax(0), ok.shape[0] - 1)
            beta = trial.gather(0, first.view(1, -1, 1).expand(1, *beta.shape))[0]
        if not bool((decrement > tol * scale).any()):  # that step was the last one needed
            break
    slack, gap, _, _ = _dual(beta, ds, s_last, b, bn)
    return slack, gap


class _Projection(torch.autograd.Function):
    """The smooth-sort maximizer ``y`` (decreasing) of slots ``s`` (decreasing), bounds ``b``, total ``bn``.

    Shapes ``(R, n)``, ``(R, n - 1)``, ``(R, 1)``; float64. Outputs ``(y, slack, gap)``; the last
    two are the primal slacks and gaps at the optimum, kept for the backward.
    """

    @staticmethod
    def forward(s, b, bn, tol, max_iter):
        slack, gap = _newton(s, b, bn, tol, max_iter)
        prefix = torch.cat([b - slack, bn], -1)
        return torch.diff(prefix, dim=-1, prepend=torch.zeros_like(bn)), slack, gap

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, slack, gap = output
        ctx.mark_non_differentiable(slack, gap)
        ctx.save_for_backward(*inputs[:3], slack, gap)

    @staticmethod
    def backward(ctx, grad_y, _grad_slack, _grad_gap):
        s, b, bn, slack, gap = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: differentiate the polished solution
            return *_rebuilt_vjp(lambda s, b, bn: _polished(s, b, bn, gap), (s, b, bn), grad_y), None, None
        r = grad_y[:, :-1] - grad_y[:, 1:]  # D grad_y
        q = _solve_hessian(slack, gap, _second_diff(slack * r))
        p = r - _second_diff(q)
        weighted = slack * p
        zero = torch.zeros_like(weighted[:, :1])
        grad_s = torch.cat([weighted, zero], -1) - torch.cat([zero, weighted], -1)  # D^T (slack p)
        return grad_s, p, grad_y[:, -1:] + q[:, -1:], None, None


def _polished(s, b, bn, gap):
    r"""The maximizer ``y`` from the optimal gaps (no gradient) by two Newton steps on the dual in
    differentiable torch operations: the first from the (detached) optimum, the second from the
    first, so that ``y`` carries the exact first and second derivatives of the implicit solution
    (a Newton step at the root passes on the derivatives of its start to one order higher)."""
    ds, s_last = s[:, :-1] - s[:, 1:], s[:, -1:]
    beta = -torch.log(gap.detach().clamp_min(torch.finfo(gap.dtype).tiny))
    last = torch.nn.functional.pad(bn, (beta.shape[-1] - 1, 0))  # b_n at the last gap
    for _ in range(2):
        slack, gap, _, _ = _dual(beta, ds, s_last, b, bn)
        grad = _second_diff(b - slack) - gap - last
        beta = beta - _solve_hessian(slack, gap, grad)
    slack = _dual(beta, ds, s_last, b, bn)[0]
    prefix = torch.cat([b - slack, bn], -1)
    return torch.diff(prefix, dim=-1, prepend=torch.zeros_like(bn))


@torch.library.custom_op("softtorch::smooth_permutahedron_gaps", mutates_args=())
def _gaps_op(s: torch.Tensor, b: torch.Tensor, bn: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """The optimal gaps (no gradient): Newton's iterations stop on a convergence test, so under
    ``torch.compile`` they run as one operator."""
    return _newton(s, b, bn, tol, max_iter)[1]


@_gaps_op.register_fake
def _(s, b, bn, tol, max_iter):
    return torch.empty_like(b)


@_gaps_op.register_vmap
def _(info, in_dims, s, b, bn, tol, max_iter):
    size = info.batch_size
    s, b, bn = (t.movedim(d, 0) if d is not None else t.expand(size, *t.shape) for t, d in zip((s, b, bn), in_dims))
    rows = s.shape[1]
    gap = _gaps_op(s.flatten(0, 1), b.flatten(0, 1), bn.flatten(0, 1), tol, max_iter)
    return gap.view(size, rows, -1), 0


def project(s, w, t, tol, max_iter):
    """The maximizer ``y`` (decreasing) for decreasing slots ``s`` on the smoothed permutahedron of
    ``w`` with temperature ``t``, broadcasting ``s`` ``(..., n)``, ``w`` ``(..., n)`` and ``t``
    (a float or a tensor against ``(..., 1)``); float64, ``n >= 2``."""
    shape = torch.broadcast_shapes(s.shape, w.shape)
    n = shape[-1]
    b, bn = smooth_bounds(w, t)
    s, b, bn = s.expand(shape), b.expand(*shape[:-1], n - 1), bn.expand(*shape[:-1], 1)
    s, b, bn = s.reshape(-1, n), b.reshape(-1, n - 1), bn.reshape(-1, 1)
    if in_transform():
        # compile and torch.func: the optimal gaps from the solver, the solution and every
        # derivative from two Newton steps in plain torch operations
        gap = _gaps_op(s.detach(), b.detach(), bn.detach(), float(tol), int(max_iter))
        return _polished(s, b, bn, gap).view(shape)
    return _Projection.apply(s, b, bn, tol, max_iter)[0].view(shape)
