"""A tour of every softtorch operator, in hard mode and in soft mode.

Run with ``python examples/tour.py``. The first blocks reproduce the examples of the README of
the reference library (their printed numbers agree to 4 decimals); the rest shows the operators
and layers it did not have.
"""

import torch

import softtorch as st

torch.set_printoptions(precision=4, sci_mode=False)
torch.manual_seed(0)

x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
y = torch.tensor([0.2, -0.5, 0.5, -1.0])


def section(title):
    print(f"\n# {title}")


def show(label, value):
    print(f"{label}:", value)


section("Elementwise functions")
for name, torch_op in [
    ("abs", torch.abs),
    ("heaviside", lambda t: torch.heaviside(t, torch.tensor(0.5))),
    ("relu", torch.nn.functional.relu),
    ("round", torch.round),
    ("sign", torch.sign),
]:
    fn = getattr(st, name)
    show(f"Torch {name}", torch_op(x))
    show(f"SoftTorch {name} (hard mode)", fn(x, mode="hard"))
    show(f"SoftTorch {name} (soft mode)", fn(x))
show("Torch clamp", torch.clamp(x, -0.5, 0.5))
show("SoftTorch clamp (hard mode)", st.clamp(x, -0.5, 0.5, mode="hard"))
show("SoftTorch clamp (soft mode)", st.clamp(x, -0.5, 0.5))
for mode in ["smooth", "c0", "c1", "c2"]:
    show(f"SoftTorch sigmoidal ({mode})", st.sigmoidal(x, mode=mode))

section("Tensor-valued operators")
show("Torch max", torch.max(x))
show("SoftTorch max (hard mode)", st.max(x, mode="hard"))
show("SoftTorch max (soft mode)", st.max(x))
show("Torch min", torch.min(x))
show("SoftTorch min (hard mode)", st.min(x, mode="hard"))
show("SoftTorch min (soft mode)", st.min(x))
show("Torch sort", torch.sort(x).values)
show("SoftTorch sort (hard mode)", st.sort(x, mode="hard").values)
show("SoftTorch sort (soft mode)", st.sort(x).values)
show("Torch quantile", torch.quantile(x, q=0.2))
show("SoftTorch quantile (hard mode)", st.quantile(x, q=0.2, mode="hard"))
show("SoftTorch quantile (soft mode)", st.quantile(x, q=0.2))
show("Torch median", torch.median(x))
show("SoftTorch median (hard mode)", st.median(x, mode="hard"))
show("SoftTorch median (soft mode)", st.median(x))
show("Torch topk", torch.topk(x, k=3).values)
show("SoftTorch topk (hard mode)", st.topk(x, k=3, mode="hard").values)
show("SoftTorch topk (soft mode)", st.topk(x, k=3).values)
# torch has no rank: argsort(argsort(x)) is the 0-based position; softtorch ranks are 1-based
# (rank 1 = first in the order), so the two differ by exactly 1.
show("Torch rank (0-based: argsort of argsort)", torch.argsort(torch.argsort(x)))
show("Torch rank + 1 (1-based, as softtorch)", torch.argsort(torch.argsort(x)) + 1)
show("SoftTorch rank (hard mode)", st.rank(x, mode="hard", descending=False))
show("SoftTorch rank (soft mode)", st.rank(x, descending=False))

section("Sort: sweep over methods")
show("Torch sort", torch.sort(x).values)
for method in ["softsort", "neuralsort", "ot", "sorting_network"]:
    show(f"SoftTorch sort ({method})", st.sort(x, method=method, softness=0.1).values)
show("SoftTorch sort (fast_soft_sort)", st.sort(x, method="fast_soft_sort", softness=2.0).values)

section("Sort: sweep over modes")
show("Torch sort", torch.sort(x).values)
for mode in ["hard", "smooth", "c0", "c1", "c2"]:
    show(f"SoftTorch sort ({mode})", st.sort(x, softness=0.5, mode=mode).values)

section("Operators returning indices")
show("Torch argmax", torch.argmax(x))
show("SoftTorch argmax (hard mode)", st.argmax(x, mode="hard"))
show("SoftTorch argmax (soft mode)", st.argmax(x))
show("Torch argmin", torch.argmin(x))
show("SoftTorch argmin (hard mode)", st.argmin(x, mode="hard"))
show("SoftTorch argmin (soft mode)", st.argmin(x))
show("SoftTorch argquantile (hard mode)", st.argquantile(x, q=0.2, mode="hard"))
show("SoftTorch argquantile (soft mode)", st.argquantile(x, q=0.2))
show("Torch argmedian", torch.median(x, dim=0).indices)
show("SoftTorch argmedian (hard mode)", st.median(x, mode="hard", dim=0).indices)
show("SoftTorch argmedian (soft mode)", st.median(x, dim=0).indices)
show("Torch argsort", torch.argsort(x))
show("SoftTorch argsort (hard mode)", st.argsort(x, mode="hard"))
show("SoftTorch argsort (soft mode)", st.argsort(x))
show("Torch argtopk", torch.topk(x, k=3).indices)
show("SoftTorch argtopk (hard mode)", st.topk(x, k=3, mode="hard").indices)
show("SoftTorch argtopk (soft mode)", st.topk(x, k=3).indices)

section("Comparison operators")
for name in ["greater", "greater_equal", "less", "less_equal", "eq", "not_equal", "isclose"]:
    show(f"Torch {name}", getattr(torch, name)(x, y))
    show(f"SoftTorch {name} (hard mode)", getattr(st, name)(x, y, mode="hard"))
    show(f"SoftTorch {name} (soft mode)", getattr(st, name)(x, y))

section("Logical operators")
fuzzy_a = torch.tensor([0.1, 0.2, 0.8, 1.0])
fuzzy_b = torch.tensor([0.7, 0.3, 0.1, 0.9])
bool_a, bool_b = fuzzy_a >= 0.5, fuzzy_b >= 0.5
for name in ["logical_and", "logical_or", "logical_xor"]:
    show(f"Torch {name}", getattr(torch, name)(bool_a, bool_b))
    show(f"SoftTorch {name}", getattr(st, name)(fuzzy_a, fuzzy_b))
show("Torch logical_not", torch.logical_not(bool_a))
show("SoftTorch logical_not", st.logical_not(fuzzy_a))
show("Torch all", torch.all(bool_a))
show("SoftTorch all", st.all(fuzzy_a))
show("Torch any", torch.any(bool_a))
show("SoftTorch any", st.any(fuzzy_a))

section("Selection operators")
show("Torch where", torch.where(bool_a, x, y))
show("SoftTorch where", st.where(fuzzy_a, x, y))
soft_top2 = st.topk(x, k=2).indices  # (2, 4): a distribution over x's positions per slot
show("Torch take_along_dim (top-2)", torch.take_along_dim(x, torch.topk(x, k=2).indices, dim=0))
show("SoftTorch take_along_dim (top-2)", st.take_along_dim(x, soft_top2, dim=0))
show("SoftTorch take (soft argmax)", st.take(x, st.argmax(x)))
matrix = torch.arange(12.0).reshape(3, 4)
show("Torch index_select (row 2)", torch.index_select(matrix, 0, torch.tensor([2])))
show("SoftTorch index_select (mostly row 2)", st.index_select(matrix, torch.tensor([0.0, 0.1, 0.9]), dim=0))
show("Torch narrow (start 1, length 2)", x.narrow(0, 1, 2))
show("SoftTorch narrow (start ~1)", st.narrow(x, torch.tensor([0.1, 0.8, 0.1, 0.0]), 2))

section("Straight-through operators: hard forward, soft backward")
show("Straight-through ReLU", st.relu_st(x))
show("Straight-through sort", st.sort_st(x).values)
show("Straight-through argtopk", st.topk_st(x, k=3).indices)
show("Straight-through greater", st.greater_st(x, y))

section("Layers")
model = torch.nn.Sequential(
    torch.nn.Linear(4, 6),
    st.nn.SoftSort(softness=0.2, mode="c1"),
    st.nn.SoftTopK(k=2, learnable=True),
)
print(model)
out = model(torch.randn(3, 4))
out.sum().backward()
show("output of Linear -> SoftSort -> SoftTopK", out)
show("learnable softness of SoftTopK", model[2].softness.detach())
# The parameter is the log of the softness (so it stays positive); its gradient is d loss / d log(softness).
show("gradient reaching log_softness (d loss / d log softness)", model[2].log_softness.grad)

section("Masking: -inf entries (or mask=False) are left out, as torch.topk leaves them out")
scores = torch.tensor([[0.3, float("-inf"), 1.0, 0.2], [0.5, -0.1, 0.9, -2.0]])
show("Torch topk of rows with -inf", torch.topk(scores, k=2).values)
show("SoftTorch topk of rows with -inf (soft mode)", st.topk(scores, k=2).values)
show("SoftTorch argmax weight on the -inf entry", st.argmax(scores, dim=-1)[0, 1])
keep = torch.tensor([[True, True, True, False], [True, True, True, True]])
show("SoftTorch median of the kept entries", st.median(scores, dim=-1, mask=keep).values)

section("Annealing: a softness schedule for every softtorch layer of a model")
from softtorch.schedules import SoftnessScheduler, hardness_gap  # noqa: E402

scheduler = SoftnessScheduler(model, total_steps=3, final_factor=0.01, schedule="cosine")
batch = torch.randn(3, 4)
for step in range(4):
    softness = [round(float(s), 4) for s in scheduler.get_last_softness()]
    print(f"step {step}: softness {softness}, mean |soft - hard| output {hardness_gap(model, batch).gap:.4f}")
    scheduler.step()
