"""A 2-layer ReLU network fit by gradient descent to each prefix (Garg et al.'s "2-layer NN, GD" baseline).

Garg et al. train one network per prompt and prefix: Linear(d, 100) → ReLU → Linear(100, 1), PyTorch's default
initialisation, Adam (lr 5e-3) for 100 steps on mini-batches of 100 examples — with at most 100 examples in a
prefix, that is full-batch training on the prefix — and predict at the query. Here every (prompt, prefix)
network is one slice of stacked weight tensors (P, n, ...), trained together: the loss is the sum over networks
of each network's mean squared error on its own prefix (examples j < i, by a mask), so each network gets its
own gradient, and Adam's update is element-wise, so stacking changes nothing. Prefix 0 predicts 0.
Prompts are processed in chunks to bound memory (activations are P·n·n·hidden floats).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from limitlab.studies.icl.baselines.base import check_inputs, prompt_chunks


def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return ((torch.rand(shape, generator=gen) * 2 - 1) * bound).to(device).requires_grad_()


@dataclass(frozen=True)
class TwoLayerNN:
    """Stacked per-prefix 2-layer ReLU nets trained by full-batch Adam (Garg: hidden 100, lr 5e-3, 100 steps)."""

    hidden: int = 100
    steps: int = 100
    lr: float = 5e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.steps < 0 or not self.lr > 0:
            raise ValueError(f"TwoLayerNN needs hidden >= 1, steps >= 0, lr > 0; got {self.hidden}, {self.steps}, "
                             f"{self.lr}")

    @property
    def name(self) -> str:
        return "nn_gd"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        check_inputs(xs, ys)
        p, n, d = xs.shape
        gen = torch.Generator().manual_seed(self.seed)
        out = torch.zeros(p, n, dtype=torch.float32, device=xs.device)
        for sl in prompt_chunks(p, bytes_per_prompt=4 * n * n * self.hidden * 6):
            params = self.init(sl.stop - sl.start, n, d, gen, xs.device)
            out[sl] = self.fit(xs[sl].float(), ys[sl].float(), params)
        out[:, 0] = 0
        return out.to(ys.dtype)

    def init(self, p: int, n: int, d: int, gen: torch.Generator, device: torch.device) -> list[torch.Tensor]:
        """PyTorch's default Linear init for P·n networks: [W1 (P, n, d, h), b1 (P, n, 1, h), w2 (P, n, h),
        b2 (P, n, 1)], uniform in ±1/√fan_in, drawn on the CPU from ``gen``."""
        h = self.hidden
        return [_uniform((p, n, d, h), d ** -0.5, gen, device), _uniform((p, n, 1, h), d ** -0.5, gen, device),
                _uniform((p, n, h), h ** -0.5, gen, device), _uniform((p, n, 1), h ** -0.5, gen, device)]

    def fit(self, x: torch.Tensor, y: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        """Train network (a, i) of ``params`` on prompt a's first i examples; return each at its query (P, n)."""
        p, n, d = x.shape
        w1, b1, w2, b2 = params
        used = torch.arange(n, device=x.device)[None, :] < torch.arange(n, device=x.device)[:, None]  # (n, n): j < i
        weight = used / used.sum(-1, keepdim=True).clamp(min=1)  # (n nets, n examples): 1/i on the prefix

        def forward(inputs: torch.Tensor) -> torch.Tensor:  # (P, m, d) -> (P, n nets, m)
            hid = torch.relu(torch.einsum("pmd,pndh->pnmh", inputs, w1) + b1)  # (P, n, m, h)
            return torch.einsum("pnmh,pnh->pnm", hid, w2) + b2

        with torch.enable_grad():
            opt = torch.optim.Adam(params, lr=self.lr)
            for _ in range(self.steps):
                opt.zero_grad(set_to_none=True)
                err = (forward(x) - y[:, None, :]) ** 2  # (P, n nets, n examples)
                (err * weight).sum().backward()
                opt.step()
        with torch.no_grad():
            pred = forward(x)  # (P, n nets, n): net i at every x
            return torch.diagonal(pred, dim1=1, dim2=2)  # (P, n): net i at its query x_i
