"""2-layer ReLU networks in context (Garg et al. 2022).

    f(x) = √(2/h) · Σ_{j < h} v_j · relu(u_jᵀx),   x ~ N(0, I_d),  u_j ~ N(0, I_d),  v_j ~ N(0, 1),  h = 100

(Garg's official code: hidden width 100 since June 2023, 4 before.) E relu(z)² = ½·Var z, so Var y ≈ d
(``scale()``, Garg's normaliser ÷d). Example, d = 2, h = 2, u_1 = (1, 0), u_2 = (0, −1), v = (1, 2),
so f(x) = relu(x_1) + 2·relu(−x_2)::

    x        (0.5, 1.0)   (−1.0, −0.5)   (2.0, −1.0)
    y         0.5          1.0             4.0

Garg also scores ReLU-net models on linear prompts; the study does that with :class:`ICLLinear`.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from limitlab.rng import StackRNG
from limitlab.tasks.base import TaskStack
from limitlab.tasks.icl_common import SALT_PARAMS, ICLTask


class ICLReLU(ICLTask):
    """Random 2-layer ReLU networks of hidden width ``hidden``."""

    name = "icl_relu"
    n_points: int = Field(101, ge=1, le=4096, description="(x, y) pairs per prompt")
    hidden: int = Field(100, ge=1, le=4096, description="hidden units h")

    def scale(self) -> float:
        return float(self.d)

    @classmethod
    def targets(cls, stack: TaskStack, rng: StackRNG, xs: torch.Tensor, step: int | torch.Tensor,
                dims: torch.Tensor, salt: int = SALT_PARAMS) -> torch.Tensor:
        b, d = xs.shape[1], xs.shape[-1]
        h = stack.shared.hidden
        u = rng.normal((b, d, h), step, salt)  # (M, B, d, h)
        v = rng.normal((b, h), step, salt + 1)  # (M, B, h)
        hid = torch.relu(xs @ u)  # (M, B, N, h); zeroed x coordinates contribute nothing
        return math.sqrt(2.0 / h) * (hid * v[:, :, None]).sum(-1)
