"""What torch alone takes to sort one float32 row, the floor under every soft sort and rank of it.

Issue 14 asks fast_soft_sort to be 5x faster than the reference at 1 x 10000, where the reference
takes 1.75 to 2.58 ms forward + backward: this prints the forward of ``torch.sort``, its values
forward + backward, softtorch's padded radix sort (``sort_descending``) and a trivial autograd op,
medians of 400 calls, at 1 and 2 threads.

    python benchmarks/sort_floor.py
"""

import torch
from _worker import call_times  # this directory is on sys.path when run as a script

from softtorch._core.isotonic import sort_descending


def median_ms(f, reps: int = 400) -> float:
    times = call_times(f, reps, warmup=30)
    return times[len(times) // 2]


def row(n: int) -> str:
    """The four timings of one ``(1, n)`` row."""
    x = torch.randn(1, n, requires_grad=True)
    g = torch.randn(1, n)
    xd = x.detach()
    cells = {
        "torch.sort fwd": lambda: torch.sort(xd, dim=-1),
        "torch.sort values fwd+bwd": lambda: torch.sort(x, dim=-1).values.backward(g),
        "radix sort_descending fwd": lambda: sort_descending(xd),
        "x * 2 fwd+bwd": lambda: (x * 2).backward(g),
    }
    return " | ".join(f"{name} {median_ms(f):.3f} ms" for name, f in cells.items())


def main() -> None:
    torch.manual_seed(0)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for n in (10000, 64):
            print(f"threads {threads} 1x{n}: {row(n)}", flush=True)


if __name__ == "__main__":
    main()
