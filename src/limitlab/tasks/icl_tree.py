"""Depth-4 decision trees in context (Garg et al. 2022).

A complete binary tree stored as a heap: internal node t (0 … 2^depth − 2) tests x[c_t] > 0 with c_t uniform
among the active coordinates, going to child 2t + 1 (no) or 2t + 2 (yes); the leaf reached holds a value
~ N(0, 1). So Var y = 1 (``scale()``, Garg's normaliser ÷1). Example, depth 1 (one split on x_2, leaves
(−0.5, 1.5))::

    x        (0.3, −1.0)   (−2.0, 0.4)   (1.0, 0.0)
    y         −0.5          1.5           −0.5

Garg's code draws split coordinates over all d even while the curriculum zeroes some (such a node then always
goes left); here they are drawn among the active coordinates. At the curriculum's end the two agree.
"""

from __future__ import annotations

import torch
from pydantic import Field

from limitlab.rng import StackRNG
from limitlab.tasks.base import TaskStack
from limitlab.tasks.icl_common import SALT_PARAMS, ICLTask


class ICLTree(ICLTask):
    """Random decision trees of depth ``depth`` with Gaussian leaf values."""

    name = "icl_tree"
    n_points: int = Field(101, ge=1, le=4096, description="(x, y) pairs per prompt")
    depth: int = Field(4, ge=1, le=12, description="tree depth (2^depth leaves)")

    def scale(self) -> float:
        return 1.0

    @classmethod
    def targets(cls, stack: TaskStack, rng: StackRNG, xs: torch.Tensor, step: int | torch.Tensor,
                dims: torch.Tensor, salt: int = SALT_PARAMS) -> torch.Tensor:
        b = xs.shape[1]
        depth = stack.shared.depth
        inner = 2 ** depth - 1
        coords = rng.randint((b, inner), dims, step, salt)  # (M, B, inner) uniform in [0, dims)
        leaves = rng.normal((b, inner + 1), step, salt + 1)  # (M, B, 2^depth)
        node = torch.zeros(xs.shape[:3], dtype=torch.int64, device=xs.device)  # (M, B, N)
        for _ in range(depth):
            c = coords.gather(2, node)  # (M, B, N) coordinate tested at each point's node
            right = xs.gather(3, c[..., None])[..., 0] > 0  # (M, B, N)
            node = 2 * node + 1 + right.long()
        return leaves.gather(2, node - inner)
