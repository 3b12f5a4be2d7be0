"""What the harness measures: methods, modes, sizes, the cost model that skips cells, and the
fixed cases of the memory check and of the comparison with the reference library."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._worker import OPS, topk_k

#: The single list of sorting methods benchmarked. Add "ot" and "fast_soft_sort" here when they
#: land; combinations a method does not support are recorded as "n/a", not as failures.
METHODS = ("softsort", "neuralsort", "sorting_network", "ot", "fast_soft_sort")
MODES = ("smooth", "c0", "c1", "c2")

#: (batch, n) grids. The full grid spans 1x10 to 64x10000; --quick finishes in under 2 minutes
#: on a 2-core CPU.
FULL_SHAPES = ((1, 10), (1, 100), (1, 1000), (1, 10000), (64, 10), (64, 100), (64, 1000), (64, 10000))
QUICK_SHAPES = ((1, 10), (64, 100), (1, 1000))

#: Timing options of ``_worker.measure`` (warm-up runs, minimum and maximum timed runs, time
#: box in seconds per measurement); the median is reported.
FULL_TIMING = {"warmup": 2, "repeats": 5, "max_repeats": 50, "budget": 1.0}
QUICK_TIMING = {"warmup": 1, "repeats": 2, "max_repeats": 20, "budget": 0.1}

#: Cells whose estimate exceeds these limits are skipped (and listed as skipped in the table).
MAX_GB = 4.0
MAX_WORK = 2e9

#: Peak-memory target: forward+backward of sort(values only) on (1, 20000) float32 below 1 GiB.
MEMORY_SHAPE = (1, 20000)
MEMORY_METHODS = ("softsort", "neuralsort")
MEMORY_TARGET_MIB = 1024.0
#: Peak-memory target with the permutation (issue 13): forward+backward of the default
#: ``sort(x)`` (values and soft permutation, random cotangents on both) on (16, 2000) float32 at
#: most ``PERMUTATION_MEMORY_FACTOR`` times the bytes of the returned permutation.
PERMUTATION_MEMORY_SHAPE = (16, 2000)
PERMUTATION_MEMORY_METHODS = ("neuralsort", "softsort")
PERMUTATION_MEMORY_FACTOR = 3.0


@dataclass(frozen=True)
class ReferenceCase:
    """One sort benchmark against the reference library and the speed-up it should reach;
    optionally also against ``torchsort.soft_sort`` on the same case."""

    method: str
    batch: int
    n: int
    target: float | None  # minimum speed-up (reference ms / ours ms); None = no target
    torchsort_target: float | None = None  # maximum ours ms / torchsort ms; None = not compared


#: sort, float32, CPU, forward+backward, mode "smooth", values only.
REFERENCE_CASES = (
    ReferenceCase("softsort", 64, 1000, 3.0),
    ReferenceCase("neuralsort", 64, 1000, 3.0),
    ReferenceCase("sorting_network", 64, 1000, 10.0),
    ReferenceCase("ot", 64, 100, 20.0),
    ReferenceCase("fast_soft_sort", 64, 1000, 5.0, torchsort_target=3.0),
)

#: Ops whose soft result is built from these many rows of the soft permutation (index output
#: or internal); the values-only sort needs none.
_DENSE_ROWS = {
    "sort": lambda n: n,
    "sort_values": lambda n: 0,
    "argsort": lambda n: n,
    "topk": topk_k,
    "rank": lambda n: n,
    "quantile": lambda n: 2,
    "max": lambda n: 1,
    "argmax": lambda n: 1,
}
_BYTES_PER_ENTRY = 4 * 4  # float32, times ~4 live copies (output, saved, grad, temporaries)
_OT_ITERATIONS = 100


def _network(n: int) -> tuple[int, int]:
    """Padded width and number of compare-and-swap layers of a bitonic network for n."""
    width = 1 << max(0, math.ceil(math.log2(max(n, 1))))
    depth = int(math.log2(width))
    return width, max(1, depth * (depth + 1) // 2)


def estimate(op: str, method: str, batch: int, n: int) -> tuple[float, float]:
    """Rough (element-operations, bytes) of one forward+backward, used only to skip cells."""
    rows = _DENSE_ROWS[op](n)
    if method == "sorting_network":
        width, layers = _network(n)
        carried = max(rows, 1)  # rows of the permutation carried through every layer
        return batch * width * carried * layers, batch * width * carried * _BYTES_PER_ENTRY
    if method == "fast_soft_sort":
        return batch * n * max(1.0, math.log2(n)), batch * n * _BYTES_PER_ENTRY
    if method == "softsort":  # only the rows asked for (all n for sort, in row blocks)
        return batch * n * (n if op == "sort_values" else max(rows, 1)), batch * rows * n * _BYTES_PER_ENTRY
    work = batch * n * n * (_OT_ITERATIONS if method == "ot" else 1)  # neuralsort: sum_k |x_j - x_k|
    dense = n if method == "ot" else rows
    return work, batch * dense * n * _BYTES_PER_ENTRY


def skip_reason(
    op: str, method: str, batch: int, n: int, *, max_gb: float = MAX_GB, max_work: float = MAX_WORK
) -> str | None:
    """Why a cell is not run (too big or too slow by the estimate), or None to run it."""
    work, nbytes = estimate(op, method, batch, n)
    if nbytes > max_gb * 1e9:
        return f"skipped: est. {nbytes / 1e9:.0f} GB > {max_gb:g} GB"
    if work > max_work:
        return f"skipped: est. {work:.1e} ops > {max_work:.0e} (too slow)"
    return None


def soft_cases(
    devices,
    shapes,
    *,
    ops=OPS,
    methods=METHODS,
    modes=MODES,
    timing=None,
    max_gb: float = MAX_GB,
    max_work: float = MAX_WORK,
) -> list[dict]:
    """Every operator x method x mode x shape x device cell, with ``skip`` set where skipped."""
    cases = []
    for device in devices:
        for op in ops:
            for method in methods:
                for mode in modes:
                    for batch, n in shapes:
                        case = dict(op=op, method=method, mode=mode, batch=batch, n=n, device=device, **(timing or {}))
                        reason = skip_reason(op, method, batch, n, max_gb=max_gb, max_work=max_work)
                        cases.append(dict(case, skip=reason) if reason else case)
    return cases


def baseline_cases(devices, shapes, ops=OPS, timing=None, *, library_ops=OPS) -> list[dict]:
    """One case per device x op x shape for a baseline library supporting ``library_ops``."""
    return [
        dict(op=op, method="-", mode="-", batch=batch, n=n, device=device, **(timing or {}))
        for device in devices
        for op in ops
        if op in library_ops
        for batch, n in shapes
    ]
