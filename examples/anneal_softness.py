"""Anneal the softness of a model's softtorch layers with ``softtorch.schedules``.

A linear scorer ranks 16 items per list through ``SoftRank`` and is trained to reproduce the true
ranks (mean squared rank error). The softness starts at 1 (smooth ranks, informative gradients)
and a cosine ``SoftnessScheduler`` takes it to 1% of that over training; ``hardness_gap`` reports
the rank error of the same model with its layers in hard mode, which is what it will be used with.

Run: ``python examples/anneal_softness.py`` (a few seconds on a CPU).
"""

import torch

import softtorch as st
from softtorch.schedules import SoftnessScheduler, hardness_gap


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n_lists, n_items, n_features, steps = 256, 16, 5, 150
    direction = torch.randn(n_features)
    features = torch.randn(n_lists, n_items, n_features)
    true_ranks = st.rank(features @ direction + 0.1 * torch.randn(n_lists, n_items), dim=-1, mode="hard")

    model = torch.nn.Sequential(
        torch.nn.Linear(n_features, 1), torch.nn.Flatten(-2), st.nn.SoftRank(dim=-1, softness=1.0)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = SoftnessScheduler(model, total_steps=steps, final_factor=0.01, schedule="cosine")

    def rank_error(ranks):
        return float(((ranks - true_ranks) ** 2).mean())

    print(model)
    for step in range(steps + 1):
        if step % 30 == 0:
            gap = hardness_gap(model, features, metric=rank_error)
            softness = scheduler.get_last_softness()[0]
            print(f"step {step:3d}: softness {softness:.4f}, soft rank error {gap.soft:.3f}, hard {gap.hard:.3f}")
        if step == steps:
            break
        loss = ((model(features) - true_ranks) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    print(f"annealed: soft rank error {gap.soft:.3f} tracks the hard one {gap.hard:.3f} (gap {gap.gap:+.3f})")


if __name__ == "__main__":
    main()
