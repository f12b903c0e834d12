"""The baseline ``limitlab bench`` compares the stack against: what a user would write instead of limitlab.

One ordinary nanoGPT-style model per run (``nn.Linear``, ``nn.LayerNorm``, ``F.scaled_dot_product_attention``),
one ``torch.optim.Adam(foreach=True)`` per model, trained one model after another. It does exactly the work of a
limitlab model of the same spec — the same parameter count, the same FLOPs per step (the last layer computes only
the read-out rows, as limitlab does), the same data (the task's own sampler) — and none of limitlab's
bookkeeping: no per-model step counters, schedules, NaN guards or gradient clipping. Supported shapes: the
bench's (causal, learned positions, pre-LN, GELU, biases, token inputs, classification head).

>>> from limitlab.bench import shape_specs
>>> spec = shape_specs(8, 3, 1, 4)[0]
>>> plain = PlainLoop([spec])
>>> plain.step()
>>> PlainGPT(spec).n_params() == plain.models[0].n_params()
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from limitlab.rng import TRAIN, StackRNG
from limitlab.spec import RunSpec
from limitlab.tasks.base import Batch, TaskStack
from limitlab.train.fast import autocast_for


def check_supported(spec: RunSpec) -> None:
    m = spec.model
    if not (m.causal and m.position == "learned" and m.norm == "pre" and m.activation == "gelu" and m.bias
            and spec.task.input_dim() == 0 and not spec.task.regression):
        raise ValueError(f"the plain baseline covers causal, learned-position, pre-LN GELU token classifiers; got "
                         f"position={m.position!r}, norm={m.norm!r}, causal={m.causal}")


class PlainBlock(nn.Module):
    def __init__(self, d: int, heads: int, width: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, width), nn.Linear(width, d)

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, d) -> (B, T, d), or (B, K, d) at the read-out ``rows`` (B, K) only."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)  # (B, T, d) each
        mask, resid = None, x
        if rows is not None:
            index = rows.unsqueeze(-1).expand(-1, -1, d)  # (B, K, d)
            q, resid = q.gather(1, index), x.gather(1, index)
            mask = (rows.unsqueeze(-1) >= torch.arange(t, device=x.device)).unsqueeze(1)  # (B, 1, K, T)

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.view(b, -1, self.heads, d // self.heads).transpose(1, 2)  # (B, H, rows, hd)

        y = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask, is_causal=rows is None)
        x = resid + self.out(y.transpose(1, 2).reshape(b, -1, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class PlainGPT(nn.Module):
    """One model of ``spec``'s shape, written the ordinary way."""

    def __init__(self, spec: RunSpec, vocab: int | None = None, classes: int | None = None) -> None:
        super().__init__()
        check_supported(spec)
        m = spec.model
        self.embed = nn.Embedding(vocab or spec.task.vocab_size(), m.d_model)
        self.pos = nn.Parameter(torch.randn(m.max_len, m.d_model) * 0.02)
        self.blocks = nn.ModuleList(PlainBlock(m.d_model, m.n_heads, m.mlp_width) for _ in range(m.n_layers))
        self.ln_f = nn.LayerNorm(m.d_model)
        self.head = nn.Linear(m.d_model, classes or spec.task.n_outputs())

    def forward(self, tokens: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """tokens (B, T), rows (B, K) -> logits (B, K, C)."""
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, rows if i == len(self.blocks) - 1 else None)
        return self.head(self.ln_f(x))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _seeded(spec: RunSpec) -> PlainGPT:
    """A PlainGPT initialised from ``spec.seed`` (PyTorch's default initialisers), leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return PlainGPT(spec)


class PlainLoop:
    """One PlainGPT and one ``torch.optim.Adam`` per run; ``step()`` trains each model once, one after another.

    ``compile=True``: each model is ``torch.compile``-d, with ``mode="reduce-overhead"`` (CUDA graphs) on CUDA —
    the compiled loop a user would write. On CUDA the forward runs under bf16 autocast, as the stack's does.
    """

    def __init__(self, specs: Sequence[RunSpec], device: str = "cpu", compile: bool = False) -> None:
        self.specs, self.device = list(specs), torch.device(device)
        self.models = [_seeded(s).to(self.device) for s in self.specs]
        mode = "reduce-overhead" if self.device.type == "cuda" else None
        self.forwards = [torch.compile(m, mode=mode) if compile else m for m in self.models]
        self.optims = [torch.optim.Adam(m.parameters(), lr=s.optim.lr, foreach=True)
                       for m, s in zip(self.models, self.specs)]
        self.stacks = [TaskStack([s.task], self.device) for s in self.specs]
        self.rngs = [StackRNG([s.seed], stream=TRAIN).to(self.device) for s in self.specs]
        self.steps = 0

    def batch(self, i: int) -> Batch:
        return self.stacks[i].sample(self.rngs[i], self.specs[i].train.batch_size, self.steps)

    def loss(self, i: int, batch: Batch) -> torch.Tensor:
        with autocast_for(self.device, amp=True):
            logits = self.forwards[i](batch.inputs[0], batch.positions[0])  # (B, K, C)
        return F.cross_entropy(logits.float().flatten(0, 1), batch.targets[0].flatten())

    def step(self) -> None:
        for i, optim in enumerate(self.optims):
            loss = self.loss(i, self.batch(i))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
        self.steps += 1
