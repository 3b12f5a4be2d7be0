"""Tests of softtorch.compat.diffsort (DiffSortNet, DiffTopkNet in diffsort's and difftopk's conventions).

The reference is a plain loop over the comparators of the published networks (Petersen et al.,
2021): the bitonic network on the next power of two with the padding wires first and every
comparator that touches one skipped, directions alternating by block; the odd-even transposition
network with ``n`` layers. Each comparator mixes its two values and the two permutation columns
with ``alpha = f(steepness * (b - a))`` on the minimum's side.
"""

from __future__ import annotations

import math

import pytest
import torch

from softtorch.compat.diffsort import DiffSortNet, DiffTopkNet

DISTRIBUTIONS = ("logistic", "logistic_phi", "cauchy", "gaussian", "reciprocal", "optimal")


def relaxed_step(v, a, b, distribution, art_lambda):
    """diffsort's ``alpha`` (weight of ``a`` in the minimum) for ``v = steepness * (b - a)``."""
    if distribution == "logistic":
        return torch.sigmoid(v)
    if distribution == "logistic_phi":
        return torch.sigmoid(v / ((a - b).abs() + 1e-10) ** art_lambda)
    if distribution == "cauchy":
        return torch.atan(v) / math.pi + 0.5
    if distribution == "gaussian":
        return 0.5 * (1 + torch.erf(v / math.sqrt(2)))
    if distribution == "reciprocal":
        return 0.5 * (v / (2 + v.abs()) + 1)
    # optimal
    return torch.where(v.abs() <= 0.25, v + 0.5, torch.where(v > 0, 1 - 1 / (16 * v), -1 / (16 * v)))


def comparators(network, n):
    """Layers of ``(min wire, max wire)`` pairs on the real wires ``0 .. n - 1``."""
    layers = []
    if network == "odd_even":
        for layer in range(n):
            layers.append([(i, i + 1) for i in range(layer % 2, n - 1, 2)])
        return layers
    m = max(1, math.ceil(math.log2(n)))
    size, pad = 2**m, 2**m - n
    for block in range(m):
        for step in range(block + 1):
            d = 2 ** (block - step)
            layer = []
            for i in range(0, size, 2 * d):
                for j in range(d):
                    a, b = i + j, i + j + d
                    if a < pad or b < pad:
                        continue  # a padding wire: the comparator is skipped
                    if ((a // 2 ** (block + 1)) % 2) == 1:
                        a, b = b, a  # a descending block: the minimum goes up
                    layer.append((a - pad, b - pad))
            layers.append(layer)
    return layers


def loop_sort(x, network, steepness, distribution, art_lambda=0.25):
    """Values and permutation ``X[b, i, j]`` (element i in slot j) by a loop over the comparators."""
    n = x.shape[1]
    v = x.clone()
    X = torch.eye(n, dtype=x.dtype).repeat(x.shape[0], 1, 1)
    for layer in comparators(network, n):
        new_v, new_X = v.clone(), X.clone()
        for lo, hi in layer:
            a, b = v[:, lo], v[:, hi]
            alpha = relaxed_step(steepness * (b - a), a, b, distribution, art_lambda)
            new_v[:, lo] = alpha * a + (1 - alpha) * b
            new_v[:, hi] = (1 - alpha) * a + alpha * b
            new_X[:, :, lo] = alpha[:, None] * X[:, :, lo] + (1 - alpha[:, None]) * X[:, :, hi]
            new_X[:, :, hi] = (1 - alpha[:, None]) * X[:, :, lo] + alpha[:, None] * X[:, :, hi]
        v, X = new_v, new_X
    return v, X


def rows(n, seed=0, dtype=torch.float64):
    return torch.randn(3, n, dtype=dtype, generator=torch.Generator().manual_seed(seed))


# --- hand-checked values -------------------------------------------------------------------


@pytest.mark.parametrize("network", ["bitonic", "odd_even"])
def test_two_elements_by_hand(network):
    # One comparator: alpha = 1/2 + atan(10 * (0.1 - 0.3)) / pi = 1/2 - atan(2) / pi.
    alpha = 0.5 - math.atan(2) / math.pi
    values, X = DiffSortNet(network, 2)(torch.tensor([[0.3, 0.1]], dtype=torch.float64))
    torch.testing.assert_close(
        values, torch.tensor([[0.3 * alpha + 0.1 * (1 - alpha), 0.3 * (1 - alpha) + 0.1 * alpha]], dtype=torch.float64)
    )
    torch.testing.assert_close(X, torch.tensor([[[alpha, 1 - alpha], [1 - alpha, alpha]]], dtype=torch.float64))


def test_three_elements_bitonic_by_hand():
    # size 3 on 4 wires, wire 0 padding: (1, 2) is skipped in block 0 [pad, x0] ... the network is
    # x1 > x2 descending, then (x0, min(x1, x2)) and (x1', x2') ascending: with a huge steepness the
    # real wires sort exactly.
    x = torch.tensor([[2.0, 0.0, 1.0]], dtype=torch.float64)
    values, X = DiffSortNet("bitonic", 3, steepness=1e9, distribution="logistic")(x)
    torch.testing.assert_close(values, torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(
        X, torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    )


def test_diffsort_bitonic_layout_does_not_sort_size_22():
    # diffsort's padding rule leaves size 22 unsorted in the hard limit; it is reproduced as is.
    x = torch.randn(200, 22, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    values, _ = DiffSortNet("bitonic", 22, steepness=1e9, distribution="logistic")(x)
    ref, _ = loop_sort(x, "bitonic", 1e9, "logistic")
    torch.testing.assert_close(values, ref)
    assert (values - x.sort(-1).values).abs().max() > 0.1
    x = x[:, :21]
    sorted_ok, _ = DiffSortNet("bitonic", 21, steepness=1e9, distribution="logistic")(x)
    torch.testing.assert_close(sorted_ok, x.sort(-1).values)


# --- against the plain loop ----------------------------------------------------------------


@pytest.mark.parametrize("network", ["bitonic", "odd_even"])
@pytest.mark.parametrize("size", [2, 3, 5, 8, 13, 22, 33])
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_matches_plain_loop(network, size, distribution):
    x = rows(size, seed=size)
    values, X = DiffSortNet(network, size, steepness=4.0, art_lambda=0.4, distribution=distribution)(x)
    ref_values, ref_X = loop_sort(x, network, 4.0, distribution, art_lambda=0.4)
    torch.testing.assert_close(values, ref_values, rtol=0, atol=1e-9)
    torch.testing.assert_close(X, ref_X, rtol=0, atol=1e-9)


@pytest.mark.full
@pytest.mark.parametrize("network", ["bitonic", "odd_even"])
@pytest.mark.parametrize("size", range(2, 34))
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_matches_plain_loop_every_size(network, size, distribution):
    x = rows(size, seed=size, dtype=torch.float32)
    values, X = DiffSortNet(network, size, distribution=distribution)(x)
    ref_values, ref_X = loop_sort(x.double(), network, 10.0, distribution)
    torch.testing.assert_close(values.double(), ref_values, rtol=0, atol=1e-5)
    torch.testing.assert_close(X.double(), ref_X, rtol=0, atol=1e-5)


@pytest.mark.parametrize("network", ["bitonic", "odd_even"])
@pytest.mark.parametrize("size, k", [(5, 2), (12, 1), (17, 6)])
def test_topk_is_the_last_columns(network, size, k):
    x = rows(size, seed=3)
    none, X = DiffTopkNet(network, size, k)(x)
    assert none is None
    torch.testing.assert_close(X, loop_sort(x, network, 10.0, "cauchy")[1][:, :, size - k :], rtol=0, atol=1e-9)


# --- conventions, options and checks -------------------------------------------------------


def test_permutation_convention_and_values_only():
    x = rows(9, seed=2)
    sorter = DiffSortNet("bitonic", 9, steepness=3.0)
    values, X = sorter(x)
    torch.testing.assert_close(values, (x.unsqueeze(1) @ X).squeeze(1))
    torch.testing.assert_close(X.sum(1), torch.ones(3, 9, dtype=torch.float64))
    only, none = DiffSortNet("bitonic", 9, steepness=3.0, return_permutation=False)(x)
    assert none is None
    torch.testing.assert_close(only, values)


def test_interpolation_type_and_repr():
    a = DiffSortNet("odd_even", 4, interpolation_type="logistic_phi", art_lambda=0.5)
    assert a.distribution == "logistic_phi"
    assert repr(a) == "DiffSortNet('odd_even', size=4, steepness=10.0, distribution='logistic_phi', art_lambda=0.5)"
    assert (
        repr(DiffTopkNet("bitonic", 6, 2))
        == "DiffTopkNet('bitonic', size=6, k=2, steepness=10.0, distribution='cauchy')"
    )
    with pytest.raises(ValueError, match="distribution and interpolation_type name the same thing"):
        DiffSortNet("odd_even", 4, interpolation_type="logistic", distribution="gaussian")


def test_half_and_float_inputs():
    x = rows(6).float()
    values, X = DiffSortNet("bitonic", 6)(x)
    assert values.dtype == X.dtype == torch.float32
    half_values, half_X = DiffSortNet("bitonic", 6)(x.half())
    assert half_values.dtype == torch.float16
    torch.testing.assert_close(half_values.float(), values, rtol=0, atol=2e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"sorting_network_type must be one of 'bitonic', 'odd_even', got 'bubble'"):
        DiffSortNet("bubble", 4)
    with pytest.raises(ValueError, match=r"size must be in \[1, inf\), got 0"):
        DiffSortNet("bitonic", 0)
    with pytest.raises(ValueError, match=r"steepness must be a positive finite number, got -1"):
        DiffSortNet("bitonic", 4, steepness=-1.0)
    with pytest.raises(ValueError, match=r"distribution must be one of .*got 'laplace'"):
        DiffSortNet("bitonic", 4, distribution="laplace")
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\], got 5"):
        DiffTopkNet("bitonic", 4, 5)
    with pytest.raises(ValueError, match="sparse must be False"):
        DiffTopkNet("bitonic", 4, 2, sparse=True)
    with pytest.raises(ValueError, match=r"vectors must have shape \(batch, 4\), got \(2, 5\)"):
        DiffSortNet("bitonic", 4)(torch.rand(2, 5))
    with pytest.raises(TypeError, match="floating-point"):
        DiffSortNet("bitonic", 4)(torch.ones(2, 4, dtype=torch.long))


def test_gradcheck():
    x = rows(6, seed=5).requires_grad_()
    for network in ("bitonic", "odd_even"):
        sorter = DiffSortNet(network, 6, steepness=2.0)
        assert torch.autograd.gradcheck(sorter, (x,))
