"""Multi-head self-attention for a stack of models, with pluggable position encodings.

Fast path: ``scaled_dot_product_attention`` on (M·B, H, T, hd) with the causal mask or an additive bias.
Explicit path (encodings that rewrite the logits, or when weights are kept for inspection): the same maths
with materialised (M, B, H, Tq, Tk) logits.

**Narrow heads on a CPU.** PyTorch's CPU flash-attention kernel runs a head of 16 dims faster than a narrower
one: forward + backward of a causal attention over 16 sequences × 4 heads, T = 500, on a 2-core EPYC took
58.4 ms with 4-dim heads and 40.7 ms with the same heads padded to 16 dims. Zero columns appended to q, k and v
change no logit (they add 0·0 to every dot product) and no output column that is kept, so :func:`sdpa` pads
narrow heads to 16 where that was measured faster — heads of 8–15 dims from 64 queries on, of 2–7 dims from
200 — and passes the unpadded scale 1/√hd.

>>> q, k, v = (torch.randn(2, 4, 300, 4) for _ in range(3))
>>> torch.allclose(sdpa(q, k, v, is_causal=True), F.scaled_dot_product_attention(q, k, v, is_causal=True),
...                atol=1e-6)
True
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from limitlab.nn.layers import StackedLinear
from limitlab.nn.positions import AttnPositions, PositionEncoding

CPU_HEAD_DIM = 16  # the head width PyTorch's CPU flash kernel runs fastest at (see the module docstring)


def cpu_head_pad(head_dim: int, queries: int) -> int:
    """Zero columns :func:`sdpa` appends to a CPU head: up to 16 dims where measured faster, else 0.

    Measured (BENCHMARKS.md, forward + backward, 2 threads): padding won 1.02–1.5× for hd = 8–12 from T = 64
    on and lost up to 16% below T = 50; it won 1.2–1.4× for hd = 2–4 from T = 200 on and lost up to 23% at
    T ≤ 100; hd = 1 always loses (3×).
    """
    if not 2 <= head_dim < CPU_HEAD_DIM or queries < (64 if head_dim >= 8 else 200):
        return 0
    return CPU_HEAD_DIM - head_dim


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
         is_causal: bool = False) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` (scale 1/√hd), with narrow heads padded to 16 on a CPU. (N, H, T, hd)."""
    hd = q.shape[-1]
    pad = cpu_head_pad(hd, q.shape[-2]) if q.device.type == "cpu" else 0
    if not pad:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
    q, k, v = (F.pad(z, (0, pad)) for z in (q, k, v))  # (N, H, T, 16): zeros add nothing to q·k
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=hd ** -0.5)
    return y[..., :hd]


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
        rewriters = [i for i, enc in enumerate(encodings) if enc.needs_logits]  # one with its own kernel may take over
        self.fused = rewriters[0] if len(rewriters) == 1 and getattr(encodings[rewriters[0]], "fused", False) else None
        self.weights: torch.Tensor | None = None  # (M, B, H, Tq, Tk) when kept

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        m, b, t, _ = x.shape
        return x.view(m, b, t, self.n_heads, self.head_dim).transpose(2, 3)  # (M, B, H, T, hd)

    def forward(self, x: torch.Tensor, query_index: torch.Tensor | None = None, keep_weights: bool = False,
                valid: torch.Tensor | None = None):
        """x: (M, B, T, d); query_index: (M, B, K) rows to compute (None: all); valid: (M, B, T) bool, False for
        padding tokens, which no query attends to (except a padding query to itself, so no row is empty).
        Returns (M, B, Tq, d)."""
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
        if self.fused is not None and bias is None and not keep_weights and \
                self.encodings[self.fused].use_kernel(k.shape[3]):
            y = self.encodings[self.fused].attend(q, k, v, pos, self._allowed(pos, valid), x, full=query_index is None)
        elif self.explicit or keep_weights:
            y = self._explicit(q, k, v, pos, bias, self._allowed(pos, valid), x, keep_weights)
        elif bias is None and valid is None and (query_index is None or not self.causal):
            y = self._sdpa(q, k, v, None, None)  # the kernel's own causal mask, or none
        else:
            y = self._sdpa(q, k, v, bias, self._allowed(pos, valid))
        y = y.transpose(2, 3).reshape(m, b, -1, d)  # (M, B, Tq, d)
        return self.out(y)

    def _allowed(self, pos: AttnPositions, valid: torch.Tensor | None) -> torch.Tensor | None:
        """Which (query, key) pairs may attend: (Mq, Bq, 1, Tq, Tk) bool; None when all may."""
        if valid is None:
            return pos.causal_mask() if self.causal else None
        keys = valid[:, :, None, None, :] | (pos.offsets() == 0)  # (M, B, 1, Tq, Tk): real keys, and oneself
        return keys & pos.causal_mask() if self.causal else keys

    def _sdpa(self, q, k, v, bias: torch.Tensor | None, allowed: torch.Tensor | None) -> torch.Tensor:
        """SDPA; with neither a bias nor a mask, the kernel's own causal mask (all queries, all keys)."""
        m, b, h, tq, hd = q.shape
        tk = k.shape[3]
        flat = [z.reshape(m * b, h, -1, hd) for z in (q, k, v)]
        if bias is None and allowed is None:
            y = sdpa(*flat, is_causal=self.causal)
        else:
            mask = torch.zeros((), dtype=q.dtype, device=q.device) if bias is None else bias.to(q.dtype)
            if allowed is not None:
                mask = mask.masked_fill(~allowed, float("-inf"))
            mask = mask.expand(m, b, h, tq, tk).reshape(m * b, h, tq, tk)
            y = sdpa(*flat, attn_mask=mask)
        return y.reshape(m, b, h, tq, hd)

    def _explicit(self, q, k, v, pos, bias, allowed, x, keep_weights: bool) -> torch.Tensor:
        logits = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)  # (M, B, H, Tq, Tk)
        if bias is not None:
            logits = logits + bias
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        for enc in self.encodings:
            logits = enc.on_logits(q, logits, pos, x)
        softmax_dtype = torch.promote_types(logits.dtype, torch.float32)  # fp32 at least, fp64 for fp64 models
        weights = torch.softmax(logits, dim=-1, dtype=softmax_dtype).to(v.dtype)
        self.weights = weights.detach() if keep_weights else None
        return weights @ v  # (M, B, H, Tq, hd)
