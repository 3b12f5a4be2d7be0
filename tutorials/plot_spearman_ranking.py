"""
A differentiable ranking loss: Spearman correlation
===================================================

Sometimes only the *order* of the predictions matters: a search engine ranks documents, a
screening model ranks candidates. The natural metric is then a rank correlation, such as
Spearman's :math:`\\rho`, the Pearson correlation of the ranks. It is piecewise constant in the
predictions, so it cannot be optimized by gradient descent directly. With
:func:`softtorch.rank` it can: soft ranks are differentiable and tend to the hard ones as the
softness goes to 0.

We compare two ways to train a linear scorer when the targets are a monotone but strongly
non-linear (heavy-tailed) function of a linear signal: the usual mean squared error on the
targets, and a soft Spearman loss.
"""

import matplotlib.pyplot as plt
import torch

import softtorch as st

torch.set_num_threads(1)  # tiny models: a thread pool only adds overhead (the docs build does the same)

torch.manual_seed(0)
# sphinx_gallery_thumbnail_number = 2

# %%
# The data
# --------
#
# Ten features; the targets are :math:`y = \exp(2 s)` of a noisy linear signal :math:`s`. The
# exponential keeps the order of :math:`s` but puts a few huge values in the tail, which
# dominate a squared error.

n_features = 10
direction = torch.randn(n_features)
direction = direction / direction.norm()


def sample(n):
    features = torch.randn(n, n_features)
    signal = features @ direction + 0.3 * torch.randn(n)
    return features, torch.exp(2.0 * signal)


x_train, y_train = sample(2000)
x_test, y_test = sample(5000)


def hard_rank(t):
    return torch.argsort(torch.argsort(t)).to(t.dtype) + 1


def pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm())


def spearman(a, b):
    """Spearman's rho with hard ranks: the metric we report."""
    return pearson(hard_rank(a), hard_rank(b)).item()


best_possible = spearman(x_test @ direction, y_test)  # the true direction, noise-limited
print(f"Spearman of the true signal direction on the test set: {best_possible:.4f}")

# %%
# The soft Spearman loss
# ----------------------
#
# :func:`softtorch.rank` returns each element's expected rank; ``descending=False`` gives rank 1
# to the smallest, like the hard ranks above. The targets' ranks need no gradient, so they are
# computed hard. The loss is :math:`1 - \rho_{soft}`.


def soft_spearman_loss(prediction, target, softness=0.1):
    soft = st.rank(prediction, descending=False, softness=softness)
    return 1.0 - pearson(soft, hard_rank(target))


# %%
# A first look: for a random prediction, the soft and the hard correlation agree closely, and
# the soft one has a gradient.

prediction = torch.randn(8, requires_grad=True)
target = torch.randn(8)
loss = soft_spearman_loss(prediction, target)
loss.backward()
print(f"hard rho {spearman(prediction.detach(), target):+.4f}, soft rho {1 - loss.item():+.4f}")
print("gradient:", prediction.grad)

# %%
# Training
# --------
#
# The same linear model, the same minibatches of 256 and the same optimizer for both losses; we
# track the test Spearman correlation (with hard ranks) every 10 steps.


def train(loss_fn, steps=300):
    torch.manual_seed(1)
    model = torch.nn.Linear(n_features, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    curve = []
    for step in range(steps):
        batch = torch.randint(0, len(x_train), (256,))
        loss = loss_fn(model(x_train[batch]).squeeze(-1), y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            with torch.no_grad():
                curve.append(spearman(model(x_test).squeeze(-1), y_test))
    return model, curve


losses = {
    "mean squared error": lambda p, t: ((p - t) ** 2).mean(),
    "soft Spearman (softness 0.1)": soft_spearman_loss,
}
curves, models = {}, {}
for name, loss_fn in losses.items():
    models[name], curves[name] = train(loss_fn)
    print(f"{name:>28}: test Spearman {curves[name][-1]:.4f}")

fig, ax = plt.subplots(figsize=(7, 3.8))
for name, curve in curves.items():
    ax.plot(range(0, 10 * len(curve), 10), curve, label=name)
ax.axhline(best_possible, color="k", ls="--", lw=0.8, label="true direction")
ax.set_xlabel("step")
ax.set_ylabel("test Spearman correlation")
ax.set_ylim(0.5, 1.0)
ax.legend()
fig.tight_layout()

# %%
# The squared error spends the model's capacity on the few enormous targets; the rank loss
# ignores the scale of the targets altogether and recovers the signal direction. The learned
# directions tell the same story:

for name, model in models.items():
    w = model.weight.detach().squeeze(0)
    cosine = (w @ direction / w.norm()).item()
    print(f"{name:>28}: cosine to the true direction {cosine:.4f}")

# %%
# Ranks of the predictions against ranks of the targets on the test set (a perfect ranking is
# the diagonal):

fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
for ax, (name, model) in zip(axes, models.items()):
    with torch.no_grad():
        predicted = model(x_test).squeeze(-1)
    ax.plot(hard_rank(y_test), hard_rank(predicted), ".", ms=1, alpha=0.4)
    ax.set_title(f"{name}\nSpearman {spearman(predicted, y_test):.4f}")
    ax.set_xlabel("rank of the target")
axes[0].set_ylabel("rank of the prediction")
fig.tight_layout()

# %%
# The softness of the loss
# ------------------------
#
# The softness trades the bias of the soft ranks (they are pulled towards the middle) against the
# reach of their gradient (how many neighbours each element is compared with). On this problem it
# hardly matters: over three decades, the loss leads to the same direction. A batch of 256 items
# has neighbours about 1/256 apart in the standardized scores, so even the smallest value here
# leaves the ranks soft enough to pass gradients.

for softness in (0.003, 0.03, 0.3, 3.0):
    _, curve = train(lambda p, t, s=softness: soft_spearman_loss(p, t, softness=s), steps=150)
    print(f"softness {softness:<6}: test Spearman after 150 steps {curve[-1]:.4f}")
plt.show()
