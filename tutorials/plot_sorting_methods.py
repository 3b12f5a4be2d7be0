"""
Sorting methods side by side
============================

Every operator of the sorting family reads rows of a soft permutation matrix :math:`P`:
:math:`P_{ij}` is the weight of element :math:`j` in sorted slot :math:`i`. The ``method``
decides how :math:`P` is built. This tutorial draws :math:`P` for each method, follows the soft
sorted values as the softness changes, checks which matrices are doubly stochastic and times the
methods against each other.
"""

import time

import matplotlib.pyplot as plt
import torch

import softtorch as st

torch.set_num_threads(1)  # tiny models: a thread pool only adds overhead (the docs build does the same)

torch.manual_seed(0)
# sphinx_gallery_thumbnail_number = 1

# The methods this tutorial compares; "fast_soft_sort" gives sorted values only, no P.
METHODS = ["softsort", "neuralsort", "ot", "sorting_network"]
# Methods compared on sorted values: "smooth_sort" has no P either (and works on x itself).
VALUE_METHODS = METHODS + ["smooth_sort"]

# %%
# The soft permutation matrices
# -----------------------------
#
# Ten values, sorted ascending. Rows are sorted slots; columns are the elements, drawn in their
# sorted order (``P[:, order]``) so that the hard permutation is the identity and the softness
# shows as a band around the diagonal. At a small softness every method is close to the hard
# permutation (left column); as the softness grows, each row spreads its mass over the elements
# whose values are near the slot's. With softsort and neuralsort the ``"c1"`` mode gives sparse
# rows, with exact zeros outside a band; the sorting network uses the ``"c1"`` kernel in each of
# its compare-and-swap units instead, and its many layers add up to a softer matrix.

x = torch.randn(10)
order = torch.argsort(x)
print("x       :", x)
print("argsort :", order)

settings = [("smooth", 0.01), ("smooth", 0.05), ("smooth", 0.2), ("c1", 0.1)]
fig, axes = plt.subplots(len(METHODS), len(settings), figsize=(12, 9))
for row, method in enumerate(METHODS):
    for col, (mode, softness) in enumerate(settings):
        P = st.argsort(x, softness=softness, mode=mode, method=method)
        ax = axes[row, col]
        ax.imshow(P[:, order], cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(f"mode={mode!r}, softness={softness}", fontsize=10)
        if col == 0:
            ax.set_ylabel(method)
fig.suptitle("argsort(x)[:, order]: rows = sorted slots, columns = elements in sorted order")
fig.tight_layout()

# %%
# Are they doubly stochastic?
# ---------------------------
#
# Every row of :math:`P` is a probability vector in every method. Only the sorting network (and
# optimal transport) also make every *column* sum to one, so each element is spread over the
# slots with total weight one. With softsort and neuralsort an element can be over- or
# under-represented, which matters for ranks and soft masks built from columns.

for method in METHODS:
    P = st.argsort(x, softness=0.3, method=method)
    rows, cols = P.sum(-1), P.sum(-2)
    print(
        f"{method:>16}: row sums in [{rows.min():.3f}, {rows.max():.3f}],"
        f" column sums in [{cols.min():.3f}, {cols.max():.3f}]"
    )

# %%
# Sorted values along the softness
# --------------------------------
#
# The soft sorted values are :math:`P x` (the sorting network computes them in the squashed
# space and maps them back, with the same result in the limit). As the softness shrinks they
# reach the hard sorted values (dashed); as it grows they are pulled towards the mean, each
# method at its own pace. Here are the ten curves per method, in the default smooth mode.
# ``"smooth_sort"`` (values and ranks only, no :math:`P`) projects onto a smoothed permutahedron
# of ``x`` itself (not standardized): its values stay strictly increasing, keep the sum of ``x``
# exactly, and are infinitely differentiable in ``x`` and the softness.

softnesses = torch.logspace(-3, -0.5, 40)
fig, axes = plt.subplots(1, len(VALUE_METHODS), figsize=(15, 3.8), sharey=True)
for ax, method in zip(axes, VALUE_METHODS):
    values = torch.stack(
        [st.sort(x, softness=float(s), method=method).values for s in softnesses]
    )
    for i in range(len(x)):
        ax.semilogx(softnesses, values[:, i], color=plt.cm.coolwarm(i / (len(x) - 1)))
    for v in torch.sort(x).values:
        ax.axhline(float(v), color="0.7", ls="--", lw=0.6, zorder=0)
    ax.set_title(method)
    ax.set_xlabel("softness")
axes[0].set_ylabel("soft sorted values")
fig.tight_layout()

# %%
# The same softness does not mean the same sharpness in every method. A quick measure is how
# much mass the rows of :math:`P` put on the right element (the diagonal of :math:`P` in sorted
# order). With the softness scaled like :math:`1/n` (see :doc:`/user_guide/softness`) it stays
# about constant across sizes within a method, but differs between methods: tune the softness
# for the method you use.

for n in (10, 100):
    xn = torch.randn(n)
    on_target = {}
    for method in METHODS:
        P = st.argsort(xn, softness=1.0 / n, method=method)
        on_target[method] = P[torch.arange(n), torch.argsort(xn)].mean().item()
    print(f"n={n:>3}, softness=1/n:", ", ".join(f"{m} {v:.2f}" for m, v in on_target.items()))

# %%
# Cost
# ----
#
# Forward plus backward of a soft sort of a batch of 8 rows, with the permutation
# (``return_indices=True``) and values only. softsort and neuralsort do :math:`O(n^2)` work per
# row; the sorting network's values cost :math:`O(n \log^2 n)`, its full permutation
# :math:`O(n^2 \log n)`; smooth_sort (values only) :math:`O(n^2)` for its smoothed bounds plus
# :math:`O(n)` per Newton iteration. The numbers are from the machine that built these pages
# (one CPU thread); only their trend matters.


def seconds(fn, repeat=2):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


sizes = [16, 64, 256, 512]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, with_p in zip(axes, [True, False]):
    for method in METHODS if with_p else VALUE_METHODS:
        times = []
        for n in sizes:
            xb = torch.randn(8, n, requires_grad=True)

            def step(xb=xb, method=method, with_p=with_p):
                out = st.sort(xb, method=method, return_indices=with_p)
                loss = out.values.sum() + (out.indices[..., 0].sum() if with_p else 0)
                loss.backward()

            times.append(1e3 * seconds(step))
        ax.loglog(sizes, times, "o-", label=method)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_title("values and P" if with_p else "values only")
    ax.set_xlabel("n")
axes[0].set_ylabel("forward + backward, ms (batch of 8)")
axes[1].legend()
fig.tight_layout()
plt.show()
