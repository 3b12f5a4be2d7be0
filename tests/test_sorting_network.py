"""Tests of the differentiable bitonic sorting network (softtorch.methods.sorting_network)."""

from __future__ import annotations

import math

import pytest
import torch
from _registry import SOFT_MODES
from hypothesis import given, settings
from hypothesis import strategies as hst

from softtorch.methods import sorting_network
from softtorch.methods.sorting_network import permutation, sort_values

MODES = SOFT_MODES
SIZES = (1, 2, 3, 4, 5, 7, 8, 13, 16, 33)


def distinct(shape, gap=1e-2, dtype=torch.float64, seed=0):
    """Values with pairwise gaps of at least ``gap`` along the last dim, in random order."""
    g = torch.Generator().manual_seed(seed)
    *batch, n = shape
    rows = [torch.randperm(3 * n, generator=g)[:n] for _ in range(max(1, int(torch.tensor(batch).prod())))]
    return (torch.stack(rows).to(dtype) * gap).reshape(shape)


def one_hot(indices, n):
    return torch.nn.functional.one_hot(indices, n).to(torch.float64)


# --- smoke and exceptions ------------------------------------------------------------------


def test_public_names():
    assert sorting_network.__all__ == [
        "permutation",
        "sort_values",
        "NETWORKS",
        "DISTRIBUTIONS",
        "OPTIONS",
        "OPTION_ALIASES",
    ]


@pytest.mark.parametrize("fn", [permutation, sort_values])
def test_bad_mode(fn):
    with pytest.raises(ValueError, match="mode must be one of .*got 'hard'"):
        fn(torch.rand(4), 0.1, "hard")
    with pytest.raises(ValueError, match="mode"):
        fn(torch.rand(1), 0.1, "nope")  # checked even when there is nothing to compare


def test_zero_dim_refused():
    with pytest.raises(ValueError, match="0-d"):
        sort_values(torch.tensor(1.0), 0.1, "smooth")


# --- hard limit ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("descending", [False, True])
def test_hard_limit(mode, n, descending):
    x = distinct((3, n), seed=n)
    ref = torch.sort(x, dim=-1, descending=descending)
    values = sort_values(x, 1e-4, mode, descending=descending)
    perm = permutation(x, 1e-4, mode, descending=descending)
    torch.testing.assert_close(values, ref.values, rtol=0, atol=1e-12)
    torch.testing.assert_close(perm, one_hot(ref.indices, n), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_polynomial_modes_exact_outside_window(mode):
    # Gaps of 0.1 > 5 * softness: every unit saturates, the result is bit-exact.
    x = distinct((4, 11), gap=0.1, dtype=torch.float32, seed=3)
    ref = torch.sort(x, dim=-1)
    assert torch.equal(sort_values(x, 0.01, mode), ref.values)
    assert torch.equal(permutation(x, 0.01, mode), one_hot(ref.indices, 11).float())


# --- properties ----------------------------------------------------------------------------

shapes = hst.tuples(hst.lists(hst.integers(1, 3), min_size=0, max_size=2), hst.integers(1, 33))


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes,
    mode=hst.sampled_from(MODES),
    softness=hst.floats(1e-3, 10.0),
    descending=hst.booleans(),
    seed=hst.integers(0, 2**31 - 1),
)
def test_doubly_stochastic_and_consistent(shape, mode, softness, descending, seed):
    batch, n = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*batch, n, generator=g, dtype=torch.float64)
    perm = permutation(x, softness, mode, descending=descending)
    values = sort_values(x, softness, mode, descending=descending)
    assert perm.shape == (*batch, n, n)
    assert values.shape == (*batch, n)
    assert (perm >= 0).all() and (perm <= 1).all()
    torch.testing.assert_close(perm.sum(-1), torch.ones(*batch, n, dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(perm.sum(-2), torch.ones(*batch, n, dtype=torch.float64), rtol=0, atol=1e-10)
    # The values are the permutation applied to the input, without forming it.
    torch.testing.assert_close(values, (perm @ x.unsqueeze(-1)).squeeze(-1), rtol=0, atol=1e-10)
    # Mass is conserved and values stay in the input's range.
    torch.testing.assert_close(values.sum(-1), x.sum(-1), rtol=0, atol=1e-10)
    assert (values >= x.min(-1, keepdim=True).values - 1e-12).all()
    assert (values <= x.max(-1, keepdim=True).values + 1e-12).all()
    # Monotone where the last layer compared: slot 2i never exceeds slot 2i + 1.
    asc = values.flip(-1) if descending else values
    m = 2 * (n // 2)
    assert (asc[..., 0:m:2] <= asc[..., 1:m:2] + 1e-12).all()


def test_nearly_monotone_at_moderate_softness():
    x = torch.rand(16, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    values = sort_values(x, 0.01, "smooth")
    assert values.diff(dim=-1).min() > -1e-3
    torch.testing.assert_close(values, torch.sort(x).values, rtol=0, atol=0.05)


def test_descending_is_reversed_ascending():
    x = torch.rand(2, 3, 6, dtype=torch.float64)
    torch.testing.assert_close(sort_values(x, 0.2, "c1", descending=True), sort_values(x, 0.2, "c1").flip(-1))
    torch.testing.assert_close(permutation(x, 0.2, "c1", descending=True), permutation(x, 0.2, "c1").flip(-2))


def test_n_equals_one():
    x = torch.tensor([[0.3], [-2.0]], requires_grad=True)
    for mode in MODES:
        assert torch.equal(sort_values(x, 0.1, mode), x.detach())
        assert torch.equal(permutation(x, 0.1, mode), torch.ones(2, 1, 1))
    sort_values(x, 0.1, "smooth").sum().backward()
    assert torch.equal(x.grad, torch.ones(2, 1))


@pytest.mark.parametrize("n", [3, 5, 6, 7, 9, 33])
def test_padding_never_leaks(n):
    # A huge softness averages every real pair, but the sentinels stay out of the real slots.
    x = torch.rand(2, n, dtype=torch.float64)
    perm = permutation(x, 1e6, "smooth")
    assert perm.shape == (2, n, n)
    torch.testing.assert_close(perm.sum(-1), torch.ones(2, n, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(perm.sum(-2), torch.ones(2, n, dtype=torch.float64), rtol=0, atol=1e-12)


def test_power_of_two_fully_mixes_at_large_softness():
    x = torch.rand(3, 8, dtype=torch.float64)
    torch.testing.assert_close(permutation(x, 1e6, "c2"), torch.full((3, 8, 8), 1 / 8, dtype=torch.float64))
    torch.testing.assert_close(sort_values(x, 1e6, "smooth"), x.mean(-1, keepdim=True).expand(3, 8), rtol=0, atol=1e-6)


# --- gradients -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [5, 8])
def test_gradcheck(mode, n):
    # Values in [0, 1] and softness 0.25 keep every |a - b| / softness inside the polynomial window.
    x = (distinct((2, n), gap=1.0 / (3 * n), seed=n)).requires_grad_()
    tau = torch.tensor([[0.25], [0.4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, t: sort_values(x, t, mode), (x, tau))
    assert torch.autograd.gradcheck(lambda x, t: permutation(x, t, mode), (x, tau))
    assert torch.autograd.gradcheck(lambda x: permutation(x, 0.3, mode, descending=True), (x,))


@pytest.mark.parametrize("mode", ["smooth", "c2"])
def test_gradgradcheck(mode):
    x = distinct((1, 5), gap=0.07, seed=5).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x: permutation(x, 0.3, mode), (x,))


def test_tensor_softness_per_row():
    x = torch.rand(3, 7, dtype=torch.float64)
    tau = torch.tensor([[0.05], [0.5], [2.0]], dtype=torch.float64, requires_grad=True)
    values = sort_values(x, tau, "smooth")
    perm = permutation(x, tau, "smooth")
    for b in range(3):
        torch.testing.assert_close(values[b], sort_values(x[b], float(tau[b].detach()), "smooth"))
        torch.testing.assert_close(perm[b], permutation(x[b], float(tau[b].detach()), "smooth"))
    (values * torch.arange(7.0, dtype=torch.float64)).sum().backward()
    assert tau.grad is not None and tau.grad.shape == (3, 1)
    assert torch.isfinite(tau.grad).all() and (tau.grad != 0).all()
    tau.grad = None
    (perm * torch.rand(3, 7, 7, dtype=torch.float64)).sum().backward()
    assert (tau.grad != 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softness", [1e-6, 1e6])
def test_finite_at_extreme_softness(dtype, mode, softness):
    x = torch.randn(2, 6, dtype=dtype).mul(1e3).requires_grad_()
    tau = torch.full((2, 1), softness, dtype=dtype, requires_grad=True)
    values = sort_values(x, tau, mode)
    perm = permutation(x, tau, mode)
    (values.sum() + (perm * torch.randn_like(perm)).sum()).backward()
    for t in (values, perm, x.grad, tau.grad):
        assert torch.isfinite(t).all()


# --- transforms ----------------------------------------------------------------------------


def test_vmap():
    x = torch.rand(4, 3, 6)
    tau = torch.rand(4, 3, 1) + 0.05
    perm = torch.func.vmap(lambda r, t: permutation(r, t, "c1"))(x, tau)
    torch.testing.assert_close(perm, permutation(x, tau, "c1"))
    values = torch.func.vmap(torch.func.vmap(lambda r: sort_values(r, 0.1, "smooth", descending=True)))(x)
    torch.testing.assert_close(values, sort_values(x, 0.1, "smooth", descending=True))
    grads = torch.func.vmap(torch.func.grad(lambda r: permutation(r, 0.2, "smooth").diagonal().sum()))(x[0])
    x0 = x[0].clone().requires_grad_()
    permutation(x0, 0.2, "smooth").diagonal(dim1=-2, dim2=-1).sum().backward()
    torch.testing.assert_close(grads, x0.grad)


def test_compile_fullgraph():
    # One graph, no breaks (dynamo with the cheap aot_eager backend; inductor compiles it too).
    def values_and_rows(x, t):
        return permutation(x, t, "c2", descending=True) @ x.unsqueeze(-1)

    compiled = torch.compile(values_and_rows, fullgraph=True, backend="aot_eager")
    x = torch.rand(2, 5, requires_grad=True)
    tau = torch.tensor([[0.1], [0.3]])
    got = compiled(x, tau)
    torch.testing.assert_close(got, values_and_rows(x, tau))
    torch.testing.assert_close(got.squeeze(-1), sort_values(x, tau, "c2", descending=True))
    got[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad != 0).any()


# --- the seed README figure ----------------------------------------------------------------


def test_seed_readme_figure():
    # st.sort(x, method="sorting_network", softness=0.1).values in the seed README: the network
    # runs on the standardized scores and its soft values are mapped back with logit * std + mean.
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
    mean = x.mean(-1, keepdim=True)
    std = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-6)
    xt = torch.sigmoid((x - mean) / std)
    values = torch.logit(sort_values(xt, 0.1, "smooth"), eps=1e-6) * std + mean
    expected = torch.tensor([-0.7999, -0.2672, 0.3847, 0.7863])
    torch.testing.assert_close(values, expected, rtol=0, atol=5e-5)
    # Gathering the original values with the network's permutation gives other numbers.
    gathered = permutation(xt, 0.1, "smooth") @ x
    assert (gathered - expected).abs().max() > 1e-2


def test_rows_and_log_options():
    # The extras of the methods protocol (softtorch.methods): a subset of slots, and log P.
    x = torch.rand(2, 6, dtype=torch.float64, requires_grad=True)
    full = permutation(x, 0.2, "c1")
    torch.testing.assert_close(permutation(x, 0.2, "c1", rows=slice(1, 3)), full[..., 1:3, :])
    torch.testing.assert_close(permutation(x, 0.2, "c1", rows=torch.tensor([4, 0])), full[..., [4, 0], :])
    logp = permutation(x, 0.01, "c1", log=True)
    hard = permutation(x, 0.01, "c1")
    torch.testing.assert_close(logp.exp(), hard)
    assert (logp[hard == 0] == float("-inf")).all()
    logp.masked_fill(hard == 0, 0.0).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("n", [1, 2, 6, 8, 13])
@pytest.mark.parametrize("descending", [False, True])
def test_rows_pulled_back_match_full(n, descending):
    x = torch.rand(2, 3, n, dtype=torch.float64)
    full = permutation(x, 0.15, "smooth", descending=descending)
    for rows in (slice(0, 1), slice(n - 1, n), slice(None, None, 2), torch.tensor([n - 1, 0]), torch.arange(n)):
        got = permutation(x, 0.15, "smooth", descending=descending, rows=rows)
        ref = full[..., rows, :] if isinstance(rows, slice) else full.index_select(-2, rows)
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_rows_gradcheck_and_empty_batch():
    x = distinct((2, 7), gap=0.05, seed=7).requires_grad_()
    tau = torch.tensor([[0.3], [0.2]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, t: permutation(x, t, "c1", descending=True, rows=slice(0, 2)), (x, tau))
    empty = torch.rand(0, 5)
    assert permutation(empty, 0.1, "smooth").shape == (0, 5, 5)
    assert permutation(empty, 0.1, "smooth", rows=slice(0, 1)).shape == (0, 1, 5)
    assert sort_values(empty, 0.1, "smooth").shape == (0, 5)


def test_nan_stays_in_its_row():
    x = torch.rand(3, 6)
    x[1, 2] = float("nan")
    for out in (sort_values(x, 0.1, "smooth"), permutation(x, 0.1, "c1")):
        assert torch.isnan(out[1]).any()
        assert torch.isfinite(out[0]).all() and torch.isfinite(out[2]).all()


# --- options: network and distribution -----------------------------------------------------

DISTRIBUTIONS = ("logistic", "logistic_phi", "cauchy", "gaussian", "reciprocal", "optimal")


def test_options_table():
    assert set(sorting_network.OPTIONS) == {"network", "distribution", "art_lambda"}
    assert sorting_network.OPTION_ALIASES == {"sorting_network_type": "network", "interpolation_type": "distribution"}
    assert sorting_network.NETWORKS == ("bitonic", "odd_even")
    assert sorting_network.DISTRIBUTIONS == DISTRIBUTIONS


@pytest.mark.parametrize("fn", [permutation, sort_values])
def test_bad_options(fn):
    x = torch.rand(5)
    with pytest.raises(ValueError, match=r"network must be one of 'bitonic', 'odd_even', got 'bubble'"):
        fn(x, 0.1, "smooth", network="bubble")
    with pytest.raises(ValueError, match=r"distribution must be one of 'logistic', .*'optimal', got 'laplace'"):
        fn(x, 0.1, "smooth", distribution="laplace")
    with pytest.raises(ValueError, match=r"distribution applies to mode='smooth' only.*'cauchy' with mode='c1'"):
        fn(x, 0.1, "c1", distribution="cauchy")
    with pytest.raises(ValueError, match=r"art_lambda applies to distribution='logistic_phi' only"):
        fn(x, 0.1, "smooth", distribution="cauchy", art_lambda=0.5)
    with pytest.raises(ValueError, match=r"art_lambda must be a nonnegative finite number, got -1"):
        fn(x, 0.1, "smooth", distribution="logistic_phi", art_lambda=-1)


def test_options_through_the_operators():
    import softtorch as st

    x = torch.tensor([[0.3, -1.0, 2.0, 0.5, 0.0]], dtype=torch.float64)
    opts = {"sorting_network_type": "odd_even", "interpolation_type": "cauchy"}
    got = st.sort(x, method="sorting_network", method_options=opts)
    scores = st.sort(x, method="sorting_network").indices  # the default network differs
    perm = permutation(
        torch.sigmoid((x - x.mean()) / (x.var(unbiased=False) + 1e-6).sqrt()),
        0.1,
        "smooth",
        network="odd_even",
        distribution="cauchy",
    )
    torch.testing.assert_close(got.indices, perm)
    assert (got.indices - scores).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"method_options accepts the keys 'network', 'distribution', 'art_lambda'"):
        st.sort(x, method="sorting_network", method_options={"steepness": 10.0})


@pytest.mark.parametrize(
    "distribution, s",
    [  # s = f(z) at z = (0.3 - 0.1) / 0.1 = 2, by hand
        ("logistic", 1 / (1 + math.exp(-2))),
        ("logistic_phi", 1 / (1 + math.exp(-2 / 0.2**0.25))),
        ("cauchy", 0.5 + math.atan(2) / math.pi),
        ("gaussian", 0.5 * (1 + math.erf(2 / math.sqrt(2)))),
        ("reciprocal", 0.75),
        ("optimal", 1 - 1 / 32),
    ],
)
@pytest.mark.parametrize("network", ["bitonic", "odd_even"])
def test_one_unit_per_distribution(distribution, s, network):
    # Two wires, one unit: min = (1 - s) a + s b, max = s a + (1 - s) b, P = [[1 - s, s], [s, 1 - s]].
    x = torch.tensor([0.3, 0.1], dtype=torch.float64)
    values = sort_values(x, 0.1, "smooth", network=network, distribution=distribution)
    torch.testing.assert_close(values, torch.tensor([0.3 - 0.2 * s, 0.1 + 0.2 * s], dtype=torch.float64))
    perm = permutation(x, 0.1, "smooth", network=network, distribution=distribution)
    torch.testing.assert_close(perm, torch.tensor([[1 - s, s], [s, 1 - s]], dtype=torch.float64))


def test_optimal_branches_and_art_lambda():
    x = torch.tensor([0.12, 0.1], dtype=torch.float64)  # z = 0.2: the linear middle of "optimal"
    torch.testing.assert_close(
        sort_values(x, 0.1, "smooth", distribution="optimal")[0], torch.tensor(0.12 - 0.02 * 0.7, dtype=torch.float64)
    )
    x = torch.tensor([0.1, 0.3], dtype=torch.float64)  # z = -2: the lower tail, s = 1 / 32
    torch.testing.assert_close(
        sort_values(x, 0.1, "smooth", distribution="optimal")[0], torch.tensor(0.1 + 0.2 / 32, dtype=torch.float64)
    )
    x = torch.tensor([0.3, 0.1], dtype=torch.float64)
    s = 1 / (1 + math.exp(-2 / 0.2**0.5))
    got = sort_values(x, 0.1, "smooth", distribution="logistic_phi", art_lambda=0.5)
    torch.testing.assert_close(got[0], torch.tensor(0.3 - 0.2 * s, dtype=torch.float64))
    # The default distribution is the mode's kernel: "logistic" is the same as no distribution.
    torch.testing.assert_close(sort_values(x, 0.1, "smooth", distribution="logistic"), sort_values(x, 0.1, "smooth"))


def loop_odd_even(x, softness, f):
    """The odd-even transposition network by hand: n layers of neighbour units, P carried along."""
    n = x.shape[-1]
    v = x.clone()
    P = torch.eye(n, dtype=x.dtype).expand(x.shape[:-1] + (n, n)).clone()
    for layer in range(n):
        for a in range(layer % 2, n - 1, 2):
            s = f((v[..., a] - v[..., a + 1]) / softness)
            va, vb = v[..., a].clone(), v[..., a + 1].clone()
            v[..., a], v[..., a + 1] = (1 - s) * va + s * vb, s * va + (1 - s) * vb
            pa, pb = P[..., a, :].clone(), P[..., a + 1, :].clone()
            P[..., a, :], P[..., a + 1, :] = (
                (1 - s[..., None]) * pa + s[..., None] * pb,
                s[..., None] * pa + (1 - s[..., None]) * pb,
            )
    return v, P


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10])
@pytest.mark.parametrize("descending", [False, True])
def test_odd_even_matches_plain_loop(n, descending):
    x = torch.rand(2, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    cauchy = lambda z: 0.5 + torch.atan(z) / math.pi  # noqa: E731
    v, P = loop_odd_even(x, 0.2, cauchy)
    if descending:
        v, P = v.flip(-1), P.flip(-2)
    opts = {"network": "odd_even", "distribution": "cauchy"}
    torch.testing.assert_close(sort_values(x, 0.2, "smooth", descending=descending, **opts), v)
    torch.testing.assert_close(permutation(x, 0.2, "smooth", descending=descending, **opts), P)
    torch.testing.assert_close(
        permutation(x, 0.2, "smooth", descending=descending, rows=slice(0, 1), **opts), P[..., :1, :]
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
def test_odd_even_hard_limit(mode, n):
    x = distinct((3, n), seed=n)
    ref = torch.sort(x, dim=-1)
    torch.testing.assert_close(sort_values(x, 1e-4, mode, network="odd_even"), ref.values, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        permutation(x, 1e-4, mode, network="odd_even"), one_hot(ref.indices, n), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("network", ["bitonic", "odd_even"])
def test_distributions_doubly_stochastic_and_hard_limit(distribution, network):
    x = distinct((3, 6), seed=2)
    perm = permutation(x, 0.3, "smooth", network=network, distribution=distribution)
    torch.testing.assert_close(perm.sum(-1), torch.ones(3, 6, dtype=torch.float64))
    torch.testing.assert_close(perm.sum(-2), torch.ones(3, 6, dtype=torch.float64))
    torch.testing.assert_close(
        sort_values(x, 0.3, "smooth", network=network, distribution=distribution), (perm @ x.unsqueeze(-1)).squeeze(-1)
    )
    # Heavy tails (cauchy, reciprocal, optimal) need a much smaller softness to harden.
    hard = sort_values(x, 1e-9, "smooth", network=network, distribution=distribution)
    torch.testing.assert_close(hard, torch.sort(x).values, rtol=0, atol=1e-6)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("network", ["bitonic", "odd_even"])
def test_distributions_gradcheck(distribution, network):
    x = distinct((2, 5), gap=0.07, seed=4).requires_grad_()
    tau = torch.tensor([[0.25], [0.4]], dtype=torch.float64, requires_grad=True)
    opts = {"network": network, "distribution": distribution}
    assert torch.autograd.gradcheck(lambda x, t: sort_values(x, t, "smooth", **opts), (x, tau))
    assert torch.autograd.gradcheck(lambda x, t: permutation(x, t, "smooth", **opts), (x, tau))
    assert torch.autograd.gradgradcheck(lambda x: permutation(x, 0.3, "smooth", **opts), (x,))


# --- the chunked permutation kernel (softtorch._core.sorting_networks) ---------------------


def _unit_weights(batch, n, seed, dtype=torch.float64):
    """Unit weights in (0, 1) for every layer of the bitonic network on ``n`` wires, stacked."""
    from softtorch._core import sorting_networks as networks

    net = networks.get_network(n, "bitonic", torch.device("cpu"), dtype)
    g = torch.Generator().manual_seed(seed)
    return net, torch.rand(batch, len(net.layers), net.size // 2, generator=g, dtype=dtype)


def loop_permutation(net, weights):
    """The permutation of a layered network by hand: every unit mixes its two rows of P in turn."""
    size = net.size
    P = torch.eye(size, dtype=weights.dtype).expand(weights.shape[0], size, size).clone()
    for t, layer in enumerate(net.layers):
        for u in range(layer.blocks):
            for r in range(layer.d):
                a = layer.start + 2 * layer.d * u + r
                b = a + layer.d
                s = weights[:, t, u * layer.d + r, None]
                pa, pb = P[:, a].clone(), P[:, b].clone()
                P[:, a], P[:, b] = pa + s * (pb - pa), pb - s * (pb - pa)
    return P


@pytest.mark.parametrize("n", [2, 5, 32, 40, 70, pytest.param(300, marks=pytest.mark.full)])
def test_chunked_kernel_matches_plain_loop(n, monkeypatch):
    from softtorch._core import sorting_networks as networks

    net, w = _unit_weights(3, n, seed=n)
    ref = loop_permutation(net, w)[:, :n, :n]
    monkeypatch.setattr(networks, "CHUNK_ELEMENTS", net.size * net.size)  # one row per chunk
    w = w.requires_grad_()
    got = networks._BitonicPermutation.apply(w, net.size, 0, n)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    cot = torch.randn_like(got)
    (grad,) = torch.autograd.grad(got, w, cot)
    w_ref = w.detach().requires_grad_()
    (grad_ref,) = torch.autograd.grad(loop_permutation(net, w_ref)[:, :n, :n], w_ref, cot)
    torch.testing.assert_close(grad, grad_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [6, 40, 70])
def test_chunked_kernel_gradcheck_and_gradgradcheck(n, monkeypatch):
    from softtorch._core import sorting_networks as networks

    net, w = _unit_weights(2, n, seed=3)
    monkeypatch.setattr(networks, "CHUNK_ELEMENTS", net.size * net.size)
    fn = lambda w: networks._BitonicPermutation.apply(w, net.size, 0, n)  # noqa: E731
    w = w.requires_grad_()
    assert torch.autograd.gradcheck(fn, (w,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (w,), fast_mode=True)


@pytest.mark.parametrize(("size", "k", "lo", "hi"), [(16, 4, 0, 4), (128, 7, 2, 7), (128, 7, 0, 2), (64, 6, 1, 6)])
def test_group_matrix_closed_form_vjp(size, k, lo, hi):
    # The closed-form pull-back of a group's product against autograd through its own doubling,
    # and the product itself against the layers of the group multiplied one by one.
    from softtorch._core import sorting_networks as networks

    net, w = _unit_weights(2, size, seed=k)
    stage = networks._stage_weights(w, k)
    leaves = [s.clone().requires_grad_() for s in stage]
    mat = networks._group_matrix(leaves, k, lo, hi, 2, size)
    dmat = torch.randn(mat.shape, generator=torch.Generator().manual_seed(1), dtype=mat.dtype)
    expected = torch.autograd.grad(mat, leaves, dmat, allow_unused=True)
    got = [None] * k
    networks._group_vjp(stage, k, lo, hi, 2, size, dmat, got)
    for i in range(k):
        bit = k - 1 - i
        if lo <= bit < hi:
            torch.testing.assert_close(got[i], expected[i], rtol=0, atol=1e-12)
        else:
            assert got[i] is None and expected[i] is None
    # Block 0, head 0, lane 0: wires j << lo for the G values j of the group's bits.
    g = 1 << (hi - lo)
    wires = [j << lo for j in range(g)]
    ref = torch.eye(g, dtype=w.dtype).expand(2, g, g).clone()
    for bit in reversed(range(lo, hi)):  # the highest bit is applied first
        s = stage[k - 1 - bit].reshape(2, -1)
        step = torch.eye(g, dtype=w.dtype).expand(2, g, g).clone()
        for a in range(g):
            b = a ^ (1 << (bit - lo))
            if a < b:
                unit = ((wires[a] >> (bit + 1)) << bit) + (wires[a] & ((1 << bit) - 1))
                sa = s[:, unit]
                step[:, a, a], step[:, a, b], step[:, b, a], step[:, b, b] = 1 - sa, sa, sa, 1 - sa
        ref = step @ ref
    torch.testing.assert_close(mat[:, 0, 0, 0], ref, rtol=0, atol=1e-12)


def test_chunked_kernel_through_permutation_gradcheck():
    # n = 40: padded to 64 wires, the sixth stage is one top group of 64 x 32 products.
    x = distinct((2, 40), gap=1.0 / 120, seed=40).requires_grad_()
    tau = torch.tensor([[0.05], [0.1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, t: permutation(x, t, "smooth"), (x, tau), fast_mode=True)
    assert torch.autograd.gradcheck(lambda x: permutation(x, 0.1, "c1", descending=True), (x,), fast_mode=True)


# --- the values kernel over all layers (softtorch._core.sorting_networks._NetworkRun) -------


def loop_values(net, x, tau):
    """The relaxed bitonic network by hand, unit by unit: wires and weights ``(B, T, N / 2)``.

    Padding wires are sentinels that behave like +inf: a unit with one swaps exactly when the
    sentinel sits where the minimum goes (the lower wire of an ascending unit)."""
    v = torch.nn.functional.pad(x, (0, net.size - x.shape[-1])).clone()
    pad = [i >= x.shape[-1] for i in range(net.size)]
    weights = []
    for layer in net.layers:
        w = torch.zeros(x.shape[0], net.size // 2, dtype=x.dtype)
        for u in range(layer.blocks):
            for r in range(layer.d):
                a = 2 * layer.d * u + r
                b, unit = a + layer.d, u * layer.d + r
                desc = bool(layer.sign[u, r] < 0)
                if not (pad[a] or pad[b]):
                    s = torch.sigmoid((v[:, a] - v[:, b]) * (-1.0 if desc else 1.0) / tau.squeeze(-1))
                else:
                    swap = pad[a] != pad[b] and pad[b if desc else a]
                    s = torch.full_like(v[:, a], float(swap))
                    if swap:
                        pad[a], pad[b] = pad[b], pad[a]
                va, vb = v[:, a].clone(), v[:, b].clone()
                v[:, a], v[:, b] = va + s * (vb - va), vb - s * (vb - va)
                w[:, unit] = s
        weights.append(w)
    return v, torch.stack(weights, 1)


@pytest.mark.parametrize("n", [2, 5, 8, 13])
def test_network_run_matches_unit_loop(n):
    from softtorch._core import sorting_networks as networks

    x = torch.rand(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    tau = torch.tensor([[0.1], [0.3], [1.0]], dtype=torch.float64)
    net = networks.get_network(n, "bitonic", x.device, x.dtype)
    v, w = networks.run(x, tau.unsqueeze(-1), net, "smooth")
    v_ref, w_ref = loop_values(net, x, tau)
    torch.testing.assert_close(v, v_ref, rtol=0, atol=1e-13)
    torch.testing.assert_close(networks._stacked(w, 3), w_ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("batch", [1, 3])
def test_network_run_gradcheck_and_input_untouched(batch):
    from softtorch._core import sorting_networks as networks

    for n in (4, 6):  # no padding, then padding
        x = distinct((batch, n), gap=0.07, seed=n).requires_grad_()
        before = x.detach().clone()
        net = networks.get_network(n, "bitonic", x.device, x.dtype)

        def fn(x, net=net):
            v, w = networks.run(x, 0.3, net, "smooth")
            return (v,) + tuple(w)

        fn(x)
        assert torch.equal(x.detach(), before)  # the kernel never writes into its input
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))
        weights_only = lambda x, net=net: networks._stacked(networks.run(x, 0.3, net, "smooth")[1], batch)  # noqa: E731
        assert torch.autograd.gradcheck(weights_only, (x,))
        assert torch.autograd.gradgradcheck(weights_only, (x,))


# --- exact masking: a row with excluded entries sorts its kept entries alone ----------------


def masked_case(batch, n, seed, dtype=torch.float64):
    """Scores with excluded entries pushed out below (``-10``) or above (``+10``), as the operators
    do, a ``kept`` mask with a different count per row (one row all kept, one with nothing kept)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, n, generator=g, dtype=dtype)
    kept = torch.rand(batch, n, generator=g) < 0.6
    kept[0] = True
    if batch > 1:
        kept[1] = False
    low = torch.rand(batch, n, generator=g) < 0.5
    return x, torch.where(kept, x, torch.where(low, x - 10, x + 10)), kept, low


def check_masked_rows(x, xt, kept, low, descending, fn_full, fn_kept, values=False):
    """Every row's kept slots (and kept columns) against the method run on the kept entries alone."""
    got = fn_full(xt, kept)
    for b in range(x.shape[0]):
        k = int(kept[b].sum())
        if k == 0:
            continue
        ref = fn_kept(x[b][kept[b]])
        top = int((~kept[b] & (~low[b] if descending else low[b])).sum())
        if values:
            torch.testing.assert_close(got[b][top : top + k], ref, rtol=0, atol=1e-12)
        else:
            torch.testing.assert_close(got[b][top : top + k][:, kept[b]], ref, rtol=0, atol=1e-12)
            assert (got[b][top : top + k][:, ~kept[b]] == 0).all()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("network", ["bitonic", "odd_even"])
@pytest.mark.parametrize("n", [1, 3, 8, 13, 40])
@pytest.mark.parametrize("descending", [False, True])
def test_kept_equals_the_kept_entries_alone(mode, network, n, descending):
    x, xt, kept, low = masked_case(5, n, seed=n)
    kw = {"network": network, "descending": descending}
    check_masked_rows(
        x, xt, kept, low, descending,
        lambda t, k: permutation(t, 0.1, mode, kept=k, **kw),
        lambda r: permutation(r, 0.1, mode, **kw),
    )  # fmt: skip
    check_masked_rows(
        x, xt, kept, low, descending,
        lambda t, k: sort_values(t, 0.1, mode, kept=k, **kw),
        lambda r: sort_values(r, 0.1, mode, **kw),
        values=True,
    )  # fmt: skip
    rows = torch.tensor([n - 1, 0])
    torch.testing.assert_close(
        permutation(xt, 0.1, mode, kept=kept, rows=rows, **kw),
        permutation(xt, 0.1, mode, kept=kept, **kw)[..., rows, :],
    )


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("network", ["bitonic", "odd_even"])
def test_kept_every_distribution(distribution, network):
    x, xt, kept, low = masked_case(4, 11, seed=11)
    kw = {"network": network, "distribution": distribution}
    check_masked_rows(
        x, xt, kept, low, False,
        lambda t, k: permutation(t, 0.2, "smooth", kept=k, **kw),
        lambda r: permutation(r, 0.2, "smooth", **kw),
    )  # fmt: skip


def test_kept_gradcheck_and_many_rows():
    x, xt, kept, _ = masked_case(3, 6, seed=2)
    xt = xt.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: permutation(t, 0.3, "smooth", kept=kept), (xt,))
    assert torch.autograd.gradcheck(lambda t: sort_values(t, 0.3, "c2", kept=kept, descending=True), (xt,))
    # The kept slots of a long row ride on the chunked kernel and the rows pulled back alike.
    x, xt, kept, low = masked_case(2, 70, seed=5)
    check_masked_rows(
        x, xt, kept, low, False,
        lambda t, k: permutation(t, 0.1, "smooth", kept=k, rows=torch.arange(70)),
        lambda r: permutation(r, 0.1, "smooth"),
    )  # fmt: skip


def test_operators_with_a_mask_are_exact():
    import softtorch as st

    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 9, generator=g, dtype=torch.float64)
    mask = torch.rand(4, 9, generator=g) < 0.7
    mask[:, 0] = True
    x_inf = x.masked_fill(~mask & (x < 0), float("-inf")).masked_fill(~mask & (x >= 0), float("inf"))
    for mode in MODES:
        for descending in (False, True):
            kw = {"method": "sorting_network", "mode": mode, "descending": descending}
            out = st.sort(x, dim=-1, mask=mask, **kw)
            ranks = st.rank(x, dim=-1, mask=mask, **kw)
            with_inf = st.sort(x_inf, dim=-1, **kw)
            for b in range(4):
                row = x[b][mask[b]]
                ref = st.sort(row, dim=-1, **kw)
                k = row.shape[0]
                torch.testing.assert_close(out.values[b, :k], ref.values, rtol=0, atol=1e-10)
                torch.testing.assert_close(out.indices[b, :k][:, mask[b]], ref.indices, rtol=0, atol=1e-10)
                torch.testing.assert_close(ranks[b][mask[b]], st.rank(row, dim=-1, **kw), rtol=0, atol=1e-10)
                top = int(torch.isinf(x_inf[b]).logical_and((x_inf[b] > 0) if descending else (x_inf[b] < 0)).sum())
                torch.testing.assert_close(with_inf.values[b, top : top + k], ref.values, rtol=0, atol=1e-10)
