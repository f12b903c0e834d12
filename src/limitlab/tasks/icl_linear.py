"""Linear regression in context (Garg et al. 2022): dense, sparse (k of d weights non-zero) and noisy.

    f(x) = wᵀx,  x ~ N(0, I_d),  w ~ N(0, I_d);  sparse: all but ``sparsity`` = k coordinates of w zeroed,
    the kept ones uniform among the active dims;  y = f(x) + noise_std·ε  (noiseless by default)

Var y = d dense, k sparse (``scale()``, Garg's normaliser: ÷d, ÷k). Example, d = 3, w = (1, 0, −2)
(sparse, k = 2)::

    x        (0.5, 1.0, 0.0)   (−1.0, 2.0, 0.5)   (0.0, 0.3, 1.0)
    y         0.5               −2.0               −2.0

Out-of-distribution splits (Garg's prompt sets, see :mod:`limitlab.tasks.icl_common`): ``random_quadrants``,
``orthogonal_query``, ``overlapping_query``, ``half_subspace``, ``skewed``, ``scale_x_<s>`` and
``scale_y_<s>`` for s ∈ {0.333, 0.5, 2, 3}, and ``noisy_y`` (noise_std 1, y renormalised to variance d).
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from limitlab.rng import StackRNG
from limitlab.tasks.base import Task, TaskStack
from limitlab.tasks.icl_common import QUERY_SETS, SALT_PARAMS, ICLTask

SCALES = (0.333, 0.5, 2.0, 3.0)  # Garg's scale-x / scale-y factors


class ICLLinear(ICLTask):
    """Dense (``sparsity=None``) or sparse linear functions."""

    name = "icl_linear"
    sparsity: int | None = Field(None, ge=1, description="non-zero weights k (None = dense)")

    @model_validator(mode="after")
    def _check_sparsity(self) -> ICLLinear:
        if self.sparsity is not None and self.sparsity > self.d:
            raise ValueError(f"sparsity={self.sparsity} exceeds d={self.d}; allowed: 1..{self.d} or None")
        return self

    def scale(self) -> float:
        """Var y = d (dense) or k (sparse), times x_scale² (Garg scales the zero line of scale-x prompts so)."""
        return float(self.d if self.sparsity is None else self.sparsity) * self.x_scale ** 2

    def splits(self) -> dict[str, Task]:
        out: dict[str, Task] = {"test": self}
        if self.prompt_set != "standard" or self.x_scale != 1 or self.y_scale != 1 or self.noise_std:
            return out
        for kind in (*QUERY_SETS, "half_subspace", "skewed"):
            if kind in ("half_subspace", "skewed") and self.d < 2:
                continue
            out[kind] = self.model_copy(update={"prompt_set": kind, "curriculum": None})
        for s in SCALES:
            out[f"scale_x_{s:g}"] = self.model_copy(update={"x_scale": s, "curriculum": None})
            out[f"scale_y_{s:g}"] = self.model_copy(update={"y_scale": s, "curriculum": None})
        out["noisy_y"] = self.model_copy(update={"noise_std": 1.0, "renormalize": True, "curriculum": None})
        return out

    @classmethod
    def targets(cls, stack: TaskStack, rng: StackRNG, xs: torch.Tensor, step: int | torch.Tensor,
                dims: torch.Tensor, salt: int = SALT_PARAMS) -> torch.Tensor:
        b, d = xs.shape[1], xs.shape[-1]
        w = rng.normal((b, d), step, salt)  # (M, B, d)
        active = torch.arange(d, device=xs.device) < dims[:, None, None]  # (M, 1, d)
        k = stack.shared.sparsity
        if k is not None:
            keys = torch.where(active, rng.random((b, d), step, salt + 1), 2.0)  # inactive dims sort last
            rank = keys.argsort(-1).argsort(-1)  # (M, B, d)
            active = active & (rank < k)
        return (xs * (w * active)[:, :, None]).sum(-1)  # (M, B, N)
