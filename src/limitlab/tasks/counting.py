"""Counting tasks of Yehudai et al. 2024: query count (QC) and most-frequent count (MFC).

n tokens are drawn i.i.d. uniform from a vocabulary of m (n = 10·m by default). The answer is a class
0..max_count, read at one position (the last input token):

* ``qc``  — how many times does the query token occur? With ``query="last"`` (the paper's format, as far as it
  is known) the query is the last sequence token itself, so the answer is ≥ 1. With ``query="appended"`` a
  separator and a uniformly drawn query follow the sequence, and the answer may be 0.
* ``mfc`` — how many times does the most frequent token occur?

Token ids: 0 = PAD, 1 = BOS, 2 = SEP, 3 … 3+m-1 = the m symbols. Example, ``CountingTask(kind="qc", m=3,
n=6, bos=True)`` (symbols a, b, c = ids 3, 4, 5)::

    input    BOS  a  c  a  b  c  a        read-out at the last position (index 6)
    target                           3    (a occurs 3 times)

and for ``kind="mfc"`` the same input has target 3 too (a is the most frequent). Sequences of models with a
smaller n in a stack are right-padded with PAD; a causal model never sees the padding from the read-out.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Task, TaskStack

PAD, BOS, SEP, FIRST_SYMBOL = 0, 1, 2, 3


class CountingTask(Task):
    """QC / MFC counting over a vocabulary of ``m`` symbols and ``n`` tokens."""

    name = "counting"
    varying = frozenset({"m", "n", "max_count"})  # padded: vocabulary, length and classes
    kind: Literal["qc", "mfc"] = "qc"
    m: int = Field(10, ge=2, le=100_000, description="vocabulary size (number of distinct symbols)")
    n: int | None = Field(None, ge=1, description="sequence length in symbols; default 10·m")
    bos: bool = Field(False, description="prepend a BOS token (an attention sink)")
    query: Literal["last", "appended"] = "last"
    max_count: int | None = Field(None, ge=1, description="largest answer class; default n")
    ood_factor: int = Field(2, ge=2, description="the 'ood_long' split uses ood_factor·n tokens")

    @model_validator(mode="after")
    def _check(self) -> CountingTask:
        if self.query == "appended" and self.kind != "qc":
            raise ValueError("query='appended' only applies to kind='qc'; mfc has no query")
        return self

    @property
    def length(self) -> int:
        return self.n if self.n is not None else 10 * self.m

    @property
    def classes(self) -> int:
        return (self.max_count if self.max_count is not None else self.length) + 1

    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.m

    def seq_len(self) -> int:
        return self.length + int(self.bos) + (2 if self.query == "appended" else 0)

    def n_outputs(self) -> int:
        return self.classes

    def splits(self) -> dict[str, Task]:
        longer = self.model_copy(update={"n": self.ood_factor * self.length, "max_count": self.classes - 1})
        return {"test": self, "ood_long": longer}

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int) -> Batch:
        dev = rng.device
        stack = stack.to(dev)
        m, n = stack.per_model("m"), stack.per_model("length")
        kind, appended, bos = stack.shared.kind, stack.shared.query == "appended", stack.shared.bos
        n_max = stack.max("length")  # from the configs: no device sync
        symbols = rng.randint((batch_size, n_max), high=m, step=step) + FIRST_SYMBOL  # (M, B, n_max)
        valid = torch.arange(n_max, device=dev) < n[:, None, None]  # (M, 1, n_max)
        symbols = torch.where(valid, symbols, PAD)
        if kind == "mfc":
            width = stack.max("m") + FIRST_SYMBOL
            hist = torch.zeros(*symbols.shape[:2], width, dtype=torch.int64, device=dev)
            hist.scatter_add_(2, symbols, valid.expand_as(symbols).long())  # (M, B, V)
            target = hist[..., FIRST_SYMBOL:].max(-1).values
            parts = [symbols]
        elif appended:
            query = rng.randint((batch_size, 1), high=m, step=step, salt=1) + FIRST_SYMBOL  # (M, B, 1)
            target = (symbols == query).sum(-1)
            parts = [symbols, torch.full_like(query, SEP), query]
        else:
            query = symbols.gather(2, (n - 1).view(-1, 1, 1).expand(-1, batch_size, 1))  # (M, B, 1)
            target = (symbols == query).sum(-1)
            parts = [symbols]
        if bos:
            parts.insert(0, torch.full_like(symbols[..., :1], BOS))
        inputs = torch.cat(parts, dim=-1)
        if appended:  # move SEP, query right after each model's own last symbol
            inputs = _close_gap(inputs, n + int(bos), n_max + int(bos))
        readout = (n + int(bos) + (2 if appended else 0) - 1).view(-1, 1, 1).expand(-1, batch_size, 1)
        cap = (stack.per_model("classes") - 1).view(-1, 1)
        target = torch.minimum(target, cap).unsqueeze(-1)  # (M, B, 1); OOD counts above the head's range
        return Batch(inputs, target, torch.ones_like(target, dtype=torch.bool), readout.contiguous())


def _close_gap(inputs: torch.Tensor, end: torch.Tensor, padded_end: int) -> torch.Tensor:
    """Shift the 2-token suffix at ``padded_end`` left to each model's ``end`` (padding goes after it)."""
    suffix = inputs[..., padded_end:]  # (M, B, 2)
    body = inputs[..., :padded_end].clone()
    out = torch.cat([body, torch.full_like(suffix, PAD)], dim=-1)
    idx = (end.view(-1, 1, 1) + torch.arange(2, device=inputs.device)).expand_as(suffix)
    return out.scatter(2, idx, suffix)
