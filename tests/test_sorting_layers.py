"""Layers of the reduction and sorting families: SoftMax, SoftMin, SoftArgmax, SoftArgmin, SoftSort,
SoftArgsort, SoftTopK, SoftRank, SoftQuantile, SoftArgquantile, SoftMedian, SoftArgmedian.

Each layer equals its function with the same configuration, chains in ``nn.Sequential``, survives
state_dict / pickle / deepcopy, shows its configuration in ``repr``, learns its softness and runs
straight-through and under ``torch.compile``.
"""

from __future__ import annotations

import copy
import inspect
import io
import itertools
import pickle

import pytest
import torch
from _registry import DIRECT_INDEX, MODES, SOFT_MODES
from torch import nn

import softtorch as st
import softtorch.nn as snn

METHODS = DIRECT_INDEX
F64 = torch.float64


def distinct(shape, dim=-1, seed=0, dtype=F64):
    """A random permutation of a grid along ``dim`` plus noise: pairwise gaps >= 0.75."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(shape, generator=g).argsort(dim).to(dtype)
    return grid + 0.25 * torch.rand(shape, generator=g, dtype=dtype) - 0.4 * shape[dim]


# layer class, positional args of the layer, the function and its call with the same config, whether the
# function returns (values, indices) of which the layer keeps the values
Q2 = torch.tensor([0.25, 0.6], dtype=F64)
LAYERS = {
    "SoftMax": (snn.SoftMax, (-1,), lambda x, **k: st.max(x, -1, **k), True),
    "SoftMin": (snn.SoftMin, (1,), lambda x, **k: st.min(x, 1, **k), True),
    "SoftArgmax": (snn.SoftArgmax, (-1,), lambda x, **k: st.argmax(x, -1, **k), False),
    "SoftArgmin": (snn.SoftArgmin, (0,), lambda x, **k: st.argmin(x, 0, **k), False),
    "SoftSort": (snn.SoftSort, (), lambda x, **k: st.sort(x, **k), True),
    "SoftArgsort": (snn.SoftArgsort, (1, True), lambda x, **k: st.argsort(x, 1, True, **k), False),
    "SoftTopK": (snn.SoftTopK, (3,), lambda x, **k: st.topk(x, 3, **k), True),
    "SoftRank": (snn.SoftRank, (-1,), lambda x, **k: st.rank(x, -1, **k), False),
    "SoftQuantile": (snn.SoftQuantile, (Q2, -1), lambda x, **k: st.quantile(x, Q2, -1, **k), False),
    "SoftArgquantile": (snn.SoftArgquantile, (0.3, -1), lambda x, **k: st.argquantile(x, 0.3, -1, **k), False),
    "SoftMedian": (snn.SoftMedian, (-1,), lambda x, **k: st.median(x, -1, **k), True),
    "SoftArgmedian": (snn.SoftArgmedian, (-1,), lambda x, **k: st.argmedian(x, -1, **k), False),
}
NAMES = sorted(LAYERS)


def build(name, **kwargs):
    cls, args, _, _ = LAYERS[name]
    return cls(*args, **kwargs)


def call_function(name, x, **kwargs):
    _, _, fn, pair = LAYERS[name]
    out = fn(x, **kwargs)
    return out.values if pair and not kwargs.get("return_indices", False) else out


def x_input(seed=0, dtype=F64):
    return distinct((2, 3, 6), seed=seed, dtype=dtype)


def assert_same(a, b, exact=True):
    if isinstance(a, tuple):
        assert type(a) is type(b)
        for u, v in zip(a, b):
            assert_same(u, v, exact)
    elif a is None:
        assert b is None
    elif exact:
        assert torch.equal(a, b)
    else:
        torch.testing.assert_close(a, b)


# -- the layer is its function ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", NAMES)
def test_layer_equals_function(name, method, mode):
    x = x_input(1)
    config = {"softness": 0.3, "mode": mode, "method": method}
    layer = build(name, **config)
    fn_config = dict(config)
    if name == "SoftSort":
        fn_config["return_indices"] = False  # the layer's default
    assert_same(layer(x), call_function(name, x, **fn_config))


@pytest.mark.parametrize("name", ["SoftMax", "SoftMin", "SoftSort", "SoftTopK", "SoftMedian"])
def test_return_indices_gives_the_namedtuple(name):
    x = x_input(2)
    for mode in ("hard", "c1"):
        layer = build(name, mode=mode, return_indices=True)
        out = layer(x)
        ref = LAYERS[name][2](x, mode=mode)
        assert type(out) is type(ref)
        assert_same(out, ref)
        values = build(name, mode=mode)(x)
        assert isinstance(values, torch.Tensor)
        assert torch.equal(values, ref.values)


def test_layer_defaults():
    sig = inspect.signature(snn.SoftSort)
    want = {
        "dim": -1,
        "descending": False,
        "softness": 0.1,
        "mode": "smooth",
        "method": "neuralsort",
        "standardize": True,
        "straight_through": False,
        "learnable": False,
        "return_indices": False,
    }
    for arg, default in want.items():
        assert sig.parameters[arg].default == default, arg
    assert inspect.signature(snn.SoftMax).parameters["method"].default == "softsort"
    assert inspect.signature(snn.SoftArgmin).parameters["method"].default == "softsort"
    assert inspect.signature(snn.SoftTopK).parameters["k"].default is inspect.Parameter.empty
    assert inspect.signature(snn.SoftQuantile).parameters["q"].default is inspect.Parameter.empty
    for cls in (snn.SoftMax, snn.SoftRank, snn.SoftQuantile, snn.SoftMedian, snn.SoftArgmedian):
        # the function's dim=None would mix the rows of a batch: the layer asks for dim
        assert inspect.signature(cls).parameters["dim"].default is inspect.Parameter.empty, cls
        with pytest.raises(TypeError, match=r"needs dim.*dim=-1"):
            cls(0.5) if cls is snn.SoftQuantile else cls()
    # defaults reproduce the function on the last dim
    x = x_input(3)
    assert torch.equal(snn.SoftSort()(x), st.sort(x).values)
    assert torch.equal(snn.SoftMax(dim=-1)(x), st.max(x, -1).values)
    assert torch.equal(snn.SoftRank(dim=-1)(x), st.rank(x, -1))
    assert torch.equal(snn.SoftMedian(dim=-1)(x), st.median(x, -1).values)
    assert "torch.nn.Softmax" in snn.SoftMax.__doc__


def test_every_layer_is_exported():
    for name in NAMES:
        assert name in snn.__all__
        assert issubclass(getattr(snn, name), snn.SoftModule)


def test_build_time_validation():
    """A bad layer fails when built (SPEC 6.2), naming the argument."""
    with pytest.raises(ValueError, match="mode must be one of"):
        snn.SoftSort(mode="soft")
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="softness"):
            snn.SoftRank(softness=bad, dim=-1)
    with pytest.raises(ValueError, match="softness"):
        snn.SoftSort(softness=torch.tensor([[0.1], [0.0]]))
    with pytest.raises(TypeError, match="softness"):
        snn.SoftTopK(2, softness="0.1")
    with pytest.raises(TypeError, match="k"):
        snn.SoftTopK()
    with pytest.raises(ValueError, match="k must be"):
        snn.SoftTopK(0)
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
        snn.SoftQuantile(1.5, dim=-1)
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
        snn.SoftArgquantile(torch.tensor([0.2, -0.1]), dim=-1)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        snn.SoftQuantile(0.5, interpolation="cubic", dim=-1)


def test_build_time_validation_of_method():
    """SPEC 6.2: the base class validates ``method`` at construction, like ``mode`` and ``softness``."""
    for cls in (snn.SoftSort, snn.SoftMax, snn.SoftRank):
        with pytest.raises(ValueError, match="method must be one of .*'softsort'.*got 'bogo'"):
            cls(method="bogo", **({} if cls is snn.SoftSort else {"dim": -1}))


def test_forward_arity():
    with pytest.raises(TypeError, match="forward takes"):
        snn.SoftSort()(torch.randn(3), torch.randn(3))
    with pytest.raises(TypeError):
        snn.SoftModule()


# -- in a network -------------------------------------------------------------------------------------


def test_sequential_chain_trains():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(5, 5),
        snn.SoftSort(),
        nn.Linear(5, 6),
        snn.SoftTopK(k=4, method="softsort", mode="c1"),
        nn.Linear(4, 4),
        snn.SoftRank(method="sorting_network", dim=-1),
        nn.Linear(4, 3),
        snn.SoftMax(dim=-1, learnable=True),
    )
    x = torch.randn(7, 5)
    out = model(x)
    assert out.shape == (7,)
    out.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    head = nn.Sequential(nn.Linear(5, 8), snn.SoftQuantile(0.5, dim=-1), nn.Identity())
    assert head(x).shape == (7,)
    head = nn.Sequential(nn.Linear(5, 8), snn.SoftArgsort(), nn.Flatten())
    assert head(x).shape == (7, 64)


# -- serialization and copies ----------------------------------------------------------------------


def _configs(name):
    yield {"softness": 0.3, "mode": "c1"}
    # one temperature per channel: it broadcasts against x (2, 3, 6) with the reduced dim set to 1
    per_channel = [[[0.1]], [[0.5]]] if build(name).config["dim"] == 1 else [[0.1], [0.2], [0.5]]
    yield {"softness": torch.tensor(per_channel, dtype=F64), "mode": "smooth"}
    yield {"softness": 0.25, "learnable": True, "mode": "c2", "method": "softsort"}
    yield {"softness": 0.25, "straight_through": True, "mode": "smooth", "method": "sorting_network"}


@pytest.mark.parametrize("name", NAMES)
def test_pickle_deepcopy_state_dict(name):
    x = x_input(4)
    for config in _configs(name):
        layer = build(name, **config)
        if layer.learnable:
            with torch.no_grad():
                layer.log_softness.add_(0.7)  # move away from the initial value
        ref = layer(x)
        for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
            assert_same(clone(x), ref)
            assert repr(clone) == repr(layer)
        buffer = io.BytesIO()
        torch.save(layer.state_dict(), buffer)
        buffer.seek(0)
        fresh = build(name, **config)
        fresh.load_state_dict(torch.load(buffer))
        assert_same(fresh(x), ref)
        assert set(fresh.state_dict()) == set(layer.state_dict())
        if layer.learnable:
            assert list(layer.state_dict()) == ["log_softness"]
        elif isinstance(config["softness"], torch.Tensor):
            assert list(layer.state_dict()) == ["softness_value"]
        else:
            assert list(layer.state_dict()) == []


def test_repr_shows_config():
    layer = snn.SoftSort(softness=0.3, mode="c1", method="softsort", straight_through=True, descending=True)
    text = repr(layer)
    assert text.startswith("SoftSort(")
    assert "dim=" not in text  # the default, not shown
    for part in (
        "softness=0.3",
        "mode='c1'",
        "method='softsort'",
        "straight_through=True",
        "descending=True",
    ):
        assert part in text, part
    assert "k=3" in repr(snn.SoftTopK(3)) and "largest=False" in repr(snn.SoftTopK(3, largest=False))
    assert "q=0.2" in repr(snn.SoftQuantile(0.2, dim=-1))
    assert "interpolation='nearest'" in repr(snn.SoftQuantile(0.2, interpolation="nearest", dim=-1))
    assert "learnable=True" in repr(snn.SoftMax(learnable=True, dim=-1))
    assert "return_indices=True" in repr(snn.SoftMedian(return_indices=True, dim=-1))
    assert "softness=0.5" in repr(snn.SoftRank(softness=0.5, learnable=True, dim=-1))
    assert "softness=[0.5, 0.5, 0.5]" in repr(snn.SoftArgmax(softness=torch.full((3, 1), 0.5), dim=-1))
    assert repr(snn.SoftArgmax(softness=torch.full((3, 2), 0.5), dim=-1)) == (
        "SoftArgmax(dim=-1, softness=<tensor of shape (3, 2)>)"
    )


# -- softness: learnable, per channel, dtype -------------------------------------------------------


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_learnable_softness_gets_gradient(method, mode):
    x = x_input(5)
    for name, kwargs in (
        ("SoftSort", {}),
        ("SoftSort", {"return_indices": True}),
        ("SoftArgmax", {}),
        ("SoftQuantile", {}),
    ):
        layer = build(name, softness=0.4, mode=mode, method=method, learnable=True, dtype=F64, **kwargs)
        params = dict(layer.named_parameters())
        assert list(params) == ["log_softness"]
        out = layer(x)
        out = out.values if isinstance(out, tuple) else out
        w = torch.randn(out.shape, dtype=F64, generator=torch.Generator().manual_seed(4))
        (out * w).sum().backward()
        g = layer.log_softness.grad
        assert g is not None and torch.isfinite(g).all() and (g != 0).all(), (name, kwargs, g)


def test_learnable_softness_stays_positive_and_resets():
    layer = snn.SoftSort(softness=0.2, learnable=True)
    assert isinstance(layer.softness, torch.Tensor)
    torch.testing.assert_close(layer.softness, torch.tensor(0.2))
    opt = torch.optim.SGD(layer.parameters(), lr=100.0)
    x = torch.randn(4, 6)
    for _ in range(3):
        opt.zero_grad()
        (layer(x) * torch.linspace(-1, 1, 6)).sum().backward()
        opt.step()
    assert float(layer.softness.detach()) > 0
    assert not torch.allclose(layer.softness.detach(), torch.tensor(0.2))
    layer.reset_parameters()
    torch.testing.assert_close(layer.softness, torch.tensor(0.2))


def test_to_dtype_moves_softness():
    layer = snn.SoftSort(softness=0.3, learnable=True)
    assert layer.log_softness.dtype == torch.float32
    layer.to(F64)
    assert layer.log_softness.dtype == F64 and layer.softness.dtype == F64
    x = x_input(6)
    assert layer(x).dtype == F64
    layer.reset_parameters()
    torch.testing.assert_close(layer.softness, torch.tensor(0.3, dtype=F64))
    per_channel = snn.SoftRank(softness=torch.tensor([[0.1], [0.2], [0.3]]), dim=-1)
    per_channel.to(F64)
    assert per_channel.softness_value.dtype == F64
    made = snn.SoftMax(softness=0.3, learnable=True, dtype=F64, dim=-1)
    assert made.log_softness.dtype == F64


@pytest.mark.parametrize("method", METHODS)
def test_per_channel_softness(method):
    """softness (C, 1) on input (B, C, n) equals one layer per channel."""
    x = x_input(7)
    s = torch.tensor([[0.05], [0.3], [2.0]], dtype=F64)
    makers = [
        lambda **k: snn.SoftSort(**k),
        lambda **k: snn.SoftArgsort(descending=True, **k),
        lambda **k: snn.SoftTopK(3, **k),
        lambda **k: snn.SoftRank(-1, **k),
        lambda **k: snn.SoftMax(-1, **k),
        lambda **k: snn.SoftArgmedian(-1, **k),
        lambda **k: snn.SoftQuantile(0.3, -1, **k),
    ]
    for make in makers:
        out = make(softness=s, method=method, mode="c1")(x)
        for c in range(3):
            ref = make(softness=float(s[c]), method=method, mode="c1")(x[:, c])
            torch.testing.assert_close(out[:, c], ref)


# -- straight-through --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", NAMES)
def test_straight_through(name, mode):
    x0 = x_input(8)
    layer_st = build(name, mode=mode, straight_through=True, softness=0.5)
    layer_soft = build(name, mode=mode, softness=0.5)
    layer_hard = build(name, mode="hard")
    x = x0.clone().requires_grad_()
    out = layer_st(x)
    assert_same(out.detach(), layer_hard(x0))  # the hard result bit for bit
    w = torch.randn(out.shape, dtype=F64, generator=torch.Generator().manual_seed(5))
    (g_st,) = torch.autograd.grad((out * w).sum(), x)
    (g_soft,) = torch.autograd.grad((layer_soft(x) * w).sum(), x)
    torch.testing.assert_close(g_st, g_soft)


def test_straight_through_with_learnable_softness():
    layer = snn.SoftTopK(2, straight_through=True, learnable=True, dtype=F64)
    x = x_input(9)
    out = layer(x)
    assert torch.equal(out, torch.topk(x, 2).values)
    (out * torch.tensor([1.0, -3.0], dtype=F64)).sum().backward()
    assert torch.isfinite(layer.log_softness.grad) and layer.log_softness.grad != 0
    hard = snn.SoftSort(mode="hard", straight_through=True)
    assert torch.equal(hard(x), torch.sort(x).values)


# -- torch.compile ---------------------------------------------------------------------------------

# Tracing any torch.autograd.Function makes dynamo (torch 2.13) warn that the Function was
# instantiated (a torch-internal DeprecationWarning, not softtorch code), and importing inductor
# warns about torch.jit; both would become errors under -W error.
COMPILE_WARNINGS = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _compare_compiled(layer, x, **compile_kwargs):
    torch._dynamo.reset()
    try:
        compiled = torch.compile(layer, **compile_kwargs)
        xe = x.clone().requires_grad_()
        xc = x.clone().requires_grad_()
        eager, out = layer(xe), compiled(xc)
        torch.testing.assert_close(out, eager)
        w = torch.linspace(-1, 1, eager.numel(), dtype=eager.dtype).reshape(eager.shape)
        params = list(layer.parameters())
        ge = torch.autograd.grad((eager * w).sum(), [xe, *params])
        gc = torch.autograd.grad((out * w).sum(), [xc, *params])
        for a, b in zip(ge, gc):
            torch.testing.assert_close(b, a)
    finally:
        torch._dynamo.reset()


@COMPILE_WARNINGS
def test_compile_fullgraph_learnable_sort():
    layer = snn.SoftSort(mode="c1", softness=0.3, learnable=True)
    _compare_compiled(layer, torch.randn(4, 6), backend="aot_eager", fullgraph=True)


@COMPILE_WARNINGS
def test_compile_fullgraph_soft_max_per_channel():
    layer = snn.SoftMax(mode="c2", softness=torch.tensor([[0.2], [0.7]]), dim=-1)
    _compare_compiled(layer, torch.randn(3, 2, 5), backend="aot_eager", fullgraph=True)


@pytest.mark.full
@COMPILE_WARNINGS
@pytest.mark.parametrize(
    "layer",
    [
        snn.SoftTopK(3, method="sorting_network", mode="smooth"),
        snn.SoftRank(method="softsort", mode="c0", learnable=True, dim=-1),
        snn.SoftQuantile(0.3, method="neuralsort", mode="smooth", straight_through=True, dim=-1),
    ],
    ids=["topk-sorting_network", "rank-softsort", "quantile-st"],
)
def test_compile_inductor(layer):
    _compare_compiled(layer, torch.randn(4, 8))


def test_layer_call_is_one_function_call(monkeypatch):
    """A layer's forward is one call into its function with the stored config."""
    calls = []
    real = snn.SoftTopK.function

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(snn.SoftTopK, "function", staticmethod(spy))
    layer = snn.SoftTopK(2, largest=False, softness=0.3, mode="c0", method="softsort")
    layer(torch.randn(3, 5))
    assert len(calls) == 1
    args, kwargs = calls[0]
    assert kwargs["k"] == 2 if "k" in kwargs else args[1] == 2
    assert kwargs["largest"] is False and kwargs["softness"] == 0.3 and kwargs["mode"] == "c0"
    assert kwargs["method"] == "softsort"


@pytest.mark.parametrize("name", NAMES)
def test_float32_input_float32_output(name):
    x = x_input(10, dtype=torch.float32)
    for method, mode in itertools.product(METHODS, ("hard", "smooth")):
        out = build(name, method=method, mode=mode)(x)
        assert out.dtype == torch.float32
