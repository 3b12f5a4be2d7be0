"""Layer tests for the elementwise, comparison, logic and selection families (``softtorch.nn``)."""

from __future__ import annotations

import copy
import inspect
import io
import math
import pickle
import time

import pytest
import torch
from _registry import SOFT_MODES
from torch import nn

import softtorch as st
import softtorch.nn as snn

# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _x(dtype, device):
    return torch.tensor([[-1.3, -0.4, -0.05, 0.0], [0.2, 0.45, 1.1, 2.6]], dtype=dtype, device=device)


def _y(dtype, device):
    return torch.tensor([[-1.0, -0.4, 0.3, 0.0], [0.25, -0.5, 1.1, 3.0]], dtype=dtype, device=device)


def _fuzzy(dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 4, generator=g, dtype=torch.float64).to(dtype).to(device)


def _dirichlet(shape, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = -torch.log(torch.rand(shape, generator=g, dtype=torch.float64))
    return (w / w.sum(-1, keepdim=True)).to(dtype).to(device)


def unary(dtype, device):
    return (_x(dtype, device),)


def binary(dtype, device):
    return (_x(dtype, device), _y(dtype, device))


def fuzzy_unary(dtype, device):
    return (_fuzzy(dtype, device),)


def fuzzy_binary(dtype, device):
    return (_fuzzy(dtype, device), _fuzzy(dtype, device, seed=1))


def where_inputs(dtype, device):
    return (_fuzzy(dtype, device), _x(dtype, device), _y(dtype, device))


def take_along_dim_inputs(dtype, device):
    return (_x(dtype, device), _dirichlet((2, 3, 4), dtype, device))


def take_inputs(dtype, device):
    return (torch.randn(2, 3, dtype=dtype, device=device), _dirichlet((5, 6), dtype, device))


def index_select_inputs(dtype, device):
    return (torch.randn(3, 4, dtype=dtype, device=device), _dirichlet((4,), dtype, device))


def narrow_inputs(dtype, device):
    return (torch.randn(3, 5, dtype=dtype, device=device), _dirichlet((5,), dtype, device))


# --------------------------------------------------------------------------------------------
# The table: (layer class, constructor kwargs, inputs, equivalent function call, expected repr)
# --------------------------------------------------------------------------------------------

LAYERS = {
    "SoftHeaviside": (
        snn.SoftHeaviside,
        {"softness": 0.2, "mode": "c1"},
        unary,
        lambda x: st.heaviside(x, softness=0.2, mode="c1"),
        "SoftHeaviside(softness=0.2, mode='c1')",
    ),
    "SoftSign": (
        snn.SoftSign,
        {"softness": 0.3, "mode": "c2"},
        unary,
        lambda x: st.sign(x, softness=0.3, mode="c2"),
        "SoftSign(softness=0.3, mode='c2')",
    ),
    "SoftAbs": (
        snn.SoftAbs,
        {"mode": "c0"},
        unary,
        lambda x: st.abs(x, mode="c0"),
        "SoftAbs(mode='c0')",
    ),
    "SoftReLU": (
        snn.SoftReLU,
        {"softness": 0.1, "mode": "c1", "gated": True},
        unary,
        lambda x: st.relu(x, softness=0.1, mode="c1", gated=True),
        "SoftReLU(mode='c1', gated=True)",
    ),
    "SoftClamp": (
        snn.SoftClamp,
        {"min": -0.5, "max": 0.5},
        unary,
        lambda x: st.clamp(x, -0.5, 0.5),
        "SoftClamp(min=-0.5, max=0.5)",
    ),
    "SoftRound": (
        snn.SoftRound,
        {"softness": 0.2, "neighbor_radius": 3},
        unary,
        lambda x: st.round(x, softness=0.2, neighbor_radius=3),
        "SoftRound(softness=0.2, neighbor_radius=3)",
    ),
    "SoftGreater": (
        snn.SoftGreater,
        {"softness": 0.5, "mode": "c0", "epsilon": 1e-3},
        binary,
        lambda x, y: st.greater(x, y, softness=0.5, mode="c0", epsilon=1e-3),
        "SoftGreater(softness=0.5, mode='c0', epsilon=0.001)",
    ),
    "SoftGreaterEqual": (
        snn.SoftGreaterEqual,
        {"mode": "c2"},
        binary,
        lambda x, y: st.greater_equal(x, y, mode="c2"),
        "SoftGreaterEqual(mode='c2')",
    ),
    "SoftLess": (
        snn.SoftLess,
        {},
        binary,
        lambda x, y: st.less(x, y),
        "SoftLess()",
    ),
    "SoftLessEqual": (
        snn.SoftLessEqual,
        {"softness": 0.05},
        binary,
        lambda x, y: st.less_equal(x, y, softness=0.05),
        "SoftLessEqual(softness=0.05)",
    ),
    "SoftEqual": (
        snn.SoftEqual,
        {"mode": "c1"},
        binary,
        lambda x, y: st.eq(x, y, mode="c1"),
        "SoftEqual(mode='c1')",
    ),
    "SoftNotEqual": (
        snn.SoftNotEqual,
        {"softness": 0.2},
        binary,
        lambda x, y: st.not_equal(x, y, softness=0.2),
        "SoftNotEqual(softness=0.2)",
    ),
    "SoftIsClose": (
        snn.SoftIsClose,
        {"rtol": 0.01, "atol": 0.05, "mode": "c2"},
        binary,
        lambda x, y: st.isclose(x, y, rtol=0.01, atol=0.05, mode="c2"),
        "SoftIsClose(rtol=0.01, atol=0.05, mode='c2')",
    ),
    "SoftLogicalAnd": (
        snn.SoftLogicalAnd,
        {"use_geometric_mean": True},
        fuzzy_binary,
        lambda x, y: st.logical_and(x, y, use_geometric_mean=True),
        "SoftLogicalAnd(use_geometric_mean=True)",
    ),
    "SoftLogicalOr": (
        snn.SoftLogicalOr,
        {},
        fuzzy_binary,
        lambda x, y: st.logical_or(x, y),
        "SoftLogicalOr()",
    ),
    "SoftLogicalXor": (
        snn.SoftLogicalXor,
        {},
        fuzzy_binary,
        lambda x, y: st.logical_xor(x, y),
        "SoftLogicalXor()",
    ),
    "SoftLogicalNot": (
        snn.SoftLogicalNot,
        {},
        fuzzy_unary,
        lambda x: st.logical_not(x),
        "SoftLogicalNot()",
    ),
    "SoftAll": (
        snn.SoftAll,
        {"dim": 0, "keepdim": True},
        fuzzy_unary,
        lambda x: st.all(x, dim=0, keepdim=True),
        "SoftAll(dim=0, keepdim=True)",
    ),
    "SoftAny": (
        snn.SoftAny,
        {"dim": -1, "use_geometric_mean": True},
        fuzzy_unary,
        lambda x: st.any(x, dim=-1, use_geometric_mean=True),
        "SoftAny(dim=-1, use_geometric_mean=True)",
    ),
    "SoftWhere": (
        snn.SoftWhere,
        {},
        where_inputs,
        lambda c, x, y: st.where(c, x, y),
        "SoftWhere()",
    ),
    "SoftTakeAlongDim": (
        snn.SoftTakeAlongDim,
        {"dim": 1},
        take_along_dim_inputs,
        lambda x, p: st.take_along_dim(x, p, dim=1),
        "SoftTakeAlongDim(dim=1)",
    ),
    "SoftTake": (
        snn.SoftTake,
        {},
        take_inputs,
        lambda x, p: st.take(x, p),
        "SoftTake()",
    ),
    "SoftIndexSelect": (
        snn.SoftIndexSelect,
        {"dim": -1, "keepdim": False},
        index_select_inputs,
        lambda x, p: st.index_select(x, p, dim=-1, keepdim=False),
        "SoftIndexSelect(dim=-1, keepdim=False)",
    ),
    "SoftNarrow": (
        snn.SoftNarrow,
        {"length": 2, "dim": 1},
        narrow_inputs,
        lambda x, p: st.narrow(x, p, 2, dim=1),
        "SoftNarrow(length=2, dim=1)",
    ),
}

WITH_MODE = [name for name, entry in LAYERS.items() if "softness" in inspect.signature(entry[0]).parameters]
#: name -> the functional with the same config, called with mode/softness keywords
FUNCTIONS = {
    "SoftHeaviside": lambda *t, **kw: st.heaviside(*t, **kw),
    "SoftSign": lambda *t, **kw: st.sign(*t, **kw),
    "SoftAbs": lambda *t, **kw: st.abs(*t, **kw),
    "SoftReLU": lambda *t, **kw: st.relu(*t, gated=True, **kw),
    "SoftClamp": lambda *t, **kw: st.clamp(*t, -0.5, 0.5, **kw),
    "SoftRound": lambda *t, **kw: st.round(*t, neighbor_radius=3, **kw),
    "SoftGreater": lambda *t, **kw: st.greater(*t, epsilon=1e-3, **kw),
    "SoftGreaterEqual": lambda *t, **kw: st.greater_equal(*t, **kw),
    "SoftLess": lambda *t, **kw: st.less(*t, **kw),
    "SoftLessEqual": lambda *t, **kw: st.less_equal(*t, **kw),
    "SoftEqual": lambda *t, **kw: st.eq(*t, **kw),
    "SoftNotEqual": lambda *t, **kw: st.not_equal(*t, **kw),
    "SoftIsClose": lambda *t, **kw: st.isclose(*t, rtol=0.01, atol=0.05, **kw),
}


def build(name, **overrides):
    cls, kwargs, *_ = LAYERS[name]
    return cls(**{**kwargs, **overrides})


def inputs_of(name, dtype=torch.float32, device="cpu"):
    torch.manual_seed(0)
    return LAYERS[name][2](dtype, device)


def test_table_covers_every_layer_of_the_four_families():
    expected = {
        "SoftHeaviside", "SoftSign", "SoftAbs", "SoftReLU", "SoftClamp", "SoftRound",
        "SoftGreater", "SoftGreaterEqual", "SoftLess", "SoftLessEqual", "SoftEqual", "SoftNotEqual", "SoftIsClose",
        "SoftLogicalAnd", "SoftLogicalOr", "SoftLogicalXor", "SoftLogicalNot", "SoftAll", "SoftAny",
        "SoftWhere", "SoftTakeAlongDim", "SoftTake", "SoftIndexSelect", "SoftNarrow",
    }  # fmt: skip
    assert set(LAYERS) == expected
    for name in expected:
        assert name in snn.__all__
        assert issubclass(getattr(snn, name), snn.SoftModule)
    assert set(WITH_MODE) == set(FUNCTIONS)


# --------------------------------------------------------------------------------------------
# Layer equals function; hygiene
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_equals_function(name, dtype, device):
    layer = build(name)
    inputs = inputs_of(name, dtype, device)
    out = layer(*inputs)
    expected = LAYERS[name][3](*inputs)
    assert out.dtype == expected.dtype == dtype
    assert torch.equal(out, expected)


@pytest.mark.parametrize("name", list(LAYERS))
def test_repr_shows_the_non_default_config(name):
    assert repr(build(name)) == LAYERS[name][4]


@pytest.mark.parametrize("name", WITH_MODE)
def test_repr_of_softness_variants(name):
    learnable = repr(build(name, learnable=True, straight_through=True))
    assert learnable.endswith("straight_through=True, learnable=True)")
    per_channel = repr(build(name, softness=torch.tensor([[0.1], [0.2]])))
    assert "softness=[0.1, 0.2]" in per_channel
    wide = repr(build(name, softness=torch.full((3, 4), 0.5)))
    assert "softness=<tensor of shape (3, 4)>" in wide


def _variants(name):
    """The layer as configured, plus (when it has a softness) a learnable and a per-channel one."""
    layers = {"plain": build(name)}
    if name in WITH_MODE:
        learnable = build(name, learnable=True)
        with torch.no_grad():
            learnable.log_softness.add_(0.3)  # differ from the initial value
        layers["learnable"] = learnable
        layers["buffer"] = build(name, softness=torch.tensor([[0.15], [0.4]]))
    return layers


@pytest.mark.parametrize("name", list(LAYERS))
def test_state_dict_round_trip(name):
    inputs = inputs_of(name)
    for kind, layer in _variants(name).items():
        state = layer.state_dict()
        if kind == "learnable":
            assert list(state) == ["log_softness"]
        elif kind == "buffer":
            assert list(state) == ["softness_value"]
        else:
            assert list(state) == []
        fresh = build(name, learnable=True) if kind == "learnable" else build(name)
        if kind == "buffer":
            fresh = build(name, softness=torch.tensor([[1.0], [2.0]]))
        if kind != "plain":
            assert not torch.equal(fresh(*inputs), layer(*inputs))
        fresh.load_state_dict(state)
        assert torch.equal(fresh(*inputs), layer(*inputs)), kind


@pytest.mark.parametrize("name", list(LAYERS))
def test_pickle_and_deepcopy_round_trips(name):
    inputs = inputs_of(name)
    for kind, layer in _variants(name).items():
        expected = layer(*inputs)
        for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
            assert type(clone) is type(layer)
            assert repr(clone) == repr(layer)
            assert torch.equal(clone(*inputs), expected), kind
        buffer = io.BytesIO()
        torch.save(layer, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
        assert torch.equal(loaded(*inputs), expected), kind


@pytest.mark.parametrize("name", list(LAYERS))
def test_forward_with_wrong_number_of_inputs_raises(name):
    layer = build(name)
    inputs = inputs_of(name)
    with pytest.raises(TypeError, match=type(layer).__name__):
        layer(*inputs, inputs[0])


def test_layers_chain_in_sequential(device):
    model = nn.Sequential(snn.SoftClamp(-0.5, 0.5, mode="c1"), snn.SoftReLU(softness=0.05), snn.SoftRound(softness=0.3))
    x = _x(torch.float32, device)
    expected = st.round(st.relu(st.clamp(x, -0.5, 0.5, mode="c1"), softness=0.05), softness=0.3)
    assert torch.equal(model(x), expected)


# --------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: snn.SoftReLU(mode="soft"), ValueError, r"mode.*'hard', 'smooth', 'c0', 'c1', 'c2'.*'soft'"),
        (lambda: snn.SoftReLU(softness=0), ValueError, r"softness.*\b0\b"),
        (lambda: snn.SoftReLU(softness=-1.0), ValueError, r"softness.*-1"),
        (lambda: snn.SoftReLU(softness=float("nan")), ValueError, r"softness.*nan"),
        (lambda: snn.SoftReLU(softness=float("inf")), ValueError, r"softness.*inf"),
        (lambda: snn.SoftReLU(softness="0.1"), TypeError, r"softness"),
        (lambda: snn.SoftReLU(softness=torch.tensor([0.1, -0.2])), ValueError, r"softness.*-0\.2"),
        (lambda: snn.SoftGreater(mode="C1"), ValueError, r"mode"),
        (lambda: snn.SoftIsClose(softness=0.0), ValueError, r"softness"),
        (lambda: snn.SoftClamp(-0.5, 0.5, mode="hardest"), ValueError, r"mode"),
        (lambda: snn.SoftReLU(softness=0.1, learnable=True, mode="soft"), ValueError, r"mode"),
        (lambda: snn.SoftNarrow(), TypeError, r"length"),
        (lambda: snn.SoftIndexSelect(), TypeError, r"dim"),
        (lambda: snn.SoftReLU(bogus=1), TypeError, r"bogus"),
        (lambda: snn.SoftLogicalAnd(softness=0.1), TypeError, r"softness"),
    ],
)
def test_invalid_config_fails_at_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: snn.SoftRound(neighbor_radius=0), ValueError, r"neighbor_radius"),
        (lambda: snn.SoftIsClose(rtol=-1.0), ValueError, r"rtol"),
        (lambda: snn.SoftNarrow(length=-1), ValueError, r"length"),
        (lambda: snn.SoftAll(dim=1.5), TypeError, r"dim"),
    ],
    ids=["round_radius", "isclose_rtol", "narrow_length", "all_dim"],
)
def test_invalid_function_config_fails_at_construction(make, exc, match):
    # "a bad layer fails when built, not on its first forward" (SPEC 6.2)
    with pytest.raises(exc, match=match):
        make()


def test_factory_kwargs_place_the_softness():
    layer = snn.SoftReLU(softness=0.1, learnable=True, dtype=torch.float64)
    assert layer.log_softness.dtype == torch.float64
    assert layer.softness.dtype == torch.float64
    layer = snn.SoftReLU(softness=torch.tensor([[0.1], [0.2]]), dtype=torch.float64)
    assert layer.softness_value.dtype == torch.float64


# --------------------------------------------------------------------------------------------
# Learnable softness
# --------------------------------------------------------------------------------------------


def _training_input(device="cpu"):
    return torch.linspace(-2, 2, 41, device=device)


def test_learnable_softness_is_exactly_one_parameter():
    layer = snn.SoftReLU(softness=0.1, mode="c1", learnable=True)
    params = list(layer.parameters())
    assert len(params) == 1
    assert params[0].requires_grad
    torch.testing.assert_close(layer.softness, torch.tensor(0.1))
    # non-learnable layers have none
    assert list(snn.SoftReLU(softness=0.1).parameters()) == []
    assert list(snn.SoftReLU(softness=torch.tensor([[0.1], [0.2]])).parameters()) == []


LOSSES = {
    "output_sum": lambda layer, x: layer(x).sum(),
    "softness_sum": lambda layer, x: layer.softness.sum(),
    "log_softness": lambda layer, x: torch.log(layer.softness).sum(),
}


@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_learnable_softness_stays_positive_under_aggressive_sgd(loss_name, device):
    layer = snn.SoftReLU(softness=0.1, mode="c1", learnable=True).to(device)
    x = _training_input(device)
    opt = torch.optim.SGD(layer.parameters(), lr=10.0)
    start = layer.softness.item()
    for _ in range(100):
        opt.zero_grad()
        loss = LOSSES[loss_name](layer, x)
        loss.backward()
        assert torch.isfinite(layer.log_softness.grad).all()
        opt.step()
    s = layer.softness
    assert torch.isfinite(s).all() and (s > 0).all(), s
    assert s.item() < start  # the loss pushed it down
    out = layer(x)
    assert torch.isfinite(out).all()
    assert torch.isfinite(layer.log_softness).all()


def test_gradient_reaches_the_softness_parameter(device):
    layer = snn.SoftReLU(softness=0.1, mode="c1", learnable=True).to(device)
    x = _training_input(device)
    layer(x).sum().backward()
    grad = layer.log_softness.grad
    assert grad is not None and grad.abs().item() > 0
    # d/d(log s) of sum relu_s(x) = s * d/ds, compared with the function's own softness gradient
    s = torch.tensor(0.1, device=device, requires_grad=True)
    st.relu(x, softness=s, mode="c1").sum().backward()
    torch.testing.assert_close(grad, 0.1 * s.grad, rtol=1e-5, atol=1e-7)


def test_reset_parameters_restores_initial_value():
    layer = snn.SoftReLU(softness=0.1, mode="c1", learnable=True)
    opt = torch.optim.SGD(layer.parameters(), lr=10.0)
    for _ in range(5):
        opt.zero_grad()
        torch.log(layer.softness).backward()
        opt.step()
    assert not math.isclose(layer.softness.item(), 0.1, rel_tol=1e-3)
    layer.reset_parameters()
    torch.testing.assert_close(layer.softness, torch.tensor(0.1))
    torch.testing.assert_close(layer.log_softness.detach(), torch.log(torch.tensor(0.1)))
    # per-channel buffer too
    buffered = snn.SoftReLU(softness=torch.tensor([[0.1], [0.2]]))
    with torch.no_grad():
        buffered.softness_value.mul_(3)
    buffered.reset_parameters()
    torch.testing.assert_close(buffered.softness, torch.tensor([[0.1], [0.2]]))


def test_to_float64_moves_the_parameter():
    layer = snn.SoftReLU(softness=0.1, mode="c1", learnable=True).to(torch.float64)
    assert layer.log_softness.dtype == torch.float64
    assert layer.softness.dtype == torch.float64
    x = _training_input().double()
    out = layer(x)
    assert out.dtype == torch.float64
    out.sum().backward()
    assert layer.log_softness.grad.dtype == torch.float64
    layer.reset_parameters()
    assert layer.log_softness.dtype == torch.float64
    torch.testing.assert_close(layer.softness, torch.tensor(0.1, dtype=torch.float64))
    buffered = snn.SoftReLU(softness=torch.tensor([[0.1], [0.2]])).to(torch.float64)
    assert buffered.softness.dtype == torch.float64


def test_to_device_moves_the_parameter(device):
    layer = snn.SoftReLU(softness=0.1, learnable=True).to(device)
    assert layer.log_softness.device.type == device.type
    assert layer(_training_input(device)).device.type == device.type


PER_CHANNEL = ["SoftHeaviside", "SoftReLU", "SoftClamp", "SoftRound", "SoftGreater", "SoftEqual", "SoftIsClose"]


@pytest.mark.parametrize("learnable", [False, True], ids=["buffer", "parameter"])
@pytest.mark.parametrize("name", PER_CHANNEL)
def test_per_channel_softness(name, learnable, device):
    channels = torch.tensor([0.05, 0.3, 1.5], dtype=torch.float64)
    layer = build(name, softness=channels.reshape(3, 1), learnable=learnable, dtype=torch.float64).to(device)
    if learnable:
        assert [n for n, _ in layer.named_parameters()] == ["log_softness"]
        assert layer.log_softness.shape == (3, 1)
    else:
        assert [n for n, _ in layer.named_buffers()] == ["softness_value"]
    g = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(2, 3, 7, generator=g, dtype=torch.float64).to(device) for _ in LAYERS[name][2](torch.float64, "cpu")
    ]
    out = layer(*tensors)
    assert out.shape == (2, 3, 7)
    fn, mode = FUNCTIONS[name], LAYERS[name][1].get("mode", "smooth")
    for c in range(3):
        expected = fn(*(t[:, c, :] for t in tensors), softness=float(channels[c]), mode=mode)
        torch.testing.assert_close(out[:, c, :], expected, rtol=1e-10, atol=1e-12)
    if learnable:
        weights = torch.randn(2, 3, 7, generator=g, dtype=torch.float64).to(device)
        (out * weights).sum().backward()
        grad = layer.log_softness.grad
        assert grad.shape == (3, 1)
        for c in range(3):
            s = torch.tensor(float(channels[c]), dtype=torch.float64, device=device, requires_grad=True)
            (fn(*(t[:, c, :] for t in tensors), softness=s, mode=mode) * weights[:, c, :]).sum().backward()
            torch.testing.assert_close(grad[c, 0], channels[c].item() * s.grad, rtol=1e-8, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Straight-through layers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", WITH_MODE)
def test_straight_through_layer(name, mode, dtype, device, bitwise_equal, tol):
    layer = build(name, straight_through=True, mode=mode, softness=0.3)
    base = inputs_of(name, dtype, device)
    fn = FUNCTIONS[name]
    inputs = [t.clone().requires_grad_(True) for t in base]
    out = layer(*inputs)
    bitwise_equal(out.detach(), fn(*base, softness=0.3, mode="hard"))
    weights = torch.linspace(-1, 2, out.numel(), dtype=dtype, device=device).reshape(out.shape)
    grads = torch.autograd.grad(out, inputs, weights)
    ref_inputs = [t.clone().requires_grad_(True) for t in base]
    ref_grads = torch.autograd.grad(fn(*ref_inputs, softness=0.3, mode=mode), ref_inputs, weights)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, **tol)
    assert sum(g.abs().sum() for g in ref_grads) > 0


def test_straight_through_layer_learns_softness():
    layer = snn.SoftHeaviside(softness=0.3, mode="c1", straight_through=True, learnable=True)
    x = _x(torch.float32, "cpu")
    out = layer(x)
    assert torch.equal(out.detach(), st.heaviside(x, mode="hard"))
    out.sum().backward()
    assert layer.log_softness.grad is not None and layer.log_softness.grad.abs() > 0


def test_straight_through_in_hard_mode_is_hard():
    layer = snn.SoftSign(mode="hard", straight_through=True)
    x = _x(torch.float32, "cpu").requires_grad_(True)
    out = layer(x)
    assert torch.equal(out.detach(), torch.sign(x.detach()))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# --------------------------------------------------------------------------------------------
# torch.compile
# --------------------------------------------------------------------------------------------

COMPILED = {
    "SoftReLU_learnable": lambda: snn.SoftReLU(softness=0.1, mode="c1", learnable=True),
    "SoftClamp": lambda: build("SoftClamp"),
    "SoftGreater": lambda: build("SoftGreater"),
    "SoftRound": lambda: build("SoftRound"),
    "SoftTakeAlongDim": lambda: build("SoftTakeAlongDim"),
}
_INPUT_OF = {"SoftReLU_learnable": "SoftReLU"}


# Importing inductor triggers a torch-internal DeprecationWarning (torch.jit.script_method).
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", list(COMPILED))
def test_torch_compile_matches_eager(name):
    torch._dynamo.reset()
    layer = COMPILED[name]()
    inputs = inputs_of(_INPUT_OF.get(name, name))
    start = time.perf_counter()
    compiled = torch.compile(layer)
    out = compiled(*inputs)
    elapsed = time.perf_counter() - start
    torch.testing.assert_close(out, layer(*inputs), rtol=1e-6, atol=1e-6)
    torch._dynamo.reset()
    assert elapsed < 45, f"compiling {name} took {elapsed:.1f} s"
