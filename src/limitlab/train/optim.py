"""Adam / AdamW over stacked parameters, with per-model hyperparameters, schedules and gradient clipping.

Every hyperparameter is a per-model column, so one stack may mix learning rates, weight decays, optimizers
(Adam's L2 vs AdamW's decoupled decay) and step budgets. Models outside ``active`` (finished, or whose loss
went NaN) are frozen: parameters and moments are left exactly as they were.

**One flat buffer.** The optimizer owns its parameters' storage: at construction every parameter (M, ...)
becomes a view of its own columns of one (M, P) buffer, and the moments are (M, P) too. An update is then a
dozen element-wise ops on one tensor, however many parameter tensors the model has (a small model's step is
otherwise dominated by per-tensor dispatch), and model m's state is row m. Gradients are gathered into an
(M, P) tensor by one ``torch.cat``.

>>> w = torch.nn.Parameter(torch.ones(2, 3))            # two models, three weights each
>>> opt = StackedAdam([w], [OptimConfig(lr=0.1), OptimConfig(lr=0.1)], [10, 10])
>>> w.grad = torch.ones(2, 3)
>>> _ = opt.step(torch.tensor([True, False]), torch.tensor([0, 0]))
>>> w.detach().double().round(decimals=4).tolist()    # Adam's first step moves by lr; model 1 is frozen
[[0.9, 0.9, 0.9], [1.0, 1.0, 1.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from limitlab.spec import OptimConfig


class StackedAdam:
    """One optimizer for a stack; parameters have a leading model dim M (and move into one (M, P) buffer)."""

    def __init__(self, params: Sequence[torch.nn.Parameter], configs: Sequence[OptimConfig],
                 total_steps: Sequence[int]) -> None:
        self.params = list(params)
        first = self.params[0]
        n = first.shape[0]
        if any(p.shape[0] != n or p.dtype != first.dtype or p.device != first.device for p in self.params):
            raise ValueError("every stacked parameter needs the same model dim, dtype and device")
        self.sizes = [p[0].numel() for p in self.params]
        self.flat = torch.empty(n, sum(self.sizes), dtype=first.dtype, device=first.device)  # (M, P)
        self.exp_avg_flat, self.exp_avg_sq_flat = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        self.exp_avg, self.exp_avg_sq = [], []  # per-parameter views of the moments (checkpoints, tests)
        offset = 0
        with torch.no_grad():
            for p, size in zip(self.params, self.sizes):
                columns = slice(offset, offset + size)
                view = self.flat[:, columns].view(p.shape)
                view.copy_(p)
                p.data = view  # the parameter now lives in the flat buffer
                self.exp_avg.append(self.exp_avg_flat[:, columns].view(p.shape))
                self.exp_avg_sq.append(self.exp_avg_sq_flat[:, columns].view(p.shape))
                offset += size

        dtype = torch.float64 if first.dtype == torch.float64 else torch.float32  # coefficients' precision

        def col(values) -> torch.Tensor:  # (M, 1)
            return torch.tensor(list(values), dtype=dtype, device=first.device)[:, None]

        self.peak_lr = col(c.lr for c in configs)
        self.beta1, self.beta2, self.eps = col(c.beta1 for c in configs), col(c.beta2 for c in configs), col(
            c.eps for c in configs)
        decoupled = col(c.optimizer == "adamw" for c in configs)
        wd = col(c.weight_decay for c in configs)
        self.wd_decoupled, self.wd_l2 = wd * decoupled, wd * (1 - decoupled)
        self.clip = col(c.grad_clip if c.grad_clip is not None else math.inf for c in configs)
        self.warmup = col(c.warmup_steps for c in configs)
        self.cosine = col(c.schedule == "cosine" for c in configs)
        self.min_ratio = col(c.min_lr_ratio for c in configs)
        self.total = col(total_steps)
        self.t = torch.zeros(n, dtype=dtype, device=first.device)  # updates taken per model
        # What the stack's configs use at all, known on the host: terms no model uses are skipped (they would
        # multiply by 1 or add 0, so skipping them changes no bit) — the per-step overhead of a small stack.
        self.uses = {"clip": any(c.grad_clip is not None for c in configs),
                     "l2": any(c.weight_decay > 0 and c.optimizer == "adam" for c in configs),
                     "decoupled": any(c.weight_decay > 0 and c.optimizer == "adamw" for c in configs),
                     "schedule": any(c.schedule != "constant" or c.warmup_steps > 0 for c in configs)}

    def lr_at(self, step: torch.Tensor, models: slice = slice(None)) -> torch.Tensor:
        """Per-model learning rate at (0-based) ``step`` (M,): linear warmup, then constant or cosine."""
        return self._lr(step[:, None], models)[:, 0]

    def _lr(self, step: torch.Tensor, models: slice) -> torch.Tensor:
        """(c, 1) learning rates at ``step`` (c, 1)."""
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
        """Update the models in ``active`` (M,) bool at their own ``step`` (M,) from ``p.grad``. Returns the grad
        norms (M,) when some model clips its gradients (None otherwise: they are not computed).

        ``chunk`` > 0 updates that many models at a time (the same numbers; on a CPU a chunk's parameters,
        gradients and moments stay in cache across the update's passes, where a whole stack's do not).
        """
        n = self.flat.shape[0]
        width = chunk if 0 < chunk < n else n
        norms = []
        for m0 in range(0, n, width):
            sl = slice(m0, min(m0 + width, n))
            grads = [p.grad[sl] if p.grad is not None else None for p in self.params]
            norms.append(self.step_models(sl, active[sl], step[sl], grads))
        if norms[0] is None:
            return None
        return norms[0] if len(norms) == 1 else torch.cat(norms)

    @torch.no_grad()
    def step_models(self, models: slice, active: torch.Tensor, step: torch.Tensor,
                    grads: list[torch.Tensor | None]) -> torch.Tensor | None:
        """Update only ``models`` (a slice of the stack) from their own gradients (one per parameter, None = 0).

        The same numbers as :meth:`step` gives those models; lets a CPU chunk update while still in cache.
        """
        rows = self.flat[models].shape[0]
        grad = torch.cat([g.reshape(rows, -1) if g is not None else self.flat.new_zeros(rows, size)
                          for g, size in zip(grads, self.sizes)], dim=1)  # (c, P)
        every = active.device.type == "cpu" and bool(active.all())  # no frozen model (a free check on a CPU only)
        return self._update(models, active, self._hyper(active, step, models, every), grad, every)

    def _hyper(self, active: torch.Tensor, step: torch.Tensor, models: slice,
               every: bool) -> dict[str, torch.Tensor]:
        """Per-model (c, 1) coefficients of this update (advances the models' update counters).

        A frozen model gets coefficients that leave its state as it is (no step, no moment decay). When ``every``
        model updates those masks are all ones and are skipped: the same bits, a dozen fewer tiny ops per step.
        """
        beta1, beta2 = self.beta1[models], self.beta2[models]
        lr = self._lr(step[:, None], models)
        if every:
            t = self.t[models]
            t += 1  # (a view: advances self.t)
            t = t[:, None]
            h = {"1-b1": 1 - beta1, "b2": beta2, "1-b2": 1 - beta2}
        else:
            act = active.float()[:, None]
            self.t[models] += act[:, 0]
            t = self.t[models][:, None].clamp(min=1)
            lr = lr * act
            b2 = torch.where(active[:, None], beta2, 1.0)
            h = {"1-b1": act - act * beta1, "b2": b2, "1-b2": 1 - b2}
        h.update({"1/bc2": 1 / (1 - beta2 ** t), "-lr/bc1": -lr / (1 - beta1 ** t), "eps": self.eps[models]})
        if self.uses["l2"]:
            h["wd"] = self.wd_l2[models] if every else self.wd_l2[models] * act
        if self.uses["decoupled"]:
            h["decay"] = 1 - lr * self.wd_decoupled[models]
        if self.uses["clip"]:
            h["clip"] = self.clip[models]
        return h

    def _update(self, models: slice, active: torch.Tensor, h: dict[str, torch.Tensor],
                grad: torch.Tensor, every: bool) -> torch.Tensor | None:
        """Adam(W) on rows ``models`` of the flat buffer: per-model clip, L2 or decoupled decay, bias correction."""
        p, m, v = self.flat[models], self.exp_avg_flat[models], self.exp_avg_sq_flat[models]  # (c, P) each
        if not every:
            grad = torch.where(active[:, None], grad, 0.0)  # drop NaN grads of frozen models
        norm = None
        if self.uses["clip"]:
            norm = grad.pow(2).sum(1).sqrt()  # (c,)
            grad = grad * (h["clip"] / (norm[:, None] + 1e-6)).clamp(max=1.0)
        if self.uses["l2"]:
            grad = grad + h["wd"] * p
        m.lerp_(grad, h["1-b1"])  # m·b1 + g·(1-b1); weight 0 leaves a frozen model's m as it is
        v.mul_(h["b2"]).addcmul_(grad, grad * h["1-b2"])  # v·b2 + g²·(1-b2)
        denom = (v * h["1/bc2"]).sqrt_().add_(h["eps"])  # sqrt(v / bc2) + eps
        if self.uses["decoupled"]:
            p.mul_(h["decay"])  # p·(1 - lr·wd)
        p.addcdiv_(m * h["-lr/bc1"], denom)  # p - lr·(m / bc1) / denom
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
