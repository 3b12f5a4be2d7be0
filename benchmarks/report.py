"""Turn measurements into the markdown tables, the JSON file and the plot."""

from __future__ import annotations

import json
from pathlib import Path

DASH = "—"


def key(case: dict) -> tuple:
    """The (device, op, batch, n) a baseline is looked up by."""
    return case.get("device", "cpu"), case["op"], case["batch"], case["n"]


def fmt_ms(value: float | None) -> str:
    """Milliseconds with 3 significant digits, or a dash."""
    return DASH if value is None else f"{value:.3g}"


def fmt_ratio(num: float | None, den: float | None) -> str:
    """``num / den`` as ``"12.3x"``, or a dash when either is missing."""
    if num is None or not den:
        return DASH
    return f"{num / den:.3g}x"


def fmt_mib(value: float | None) -> str:
    """MiB with one decimal, or a dash."""
    return DASH if value is None else f"{value:.1f}"


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _status_text(result: dict) -> str | None:
    """What to print instead of numbers for a skipped, unsupported or failed cell."""
    if result.get("skip"):
        return result["skip"]
    if result.get("status") == "n/a":
        return "n/a"
    if result.get("status") == "error":
        return "error: " + result.get("error", "")[:60].replace("|", "/")
    return None


GRID_HEADERS = [
    "device",
    "op",
    "method",
    "mode",
    "shape",
    "fwd ms",
    "fwd+bwd ms",
    "hard fwd ms",
    "÷ hard fwd",
    "peak MiB",
    "÷ torchsort",
]


def grid_rows(results: list[dict], hard: dict, torchsort: dict) -> list[list[str]]:
    """Rows of the main table; ``hard`` and ``torchsort`` map ``key(case)`` to their result."""
    rows = []
    for r in results:
        base = hard.get(key(r), {})
        ts = torchsort.get(key(r), {})
        head = [r["device"], r["op"], r["method"], r["mode"], f"{r['batch']}x{r['n']}"]
        text = _status_text(r)
        if text:
            rows.append(head + [text, DASH, fmt_ms(base.get("fwd_ms"))] + [DASH] * 3)
            continue
        rows.append(
            head
            + [
                fmt_ms(r["fwd_ms"]),
                fmt_ms(r.get("fwdbwd_ms")),
                fmt_ms(base.get("fwd_ms")),
                fmt_ratio(r.get("fwdbwd_ms"), base.get("fwd_ms")),
                fmt_mib(r.get("peak_mib")),
                fmt_ratio(r.get("fwdbwd_ms"), ts.get("fwdbwd_ms")),
            ]
        )
    return rows


def grid_table(results: list[dict], hard: dict, torchsort: dict) -> str:
    """The main markdown table with its legend."""
    legend = (
        "fwd = forward only; fwd+bwd = forward + backward with a ones cotangent; medians in ms. "
        "x requires grad in both. "
        "`÷ hard fwd` = soft fwd+bwd / hard torch fwd (the extra cost of a trainable operator "
        "over the op you would otherwise run). "
        "`÷ torchsort` = soft fwd+bwd / torchsort fwd+bwd (soft_sort, soft_rank; < 1 = faster). "
        "peak MiB: CUDA max_memory_allocated, or subprocess RSS with `--grid-memory` on CPU. "
        "n/a = the method rejects the combination (NotImplementedError/ValueError/missing)."
    )
    return legend + "\n\n" + markdown(GRID_HEADERS, grid_rows(results, hard, torchsort))


def baseline_table(hard: dict, torchsort: dict) -> str:
    """The hard torch (and torchsort) timings themselves."""
    rows = []
    for k, h in hard.items():
        ts = torchsort.get(k, {})
        rows.append(
            [
                k[0],
                k[1],
                f"{k[2]}x{k[3]}",
                fmt_ms(h.get("fwd_ms")),
                fmt_ms(h.get("fwdbwd_ms")),
                fmt_ms(ts.get("fwd_ms")),
                fmt_ms(ts.get("fwdbwd_ms")),
            ]
        )
    return markdown(
        ["device", "op", "shape", "torch fwd ms", "torch fwd+bwd ms", "torchsort fwd ms", "torchsort fwd+bwd ms"], rows
    )


def memory_table(results: list[dict], target_mib: float) -> str:
    """Peak memory of the memory check against its target."""
    rows = []
    for r in results:
        shape = f"{r['batch']}x{r['n']}"
        peak = r.get("peak_mib")
        ok = DASH if peak is None else ("yes" if peak < target_mib else "**NO**")
        rows.append(
            [
                r["device"],
                r["method"],
                shape,
                r.get("how", ""),
                _status_text(r) or fmt_mib(peak),
                fmt_mib(r.get("baseline_mib")),
                ok,
            ]
        )
    return markdown(
        ["device", "method", "shape", "measured as", "peak MiB", "baseline MiB", f"< {target_mib / 1024:g} GiB"], rows
    )


def permutation_memory_table(results: list[dict], factor: float) -> str:
    """Peak memory of the sort with its permutation against ``factor`` x the permutation's bytes."""
    rows = []
    for r in results:
        peak, perm = r.get("peak_mib"), r.get("permutation_mib")
        ok = DASH if peak is None else ("yes" if peak <= factor * perm else "NO")
        head = [r["device"], r["method"], f"{r['batch']}x{r['n']}"]
        text = _status_text(r)
        rows.append(
            head + ([text, DASH, DASH, DASH] if text else [fmt_mib(peak), fmt_mib(perm), fmt_ratio(peak, perm), ok])
        )
    return markdown(["device", "method", "shape", "peak MiB", "permutation MiB", "peak ÷ permutation", "met"], rows)


def _versus_table(pairs: list[dict], other: str, target_key: str, faster: bool, headers: list[str]) -> str:
    """Ours vs ``other`` (a key of each pair) at fwd+bwd: the ratio of the medians, judged
    against ``target_key`` (ratio >= target when ``faster``: other ms / ours ms; else ours ms /
    other ms <= target), and the ratio of the fastest runs (less sensitive to a busy machine)."""
    rows = []
    for p in pairs:
        if other not in p:
            continue
        ours, them = p["ours"], p[other]
        top, bottom = (them, ours) if faster else (ours, them)
        target, met = p.get(target_key), DASH
        if target and ours.get("fwdbwd_ms") and them.get("fwdbwd_ms"):
            ratio = top["fwdbwd_ms"] / bottom["fwdbwd_ms"]
            met = "yes" if (ratio >= target if faster else ratio <= target) else "**NO**"
        rows.append(
            [
                p["method"],
                f"{p['batch']}x{p['n']}",
                _status_text(ours) or fmt_ms(ours.get("fwdbwd_ms")),
                _status_text(them) or fmt_ms(them.get("fwdbwd_ms")),
                fmt_ratio(top.get("fwdbwd_ms"), bottom.get("fwdbwd_ms")),
                fmt_ratio(top.get("fwdbwd_min_ms"), bottom.get("fwdbwd_min_ms")),
                (f">= {target:g}x" if faster else f"<= {target:g}x") if target else DASH,
                met,
            ]
        )
    return markdown(["method", "shape", "ours fwd+bwd ms", *headers, "target", "met"], rows)


def reference_table(pairs: list[dict]) -> str:
    """Ours vs the reference library: speed-up = reference ms / ours ms."""
    return _versus_table(
        pairs,
        "reference",
        "target",
        True,
        ["reference fwd+bwd ms", "speed-up (median)", "speed-up (min)"],
    )


def torchsort_table(pairs: list[dict]) -> str:
    """Ours vs torchsort on the reference cases that have a torchsort target: ours ms /
    torchsort ms (< 1: softtorch is faster)."""
    return _versus_table(
        pairs,
        "torchsort",
        "torchsort_target",
        False,
        ["torchsort fwd+bwd ms", "ours ÷ torchsort (median)", "ours ÷ torchsort (min)"],
    )


def write_json(path: Path, payload: dict) -> None:
    """Raw numbers, indented."""
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")


def plot(path: Path, results: list[dict], hard: dict, torchsort: dict) -> str:
    """fwd+bwd time against n for mode "smooth" on the first device (other modes are in the
    table): one row of panels per batch size, one panel per op. Returns a message; skips when
    matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: skipped the plot"
    ok = [r for r in results if r.get("status") == "ok" and not r.get("skip")]
    if not ok:
        return "nothing measured: skipped the plot"
    device = ok[0]["device"]
    ops = list(dict.fromkeys(r["op"] for r in results))
    batches = sorted({r["batch"] for r in results})
    fig, axes = plt.subplots(
        len(batches), len(ops), squeeze=False, figsize=(max(3.6 * len(ops), 6.0), 3.2 * len(batches))
    )
    for row, batch in zip(axes, batches):
        for ax, op in zip(row, ops):
            _plot_op(ax, op, device, batch, ok, hard, torchsort)
        row[0].set_ylabel(f"batch {batch}: ms (median)")
    fig.suptitle(f"{device}, mode smooth: soft fwd+bwd vs hard fwd", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"wrote {path}"


def _plot_op(ax, op, device, batch, ok, hard, torchsort) -> None:
    """One panel: each method's fwd+bwd, torch's fwd and torchsort's fwd+bwd against n."""

    def series(pick):
        pts = sorted((n, v) for n, v in pick if v is not None)
        return [p[0] for p in pts], [p[1] for p in pts]

    for method in dict.fromkeys(r["method"] for r in ok):
        xs, ys = series(
            (r["n"], r.get("fwdbwd_ms"))
            for r in ok
            if r["op"] == op
            and r["method"] == method
            and r["mode"] == "smooth"
            and r["batch"] == batch
            and r["device"] == device
        )
        if xs:
            ax.plot(xs, ys, marker="o", label=method)
    for name, table, field, style in (
        ("torch (hard) fwd", hard, "fwd_ms", "k--"),
        ("torchsort fwd+bwd", torchsort, "fwdbwd_ms", "k:"),
    ):
        xs, ys = series(
            (k[3], v.get(field)) for k, v in table.items() if k[0] == device and k[1] == op and k[2] == batch
        )
        if xs:
            ax.plot(xs, ys, style, marker=".", label=name)
    ax.set(xscale="log", yscale="log", title=f"{op} (batch {batch})", xlabel="n")
    ax.legend(fontsize=7)
