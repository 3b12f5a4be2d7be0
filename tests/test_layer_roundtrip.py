"""Round-trips of every layer (SPEC 6.2, 6.3; STYLE 12): state_dict, pickle, deepcopy, ``.to(dtype)``,
``repr`` and ``torch.compile``, for every class in :mod:`softtorch.nn` and its learnable variant, and
learnable softness that stays positive and finite under aggressive optimizer steps and survives
``load_state_dict``.

``tests/test_layers.py`` and ``tests/test_sorting_layers.py`` check these per family on hand-picked
configurations; this file runs one table over all 36 layers so a new layer or a new config name
cannot slip past.
"""

from __future__ import annotations

import copy
import inspect
import io
import math
import pickle

import pytest
import torch
from helpers import assert_grads_close
from torch import nn

import softtorch.nn as snn

F64 = torch.float64
LAYERS = [name for name in snn.__all__ if name != "SoftModule"]
WITH_SOFTNESS = [name for name in LAYERS if getattr(snn, name)._uses_softness]
SORTING = {
    "SoftMax", "SoftMin", "SoftArgmax", "SoftArgmin", "SoftSort", "SoftArgsort", "SoftTopK", "SoftRank",
    "SoftQuantile", "SoftArgquantile", "SoftPercentile", "SoftArgpercentile", "SoftMedian", "SoftArgmedian",
}  # fmt: skip

#: Non-default configuration per layer, so that round-trips carry something to lose.
CONFIG = {
    "SoftHeaviside": {"softness": 0.2, "mode": "c1"},
    "SoftSign": {"softness": 0.3, "mode": "c2"},
    "SoftAbs": {"mode": "c0"},
    "SoftReLU": {"mode": "c1", "gated": True},
    "SoftClamp": {"min": -0.5, "max": 0.7, "mode": "c2"},
    "SoftRound": {"softness": 0.25, "neighbor_radius": 2},
    "SoftGreater": {"softness": 0.2, "mode": "c0", "epsilon": 1e-6},
    "SoftGreaterEqual": {"mode": "c1"},
    "SoftLess": {"mode": "c2"},
    "SoftLessEqual": {"softness": 0.5},
    "SoftEqual": {"softness": 0.4, "mode": "c1"},
    "SoftNotEqual": {"softness": 0.4},
    "SoftIsClose": {"rtol": 0.1, "atol": 0.05, "softness": 0.3, "mode": "c2"},
    "SoftLogicalAnd": {"use_geometric_mean": True},
    "SoftLogicalOr": {},
    "SoftLogicalXor": {"use_geometric_mean": True},
    "SoftLogicalNot": {},
    "SoftAll": {"dim": 0, "keepdim": True},
    "SoftAny": {"use_geometric_mean": True},
    "SoftWhere": {},
    "SoftTakeAlongDim": {"dim": 1},
    "SoftTake": {},
    "SoftIndexSelect": {"dim": 1, "keepdim": False},
    "SoftNarrow": {"length": 2, "dim": 1},
    "SoftMax": {"softness": 0.3, "mode": "c1", "return_indices": True},
    "SoftMin": {"dim": 0, "keepdim": True, "method": "neuralsort"},
    "SoftArgmax": {"method": "sorting_network", "mode": "c2"},
    "SoftArgmin": {"softness": 0.5, "standardize": False},
    "SoftSort": {"descending": True, "method": "softsort", "mode": "c0", "return_indices": True},
    "SoftArgsort": {"method": "sorting_network", "return_log_probs": True, "mode": "smooth"},
    "SoftTopK": {"k": 2, "largest": False, "method": "softsort", "mode": "c1"},
    "SoftRank": {"descending": False, "method": "sorting_network", "softness": 0.2},
    "SoftQuantile": {"q": torch.tensor([0.25, 0.5]), "interpolation": "midpoint", "mode": "c2"},
    "SoftArgquantile": {"q": 0.7, "method": "softsort", "keepdim": True},
    "SoftPercentile": {"q": torch.tensor([10.0, 60.0]), "interpolation": "lower", "mode": "c1"},
    "SoftArgpercentile": {"q": 35.0, "method": "ot", "softness": 0.3},
    "SoftMedian": {"method": "sorting_network", "mode": "c1", "return_indices": True},
    "SoftArgmedian": {"softness": 0.35, "return_log_probs": True},
}


def build(name, **overrides):
    return getattr(snn, name)(**{**CONFIG[name], **overrides})


def inputs_of(name, dtype=torch.float32, device="cpu"):
    """Inputs for the layer's forward: a batch (3, 5) of distinct values, soft booleans or indices."""
    g = torch.Generator().manual_seed(1)

    def values(*shape):
        grid = torch.rand(shape, generator=g).argsort(-1).to(F64)
        return (grid + 0.3 * torch.rand(shape, generator=g, dtype=F64) - 2.0).to(dtype=dtype, device=device)

    def probs(*shape):
        w = torch.rand(shape, generator=g, dtype=F64) + 0.1
        return (w / w.sum(-1, keepdim=True)).to(dtype=dtype, device=device)

    special = {
        "SoftWhere": lambda: (probs(3, 5), values(3, 5), values(3, 5)),
        "SoftTakeAlongDim": lambda: (values(3, 5), probs(3, 2, 5)),
        "SoftTake": lambda: (values(3, 5), probs(4, 15)),
        "SoftIndexSelect": lambda: (values(3, 5), probs(5)),
        "SoftNarrow": lambda: (values(3, 5), probs(5)),
    }
    if name in special:
        return special[name]()
    if name.startswith("SoftLogical") or name in ("SoftAll", "SoftAny"):
        return tuple(probs(3, 5) for _ in getattr(snn, name).inputs)
    return tuple(values(3, 5) for _ in getattr(snn, name).inputs)


def tensors_of(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for part in out if part is not None for t in tensors_of(part)]


def assert_same(got, expected):
    got, expected = tensors_of(got), tensors_of(expected)
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        assert torch.equal(g, e)


def variants(name):
    """(id, layer factory): the configured layer; with a softness, also learnable and per-row."""
    out = [("plain", lambda: build(name))]
    if name in WITH_SOFTNESS:

        def learnable():
            layer = build(name, learnable=True)
            with torch.no_grad():
                layer.log_softness.add_(0.4)  # away from the initial value
            return layer

        dim = build(name).config.get("dim", -1)
        shape = [3, 5]
        if name in SORTING:
            shape[dim] = 1
        rows = torch.linspace(0.15, 0.6, math.prod(shape)).reshape(shape)
        out.append(("learnable", learnable))
        out.append(("per_row", lambda: build(name, softness=rows)))
    return out


PARAMS = [pytest.param(name, kind, make, id=f"{name}-{kind}") for name in LAYERS for kind, make in variants(name)]


def test_table_covers_every_layer():
    assert set(CONFIG) == set(LAYERS)
    assert len(LAYERS) == 38


# -- state_dict, pickle, deepcopy, torch.save ----------------------------------------------------------


@pytest.mark.parametrize("name, kind, make", PARAMS)
def test_state_dict_round_trip(name, kind, make, device):
    layer = make().to(device)
    x = inputs_of(name, device=device)
    state = layer.state_dict()
    expected_keys = {"plain": [], "learnable": ["log_softness"], "per_row": ["softness_value"]}[kind]
    assert list(state) == expected_keys
    fresh = make().to(device)
    if kind == "learnable":
        with torch.no_grad():
            fresh.log_softness.fill_(3.0)  # a different state, which load_state_dict must replace
        assert not torch.equal(fresh.softness, layer.softness)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert_same(fresh(*x), layer(*x))
    if kind != "plain":
        torch.testing.assert_close(fresh.softness, layer.softness, rtol=0, atol=0)


@pytest.mark.parametrize("name, kind, make", PARAMS)
def test_pickle_and_deepcopy_round_trips(name, kind, make, device):
    layer = make().to(device)
    x = inputs_of(name, device=device)
    expected = layer(*x)
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert type(clone) is type(layer)
        assert repr(clone) == repr(layer)
        assert_same(clone(*x), expected)
        if kind == "learnable":
            assert clone.log_softness is not layer.log_softness
            assert [n for n, _ in clone.named_parameters()] == ["log_softness"]


# -- .to(dtype), repr --------------------------------------------------------------------------------


@pytest.mark.parametrize("name, kind, make", PARAMS)
def test_to_float64_moves_softness_and_runs_on_float64(name, kind, make, device):
    layer = make().to(device).to(F64)
    for t in list(layer.parameters()) + list(layer.buffers()):
        assert t.dtype == F64 and t.device.type == device.type
    if kind != "plain":
        assert layer.softness.dtype == F64
    x32 = inputs_of(name, device=device)
    x64 = tuple(t.to(F64) for t in x32)
    out = tensors_of(layer(*x64))
    assert all(t.dtype == F64 for t in out), [t.dtype for t in out]
    reference = tensors_of(make().to(device)(*x32))
    for o, r in zip(out, reference):
        torch.testing.assert_close(o.float(), r, rtol=1e-4, atol=1e-5)
    if kind == "learnable":
        tensors_of(layer(*x64))[0].sum().backward()
        assert layer.log_softness.grad.dtype == F64
        layer.reset_parameters()
        assert layer.log_softness.dtype == F64


@pytest.mark.parametrize("name", LAYERS)
def test_repr_shows_the_config(name):
    layer = build(name)
    text = repr(layer)
    assert text.startswith(f"{name}(") and text.endswith(")")
    signature = inspect.signature(getattr(snn, name))
    for arg in signature.parameters:
        if arg in ("device", "dtype"):
            continue
        if arg == "softness":
            shown = f"softness={CONFIG[name].get('softness', 0.1)!r}"
        elif arg in ("straight_through", "learnable"):
            shown = f"{arg}=False"
        elif arg == "return_indices":
            shown = f"return_indices={CONFIG[name].get('return_indices', False)!r}"
        else:
            value = CONFIG[name].get(arg, signature.parameters[arg].default)
            shown = f"{arg}={value!r}"
        assert shown in text, (shown, text)
    if name in WITH_SOFTNESS:
        learnable = repr(build(name, learnable=True, straight_through=True, softness=0.25))
        assert "softness=0.25" in learnable and "straight_through=True, learnable=True" in learnable


# -- learnable softness under aggressive optimizers ---------------------------------------------------

PUSHES = {
    "to_zero": lambda layer, out: layer.softness.sum(),
    "to_infinity": lambda layer, out: -layer.softness.sum(),
    "through_output": lambda layer, out: sum((t * t).sum() for t in tensors_of(out) if t.is_floating_point()),
}
OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=1e3),
    "adam": lambda params: torch.optim.Adam(params, lr=1e3),
}


def _aggressive(name, push, optimizer, device, steps=4):
    layer = build(name, learnable=True).to(device)
    x = inputs_of(name, device=device)
    opt = OPTIMIZERS[optimizer](layer.parameters())
    for _ in range(steps):
        opt.zero_grad()
        out = layer(*x)
        PUSHES[push](layer, out).backward()
        assert torch.isfinite(layer.log_softness.grad).all(), layer.log_softness.grad
        opt.step()
        s = layer.softness.detach()
        assert torch.isfinite(s).all() and (s > 0).all(), s
        assert 1e-6 * (1 - 1e-5) <= float(s.min()) and float(s.max()) <= 1e6 * (1 + 1e-5)
        for t in tensors_of(layer(*x)):
            if layer.config.get("return_log_probs"):  # log-probabilities: -inf marks an exact zero
                assert not t.isnan().any() and (t < math.inf).all(), t
            else:
                assert torch.isfinite(t).all(), t
    return layer, x


LEARNABLE_CI = ["SoftReLU", "SoftEqual", "SoftSort", "SoftQuantile", "SoftArgmax"]


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("push", list(PUSHES))
@pytest.mark.parametrize(
    "name", [n if n in LEARNABLE_CI else pytest.param(n, marks=pytest.mark.full) for n in WITH_SOFTNESS]
)
def test_learnable_softness_survives_aggressive_steps_and_reloads(name, push, optimizer, device):
    layer, x = _aggressive(name, push, optimizer, device)
    s = layer.softness.detach()
    if push == "to_zero":
        assert float(s) < 1e-3  # it did move, to the bottom of the range
    elif push == "to_infinity":
        assert float(s) > 1e3
    fresh = build(name, learnable=True).to(device)
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh.softness, layer.softness, rtol=0, atol=0)
    assert_same(fresh(*x), layer(*x))


@pytest.mark.parametrize("value", [1e4, -1e4, 1e10, -1e10, math.inf, -math.inf])
def test_learnable_softness_far_outside_its_range_is_clamped_exactly(value):
    """A log-softness far beyond the clamp (a wild step, a loaded checkpoint) gives the range bound,
    not a value rounded away from it (``raw + (clamped - raw)`` lost the bound above ~1e8) or NaN."""
    layer = snn.SoftSort(learnable=True)
    layer.load_state_dict({"log_softness": torch.tensor(value)})
    bound = torch.tensor(1e6 if value > 0 else 1e-6)
    torch.testing.assert_close(layer.softness.detach(), bound, rtol=1e-6, atol=0)
    layer.softness.backward()
    assert torch.isfinite(layer.log_softness.grad)
    out = layer(torch.randn(2, 5))
    assert torch.isfinite(out).all()


# -- torch.compile ------------------------------------------------------------------------------------


class Bundle(nn.Module):
    """Several layers, each called on its own inputs: one compile covers all of them."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, inputs):
        return [layer(*x) for layer, x in zip(self.layers, inputs)]


FAMILY_OF = {name: getattr(snn, name).__module__.rsplit(".", 1)[-1] for name in LAYERS}
BUNDLES = {}
for _name in LAYERS:
    BUNDLES.setdefault(FAMILY_OF[_name], []).append(_name)


def _compare_bundle(names, device, backend="aot_eager"):
    layers, inputs = [], []
    for name in names:
        for kind, make in variants(name):
            if kind == "per_row":
                continue
            layers.append(make().to(device))
            inputs.append(inputs_of(name, device=device))
    bundle = Bundle(layers)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(bundle, fullgraph=True, backend=backend)
        got, expected = compiled(inputs), bundle(inputs)
        for out_c, out_e in zip(got, expected):
            for c, e in zip(tensors_of(out_c), tensors_of(out_e)):
                torch.testing.assert_close(c, e, rtol=2e-6, atol=2e-6)
        params = list(bundle.parameters())
        if params:
            loss_c = sum(t.sum() for out in got for t in tensors_of(out) if t.requires_grad)
            loss_e = sum(t.sum() for out in expected for t in tensors_of(out) if t.requires_grad)
            assert_grads_close(loss_c, loss_e, params, params, rtol=1e-4, atol=1e-5)
    finally:
        torch._dynamo.reset()


_SORT_CI = ["SoftSort", "SoftTopK", "SoftArgmax", "SoftQuantile"]
COMPILE_PARAMS = [
    pytest.param(sorted(names), id=family)
    for family, names in BUNDLES.items()
    if family not in ("reduction", "sorting")
]
COMPILE_PARAMS.append(
    pytest.param([n for n in BUNDLES["reduction"] + BUNDLES["sorting"] if n in _SORT_CI], id="sort-ci")
)
COMPILE_PARAMS.append(
    pytest.param(
        [n for n in BUNDLES["reduction"] + BUNDLES["sorting"] if n not in _SORT_CI],
        id="sort-rest",
        marks=pytest.mark.full,
    )
)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("names", COMPILE_PARAMS)
def test_compile_fullgraph_equals_eager(names, device):
    _compare_bundle([n for n in names if n in LAYERS], device)
