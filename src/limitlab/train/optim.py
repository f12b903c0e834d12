"""Adam / AdamW over stacked parameters, with per-model hyperparameters, schedules and gradient clipping.

Every hyperparameter is an (M,) tensor, so one stack may mix learning rates, weight decays, optimizers
(Adam's L2 vs AdamW's decoupled decay) and step budgets. Models outside ``active`` (finished, or whose loss
went NaN) are frozen: parameters and moments are left exactly as they were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from limitlab.spec import OptimConfig


def _col(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(M,) -> (M, 1, ..., 1) broadcastable against ``like``."""
    return x.view(-1, *([1] * (like.dim() - 1)))


class StackedAdam:
    """One optimizer for a stack; parameters have a leading model dim M."""

    def __init__(self, params: Sequence[torch.nn.Parameter], configs: Sequence[OptimConfig],
                 total_steps: Sequence[int]) -> None:
        self.params = list(params)
        dev = self.params[0].device

        def vec(values) -> torch.Tensor:
            return torch.tensor(list(values), dtype=torch.float32, device=dev)

        self.peak_lr = vec(c.lr for c in configs)
        self.beta1, self.beta2, self.eps = vec(c.beta1 for c in configs), vec(c.beta2 for c in configs), vec(
            c.eps for c in configs)
        decoupled = vec(c.optimizer == "adamw" for c in configs)
        wd = vec(c.weight_decay for c in configs)
        self.wd_decoupled, self.wd_l2 = wd * decoupled, wd * (1 - decoupled)
        self.clip = vec(c.grad_clip if c.grad_clip is not None else math.inf for c in configs)
        self.warmup = vec(c.warmup_steps for c in configs)
        self.cosine = vec(c.schedule == "cosine" for c in configs)
        self.min_ratio = vec(c.min_lr_ratio for c in configs)
        self.total = vec(total_steps)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.t = torch.zeros_like(self.peak_lr)  # updates taken per model

    def lr_at(self, step: torch.Tensor) -> torch.Tensor:
        """Per-model learning rate at (0-based) ``step`` (M,): linear warmup, then constant or cosine."""
        step = step.float()
        warm = torch.where(self.warmup > 0, ((step + 1) / self.warmup.clamp(min=1)).clamp(max=1), 1.0)
        progress = ((step - self.warmup) / (self.total - self.warmup).clamp(min=1)).clamp(0, 1)
        cos = self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + torch.cos(math.pi * progress))
        return self.peak_lr * warm * torch.where(self.cosine > 0, cos, 1.0)

    @torch.no_grad()
    def step(self, active: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """Update the models in ``active`` (M,) bool at their own ``step`` (M,). Returns the grad norms (M,)."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        grads = [torch.where(_col(active, g), g, 0.0) for g in grads]  # drop NaN grads of frozen models
        sq = sum(g.float().pow(2).flatten(1).sum(1) for g in grads)  # (M,)
        norm = sq.sqrt()
        scale = (self.clip / (norm + 1e-6)).clamp(max=1.0)
        self.t += active.float()
        act = active.float()
        lr = self.lr_at(step) * act
        b1 = torch.where(active, self.beta1, 1.0)
        b2 = torch.where(active, self.beta2, 1.0)
        bc1 = 1 - self.beta1 ** self.t.clamp(min=1)
        bc2 = 1 - self.beta2 ** self.t.clamp(min=1)
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq):
            g = g * _col(scale, g) + _col(self.wd_l2 * act, p) * p
            m.mul_(_col(b1, m)).add_(g * _col(1 - b1, g))
            v.mul_(_col(b2, v)).add_(g * g * _col(1 - b2, g))
            update = (m / _col(bc1, m)) / ((v / _col(bc2, v)).sqrt() + _col(self.eps, v))
            p.mul_(1 - _col(lr * self.wd_decoupled, p)).sub_(_col(lr, p) * update)
        return norm

    def state_of(self, m: int) -> dict[str, object]:
        """Model m's optimizer state (for its checkpoint)."""
        return {"exp_avg": [x[m].clone().cpu() for x in self.exp_avg],
                "exp_avg_sq": [x[m].clone().cpu() for x in self.exp_avg_sq], "t": float(self.t[m])}

    def load_state_of(self, m: int, state: dict[str, object]) -> None:
        with torch.no_grad():
            for x, saved in zip(self.exp_avg, state["exp_avg"]):
                x[m].copy_(saved)
            for x, saved in zip(self.exp_avg_sq, state["exp_avg_sq"]):
                x[m].copy_(saved)
            self.t[m] = state["t"]
