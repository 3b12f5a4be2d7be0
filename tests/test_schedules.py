"""Softness schedules (issue 18): SoftnessScheduler, hard_mode and hardness_gap."""

import math

import pytest
import torch
from torch import nn

import softtorch as st
import softtorch.nn as snn
from softtorch.schedules import SoftnessScheduler, hard_mode, hardness_gap

F64 = torch.float64


def _model():
    return nn.Sequential(
        nn.Linear(3, 6),
        snn.SoftSort(softness=0.8),  # float
        snn.SoftTopK(2, softness=torch.tensor([[0.4], [1.2]])),  # per-channel buffer
        snn.SoftMax(dim=-1, learnable=True, softness=0.5),  # learnable
        snn.SoftLogicalNot(),  # no softness: skipped
    )


# factors after each of 4 steps with final_factor r = 0.1, written out by hand
HAND = {
    "linear": [0.775, 0.55, 0.325, 0.1],
    "cosine": [0.1 + 0.9 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(1, 5)],
    "exponential": [0.1 ** (k / 4) for k in range(1, 5)],
}


@pytest.mark.parametrize("schedule", list(HAND))
def test_every_kind_of_softness_follows_the_schedule(schedule):
    model = _model()
    scheduler = SoftnessScheduler(model, total_steps=4, final_factor=0.1, schedule=schedule)
    assert [name for name, _ in scheduler.layers] == ["1", "2", "3"]
    for k, f in enumerate(HAND[schedule] + [0.1, 0.1]):  # steps past the end hold the end value
        scheduler.step()
        assert scheduler.last_step == k + 1
        assert math.isclose(model[1].softness, 0.8 * f, rel_tol=1e-12)
        torch.testing.assert_close(model[2].softness, torch.tensor([[0.4], [1.2]]) * f)
        assert math.isclose(float(model[3].softness.detach()), 0.5 * f, rel_tol=1e-5)
    assert scheduler.get_last_softness()[0] == model[1].softness
    assert math.isclose(scheduler.factor(2), HAND[schedule][1], rel_tol=1e-12)


def _train(direction, final_factor, scheduled):
    """SGD moving log-softness at a constant rate (``direction`` = +1 up, -1 down) for 10 steps."""
    layer = snn.SoftTopK(2, learnable=True, softness=0.5)
    opt = torch.optim.SGD(layer.parameters(), lr=0.01)
    scheduler = SoftnessScheduler(layer, total_steps=10, final_factor=final_factor, schedule="exponential")
    caps = []
    for step in range(10):
        opt.zero_grad()
        (-direction * layer.log_softness).backward()
        opt.step()
        if scheduled:
            scheduler.step()
            caps.append(0.5 * final_factor ** ((step + 1) / 10))
            assert float(layer.softness.detach()) <= caps[-1] * (1 + 1e-6)
    return float(layer.softness.detach())


def test_learnable_softness_learns_below_the_schedule_ceiling():
    # pushed up, the softness sits on the ceiling start * f(t), not where the optimizer would take it
    assert math.isclose(_train(+1, 0.2, False), 0.5 * math.exp(0.1), rel_tol=1e-5)
    assert math.isclose(_train(+1, 0.2, True), 0.5 * 0.2, rel_tol=1e-5)
    # pushed down faster than the schedule, learning alone decides
    assert math.isclose(_train(-1, 0.95, True), 0.5 * math.exp(-0.1), rel_tol=1e-5)


def test_state_dict_resumes_the_schedule():
    torch.manual_seed(0)
    straight, resumed = _model(), _model()
    resumed.load_state_dict(straight.state_dict())
    a = SoftnessScheduler(straight, total_steps=6, final_factor=0.05)
    for _ in range(3):
        a.step()
    saved_model, saved = straight.state_dict(), a.state_dict()
    b = SoftnessScheduler(resumed, total_steps=1, final_factor=0.9, schedule="linear")
    resumed.load_state_dict(saved_model)
    resumed[1]._softness_float = straight[1].softness  # a float softness is not model state
    b.load_state_dict(saved)
    assert (b.total_steps, b.final_factor, b.schedule, b.last_step) == (6, 0.05, "cosine", 3)
    for _ in range(3):
        a.step()
        b.step()
    for x, y in zip(a.get_last_softness(), b.get_last_softness()):
        torch.testing.assert_close(torch.as_tensor(x), torch.as_tensor(y))
    with pytest.raises(ValueError, match="schedules layers"):
        SoftnessScheduler(snn.SoftSort(), 3).load_state_dict(saved)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"schedule must be one of 'linear', 'cosine', 'exponential', got 'step'"):
        SoftnessScheduler(_model(), 3, schedule="step")
    with pytest.raises(ValueError, match="total_steps"):
        SoftnessScheduler(_model(), 0)
    with pytest.raises(ValueError, match="final_factor"):
        SoftnessScheduler(_model(), 3, final_factor=-1.0)
    with pytest.raises(ValueError, match="no softtorch layer with a softness"):
        SoftnessScheduler(nn.Linear(2, 2), 3)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        SoftnessScheduler([snn.SoftSort()], 3)


def test_hard_mode_and_hardness_gap():
    x = torch.tensor([[0.3, -1.0, 2.0, 0.5]], dtype=F64)
    model = nn.Sequential(snn.SoftSort(softness=0.5), snn.SoftTopK(2, straight_through=True))
    with hard_mode(model):
        out = model(x)
    assert model[0].config["mode"] == "smooth" and model[1].config["mode"] == "smooth"
    assert torch.equal(out, torch.tensor([[2.0, 0.5]], dtype=F64))
    soft = model(x)
    gap = hardness_gap(model, x)
    assert torch.equal(gap.soft, soft) and torch.equal(gap.hard, out)
    assert math.isclose(gap.gap, float((soft - out).abs().mean()), rel_tol=1e-12)
    with_metric = hardness_gap(model, (x,), metric=lambda y: y.sum())
    assert math.isclose(with_metric.gap, float(soft.sum() - out.sum()), rel_tol=1e-12)
    with pytest.raises(RuntimeError, match="boom"), hard_mode(model):
        raise RuntimeError("boom")
    assert model[0].config["mode"] == "smooth"


def test_annealing_closes_the_hardness_gap():
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
    layer = snn.SoftRank(dim=-1, softness=1.0)
    scheduler = SoftnessScheduler(layer, total_steps=5, final_factor=0.01)
    gaps = [hardness_gap(layer, x).gap]
    for _ in range(5):
        scheduler.step()
        gaps.append(hardness_gap(layer, x).gap)
    assert all(a > b for a, b in zip(gaps, gaps[1:]))
    assert gaps[-1] < 0.1 * gaps[0]
    want = st.rank(x, dim=-1, softness=0.01).sub(st.rank(x, dim=-1, mode="hard")).abs().mean()
    assert math.isclose(gaps[-1], float(want), rel_tol=1e-9)
