"""Additive attention biases that depend on i - j only: ALiBi and T5's bucketed relative bias."""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from limitlab.nn.positions.base import AttnPositions, PositionEncoding


class ALiBi(PositionEncoding):
    """Press et al. 2022: logit += -slope_h · |i - j|, slopes 2^(-8h/H) for h = 1..H (geometric)."""

    name = "alibi"

    def __init__(self, geo, options) -> None:
        super().__init__(geo, options)
        slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / geo.n_heads) for h in range(geo.n_heads)])
        self.register_buffer("slopes", slopes, persistent=False)

    def bias(self, pos: AttnPositions) -> torch.Tensor:
        distance = pos.offsets().abs().to(self.slopes.dtype)  # (Mq, Bq, 1, Tq, Tk)
        return -self.slopes.view(-1, 1, 1) * distance  # (Mq, Bq, H, Tq, Tk)


class T5Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    t5_buckets: int = Field(32, ge=2, description="number of relative-position buckets")
    t5_max_distance: int = Field(128, ge=2, description="distance beyond which all offsets share a bucket")


class T5Bias(PositionEncoding):
    """Raffel et al. 2020: a learned per-head scalar per bucket of i - j; exact buckets for small offsets,
    log-spaced up to ``t5_max_distance``. Bidirectional models split buckets between the two directions.
    One table per layer and model: (M, H, buckets)."""

    name = "t5"
    Options = T5Options

    def __init__(self, geo, options) -> None:
        super().__init__(geo, options)
        self.table = nn.Parameter(torch.zeros(geo.n_models, geo.n_heads, options.t5_buckets))

    @classmethod
    def check(cls, geo, options) -> None:
        n = options.t5_buckets if geo.causal else options.t5_buckets // 2  # buckets per direction
        if n < 2:
            raise ValueError(f"t5 in a bidirectional model needs t5_buckets >= 4, got t5_buckets={options.t5_buckets}")
        if options.t5_max_distance <= n // 2:
            raise ValueError(f"t5_max_distance={options.t5_max_distance} must exceed the {n // 2} exact buckets "
                             f"(half of the {n} buckets per direction)")

    def buckets(self, offsets: torch.Tensor) -> torch.Tensor:
        n, max_d = self.options.t5_buckets, self.options.t5_max_distance
        if self.geo.causal:
            base, dist = torch.zeros_like(offsets), offsets.clamp(min=0)
        else:
            n //= 2
            base, dist = (offsets < 0).long() * n, offsets.abs()
        exact = n // 2
        log_bucket = exact + (
            torch.log(dist.float().clamp(min=1) / exact) / math.log(max_d / exact) * (n - exact)
        ).long()
        return base + torch.where(dist < exact, dist, log_bucket.clamp(max=n - 1))

    def bias(self, pos: AttnPositions) -> torch.Tensor:
        idx = self.buckets(pos.offsets())[:, :, 0]  # (Mq, Bq, Tq, Tk)
        table = self.table  # (M, H, buckets)
        if idx.shape[0] == 1:
            out = table[:, :, idx[0]]  # (M, H, Bq, Tq, Tk)
        else:
            out = torch.stack([table[m][:, idx[m]] for m in range(idx.shape[0])])
        return out.transpose(1, 2)  # (M, Bq, H, Tq, Tk)

    def init_model(self, m: int, gen: torch.Generator, scheme: str) -> None:
        with torch.no_grad():
            self.table[m].zero_()
