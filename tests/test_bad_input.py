"""Bad input, table-driven (SPEC 7, STYLE 8): every argument of every public function and every
layer constructor, given a wrong type or an out-of-range value, raises ``TypeError`` (bad type) or
``ValueError`` (bad value) before any work, with a message naming the argument, what was expected
and what was received.

Arguments are classified by name (:data:`KIND_OF`); each kind lists its bad values with the
exception and the message fragments they must produce. A new public argument without a kind
fails :func:`test_every_argument_has_a_kind`.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass

import pytest
import torch
from _registry import MODES
from torch.utils._python_dispatch import TorchDispatchMode

import softtorch as st
import softtorch.nn as snn
from softtorch.methods import METHOD_NAMES

MODES_TEXT = ", ".join(map(repr, MODES))
METHODS_TEXT = ", ".join(repr(name) for name in METHOD_NAMES)
INTERPOLATIONS_TEXT = r"'linear', 'lower', 'higher', 'nearest', 'midpoint'"


@dataclass(frozen=True)
class Bad:
    """One bad value: ``make(device)`` builds it; the message must match ``expected`` and ``received``."""

    label: str
    make: object
    exc: type
    expected: str
    received: str
    tensor_value: bool = False  # the check has to read the values of this (bad) tensor argument


def const(value):
    return lambda device: value


def tensor(*args, **kwargs):
    return lambda device: torch.tensor(*args, **kwargs, device=device)


# -- bad values per kind of argument ----------------------------------------------------------------

TENSOR = [
    Bad("str", const("abc"), TypeError, r"torch\.Tensor", r"str 'abc'"),
    Bad("none", const(None), TypeError, r"torch\.Tensor", r"NoneType None"),
    Bad("list", const([1.0, 2.0]), TypeError, r"torch\.Tensor", r"list \[1\.0, 2\.0\]"),
    Bad("complex", tensor([1 + 1j, 2.0]), TypeError, r"real tensor", r"complex64"),
]
SOFTNESS = [
    Bad("zero", const(0), ValueError, r"positive finite", r"got 0\b"),
    Bad("negative", const(-1.0), ValueError, r"positive finite", r"got -1\.0"),
    Bad("nan", const(math.nan), ValueError, r"positive finite", r"got nan"),
    Bad("inf", const(math.inf), ValueError, r"positive finite", r"got inf"),
    Bad("str", const("0.1"), TypeError, r"positive finite float or a tensor", r"str '0\.1'"),
    Bad("none", const(None), TypeError, r"positive finite float or a tensor", r"NoneType None"),
    Bad("bool", const(True), TypeError, r"positive finite float or a tensor", r"bool True"),
    Bad("int_tensor", tensor([1, 2]), TypeError, r"floating-point tensor", r"torch\.int64"),
    Bad("negative_tensor", tensor([[0.1], [-0.5], [0.2]]), ValueError, r"positive and finite", r"-0\.5", True),
    Bad("nan_tensor", tensor([[0.1], [math.nan], [0.2]]), ValueError, r"positive and finite", r"nan", True),
    Bad("shape", lambda d: torch.full((7,), 0.1, device=d), ValueError, r"broadcast", r"\(7,\)", True),
]
MODE = [
    Bad("unknown", const("soft"), ValueError, MODES_TEXT, r"got 'soft'"),
    Bad("case", const("C1"), ValueError, MODES_TEXT, r"got 'C1'"),
    Bad("none", const(None), ValueError, MODES_TEXT, r"got None"),
    Bad("int", const(1), ValueError, MODES_TEXT, r"got 1\b"),
]
METHOD = [
    Bad("unknown", const("bitonic"), ValueError, METHODS_TEXT, r"got 'bitonic'"),
    Bad("none", const(None), ValueError, METHODS_TEXT, r"got None"),
]
BOOL = [
    Bad("str", const("yes"), TypeError, r"bool \(True or False", r"str 'yes'"),
    Bad("int", const(1), TypeError, r"bool \(True or False", r"int 1\b"),
    Bad("none", const(None), TypeError, r"bool \(True or False\)", r"NoneType None"),
]
BOOL_OR_NONE = [
    Bad("str", const("yes"), TypeError, r"bool \(True, False or None\)", r"str 'yes'"),
    Bad("int", const(1), TypeError, r"bool \(True, False or None\)", r"int 1\b"),
]
DIM = [
    Bad("too_big", const(2), ValueError, r"in \[-2, 1\]", r"got 2\b"),
    Bad("too_small", const(-3), ValueError, r"in \[-2, 1\]", r"got -3\b"),
    Bad("float", const(1.5), TypeError, r"an int", r"float 1\.5"),
    Bad("str", const("1"), TypeError, r"an int", r"str '1'"),
    Bad("bool", const(True), TypeError, r"an int", r"bool True"),
]
DIM_REQUIRED = DIM + [Bad("none", const(None), TypeError, r"an int", r"NoneType None")]
K = [  # the operated dim has n = 5 elements
    Bad("zero", const(0), ValueError, r"in \[1, 5\]", r"got 0\b"),
    Bad("negative", const(-1), ValueError, r"in \[1, 5\]", r"got -1\b"),
    Bad("too_big", const(6), ValueError, r"in \[1, 5\]", r"got 6\b"),
    Bad("float", const(2.0), TypeError, r"an int", r"float 2\.0"),
    Bad("none", const(None), TypeError, r"an int", r"NoneType None"),
]
LENGTH = [
    Bad("negative", const(-1), ValueError, r"in \[0, 5\]", r"got -1\b"),
    Bad("too_big", const(6), ValueError, r"in \[0, 5\]", r"got 6\b"),
    Bad("float", const(1.5), TypeError, r"an int", r"float 1\.5"),
]
Q = [
    Bad("above", const(1.5), ValueError, r"in \[0, 1\]", r"got 1\.5"),
    Bad("below", const(-0.1), ValueError, r"in \[0, 1\]", r"got -0\.1"),
    Bad("nan", const(math.nan), ValueError, r"in \[0, 1\]", r"got nan"),
    Bad("str", const("0.5"), TypeError, r"float in \[0, 1\] or a", r"str '0\.5'"),
    Bad("none", const(None), TypeError, r"float in \[0, 1\] or a", r"NoneType None"),
    Bad("int_tensor", tensor([0, 1]), TypeError, r"floating-point tensor", r"torch\.int64"),
    Bad("complex_tensor", tensor([0.5 + 0j]), TypeError, r"floating-point tensor", r"complex"),
    Bad("matrix", lambda d: torch.full((2, 2), 0.5, device=d), ValueError, r"0-d/1-D tensor", r"\(2, 2\)"),
    Bad("tensor_above", tensor([0.2, 1.3], dtype=torch.float64), ValueError, r"in \[0, 1\]", r"\[0\.2, 1\.3\]", True),
]
INTERPOLATION = [
    Bad("unknown", const("cubic"), ValueError, INTERPOLATIONS_TEXT, r"got 'cubic'"),
    Bad("none", const(None), ValueError, INTERPOLATIONS_TEXT, r"got None"),
]
OT_KWARGS = [
    Bad("list", const([("tol", 1e-3)]), TypeError, r"dict or None", r"list \["),
    Bad("key", const({"tolerance": 1e-3}), ValueError, r"'tol', 'max_iter'", r"got 'tolerance'"),
    Bad("tol", const({"tol": -1e-3}), ValueError, r"positive finite", r"got -0\.001"),
    Bad("tol_str", const({"tol": "small"}), TypeError, r"positive number", r"str 'small'"),
    Bad("max_iter", const({"max_iter": 0}), ValueError, r"in \[1, inf\)", r"got 0\b"),
    Bad("max_iter_float", const({"max_iter": 10.5}), TypeError, r"an int", r"float 10\.5"),
]
METHOD_OPTIONS = [  # every function's default method (neuralsort or softsort) takes no options
    Bad("list", const([("tol", 1e-3)]), TypeError, r"dict or None", r"list \["),
    # a default method without options, or one with options of other names (fast_soft_sort)
    Bad(
        "for_method",
        const({"tol": 1e-3}),
        ValueError,
        r"empty or None for method='\w+'|accepts the keys",
        r"got \{'tol': 0\.001\}|got 'tol'",
    ),
]
PERCENT = [
    Bad("above", const(101.0), ValueError, r"in \[0, 100\]", r"got 101\.0"),
    Bad("below", const(-0.1), ValueError, r"in \[0, 100\]", r"got -0\.1"),
    Bad("nan", const(math.nan), ValueError, r"in \[0, 100\]", r"got nan"),
    Bad("str", const("50"), TypeError, r"float in \[0, 100\] or a", r"str '50'"),
    Bad("int_tensor", tensor([0, 1]), TypeError, r"floating-point tensor", r"torch\.int64"),
]
RADIUS = [
    Bad("zero", const(0), ValueError, r"in \[1, inf\)", r"got 0\b"),
    Bad("negative", const(-2), ValueError, r"in \[1, inf\)", r"got -2\b"),
    Bad("float", const(1.5), TypeError, r"an int", r"float 1\.5"),
    Bad("str", const("5"), TypeError, r"an int", r"str '5'"),
]
NONNEGATIVE = [
    Bad("negative", const(-1e-3), ValueError, r"nonnegative finite", r"got -0\.001"),
    Bad("nan", const(math.nan), ValueError, r"nonnegative finite", r"got nan"),
    Bad("inf", const(math.inf), ValueError, r"nonnegative finite", r"got inf"),
    Bad("str", const("0"), TypeError, r"nonnegative number", r"str '0'"),
    Bad("none", const(None), TypeError, r"nonnegative number", r"NoneType None"),
]
LOG_PROB_EPS = [  # None or a positive float
    Bad("zero", const(0.0), ValueError, r"positive finite", r"got 0\.0"),
    Bad("negative", const(-1e-6), ValueError, r"positive finite", r"got -1e-06"),
    Bad("nan", const(math.nan), ValueError, r"positive finite", r"got nan"),
    Bad("str", const("1e-6"), TypeError, r"positive number", r"str '1e-6'"),
]
BOUND = [
    Bad("str", const("0.5"), TypeError, r"real number, a real tensor or None", r"str '0\.5'"),
    Bad("list", const([0.5]), TypeError, r"real number, a real tensor or None", r"list \[0\.5\]"),
    Bad("complex", tensor([0.5j]), TypeError, r"real number or a real tensor", r"complex"),
    Bad("shape", lambda d: torch.zeros(4, device=d), ValueError, r"broadcast together", r"of shape \(4,\)"),
]
REDUCTION = [
    Bad("unknown", const("avg"), ValueError, r"'mean', 'sum', 'none'", r"got 'avg'"),
    Bad("none", const(None), ValueError, r"'mean', 'sum', 'none'", r"got None"),
]
TARGET = TENSOR + [  # the target of a loss, paired with an input of shape (3, 5)
    Bad("shape", lambda d: torch.zeros(3, 4, device=d), ValueError, r"shape of input \(3, 5\)", r"\(3, 4\)"),
]
LABELS = [  # class indices for an input of shape (3, 5): 3 labels in [0, 5)
    Bad("str", const("abc"), TypeError, r"torch\.Tensor of class indices", r"str 'abc'"),
    Bad("float", tensor([0.0, 1.0, 2.0]), TypeError, r"integer tensor of class indices", r"torch\.float32"),
    Bad("shape", tensor([0, 1]), ValueError, r"without its class dim 1, i\.e\. \(3,\)", r"\(2,\)"),
    Bad("range", tensor([0, 5, 1]), ValueError, r"class indices in \[0, 5\)", r"got 5\b", True),
    Bad("negative", tensor([0, -1, 1]), ValueError, r"class indices in \[0, 5\)", r"got -1\b", True),
]
P_K = [  # a distribution over k for n = 5 classes
    Bad("str", const("abc"), TypeError, r"sequence of floats or a 1-D floating-point tensor", r"str 'abc'"),
    Bad("int_tensor", tensor([1]), TypeError, r"sequence of floats or a 1-D floating-point tensor", r"torch\.int64"),
    Bad("negative", const([0.5, -0.5, 1.0]), ValueError, r"nonnegative, summing to 1", r"-0\.5"),
    Bad("sum", const([0.5, 0.2]), ValueError, r"nonnegative, summing to 1", r"\[0\.5, 0\.2\]"),
    Bad("empty", const([]), ValueError, r"nonempty distribution", r"got \[\]"),
    Bad("too_long", const([0.5] + [0.1] * 5), ValueError, r"at most n = 5 entries", r"6 entries"),
]
SINKHORN_ITER = [
    Bad("negative", const(-1), ValueError, r"in \[0, inf\)", r"got -1\b"),
    Bad("float", const(2.5), TypeError, r"an int", r"float 2\.5"),
    Bad("none", const(None), TypeError, r"an int", r"NoneType None"),
]
LAST_AXIS = [  # a soft index over an operated dim of n = 5 elements
    Bad("last_axis", lambda d: torch.full((3, 2, 4), 0.25, device=d), ValueError, r"size n = 5", r"size 4"),
    Bad("scalar", tensor(1.0), ValueError, r"size n = 5", r"0-d tensor"),
]

#: The kind of every argument, by name; some names depend on the function (see ``kind_of``).
MASK = [
    Bad("list", const([True, False]), TypeError, r"mask must be a bool tensor \(True = keep\) or None", r"list \["),
    Bad("float_tensor", tensor([1.0, 0.0, 1.0, 1.0, 1.0]), TypeError, r"mask must be a bool tensor", r"torch\.float32"),
    Bad("shape", lambda d: torch.ones(7, dtype=torch.bool, device=d), ValueError, r"broadcast to the shape", r"\(7,\)"),
]
KIND_OF = {
    "x": TENSOR,
    "mask": MASK,
    "y": TENSOR,
    "condition": TENSOR,
    "softness": SOFTNESS,
    "mode": MODE,
    "method": METHOD,
    "dim": DIM,
    "k": K,
    "q": Q,
    "length": LENGTH,
    "interpolation": INTERPOLATION,
    "method_options": METHOD_OPTIONS,
    "ot_kwargs": OT_KWARGS,
    "neighbor_radius": RADIUS,
    "rtol": NONNEGATIVE,
    "atol": NONNEGATIVE,
    "epsilon": NONNEGATIVE,
    "log_prob_eps": LOG_PROB_EPS,
    "min": BOUND,
    "max": BOUND,
    "a": BOUND[:3],  # clamp's 0.1.1 name of min; given with min, see SPECIAL
    "b": BOUND[:3],
    "return_indices": BOOL_OR_NONE,
    "soft_index": TENSOR + LAST_AXIS,
    "soft_start": TENSOR + LAST_AXIS,
    "input": TENSOR,
    "target": TARGET,
    "reduction": REDUCTION,
    "p_k": P_K,
    "sinkhorn_iter": SINKHORN_ITER,
}
BOOL_NAMES = {
    "gated",
    "keepdim",
    "descending",
    "largest",
    "sorted",
    "standardize",
    "gated_grad",
    "return_log_probs",
    "return_argquantile",
    "return_argpercentile",
    "use_geometric_mean",
}


def kind_of(fn_name, arg):
    if arg in BOOL_NAMES:
        return BOOL
    if arg == "q" and fn_name.split("_st")[0] in ("percentile", "argpercentile"):
        return PERCENT
    if arg == "dim" and fn_name.split("_st")[0] in ("index_select", "narrow"):
        return DIM_REQUIRED
    if arg == "dim" and fn_name.split("_st")[0] == "take":  # x has one dim of n = 5 here
        return [b for b in DIM if b.exc is TypeError] + [
            Bad("too_big", const(1), ValueError, r"in \[-1, 0\]", r"got 1\b")
        ]
    if arg in ("soft_index", "soft_start") and fn_name == "take":
        return TENSOR + [LAST_AXIS[1]]
    if arg == "target" and fn_name == "topk_cross_entropy":
        return LABELS
    if arg == "k" and fn_name == "ndcg":  # None and k > n mean the whole list
        return [
            Bad(b.label, b.make, b.exc, b.expected.replace(r"\[1, 5\]", r"\[1, inf\)"), b.received)
            for b in K
            if b.label in ("zero", "negative", "float")
        ]
    return KIND_OF[arg]


# -- valid calls --------------------------------------------------------------------------------------

FUNCTIONS = [name for name in st.__all__ if name not in ("st", "grad_replace", "QuantileResult")]
LOGIC = {"logical_not", "logical_and", "logical_or", "logical_xor", "all", "any"}


def valid_kwargs(name, device):
    """A valid call of ``name`` as keyword arguments (operated dims have n = 5 elements)."""
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    def probs(*shape):
        w = torch.rand(*shape, generator=g) + 0.1
        return (w / w.sum(-1, keepdim=True)).to(device)

    base = name.removesuffix("_st")
    x = torch.rand(3, 5, generator=g).to(device) if base in LOGIC else randn(3, 5)
    params = inspect.signature(getattr(st, name)).parameters
    if "input" in params:  # a loss: (input, target)
        target = torch.tensor([0, 4, 2], device=device) if base == "topk_cross_entropy" else randn(3, 5)
        return {"input": x, "target": target}
    kwargs = {"x": x}
    if "y" in params:
        kwargs["y"] = torch.rand(3, 5, generator=g).to(device) if base in LOGIC else randn(3, 5)
    extra = {
        "where": {"condition": probs(3, 5)},
        "take_along_dim": {"soft_index": probs(3, 2, 5), "dim": 1},
        "take": {"x": randn(5), "soft_index": probs(2, 5)},
        "index_select": {"soft_index": probs(5), "dim": 1},
        "narrow": {"soft_start": probs(5), "length": 2, "dim": 1},
        "clamp": {"min": -0.5, "max": 0.5},
        "topk": {"k": 2},
        "quantile": {"q": 0.3},
        "argquantile": {"q": 0.3},
        "percentile": {"q": 30.0},
        "argpercentile": {"q": 30.0},
    }.get(base, {})
    kwargs.update(extra)
    # reductions over dim=None default: take dim=-1 where a per-row softness makes sense
    if base in (
        "rank",
        "quantile",
        "argquantile",
        "percentile",
        "argpercentile",
        "median",
        "argmedian",
        "max",
        "min",
        "argmax",
        "argmin",
    ):
        kwargs["dim"] = -1
    return kwargs


def function_cases():
    for name in FUNCTIONS:
        for arg in inspect.signature(getattr(st, name)).parameters:
            for bad in kind_of(name, arg):
                yield pytest.param(name, arg, bad, id=f"{name}-{arg}-{bad.label}")


# -- the checks ---------------------------------------------------------------------------------------


class _Recorder(TorchDispatchMode):
    """Records every ATen op (with its tensor arguments) dispatched while active."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        self.calls.append((func, tensors))
        return func(*args, **(kwargs or {}))


def _untouched(exc, match, fn, kwargs, bad_value):
    """Like ``raises_before_work``, for checks that must read the values of the bad tensor argument:
    only ops on that tensor may run, none on the other inputs."""
    others = {t.data_ptr() for n, t in kwargs.items() if isinstance(t, torch.Tensor) and t is not bad_value}
    recorder = _Recorder()
    with pytest.raises(exc, match=match) as info:
        with recorder:
            fn(**kwargs)
    touched = [str(f) for f, ts in recorder.calls if any(t.data_ptr() in others for t in ts) and not f.is_view]
    assert not touched, f"ran {touched} on the inputs before raising"
    return info


def check_raises(raises_before_work, fn, kwargs, arg, bad, bad_value):
    match = rf"\b{re.escape(arg)}\b"
    if bad.tensor_value:
        info = _untouched(bad.exc, match, fn, kwargs, bad_value)
    else:
        info = raises_before_work(bad.exc, match, fn, **kwargs)
    message = str(info.value)
    assert re.search(bad.expected, message), f"expected values {bad.expected!r} not in: {message}"
    assert re.search(bad.received, message), f"received value {bad.received!r} not in: {message}"


def test_every_argument_has_a_kind():
    for name in FUNCTIONS:
        for arg in inspect.signature(getattr(st, name)).parameters:
            assert kind_of(name, arg), (name, arg)


@pytest.mark.parametrize("name, arg, bad", list(function_cases()))
def test_function_rejects_bad_argument(name, arg, bad, device, raises_before_work):
    kwargs = valid_kwargs(name, device)
    fn = getattr(st, name)
    fn(**kwargs)  # the base call is valid
    bad_value = bad.make(device)
    kwargs[arg] = bad_value
    check_raises(raises_before_work, fn, kwargs, arg, bad, bad_value)


# Combinations that are wrong only together.
SPECIAL = [
    ("argsort", {"method": "fast_soft_sort"}, "method", r"'softsort', 'neuralsort'", r"'fast_soft_sort'"),
    ("argmax", {"method": "fast_soft_sort"}, "method", r"'softsort', 'neuralsort'", r"'fast_soft_sort'"),
    ("sort", {"method": "fast_soft_sort", "return_indices": True}, "method", r"to get indices", r"'fast_soft_sort'"),
    ("median", {"dim": None, "keepdim": True}, "keepdim", r"an integer dim", r"dim=None"),
    ("clamp", {"min": None, "max": None}, "min", r"at least one of min or max", r"min=None and max=None"),
    ("clamp", {"a": -1.0}, "a", r"another name for min: give one of them", r"min=float -0\.5 and a=float -1\.0"),
    ("clamp", {"b": 1.0}, "b", r"another name for max: give one of them", r"max=float 0\.5 and b=float 1\.0"),
    ("rank", {"dim": None, "softness": torch.full((3, 1), 0.1)}, "softness", r"one-element", r"\(3, 1\)"),
    ("sort", {"softness": torch.full((3, 5), 0.1)}, "softness", r"reduced dim 1 set to 1", r"\(3, 5\)"),
    ("greater", {"y": torch.zeros(4)}, "y", r"broadcast together", r"y of shape \(4,\)"),
    ("where", {"condition": torch.zeros(2, 1, 4)}, "condition", r"broadcast together", r"\(2, 1, 4\)"),
    ("take_along_dim", {"soft_index": torch.full((4, 2, 5), 0.2)}, "soft_index", r"broadcast with x", r"\(4,\)"),
    ("take_along_dim", {"soft_index": torch.full((2, 5), 0.2)}, "soft_index", r"x\.dim\(\) \+ 1 = 3", r"\(2, 5\)"),
    ("index_select", {"soft_index": torch.full((2, 2, 5), 0.2)}, "soft_index", r"\(n,\) or \(k, n\)", r"\(2, 2, 5\)"),
    ("narrow", {"soft_start": torch.full((4, 5), 0.2)}, "soft_start", r"broadcast with x", r"\(4,\)"),
    ("narrow", {"x": torch.tensor(1.0), "dim": 0, "soft_start": torch.ones(1)}, "x", r"at least one dim", r"0-d"),
    ("sort", {"x": torch.zeros(3, 0)}, "x", r"at least one element", r"\(3, 0\)"),
]


@pytest.mark.parametrize("name, overrides, arg, expected, received", SPECIAL, ids=[f"{s[0]}-{s[2]}" for s in SPECIAL])
def test_function_rejects_bad_combination(name, overrides, arg, expected, received, device, raises_before_work):
    kwargs = valid_kwargs(name, device)
    kwargs.update({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in overrides.items()})
    tensor_value = arg == "softness"  # the softness values are checked (on that tensor only) first
    bad = Bad("special", None, ValueError, expected, received, tensor_value)
    check_raises(raises_before_work, getattr(st, name), kwargs, arg, bad, kwargs[arg])


# -- layer constructors --------------------------------------------------------------------------------

LAYERS = [name for name in snn.__all__ if name != "SoftModule"]
LAYER_REQUIRED = {
    "SoftTopK": {"k": 2},
    "SoftQuantile": {"q": 0.3, "dim": -1},
    "SoftArgquantile": {"q": 0.3, "dim": -1},
    "SoftPercentile": {"q": 30.0, "dim": -1},
    "SoftArgpercentile": {"q": 30.0, "dim": -1},
    **{
        name: {"dim": -1}
        for name in (
            "SoftRank",
            "SoftMedian",
            "SoftArgmedian",
            "SoftMax",
            "SoftMin",
            "SoftArgmax",
            "SoftArgmin",
            "SoftAll",
            "SoftAny",
        )
    },  # fmt: skip
    "SoftNarrow": {"length": 2},
    "SoftIndexSelect": {"dim": 1},
    "SoftClamp": {"min": -0.5},
}
# Config that can only be checked against an input (n, ndim): a layer checks its type when built.
LAYER_KIND = {
    "dim": [b for b in DIM if b.exc is TypeError],
    "k": [b for b in K if b.label != "too_big"],
    "length": [b for b in LENGTH if b.label != "too_big"],
    "min": BOUND[:3],
    "max": BOUND[:3],
    "return_indices": BOOL,
    "straight_through": BOOL,
    "learnable": BOOL,
    "device": [
        Bad("unknown", const("gpu7"), ValueError, r"torch device such as 'cpu'", r"'gpu7'"),
        Bad("float", const(1.5), TypeError, r"torch\.device, a str, an int or None", r"float 1\.5"),
    ],
    "dtype": [
        Bad("str", const("float64"), TypeError, r"torch\.dtype or None", r"str 'float64'"),
        Bad("int", const(torch.int64), ValueError, r"floating-point torch\.dtype", r"torch\.int64"),
    ],
}
LAYER_KIND["softness"] = [b for b in SOFTNESS if b.label != "shape"]  # shape is checked against the input
LAYER_KIND["k"] = [b for b in K if b.label not in ("too_big",)]
LAYER_KIND["k"] = [
    Bad(b.label, b.make, b.exc, b.expected.replace(r"\[1, 5\]", r"\[1, inf\)"), b.received) for b in LAYER_KIND["k"]
]
LAYER_KIND["length"] = [
    Bad(b.label, b.make, b.exc, b.expected.replace(r"\[0, 5\]", r"\[0, inf\)"), b.received)
    for b in LAYER_KIND["length"]
]


def layer_kind(layer, arg):
    if arg == "q" and layer in ("SoftPercentile", "SoftArgpercentile"):
        return PERCENT
    if arg == "dim" and layer in ("SoftIndexSelect", "SoftNarrow"):
        return LAYER_KIND["dim"] + [DIM_REQUIRED[-1]]
    if arg == "k" and layer == "NDCGLoss":  # None means the whole list
        return [b for b in LAYER_KIND["k"] if b.label != "none"]
    if arg == "p_k":  # its length is checked against the number of classes of the input
        return [b for b in P_K if b.label != "too_long"]
    if arg in LAYER_KIND:
        return LAYER_KIND[arg]
    if arg in BOOL_NAMES:
        return BOOL
    return KIND_OF[arg]


def layer_cases():
    for layer in LAYERS:
        for arg in inspect.signature(getattr(snn, layer)).parameters:
            for bad in layer_kind(layer, arg):
                yield pytest.param(layer, arg, bad, id=f"{layer}-{arg}-{bad.label}")


@pytest.mark.parametrize("layer, arg, bad", list(layer_cases()))
def test_layer_rejects_bad_config_when_built(layer, arg, bad, device, raises_before_work):
    cls = getattr(snn, layer)
    kwargs = dict(LAYER_REQUIRED.get(layer, {}))
    cls(**kwargs)  # the base config is valid
    bad_value = bad.make(device)
    kwargs[arg] = bad_value
    check_raises(raises_before_work, cls, kwargs, arg, bad, bad_value)


def test_clamp_layer_needs_a_bound(raises_before_work):
    info = raises_before_work(ValueError, r"SoftClamp needs at least one of min or max", snn.SoftClamp)
    assert "min=None and max=None" in str(info.value)


def test_every_public_name_is_covered():
    """Every function and layer argument is exercised by the tables above."""
    covered = {(p.values[0], p.values[1]) for p in function_cases()}
    for name in FUNCTIONS:
        for arg in inspect.signature(getattr(st, name)).parameters:
            assert (name, arg) in covered, (name, arg)
    covered = {(p.values[0], p.values[1]) for p in layer_cases()}
    for layer in LAYERS:
        for arg in inspect.signature(getattr(snn, layer)).parameters:
            assert (layer, arg) in covered, (layer, arg)
