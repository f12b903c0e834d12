"""Multi-head self-attention for a stack of models, with pluggable position encodings.

Fast path: ``scaled_dot_product_attention`` on (M·B, H, T, hd) with the causal mask or an additive bias.
Explicit path (encodings that rewrite the logits, or when weights are kept for inspection): the same maths
with materialised (M, B, H, Tq, Tk) logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from limitlab.nn.layers import StackedLinear
from limitlab.nn.positions import AttnPositions, PositionEncoding


class StackedAttention(nn.Module):
    def __init__(
        self, n_models: int, d_model: int, n_heads: int, causal: bool,
        encodings: list[PositionEncoding], bias: bool = True,
    ) -> None:
        super().__init__()
        self.n_heads, self.head_dim, self.causal = n_heads, d_model // n_heads, causal
        self.qkv = StackedLinear(n_models, d_model, 3 * d_model, bias)
        self.out = StackedLinear(n_models, d_model, d_model, bias)
        self.encodings = nn.ModuleList(encodings)
        self.explicit = any(enc.needs_logits for enc in encodings)
        self.weights: torch.Tensor | None = None  # (M, B, H, Tq, Tk) when kept

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        m, b, t, _ = x.shape
        return x.view(m, b, t, self.n_heads, self.head_dim).transpose(2, 3)  # (M, B, H, T, hd)

    def forward(self, x: torch.Tensor, query_index: torch.Tensor | None = None, keep_weights: bool = False):
        """x: (M, B, T, d); query_index: (M, B, K) rows to compute (None: all). Returns (M, B, Tq, d)."""
        m, b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)  # each (M, B, T, d)
        if query_index is None:
            pos = AttnPositions.full(t, x.device)
        else:
            q = q.gather(2, query_index.unsqueeze(-1).expand(*query_index.shape, d))  # (M, B, K, d)
            pos = AttnPositions(query_index.unsqueeze(2), torch.arange(t, device=x.device))
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        for enc in self.encodings:
            q, k = enc.on_qk(q, k, pos)
        bias = None
        for enc in self.encodings:
            extra = enc.bias(pos)
            if extra is not None:
                bias = extra if bias is None else bias + extra
        if self.explicit or keep_weights:
            y = self._explicit(q, k, v, pos, bias, x, keep_weights)
        else:
            y = self._sdpa(q, k, v, pos, bias, full=query_index is None)
        y = y.transpose(2, 3).reshape(m, b, -1, d)  # (M, B, Tq, d)
        return self.out(y)

    def _sdpa(self, q, k, v, pos: AttnPositions, bias: torch.Tensor | None, full: bool) -> torch.Tensor:
        m, b, h, tq, hd = q.shape
        tk = k.shape[3]
        flat = [z.reshape(m * b, h, -1, hd) for z in (q, k, v)]
        if bias is None and (full or not self.causal):
            y = F.scaled_dot_product_attention(*flat, is_causal=self.causal and full)
        else:
            mask = torch.zeros((), dtype=q.dtype, device=q.device) if bias is None else bias.to(q.dtype)
            if self.causal:
                mask = mask.masked_fill(~pos.causal_mask(), float("-inf"))
            mask = mask.expand(m, b, h, tq, tk).reshape(m * b, h, tq, tk)
            y = F.scaled_dot_product_attention(*flat, attn_mask=mask)
        return y.view(m, b, h, tq, hd)

    def _explicit(self, q, k, v, pos, bias, x, keep_weights: bool) -> torch.Tensor:
        logits = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)  # (M, B, H, Tq, Tk)
        if bias is not None:
            logits = logits + bias
        if self.causal:
            logits = logits.masked_fill(~pos.causal_mask(), float("-inf"))
        for enc in self.encodings:
            logits = enc.on_logits(q, logits, pos, x)
        softmax_dtype = torch.promote_types(logits.dtype, torch.float32)  # fp32 at least, fp64 for fp64 models
        weights = torch.softmax(logits, dim=-1, dtype=softmax_dtype).to(v.dtype)
        self.weights = weights.detach() if keep_weights else None
        return weights @ v  # (M, B, H, Tq, hd)
