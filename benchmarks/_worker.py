"""Measure one library's operators: the single copy of the timing and memory code.

The harness (``run.py``) imports this module to time the grid in-process, and runs it as a
script to measure in a fresh interpreter: the reference library lives in another venv, and peak
memory needs one process per case. Both libraries are therefore measured by the same code.

As a script it reads one JSON task on stdin and prints one JSON object on stdout::

    {"library": "softtorch" | "torch" | "torchsort" | "diffsort",
     "path": "/repo/root" or null,     # put first on sys.path before importing softtorch
     "threads": 2,                     # torch.set_num_threads
     "task": "time" | "memory",
     "cases": [{"op": "sort", "method": "neuralsort", "mode": "smooth",
                "batch": 64, "n": 1000, "device": "cpu", ...}, ...]}

It depends on torch only (plus the measured library), so it runs under any interpreter.
"""

from __future__ import annotations

import importlib
import inspect
import json
import platform
import resource
import statistics
import sys
import time
import traceback

import torch

#: Operators, in table order, each timed through its DEFAULT call (every output it returns):
#: ``sort`` returns the values and, for the methods with one, the soft permutation;
#: ``sort_values`` is ``sort(..., return_indices=False)``; ``k`` of topk is ``n // 10``; ``q`` of
#: quantile is ``QUANTILE_Q``; max and argmax reduce ``dim=-1``.
OPS = ("sort", "sort_values", "argsort", "topk", "rank", "quantile", "max", "argmax")
QUANTILE_Q = 0.3
DEFAULT_SOFTNESS = 0.1
#: Exceptions meaning "this library does not offer that combination" (recorded as "n/a"); a
#: missing operator is reported as NotImplementedError.
UNSUPPORTED = (NotImplementedError, ValueError)
#: torchsort regularization matching a softtorch mode (the projections of fast_soft_sort): the
#: entropic one for "smooth", the Euclidean one for "c0".
TORCHSORT_REGULARIZATION = {"smooth": "kl", "c0": "l2"}


class NotDifferentiable(RuntimeError):
    """The measured output carries no gradient (hard argmax, hard rank)."""


def topk_k(n: int) -> int:
    """The k used for topk at length n (n/10, at least 1)."""
    return max(1, n // 10)


def load_library(name: str, path: str | None = None):
    """Import ``softtorch`` (from ``path`` first when given), ``torchsort`` or ``torch``."""
    if path:
        sys.path.insert(0, path)
    return importlib.import_module(name)


def library_info(lib) -> dict:
    """Version, location and interpreter facts recorded next to every measurement."""
    return {
        "library": lib.__name__,
        "version": getattr(lib, "__version__", "unknown"),
        "file": getattr(lib, "__file__", None),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }


def _supported_kwargs(fn, kwargs: dict) -> dict:
    """Drop keywords that ``fn`` does not accept (signatures differ between versions)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _tensors(out) -> list:
    """Every tensor of an output (a tensor or a (named) tuple; ``None`` entries dropped)."""
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for t in out if isinstance(t, torch.Tensor)]


def soft_call(lib, case: dict):
    """Return ``f(x) -> [Tensor, ...]`` calling the soft operator of a softtorch-like library.

    The same keywords are passed to every library (``dim=-1`` explicitly, since the reference
    defaults some operators to ``dim=None``); keywords a library does not know are dropped.
    Every output the call returns is kept (values and soft indices alike).
    Raises ``NotImplementedError`` when the library lacks the operator.
    """
    op = case["op"]
    name = "sort" if op == "sort_values" else op
    fn = getattr(lib, name, None)
    if fn is None:
        raise NotImplementedError(f"{lib.__name__} has no {name}")
    kwargs = {
        "dim": -1,
        "softness": case.get("softness", DEFAULT_SOFTNESS),
        "mode": case["mode"],
        "method": case["method"],
    }
    if op == "sort_values":
        if "return_indices" not in inspect.signature(fn).parameters:
            raise NotImplementedError(f"{lib.__name__}.sort has no return_indices")
        kwargs["return_indices"] = False
    kwargs = _supported_kwargs(fn, kwargs)
    extra = {"topk": (topk_k(case["n"]),), "quantile": (QUANTILE_Q,)}.get(op, ())
    return lambda x: _tensors(fn(x, *extra, **kwargs))


def hard_call(case: dict):
    """Return ``f(x) -> [Tensor]`` running the exact torch operator that ``op`` relaxes."""
    op, n = case["op"], case["n"]
    calls = {
        "sort": lambda x: torch.sort(x, dim=-1).values,
        "sort_values": lambda x: torch.sort(x, dim=-1).values,
        "argsort": lambda x: torch.argsort(x, dim=-1),
        "topk": lambda x: torch.topk(x, topk_k(n), dim=-1).values,
        "rank": lambda x: x.argsort(dim=-1).argsort(dim=-1),
        "quantile": lambda x: torch.quantile(x, QUANTILE_Q, dim=-1),
        "max": lambda x: torch.max(x, dim=-1).values,
        "argmax": lambda x: torch.argmax(x, dim=-1),
    }
    return lambda x: [calls[op](x)]


def torchsort_strength(op: str, n: int, softness: float) -> float:
    """torchsort's ``regularization_strength`` for softtorch's fast_soft_sort ``softness``.

    softtorch scales the slots to ``[0, 1]`` (``a_j = j / (n - 1)``) where torchsort uses
    ``1 .. n``, so with ``standardize=False`` and ``"l2"``/``"c0"`` the two agree exactly (checked
    to 1e-13) at ``softness * (n - 1)`` for sort and ``softness / (n - 1)`` for rank. (The entropic
    variants differ in form, so ``"kl"``/``"smooth"`` is the same scale, not the same numbers.)
    """
    scale = max(n - 1, 1)
    return softness * scale if op in ("sort", "sort_values") else softness / scale


def torchsort_call(lib, case: dict):
    """Return ``f(x) -> [Tensor]`` for torchsort's soft_sort / soft_rank (sort and rank only).

    ``regularization_strength`` follows the case's softness (``torchsort_strength``); the
    regularization follows its mode (``TORCHSORT_REGULARIZATION``), torchsort's default ("l2")
    for any other mode.
    """
    fns = {"sort": lib.soft_sort, "sort_values": lib.soft_sort, "rank": lib.soft_rank}
    if case["op"] not in fns:
        raise NotImplementedError(f"torchsort has no {case['op']}")
    fn = fns[case["op"]]
    kwargs = {
        "regularization_strength": torchsort_strength(case["op"], case["n"], case.get("softness", DEFAULT_SOFTNESS))
    }
    if case.get("mode") in TORCHSORT_REGULARIZATION:
        kwargs["regularization"] = TORCHSORT_REGULARIZATION[case["mode"]]
    return lambda x: [fn(x, **kwargs)]


def diffsort_call(lib, case: dict):
    """Return ``f(x) -> [values, permutation]`` for diffsort's bitonic ``DiffSortNet`` (sort only).

    The steepness (inverse temperature) is ``1 / softness``; the network is built once, outside
    the timed calls.
    """
    if case["op"] != "sort":
        raise NotImplementedError(f"diffsort has no {case['op']}")
    net = lib.DiffSortNet(
        "bitonic", case["n"], device=case.get("device", "cpu"), steepness=1.0 / case.get("softness", DEFAULT_SOFTNESS)
    )
    return lambda x: list(net(x))


def make_call(lib, case: dict):
    """Dispatch on the library name to the matching ``f(x)`` builder."""
    if lib.__name__ == "torch":
        return hard_call(case)
    builders = {"torchsort": torchsort_call, "diffsort": diffsort_call}
    return builders.get(lib.__name__, soft_call)(lib, case)


def make_input(case: dict) -> torch.Tensor:
    """A seeded ``(batch, n)`` float32 input that requires grad, on the case's device."""
    gen = torch.Generator().manual_seed(case.get("seed", 0))
    x = torch.randn(case["batch"], case["n"], generator=gen, dtype=torch.float32)
    return x.to(case.get("device", "cpu")).requires_grad_(True)


def _sync(device: str) -> None:
    """Wait for queued kernels; a no-op except on CUDA."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cotangents(outputs: list, seed: int = 1) -> list:
    """Seeded ``randn`` cotangents for every differentiable output (made once, outside the timing)."""
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(o.shape, generator=gen, dtype=o.dtype).to(o.device) if o.requires_grad else None for o in outputs
    ]


def _step(fn, x: torch.Tensor, backward: bool, cots: list | None = None) -> list | None:
    """One forward, plus a backward with the cotangents ``cots`` on every differentiable output.

    Returns the cotangents (made on the first call when ``cots`` is None)."""
    x.grad = None
    outs = fn(x)
    if not backward:
        return cots
    if cots is None:
        cots = cotangents(outs)
    pairs = [(o, c) for o, c in zip(outs, cots) if c is not None]
    if not pairs:
        raise NotDifferentiable("output has no gradient")
    torch.autograd.backward([o for o, _ in pairs], [c for _, c in pairs])
    return cots


def call_times(f, reps: int, warmup: int = 1) -> list:
    """Sorted wall times in ms of ``reps`` calls of ``f()`` after ``warmup`` untimed ones (CPU: no
    device sync), for the floor scripts that time a bare operation rather than a cell."""
    for _ in range(warmup):
        f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)


def measure(
    fn,
    x: torch.Tensor,
    backward: bool,
    *,
    warmup: int = 1,
    repeats: int = 3,
    max_repeats: int = 50,
    budget: float = 1.0,
) -> dict:
    """Median (and min) wall time in ms of ``_step``, after up to ``warmup`` untimed runs (at
    least one, which also draws the seeded random cotangents of every output).

    Time-boxed so that a grid spanning 1x10 to 64x10000 stays affordable: warm-up stops after
    a run longer than ``budget``; timed runs go on while under ``budget`` seconds (fast cells
    get up to ``max_repeats`` runs, a median robust to a busy machine) and stop past it once
    ``repeats`` runs are done, or past ``3 * budget`` whatever the count (at least one run).
    """
    device = str(x.device)
    cots = _step(fn, x, backward)  # untimed: makes the cotangents and warms up
    _sync(device)
    for _ in range(warmup - 1):
        t0 = time.perf_counter()
        _step(fn, x, backward, cots)
        _sync(device)
        if time.perf_counter() - t0 > budget:
            break
    times, start = [], time.perf_counter()
    while len(times) < max_repeats:
        t0 = time.perf_counter()
        _step(fn, x, backward, cots)
        _sync(device)
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if elapsed >= budget and (len(times) >= repeats or elapsed >= 3 * budget):
            break
    return {"ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times), "runs": len(times)}


def _prefixed(prefix: str, timing: dict) -> dict:
    """``{"ms": 1.0, "runs": 3}`` -> ``{"fwd_ms": 1.0, "fwd_runs": 3}``."""
    return {f"{prefix}_{key}": value for key, value in timing.items()}


def time_case(lib, case: dict) -> dict:
    """Time forward and forward+backward of one case; never raises.

    ``status`` is "ok", "n/a" (the library rejects the combination: missing operator,
    NotImplementedError or ValueError) or "error". A non-differentiable output (hard argmax,
    hard rank) gives ``fwdbwd_ms = None`` with status "ok"; ``forward: false`` in the case skips
    the forward-only timing (``fwd_ms = None``). On CUDA ``peak_mib`` is the
    allocator peak during the forward+backward runs (input included).
    """
    result = dict(case, fwd_ms=None, fwdbwd_ms=None)
    opts = {k: case[k] for k in ("warmup", "repeats", "max_repeats", "budget") if k in case}
    try:
        fn, x = make_call(lib, case), make_input(case)
        if case.get("forward", True):
            result.update(_prefixed("fwd", measure(fn, x, backward=False, **opts)))
        result["status"] = "ok"
        cuda = x.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        result.update(_prefixed("fwdbwd", measure(fn, x, backward=True, **opts)))
        if cuda:
            result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    except NotDifferentiable:
        pass
    except UNSUPPORTED as exc:
        result.update(status="n/a", error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - one broken cell must not stop the run
        result.update(status="error", error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc(limit=3))
    return result


def peak_rss_mib() -> float:
    """Peak resident memory of this process image, in MiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of the address space created by
    exec. Not ``ru_maxrss``: Linux carries it over exec from the forked (or vforked) copy of the
    parent, so a worker started by a parent that once held 5 GiB reports at least 5 GiB.
    Elsewhere ``ru_maxrss`` is the fallback (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def memory_case(lib, case: dict) -> dict:
    """Peak memory of one forward+backward (or of the baseline when ``op == "baseline"``).

    Meant to run alone in a fresh process. Both the case and the baseline first run the same
    operator once on a tiny input, so import and lazy-initialisation costs cancel when the
    harness subtracts the baseline. CPU: this process's peak RSS (``peak_rss_mib``).
    CUDA: ``torch.cuda.max_memory_allocated`` around the measured step only.
    """
    result = dict(case)
    device = case.get("device", "cpu")
    try:
        baseline = case["op"] == "baseline"
        probe = dict(case, op=case["probe_op"] if baseline else case["op"], batch=1, n=16)
        _step(make_call(lib, probe), make_input(probe), backward=True)
        x = make_input(case)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        if not baseline:
            _step(make_call(lib, case), x, backward=True)
        _sync(device)
        result.update(status="ok", maxrss_mib=peak_rss_mib())
        if device.startswith("cuda"):
            result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        del x
    except UNSUPPORTED as exc:
        result.update(status="n/a", error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001
        result.update(status="error", error=f"{type(exc).__name__}: {exc}")
    return result


def run_task(task: dict) -> dict:
    """Run every case of a task (see the module docstring) and return the JSON-able answer."""
    torch.set_num_threads(int(task.get("threads", torch.get_num_threads())))
    lib = load_library(task["library"], task.get("path"))
    run = memory_case if task.get("task") == "memory" else time_case
    return {"meta": library_info(lib), "results": [run(lib, c) for c in task["cases"]]}


def main() -> None:
    """Script entry point: JSON task on stdin (or as the first argument), JSON on stdout."""
    raw = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    json.dump(run_task(json.loads(raw)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
