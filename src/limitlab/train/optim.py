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
                 total_steps: Sequence[int], foreach: bool = True) -> None:
        self.params = list(params)
        self.foreach = foreach  # torch._foreach_* over all parameters: same arithmetic, far fewer Python calls
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
        # What the stack's configs use at all, known on the host: terms no model uses are skipped (they would
        # multiply by 1 or add 0, so skipping them changes no bit) — the per-step overhead of a small stack.
        self.uses = {"clip": any(c.grad_clip is not None for c in configs),
                     "l2": any(c.weight_decay > 0 and c.optimizer == "adam" for c in configs),
                     "decoupled": any(c.weight_decay > 0 and c.optimizer == "adamw" for c in configs),
                     "schedule": any(c.schedule != "constant" or c.warmup_steps > 0 for c in configs)}

    def lr_at(self, step: torch.Tensor, models: slice = slice(None)) -> torch.Tensor:
        """Per-model learning rate at (0-based) ``step`` (M,): linear warmup, then constant or cosine."""
        if not self.uses["schedule"]:
            return self.peak_lr[models]
        step = step.float()
        warmup, total, min_ratio = self.warmup[models], self.total[models], self.min_ratio[models]
        warm = torch.where(warmup > 0, ((step + 1) / warmup.clamp(min=1)).clamp(max=1), 1.0)
        progress = ((step - warmup) / (total - warmup).clamp(min=1)).clamp(0, 1)
        cos = min_ratio + (1 - min_ratio) * 0.5 * (1 + torch.cos(math.pi * progress))
        return self.peak_lr[models] * warm * torch.where(self.cosine[models] > 0, cos, 1.0)

    @torch.no_grad()
    def step(self, active: torch.Tensor, step: torch.Tensor, chunk: int = 0) -> torch.Tensor | None:
        """Update the models in ``active`` (M,) bool at their own ``step`` (M,). Returns the grad norms (M,) when
        some model clips its gradients (None otherwise: they are not computed).

        ``chunk`` > 0 updates that many models at a time (the same numbers; on a CPU a chunk's parameters,
        gradients and moments stay in cache across the update's passes, where a whole stack's do not).
        """
        n = self.peak_lr.shape[0]
        hyper = self._hyper(active, step, slice(None))
        width = chunk if 0 < chunk < n else n
        norms = []
        for m0 in range(0, n, width):
            sl = slice(m0, min(m0 + width, n))
            grads = [p.grad[sl] if p.grad is not None else None for p in self.params]
            norms.append(self._update(sl, active[sl], {k: v[sl] for k, v in hyper.items()}, grads))
        if norms[0] is None:
            return None
        return norms[0] if len(norms) == 1 else torch.cat(norms)

    @torch.no_grad()
    def step_models(self, models: slice, active: torch.Tensor, step: torch.Tensor,
                    grads: list[torch.Tensor | None]) -> torch.Tensor | None:
        """Update only ``models`` (a slice of the stack) from their own gradients (one per parameter, None = 0).

        The same numbers as :meth:`step` gives those models; lets a CPU chunk update while still in cache.
        """
        return self._update(models, active, self._hyper(active, step, models), grads)

    def _hyper(self, active: torch.Tensor, step: torch.Tensor, models: slice) -> dict[str, torch.Tensor]:
        """Per-model coefficients of this update (advances the models' update counters)."""
        self.t[models] += active.float()
        act = active.float()
        lr = self.lr_at(step, models) * act
        beta1, beta2, t = self.beta1[models], self.beta2[models], self.t[models]
        b1, b2 = torch.where(active, beta1, 1.0), torch.where(active, beta2, 1.0)
        return {"wd": self.wd_l2[models] * act, "b1": b1, "1-b1": 1 - b1, "b2": b2, "1-b2": 1 - b2,
                "bc1": 1 - beta1 ** t.clamp(min=1), "bc2": 1 - beta2 ** t.clamp(min=1), "eps": self.eps[models],
                "lr": lr, "decay": 1 - lr * self.wd_decoupled[models], "clip": self.clip[models]}

    def _update(self, sl: slice, active: torch.Tensor, h: dict[str, torch.Tensor],
                grads: list[torch.Tensor | None]) -> torch.Tensor | None:
        """Adam(W) on models ``sl``: per-model clip, L2 or decoupled decay, bias-corrected moments."""
        ps = [p[sl] for p in self.params]
        grads = [g if g is not None else torch.zeros_like(q) for g, q in zip(grads, ps)]
        if active.device.type != "cpu" or not bool(active.all()):  # (a free check on a CPU)
            grads = [torch.where(_col(active, g), g, 0.0) for g in grads]  # drop NaN grads of frozen models
        norm = scale = None
        if self.uses["clip"]:
            norm = sum(g.float().pow(2).flatten(1).sum(1) for g in grads).sqrt()  # (c,)
            scale = (h["clip"] / (norm + 1e-6)).clamp(max=1.0)
        ms, vs = [m[sl] for m in self.exp_avg], [v[sl] for v in self.exp_avg_sq]
        if self.foreach:
            self._foreach_update(ps, grads, ms, vs, scale, h)
            return norm
        for p, g, m, v in zip(ps, grads, ms, vs):
            if scale is not None:
                g = g * _col(scale, g)
            if self.uses["l2"]:
                g = g + _col(h["wd"], p) * p
            m.mul_(_col(h["b1"], m)).add_(g * _col(h["1-b1"], g))
            v.mul_(_col(h["b2"], v)).add_(g * g * _col(h["1-b2"], g))
            update = (m / _col(h["bc1"], m)) / ((v / _col(h["bc2"], v)).sqrt() + _col(h["eps"], v))
            if self.uses["decoupled"]:
                p.mul_(_col(h["decay"], p))
            p.sub_(_col(h["lr"], p) * update)
        return norm

    def _foreach_update(self, ps: list[torch.Tensor], grads: list[torch.Tensor], ms: list[torch.Tensor],
                        vs: list[torch.Tensor], scale: torch.Tensor | None, h: dict[str, torch.Tensor]) -> None:
        """The loop's update, op for op (same operands, same order, so the same bits), as multi-tensor ops."""
        def cols(x: torch.Tensor) -> list[torch.Tensor]:  # (c,) -> one broadcastable view per parameter
            views = {d: x.view(-1, *([1] * (d - 1))) for d in {p.dim() for p in ps}}
            return [views[p.dim()] for p in ps]

        g = grads if scale is None else torch._foreach_mul(grads, cols(scale))
        if self.uses["l2"]:
            g = torch._foreach_add(g, torch._foreach_mul(cols(h["wd"]), ps))  # g·scale + wd·p
        torch._foreach_mul_(ms, cols(h["b1"]))
        torch._foreach_add_(ms, torch._foreach_mul(g, cols(h["1-b1"])))  # m·b1 + g·(1-b1)
        gg = torch._foreach_mul(g, g)
        torch._foreach_mul_(gg, cols(h["1-b2"]))
        torch._foreach_mul_(vs, cols(h["b2"]))
        torch._foreach_add_(vs, gg)  # v·b2 + g·g·(1-b2)
        update = torch._foreach_div(ms, cols(h["bc1"]))
        denom = torch._foreach_div(vs, cols(h["bc2"]))
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, cols(h["eps"]))
        torch._foreach_div_(update, denom)  # (m/bc1) / (sqrt(v/bc2) + eps)
        if self.uses["decoupled"]:
            torch._foreach_mul_(ps, cols(h["decay"]))
        torch._foreach_sub_(ps, torch._foreach_mul(update, cols(h["lr"])))  # p·(1 - lr·wd) - lr·update

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
