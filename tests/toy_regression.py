"""A toy regression task, written as a new study's author would: one file plus one registry line.

Each sequence is T vectors x_t ∈ R^width (standard normal); the target at position t is the running mean of the
first coordinate, y_t = mean(x_1[0], …, x_t[0]). Example, width 2, T = 3::

    x      [0.5, -1.0]   [1.5, 0.2]   [-2.0, 0.3]
    target  0.5           1.0          0.0

Scored at every position; the metric ``error_by_position`` is the squared error per position (a vector metric).
``width`` is part of the stack key (it changes the read-in's shape); ``length`` may differ inside a stack
(sequences are right-padded and the padding is marked invalid and unscored).
"""

from __future__ import annotations

import torch
from pydantic import Field

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Metric, Task, TaskStack


class ToyRegression(Task):
    name = "toy_regression"
    regression = True
    varying = frozenset({"length"})
    width: int = Field(3, ge=1, le=64)
    length: int = Field(8, ge=1, le=512)

    def vocab_size(self) -> int:
        return 0

    def input_dim(self) -> int:
        return self.width

    def seq_len(self) -> int:
        return self.length

    def n_outputs(self) -> int:
        return 1

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step) -> Batch:
        t_max, width = stack.max("length"), stack.shared.width
        x = rng.normal((batch_size, t_max, width), step)  # (M, B, T, width)
        valid = torch.arange(t_max, device=x.device) < stack.to(x.device).per_model("length")[:, None, None]
        x = torch.where(valid[..., None], x, 0.0)  # (M, B, T, width); valid: (M, 1, T)
        y = x[..., 0].cumsum(-1) / torch.arange(1, t_max + 1, device=x.device)  # (M, B, T)
        valid = valid.expand(-1, batch_size, -1)
        return Batch(x, y, valid, None, valid)

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        result = super().metrics(out, batch)
        err = cls.pointwise_loss(out, batch) * batch.mask  # (M, B, T)
        result["error_by_position"] = (err.sum(1), batch.mask.sum(1).float())  # (M, T) each
        return result
