"""Absolute position encodings added to the token embeddings: learned table, fixed sinusoids, none."""

from __future__ import annotations

import math

import torch
from torch import nn

from limitlab.nn.positions.base import PositionEncoding, check_length


class NoPosition(PositionEncoding):
    """NoPE: no position information; a causal mask alone breaks permutation symmetry."""

    name = "none"


class LearnedAbsolute(PositionEncoding):
    """A learned (M, max_len, d) table added to the residual stream (GPT-2 style)."""

    name = "learned"
    scope = "input"

    def __init__(self, geo, options) -> None:
        super().__init__(geo, options)
        self.table = nn.Parameter(torch.zeros(geo.n_models, geo.max_len, geo.d_model))

    def on_input(self, h: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        check_length(self.geo, h.shape[2], self.name)
        return h + self.table[:, None, : h.shape[2]].to(h.dtype)  # (M, 1, T, d)

    def init_model(self, m: int, gen: torch.Generator, scheme: str) -> None:
        std = 1.0 if scheme == "torch" else 0.02
        with torch.no_grad():
            self.table[m].copy_(torch.randn(self.geo.max_len, self.geo.d_model, generator=gen) * std)


class Sinusoidal(PositionEncoding):
    """Fixed sin/cos features (Vaswani et al.): PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(…)."""

    name = "sinusoidal"
    scope = "input"

    def __init__(self, geo, options) -> None:
        super().__init__(geo, options)
        t = torch.arange(geo.max_len, dtype=torch.float32)[:, None]
        freq = torch.exp(-math.log(10000.0) * torch.arange(0, geo.d_model, 2) / geo.d_model)
        table = torch.zeros(geo.max_len, geo.d_model)
        table[:, 0::2] = torch.sin(t * freq)
        table[:, 1::2] = torch.cos(t * freq)[:, : geo.d_model // 2]
        self.register_buffer("table", table, persistent=False)

    def on_input(self, h: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        check_length(self.geo, h.shape[2], self.name)
        return h + self.table[: h.shape[2]].to(h.dtype)
