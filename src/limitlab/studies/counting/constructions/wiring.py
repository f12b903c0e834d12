"""Shared pieces of the hand-wired constructions: symbol capacity, a zeroed model, the BOS-slot attention wiring
(see the package docstring) and unit codes for the symbols."""

from __future__ import annotations

import math
from typing import Literal

import torch

from limitlab.nn.model import ModelConfig, StackedTransformer
from limitlab.tasks.counting import BOS, FIRST_SYMBOL, CountingTask

__all__ = ["Query", "blank_model", "coherence", "histogram_capacity", "pow2_at_least", "qc_task", "query_offset",
           "unit_codes", "wire_attention"]

Query = Literal["last", "appended"]


def histogram_capacity(d_model: int, n_heads: int = 1) -> int:
    """Symbols the histogram construction codes orthogonally: each head's hd = d/H dims hold the BOS flag and
    hd − 1 one-hot symbol directions, so capacity = H·(hd − 1) = d − H (extra directions: one per head)."""
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return d_model - n_heads


def pow2_at_least(x: float) -> float:
    """The power of two ≥ x: a head scale that keeps the integer-valued head weights exact in float32."""
    return 2.0 ** math.ceil(math.log2(x))


def query_offset(query: Query) -> int:
    """o in t = c + 1 + o: 0 when the query is the last sequence token, 1 when it is appended after SEP."""
    return 0 if query == "last" else 1


def qc_task(m: int, n: int | None, query: Query) -> CountingTask:
    """The QC task the constructions solve: always with a BOS token."""
    return CountingTask(kind="qc", m=m, n=n, bos=True, query=query)


def blank_model(task: CountingTask, d_model: int, n_heads: int, n_layers: int, d_mlp: int | None,
                activation: str) -> StackedTransformer:
    """A one-model stack with every parameter zero (a zero block is the identity: no attention output, no MLP)."""
    longest = task.splits()["ood_long"].seq_len()
    cfg = ModelConfig(n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_mlp=d_mlp, activation=activation,
                      norm="none", position="none", causal=True, max_len=max(512, longest), bias=True)
    model = StackedTransformer(cfg, 1, task.vocab_size(), task.n_outputs())
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


def wire_attention(model: StackedTransformer, codes: torch.Tensor, head_of: torch.Tensor, beta: float,
                   slot: int) -> None:
    """Block 0's attention: symbol s has code ``codes[s]`` (in residual dims head·(hd−1) + 0..hd−2) in head
    ``head_of[s]``. In every head, chunk column 0 is the BOS flag; the query bias puts β√hd there, so BOS scores
    β in every head. Each head's value copies the slot; the out projection sums heads into the slot and its bias
    removes the H − 1 heads that do not own the query (they put all their mass, exactly 1, on BOS)."""
    attn = model.blocks[0].attn
    d, h_n, hd = model.cfg.d_model, attn.n_heads, attn.head_dim
    scale = beta * math.sqrt(hd)
    emb = model.embed.weight[0]
    with torch.no_grad():
        emb[BOS, slot] = 1.0
        wq, wk, wv = (attn.qkv.weight[0, :, i * d:(i + 1) * d] for i in range(3))
        for h in range(h_n):
            base = h * (hd - 1)
            rows = slice(base, base + hd - 1)
            cols = slice(h * hd + 1, (h + 1) * hd)
            wq[rows, cols] = scale * torch.eye(hd - 1)
            wk[rows, cols] = torch.eye(hd - 1)
            wk[slot, h * hd] = 1.0
            attn.qkv.bias[0, 0, h * hd] = scale  # the q bias: every query scores BOS at β
            wv[slot, h * hd] = 1.0
            attn.out.weight[0, h * hd, slot] = 1.0
        attn.out.bias[0, 0, slot] = -(h_n - 1)
        for s in range(codes.shape[0]):
            base = int(head_of[s]) * (hd - 1)
            emb[FIRST_SYMBOL + s, base:base + hd - 1] = codes[s].to(emb.dtype)


def unit_codes(m: int, dim: int, kind: Literal["random", "optimized", "onehot", "cyclic"] = "random",
               seed: int = 0, steps: int = 400) -> torch.Tensor:
    """(m, dim) unit codes. 'onehot' needs m ≤ dim; 'cyclic' = one-hot of s mod dim (symbols collide);
    'random' = i.i.d. Gaussian directions (coherence ~ √(2 log m / dim)); 'optimized' = random, then ``steps``
    of projected gradient descent on a soft maximum of the pairwise cosines (lower coherence, hence a smaller β)."""
    if kind == "onehot":
        if m > dim:
            raise ValueError(f"{m} one-hot codes do not fit in {dim} dims")
        return torch.eye(dim, dtype=torch.float64)[:m]
    if kind == "cyclic":
        return torch.eye(dim, dtype=torch.float64)[torch.arange(m) % dim]
    if kind not in ("random", "optimized"):
        raise ValueError(f"unknown code kind {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(m, dim, generator=gen, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    if kind == "optimized" and m > 1:  # projected gradient descent on the sphere, L = logsumexp(κ·cos)/κ
        eye, kappa = torch.eye(m, dtype=torch.bool), 30.0
        for _ in range(steps):
            w = torch.softmax((kappa * (u @ u.T)).masked_fill(eye, -math.inf).flatten(), 0).view(m, m)
            grad = (w + w.T) @ u
            grad = grad - (grad * u).sum(1, keepdim=True) * u
            u = u - 0.03 * m * grad
            u = u / u.norm(dim=1, keepdim=True)
    return u / u.norm(dim=1, keepdim=True)


def coherence(codes: torch.Tensor) -> float:
    """max_{s≠t} code_s·code_t (signed: anti-aligned codes do not interfere); 0 for a single code."""
    if codes.shape[0] < 2:
        return 0.0
    g = codes @ codes.T
    return float(g.masked_fill(torch.eye(len(codes), dtype=torch.bool), -math.inf).max())
