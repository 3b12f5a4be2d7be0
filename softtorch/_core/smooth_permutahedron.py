r"""The entropic projection onto a smoothed permutahedron (the solver of ``method="smooth_sort"``).

:func:`project` maximizes :math:`\langle s, y \rangle + \sum_k h(b_k - (Ay)_k) + \sum_k h(y_k - y_{k+1})`,
:math:`h(u) = u - u \log u`, over :math:`\mathbf 1^\top y = b_n`, with the smoothed bounds
:math:`b_k = t \log e_k(e^{w / t})` of :func:`smooth_bounds`: damped Newton on the
:math:`(n-1)`-dimensional dual for all rows at once (block cyclic reduction of the pentadiagonal
Hessian), implicit gradients, and a checkpointed log-space recursion for the bounds. The dual,
the gradients and the bounds' recursion are derived in the user guide,
:doc:`/user_guide/how_methods_work`.
"""

from __future__ import annotations

import math

import torch

from .forward_mode import in_transform

__all__ = ["smooth_bounds", "project"]

_ARMIJO = 1e-4
_STEPS = 2.0 ** -torch.arange(0, 30, 3, dtype=torch.float64)  # 1, 1/8, ..., 2^-27
_SEGMENT = 32  # elements between the checkpoints of the bounds' recursion
#: Hessian diagonal at a cut coordinate (:func:`project`): its Newton and backward solves then
#: give it 0 and leave the others exact (couplings of order ``slack^2 / _PIN``).
_PIN = 1e100


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


def _dual(beta, ds, s_last, b, bn, with_scale=False, cut=None):
    """``(slack, gap, g(beta), scale)`` of the dual at ``beta`` (any leading dims); ``scale`` (None
    unless ``with_scale``) is the sum of the magnitudes of the terms of ``g``, which bounds its
    rounding error over ``eps``. At the ``cut`` coordinates (``(R, n - 1)`` bool, see :func:`project`)
    the slack and gap terms are left out."""
    alpha = ds + _second_diff(beta)
    slack, gap = torch.exp(-alpha), torch.exp(-beta)
    if cut is not None:
        slack, gap = slack.masked_fill(cut, 0.0), gap.masked_fill(cut, 0.0)
    linear = alpha * b
    last = ((s_last - beta[..., -1:]) * bn).squeeze(-1)
    barrier = slack.sum(-1) + gap.sum(-1)
    scale = linear.abs().sum(-1) + last.abs() + barrier if with_scale else None
    return slack, gap, linear.sum(-1) + last + barrier, scale


def _newton(s, b, bn, tol, max_iter, cut=None):
    """Slacks and gaps ``(R, n - 1)`` at the dual optimum, by damped Newton on every row at once.

    The ``cut`` coordinates (see :func:`project`) stay at 0; their gaps are returned as
    :data:`_PIN`, which keeps them there in every solve with the Hessian (the backward's too).
    """
    ds, s_last = s[:, :-1] - s[:, 1:], s[:, -1:]
    beta = torch.zeros_like(b)
    steps = _STEPS.to(b.device).view(-1, 1, 1)
    rounding = 8.0 * torch.finfo(b.dtype).eps
    for _ in range(max_iter):
        slack, gap, value, scale = _dual(beta, ds, s_last, b, bn, with_scale=True, cut=cut)
        grad = _second_diff(b - slack) - gap
        grad[:, -1] -= bn[:, 0]
        if cut is not None:
            grad, gap = grad.masked_fill(cut, 0.0), gap.masked_fill(cut, _PIN)
        step = -_solve_hessian(slack, gap, grad)
        if cut is not None:
            step = step.masked_fill(cut, 0.0)
        decrement = -(grad * step).sum(-1)  # the squared Newton decrement, >= 0
        # Armijo, with room for the rounding of g: the full step when every row accepts it, else
        # the largest acceptable step of the ladder per row (the smallest when none is).
        bound = value + rounding * scale
        full = beta + step
        if bool((_dual(full, ds, s_last, b, bn, cut=cut)[2] <= bound - _ARMIJO * decrement).all()):
            beta = full
        else:
            trial = beta + steps * step  # (K, R, m)
            ok = _dual(trial, ds, s_last, b, bn, cut=cut)[2] <= bound - _ARMIJO * steps.view(-1, 1) * decrement
            first = torch.where(ok.any(0), ok.to(torch.int8).argmax(0), ok.shape[0] - 1)
            beta = trial.gather(0, first.view(1, -1, 1).expand(1, *beta.shape))[0]
        if not bool((decrement > tol * scale).any()):  # that step was the last one needed
            break
    slack, gap, _, _ = _dual(beta, ds, s_last, b, bn, cut=cut)
    return slack, gap if cut is None else gap.masked_fill(cut, _PIN)


class _Projection(torch.autograd.Function):
    """The smooth-sort maximizer ``y`` (decreasing) of slots ``s`` (decreasing), bounds ``b``, total ``bn``.

    Shapes ``(R, n)``, ``(R, n - 1)``, ``(R, 1)``; float64. Outputs ``(y, slack, gap)``; the last
    two are the primal slacks and gaps at the optimum, kept for the backward.
    """

    @staticmethod
    def forward(s, b, bn, tol, max_iter, cut=None):
        slack, gap = _newton(s, b, bn, tol, max_iter, cut)
        prefix = torch.cat([b - slack, bn], -1)
        return torch.diff(prefix, dim=-1, prepend=torch.zeros_like(bn)), slack, gap

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, slack, gap = output
        ctx.mark_non_differentiable(slack, gap)
        ctx.save_for_backward(*inputs[:3], slack, gap)
        ctx.cut = inputs[5] if len(inputs) > 5 else None

    @staticmethod
    def backward(ctx, grad_y, _grad_slack, _grad_gap):
        s, b, bn, slack, gap = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: differentiate the polished solution
            cut = ctx.cut
            vjp = _rebuilt_vjp(lambda s, b, bn: _polished(s, b, bn, gap, cut), (s, b, bn), grad_y)
            return *vjp, None, None, None
        r = grad_y[:, :-1] - grad_y[:, 1:]  # D grad_y
        q = _solve_hessian(slack, gap, _second_diff(slack * r))
        p = r - _second_diff(q)
        weighted = slack * p
        zero = torch.zeros_like(weighted[:, :1])
        grad_s = torch.cat([weighted, zero], -1) - torch.cat([zero, weighted], -1)  # D^T (slack p)
        return grad_s, p, grad_y[:, -1:] + q[:, -1:], None, None, None


def _polished(s, b, bn, gap, cut=None):
    r"""The maximizer ``y`` from the optimal gaps (no gradient) by two Newton steps on the dual in
    differentiable torch operations: the first from the (detached) optimum, the second from the
    first, so that ``y`` carries the exact first and second derivatives of the implicit solution
    (a Newton step at the root passes on the derivatives of its start to one order higher). The
    ``cut`` coordinates (:func:`project`) stay at 0, as in :func:`_newton`."""
    ds, s_last = s[:, :-1] - s[:, 1:], s[:, -1:]
    beta = -torch.log(gap.detach().clamp_min(torch.finfo(gap.dtype).tiny))
    if cut is not None:
        beta = beta.masked_fill(cut, 0.0)
    last = torch.nn.functional.pad(bn, (beta.shape[-1] - 1, 0))  # b_n at the last gap
    for _ in range(2):
        slack, gap, _, _ = _dual(beta, ds, s_last, b, bn, cut=cut)
        grad = _second_diff(b - slack) - gap - last
        if cut is not None:
            grad, gap = grad.masked_fill(cut, 0.0), gap.masked_fill(cut, _PIN)
        step = _solve_hessian(slack, gap, grad)
        beta = beta - (step if cut is None else step.masked_fill(cut, 0.0))
    slack = _dual(beta, ds, s_last, b, bn, cut=cut)[0]
    prefix = torch.cat([b - slack, bn], -1)
    return torch.diff(prefix, dim=-1, prepend=torch.zeros_like(bn))


@torch.library.custom_op("softtorch::smooth_permutahedron_gaps", mutates_args=())
def _gaps_op(
    s: torch.Tensor, b: torch.Tensor, bn: torch.Tensor, tol: float, max_iter: int, cut: torch.Tensor | None
) -> torch.Tensor:
    """The optimal gaps (no gradient): Newton's iterations stop on a convergence test, so under
    ``torch.compile`` they run as one operator."""
    return _newton(s, b, bn, tol, max_iter, cut)[1]


@_gaps_op.register_fake
def _(s, b, bn, tol, max_iter, cut):
    return torch.empty_like(b)


@_gaps_op.register_vmap
def _(info, in_dims, s, b, bn, tol, max_iter, cut):
    size = info.batch_size
    tensors = (s, b, bn) if cut is None else (s, b, bn, cut)
    dims = in_dims[:3] + in_dims[5:]  # the tensors' dims (tol and max_iter are numbers)
    moved = [t.movedim(d, 0) if d is not None else t.expand(size, *t.shape) for t, d in zip(tensors, dims)]
    rows = moved[0].shape[1]
    flat = [t.flatten(0, 1) for t in moved]
    gap = _gaps_op(*flat[:3], tol, max_iter, flat[3] if cut is not None else None)
    return gap.view(size, rows, -1), 0


def project(s, w, t, tol, max_iter, count=None):
    """The maximizer ``y`` (decreasing) for decreasing slots ``s`` on the smoothed permutahedron of
    ``w`` with temperature ``t``, broadcasting ``s`` ``(..., n)``, ``w`` ``(..., n)`` and ``t``
    (a float or a tensor against ``(..., 1)``); float64, ``n >= 2``.

    With ``count`` (``(..., 1)`` integers), each row is cut in two independent problems: its first
    ``count`` entries (of ``s`` and ``w``) give exactly the maximizer of those entries alone, and
    the rest a problem of its own, whose result is of no use. The rest of ``w`` is moved far below
    the head (its terms in the bounds :math:`b_k`, :math:`k < \text{count}`, underflow to 0), the
    bound :math:`b_{\text{count}}` is then the head's total, and the dual coordinate of the gap
    between the two parts is held at 0 with its gap and slack terms left out
    (:func:`_newton`): no barrier joins the parts, and the prefix-sum bound at the cut holds
    with equality, as the head's total does in the problem of the head alone.
    """
    shape = torch.broadcast_shapes(s.shape, w.shape)
    n = shape[-1]
    cut = None
    if count is not None:
        s, w = s.expand(shape), w.expand(shape)
        head = torch.arange(n, device=w.device) < count
        low = w.detach().masked_fill(~head, torch.inf).amin(-1, keepdim=True)
        low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))  # rows with nothing kept
        far = low - torch.as_tensor(t, dtype=w.dtype).detach() * (60.0 + math.log(n))
        w = torch.where(head, w, far)
        last = s.detach().gather(-1, (count - 1).clamp_min(0))
        s = torch.where(head, s, last)
        cut = (torch.arange(1, n, device=w.device) == count).expand(*shape[:-1], n - 1).reshape(-1, n - 1)
    b, bn = smooth_bounds(w, t)
    s, b, bn = s.expand(shape), b.expand(*shape[:-1], n - 1), bn.expand(*shape[:-1], 1)
    s, b, bn = s.reshape(-1, n), b.reshape(-1, n - 1), bn.reshape(-1, 1)
    if in_transform():
        # compile and torch.func: the optimal gaps from the solver, the solution and every
        # derivative from two Newton steps in plain torch operations
        gap = _gaps_op(s.detach(), b.detach(), bn.detach(), float(tol), int(max_iter), cut)
        return _polished(s, b, bn, gap, cut).view(shape)
    return _Projection.apply(s, b, bn, tol, max_iter, cut)[0].view(shape)
