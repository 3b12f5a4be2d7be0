"""Inputs and assertions shared by the sorting-family test modules (imported as ``helpers``)."""

from __future__ import annotations

import torch
from hypothesis import settings

F64 = torch.float64
#: The seed README's example input.
SEED_X = [-0.2, -1.0, 0.3, 1.0]
#: Hypothesis settings of the property tests: no deadline, no example database on disk.
HYP = settings(max_examples=25, deadline=None, database=None)


def seed_x(dtype=torch.float32):
    return torch.tensor(SEED_X, dtype=dtype)


def distinct(shape, dim=-1, seed=0, dtype=F64, spacing=1.0):
    """A random permutation of a spaced grid along ``dim`` plus noise: pairwise gaps >= 0.75 * spacing."""
    g = torch.Generator().manual_seed(seed)
    shape = tuple(shape)
    grid = torch.rand(shape, generator=g).argsort(dim).to(dtype)
    return (grid + 0.25 * torch.rand(shape, generator=g, dtype=dtype)) * spacing - 0.4 * shape[dim] * spacing


def assert_prob(p, atol=1e-5):
    """Rows of ``p`` (last axis) are probability vectors."""
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)), atol=atol, rtol=0)


def assert_one_hot(p, index, n):
    assert torch.equal(p, torch.nn.functional.one_hot(index, n).to(p.dtype))


def assert_grads_close(actual_loss, expected_loss, actual_leaves, expected_leaves, **tolerances):
    """The gradients of two losses with respect to matching leaves are close (an unused leaf has a
    zero gradient); ``tolerances`` go to :func:`torch.testing.assert_close`."""
    got = torch.autograd.grad(actual_loss, actual_leaves, allow_unused=True, materialize_grads=True)
    want = torch.autograd.grad(expected_loss, expected_leaves, allow_unused=True, materialize_grads=True)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, **tolerances)
