"""Contextual Position Encoding (Golovneva et al. 2024, arXiv 2405.18719).

For query i and key j (j <= i):
    g_ij = σ(q_i · k_j / √hd)               gates, from the (scaled) attention logits
    p_ij = Σ_{t=j..i} g_it                  reverse cumulative sum, including the query token itself
    p_ij ← min(p_ij, p_max)
    logit_ij += (1 - w) · z_i[⌊p⌋] + w · z_i[⌈p⌉],   z_i[t] = q_i · e[t],  w = p - ⌊p⌋

z is computed once per query for the integer positions 0..p_max (one matmul), then interpolated. With every
gate at 1, p_ij = i - j + 1 and CoPE is a relative encoding with table r[d] = e[d + 1].

Choices:
* Scaling: the paper's appendix adds the position logits *after* the 1/√hd scaling (unscaled); the released
  RAM code adds them before dividing by √hd. Default: the appendix; ``scale_position_logits=True`` gives RAM's.
* The table e is shared by the heads of a layer ((hd, p_max+1) per layer and model) and starts at zero,
  as in both the appendix and RAM, so an untrained CoPE model behaves like NoPE.
* ``cope_sep_key=True``: gates come from a separate key projection (the paper's "sep-keys" variant).
* CoPE needs a causal model (the sum runs from j up to the query).

Two implementations of the same maths (``impl``): ``reference`` rewrites the materialised (M, B, H, Tq, Tk)
logits of the explicit attention path (:meth:`CoPE.on_logits`, also used whenever attention weights are kept);
``blocked`` (:mod:`limitlab.nn.cope_kernels`) computes the attention in query blocks with a hand-written
backward that recomputes instead of keeping the (Tq, Tk) tensors, and skips keys after a causal block; ``auto``
takes ``blocked`` from AUTO_MIN_KEYS keys on, where it measured faster on one CPU thread (shorter: about equal,
a little slower). The default stays ``reference``: on two oversubscribed CPU threads the blocked kernel's many
small ops were not reliably faster (BENCHMARKS.md, "CoPE attention"); it always keeps 18-35x less memory for
the backward pass at T = 512-1024. The attention layer routes to the kernel only when CoPE is its only
logit-rewriting encoding and no encoding adds a bias (cope+relative and cope+alibi use the reference path).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from limitlab.nn.cope_kernels import cope_attention
from limitlab.nn.layers import StackedLinear
from limitlab.nn.positions.base import AttnPositions, PositionEncoding

AUTO_MIN_KEYS = 256  # impl='auto' uses the blocked kernel from this many keys on (BENCHMARKS.md, CoPE attention)


class CoPEOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    p_max: int = Field(64, description="positions are clamped at p_max (>= 1)")
    cope_sep_key: bool = Field(False, description="gates from a separate key projection")
    scale_position_logits: bool = Field(
        False, description="divide position logits by sqrt(head_dim) as RAM's code does (default: appendix)"
    )
    impl: Literal["reference", "blocked", "auto"] = Field(
        "reference", description="'reference': explicit logits; 'blocked': query-blocked kernel with its own "
        f"backward (same maths, far less memory); 'auto': blocked from {AUTO_MIN_KEYS} keys on, reference below"
    )


class CoPE(PositionEncoding):
    name = "cope"
    Options = CoPEOptions

    def __init__(self, geo, options) -> None:
        super().__init__(geo, options)
        self.table = nn.Parameter(torch.zeros(geo.n_models, geo.head_dim, options.p_max + 1))
        self.gate_key = StackedLinear(geo.n_models, geo.d_model, geo.d_model) if options.cope_sep_key else None

    @classmethod
    def check(cls, geo, options) -> None:
        if options.p_max < 1:
            raise ValueError(f"cope needs p_max >= 1, got p_max={options.p_max}")
        if not geo.causal:
            raise ValueError("cope needs a causal model (positions sum gates from key j up to the query)")

    @classmethod
    def saved_values_per_query(cls, geo, options, n_keys: int) -> int:
        """The reference path keeps about ten (H, Tk) tensors per query (gates, positions, their floor and
        ceiling as int64, the interpolation weight, two gathers) and z = q·e, (H, p_max + 1); separate gate keys
        add their logits and a key projection. Generous for the blocked kernel, which keeps far less."""
        h = geo.n_heads
        extra = 2 * h * n_keys + geo.d_model if options.cope_sep_key else 0
        return 12 * h * n_keys + h * (options.p_max + 1) + extra

    def gates(self, gate_logits: torch.Tensor) -> torch.Tensor:
        """σ of the logits; masked logits are -inf, so their gates are exactly 0."""
        return torch.sigmoid(gate_logits)

    def positions(self, gates: torch.Tensor) -> torch.Tensor:
        """p_ij = Σ_{t >= j} g_it over unmasked keys (reverse cumsum), clamped at p_max."""
        return gates.flip(-1).cumsum(-1).flip(-1).clamp(max=self.options.p_max)

    def on_logits(self, q, logits, pos: AttnPositions, x=None):
        if self.gate_key is None:
            gate_logits = logits
        else:
            m, b, h, _, hd = q.shape
            key = self.gate_key(x).view(m, b, -1, h, hd).transpose(2, 3)  # (M, B, H, Tk, hd)
            gate_logits = (q @ key.transpose(-1, -2)) / math.sqrt(hd)
            gate_logits = gate_logits.masked_fill(torch.isneginf(logits), float("-inf"))
        p = self.positions(self.gates(gate_logits))  # (M, B, H, Tq, Tk)
        z = torch.einsum("mbhqd,mdp->mbhqp", q, self.table.to(q.dtype))  # (M, B, H, Tq, p_max+1)
        lo = p.detach().floor().long()
        hi = p.detach().ceil().long()
        w = p - lo.to(p.dtype)  # gradients reach the gates through w only
        extra = (1 - w) * z.gather(-1, lo) + w * z.gather(-1, hi)
        if self.options.scale_position_logits:
            extra = extra / math.sqrt(self.geo.head_dim)
        return logits + extra

    @property
    def fused(self) -> bool:
        """Whether the attention layer may call :meth:`attend` instead of the explicit path."""
        return self.options.impl != "reference"

    def use_kernel(self, n_keys: int) -> bool:
        """Whether :meth:`attend` should take a call with ``n_keys`` keys (else the explicit path)."""
        return self.options.impl == "blocked" or (self.options.impl == "auto" and n_keys >= AUTO_MIN_KEYS)

    def attend(self, q, k, v, pos: AttnPositions, allowed: torch.Tensor, x: torch.Tensor, full: bool) -> torch.Tensor:
        """The whole attention (M, B, H, Tq, hd) by the blocked kernel; ``allowed``: (Mq, Bq, 1, Tq, Tk) bool;
        ``full``: every query present, query i at position i (causal blocks then skip later keys)."""
        gate_k = None
        if self.gate_key is not None:
            m, b, h, _, hd = q.shape
            gate_k = self.gate_key(x).view(m, b, -1, h, hd).transpose(2, 3)  # (M, B, H, Tk, hd)
        return cope_attention(q, k, v, self.table, allowed, self.options.p_max, self.options.scale_position_logits,
                              gate_k=gate_k, causal_full=full)

    def init_model(self, m: int, gen: torch.Generator, scheme: str) -> None:
        with torch.no_grad():
            self.table[m].zero_()
            if self.gate_key is not None:
                self.gate_key.init_model(m, gen, scheme)
