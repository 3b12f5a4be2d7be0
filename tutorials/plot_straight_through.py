"""
Straight-through versus soft gradients
======================================

A network with an integer-valued layer, say a quantized code between an encoder and a decoder,
contains :func:`torch.round`, whose gradient is zero almost everywhere: trained through it, the
encoder never moves. There are two ways around that. *Soft* training replaces the rounding by
:func:`softtorch.round` in both passes, so the network is trained on a smoothed staircase and
deployed on the real one. *Straight-through* training (:func:`softtorch.round_st`) keeps the real
rounding in the forward pass and only borrows the soft gradient in the backward pass. This
tutorial compares the two.
"""

import matplotlib.pyplot as plt
import torch

import softtorch as st

torch.set_num_threads(1)  # tiny models: a thread pool only adds overhead (the docs build does the same)

torch.manual_seed(0)
# sphinx_gallery_thumbnail_number = 3

# %%
# Forward and backward of the three roundings
# -------------------------------------------
#
# The hard rounding is a staircase with a zero gradient. The soft one is a smoothed staircase
# whose gradient peaks at the half-integers. The straight-through rounding *is* the staircase,
# but its gradient is the soft one.

z = torch.linspace(-2, 2, 801, requires_grad=True)
roundings = {
    "hard: st.round(mode='hard')": lambda t: st.round(t, mode="hard"),
    "soft: st.round(softness=0.2)": lambda t: st.round(t, softness=0.2),
    "straight-through: st.round_st(softness=0.2)": lambda t: st.round_st(t, softness=0.2),
}
fig, (ax_fwd, ax_bwd) = plt.subplots(1, 2, figsize=(11, 3.8))
for (name, fn), ls in zip(roundings.items(), ["-", "-", "--"]):
    out = fn(z)
    (grad,) = torch.autograd.grad(out.sum(), z)
    ax_fwd.plot(z.detach(), out.detach(), ls, label=name)
    ax_bwd.plot(z.detach(), grad, ls, label=name)
ax_fwd.set_title("forward")
ax_bwd.set_title("backward: d out / dz")
for ax in (ax_fwd, ax_bwd):
    ax.set_xlabel("z")
ax_fwd.legend(fontsize=8)
fig.tight_layout()

# %%
# The task
# --------
#
# An encoder maps :math:`x \in [-3, 3]` to one number, which is rounded to an integer; a decoder
# maps that integer to a prediction of :math:`y = \sin 2x`. Only a dozen or so integers are
# reachable, so the deployed model must choose its quantization levels well. Every run starts
# from the same weights and trains for 600 Adam steps with a cosine learning-rate decay. We record
# the training loss and the loss of the *deployed* model, whose code goes through the hard
# rounding.

x = torch.linspace(-3, 3, 512).unsqueeze(-1)
y = torch.sin(2 * x)


class QuantizedCode(torch.nn.Module):
    def __init__(self, rounding):
        super().__init__()
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
        )
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(1, 32),
            torch.nn.Tanh(),
            torch.nn.Linear(32, 32),
            torch.nn.Tanh(),
            torch.nn.Linear(32, 1),
        )
        self.rounding = rounding

    def code(self, x):
        return 3 * self.encoder(x)  # before rounding

    def forward(self, x, deployed=False):
        code = torch.round(self.code(x)) if deployed else self.rounding(self.code(x))
        return self.decoder(code)


def train(rounding, steps=600):
    torch.manual_seed(1)
    model = QuantizedCode(rounding)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    history = {"train": [], "deployed": []}
    for step in range(steps):
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 10 == 0:
            with torch.no_grad():
                history["train"].append(((model(x) - y) ** 2).mean().item())
                history["deployed"].append(((model(x, deployed=True) - y) ** 2).mean().item())
    return model, history


softness = 0.3
variants = {
    "hard rounding": lambda t: st.round(t, mode="hard"),
    "soft rounding": lambda t: st.round(t, softness=softness),
    "straight-through": lambda t: st.round_st(t, softness=softness),
    "no rounding in training": lambda t: t,
}
results = {name: train(rounding) for name, rounding in variants.items()}
for name, (_, history) in results.items():
    train_mse, deployed_mse = history["train"][-1], history["deployed"][-1]
    print(f"{name:>23}: training MSE {train_mse:.4f}, deployed MSE {deployed_mse:.4f}")

# %%
# With the hard rounding nothing is learned: the encoder gets no gradient. The soft model reaches
# a tiny training loss, but the decoder has learned to read the *fractional* part of the smoothed
# code, which the deployed rounding throws away; its deployed error is many times its training
# error. Ignoring the rounding during training is worse still. The straight-through model is
# trained on the deployed function itself: its training loss *is* its deployed loss, and it is
# the lowest deployed loss of all.

steps = range(0, 600, 10)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
for ax, name in zip(axes, ["soft rounding", "straight-through", "no rounding in training"]):
    history = results[name][1]
    ax.semilogy(steps, history["train"], label="training loss")
    ax.semilogy(steps, history["deployed"], label="deployed (hard rounding)")
    ax.set_title(name)
    ax.set_xlabel("step")
axes[0].set_ylabel("MSE")
axes[0].legend()
fig.tight_layout()

# %%
# The deployed predictions show it: the straight-through model has placed its quantization
# levels where the target needs them; the soft model's levels only work with the fractional code
# it was trained on.

fig, axes = plt.subplots(2, 2, figsize=(12, 6), sharex=True)
for col, name in enumerate(["soft rounding", "straight-through"]):
    model = results[name][0]
    with torch.no_grad():
        trained = model(x)
        deployed = model(x, deployed=True)
        raw_code = model.code(x)
    axes[0, col].plot(x, y, "k-", lw=1, label="target")
    axes[0, col].plot(x, trained, color="C0", label="as trained")
    axes[0, col].plot(x, deployed, color="C1", label="deployed")
    axes[0, col].set_title(name)
    axes[1, col].plot(x, raw_code, color="0.5", label="code before rounding")
    axes[1, col].plot(x, torch.round(raw_code), color="C1", label="deployed integer code")
    axes[1, col].set_xlabel("x")
axes[0, 0].legend(fontsize=8)
axes[1, 0].legend(fontsize=8)
fig.tight_layout()

# %%
# The softness
# ------------
#
# For soft training the softness is a compromise: small, and the smoothed staircase is close to
# the deployed one but its gradient vanishes between the half-integers; large, and the decoder
# learns to rely on a code that does not exist at deployment. Straight-through training only uses
# the softness to shape the gradient, and its deployed loss barely depends on it.

softnesses = [0.1, 0.3, 1.0]
fig, ax = plt.subplots(figsize=(7, 3.8))
for i, (name, make) in enumerate(
    [
        ("soft", lambda s: lambda t: st.round(t, softness=s)),
        ("straight-through", lambda s: lambda t: st.round_st(t, softness=s)),
    ]
):
    deployed = [train(make(s), steps=400)[1]["deployed"][-1] for s in softnesses]
    print(
        f"{name:>16}: deployed MSE",
        "  ".join(f"softness {s}: {d:.4f}" for s, d in zip(softnesses, deployed)),
    )
    ax.bar([j + 0.4 * i for j in range(len(softnesses))], deployed, width=0.4, label=name)
ax.set_xticks([j + 0.2 for j in range(len(softnesses))], [f"softness {s}" for s in softnesses])
ax.set_yscale("log")
ax.set_ylabel("deployed MSE after 400 steps")
ax.legend()
fig.tight_layout()
plt.show()
