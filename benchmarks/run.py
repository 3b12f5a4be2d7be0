"""Benchmark softtorch's sorting family against hard torch, torchsort and the reference library.

Usage (from the repository root)::

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--out benchmarks/results]
                             [--ops sort,topk] [--methods neuralsort] [--modes smooth,c1]
                             [--shapes 64x1000,1x100] [--parts grid,memory,reference]
                             [--grid-memory] [--reference PYTHON|none] [--threads N]
    python -m benchmarks ...        # the same

See ``benchmarks/README.md`` for what each column means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks import _worker, compare, grid, report  # noqa: E402

WORKER = Path(_worker.__file__).resolve()
DEFAULT_REFERENCE = Path("/work/bench_envs/ref/bin/python")
REFERENCE_TIMING = {"warmup": 3, "repeats": 5, "max_repeats": 200, "budget": 2.0, "forward": False}
PARTS = ("grid", "memory", "reference", "compare", "acceptance")
DEFAULT_PEERS = {
    "torchsort": Path("/work/bench_envs/torchsort/bin/python"),
    "diffsort": Path("/work/bench_envs/diffsort/bin/python"),
}


def log(message: str) -> None:
    """Progress goes to stderr so stdout carries only the tables."""
    print(message, file=sys.stderr, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(prog="benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small grid, under 2 minutes on CPU")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cpu, and cuda if present")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--ops", help=f"comma list from {','.join(_worker.OPS)}")
    p.add_argument("--methods", help=f"comma list, default {','.join(grid.METHODS)}")
    p.add_argument("--modes", help=f"comma list, default {','.join(grid.MODES)}")
    p.add_argument("--shapes", help="comma list of BATCHxN, e.g. 64x1000,1x10")
    p.add_argument(
        "--parts",
        help="comma list of the sections to run: grid (operators x "
        "methods x modes x shapes), memory (the 1x20000 and 16x2000 targets), reference "
        "(vs the reference library), compare (ours, reference, torchsort, diffsort side by side "
        "on the calls users make), acceptance (exactly the acceptance cells of issues 13 and 14); "
        "default grid,memory,reference, with --quick only grid",
    )
    p.add_argument(
        "--grid-memory", action="store_true", help="also measure peak memory of every CPU grid cell (a subprocess each)"
    )
    p.add_argument(
        "--reference",
        default=None,
        help=f"python of the reference venv (default {DEFAULT_REFERENCE} if it exists), or 'none'",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch.set_num_threads in every process (default: torch's default)",
    )
    p.add_argument(
        "--softtorch-path",
        default=str(REPO),
        help="directory put first on sys.path to import softtorch (default: repo)",
    )
    for peer, path in DEFAULT_PEERS.items():
        p.add_argument(
            f"--{peer}", default=None, help=f"python of the {peer} venv (default {path} if it exists), or 'none'"
        )
    p.add_argument("--compare-threads", help="comma list of thread counts for the compare part (default: --threads)")
    p.add_argument("--max-gb", type=float, default=grid.MAX_GB, help="skip cells whose estimated memory exceeds this")
    p.add_argument(
        "--max-work",
        type=float,
        default=grid.MAX_WORK,
        help="skip cells whose estimated element-operations exceed this",
    )
    return p.parse_args(argv)


def comma_list(text: str | None, default) -> tuple:
    """``"a,b"`` -> ``("a", "b")``; None -> ``default``."""
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else tuple(default)


def parse_shapes(text: str | None, default) -> tuple:
    """``"64x1000,1x10"`` -> ``((64, 1000), (1, 10))``."""
    if not text:
        return tuple(default)
    return tuple(tuple(int(v) for v in s.lower().split("x")) for s in comma_list(text, ()))


def pick_devices(choice: str | None) -> list[str]:
    """The devices to measure on; asking for CUDA without one is an error."""
    if choice == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch.cuda.is_available() is False")
    if choice:
        return [choice]
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pick_parts(text: str | None, quick: bool) -> set[str]:
    """The sections to run, checked against the known ones."""
    parts = set(comma_list(text, PARTS[:3] if not quick else ("grid",)))
    if parts - set(PARTS):
        sys.exit(f"--parts: unknown {sorted(parts - set(PARTS))}; choose from {PARTS}")
    return parts


def reference_python(choice: str | None) -> str | None:
    """The reference interpreter, or None when disabled or not installed."""
    if choice == "none":
        return None
    path = Path(choice) if choice else DEFAULT_REFERENCE
    return str(path) if path.exists() else None


def run_worker(python: str, task: dict) -> dict:
    """Run ``_worker.py`` under ``python`` with ``task``; return its JSON answer.

    PYTHONPATH is dropped so that the reference interpreter cannot pick up this repository's
    softtorch; ours is imported through the task's explicit ``path``.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [python, str(WORKER)], input=json.dumps(task), text=True, capture_output=True, check=False, env=env
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"worker under {python} failed ({proc.returncode}): {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def describe(result: dict) -> str:
    """One progress line for a measured cell."""
    what = f"{result['op']} {result['method']} {result['mode']} {result['batch']}x{result['n']}"
    if result.get("skip") or result.get("status") != "ok":
        return f"{what} {result['device']}: {result.get('skip') or result.get('error')}"
    times = [
        f"{label} {report.fmt_ms(result.get(field))} ms"
        for label, field in (("fwd", "fwd_ms"), ("fwd+bwd", "fwdbwd_ms"))
        if result.get(field) is not None
    ]
    return f"{what} {result['device']}: {', '.join(times) or 'no timing'}"


def time_cases(lib, cases: list[dict], label: str) -> list[dict]:
    """Time every case in this process (skipped cases pass through untouched)."""
    results = []
    for i, case in enumerate(cases, 1):
        result = case if case.get("skip") else _worker.time_case(lib, case)
        results.append(result)
        log(f"[{label} {i}/{len(cases)}] {describe(result)}")
    return results


def measure_baselines(devices, shapes, ops, timing) -> tuple[dict, dict]:
    """Hard torch results for every op, and torchsort's for sort/rank when it imports."""
    hard_cases = grid.baseline_cases(devices, shapes, ops, timing)
    hard = {report.key(r): r for r in time_cases(torch, hard_cases, "torch")}
    try:
        import torchsort
    except ImportError:
        log("torchsort is not installed: no torchsort column")
        return hard, {}
    ts_cases = grid.baseline_cases(devices, shapes, ops, timing, library_ops=("sort", "rank"))
    return hard, {report.key(r): r for r in time_cases(torchsort, ts_cases, "torchsort")}


def memory_peak(python: str, case: dict, path: str | None, threads: int) -> dict:
    """Peak memory of one forward+backward in a fresh process, less a baseline process that
    imports the same library, runs the op once on a tiny input and allocates the same x."""
    task = {"library": "softtorch", "path": path, "threads": threads, "task": "memory"}
    try:
        measured = run_worker(python, dict(task, cases=[case]))["results"][0]
        result = dict(case, status=measured["status"], error=measured.get("error"))
        if measured["status"] != "ok":
            return result
        if case["device"].startswith("cuda"):
            return dict(result, peak_mib=measured["cuda_peak_mib"], how="cuda max_memory_allocated")
        base_case = dict(case, op="baseline", probe_op=case["op"])
        base = run_worker(python, dict(task, cases=[base_case]))["results"][0]
    except RuntimeError as exc:  # e.g. the worker was killed for lack of memory
        return dict(case, status="error", error=str(exc))
    return dict(
        result,
        peak_mib=measured["maxrss_mib"] - base["maxrss_mib"],
        baseline_mib=base["maxrss_mib"],
        how="peak RSS - baseline",
    )


def memory_check(devices, args) -> list[dict]:
    """The memory target: sort(values only) fwd+bwd on (1, 20000) for softsort and neuralsort."""
    batch, n = grid.MEMORY_SHAPE
    results = []
    for device in devices:
        for method in grid.MEMORY_METHODS:
            case = dict(op="sort_values", method=method, mode="smooth", batch=batch, n=n, device=device)
            results.append(memory_peak(sys.executable, case, args.softtorch_path, args.threads))
            log(f"[memory] {method} {batch}x{n} {device}: {report.fmt_mib(results[-1].get('peak_mib'))} MiB")
    return results


def permutation_memory_check(devices, args) -> list[dict]:
    """Issue 13's target: the default sort (values + permutation) fwd+bwd on (16, 2000), peak at
    most ``grid.PERMUTATION_MEMORY_FACTOR`` x the permutation's bytes."""
    batch, n = grid.PERMUTATION_MEMORY_SHAPE
    results = []
    for device in devices:
        for method in grid.PERMUTATION_MEMORY_METHODS:
            case = dict(op="sort", method=method, mode="smooth", batch=batch, n=n, device=device)
            result = memory_peak(sys.executable, case, args.softtorch_path, args.threads)
            result["permutation_mib"] = batch * n * n * 4 / 2**20
            results.append(result)
            ratio = report.fmt_ratio(result.get("peak_mib"), result["permutation_mib"])
            log(f"[memory] sort with permutation {method} {batch}x{n} {device}: {ratio} of the permutation")
    return results


def peer_python(name: str, choice: str | None) -> str | None:
    """A peer library's interpreter (torchsort, diffsort), or None when disabled or absent."""
    if choice == "none":
        return None
    path = Path(choice) if choice else DEFAULT_PEERS[name]
    return str(path) if path.exists() else None


def side_by_side(cells: list[dict], args, ref_python: str | None) -> list[dict]:
    """Ours, the reference, torchsort and diffsort on ``cells``, each side in its own worker."""
    sides = {"ours": ("softtorch", sys.executable, args.softtorch_path)}
    if ref_python:
        sides["reference"] = ("softtorch", ref_python, None)
    for peer in DEFAULT_PEERS:
        python = peer_python(peer, getattr(args, peer))
        if python:
            sides[peer] = (peer, python, None)
        else:
            log(f"{peer} is not installed: no {peer} column")
    return compare.run_cells(cells, sides, run_worker, log)


def grid_memory(results: list[dict], args) -> None:
    """``--grid-memory``: add ``peak_mib`` to every measured CPU cell (one subprocess each)."""
    for r in results:
        if r.get("status") == "ok" and r["device"] == "cpu":
            case = {k: r[k] for k in ("op", "method", "mode", "batch", "n", "device")}
            r["peak_mib"] = memory_peak(sys.executable, case, args.softtorch_path, args.threads).get("peak_mib")
            log(f"[memory] {describe(r)}: {report.fmt_mib(r['peak_mib'])} MiB")


def torchsort_available() -> bool:
    """Whether ``import torchsort`` works in this interpreter (it is never a dependency)."""
    try:
        import torchsort  # noqa: F401
    except ImportError:
        return False
    return True


def reference_comparison(ref_python: str, args) -> tuple[list[dict], dict]:
    """Time sort at the reference cases (those of ``--methods`` when given) in worker processes
    run one after the other so that all see the same machine load: ours, the reference, and
    torchsort for the cases with a ``torchsort_target`` (when it imports). Returns one dict per
    case and the reference meta."""
    methods = comma_list(args.methods, grid.METHODS)
    with_torchsort = torchsort_available()
    if not with_torchsort:
        log("torchsort is not installed: no torchsort comparison")
    pairs, meta = [], {}
    for rc in (rc for rc in grid.REFERENCE_CASES if rc.method in methods):
        case = dict(
            op="sort_values", method=rc.method, mode="smooth", batch=rc.batch, n=rc.n, device="cpu", **REFERENCE_TIMING
        )
        sides = {}
        runs = [
            ("ours", "softtorch", sys.executable, args.softtorch_path),
            ("reference", "softtorch", ref_python, None),
        ]
        if rc.torchsort_target is not None and with_torchsort:
            runs.append(("torchsort", "torchsort", sys.executable, None))
        for side, library, python, path in runs:
            task = {"library": library, "path": path, "threads": args.threads, "cases": [case]}
            try:
                answer = run_worker(python, task)
                sides[side] = answer["results"][0]
                meta[side] = answer["meta"]
            except RuntimeError as exc:
                sides[side] = dict(case, status="error", error=str(exc))
            log(f"[reference] {side}: {describe(sides[side])}")
        pairs.append(
            dict(
                method=rc.method,
                batch=rc.batch,
                n=rc.n,
                target=rc.target,
                torchsort_target=rc.torchsort_target,
                **sides,
            )
        )
    return pairs, meta


def header(lib, devices, args, ref_meta: dict) -> str:
    """Where and with what the numbers were measured."""
    load, cores = os.getloadavg()[0], os.cpu_count()
    busy = " - busier than the cores: timings inflated, see README" if load > cores else ""
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S')}; python {platform.python_version()}; "
        f"torch {torch.__version__}; devices: {', '.join(devices)}",
        f"- torch threads: {args.threads} (set in every process, the workers included)",
        f"- load average at the end: {load:.1f} on {cores} cores{busy}",
        f"- softtorch: {getattr(lib, '__file__', None)}",
    ]
    if ref_meta.get("reference"):
        ref = ref_meta["reference"]
        lines.append(
            f"- reference: softtorch {ref['version']} ({ref['file']}) on python "
            f"{ref['python']}, torch {ref['torch']}, threads {ref['threads']}"
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    """Run the benchmark, print the tables and write ``results.{md,json,png}``."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    log(f"torch threads: {torch.get_num_threads()}")
    devices = pick_devices(args.device)
    timing = grid.QUICK_TIMING if args.quick else grid.FULL_TIMING
    shapes = parse_shapes(args.shapes, grid.QUICK_SHAPES if args.quick else grid.FULL_SHAPES)
    ops = comma_list(args.ops, _worker.OPS)
    parts = pick_parts(args.parts, args.quick)
    lib = _worker.load_library("softtorch", args.softtorch_path)
    if not hasattr(lib, "sort"):
        log(f"softtorch at {lib.__file__} has no sort yet: its cells will read n/a")

    hard, torchsort, results = {}, {}, []
    if "grid" in parts:
        hard, torchsort = measure_baselines(devices, shapes, ops, timing)
        cases = grid.soft_cases(
            devices,
            shapes,
            ops=ops,
            timing=timing,
            methods=comma_list(args.methods, grid.METHODS),
            modes=comma_list(args.modes, grid.MODES),
            max_gb=args.max_gb,
            max_work=args.max_work,
        )
        results = time_cases(lib, cases, "softtorch")
        if args.grid_memory:
            grid_memory(results, args)
    memory = memory_check(devices, args) if "memory" in parts else []
    perm_memory = permutation_memory_check(devices, args) if parts & {"memory", "acceptance"} else []
    ref_python = reference_python(args.reference) if parts & {"reference", "compare", "acceptance"} else None
    pairs, ref_meta = reference_comparison(ref_python, args) if ref_python and "reference" in parts else ([], {})
    if parts & {"reference", "compare", "acceptance"} and not ref_python:
        log("no reference interpreter: skipped the comparison with the reference")
    accepted = side_by_side(compare.acceptance_cells(args.threads), args, ref_python) if "acceptance" in parts else []
    compared = []
    if "compare" in parts:
        for threads in (int(t) for t in comma_list(args.compare_threads, (str(args.threads),))):
            cells = compare.compare_cells(
                threads,
                comma_list(args.methods, grid.METHODS),
                comma_list(args.modes, grid.MODES),
                shapes=parse_shapes(args.shapes, compare.COMPARE_SHAPES),
                ops=comma_list(args.ops, compare.COMPARE_OPS),
                max_work=args.max_work,
            )
            compared += side_by_side(cells, args, ref_python)

    sections = [("Setup", header(lib, devices, args, ref_meta))]
    if results:
        sections += [
            ("Soft operators", report.grid_table(results, hard, torchsort)),
            ("Baselines", report.baseline_table(hard, torchsort)),
        ]
    if memory:
        sections.append(
            (
                f"Peak memory, sort fwd+bwd on {grid.MEMORY_SHAPE[0]}x{grid.MEMORY_SHAPE[1]} (target < 1 GiB)",
                report.memory_table(memory, grid.MEMORY_TARGET_MIB),
            )
        )
    if perm_memory:
        sections.append(
            (
                f"Peak memory, default sort (values + permutation) fwd+bwd on {grid.PERMUTATION_MEMORY_SHAPE[0]}x"
                f"{grid.PERMUTATION_MEMORY_SHAPE[1]} (target <= {grid.PERMUTATION_MEMORY_FACTOR:g}x the permutation)",
                report.permutation_memory_table(perm_memory, grid.PERMUTATION_MEMORY_FACTOR),
            )
        )
    if accepted:
        sections.append(
            (
                "Acceptance cells of issues 13 and 14 (CPU, float32, fwd+bwd with random cotangents; ms medians)",
                compare.table(accepted, with_targets=True) + "\n\nWorst cells:\n\n" + compare.worst(accepted),
            )
        )
    if compared:
        sections.append(
            (
                "Side by side: the default calls (CPU, float32, fwd+bwd with random cotangents on every output)",
                compare.table(compared) + "\n\n" + compare.slower_than_reference(compared),
            )
        )
    if pairs:
        sections.append(
            (
                "vs reference 0.1.1 (sort, CPU, float32, smooth, fwd+bwd; speed-up = reference ms / ours ms)",
                report.reference_table(pairs),
            )
        )
    if any("torchsort" in p for p in pairs):
        sections.append(
            (
                "vs torchsort.soft_sort (same cases, regularization_strength = softness, "
                f"regularization {_worker.TORCHSORT_REGULARIZATION['smooth']!r}; ratio = ours ms / torchsort ms)",
                report.torchsort_table(pairs),
            )
        )
    text = "\n\n".join(f"## {title}\n\n{body}" for title, body in sections) + "\n"
    print(text)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("# softtorch benchmarks\n\n" + text)
    payload = {
        "args": vars(args),
        "threads": args.threads,
        "devices": devices,
        "soft": results,
        "hard": list(hard.values()),
        "torchsort": list(torchsort.values()),
        "memory": memory,
        "permutation_memory": perm_memory,
        "acceptance": accepted,
        "compare": compared,
        "reference": pairs,
        "reference_meta": ref_meta,
    }
    report.write_json(args.out / "results.json", payload)
    if results:
        log(report.plot(args.out / "results.png", results, hard, torchsort))
    if compared:
        log(compare.plot(args.out / "compare.png", compared))
    log(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'}")
    return payload


if __name__ == "__main__":
    main()
