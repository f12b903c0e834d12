"""Selective copying (Gu & Dao 2023, App. E.1; the CoPE paper's variant counts blanks).

``n_tokens`` data tokens (drawn i.i.d. from ``vocab`` symbols, repeats allowed) are scattered at uniformly random
slots among ``blanks`` blank tokens; then ``n_tokens`` copy markers follow. At the j-th marker the model must
output the j-th data token, in order of appearance: the targets are exactly the non-blank tokens of the input.
Example, ``SelectiveCopyTask(vocab=4, n_tokens=3, blanks=4)`` (symbols A..D = ids 2..5, ``.`` = blank,
``>`` = marker)::

    position   0  1  2  3  4  5  6  7  8  9
    input      D  .  .  C  .  A  .  >  >  >
    read-out                           ^  ^  ^    at every marker
    target                             D  C  A    the data tokens in order

Token ids: 0 = blank, 1 = marker, 2 … 2 + vocab - 1 = the symbols. Splits (as in the CoPE paper): ``test`` =
``blanks`` as trained (256 in the paper), ``dense`` = ``dense_blanks`` (128), ``sparse`` = ``sparse_blanks`` (512).
Metrics: the defaults (``token_accuracy`` over copied tokens, ``accuracy`` = all tokens of a sequence right) and
``error`` = 1 - token_accuracy.
"""

from __future__ import annotations

import torch
from pydantic import Field

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Metric, Task, TaskStack

BLANK, MARK, FIRST_SYMBOL = 0, 1, 2


class SelectiveCopyTask(Task):
    """Copy the non-blank tokens, in order, after the markers."""

    name = "selective_copy"
    vocab: int = Field(16, ge=2, le=100_000, description="distinct data symbols")
    n_tokens: int = Field(16, ge=1, le=100_000, description="data tokens to copy")
    blanks: int = Field(256, ge=0, le=1_000_000, description="blank tokens among the data (in distribution)")
    dense_blanks: int = Field(128, ge=0, le=1_000_000, description="blanks of the 'dense' OOD split")
    sparse_blanks: int = Field(512, ge=0, le=1_000_000, description="blanks of the 'sparse' OOD split")

    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.vocab

    def seq_len(self) -> int:
        return 2 * self.n_tokens + self.blanks

    def n_outputs(self) -> int:
        return FIRST_SYMBOL + self.vocab

    def splits(self) -> dict[str, Task]:
        return {"test": self, "dense": self.model_copy(update={"blanks": self.dense_blanks}),
                "sparse": self.model_copy(update={"blanks": self.sparse_blanks})}

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        n, vocab = stack.shared.n_tokens, stack.shared.vocab
        slots = n + stack.shared.blanks
        keys = rng.permutation_keys((batch_size, slots), step=step)  # (M, B, slots)
        rank = keys.argsort(-1).argsort(-1)
        is_data = rank < n  # n uniformly random slots hold data
        symbols = rng.randint((batch_size, slots), high=vocab, step=step, salt=1) + FIRST_SYMBOL
        body = torch.where(is_data, symbols, BLANK)  # (M, B, slots)
        order = (~is_data).to(torch.int8).argsort(dim=-1, stable=True)[..., :n]  # data slots, left to right
        targets = body.gather(-1, order)  # (M, B, n)
        inputs = torch.cat([body, torch.full_like(targets, MARK)], dim=-1)  # (M, B, slots + n)
        positions = (slots + torch.arange(n, device=body.device)).expand_as(targets).contiguous()
        return Batch(inputs, targets, torch.ones_like(targets, dtype=torch.bool), positions)

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        result = super().metrics(out, batch)
        right, count = result["token_accuracy"]
        result["error"] = (count - right, count)
        return result
