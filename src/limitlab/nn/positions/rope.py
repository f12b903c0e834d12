"""Rotary position embedding (Su et al. 2021): rotate q and k so that q·k depends on i - j only."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from limitlab.nn.positions.base import AttnPositions, PositionEncoding


class RoPEOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rope_base: float = Field(10000.0, gt=1.0, description="RoPE frequency base")


class RoPE(PositionEncoding):
    """Rotates channel pairs (c, c + hd/2) by angle position · base^(-2c/hd)."""

    name = "rope"
    Options = RoPEOptions

    @classmethod
    def check(cls, geo, options) -> None:
        if geo.head_dim % 2:
            raise ValueError(f"rope needs an even head dimension, got d_model/n_heads = {geo.head_dim}")

    def _rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        dtype = torch.promote_types(x.dtype, torch.float32)  # angles in fp32 at least, fp64 for fp64 inputs
        inv_freq = self.options.rope_base ** (-torch.arange(half, device=x.device, dtype=dtype) / half)
        angle = positions.to(dtype).unsqueeze(-1) * inv_freq  # (..., T, hd/2)
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)

    def on_qk(self, q, k, pos: AttnPositions):
        return self._rotate(q, pos.query), self._rotate(k, pos.key)
