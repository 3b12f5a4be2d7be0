"""The floor of forming the sorting network's soft permutation in PyTorch, at 64 x 1000.

Issue 13 asks ``sort(x, method="sorting_network")`` (values and the permutation ``P``) forward +
backward at 64 x 1000 to be 2x faster than the reference's values-only sort, that is within half
its time. This prints what the cheapest formulation found costs on its own, whatever the glue:

- the flops of the grouped form (``softtorch._core.sorting_networks``): after stage ``k`` of the
  bitonic network ``P`` is block diagonal in blocks of ``2^k``; the stage's top bits are one
  ``G x G/2`` matrix per half block and lane (``G <= 32``), its low bits one ``L x L`` matrix per
  row group, applied with batched products; the backward takes two products per forward one
  (``dX = M^T dY``, ``dM = dY X^T``), plus the forward again when it is recomputed;
- the time of exactly those batched products on contiguous random operands (the best case: no
  strided views, no loop over lanes), in chunks of 4 rows as the kernel runs them, forward and
  each backward product, at 1 and 2 threads;
- the first touch of the returned ``P`` (a fresh 64 x 1024 x 1024 float32 buffer, on 2 MiB pages
  as the kernel asks for them);
- the layer-by-layer form for comparison: 5x fewer flops, but each unit is an elementwise update
  that runs at memory speed, timed here as one layer's pair of ``lerp`` on one chunk.

The budget is half the reference's values-only time, ``--reference-ms`` (1 and 2 threads;
default: the acceptance run of 2026-12-02 08:46 UTC on an idle machine, 680 and 644 ms).

    python benchmarks/network_floor.py [--reference-ms 680,644]
"""

from __future__ import annotations

import argparse

import torch
from _worker import call_times  # this directory is on sys.path when run as a script

from softtorch._core.memory import empty_paged
from softtorch._core.sorting_networks import _FIRST_BITS as FIRST_BITS
from softtorch._core.sorting_networks import CHUNK_ELEMENTS, _low_bits

BATCH, SIZE = 64, 1024
CHUNK = CHUNK_ELEMENTS // (SIZE * SIZE)  # rows per chunk, as the kernel runs them


def best_ms(f, reps: int = 5) -> float:
    """The fastest of ``reps`` calls after one warm-up, in ms (a floor: the least loaded run)."""
    return call_times(f, reps)[0]


def products(rows: int = CHUNK):
    """Per stage ``k > FIRST_BITS``, the batched products ``(batch, m, inner, cols)`` of ``rows`` rows:
    the top group (both halves) and the low group, each ``Y = M X`` with ``M`` ``m x inner``."""
    m_bits = SIZE.bit_length() - 1
    stages = []
    for k in range(FIRST_BITS + 1, m_bits + 1):
        low = _low_bits(k)
        blocks, lanes, g, block = SIZE >> k, 1 << low, 1 << (k - low), 1 << k
        shapes = [(rows * blocks * lanes * 2, g, g // 2, block // 2)]  # top: reads the half blocks
        if low:
            shapes.append((rows * blocks * g, lanes, lanes, block))
        stages.append((k, shapes))
    return stages


def flops(stages, rows: int) -> float:
    return sum(2.0 * b * m * i * c for _, shapes in stages for (b, m, i, c) in shapes) * (BATCH // rows)


def time_products(stages) -> tuple[float, float, float]:
    """Forward ``M X``, backward ``M^T dY`` and ``dY X^T`` over all stages and chunks (ms)."""
    ops = []
    for _, shapes in stages:
        for b, m, i, c in shapes:
            mat, x, y = torch.randn(b, m, i), torch.randn(b, i, c), torch.randn(b, m, c)
            ops.append((mat, x, y, torch.empty(b, m, c), torch.empty(b, i, c), torch.empty(b, m, i)))
    chunks = BATCH // CHUNK

    def run(which):
        def f():
            for _ in range(chunks):
                for mat, x, y, out_y, out_x, out_m in ops:
                    if which == 0:
                        torch.bmm(mat, x, out=out_y)
                    elif which == 1:
                        torch.bmm(mat.transpose(1, 2), y, out=out_x)
                    else:
                        torch.bmm(y, x.transpose(1, 2), out=out_m)

        return best_ms(f, 3)

    return run(0), run(1), run(2)


def layer_pair_ms() -> float:
    """One layer of the layer-by-layer form over all of ``P``: a pair of ``lerp`` per chunk."""
    lo, hi, s = (torch.rand(CHUNK * SIZE * SIZE // 2) for _ in range(3))
    return best_ms(lambda: (torch.lerp(lo, hi, s), torch.lerp(hi, lo, s)), 5) * BATCH / CHUNK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-ms", default="680,644", help="reference values-only ms at 1,2 threads")
    args = parser.parse_args()
    reference = [float(v) for v in args.reference_ms.split(",")]
    stages = products()
    fwd = flops(stages, CHUNK)
    m_bits = SIZE.bit_length() - 1
    entries = sum(k * SIZE * (1 << k) for k in range(1, m_bits + 1)) * BATCH  # layer by layer
    layers = m_bits * (m_bits + 1) // 2
    print(f"{BATCH} x {SIZE} wires (n = 1000 padded), {layers} layers, grouped stages {FIRST_BITS + 1}..{m_bits}")
    print(
        f"grouped products: forward {fwd / 1e9:.1f} GFLOP, "
        f"backward {2 * fwd / 1e9:.1f} GFLOP (+{fwd / 1e9:.1f} recomputed)"
    )
    print(f"layer by layer: {entries / 1e9:.2f} G entry updates ({1.5 * entries / 1e9:.1f} GFLOP) forward")
    like = torch.zeros(1)
    for threads, ref in zip((1, 2), reference):
        torch.set_num_threads(threads)
        f_ms, dx_ms, dm_ms = time_products(stages)
        touch = best_ms(lambda: empty_paged(like, (BATCH, SIZE, SIZE)).fill_(0.0), 3)  # as the kernel allocates
        pair = layer_pair_ms()
        floor = f_ms + dx_ms + dm_ms + touch
        print(
            f"threads {threads}: products fwd {f_ms:.0f} ms ({fwd / f_ms / 1e6:.0f} GFLOP/s), "
            f"bwd M^T dY {dx_ms:.0f} ms, dY X^T {dm_ms:.0f} ms; first touch of P {touch:.0f} ms; "
            f"floor {floor:.0f} ms (+{f_ms:.0f} if the backward recomputes the forward) "
            f"against the budget {ref / 2:.0f} ms (reference {ref:.0f} / 2); "
            f"layer by layer: one layer over all of P {pair:.0f} ms, the last stage alone {m_bits * pair:.0f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
