"""Learn to order sets of items from their orderings alone, through a soft argsort.

Each example is a set of 8 items (4 features each) whose true order comes from a hidden score.
A small MLP scores the items and ``softtorch.nn.SoftArgsort`` turns the scores into a soft
permutation; the loss is the negative log-likelihood of the true permutation. No score is ever
given as a target. The hard ``torch.argsort`` would give the network no gradient at all.

    python examples/learn_to_sort.py
"""

import torch

import softtorch as st

N_ITEMS, N_FEATURES = 8, 4


def sample(batch):
    items = torch.randn(batch, N_ITEMS, N_FEATURES)
    hidden = torch.sin(2 * items[..., 0]) + 0.5 * items[..., 1] ** 2 + 0.8 * items[..., 2] - 0.3 * items[..., 3]
    return items, torch.argsort(hidden, dim=-1, descending=True)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny tensors: the thread pool costs more than it saves

    scorer = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 1),
        torch.nn.Flatten(-2),
    )
    model = torch.nn.Sequential(scorer, st.nn.SoftArgsort(descending=True, softness=0.1, return_log_probs=True))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    test_items, test_order = sample(2000)

    for step in range(1001):
        items, order = sample(64)
        loss = torch.nn.functional.nll_loss(model(items).reshape(-1, N_ITEMS), order.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 500 == 0:
            with torch.no_grad():
                correct = torch.argsort(scorer(test_items), dim=-1, descending=True) == test_order
            exact, per_item = correct.all(-1).float().mean(), correct.float().mean()
            print(
                f"step {step:4d}: loss {loss.item():.3f}, test sets exactly ordered {exact:.1%}, "
                f"items in the right slot {per_item:.1%}"
            )


if __name__ == "__main__":
    main()
