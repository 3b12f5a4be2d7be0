"""
Layers in ``nn.Sequential``: learning to order items from orderings alone
=========================================================================

softtorch's layers are ordinary :class:`torch.nn.Module` objects whose ``forward`` takes one
tensor and returns one, so they drop into :class:`torch.nn.Sequential` like any activation. This
tutorial builds a model that ends in a :class:`softtorch.nn.SoftArgsort` and trains it with
nothing but the *order* of items: there is no target score, only which item comes first, second,
and so on. The hard :func:`torch.argsort` would give the scoring network no gradient at all; the
soft permutation does.

Each example is a set of 8 items, each item a vector of 4 features. A hidden function of the
features decides the true order. The network scores every item, the soft argsort turns the 8
scores into an :math:`8 \\times 8` soft permutation, and the loss is the negative log-likelihood
of the true permutation under it.
"""

import matplotlib.pyplot as plt
import torch

import softtorch as st

torch.set_num_threads(1)  # tiny models: a thread pool only adds overhead (the docs build does the same)

torch.manual_seed(0)
# sphinx_gallery_thumbnail_number = 2
n_items, n_features = 8, 4


def hidden_score(items):
    """What the true order is based on; the model never sees it, only the order it induces."""
    return (
        torch.sin(2 * items[..., 0])
        + 0.5 * items[..., 1] ** 2
        + 0.8 * items[..., 2]
        - 0.3 * items[..., 3]
    )


def sample(batch):
    items = torch.randn(batch, n_items, n_features)
    order = torch.argsort(hidden_score(items), dim=-1, descending=True)  # slot -> item
    return items, order


# %%
# The model
# ---------
#
# A small MLP applied to every item (``nn.Linear`` acts on the last axis), a ``Flatten`` that
# drops the trailing axis of size 1, and the soft argsort over the items. With
# ``return_log_probs=True`` the layer returns log-probabilities, computed stably, which is what
# ``nll_loss`` wants. The permutation's rows are the sorted slots (largest score first), its last
# axis the items.

scorer = torch.nn.Sequential(
    torch.nn.Linear(n_features, 32),
    torch.nn.ReLU(),
    torch.nn.Linear(32, 32),
    torch.nn.ReLU(),
    torch.nn.Linear(32, 1),
    torch.nn.Flatten(-2),  # (batch, items, 1) -> (batch, items)
)
model = torch.nn.Sequential(
    scorer,
    st.nn.SoftArgsort(
        descending=True, softness=0.1, return_log_probs=True
    ),  # (batch, slots, items)
)
print(model)

# %%
# Training
# --------
#
# Each step draws 64 fresh sets. We track the loss and, on a fixed test set, how often the hard
# order of the learned scores gets every item right, and how many items land in the right slot.

test_items, test_order = sample(2000)


def accuracy():
    with torch.no_grad():
        predicted = torch.argsort(scorer(test_items), dim=-1, descending=True)
    correct = predicted == test_order
    return correct.all(-1).float().mean().item(), correct.float().mean().item()


optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
history = {"step": [], "loss": [], "exact": [], "items": []}
for step in range(1501):
    items, order = sample(64)
    log_p = model(items)  # (64, 8, 8)
    loss = torch.nn.functional.nll_loss(log_p.reshape(-1, n_items), order.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        exact, per_item = accuracy()
        history["step"].append(step)
        history["loss"].append(loss.item())
        history["exact"].append(exact)
        history["items"].append(per_item)

exact, per_item = accuracy()
print(f"test sets ordered exactly right: {exact:.1%} (chance: 1/8! = {1 / 40320:.4%})")
print(f"items in their right slot      : {per_item:.1%} (chance: 12.5%)")

fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.6))
ax_loss.plot(history["step"], history["loss"])
ax_loss.set_title("training loss (NLL of the true permutation)")
ax_loss.set_xlabel("step")
ax_acc.plot(history["step"], history["exact"], label="whole set exactly right")
ax_acc.plot(history["step"], history["items"], label="items in the right slot")
ax_acc.set_ylim(0, 1)
ax_acc.set_title("test accuracy of the hard order")
ax_acc.set_xlabel("step")
ax_acc.legend()
fig.tight_layout()

# %%
# What it learned
# ---------------
#
# The model was never shown a score, yet its scores are a monotone function of the hidden one
# (only the order is identifiable, so the scale and shape of the curve are arbitrary). On the
# right, the soft permutation of one test set next to the true one. It stays soft: the layer
# standardizes its input, so the network cannot sharpen the permutation by inflating its scores,
# and the softness sets a floor under the loss (which is why the loss flattens early while the
# accuracy keeps improving).

with torch.no_grad():
    learned = scorer(test_items[:300]).reshape(-1)
    truth = hidden_score(test_items[:300]).reshape(-1)
    soft_p = model(test_items[:1])[0].exp()
true_p = torch.nn.functional.one_hot(test_order[0], n_items).float()

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
axes[0].plot(truth, learned, ".", ms=2)
axes[0].set_xlabel("hidden score")
axes[0].set_ylabel("learned score")
axes[0].set_title("scores of 2400 test items")
for ax, P, title in [
    (axes[1], soft_p, "soft permutation (model)"),
    (axes[2], true_p, "true permutation"),
]:
    ax.imshow(P, cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("item")
    ax.set_ylabel("slot")
    ax.set_title(title)
fig.tight_layout()

# %%
# Reusing the scorer with other layers
# ------------------------------------
#
# The trained scorer composes with any other layer. Followed by a soft top-k, it picks the three
# best items of a set, softly, with a soft index per pick (``return_indices=True`` makes the
# layer return the ``(values, indices)`` pair instead of the values alone):

pick_top3 = torch.nn.Sequential(scorer, st.nn.SoftTopK(k=3, softness=0.05, return_indices=True))
with torch.no_grad():
    top3 = pick_top3(test_items[:1])
print("soft picks (rows: 1st, 2nd, 3rd; columns: items):")
print(top3.indices[0].round(decimals=2))
print("hard argmax of each pick:", top3.indices[0].argmax(-1).tolist())
print("true three best items   :", test_order[0, :3].tolist())
plt.show()
