"""The losses and rank metrics: spearman_corrcoef, kendall_tau, topk_cross_entropy, ndcg and their layers.

Hand-checked values, hard mode against the exact metrics written as plain loops here, ties /
constant rows / n = 1, gradcheck, torch's ``reduction`` semantics, training through an
``nn.Sequential`` model with a learnable softness, and ``torch.compile``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import softtorch as st
import softtorch.nn as snn

F64 = torch.float64
EPS = 1e-7  # the top-k cross-entropy's log floor


# -- the exact metrics, plainly ------------------------------------------------------------------


def fractional_ranks(values):
    """1-based ascending ranks, ties sharing the mean of their positions."""
    return [sum(1.0 for w in values if w < v) + (sum(1.0 for w in values if w == v) + 1.0) / 2.0 for v in values]


def pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return num / den if den > 0 else 0.0


def spearman_exact(x, y):
    return pearson(fractional_ranks(x), fractional_ranks(y))


def sign(v):
    return (v > 0) - (v < 0)


def kendall_tau_b(x, y):
    n = len(x)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    num = sum(sign(x[i] - x[j]) * sign(y[i] - y[j]) for i, j in pairs)
    untied_x = sum(1 for i, j in pairs if x[i] != x[j])
    untied_y = sum(1 for i, j in pairs if y[i] != y[j])
    return num / math.sqrt(untied_x * untied_y) if untied_x and untied_y else 0.0


def ndcg_exact(scores, relevance, k=None):
    n = len(scores)
    k = n if k is None else min(k, n)
    order = sorted(range(n), key=lambda i: -scores[i])
    dcg = sum((2.0 ** relevance[order[i]] - 1.0) / math.log2(i + 2) for i in range(k))
    ideal = sorted((2.0 ** r - 1.0 for r in relevance), reverse=True)
    idcg = sum(ideal[i] / math.log2(i + 2) for i in range(k))
    return dcg / idcg if idcg > 0 else 0.0


def topk_ce_exact(scores, label, p_k):
    """``-log((1 - 2 eps) sum_k p_k [label in top k] + eps)``."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    position = order.index(label) + 1
    hit = sum(p for k, p in enumerate(p_k, start=1) if position <= k)
    return -math.log((1 - 2 * EPS) * hit + EPS)


def rows(t):
    return t.reshape(-1, t.shape[-1]).tolist()


# -- hand-checked values -------------------------------------------------------------------------


def test_spearman_hand_checked():
    x = torch.tensor([[0.1, 0.9, 0.4, 0.3], [1.0, 1.0, 2.0, 3.0]], dtype=F64)
    y = torch.tensor([[1.0, 4.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]], dtype=F64)
    # ranks [1, 4, 3, 2] vs [1, 4, 2, 3]: 1 - 6 * 2 / (4 * 15) = 0.8; with ties in x:
    # ranks [1.5, 1.5, 3, 4] vs [1, 2, 3, 4]: 4.5 / sqrt(4.5 * 5)
    expected = torch.tensor([0.8, 4.5 / math.sqrt(22.5)], dtype=F64)
    torch.testing.assert_close(st.spearman_corrcoef(x, y, mode="hard"), expected)
    # the soft ranks of two elements are ordered like the inputs: the correlation is +-1
    two = st.spearman_corrcoef(torch.tensor([0.3, 0.1]), torch.tensor([1.0, 2.0]), softness=5.0)
    torch.testing.assert_close(two, torch.tensor(-1.0))


def test_spearman_soft_is_pearson_of_the_soft_ranks():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 7, generator=g, dtype=F64), torch.randn(3, 7, generator=g, dtype=F64)
    for method in ("fast_soft_sort", "neuralsort"):
        soft = st.rank(x, dim=-1, descending=False, softness=0.5, method=method)
        expected = [pearson(r, fractional_ranks(t)) for r, t in zip(soft.tolist(), y.tolist())]
        got = st.spearman_corrcoef(x, y, softness=0.5, method=method)
        torch.testing.assert_close(got, torch.tensor(expected, dtype=F64))


def test_kendall_hand_checked():
    x = torch.tensor([[0.1, 0.9, 0.4, 0.3], [1.0, 1.0, 2.0, 3.0]], dtype=F64)
    y = torch.tensor([[1.0, 4.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]], dtype=F64)
    # 5 concordant pairs and 1 discordant of 6; with one tie in x: 5 / sqrt(5 * 6)
    expected = torch.tensor([4.0 / 6.0, 5.0 / math.sqrt(30.0)], dtype=F64)
    torch.testing.assert_close(st.kendall_tau(x, y, mode="hard"), expected)
    # two elements, not standardized, softness 1: sign_soft(-1) = 2 sigmoid(-1) - 1 = -tanh(1/2)
    soft = st.kendall_tau(torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), softness=1.0,
                          standardize=False)  # fmt: skip
    torch.testing.assert_close(soft, torch.tensor(math.tanh(0.5), dtype=F64))


def test_topk_cross_entropy_hand_checked():
    scores = torch.tensor([[1.0, 0.0]], dtype=F64)
    # NeuralSort, descending row 1 of two scores [1, 0] at softness 1: softmax of
    # x_j - |x_j - x_other|_soft = [1 - t, -t] (t = tanh(1/2)), i.e. [sigmoid(1), sigmoid(-1)]
    p = 1.0 / (1.0 + math.exp(-1.0))
    for label, mass in ((0, p), (1, 1.0 - p)):
        got = st.topk_cross_entropy(scores, torch.tensor([label]), softness=1.0, standardize=False)
        torch.testing.assert_close(got, torch.tensor(-math.log((1 - 2 * EPS) * mass + EPS), dtype=F64))
    # top-2 of two classes always holds the label; p_k = (1/2, 1/2) halves the top-1 miss
    full = st.topk_cross_entropy(scores, torch.tensor([1]), k=2, softness=1.0, standardize=False)
    torch.testing.assert_close(full, torch.tensor(-math.log(1 - EPS), dtype=F64))
    mixed = st.topk_cross_entropy(scores, torch.tensor([1]), p_k=[0.5, 0.5], softness=1.0, standardize=False)
    torch.testing.assert_close(mixed, torch.tensor(-math.log((1 - 2 * EPS) * (0.5 * (1 - p) + 0.5) + EPS), dtype=F64))


def test_ndcg_hand_checked():
    scores = torch.tensor([0.2, 0.9, 0.4, 0.1], dtype=F64)
    relevance = torch.tensor([2.0, 0.0, 1.0, 0.0], dtype=F64)
    # order: rel 0, 1, 2, 0 -> gains 0, 1, 3, 0; ideal 3, 1
    dcg = 1.0 / math.log2(3) + 3.0 / 2.0
    idcg = 3.0 + 1.0 / math.log2(3)
    torch.testing.assert_close(st.ndcg(scores, relevance, mode="hard"), torch.tensor(dcg / idcg, dtype=F64))
    at2 = (1.0 / math.log2(3)) / idcg
    torch.testing.assert_close(st.ndcg(scores, relevance, k=2, mode="hard"), torch.tensor(at2, dtype=F64))
    # soft, two items [1, 0], relevance [0, 1], NeuralSort at softness 1 (see the top-k test):
    # P = [[s, 1 - s], [1 - s, s]] with s = sigmoid(1); DCG = (1 - s) + s / log2(3); IDCG = 1
    s = 1.0 / (1.0 + math.exp(-1.0))
    soft = st.ndcg(torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), softness=1.0,
                   standardize=False)  # fmt: skip
    torch.testing.assert_close(soft, torch.tensor((1 - s) + s / math.log2(3), dtype=F64))
    assert st.ndcg(scores, torch.zeros(4, dtype=F64)).item() == 0.0  # no relevant item: 0


@pytest.mark.parametrize("method", ["neuralsort", "softsort"])
def test_soft_ndcg_stays_in_0_1(method):
    """Sinkhorn scaling makes P doubly stochastic: no document contributes more than its gain
    (without it NeuralSort's columns can sum above 1 and the soft NDCG exceed 1)."""
    relevance = _lists(21, (50, 12), ties=True)
    scores = relevance + 0.5 * _lists(20, (50, 12))  # well ranked lists, where the defect shows
    for softness in (0.03, 0.3, 3.0):
        scaled = st.ndcg(scores, relevance, softness=softness, method=method)
        assert 0 <= scaled.min() and scaled.max() <= 1 + 1e-6, (softness, scaled.max())
    raw = st.ndcg(scores, relevance, softness=0.3, method="neuralsort", sinkhorn_iter=0)
    assert raw.max() > 1  # the defect the scaling removes
    p = st.argsort(scores, descending=True, softness=0.3)
    expected = ((p @ (2**relevance - 1)[..., None]).squeeze(-1)[..., :4] / torch.log2(torch.arange(2.0, 6.0))).sum(-1)
    best = relevance.sort(-1, descending=True).values
    ideal = ((2**best - 1)[..., :4] / torch.log2(torch.arange(2.0, 6.0))).sum(-1)
    torch.testing.assert_close(st.ndcg(scores, relevance, 4, softness=0.3, sinkhorn_iter=0), expected / ideal)


# -- hard mode is the exact metric -----------------------------------------------------------------


def _lists(seed, shape=(6, 7), ties=False):
    g = torch.Generator().manual_seed(seed)
    if ties:
        return torch.randint(0, 4, shape, generator=g).to(F64)
    return torch.randn(shape, generator=g, dtype=F64)


@pytest.mark.parametrize("ties", [False, True])
def test_hard_correlations_are_exact(ties):
    x, y = _lists(1, ties=ties), _lists(2, ties=ties)
    rho = st.spearman_corrcoef(x, y, mode="hard")
    tau = st.kendall_tau(x, y, mode="hard")
    torch.testing.assert_close(rho, torch.tensor([spearman_exact(a, b) for a, b in zip(rows(x), rows(y))], dtype=F64))
    torch.testing.assert_close(tau, torch.tensor([kendall_tau_b(a, b) for a, b in zip(rows(x), rows(y))], dtype=F64))


@pytest.mark.parametrize("k", [None, 1, 3, 20])
def test_hard_ndcg_is_exact(k):
    scores, relevance = _lists(3), _lists(4, ties=True)
    expected = [ndcg_exact(s, r, k) for s, r in zip(rows(scores), rows(relevance))]
    torch.testing.assert_close(st.ndcg(scores, relevance, k, mode="hard"), torch.tensor(expected, dtype=F64))


@pytest.mark.parametrize("k, p_k", [(1, None), (3, None), (1, [0.5, 0.0, 0.25, 0.25])])
def test_hard_topk_cross_entropy_is_exact(k, p_k):
    scores = _lists(5, (8, 6))
    labels = torch.randint(0, 6, (8,), generator=torch.Generator().manual_seed(6))
    weights = p_k if p_k is not None else [0.0] * (k - 1) + [1.0]
    expected = [topk_ce_exact(s, int(c), weights) for s, c in zip(scores.tolist(), labels)]
    got = st.topk_cross_entropy(scores, labels, k, p_k=p_k, mode="hard", reduction="none")
    torch.testing.assert_close(got, torch.tensor(expected, dtype=F64))
    assert 0.0 < min(expected) and max(expected) > 10.0  # both hits and misses are in the batch


def test_soft_tends_to_hard():
    x, y = _lists(7), _lists(8)
    labels = torch.arange(6) % 7
    torch.testing.assert_close(st.spearman_corrcoef(x, y, softness=1e-3), st.spearman_corrcoef(x, y, mode="hard"))
    torch.testing.assert_close(st.kendall_tau(x, y, softness=1e-4), st.kendall_tau(x, y, mode="hard"))
    torch.testing.assert_close(st.ndcg(x, y.exp(), softness=1e-4), st.ndcg(x, y.exp(), mode="hard"))
    soft = st.topk_cross_entropy(x, labels, 2, softness=1e-4, reduction="none")
    torch.testing.assert_close(soft, st.topk_cross_entropy(x, labels, 2, mode="hard", reduction="none"))


# -- layouts ------------------------------------------------------------------------------------------


def test_dim_and_batch_shapes():
    x, y = _lists(9, (2, 5, 3)), _lists(10, (2, 5, 3))
    for fn in (st.spearman_corrcoef, st.kendall_tau, st.ndcg):
        along1 = fn(x, y, dim=1) if fn is not st.ndcg else fn(x, y, None, 1)
        last = fn(x.transpose(1, 2), y.transpose(1, 2))
        assert along1.shape == (2, 3)
        torch.testing.assert_close(along1, last)
    # top-k cross-entropy: the class dim is 1, as for torch.nn.functional.cross_entropy
    labels = torch.randint(0, 5, (2, 3), generator=torch.Generator().manual_seed(0))
    spatial = st.topk_cross_entropy(x, labels, 2, reduction="none")
    flat = st.topk_cross_entropy(x.transpose(1, 2).reshape(6, 5), labels.reshape(6), 2, reduction="none")
    torch.testing.assert_close(spatial, flat.reshape(2, 3))
    unbatched = st.topk_cross_entropy(x[0, :, 0], labels[0, 0], 2)
    torch.testing.assert_close(unbatched, spatial[0, 0])


def test_tensor_softness_per_row():
    x, y = _lists(11, (3, 6)), _lists(12, (3, 6))
    s = torch.tensor([[0.05], [0.3], [1.0]], dtype=F64)
    for fn in (st.spearman_corrcoef, st.kendall_tau, st.ndcg):
        together = fn(x, y, softness=s)
        apart = torch.stack([fn(x[i], y[i], softness=float(s[i])) for i in range(3)])
        torch.testing.assert_close(together, apart)


def test_half_precision_computes_in_float32():
    x, y = _lists(13, (3, 6)).half(), _lists(14, (3, 6)).half()
    for fn in (st.spearman_corrcoef, st.kendall_tau, st.ndcg):
        out = fn(x, y)
        assert out.dtype == torch.float16
        torch.testing.assert_close(out.float(), fn(x.float(), y.float()), rtol=1e-3, atol=1e-3)


# -- edge inputs and gradients ------------------------------------------------------------------------

EDGES = {
    "ties": [[0.5, -1.0, 0.5, 2.0, -1.0, 0.5], [3.0, 3.0, -2.0, -2.0, 0.0, 0.0]],
    "constant": [[0.7] * 6, [-3.0] * 6],
    "n1": [[0.3], [-1.2]],
}


def _calls():
    """(id, fn(input, target, mode, method)) for every metric and loss layer."""

    def labels(x):
        return torch.arange(x.shape[0], device=x.device) % x.shape[-1]

    return [
        ("spearman", lambda x, y, **kw: st.spearman_corrcoef(x, y, **kw)),
        ("kendall", lambda x, y, method, **kw: st.kendall_tau(x, y, **kw)),
        ("ndcg", lambda x, y, **kw: st.ndcg(x, y.abs(), **kw)),
        ("ndcg_k2", lambda x, y, **kw: st.ndcg(x, y.abs(), 2, **kw)),
        ("topk_ce", lambda x, y, **kw: st.topk_cross_entropy(x, labels(x), reduction="none", **kw)),
    ]


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize("mode, method", [("hard", "neuralsort"), ("smooth", "neuralsort"), ("c1", "softsort"),
                                          ("smooth", "sorting_network"), ("c0", "ot")])  # fmt: skip
@pytest.mark.parametrize("name, fn", _calls(), ids=[c[0] for c in _calls()])
def test_edges_give_finite_values_and_gradients(name, fn, edge, mode, method, device):
    x = torch.tensor(EDGES[edge], dtype=F64, device=device, requires_grad=True)
    y = x.detach().flip(-1).clone().requires_grad_()
    out = fn(x, y, mode=mode, method=method)
    assert torch.isfinite(out).all(), out
    gx, gy = torch.autograd.grad(out.sum(), (x, y), allow_unused=True)
    assert torch.isfinite(gx).all(), gx
    assert gy is None or torch.isfinite(gy).all()
    if edge in ("constant", "n1") and name in ("spearman", "kendall"):
        assert torch.equal(out, torch.zeros_like(out))  # a constant list has no correlation
    if edge == "n1" and name.startswith("ndcg"):
        assert torch.equal(out, torch.ones_like(out))  # one relevant item, ranked first


def test_spearman_with_fast_soft_sort_on_edges():
    for rows_ in EDGES.values():
        x = torch.tensor(rows_, dtype=F64, requires_grad=True)
        out = st.spearman_corrcoef(x, x.detach().flip(-1))
        (g,) = torch.autograd.grad(out.sum(), x)
        assert torch.isfinite(out).all() and torch.isfinite(g).all()


GRADCHECK = [
    ("spearman-fss", lambda x, y: st.spearman_corrcoef(x, y, softness=0.5)),
    ("spearman-ns", lambda x, y: st.spearman_corrcoef(x, y, softness=0.5, method="neuralsort", mode="c2")),
    ("kendall", lambda x, y: st.kendall_tau(x, y, softness=0.3)),
    ("kendall-c1", lambda x, y: st.kendall_tau(x, y, softness=0.3, mode="c1", standardize=False)),
    ("ndcg", lambda x, y: st.ndcg(x, y.abs(), softness=0.5)),
    ("ndcg-k2-sn", lambda x, y: st.ndcg(x, y.abs(), 2, softness=0.5, method="sorting_network")),
    ("topk_ce", lambda x, y: st.topk_cross_entropy(x, torch.tensor([0, 3]), 2, softness=0.5, reduction="none")),
    ("topk_ce-p_k", lambda x, y: st.topk_cross_entropy(x, torch.tensor([1, 2]), p_k=[0.6, 0.4], softness=0.5)),
]


@pytest.mark.parametrize("name, fn", GRADCHECK, ids=[c[0] for c in GRADCHECK])
def test_gradcheck(name, fn):
    x, y = _lists(15, (2, 5)).requires_grad_(), _lists(16, (2, 5))
    assert torch.autograd.gradcheck(lambda t: fn(t, y), (x,))


def test_gradcheck_through_the_softness():
    x, y = _lists(17, (2, 5)), _lists(18, (2, 5))
    s = torch.tensor([[0.4], [0.7]], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: st.kendall_tau(x, y, softness=t), (s,))
    assert torch.autograd.gradcheck(lambda t: st.ndcg(x, y.abs(), softness=t), (s,))


# -- the layers: reduction, repr, config checks, training, compile ------------------------------------


def _layer_inputs(name):
    g = torch.Generator().manual_seed(19)
    x = torch.randn(4, 6, generator=g)
    if name == "TopKCrossEntropyLoss":
        return x, torch.tensor([0, 5, 2, 2])
    if name == "NDCGLoss":
        return x, torch.randint(0, 3, (4, 6), generator=g).float()
    return x, torch.randn(4, 6, generator=g)


LOSSES = {
    "SpearmanLoss": lambda x, y, **kw: 1 - st.spearman_corrcoef(x, y, **kw),
    "KendallTauLoss": lambda x, y, **kw: 1 - st.kendall_tau(x, y, **kw),
    "TopKCrossEntropyLoss": lambda x, y, **kw: st.topk_cross_entropy(x, y, 2, reduction="none", **kw),
    "NDCGLoss": lambda x, y, **kw: 1 - st.ndcg(x, y, **kw),
}
LAYER_ARGS = {"TopKCrossEntropyLoss": {"k": 2}}


@pytest.mark.parametrize("name", list(LOSSES))
def test_reduction_like_torch(name, device):
    x, y = (t.to(device) for t in _layer_inputs(name))
    cls = getattr(snn, name)
    per_item = cls(reduction="none", softness=0.3, **LAYER_ARGS.get(name, {}))(x, y)
    assert per_item.shape == (4,)
    torch.testing.assert_close(per_item, LOSSES[name](x, y, softness=0.3))
    mean = cls(softness=0.3, **LAYER_ARGS.get(name, {}))(x, y)
    total = cls(softness=0.3, reduction="sum", **LAYER_ARGS.get(name, {}))(x, y)
    assert mean.shape == () and total.shape == ()
    torch.testing.assert_close(mean, per_item.mean())
    torch.testing.assert_close(total, per_item.sum())


def test_layer_config_and_repr():
    layer = snn.NDCGLoss(k=3, mode="c1", reduction="sum")
    assert "k=3" in repr(layer) and "reduction='sum'" in repr(layer) and "mode='c1'" in repr(layer)
    assert snn.NDCGLoss().config["k"] is None
    assert "p_k=(0.5, 0.5)" in repr(snn.TopKCrossEntropyLoss(p_k=(0.5, 0.5)))
    assert repr(snn.SpearmanLoss()) == "SpearmanLoss()"  # defaults are not shown
    assert "method='neuralsort'" in repr(snn.SpearmanLoss(method="neuralsort"))
    with pytest.raises(ValueError, match=r"reduction must be one of 'mean', 'sum', 'none', got 'avg'"):
        snn.SpearmanLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"method='fast_soft_sort' computes sorted values only"):
        snn.TopKCrossEntropyLoss(method="fast_soft_sort")
    with pytest.raises(ValueError, match=r"method='fast_soft_sort' computes sorted values only"):
        snn.NDCGLoss(method="fast_soft_sort")
    with pytest.raises(ValueError, match=r"p_k must be a nonempty distribution"):
        snn.TopKCrossEntropyLoss(p_k=[0.5, 0.2])


def test_functions_refuse_bad_combinations():
    x = torch.randn(3, 5)
    with pytest.raises(ValueError, match=r"k must be left at 1 or equal len\(p_k\) = 2 .* got k=3"):
        st.topk_cross_entropy(x, torch.tensor([0, 1, 2]), 3, p_k=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"class indices in \[0, 5\), got 5"):
        st.topk_cross_entropy(x, torch.tensor([0, 5, 2]))
    with pytest.raises(ValueError, match=r"target must have the shape of input \(3, 5\), got .* \(3, 4\)"):
        st.spearman_corrcoef(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"class dim"):
        st.topk_cross_entropy(torch.tensor(1.0), torch.tensor(0))


def _train(model, loss_fn, make_batch, steps=60, lr=0.05):
    params = list(model.parameters()) + list(loss_fn.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    for _ in range(steps):
        x, y = make_batch()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    return history


@pytest.mark.parametrize("name", list(LOSSES))
def test_trains_an_nn_sequential_model_with_learnable_softness(name):
    """A linear scorer learns a hidden linear ranking (or class) from the loss alone."""
    torch.manual_seed(0)
    w = torch.randn(5)
    g = torch.Generator().manual_seed(1)

    def batch():
        feats = torch.randn(16, 6, 5, generator=g)
        truth = feats @ w
        if name == "TopKCrossEntropyLoss":
            return feats, truth.argmax(-1)
        if name == "NDCGLoss":
            return feats, (truth > truth.median(-1, keepdim=True).values).float() * 2.0
        return feats, truth

    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(-2))
    loss_fn = getattr(snn, name)(softness=0.5, learnable=True)
    history = _train(model, loss_fn, batch)
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    assert loss_fn.log_softness.grad is not None and torch.isfinite(loss_fn.log_softness.grad)


COMPILED = [
    ("SpearmanLoss", {"method": "neuralsort"}, True),
    ("SpearmanLoss", {}, False),  # fast_soft_sort has data-dependent shapes: graph breaks
    ("KendallTauLoss", {"mode": "c1"}, True),
    ("TopKCrossEntropyLoss", {"k": 2, "method": "sorting_network", "learnable": True}, True),
    ("NDCGLoss", {"k": 3, "learnable": True}, True),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
# dynamo warns (UserWarning) about reading .grad of a non-leaf while it traces fast_soft_sort eagerly
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
@pytest.mark.parametrize("name, config, fullgraph", COMPILED, ids=[f"{c[0]}-{i}" for i, c in enumerate(COMPILED)])
def test_compile_equals_eager(name, config, fullgraph):
    x, y = _layer_inputs(name)
    layer = getattr(snn, name)(softness=0.4, **config)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(layer, fullgraph=fullgraph, backend="aot_eager")
        xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
        eager, got = layer(xe, y), compiled(xc, y)
        torch.testing.assert_close(got, eager, rtol=2e-6, atol=2e-6)
        (ge,) = torch.autograd.grad(eager, xe)
        (gc,) = torch.autograd.grad(got, xc)
        torch.testing.assert_close(gc, ge, rtol=1e-4, atol=1e-6)
    finally:
        torch._dynamo.reset()
