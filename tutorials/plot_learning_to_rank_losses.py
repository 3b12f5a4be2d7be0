"""
Learning to rank: NeuralNDCG against a soft Spearman loss
=========================================================

A search engine scores the documents of a query and shows them in that order; users look at the
top of the list. NDCG measures that: graded relevance turned into gains :math:`2^{y} - 1`,
discounted by :math:`1/\\log_2(i + 1)` at position :math:`i`, normalized by the best possible
ordering. Like every ranking metric it is piecewise constant in the scores.

Two soft losses train a scorer on it here:

* :class:`softtorch.nn.NDCGLoss`, one minus NeuralNDCG (Pobrotyn & Bialobrzeski, 2021): the soft
  permutation of the scores applied to the gains, with the same discounts;
* :class:`softtorch.nn.SpearmanLoss`, one minus the Pearson correlation of the soft ranks of the
  scores and the ranks of the labels: every position counts the same.

Both take the lists as rows of a ``(queries, documents)`` tensor and reduce over queries like any
torch loss.
"""

import matplotlib.pyplot as plt
import torch
from torch import nn

import softtorch as st

torch.manual_seed(0)
# sphinx_gallery_thumbnail_number = 1

# %%
# The data
# --------
#
# 300 training queries and 300 test queries of 24 documents with 10 features each. The hidden
# utility of a document is a non-linear function of its features; its relevance label is a grade
# from 0 to 4, and only the best few documents of a query get the high grades, as in real
# search logs.

n_docs, n_features = 24, 10
w1, w2 = torch.randn(n_features), torch.randn(n_features)


def sample(n_queries):
    feats = torch.randn(n_queries, n_docs, n_features)
    utility = feats @ w1 + 0.5 * (feats @ w2).abs() + 0.5 * torch.randn(n_queries, n_docs)
    # grades by the utility's quantile within the query: 0 for most documents, 4 for the best
    quantile = st.rank(utility, dim=-1, descending=False, mode="hard") / n_docs
    grades = torch.bucketize(quantile, torch.tensor([0.6, 0.8, 0.9, 0.96]))
    return feats, grades.float()


x_train, y_train = sample(300)
x_test, y_test = sample(300)
print("relevance grades of the first test query:", y_test[0].int().tolist())


def test_metrics(model):
    """Exact NDCG@5, NDCG and Spearman on the test queries (hard mode of the same functions)."""
    with torch.no_grad():
        scores = model(x_test)
    return {
        "NDCG@5": st.ndcg(scores, y_test, 5, mode="hard").mean().item(),
        "NDCG": st.ndcg(scores, y_test, mode="hard").mean().item(),
        "Spearman": st.spearman_corrcoef(scores, y_test, mode="hard").mean().item(),
    }


# %%
# The scorer and the losses
# -------------------------
#
# A small MLP scores each document on its own (it maps ``(..., n_features)`` to ``(...)``). Each
# loss gets its own copy of the same initial network.
#
# NeuralNDCG first makes the soft permutation doubly stochastic with Sinkhorn scaling
# (``sinkhorn_iter=50`` by default): NeuralSort's rows are distributions but its columns are not,
# so without the scaling a relevant document can be counted in several top positions at once.
# The third loss switches the scaling off, at a softness where that matters, to show why it is
# there.


def make_model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(n_features, 32), nn.ReLU(), nn.Linear(32, 1), nn.Flatten(-2))


losses = {
    "NDCGLoss": st.nn.NDCGLoss(softness=0.1),
    "NDCGLoss, no Sinkhorn": st.nn.NDCGLoss(softness=0.3, sinkhorn_iter=0),
    "SpearmanLoss": st.nn.SpearmanLoss(softness=0.1),
}
for loss_fn in losses.values():
    print(loss_fn)

# %%
# Training
# --------
#
# Adam on mini-batches of 50 queries, 10 epochs; test metrics after every epoch.

history = {}
for name, loss_fn in losses.items():
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    record = {"loss": [], "test": [test_metrics(model)]}
    for epoch in range(10):
        order = torch.randperm(len(x_train))
        for batch in order.split(50):
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            record["loss"].append(loss.item())
        record["test"].append(test_metrics(model))
    history[name] = record
    final = record["test"][-1]
    print(f"{name:>14}: loss {record['loss'][0]:.3f} -> {record['loss'][-1]:.3f}; test "
          + ", ".join(f"{k} {v:.3f}" for k, v in final.items()))  # fmt: skip

# %%
# Every loss decreases and improves every test metric from the random start. NeuralNDCG puts its
# effort at the top of the list, where the discounts are large and the relevant documents are,
# and ends ahead on NDCG@5; the Spearman loss weighs every position alike and ends ahead on the
# correlation of the whole list, where the order of the many irrelevant documents counts as much
# as that of the relevant ones. Without the Sinkhorn scaling the "NDCG" loss falls below 0 (its
# soft NDCG exceeds 1 by counting documents twice) and the model learns to exploit that instead
# of ranking: it ends behind on every exact metric.

fig, (ax_loss, ax_ndcg, ax_rho) = plt.subplots(1, 3, figsize=(14, 3.8))
for (name, record), color in zip(history.items(), ("C0", "C1", "C2")):
    loss = torch.tensor(record["loss"])
    smooth = torch.nn.functional.avg_pool1d(loss[None, None], 6, 1).flatten()
    ax_loss.plot(smooth, label=name, color=color)
    ax_ndcg.plot([m["NDCG@5"] for m in record["test"]], label=name, color=color)
    ax_rho.plot([m["Spearman"] for m in record["test"]], label=name, color=color)
ax_loss.set(title="training loss (running mean)", xlabel="step")
ax_ndcg.set(title="test NDCG@5 (exact)", xlabel="epoch")
ax_rho.set(title="test Spearman (exact)", xlabel="epoch")
for ax in (ax_loss, ax_ndcg, ax_rho):
    ax.legend(fontsize=8)
fig.tight_layout()

# %%
# Hard mode is the exact metric
# -----------------------------
#
# ``mode="hard"`` evaluates the same functions exactly (that is what ``test_metrics`` does), and
# the soft values approach it as the softness goes to 0:

with torch.no_grad():
    scores = make_model()(x_test[:4])
print("exact NDCG@5:", st.ndcg(scores, y_test[:4], 5, mode="hard"))
for softness in (1.0, 0.1, 0.01):
    print(f"soft NDCG@5 at softness {softness:>4}:", st.ndcg(scores, y_test[:4], 5, softness=softness))

plt.show()
