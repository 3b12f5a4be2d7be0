"""
A tour of modes and softness
============================

Every elementwise operator of softtorch is built on one soft step, the sigmoidal kernel
:math:`\\sigma_{mode}(x / \\text{softness})`. This tour looks at what the two knobs do to it:
``mode`` changes its shape, ``softness`` its width. Then it builds the other operators from it
and measures how fast each mode approaches the hard operator.
"""

import matplotlib.pyplot as plt
import torch

import softtorch as st

torch.set_num_threads(1)  # tiny models: a thread pool only adds overhead (the docs build does the same)

torch.manual_seed(0)
MODES = ["hard", "smooth", "c0", "c1", "c2"]
COLORS = {"hard": "black", "smooth": "C0", "c0": "C1", "c1": "C2", "c2": "C3"}

# %%
# One step, five modes
# --------------------
#
# :func:`softtorch.heaviside` is the soft step. ``"smooth"`` is the logistic function, which
# never quite reaches 0 or 1; ``"c0"``, ``"c1"`` and ``"c2"`` are polynomials that reach them
# exactly at :math:`x = \pm 5\,\text{softness}` and are continuous, once and twice continuously
# differentiable there. The right panel is the gradient autograd computes: the hard step has none
# (the gradient is zero everywhere), the polynomial modes have a gradient only inside their
# window.

x = torch.linspace(-1.0, 1.0, 801, requires_grad=True)
softness = 0.1

fig, (ax_value, ax_grad) = plt.subplots(1, 2, figsize=(11, 3.8))
for mode in MODES:
    y = st.heaviside(x, softness=softness, mode=mode)
    (dy,) = torch.autograd.grad(y.sum(), x)
    ls = "--" if mode == "hard" else "-"
    ax_value.plot(x.detach(), y.detach(), ls, color=COLORS[mode], label=mode)
    ax_grad.plot(x.detach(), dy, ls, color=COLORS[mode], label=mode)
for ax in (ax_value, ax_grad):
    ax.axvspan(-5 * softness, 5 * softness, color="0.93", zorder=0)
    ax.set_xlabel("x")
ax_value.set_title(f"heaviside(x), softness={softness}")
ax_grad.set_title("d heaviside / dx")
ax_value.legend()
fig.tight_layout()

# %%
# The polynomial modes are exactly hard outside the window; the smooth mode is not, but it is
# within 1% of the step beyond five softnesses too:

probe = torch.tensor([-0.6, -0.5, -0.3, 0.3, 0.5, 0.6])
for mode in MODES:
    print(f"{mode:>6}:", st.heaviside(probe, softness=softness, mode=mode))

# %%
# Softness is the width
# ---------------------
#
# ``softness`` rescales the input: the same kernel gets wider as it grows and tends to the hard
# step as it shrinks. Here is the smooth mode and the ``"c1"`` mode over four decades.

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
xs = x.detach()
for ax, mode in zip(axes, ["smooth", "c1"]):
    for i, s in enumerate([1.0, 0.3, 0.1, 0.03, 0.01]):
        ax.plot(
            xs,
            st.heaviside(xs, softness=s, mode=mode),
            color=plt.cm.viridis(i / 4),
            label=f"softness={s}",
        )
    ax.plot(xs, st.heaviside(xs, mode="hard"), "k--", lw=1)
    ax.set_title(f"heaviside, mode={mode!r}")
    ax.set_xlabel("x")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %%
# Every elementwise operator, every mode
# --------------------------------------
#
# The others are built from the same kernel: ``sign`` is :math:`2\sigma - 1`, ``abs`` is
# :math:`x\,\operatorname{sign}(x)`, ``relu`` is the antiderivative of :math:`\sigma` (times the
# softness), ``clamp`` is two ReLUs, and ``round`` is a staircase of steps at the half-integers.

ops = {
    "sign": lambda t, m: st.sign(t, softness=0.2, mode=m),
    "abs": lambda t, m: st.abs(t, softness=0.2, mode=m),
    "relu": lambda t, m: st.relu(t, softness=0.2, mode=m),
    "clamp(x, -1, 1)": lambda t, m: st.clamp(t, -1.0, 1.0, softness=0.1, mode=m),
    "round": lambda t, m: st.round(t, softness=0.1, mode=m),
}
xr = torch.linspace(-2.5, 2.5, 1001)
fig, axes = plt.subplots(1, len(ops), figsize=(15, 3.2))
for ax, (name, op) in zip(axes, ops.items()):
    for mode in MODES:
        ax.plot(
            xr,
            op(xr, mode),
            "--" if mode == "hard" else "-",
            color=COLORS[mode],
            lw=1.2,
            label=mode,
        )
    ax.set_title(name)
    ax.set_xlabel("x")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %%
# How close to hard?
# ------------------
#
# The worst-case distance to the hard operator shrinks linearly with the softness in every mode.
# For the ReLU it is reached at 0, where the soft ReLU is :math:`\text{softness} \cdot c` with a
# constant :math:`c` that depends on the mode (:math:`\ln 2` for smooth, :math:`5/4` for c0,
# :math:`15/16` for c1, :math:`25/32` for c2). Away from the jump the picture differs: the
# polynomial steps are *exactly* hard as soon as the softness is below a fifth of the distance to
# the jump, while the smooth step only gets exponentially close, until it rounds to the step in
# floating point (computed in float64 here; exact zeros are drawn at :math:`10^{-16}`).

softnesses = torch.logspace(-3, 0, 13, dtype=torch.float64)
grid = torch.linspace(-3, 3, 6001, dtype=torch.float64)
fig, (ax_relu, ax_step) = plt.subplots(1, 2, figsize=(11, 3.8))
for mode in MODES[1:]:
    far = grid.abs() > 0.25  # away from the jump
    relu_err, step_err = [], []
    for s in softnesses:
        relu_err.append(
            (st.relu(grid, softness=float(s), mode=mode) - torch.relu(grid)).abs().max()
        )
        step_err.append(
            (st.heaviside(grid, softness=float(s), mode=mode) - (grid > 0).double())[far]
            .abs()
            .max()
        )
    ax_relu.loglog(softnesses, relu_err, "o-", color=COLORS[mode], ms=3, label=mode)
    ax_step.loglog(
        softnesses,
        torch.stack(step_err).clamp(min=1e-16),
        "o-",
        color=COLORS[mode],
        ms=3,
        label=mode,
    )
ax_relu.set_title("max |relu_soft - relu|")
ax_step.set_title("max |heaviside_soft - step| for |x| > 0.25")
for ax in (ax_relu, ax_step):
    ax.set_xlabel("softness")
ax_relu.legend()
fig.tight_layout()

for mode in MODES[1:]:
    at_zero = st.relu(torch.tensor(0.0), softness=1.0, mode=mode)
    print(f"{mode:>6}: relu error at 0 / softness = {at_zero.item():.4f}")

# %%
# Soft booleans compose
# ---------------------
#
# Comparisons are steps of a difference, so they return *soft booleans* in :math:`[0, 1]`, and the
# logic operators combine them. Here is a soft indicator of the band :math:`-1 < x < 1`, built
# from two comparisons and a soft AND, in each mode, and its use as a soft ``where``.

band = {
    mode: st.logical_and(
        st.greater(xr, torch.tensor(-1.0), softness=0.2, mode=mode),
        st.less(xr, torch.tensor(1.0), softness=0.2, mode=mode),
    )
    for mode in MODES
}
fig, (ax_band, ax_where) = plt.subplots(1, 2, figsize=(11, 3.6))
for mode, inside in band.items():
    ls = "--" if mode == "hard" else "-"
    ax_band.plot(xr, inside, ls, color=COLORS[mode], label=mode)
    ax_where.plot(
        xr, st.where(inside, xr**2, torch.zeros_like(xr)), ls, color=COLORS[mode], label=mode
    )
ax_band.set_title("logical_and(x > -1, x < 1)")
ax_where.set_title("where(-1 < x < 1, x**2, 0)")
ax_band.legend(fontsize=8)
for ax in (ax_band, ax_where):
    ax.set_xlabel("x")
fig.tight_layout()
plt.show()
