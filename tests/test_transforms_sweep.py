"""Every public function x soft mode x method under the torch transforms (issue 19).

The functions come from the robustness matrix's table (:data:`test_matrix.OPS`), so a new public
function joins this sweep as soon as it joins the table. Each case is differentiated with respect
to its first floating input (the others fixed), in float64 on distinct values:

* ``torch.func.jvp`` runs and gives finite tangents; ``jacfwd`` equals ``jacrev`` to 1e-6;
* ``torch.func.hessian`` (forward over reverse) is finite and symmetric;
* ``torch.func.vmap`` over a batch of samples equals the calls on each sample;
* ``torch.autograd.gradgradcheck`` (double backward);
* ``torch.compile(fullgraph=True)`` equals eager, one compile per method and mode;
* hard mode: forward mode works, and the step functions (soft indices, ranks) give zero tangents;
* forward mode in a tensor softness, and through ``torch.autograd.forward_ad``'s dual tensors.

The default run takes a slice: every function in every soft mode, with the method rotating over
(function, mode) as in the matrix; ``pytest -m full -k transforms_sweep`` runs every combination.
"""

from __future__ import annotations

import pytest
import test_matrix as tm
import torch
import torch.autograd.forward_ad as fwad

F64 = torch.float64
S = 0.3  # softness: every gradient is non-trivial at this scale
B, N = 2, 5  # samples for vmap and size of the operated dim

# Torch-internal warnings, errors under `-W error`: the first forward-mode call imports a module
# that scripts a function, and vmap (jacrev, hessian) runs ops without a batching rule (narrow's
# unfold_backward, quantile) through its per-sample fallback, correctly but with a warning.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:There is a performance drop because we have not yet implemented:UserWarning"),
]

#: Methods that solve an optimization problem to a tolerance: a batch and its samples agree to it.
ITERATIVE = {"ot", "fast_soft_sort", "smooth_sort"}
#: Hard-mode functions whose result is a step of the input (soft indices, ranks, booleans): zero tangents.
STEPS = {
    "heaviside", "sign", "round", "greater", "greater_equal", "less", "less_equal", "eq", "not_equal", "isclose",
    "argmax", "argmin", "argsort", "rank", "argquantile", "argpercentile", "argmedian",
}  # fmt: skip


def _cases(one_mode=False):
    """``(name, mode, method)`` params: the slice unmarked, the rest of the product ``full``.

    The slice has every function in every soft mode (``one_mode``: in one, rotating), with one
    method, rotating as in the matrix.
    """
    params = []
    for i, op in enumerate(tm.OPS.values()):
        soft = [m for m in op.modes if m != "hard"]
        for j, mode in enumerate(soft):
            chosen = tm._method_for(i, j, op.methods, mode)
            for method in (m for m in op.methods if tm._takes(m, mode)):
                in_slice = method == chosen and (not one_mode or j == i % len(soft))
                marks = [] if in_slice else [pytest.mark.full]
                params.append(pytest.param(op.name, mode, method, marks=marks, id=tm._id(op.name, mode, method)))
    return params


def _sample_inputs(op, seed=0):
    """The op's inputs for each of ``B`` samples of ``N`` distinct values (one sample = one row)."""
    x = tm._distinct((B, N), F64, seed=seed)
    return [op.inputs(x[b], False) for b in range(B)]


def _flat(outs):
    return torch.cat([o.reshape(-1).to(F64) for o in outs if o.is_floating_point()])


def _function_of_first(op, inputs, mode, method):
    """The op as a function of its first floating input (the other inputs fixed), outputs flattened."""
    first = next(i for i, t in enumerate(inputs) if t.is_floating_point())
    kw = tm._kwargs(op, mode, method, S)

    def f(a):
        ins = list(inputs)
        ins[first] = a
        return _flat(tm._tensors(op.call(op.fn, ins, **kw)))

    return f, inputs[first]


@pytest.mark.parametrize("name, mode, method", _cases())
def test_jvp_and_jacfwd_equal_jacrev(name, mode, method):
    op = tm.OPS[name]
    f, a = _function_of_first(op, _sample_inputs(op)[0], mode, method)
    tangent = torch.linspace(-1.0, 1.0, a.numel(), dtype=F64).view(a.shape)
    _, jvp = torch.func.jvp(f, (a,), (tangent,))
    assert torch.isfinite(jvp).all()
    forward, reverse = torch.func.jacfwd(f)(a), torch.func.jacrev(f)(a)
    torch.testing.assert_close(forward, reverse, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(jvp, reverse @ tangent.reshape(-1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, mode, method", _cases(one_mode=True))
def test_hessian_is_finite_and_symmetric(name, mode, method):
    op = tm.OPS[name]
    f, a = _function_of_first(op, _sample_inputs(op)[0], mode, method)
    weights = torch.linspace(0.5, 1.5, f(a).numel(), dtype=F64)
    h = torch.func.hessian(lambda a: (f(a) * weights).sum())(a).reshape(a.numel(), a.numel())
    assert torch.isfinite(h).all()
    torch.testing.assert_close(h, h.T, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, mode, method", _cases())
def test_vmap_equals_calls_per_sample(name, mode, method):
    op = tm.OPS[name]
    samples = _sample_inputs(op)
    kw = tm._kwargs(op, mode, method, S)

    def f(*ins):
        return tuple(tm._tensors(op.call(op.fn, list(ins), **kw)))

    batched = [torch.stack(column) for column in zip(*samples)]
    got = torch.func.vmap(f)(*batched)
    expected = [torch.stack(column) for column in zip(*(f(*ins) for ins in samples))]
    tol = 1e-5 if method in ITERATIVE else 1e-10
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=tol, atol=tol)


@pytest.mark.parametrize("name, mode, method", _cases(one_mode=True))
def test_gradgradcheck(name, mode, method):
    op = tm.OPS[name]
    inputs = op.inputs(tm._distinct((1, 4), F64, seed=3), False)
    f, a = _function_of_first(op, inputs, mode, method)
    assert torch.autograd.gradgradcheck(f, (a.clone().requires_grad_(),), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", [n for n, op in tm.OPS.items() if "hard" in op.modes])
def test_hard_mode_under_forward_mode(name):
    op = tm.OPS[name]
    method = next((m for m in op.methods if m is not None), None)
    f, a = _function_of_first(op, _sample_inputs(op)[0], "hard", method)
    forward, reverse = torch.func.jacfwd(f)(a), torch.func.jacrev(f)(a)
    torch.testing.assert_close(forward, reverse, rtol=0, atol=0)
    base = name.removesuffix("_st")
    if base in STEPS and not name.endswith("_st"):
        assert (forward == 0).all()


# -- torch.compile(fullgraph=True): one compile per (method, mode), several functions in it ---------

#: The functions each compile evaluates.
COMPILED = ("sort", "rank", "topk", "quantile", "max", "argsort", "argmax")


def _compile_params():
    params = []
    for method in tm.METHODS:
        modes = tm.get_method(method).modes
        for mode in modes:
            # CI compiles OT (test_transforms.py compiles softsort, neuralsort and sorting_network;
            # fast_soft_sort and smooth_sort take 10-30 s each); -m full every method and mode
            slice_ = method == "ot" and mode == "c1"
            marks = [] if slice_ else [pytest.mark.full]
            params.append(pytest.param(method, mode, marks=marks, id=f"{method}-{mode}"))
    return params


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("method, mode", _compile_params())
def test_compile_fullgraph_equals_eager(method, mode):
    names = [n for n in COMPILED if method in tm.OPS[n].methods]
    x = tm._distinct((3, 6), torch.float32, seed=4)

    def run(x):
        return [t for n in names for t in tm._run(tm.OPS[n], tm.OPS[n].inputs(x, False), mode, method, S)]

    torch._dynamo.reset()
    try:
        x_eager, x_comp = x.clone().requires_grad_(), x.clone().requires_grad_()
        eager = run(x_eager)
        compiled = torch.compile(run, fullgraph=True, backend="aot_eager")(x_comp)
        assert len(eager) == len(compiled) > 0
        for e, c in zip(eager, compiled):
            torch.testing.assert_close(c, e, rtol=2e-6, atol=2e-6)
        weights = [torch.linspace(-1.0, 1.0, t.numel()).view(t.shape) for t in eager]
        loss_e = sum((t * w).sum() for t, w in zip(eager, weights) if t.requires_grad)
        loss_c = sum((t * w).sum() for t, w in zip(compiled, weights) if t.requires_grad)
        (g_e,) = torch.autograd.grad(loss_e, x_eager)
        (g_c,) = torch.autograd.grad(loss_c, x_comp)
        torch.testing.assert_close(g_c, g_e, rtol=1e-5, atol=1e-5)
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("method", tm.METHODS)
def test_forward_mode_in_a_tensor_softness(method):
    """jacfwd equals jacrev with respect to the softness too (the solvers' tangent in ``s``)."""
    x = tm._distinct((2, N), F64, seed=5)
    mode = "c1" if "c1" in tm.get_method(method).modes else "smooth"

    def f(s):
        values = tm.OPS["sort"].fn(x, -1, softness=s, mode=mode, method=method).values
        return torch.cat(
            [values.reshape(-1), tm.OPS["rank"].fn(x, -1, softness=s, mode=mode, method=method).reshape(-1)]
        )

    s = torch.tensor(3.0, dtype=F64)  # large enough for every method to pool (a nonzero derivative)
    forward, reverse = torch.func.jacfwd(f)(s), torch.func.jacrev(f)(s)
    torch.testing.assert_close(forward, reverse, rtol=1e-6, atol=1e-6)
    assert forward.abs().sum() > 0


@pytest.mark.parametrize("method", tm.METHODS)
def test_dual_tensors_of_forward_ad(method):
    """``torch.autograd.forward_ad`` (dual tensors, no torch.func) gives ``torch.func.jvp``'s tangent."""
    x = tm._distinct((2, N), F64, seed=6)
    tangent = torch.linspace(-1.0, 1.0, x.numel(), dtype=F64).view(x.shape)

    def f(x):
        return tm.OPS["sort"].fn(x, -1, softness=S, mode="smooth", method=method).values

    with fwad.dual_level():
        got = fwad.unpack_dual(f(fwad.make_dual(x, tangent))).tangent
    expected = torch.func.jvp(f, (x,), (tangent,))[1]
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    assert got.abs().sum() > 0
