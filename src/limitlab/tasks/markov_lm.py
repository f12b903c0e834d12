"""A synthetic language with a known entropy floor: a random sparse Markov chain of order k.

The language is fixed by ``language_seed`` (every run of a sweep sees the same language): each of the V^k
contexts (the last k tokens) allows ``branching`` successor tokens, chosen at random, with probabilities drawn
from a symmetric Dirichlet(``concentration``). Sequences start from a stationary distribution π of the chain, so
the process is stationary and the best possible next-token loss, for every position t ≥ k, is exactly the
**entropy rate**

    H = Σ_c π(c) · H(P(· | c))        nats per token,

computed in closed form by :meth:`MarkovLMTask.entropy_rate` (π by iterating the lazy chain ½(I + P), which has
the same stationary distributions as P and always converges). The loss is scored only at targets t ≥ k (the first
k tokens have no full context), so a perfect model's test loss is H, and a scaling-law fit's irreducible term E can
be checked against it.

Next-token prediction: inputs are tokens x_0 … x_{T-1}, the target at position i is x_{i+1}. Example with V = 4
symbols, k = 2 (read-outs at every position; '·' = not scored, as its target x_1 has no full context)::

    position   0  1  2  3  4
    input      2  0  3  3  1
    target     ·  3  3  1  0      (x_1 … x_5; scored from target index k = 2 on)
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from pydantic import Field, model_validator

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Task, TaskStack


class MarkovLMTask(Task):
    """Next-token prediction on a random sparse order-k Markov chain over ``symbols`` tokens."""

    name = "markov_lm"
    symbols: int = Field(32, ge=2, le=1024, description="vocabulary size V")
    order: int = Field(2, ge=1, le=4, description="k: each token depends on the previous k")
    branching: int = Field(4, ge=1, description="allowed successors per context")
    concentration: float = Field(1.0, gt=0, description="Dirichlet parameter of each context's successor probs")
    length: int = Field(64, ge=2, le=4096, description="input tokens per sequence (T)")
    language_seed: int = Field(0, ge=0, description="seed of the language (transition table), not of the run")

    @model_validator(mode="after")
    def _check(self) -> MarkovLMTask:
        if self.branching > self.symbols:
            raise ValueError(f"branching={self.branching} exceeds symbols={self.symbols}; allowed: 1..symbols")
        if self.symbols ** self.order > 1_000_000:
            raise ValueError(f"symbols**order = {self.symbols ** self.order} contexts; allowed: at most 1,000,000")
        if self.order >= self.length:
            raise ValueError(f"order={self.order} must be below length={self.length} (no target would be scored)")
        return self

    def vocab_size(self) -> int:
        return self.symbols

    def seq_len(self) -> int:
        return self.length

    def n_outputs(self) -> int:
        return self.symbols

    @property
    def scored_tokens(self) -> int:
        """Scored targets per sequence (t ≥ k): the tokens a run trains on, per sequence."""
        return self.length - self.order + 1

    def chain(self) -> Chain:
        return _chain(self.symbols, self.order, self.branching, self.concentration, self.language_seed)

    def entropy_rate(self) -> float:
        """The irreducible next-token loss H in nats (the entropy rate of the stationary chain)."""
        return self.chain().entropy_rate

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        task = stack.tasks[0]
        dev = rng.device
        ch = task.chain()
        succ, cdf, start_cdf = ch.tensors(dev)
        V, k, T = task.symbols, task.order, task.length
        u = rng.random((batch_size, T + 2 - k), step)  # (M, B, T+2-k): one for the start, one per new token
        M = u.shape[0]
        ctx = torch.searchsorted(start_cdf, u[..., 0].contiguous()).clamp(max=start_cdf.numel() - 1)  # (M, B)
        digits = [(ctx // V ** (k - 1 - j)) % V for j in range(k)]  # the start context's k tokens, oldest first
        tokens = digits + [None] * (T + 1 - k)
        for t in range(k, T + 1):
            row = cdf[ctx]  # (M, B, s)
            j = (u[..., t - k + 1, None] >= row).sum(-1, keepdim=True).clamp(max=row.shape[-1] - 1)  # inverse cdf
            nxt = succ[ctx].gather(-1, j).squeeze(-1)  # (M, B)
            tokens[t] = nxt
            ctx = (ctx * V + nxt) % ch.n_contexts
        seq = torch.stack(tokens, dim=-1)  # (M, B, T+1)
        scored = torch.arange(T, device=dev) >= k - 1  # target x_{i+1} is scored when i + 1 ≥ k
        mask = scored.expand(M, batch_size, T)
        return Batch(seq[..., :T], seq[..., 1:], mask.contiguous())


class Chain:
    """The transition table of one language: successors (C, s), their probabilities (C, s), stationary π (C,)."""

    def __init__(self, succ: np.ndarray, probs: np.ndarray, symbols: int) -> None:
        self.succ, self.probs, self.symbols = succ, probs, symbols
        self.n_contexts = succ.shape[0]
        self.pi = _stationary(succ, probs, symbols)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(-1)  # (C,) entropy per context, nats
        self.context_entropy = ent
        self.entropy_rate = float((self.pi * ent).sum())

    def next_context(self, ctx: np.ndarray, token: np.ndarray) -> np.ndarray:
        return (ctx * self.symbols + token) % self.n_contexts

    @functools.lru_cache(maxsize=8)  # noqa: B019 - a handful of devices per chain, chains are cached themselves
    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cdf = np.cumsum(self.probs, -1)
        cdf[:, -1] = 1.0 + 1e-6  # a uniform draw in [0, 1) always lands inside the row
        start = np.cumsum(self.pi)
        start[-1] = 1.0 + 1e-6
        return (torch.tensor(self.succ, dtype=torch.int64, device=device),
                torch.tensor(cdf, dtype=torch.float32, device=device).contiguous(),
                torch.tensor(start, dtype=torch.float32, device=device).contiguous())


@functools.lru_cache(maxsize=32)
def _chain(symbols: int, order: int, branching: int, concentration: float, seed: int) -> Chain:
    gen = np.random.default_rng([seed, symbols, order, branching])
    n_ctx = symbols ** order
    keys = gen.random((n_ctx, symbols))
    succ = np.argsort(keys, axis=1)[:, :branching]  # (C, s) distinct successors per context
    probs = gen.dirichlet(np.full(branching, concentration), size=n_ctx)  # (C, s)
    order_desc = np.argsort(-probs, axis=1)  # most likely successor first (cdf rows are then well conditioned)
    return Chain(np.take_along_axis(succ, order_desc, 1), np.take_along_axis(probs, order_desc, 1), symbols)


def _stationary(succ: np.ndarray, probs: np.ndarray, symbols: int, tol: float = 1e-13,
                max_iter: int = 200_000) -> np.ndarray:
    """A stationary distribution of the chain: iterate the lazy chain ½(π + πP) from uniform until it stops."""
    n_ctx = succ.shape[0]
    nxt = (np.arange(n_ctx)[:, None] * symbols + succ) % n_ctx  # (C, s) next context
    flat_next, flat_p = nxt.ravel(), probs.ravel()
    pi = np.full(n_ctx, 1.0 / n_ctx)
    for _ in range(max_iter):
        moved = np.bincount(flat_next, weights=np.repeat(pi, succ.shape[1]) * flat_p, minlength=n_ctx)  # πP
        new = 0.5 * (pi + moved)
        if np.abs(new - pi).sum() < tol:
            return new / new.sum()
        pi = new
    raise ValueError(f"stationary distribution did not converge in {max_iter} iterations")


def oracle_loss(task: MarkovLMTask, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean next-token loss (nats) of the true chain on a batch: the Bayes-optimal predictor (for tests)."""
    ch = task.chain()
    V, k = task.symbols, task.order
    x = torch.cat([inputs, targets[..., -1:]], dim=-1).cpu().numpy()  # (..., T+1)
    total, count = 0.0, 0
    prob = np.zeros((ch.n_contexts, V))
    np.put_along_axis(prob, ch.succ, ch.probs, axis=1)
    flat = x.reshape(-1, x.shape[-1])
    m = mask.reshape(-1, mask.shape[-1]).cpu().numpy()
    for row, rmask in zip(flat, m):
        ctx = 0
        for j in range(k):
            ctx = ctx * V + int(row[j])
        for i in range(k - 1, len(row) - 1):
            if i >= k:
                ctx = (ctx * V + int(row[i])) % ch.n_contexts
            if rmask[i]:
                total -= math.log(prob[ctx, int(row[i + 1])])
                count += 1
    return total / max(count, 1)
