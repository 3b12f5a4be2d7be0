"""The robustness matrix: every public function x mode x method against SPEC §2 and §7.

* finite values and finite gradients for finite inputs at softness 1e-6 ... 1e6, float32 and float64;
* edge inputs: ties, constant rows, n = 1, 0-d tensors, empty batch dims, magnitude 1e6, and +-inf
  (finite wherever the hard op is finite);
* a NaN in one row gives NaN only in that row (values and gradients), and the other rows equal the
  result computed without it;
* float16 / bfloat16 inputs return their own dtype, close to the float32 result.

One table (:data:`OPS`) says how to call each public function, which modes and methods it takes and
what kind of inputs it reads. The cases are the cross product of that table with modes, methods,
softness, dtypes and edge inputs. The complete product is marked ``full`` (``pytest -m full``); the
default run takes a representative slice: every function in every mode, every method, the extreme
softness values and every edge input kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from _registry import GATHERING, INDEX_METHODS, METHODS, MODES, SOFT_MODES

import softtorch as st
from softtorch._core.expectation import expect, weighted
from softtorch.methods import get_method

SOFTNESS = (1e-6, 1e-3, 1.0, 1e3, 1e6)
DTYPES = (torch.float32, torch.float64)
HALF = (torch.float16, torch.bfloat16)
EDGES = ("ties", "constant", "n1", "0d", "empty", "big", "inf")
INF = math.inf


# -- the table -----------------------------------------------------------------------------------


def _partner(x: torch.Tensor) -> torch.Tensor:
    """A second operand row-aligned with ``x`` (a NaN in a row of ``x`` stays in that row)."""
    return x.flip(-1) if x.dim() else -x


def _soft_index(shape, like: torch.Tensor, one_hot: bool, seed: int = 5) -> torch.Tensor:
    """Random soft indices of ``shape`` (last axis n): full-support softmax, or exact one-hots."""
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    if one_hot:
        index = torch.randint(0, max(n, 1), shape[:-1], generator=g)
        return F.one_hot(index, n).to(like.dtype) if n else torch.zeros(shape, dtype=like.dtype)
    return torch.softmax(2.0 * torch.randn(shape, generator=g, dtype=torch.float64), -1).to(like.dtype)


def _n(x):
    return x.shape[-1] if x.dim() else 1


def _k(x):
    """How many entries top-k and the selections pick: 2, or fewer when n is smaller."""
    return min(2, _n(x))


def _inputs_unary(x, exact):
    return [x]


def _inputs_binary(x, exact):
    return [x, _partner(x)]


def _inputs_logic_unary(x, exact):
    # Logic reads soft booleans in [0, 1]: the edge inputs are squashed into that domain, so
    # magnitude 1e6 and +-inf become exact 0s and 1s (the corners of the fuzzy operators).
    return [torch.sigmoid(x)]


def _inputs_logic_binary(x, exact):
    return [torch.sigmoid(x), torch.sigmoid(_partner(x))]


def _inputs_where(x, exact):
    # Condition in [0, 1]; exactly 0/1 when the test needs a hard reference (inf inputs).
    cond = (_partner(x) > 0).to(x.dtype) if exact else torch.sigmoid(_partner(x))
    return [cond, x, _partner(x) - 1.0]


def _inputs_take_along(x, exact):
    lead = x.shape[:-1] if x.dim() else ()
    k = _k(x) if x.dim() else 1
    return [x, _soft_index((*lead, k, _n(x)), x, exact)]


def _inputs_take(x, exact):
    return [x, _soft_index((2, x.numel()), x, exact)]


def _inputs_index_select(x, exact):
    return [x, _soft_index((_k(x), _n(x)), x, exact)]


def _inputs_narrow(x, exact):
    return [x, _soft_index((_n(x),), x, exact)]


def _inputs_relevance(x, exact):
    # graded relevance labels in [0, 3], row-aligned with x (NDCG's gains 2^y - 1 stay finite)
    return [x, 3.0 * torch.sigmoid(_partner(x))]


def _inputs_labels(x, exact):
    # one class index per row (a 0-d input has no class dim: the loss refuses it)
    if x.dim() == 0:
        return [x, torch.tensor(0)]
    return [x, torch.arange(math.prod(x.shape[:-1])).reshape(x.shape[:-1]) % x.shape[-1]]


def _torch_take_along(ins):
    x, p = ins
    return torch.take_along_dim(x, p.argmax(-1), dim=-1)


def _torch_take(ins):
    return torch.take(ins[0], ins[1].argmax(-1))


def _torch_index_select(ins):
    return torch.index_select(ins[0], -1, ins[1].argmax(-1))


def _torch_narrow(ins):
    x, p = ins
    # starts past n - length count as n - length (softtorch.narrow does not wrap around)
    return torch.narrow(x, -1, min(int(p.argmax()), _n(x) - _k(x)), _k(x))


def _torch_where(ins):
    return torch.where(ins[0] > 0.5, ins[1], ins[2])


@dataclass(frozen=True)
class Op:
    """One public function: how to call it on its inputs, and what it accepts."""

    name: str
    call: Callable  # call(fn, inputs, **kw) -> Tensor or tuple of Tensors/None
    inputs: Callable = _inputs_unary  # inputs(x, exact) -> float tensors (x-derived, row aligned)
    modes: tuple = MODES  # (None,): the function has no mode
    methods: tuple = (None,)  # (None,): the function has no method
    torch_ref: Callable | None = None  # the torch op, for functions without a hard mode
    rows: bool = True  # outputs are row-aligned with x's leading dim (for the NaN test)
    mixes_values: bool = False  # output 0 is an expectation of x's values under a computed soft index
    aligned: tuple = (True, True, True)  # which inputs are row-aligned with x (the others are shared)

    @property
    def fn(self):
        return getattr(st, self.name)


def _elementwise(name, call=lambda fn, ins, **kw: fn(ins[0], **kw)):
    return [Op(name, call), Op(f"{name}_st", call)] if hasattr(st, f"{name}_st") else [Op(name, call)]


def _comparison(name):
    call = lambda fn, ins, **kw: fn(ins[0], ins[1], **kw)  # noqa: E731
    return [Op(name, call, _inputs_binary), Op(f"{name}_st", call, _inputs_binary)]


def _family(name, call, methods):
    # (the _st twin's forward values are the hard ones: it never mixes)
    mixes = name in ("max", "min", "sort", "topk", "quantile", "median")
    return [Op(name, call, methods=methods, mixes_values=mixes), Op(f"{name}_st", call, methods=methods)]


_dim = lambda fn, ins, **kw: fn(ins[0], -1, **kw)  # noqa: E731

OPS = {
    op.name: op
    for op in [
        *_elementwise("sigmoidal"),
        *_elementwise("softrelu"),
        *_elementwise("heaviside"),
        *_elementwise("sign"),
        *_elementwise("abs"),
        *_elementwise("relu"),
        *_elementwise("clamp", lambda fn, ins, **kw: fn(ins[0], -0.5, 0.5, **kw)),
        *_elementwise("round"),
        *[
            op
            for name in ("greater", "greater_equal", "less", "less_equal", "eq", "not_equal", "isclose")
            for op in _comparison(name)
        ],
        Op("logical_not", lambda fn, ins: fn(ins[0]), _inputs_logic_unary, (None,)),
        *[
            Op(name, lambda fn, ins: fn(ins[0], ins[1]), _inputs_logic_binary, (None,))
            for name in ("logical_and", "logical_or", "logical_xor")
        ],
        *[Op(name, lambda fn, ins: fn(ins[0], -1), _inputs_logic_unary, (None,)) for name in ("all", "any")],
        Op("where", lambda fn, ins: fn(*ins), _inputs_where, (None,), torch_ref=_torch_where),
        Op(
            "take_along_dim",
            lambda fn, ins: fn(ins[0], ins[1], dim=-1),
            _inputs_take_along,
            (None,),
            torch_ref=_torch_take_along,
        ),
        Op("take", lambda fn, ins: fn(*ins), _inputs_take, (None,), torch_ref=_torch_take, rows=False),
        Op(
            "index_select",
            lambda fn, ins: fn(ins[0], ins[1], -1),
            _inputs_index_select,
            (None,),
            torch_ref=_torch_index_select,
            aligned=(True, False),
        ),
        Op(
            "narrow",
            lambda fn, ins: fn(ins[0], ins[1], _k(ins[0]), -1),
            _inputs_narrow,
            (None,),
            torch_ref=_torch_narrow,
            aligned=(True, False),
        ),
        *_family("max", _dim, METHODS),
        *_family("min", _dim, METHODS),
        *_family("argmax", _dim, INDEX_METHODS),
        *_family("argmin", _dim, INDEX_METHODS),
        *_family("sort", _dim, METHODS),
        *_family("argsort", _dim, INDEX_METHODS),
        *_family("topk", lambda fn, ins, **kw: fn(ins[0], _k(ins[0]), -1, **kw), METHODS),
        *_family("rank", _dim, METHODS),
        *_family("quantile", lambda fn, ins, **kw: fn(ins[0], 0.3, -1, **kw), METHODS),
        *_family("argquantile", lambda fn, ins, **kw: fn(ins[0], 0.3, -1, **kw), INDEX_METHODS),
        *_family("percentile", lambda fn, ins, **kw: fn(ins[0], 30.0, -1, **kw), METHODS),
        *_family("argpercentile", lambda fn, ins, **kw: fn(ins[0], 30.0, -1, **kw), INDEX_METHODS),
        *_family("median", _dim, INDEX_METHODS),  # median(x, dim) returns soft indices
        *_family("argmedian", _dim, INDEX_METHODS),
        Op("spearman_corrcoef", lambda fn, ins, **kw: fn(ins[0], ins[1], -1, **kw), _inputs_binary, methods=METHODS),
        Op("kendall_tau", lambda fn, ins, **kw: fn(ins[0], ins[1], -1, **kw), _inputs_binary),
        Op(
            "topk_cross_entropy",
            lambda fn, ins, **kw: fn(ins[0], ins[1], reduction="none", **kw),
            _inputs_labels,
            methods=INDEX_METHODS,
        ),
        Op("ndcg", lambda fn, ins, **kw: fn(ins[0], ins[1], None, -1, **kw), _inputs_relevance, methods=INDEX_METHODS),
    ]
}

#: Public names that are not operators on tensors.
NOT_OPERATORS = {
    "st": "the straight-through combinator; every NAME_st it makes is in the table",
    "grad_replace": "the straight-through combinator for functions taking forward: bool",
    "QuantileResult": "a NamedTuple type",
}


def test_table_covers_every_public_function():
    assert set(OPS) | set(NOT_OPERATORS) == set(st.__all__)
    for op in OPS.values():
        if op.methods != (None,):
            # methods that give indices raise for fast_soft_sort; value functions take it
            assert set(op.methods) in (set(METHODS), set(INDEX_METHODS)), op.name


# -- calling and checking ------------------------------------------------------------------------


def _kwargs(op, mode, method, softness):
    kw = {}
    if mode is not None:
        kw["mode"] = mode
        kw["softness"] = softness
    if method is not None:
        kw["method"] = method
    return kw


def _tensors(out):
    """The output tensors of a call (namedtuples flattened, ``None`` fields dropped)."""
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for t in out if t is not None]


def _leaves(inputs):
    return [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]


def _run(op, inputs, mode, method, softness):
    return _tensors(op.call(op.fn, inputs, **_kwargs(op, mode, method, softness)))


def _reference(op, inputs, method):
    """The hard result: ``mode="hard"``, or the torch op for functions without a mode."""
    if op.modes != (None,):
        return _run(op, inputs, "hard", method, 1.0)
    if op.torch_ref is not None:
        return _tensors(op.torch_ref([t.detach() for t in inputs]))
    return None


def _weights(t: torch.Tensor, seed: int = 11) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(t.shape, generator=g, dtype=torch.float64).to(t.dtype) + 0.5


def _grads(outs, inputs, mask=None):
    """Gradients of a random positive weighted sum of the outputs (``mask`` picks the entries)."""
    loss = 0.0
    for out in outs:
        w = _weights(out)
        if mask is not None:
            w = w * mask(out).to(w.dtype)
            out = torch.where(mask(out), out, torch.zeros_like(out))
        loss = loss + (out * w).sum()
    assert isinstance(loss, torch.Tensor) and loss.requires_grad, "the output is not connected to the inputs"
    grads = torch.autograd.grad(loss, [t for t in inputs if t.requires_grad], allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]


def _where_bad(t):
    bad = ~torch.isfinite(t)
    return bad.nonzero()[:5].tolist()


def _assert_finite(ts, what, label):
    for i, t in enumerate(ts):
        assert torch.isfinite(t).all(), f"{label}: {what} {i} has non-finite entries at {_where_bad(t)}:\n{t}"


def _distinct(shape, dtype, seed=0):
    """Random values along the last axis with gaps >= 0.75 (no ties), centred near 0."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(shape, generator=g).argsort(-1).to(torch.float64)
    x = grid + 0.25 * torch.rand(shape, generator=g, dtype=torch.float64) - 0.4 * shape[-1]
    return x.to(dtype)


def edge_input(edge: str, dtype) -> torch.Tensor:
    if edge == "ties":
        x = [[0.5, -1.0, 0.5, 2.0, -1.0, 0.5], [3.0, 3.0, -2.0, -2.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, -1.0, 0.25]]
    elif edge == "constant":
        x = [[0.7] * 6, [-3.0] * 6, [0.0] * 6]
    elif edge == "n1":
        x = [[0.3], [-1.2], [2.0]]
    elif edge == "0d":
        x = 0.7
    elif edge == "empty":
        return torch.zeros(0, 6, dtype=dtype)
    elif edge == "big":
        return _distinct((3, 6), dtype, seed=3) * 1e6
    elif edge == "inf":
        # +inf only; -inf twice; both signs. Comparisons pair x with x.flip(-1): rows 1 and 2
        # compare an infinity with itself (a tie, as for torch).
        x = [[0.5, INF, -1.0, 2.0, 0.1, -0.3], [-INF, 0.2, 1.5, -0.7, 0.9, -INF], [1.0, -INF, INF, INF, -2.0, 0.6]]
    else:
        raise AssertionError(edge)
    return torch.tensor(x, dtype=dtype)


# -- case generation ------------------------------------------------------------------------------

full = pytest.mark.full


def _id(*parts):
    return "-".join(
        p.replace("torch.", "")
        if isinstance(p, str)
        else f"s{p:g}"
        if isinstance(p, float)
        else str(p).replace("torch.", "")
        for p in parts
        if p is not None
    )


def _takes(method, mode) -> bool:
    """Whether ``method`` computes ``mode`` (every method takes ``"hard"``; functions without a
    method or mode take everything)."""
    return method is None or mode in (None, "hard") or mode in get_method(method).modes


def _method_for(op_index: int, mode_index: int, methods, mode):
    """The method of the default slice: rotates so every method meets every mode it computes and many functions."""
    methods = [m for m in methods if _takes(m, mode)]
    return methods[(op_index + mode_index) % len(methods)]


def _cases(extra, slice_extra, regressions=()):
    """``pytest.param``s: the complete product (marked ``full``) and the default slice (unmarked).

    ``extra(op, mode)`` yields the remaining parameters of the full product (tuples); ``slice_extra(op,
    mode)`` those of the slice for the one method the slice picks. ``regressions`` are full-product
    cases that once failed and that the slice would not reach otherwise: the default run keeps them.
    """
    params = [pytest.param(*case, id="regression-" + _id(*case)) for case in regressions]
    for i, op in enumerate(OPS.values()):
        for j, mode in enumerate(op.modes):
            for method in (m for m in op.methods if _takes(m, mode)):
                for rest in extra(op, mode):
                    params.append(
                        pytest.param(op.name, mode, method, *rest, marks=full, id=_id(op.name, mode, method, *rest))
                    )
            method = _method_for(i, j, op.methods, mode)
            for rest in slice_extra(op, mode):
                params.append(pytest.param(op.name, mode, method, *rest, id="ci-" + _id(op.name, mode, method, *rest)))
    return params


def _softness_values(mode):
    # Hard mode ignores the softness (it is still validated): one value is enough.
    return (1.0,) if mode in ("hard", None) else SOFTNESS


# -- 1. finite values and gradients over the softness range -----------------------------------------


@pytest.mark.parametrize(
    "name, mode, method, softness, dtype",
    _cases(
        lambda op, mode: [(s, d) for s in _softness_values(mode) for d in DTYPES],
        lambda op, mode: [(s, d) for s in ((1.0,) if mode in ("hard", None) else (1e-6, 1e6)) for d in DTYPES],
    ),
)
def test_finite_over_softness(name, mode, method, softness, dtype):
    """SPEC §7: softness 1e-6 ... 1e6 in every mode gives finite values and gradients for finite inputs."""
    op = OPS[name]
    inputs = _leaves(op.inputs(_distinct((3, 6), dtype), False))
    outs = _run(op, inputs, mode, method, softness)
    label = _id(name, mode, method, softness, dtype)
    _assert_finite(outs, "output", label)
    for t in outs:
        assert t.dtype == dtype, f"{label}: output dtype {t.dtype}"
    _assert_finite(_grads(outs, inputs), "gradient", label)


def test_index_functions_refuse_fast_soft_sort():
    """Asking fast_soft_sort for indices is a ValueError that says it has no permutation (SPEC §2)."""
    x = _distinct((3, 6), torch.float32)
    for op in OPS.values():
        if op.methods != (None,) and "fast_soft_sort" not in op.methods:
            with pytest.raises(ValueError, match="fast_soft_sort"):
                op.call(op.fn, op.inputs(x, False), mode="smooth", method="fast_soft_sort")


# -- 2. edge inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, mode, method, edge, dtype",
    _cases(
        lambda op, mode: [(e, d) for e in EDGES for d in DTYPES],
        lambda op, mode: [(e, torch.float64 if k % 2 else torch.float32) for k, e in enumerate(EDGES)],
        regressions=[
            # the straight-through forward was hard - (inf - inf) = NaN where the soft value is inf
            ("sort_st", "smooth", "softsort", "inf", torch.float64),
            ("median_st", "smooth", "neuralsort", "inf", torch.float64),
            ("quantile_st", "smooth", "softsort", "inf", torch.float64),
        ],
    ),
)
def test_edge_inputs(name, mode, method, edge, dtype):
    """SPEC §7: ties, constant rows, n = 1, 0-d, empty batch dims, 1e6 and +-inf inputs work.

    Finite inputs give finite values and gradients (softness 0.1); the shapes follow the hard
    result; with +-inf the result is finite wherever the hard result is finite (soft indices,
    which are probability vectors, are always finite), at softness 1e-3 where the soft result is
    close to the hard one.
    """
    op = OPS[name]
    x = edge_input(edge, dtype)
    inputs = _leaves(op.inputs(x, edge == "inf"))
    softness = 1e-3 if edge == "inf" else 0.1
    label = _id(name, mode, method, edge, dtype)
    try:
        ref = _reference(op, inputs, method)
    except (RuntimeError, IndexError, ValueError) as err:
        # torch refuses this input; softtorch may refuse it too (with a ValueError) or extend it
        try:
            outs = _run(op, inputs, mode, method, softness)
        except ValueError:
            return
        ref = None
        assert mode is None, f"{label}: hard mode refused an input soft mode accepts: {err}"
    else:
        outs = _run(op, inputs, mode, method, softness)
    if ref is not None:
        # (hard mode returns indices even for the methods without a permutation, which have none
        # to give in soft modes)
        assert len(outs) == len(ref) or method not in INDEX_METHODS, f"{label}: {len(outs)} outputs, hard {len(ref)}"
        assert [t.shape for t in outs] == [t.shape for t in ref[: len(outs)]], f"{label}: shapes differ from hard"
    for t in outs:
        assert t.dtype == dtype, f"{label}: output dtype {t.dtype}"
    if edge != "inf":
        _assert_finite(outs, "output", label)
        _assert_finite(_grads(outs, inputs), "gradient", label)
        return
    assert ref is not None or all(torch.isfinite(t).all() for t in inputs), label
    for i, t in enumerate(outs):
        must = torch.isfinite(ref[i]) if ref is not None else torch.ones_like(t, dtype=torch.bool)
        if i == 0 and op.mixes_values and mode == "smooth":
            # A smooth relaxation gives every element positive weight, so an expectation over a
            # row holding an infinity is that infinity (or NaN when the row holds +inf and -inf):
            # there, finite values are not to be had. It must still not be NaN.
            must = torch.zeros_like(must)
            one_sign = ~(torch.isposinf(x).any(-1) & torch.isneginf(x).any(-1))
            nan = torch.isnan(t) & one_sign.reshape(-1, *[1] * (t.dim() - 1))
            assert not nan.any(), f"{label}: NaN in a row with one sign of infinity:\n{t}"
        bad = must & ~torch.isfinite(t)
        assert not bad.any(), (
            f"{label}: output {i} is not finite where the hard result is, at {bad.nonzero()[:5].tolist()}:\n{t}"
        )


# -- 3. a NaN stays in its row ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, mode, method, dtype",
    _cases(
        lambda op, mode: [(d,) for d in DTYPES] if op.rows else [],
        lambda op, mode: [(torch.float64,)] if op.rows else [],
    ),
)
def test_nan_stays_in_its_row(name, mode, method, dtype):
    """SPEC §7: a NaN in row 1 of a (4, n) input leaves the other rows NaN-free, equal to the result
    without row 1, and their gradients NaN-free."""
    op = OPS[name]
    x = _distinct((4, 6), dtype, seed=7)
    x[1, 2] = math.nan
    keep = torch.tensor([0, 2, 3])
    inputs = _leaves(op.inputs(x, False))
    label = _id(name, mode, method, dtype)
    outs = _run(op, inputs, mode, method, 0.1)
    clean_inputs = [t[keep] if aligned else t for t, aligned in zip(op.inputs(x, False), op.aligned)]
    clean = _run(op, _leaves(clean_inputs), mode, method, 0.1)
    for i, (out, ref) in enumerate(zip(outs, clean)):
        rows = out.index_select(0, keep)
        assert not torch.isnan(rows).any(), f"{label}: NaN leaked out of row 1 into output {i}:\n{out}"
        torch.testing.assert_close(rows, ref, msg=lambda m, i=i: f"{label}: output {i}: {m}", **_nan_tol(method, dtype))
    rows_ok = lambda t: torch.arange(t.shape[0]).reshape(-1, *[1] * (t.dim() - 1)) != 1  # noqa: E731
    # (a shared input, like index_select's soft index, meets every row: its gradient may be NaN)
    for i, (g, aligned) in enumerate(zip(_grads(outs, inputs, mask=rows_ok), op.aligned)):
        if aligned:
            assert not torch.isnan(g.index_select(0, keep)).any(), (
                f"{label}: NaN gradient outside row 1 (input {i}):\n{g}"
            )


def _nan_tol(method, dtype):
    # An iterative solver (a method with a ``tol`` option) runs the whole batch until every row
    # converges: dropping the NaN row (which never converges) changes the iteration count, so the
    # rows agree to the solver tolerance only.
    if method is not None and "tol" in get_method(method).options:
        return {"rtol": 1e-4, "atol": 1e-4}
    return {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}


# -- 4. low precision ---------------------------------------------------------------------------------

#: Relative precision of the half dtypes (unit roundoff of the final rounding is half of it).
EPS = {torch.float16: torch.finfo(torch.float16).eps, torch.bfloat16: torch.finfo(torch.bfloat16).eps}


@pytest.mark.parametrize(
    "name, mode, method, softness, dtype",
    _cases(
        lambda op, mode: [(s, d) for s in _softness_values(mode) for d in HALF],
        lambda op, mode: [(s, d) for s in ((1.0,) if mode in ("hard", None) else (1e-3, 1.0)) for d in HALF],
        regressions=[
            # x / softness overflowed float16 (inf result, or inf - inf in neuralsort's row scores)
            ("relu", "smooth", None, 1e-6, torch.float16),
            ("argmax", "c1", "neuralsort", 1e-6, torch.float16),
            ("sort", "smooth", "neuralsort", 1e-6, torch.float16),
            # clamp's lo + relu(x - lo) - relu(x - hi) cancelled every digit in half precision
            ("clamp", "c0", None, 1e3, torch.float16),
            ("clamp", "smooth", None, 1e6, torch.bfloat16),
        ],
    ),
)
def test_half_precision(name, mode, method, softness, dtype):
    """SPEC §2: float16/bfloat16 inputs return their dtype, within a few ulps of the float32 result
    computed on the same (rounded) input."""
    op = OPS[name]
    x = _distinct((3, 6), torch.float32, seed=9).to(dtype)
    inputs = op.inputs(x, False)
    label = _id(name, mode, method, softness, dtype)
    outs = _run(op, _leaves(inputs), mode, method, softness)
    refs = _run(op, _leaves([t.float() if t.is_floating_point() else t for t in inputs]), mode, method, softness)
    eps = EPS[dtype]
    if any(ref.detach().abs().max() > torch.finfo(dtype).max for ref in refs if ref.numel()):
        pytest.skip(f"the float32 result is outside {dtype}'s range (softrelu is softness * log 2 at 0)")
    for i, (out, ref) in enumerate(zip(outs, refs)):
        assert out.dtype == dtype, f"{label}: output {i} has dtype {out.dtype}"
        scale = float(ref.detach().abs().max().clamp_min(1.0)) if ref.numel() else 1.0
        torch.testing.assert_close(
            out.float(), ref, rtol=4 * eps, atol=4 * eps * scale, msg=lambda m, i=i: f"{label}: output {i}: {m}"
        )


# -- 5. regressions: the defects this matrix found, each pinned by a direct check --------------------


def test_expect_ignores_zero_weights_on_infinities():
    """A weight of 0 on an infinite value contributes 0 (a plain matmul made 0 * inf = NaN)."""
    v = torch.tensor([1.0, INF, -INF, 2.0], dtype=torch.float64, requires_grad=True)
    p = torch.tensor(
        [[0.5, 0.0, 0.0, 0.5], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1e-300, 1.0], [0.0, 0.5, 0.5, 0.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    out = expect(p, v)
    assert torch.equal(out[:3], torch.tensor([1.5, INF, -INF], dtype=torch.float64)) and torch.isnan(out[3])
    (gp, gv) = torch.autograd.grad(out[0] + out[1], (p, v))
    assert torch.isfinite(gp).all() and torch.isfinite(gv).all()
    w = weighted(torch.tensor([0.0, 1.0, 0.5]), torch.tensor([INF, INF, -INF]))
    assert torch.equal(w, torch.tensor([0.0, INF, -INF]))


def test_selection_with_one_hot_indices_reproduces_torch_at_infinities():
    """SPEC §3: a one-hot index reproduces the torch op exactly, infinities elsewhere in the row included."""
    x = torch.tensor([[1.0, INF, -2.0, 0.5], [-INF, 0.3, 2.0, 1.0]], dtype=torch.float64)
    idx = torch.tensor([[0, 2], [3, 1]])
    p = F.one_hot(idx, 4).to(x.dtype)
    assert torch.equal(st.take_along_dim(x, p, dim=-1), torch.take_along_dim(x, idx, dim=-1))
    flat = torch.tensor([0, 2, 5])
    assert torch.equal(st.take(x, F.one_hot(flat, 8).to(x.dtype)), torch.take(x, flat))
    assert torch.equal(st.index_select(x, p[0], -1), torch.index_select(x, -1, idx[0]))
    assert torch.equal(st.narrow(x, p[0, 0], 2, -1), torch.narrow(x, -1, 0, 2))
    cond = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]], dtype=x.dtype)
    assert torch.equal(st.where(cond, x, x.flip(-1)), torch.where(cond.bool(), x, x.flip(-1)))


@pytest.mark.parametrize("method", GATHERING)
@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_sparse_values_next_to_infinities(method, mode):
    """Sorted values with zero weight on the infinities are finite, with and without indices."""
    x = torch.tensor([[1.0, INF, -2.0, 0.5, 0.0], [-INF, 0.3, 2.0, 1.0, -INF]], dtype=torch.float64)
    for op in (st.max, st.min, st.median):
        v = op(x, -1, softness=1e-3, mode=mode, method=method).values
        assert torch.equal(torch.isfinite(v), torch.isfinite(op(x, -1, mode="hard").values)), (op.__name__, v)
    hard = st.sort(x, mode="hard").values
    finite = torch.isfinite(hard)
    for return_indices in (True, False):
        v = st.sort(x, softness=1e-3, mode=mode, method=method, return_indices=return_indices).values
        assert torch.equal(torch.isfinite(v), finite), (return_indices, v)
        torch.testing.assert_close(v[finite], hard[finite], rtol=0, atol=1e-2)
        assert torch.equal(v[~finite], hard[~finite])


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_comparisons_of_infinities(mode):
    """inf vs inf is a tie (not NaN); an infinity is close only to itself, as for torch.isclose."""
    x = torch.tensor([INF, -INF, INF, 1.0, INF, -INF], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([INF, -INF, -INF, INF, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    one = torch.ones((), dtype=torch.float64)
    for name in ("greater", "greater_equal", "less", "less_equal", "eq", "not_equal", "isclose"):
        fn = getattr(st, name)
        out = fn(x, y, softness=0.1, mode=mode)
        hard = fn(x, y, mode="hard")
        assert torch.isfinite(out).all(), (name, out)
        tie = fn(one, one, softness=0.1, mode=mode)
        expected = hard.clone()
        if name != "isclose":
            expected[:2] = tie  # the same infinity twice: the soft value of a tie
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-9, msg=name)
        grads = torch.autograd.grad(out.sum(), (x, y))
        assert all(torch.isfinite(g).all() for g in grads), name


def test_straight_through_forward_stays_hard():
    """NAME_st returns the hard result even where the soft one is infinite (was inf - inf = NaN), and
    returns the hard indices when the method has none (fast_soft_sort: was an AttributeError)."""
    x = torch.tensor([[0.5, INF, -1.0, 2.0], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64, requires_grad=True)
    out = st.sort_st(x, softness=1.0, mode="smooth", method="softsort")
    soft = st.sort(x, softness=1.0, method="softsort").values[0]  # +inf is excluded (issue 18): one inf slot
    assert torch.isfinite(soft[:3]).all() and soft[3] == INF
    assert torch.equal(out.values, st.sort(x, mode="hard").values)
    (g,) = torch.autograd.grad(out.values[1].sum(), x)
    assert torch.isfinite(g[1]).all() and g[1].abs().sum() > 0  # (gradients at infinite inputs are not defined)
    y = _distinct((3, 6), torch.float64).requires_grad_()
    for name in ("max_st", "min_st", "sort_st", "topk_st"):  # median(x, dim) needs soft indices
        fn = getattr(st, name)
        out = OPS[name].call(fn, [y], softness=0.5, mode="c1", method="fast_soft_sort")
        hard = OPS[name].call(fn, [y], mode="hard", method="fast_soft_sort")
        assert torch.equal(out.values, hard.values) and torch.equal(out.indices, hard.indices), name
        (g,) = torch.autograd.grad(out.values.sum(), y)
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name


def test_hard_quantile_of_an_empty_batch():
    """torch.quantile refuses an empty batch; softtorch's hard mode gives the empty result like soft mode."""
    x = torch.zeros(0, 5, requires_grad=True)
    for q, shape in ((0.3, (0,)), (torch.tensor([0.2, 0.7]), (2, 0))):
        for kw in ({}, {"keepdim": True}):
            hard = st.quantile(x, q, -1, mode="hard", **kw)
            assert hard.shape == st.quantile(x, q, -1, **kw).shape
            assert hard.shape == (shape if not kw else shape + (1,)), (q, kw, hard.shape)


def test_index_select_of_a_0d_tensor_is_0d():
    x = torch.tensor(0.7)
    assert torch.index_select(x, 0, torch.tensor([0])).shape == ()
    for soft_index in (torch.ones(1), torch.ones(1, 1)):
        assert st.index_select(x, soft_index, 0).shape == ()
    assert st.index_select(x, torch.ones(3, 1), 0).shape == (3,)
