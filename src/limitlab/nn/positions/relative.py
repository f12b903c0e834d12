"""Learned relative position embeddings in the keys (Shaw et al. 2018; the 'relative' baseline of CoPE).

logit_ij += q_i · r[i - j], with r a learned (hd, P) table per layer and model, shared across heads.
Offsets beyond ``rel_max_distance`` reuse the last entry ("relative-capped"). Causal models index
r[0 … max]; bidirectional ones r[-max … max].
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from limitlab.nn.positions.base import AttnPositions, PositionEncoding


class RelativeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rel_max_distance: int = Field(1024, ge=1, description="largest distinct offset |i - j|")
    scale_position_logits: bool = Field(
        False, description="divide position logits by sqrt(head_dim) as RAM's code does (default: appendix)"
    )


class Relative(PositionEncoding):
    name = "relative"
    Options = RelativeOptions

    def __init__(self, geo, options) -> None:
        super().__init__(geo, options)
        size = options.rel_max_distance + 1 if geo.causal else 2 * options.rel_max_distance + 1
        self.table = nn.Parameter(torch.zeros(geo.n_models, geo.head_dim, size))

    @classmethod
    def saved_values_per_query(cls, geo, options, n_keys: int) -> int:
        """q·r for every table entry, (H, P) per query, kept by the gather; and the rewritten logits."""
        size = options.rel_max_distance + 1 if geo.causal else 2 * options.rel_max_distance + 1
        return geo.n_heads * size + 2 * geo.n_heads * n_keys

    def table_index(self, pos: AttnPositions) -> torch.Tensor:
        max_d = self.options.rel_max_distance
        if self.geo.causal:
            return pos.offsets().clamp(0, max_d)
        return pos.offsets().clamp(-max_d, max_d) + max_d

    def on_logits(self, q, logits, pos: AttnPositions, x=None):
        z = torch.einsum("mbhqd,mdp->mbhqp", q, self.table.to(q.dtype))  # (M, B, H, Tq, P)
        idx = self.table_index(pos).expand(*logits.shape)  # (M, B, H, Tq, Tk)
        extra = z.gather(-1, idx)
        if self.options.scale_position_logits:
            extra = extra / math.sqrt(self.geo.head_dim)
        return logits + extra

    def init_model(self, m: int, gen: torch.Generator, scheme: str) -> None:
        with torch.no_grad():
            self.table[m].copy_(torch.randn(self.table.shape[1:], generator=gen) / math.sqrt(self.geo.head_dim))
