"""
Learning the temperature
========================

A layer built with ``learnable=True`` treats its softness as a parameter and learns it with the
rest of the model. When is that useful? When the soft output *is* the model, and its sharpness is
something the data should decide. Here is such a case: thresholds whose labels are noisy.

Three sensors read a value :math:`x`; each one reports whether :math:`x` is above its own
threshold, but with Gaussian noise of a different size on :math:`x`:
:math:`y = [x + \\varepsilon > t]`, :math:`\\varepsilon \\sim \\mathcal N(0, \\sigma^2)`. The
probability of a positive answer is a smooth step of width proportional to :math:`\\sigma`, so a
soft step with the right threshold *and the right softness* is the best model. We learn both,
one threshold and one softness per sensor, from the labels alone.

The second half is the opposite case: the *hard* operator is what the model will use, and a
learned softness has no reason to go to zero by itself. There a softness schedule
(:class:`softtorch.schedules.SoftnessScheduler`) anneals it, and
:func:`softtorch.schedules.hardness_gap` shows the soft metric closing on the hard one.
"""

import matplotlib.pyplot as plt
import torch

import softtorch as st
from softtorch.schedules import SoftnessScheduler, hardness_gap

torch.set_num_threads(1)  # tiny models: a thread pool only adds overhead (the docs build does the same)
torch.manual_seed(0)
# sphinx_gallery_thumbnail_number = 2

# %%
# The data
# --------
#
# 3000 readings per sensor; the noise levels differ by a factor of ten.

noise = torch.tensor([0.05, 0.2, 0.5])
threshold = torch.tensor([0.5, -0.3, 0.0])
n_samples, n_sensors = 3000, 3

x = 4 * torch.rand(n_samples, n_sensors) - 2
y = (x + noise * torch.randn(n_samples, n_sensors) > threshold).float()

# %%
# The model
# ---------
#
# A learnable threshold per sensor and one :class:`softtorch.nn.SoftHeaviside` whose softness is
# a tensor of shape ``(3,)`` (one temperature per sensor, broadcasting against the last axis of
# the input) and learnable. It starts at 0.5, ten to a hundred times too soft for two of the
# sensors. The softness is stored as its logarithm, ``log_softness``, so it stays positive
# whatever the optimizer does.


class NoisyThresholds(torch.nn.Module):
    def __init__(self, n, softness=0.5):
        super().__init__()
        self.threshold = torch.nn.Parameter(torch.zeros(n))
        self.step = st.nn.SoftHeaviside(softness=torch.full((n,), softness), learnable=True)

    def forward(self, x):
        return self.step(x - self.threshold)


model = NoisyThresholds(n_sensors)
print(model)
print([name for name, _ in model.named_parameters()])

# %%
# Training
# --------
#
# Plain binary cross-entropy with Adam. (With an optimizer that has weight decay, put
# ``log_softness`` in a parameter group without it: decay would pull the softness towards 1.)

optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
losses, softness_history, threshold_history = [], [], []
for _ in range(300):
    p = model(x).clamp(1e-6, 1 - 1e-6)
    loss = torch.nn.functional.binary_cross_entropy(p, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    softness_history.append(model.step.softness.detach().clone())
    threshold_history.append(model.threshold.detach().clone())
softness_history = torch.stack(softness_history)
threshold_history = torch.stack(threshold_history)

# %%
# The logistic curve that best matches a Gaussian noise of standard deviation :math:`\sigma` has
# a softness of about :math:`\sigma / 1.7`. The learned softnesses land close to that, one per
# sensor, and the thresholds on the true ones:

reference = noise / 1.702
learned_softness = model.step.softness.detach()
learned_threshold = model.threshold.detach()
for i in range(n_sensors):
    print(
        f"sensor {i}: softness {learned_softness[i]:.3f} (noise / 1.7 = {reference[i]:.3f}),"
        f" threshold {learned_threshold[i]:+.3f} (true {threshold[i]:+.3f})"
    )

fig, (ax_loss, ax_soft, ax_thr) = plt.subplots(1, 3, figsize=(14, 3.8))
ax_loss.plot(losses)
ax_loss.set_title("training loss (BCE)")
ax_loss.set_xlabel("step")
for i in range(n_sensors):
    ax_soft.semilogy(
        softness_history[:, i], color=f"C{i}", label=f"sensor {i}, noise {noise[i]:.2f}"
    )
    ax_soft.axhline(reference[i], color=f"C{i}", ls="--", lw=0.8)
    ax_thr.plot(threshold_history[:, i], color=f"C{i}")
    ax_thr.axhline(threshold[i], color=f"C{i}", ls="--", lw=0.8)
ax_soft.set_title("learned softness (dashed: noise / 1.7)")
ax_soft.set_xlabel("step")
ax_soft.legend(fontsize=8)
ax_thr.set_title("learned threshold (dashed: true)")
ax_thr.set_xlabel("step")
fig.tight_layout()

# %%
# The fitted curves
# -----------------
#
# Each sensor's fitted soft step against the fraction of positive labels in bins of :math:`x`.
# The sharp sensor gets a nearly hard step, the noisy one a wide ramp.

bins = torch.linspace(-2, 2, 41)
centres = 0.5 * (bins[1:] + bins[:-1])
grid = torch.linspace(-2, 2, 400).unsqueeze(-1).expand(-1, n_sensors)
with torch.no_grad():
    fitted = model(grid)
fig, axes = plt.subplots(1, n_sensors, figsize=(14, 3.6), sharey=True)
for i, ax in enumerate(axes):
    which = torch.bucketize(x[:, i].contiguous(), bins) - 1
    freq = torch.stack([y[which == b, i].mean() for b in range(len(centres))])
    ax.plot(centres, freq, "o", ms=3, color="0.5", label="observed frequency")
    ax.plot(grid[:, i], fitted[:, i], color=f"C{i}", label="learned soft step")
    ax.set_title(
        f"sensor {i}: noise {noise[i]:.2f}, softness {model.step.softness[i].item():.3f}"
    )
    ax.set_xlabel("x")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %%
# Why learn it?
# -------------
#
# A fixed softness has to be right for every sensor at once. Keeping the learned thresholds and
# fixing one shared softness instead, the loss is worse for every choice: too sharp is
# overconfident on the noisy sensors, too soft wastes the precise one.

with torch.no_grad():
    for fixed in (0.01, 0.05, 0.1, 0.3):
        p = st.heaviside(x - model.threshold, softness=fixed).clamp(1e-6, 1 - 1e-6)
        bce = torch.nn.functional.binary_cross_entropy(p, y)
        print(f"fixed softness {fixed:<5}: BCE {bce.item():.4f}")
    print(f"learned, per sensor  : BCE {losses[-1]:.4f}")

# %%
# When the hard operator is the goal: anneal
# ------------------------------------------
#
# A linear model scores 20 items from 6 features; the task is to pick the 3 items of highest
# (noisy) utility. The model is trained through a learnable :class:`softtorch.nn.SoftTopK` on the
# soft precision at 3 (the mass its soft top-3 puts on the true top 3), but it will be used with
# the hard top-3. Left alone, the learned softness stays near its start value, where the soft
# precision is a poor proxy for the hard one. :class:`~softtorch.schedules.SoftnessScheduler`
# anneals a ceiling on the softness (cosine, from 0.5 to 1% of it over 200 steps; learning still
# decides below it), and :func:`~softtorch.schedules.hardness_gap` evaluates the same model soft
# and with every softtorch layer switched to hard mode.

n_items, n_features, k = 20, 6, 3
w_true = torch.randn(n_features)


def ranking_batch(size):
    features = torch.randn(size, n_items, n_features)
    return features, features @ w_true + 0.3 * torch.randn(size, n_items)


train_features, train_utility = ranking_batch(512)
test_features, test_utility = ranking_batch(512)


class Picker(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.score = torch.nn.Linear(n_features, 1)
        self.topk = st.nn.SoftTopK(k, softness=0.5, learnable=True, return_indices=True)

    def forward(self, features):
        return self.topk(self.score(features).squeeze(-1)).indices  # (batch, k, items)


def precision_at_k(selection, utility):
    """Mass of the (soft or hard) top-k selection on the true top k, over k."""
    best = torch.zeros_like(utility).scatter(-1, utility.topk(k, dim=-1).indices, 1.0)
    return float((selection @ best.unsqueeze(-1)).sum((-2, -1)).mean() / k)


def train(scheduled, steps=300):
    torch.manual_seed(1)
    model = Picker()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = SoftnessScheduler(model, total_steps=200, final_factor=0.01, schedule="cosine")
    history = []
    for step in range(steps):
        rows = torch.randint(0, 512, (64,))
        selection = model(train_features[rows])
        best = torch.zeros_like(train_utility[rows]).scatter(-1, train_utility[rows].topk(k, -1).indices, 1.0)
        loss = -(selection @ best.unsqueeze(-1)).sum((-2, -1)).mean() / k
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduled:
            scheduler.step()
        if step % 10 == 9:
            gap = hardness_gap(model, test_features, metric=lambda s: precision_at_k(s, test_utility))
            history.append((step + 1, model.topk.softness.detach().item(), gap.soft, gap.hard))
    return torch.tensor(history)


runs = {"learnable only": train(False), "learnable + cosine schedule": train(True)}
for name, history in runs.items():
    step, softness, soft, hard = history[-1].tolist()
    print(
        f"{name:28s}: softness {softness:.4f}, soft precision@3 {soft:.3f}, "
        f"hard precision@3 {hard:.3f}, hard within {abs(hard - soft) / hard:.1%} of soft"
    )
_, _, soft, hard = runs["learnable + cosine schedule"][-1].tolist()
assert abs(hard - soft) <= 0.1 * hard  # annealed, the hard metric is within 10% of the soft one

fig, (ax_soft, ax_metric) = plt.subplots(1, 2, figsize=(12, 3.8))
for i, (name, history) in enumerate(runs.items()):
    ax_soft.semilogy(history[:, 0], history[:, 1], color=f"C{i}", label=name)
    ax_metric.plot(history[:, 0], history[:, 2], color=f"C{i}", label=f"{name}: soft")
    ax_metric.plot(history[:, 0], history[:, 3], color=f"C{i}", ls="--", label=f"{name}: hard")
ax_soft.set_title("softness of the SoftTopK layer")
ax_soft.set_xlabel("step")
ax_soft.legend(fontsize=8)
ax_metric.set_title("test precision@3: soft (solid) and hard (dashed)")
ax_metric.set_xlabel("step")
ax_metric.legend(fontsize=7)
fig.tight_layout()

# %%
# Without the schedule the soft precision stays about 10% below the hard one: the model is
# trained on a quantity it will not be evaluated on. With it, the two meet (here within a
# fraction of a percent) and the hard precision is as good as before. Save the scheduler with
# the model (``scheduler.state_dict()``) to resume an annealing run.
plt.show()
