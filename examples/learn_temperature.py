"""Learn a soft threshold and its temperature from noisy labels, one per channel.

Three sensors report whether a reading x exceeds their threshold, with Gaussian noise of
different sizes on x. The best model of each is a soft step whose width matches its noise; a
``SoftHeaviside`` layer with a learnable per-channel softness finds both the thresholds and the
widths from the labels alone.

    python examples/learn_temperature.py
"""

import torch

import softtorch as st


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny tensors: the thread pool costs more than it saves

    noise = torch.tensor([0.05, 0.2, 0.5])
    true_threshold = torch.tensor([0.5, -0.3, 0.0])
    x = 4 * torch.rand(3000, 3) - 2
    y = (x + noise * torch.randn(3000, 3) > true_threshold).float()

    threshold = torch.nn.Parameter(torch.zeros(3))
    step = st.nn.SoftHeaviside(softness=torch.full((3,), 0.5), learnable=True)
    optimizer = torch.optim.Adam([threshold, *step.parameters()], lr=0.05)
    for i in range(301):
        p = step(x - threshold).clamp(1e-6, 1 - 1e-6)
        loss = torch.nn.functional.binary_cross_entropy(p, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i % 100 == 0:
            print(f"step {i:3d}: loss {loss.item():.4f}, softness {[round(v, 3) for v in step.softness.tolist()]}")

    # A logistic step matches Gaussian noise of std sigma best at a softness of about sigma / 1.7.
    for c in range(3):
        print(
            f"sensor {c}: learned softness {step.softness[c].item():.3f} (noise / 1.7 = {noise[c] / 1.702:.3f}), "
            f"threshold {threshold[c].item():+.3f} (true {true_threshold[c].item():+.3f})"
        )


if __name__ == "__main__":
    main()
