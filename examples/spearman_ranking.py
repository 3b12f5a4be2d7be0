"""Train a linear scorer with a soft Spearman loss, against a mean-squared-error baseline.

The targets are a monotone but heavy-tailed function of a noisy linear signal. Only their order
matters for the metric (Spearman's rank correlation), which ``softtorch.rank`` makes
differentiable; the squared error is dominated by the few huge targets.

    python examples/spearman_ranking.py
"""

import torch

import softtorch as st


def hard_rank(t):
    return torch.argsort(torch.argsort(t)).to(t.dtype) + 1


def pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm())


def soft_spearman_loss(prediction, target, softness=0.1):
    return 1.0 - pearson(st.rank(prediction, descending=False, softness=softness), hard_rank(target))


def mse_loss(prediction, target):
    return ((prediction - target) ** 2).mean()


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny tensors: the thread pool costs more than it saves

    n_features = 10
    direction = torch.nn.functional.normalize(torch.randn(n_features), dim=0)

    def sample(n):
        features = torch.randn(n, n_features)
        return features, torch.exp(2.0 * (features @ direction + 0.3 * torch.randn(n)))

    x_train, y_train = sample(2000)
    x_test, y_test = sample(5000)
    best = pearson(hard_rank(x_test @ direction), hard_rank(y_test)).item()
    print(f"test Spearman of the true direction: {best:.4f}")

    for name, loss_fn in [("mean squared error", mse_loss), ("soft Spearman loss", soft_spearman_loss)]:
        torch.manual_seed(1)
        model = torch.nn.Linear(n_features, 1)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(300):
            batch = torch.randint(0, len(x_train), (256,))
            loss = loss_fn(model(x_train[batch]).squeeze(-1), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            rho = pearson(hard_rank(model(x_test).squeeze(-1)), hard_rank(y_test)).item()
        print(f"{name:>20}: test Spearman {rho:.4f}")


if __name__ == "__main__":
    main()
