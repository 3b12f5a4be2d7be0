"""softtorch in larger training: deterministic algorithms, CPU autocast, and DistributedDataParallel.

The operator table is :data:`test_matrix.OPS` (every public function), so a new operator is covered
here without editing this file. A representative slice runs by default; the complete cross
product of operators x methods x soft modes is marked ``full``.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_matrix import OPS, SOFT_MODES, _grads, _leaves, _run
from torch import nn

import softtorch.nn as snn
from softtorch.methods import get_method

F64 = torch.float64


def _cases(modes):
    for op in OPS.values():
        for method in op.methods:
            for mode in modes if op.modes != (None,) else (None,):
                if method is not None and mode not in get_method(method).modes:
                    continue
                yield pytest.param(op.name, method, mode, id=f"{op.name}-{method}-{mode}")


def _slice_or_full():
    """smooth and c1 by default (one exponential, one polynomial kernel); every soft mode under -m full."""
    default = {p.id for p in _cases(("smooth", "c1"))}
    for p in _cases(SOFT_MODES):
        yield p if p.id in default else pytest.param(*p.values, id=p.id, marks=pytest.mark.full)


def _inputs(op, dtype=torch.float32):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 7, generator=g, dtype=F64).to(dtype)
    return _leaves(op.inputs(x, exact=False))


@pytest.fixture
def deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


@pytest.mark.parametrize("name, method, mode", list(_slice_or_full()))
def test_deterministic_algorithms_give_identical_results(name, method, mode, deterministic):
    """Under ``torch.use_deterministic_algorithms(True)`` every operator runs, and two calls agree bit for bit."""
    op = OPS[name]
    runs = []
    for _ in range(2):
        inputs = _inputs(op)
        outs = _run(op, inputs, mode, method, 0.5)
        runs.append(([o.detach() for o in outs], _grads(outs, inputs)))
    (outs_a, grads_a), (outs_b, grads_b) = runs
    for a, b in zip(outs_a, outs_b):
        assert torch.equal(a, b)
    for a, b in zip(grads_a, grads_b):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("name, method, mode", list(_slice_or_full()))
def test_cpu_bfloat16_autocast(name, method, mode):
    """Inside ``torch.autocast("cpu", dtype=torch.bfloat16)`` on bfloat16 activations every operator
    runs, keeps its input's dtype and gives finite values and gradients."""
    op = OPS[name]
    inputs = _inputs(op, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = _run(op, inputs, mode, method, 0.5)
        grads = _grads(outs, inputs)
    for out in outs:
        if out.is_floating_point():
            assert out.dtype == torch.bfloat16, (name, out.dtype)
            assert torch.isfinite(out).all()
    for grad in grads:
        assert grad is None or torch.isfinite(grad).all()


@pytest.mark.parametrize("name, method, mode", list(_slice_or_full()))
def test_autocast_leaves_float32_operators_unchanged(name, method, mode):
    """The autocast policy (docs/user_guide/larger_training.rst): an operator runs with autocast off,
    so on float32 inputs ``torch.autocast("cpu", dtype=torch.bfloat16)`` changes nothing: float32
    results and gradients (the backward run outside the region), bit for bit those computed
    without autocast."""
    op = OPS[name]
    plain_inputs, autocast_inputs = _inputs(op), _inputs(op)
    plain = _run(op, plain_inputs, mode, method, 0.5)
    plain_grads = _grads(plain, plain_inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = _run(op, autocast_inputs, mode, method, 0.5)
    grads = _grads(outs, autocast_inputs)  # backward outside the region, as autocast recommends
    for a, b in zip(outs, plain):
        assert a.dtype == b.dtype and torch.equal(a, b), name
    for a, b in zip(grads, plain_grads):
        assert (a is None and b is None) or (a.dtype == b.dtype and torch.equal(a, b)), name


# -- DistributedDataParallel -------------------------------------------------------------------------------

STEPS = 5
BATCH = 8  # per process


class _Ranker(nn.Module):
    """A small model with learnable-softness sorting layers (one of them solved by optimal transport)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(5, 6, dtype=F64)
        self.sort = snn.SoftSort(method="ot", softness=0.5, learnable=True, dtype=F64)
        self.topk = snn.SoftTopK(k=3, softness=0.4, learnable=True, dtype=F64)
        self.rank = snn.SoftRank(dim=-1, softness=0.3, learnable=True, dtype=F64)

    def forward(self, x):
        h = self.embed(x)
        spread = self.sort(h)[..., -1] - self.sort(h)[..., 0]
        return spread + self.topk(h).sum(-1) + (self.rank(h) * torch.linspace(-1, 1, 6, dtype=F64)).sum(-1)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS, 2 * BATCH, 5, generator=g, dtype=F64)
    y = torch.randn(STEPS, 2 * BATCH, generator=g, dtype=F64)
    return x, y


def _train(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(STEPS):
        opt.zero_grad()
        loss = ((model(x[step]) - y[step]) ** 2).mean()
        loss.backward()
        opt.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _ddp_worker(rank, world, store_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(_Ranker())
        x, y = _data()
        half = slice(rank * BATCH, (rank + 1) * BATCH)
        params = _train(model, x[:, half], y[:, half])
        torch.save({name.removeprefix("module."): p for name, p in params.items()}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_distributed_data_parallel_matches_one_process(tmp_path):
    """Two processes (gloo, a file store: no network) train a model with learnable-softness softtorch
    layers for 5 steps; both end with the same parameters, softness included, and those equal a
    single-process run on the concatenated batches."""
    mp.start_processes(_ddp_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, start_method="spawn")
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    torch.manual_seed(0)
    single = _train(_Ranker(), *_data())
    assert set(ranks[0]) == set(single)
    assert {"sort.log_softness", "topk.log_softness", "rank.log_softness"} <= set(single)
    for name, value in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-10, atol=1e-12, msg=name)
    initial = _Ranker().sort.log_softness.detach()
    assert not torch.equal(single["sort.log_softness"], initial), "the softness did not train"
