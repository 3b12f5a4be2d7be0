"""Layers and functions agree on defaults (issue 18): the same arguments give the same result.

A layer either shares its function's default ``dim`` (where that default works row by row,
``dim=-1``) or requires ``dim`` (where the function's default, ``None``, would reduce a whole
batch together). ``docs/user_guide/defaults.rst`` documents the table checked here.
"""

import inspect

import pytest
import torch

import softtorch as st
import softtorch.nn as snn

F64 = torch.float64

#: layer -> (function, arguments the layer cannot do without, how the layer treats dim)
TABLE = {
    "SoftSort": (st.sort, {}, "shared -1"),
    "SoftArgsort": (st.argsort, {}, "shared -1"),
    "SoftTopK": (st.topk, {"k": 2}, "shared -1"),
    "SoftRank": (st.rank, {}, "required"),
    "SoftQuantile": (st.quantile, {"q": 0.3}, "required"),
    "SoftArgquantile": (st.argquantile, {"q": 0.3}, "required"),
    "SoftPercentile": (st.percentile, {"q": 30.0}, "required"),
    "SoftArgpercentile": (st.argpercentile, {"q": 30.0}, "required"),
    "SoftMedian": (st.median, {}, "required"),
    "SoftArgmedian": (st.argmedian, {}, "required"),
    "SoftMax": (st.max, {}, "required"),
    "SoftMin": (st.min, {}, "required"),
    "SoftArgmax": (st.argmax, {}, "required"),
    "SoftArgmin": (st.argmin, {}, "required"),
    "SoftAll": (st.all, {}, "required"),
    "SoftAny": (st.any, {}, "required"),
    "SoftTakeAlongDim": (st.take_along_dim, {}, "shared None"),
    "SoftTake": (st.take, {}, "shared None"),
    "SoftNarrow": (st.narrow, {"length": 2}, "shared 0"),
    **{name: (getattr(snn, name).function, {}, "shared -1") for name in ("SpearmanLoss", "KendallTauLoss", "NDCGLoss")},
}


def _input(name):
    g = torch.Generator().manual_seed(0)
    if name in ("SoftAll", "SoftAny"):
        return (torch.rand(4, 6, generator=g, dtype=F64),)
    if name in ("SoftTakeAlongDim", "SoftTake"):  # dim=None indexes the flattened input, like torch
        p = torch.rand(3, 24, generator=g, dtype=F64)
        return torch.randn(4, 6, generator=g, dtype=F64), p / p.sum(-1, keepdim=True)
    if name.endswith("Loss"):  # scores and relevance labels
        return torch.randn(4, 6, generator=g, dtype=F64), torch.rand(4, 6, generator=g, dtype=F64) * 3
    if name == "SoftNarrow":
        p = torch.rand(4, generator=g, dtype=F64)
        return torch.randn(4, 6, generator=g, dtype=F64), p / p.sum()
    return (torch.randn(4, 6, generator=g, dtype=F64),)


def _values(out):
    return out.values if isinstance(out, tuple) and hasattr(out, "values") else out


def test_table_lists_every_layer_with_a_dim():
    with_dim = {name for name in snn.__all__ if "dim" in inspect.signature(getattr(snn, name)).parameters}
    with_dim.discard("SoftIndexSelect")  # torch.index_select has no default dim either
    assert with_dim == set(TABLE)


@pytest.mark.parametrize("name", list(TABLE))
def test_layer_dim_default_is_the_documented_one(name):
    fn, required, kind = TABLE[name]
    layer_dim = inspect.signature(getattr(snn, name)).parameters["dim"].default
    function_dim = inspect.signature(fn).parameters["dim"].default
    if kind == "required":
        assert function_dim is None and layer_dim is inspect.Parameter.empty
        with pytest.raises(TypeError, match=rf"{name}\(\) needs dim"):
            getattr(snn, name)(**required)
    else:
        assert layer_dim == function_dim == eval(kind.split()[1])


@pytest.mark.parametrize("name", list(TABLE))
def test_layer_equals_function_for_the_same_arguments(name):
    """Built with the fewest arguments it accepts, a layer gives the function's result for them."""
    fn, required, kind = TABLE[name]
    inputs = _input(name)
    dims = [-1, 0, None] if kind == "required" else [None]
    if name in ("SoftMedian",):
        dims = [-1, 0]  # median(dim=None) returns a value without indices: checked below
    for dim in dims:
        kwargs = dict(required) if dim is None and kind != "required" else {**required, "dim": dim}
        got = getattr(snn, name)(**kwargs)(*inputs)
        want = _values(fn(*inputs, **kwargs))
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_rank_layer_and_function_agree_on_a_batch():
    """The issue's report: st.rank(X, dim=-1) and SoftRank(dim=-1)(X) rank each row, in every mode."""
    x = torch.randn(64, 20, generator=torch.Generator().manual_seed(1), dtype=F64)
    for mode in ("hard", "smooth", "c1"):
        got = snn.SoftRank(dim=-1, mode=mode)(x)
        assert torch.equal(got, st.rank(x, dim=-1, mode=mode))
        assert float(got.max()) <= 20.0 + 1e-9 and float(got.min()) >= 1.0 - 1e-9
    hard = snn.SoftRank(dim=-1, mode="hard")(x)
    assert torch.equal(hard, x.argsort(-1, descending=True).argsort(-1).to(F64) + 1)
    # the function keeps softtorch 0.1.1's default (all elements together) for drop-in use
    assert float(st.rank(x, mode="hard").max()) == 64 * 20


def test_median_layer_without_dim_is_the_function_value():
    x = _input("SoftMedian")[0]
    assert torch.equal(snn.SoftMedian(dim=None)(x), st.median(x))


def test_take_along_dim_error_says_where_the_distribution_axis_goes():
    """A torch-style ``idx.unsqueeze(-1)`` puts size 1 last; the message names ``unsqueeze(-2)``."""
    x = torch.randn(3, 5)
    p = st.argmax(x, dim=-1)  # (3, 5)
    with pytest.raises(ValueError, match=r"last axis of size n = 5.*got last axis of size 1.*unsqueeze\(-2\)"):
        st.take_along_dim(x, p.unsqueeze(-1), dim=-1)
    torch.testing.assert_close(st.take_along_dim(x, p.unsqueeze(-2), dim=-1).squeeze(-1), st.max(x, dim=-1).values)
