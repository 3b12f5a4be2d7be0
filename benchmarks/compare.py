"""Side by side: softtorch against the reference 0.1.1, torchsort and diffsort, each in its own
worker process, on the calls users make (the ``compare`` and ``acceptance`` parts of run.py).

A *cell* is one call (op, method, mode, batch x n, softness, threads), timed forward + backward
with a seeded random cotangent on every output. For each group of cells (same threads, shape,
op and method) the workers run one after the other, ours first, so that all sides of a group see
the same machine load: ours and the reference on every cell, torchsort on the sort/rank cells of the
modes it has a matching regularization for (``_worker.TORCHSORT_REGULARIZATION``), diffsort on
the sorting-network sort cells small enough to finish (``DIFFSORT_MAX_WORK``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import _worker, grid, report

#: Sizes, softnesses and ops of the ``compare`` part (issue 13's grid).
COMPARE_SHAPES = ((64, 100), (64, 1000), (1, 10000))
COMPARE_SOFTNESS = (0.1, 1.0)
COMPARE_OPS = ("sort", "sort_values", "argsort", "topk", "rank", "quantile", "max")
#: diffsort's bitonic network on CPU: skip it past this many batch * width^2 * layers (64x100
#: takes about 1.5 s per call; 64x1000 did not finish in 5 minutes).
DIFFSORT_MAX_WORK = 1e8
#: Timing of each side: one untimed run, then at least 3 timed runs or 3 x budget seconds.
TIMING = {"warmup": 1, "repeats": 3, "max_repeats": 50, "budget": 3.0, "forward": False}


@dataclass(frozen=True)
class Target:
    """An acceptance bound: ``ratio`` of ``other`` to ours at least ``low`` (speed-ups) or, for
    ``other="torchsort"``, ours at most ``high`` times torchsort."""

    issue: int
    other: str  # "reference" or "torchsort"
    low: float | None = None
    high: float | None = None


def _cell(op, method, mode, batch, n, softness, threads, target=None):
    case = dict(op=op, method=method, mode=mode, batch=batch, n=n, softness=softness, device="cpu", **TIMING)
    case["threads"] = threads
    if target is not None:
        case["target"] = target.__dict__
    return case


def acceptance_cells(default_threads: int) -> list[dict]:
    """Exactly the benchmark acceptance cells of issues 13 and 14 (float32, CPU)."""
    cells = []
    for threads in sorted({1, default_threads}):
        for method in ("softsort", "neuralsort"):
            for op in ("sort", "argsort", "rank", "topk"):
                cells.append(_cell(op, method, "smooth", 64, 1000, 0.1, threads, Target(13, "reference", low=5.0)))
        cells.append(_cell("sort", "sorting_network", "smooth", 64, 1000, 0.1, threads, Target(13, "reference", 2.0)))
        cells.append(
            _cell("sort_values", "sorting_network", "smooth", 64, 1000, 0.1, threads, Target(13, "reference", 20.0))
        )
    for op in ("sort", "rank"):
        for softness in (0.1, 0.5, 2.0):
            for batch, n in ((64, 1000), (256, 100), (1, 10000), (1, 64)):
                for mode in _worker.TORCHSORT_REGULARIZATION:
                    target = Target(14, "torchsort", high=1.5)
                    cells.append(_cell(op, "fast_soft_sort", mode, batch, n, softness, default_threads, target))
                    cells[-1]["target_reference"] = 5.0
    return cells


def compare_cells(
    threads: int,
    methods,
    modes,
    shapes=COMPARE_SHAPES,
    ops=COMPARE_OPS,
    softness=COMPARE_SOFTNESS,
    max_work: float = grid.MAX_WORK,
) -> list[dict]:
    """Every op x method x mode x shape x softness of the side-by-side grid (too slow: ``skip``)."""
    cells = []
    for batch, n in shapes:
        for op in ops:
            for method in methods:
                for mode in modes:
                    for s in softness:
                        cell = _cell(op, method, mode, batch, n, s, threads)
                        reason = grid.skip_reason(_cost_op(op), method, batch, n, max_work=max_work)
                        cells.append(dict(cell, skip=reason) if reason else cell)
    return cells


def _cost_op(op: str) -> str:
    """The op whose cost model (``grid.estimate``) fits ``op``: a permutation-returning call
    costs as much as rank (all n rows)."""
    return {"sort": "rank", "argsort": "rank", "sort_values": "sort"}.get(op, op)


def _diffsort_fits(cell: dict) -> bool:
    width = 1 << max(0, math.ceil(math.log2(max(cell["n"], 1))))
    layers = max(1, int(math.log2(width)) * (int(math.log2(width)) + 1) // 2)
    return cell["batch"] * width * width * layers <= DIFFSORT_MAX_WORK


def _side_key(cell: dict, side: str) -> tuple:
    """What a side's measurement is shared by: torchsort and diffsort do not depend on the method
    (nor torchsort on the modes of the same regularization)."""
    base = (side, cell["threads"], cell["batch"], cell["n"], cell["softness"])
    if side == "torchsort":
        return base + ({"sort_values": "sort"}.get(cell["op"], cell["op"]), cell["mode"])
    if side == "diffsort":
        return base + (cell["op"],)
    return base + (cell["op"], cell["method"], cell["mode"])


def _wants(cell: dict, side: str) -> bool:
    if cell.get("skip"):
        return False
    if side == "torchsort":
        return cell["op"] in ("sort", "sort_values", "rank") and cell["mode"] in _worker.TORCHSORT_REGULARIZATION
    if side == "diffsort":
        return cell["method"] == "sorting_network" and cell["op"] == "sort" and _diffsort_fits(cell)
    return True


def run_cells(cells: list[dict], sides: dict, run_worker, log) -> list[dict]:
    """Measure ``cells`` on every side; ``sides`` maps a side name to ``(library, python, path)``.

    Cells are grouped by (threads, shape, op, method), small groups so that the sides of a cell
    run within seconds of each other; within a group each side runs in one fresh worker process,
    the sides one after the other. Returns the cells with one result dict per side.
    """
    groups = {}
    for cell in cells:
        groups.setdefault((cell["threads"], cell["batch"], cell["n"], cell["op"], cell["method"]), []).append(cell)
    measured = {}
    for (threads, batch, n, _, _), group in groups.items():
        for side, (library, python, path) in sides.items():
            todo, seen = [], set()
            for cell in group:
                k = _side_key(cell, side)
                if _wants(cell, side) and k not in measured and k not in seen:
                    seen.add(k)
                    todo.append(cell)
            if not todo:
                continue
            log(f"[compare] {side}: {len(todo)} cells at {batch}x{n}, {threads} thread(s)")
            task = {"library": library, "path": path, "threads": threads, "cases": todo}
            try:
                answers = run_worker(python, task)["results"]
            except RuntimeError as exc:
                answers = [dict(c, status="error", error=str(exc)) for c in todo]
            for cell, answer in zip(todo, answers):
                measured[_side_key(cell, side)] = answer
    out = []
    for cell in cells:
        row = dict(cell)
        for side in sides:
            if _wants(cell, side):
                row[side] = measured.get(_side_key(cell, side))
        out.append(row)
    return out


def _ms(row: dict, side: str):
    r = row.get(side) or {}
    return r.get("fwdbwd_ms") if r.get("status") == "ok" else None


def _side_text(row: dict, side: str) -> str:
    r = row.get(side)
    if r is None:
        return report.DASH
    if r.get("status") != "ok":
        return r.get("status", "?") if r.get("status") == "n/a" else "error"
    return report.fmt_ms(r.get("fwdbwd_ms"))


def _verdict(row: dict) -> str:
    target = row.get("target")
    ours = _ms(row, "ours")
    if target is None or ours is None:
        return report.DASH
    verdicts = []
    ref = _ms(row, "reference")
    if target["other"] == "reference" or row.get("target_reference"):
        low = target["low"] if target["other"] == "reference" else row["target_reference"]
        verdicts.append(f"ref/ours >= {low:g}: " + ("yes" if ref is not None and ref / ours >= low else "NO"))
    if target["other"] == "torchsort":
        ts = _ms(row, "torchsort")
        verdicts.append(f"ours/ts <= {target['high']:g}: " + ("yes" if ts and ours / ts <= target["high"] else "NO"))
    return "; ".join(verdicts)


HEADERS = [
    "op",
    "method",
    "mode",
    "shape",
    "softness",
    "threads",
    "ours ms",
    "reference ms",
    "ref ÷ ours",
    "torchsort ms",
    "ours ÷ torchsort",
    "diffsort ms",
]


def table(rows: list[dict], with_targets: bool = False) -> str:
    """The side-by-side table (fwd+bwd medians in ms)."""
    lines = []
    for r in rows:
        shape = f"{r['batch']}x{r['n']}"
        head = [r["op"], r["method"], r["mode"], shape, f"{r['softness']:g}", str(r["threads"])]
        if r.get("skip"):
            lines.append(head + [r["skip"]] + [report.DASH] * (len(HEADERS) - len(head) - 1 + with_targets))
            continue
        ours, ref, ts = _ms(r, "ours"), _ms(r, "reference"), _ms(r, "torchsort")
        cells = [
            _side_text(r, "ours"),
            _side_text(r, "reference"),
            report.fmt_ratio(ref, ours),
            _side_text(r, "torchsort"),
            report.fmt_ratio(ours, ts),
            _side_text(r, "diffsort"),
        ]
        lines.append(head + cells + ([_verdict(r)] if with_targets else []))
    headers = HEADERS + (["target met"] if with_targets else [])
    return report.markdown(headers, lines)


def worst(rows: list[dict]) -> str:
    """One line per target kind: the worst measured ratio (not the best)."""
    lines = []
    for issue, other in ((13, "reference"), (14, "torchsort"), (14, "reference")):
        picked = [
            r
            for r in rows
            if r.get("target")
            and r["target"]["issue"] == issue
            and (r["target"]["other"] == other or (other == "reference" and r.get("target_reference")))
        ]
        ratios = []
        for r in picked:
            ours, theirs = _ms(r, "ours"), _ms(r, other)
            if ours and theirs:
                ratios.append((theirs / ours if other == "reference" else ours / theirs, r))
        if not ratios:
            continue
        value, r = (min if other == "reference" else max)(ratios, key=lambda t: t[0])
        what = "reference ÷ ours, lowest" if other == "reference" else "ours ÷ torchsort, highest"
        lines.append(
            f"- issue {issue}, {what}: {value:.3g}x at {r['op']} {r['method']} {r['mode']} "
            f"{r['batch']}x{r['n']} softness {r['softness']:g}, {r['threads']} thread(s)"
        )
    return "\n".join(lines)


def slower_than_reference(rows: list[dict]) -> str:
    """The cells where ours is slower than the reference (the 'no cell slower' target)."""
    bad = [r for r in rows if _ms(r, "ours") and _ms(r, "reference") and _ms(r, "ours") > _ms(r, "reference")]
    if not bad:
        return "No measured cell is slower than the reference."
    return "Slower than the reference:\n\n" + table(bad)


def plot(path, rows: list[dict]) -> str:
    """Log-log fwd+bwd time against n (mode smooth, softness 0.1): ours solid, reference dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    picked = [r for r in rows if r["mode"] == "smooth" and r["softness"] == 0.1 and not r.get("skip")]
    ops = sorted(
        {r["op"] for r in picked}, key=COMPARE_OPS.index if all(r["op"] in COMPARE_OPS for r in picked) else str
    )
    if not ops:
        return "nothing to plot"
    cols = min(4, len(ops))
    fig, axes = plt.subplots(
        (len(ops) + cols - 1) // cols, cols, figsize=(4 * cols, 3.2 * ((len(ops) + cols - 1) // cols)), squeeze=False
    )
    for ax, op in zip(axes.flat, ops):
        for i, method in enumerate(grid.METHODS):
            line = sorted((r["n"], r) for r in picked if r["op"] == op and r["method"] == method)
            color = f"C{i}"
            for side, style in (("ours", "-"), ("reference", "--")):
                pts = [(n, _ms(r, side)) for n, r in line if _ms(r, side)]
                if pts:
                    ax.loglog(
                        *zip(*pts),
                        style,
                        marker="o",
                        color=color,
                        label=f"{method} ({'ours' if side == 'ours' else 'ref'})",
                    )
        ax.set_title(op)
        ax.set_xlabel("n (64 x 100, 64 x 1000, 1 x 10000)")
        ax.set_ylabel("fwd+bwd ms")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"
