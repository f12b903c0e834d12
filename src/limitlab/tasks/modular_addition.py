"""Modular addition a + b mod p on a fixed fraction of the table: the grokking task (Power et al. 2022; Nanda et al.
2023 use p = 113, 30% of the pairs, one layer, AdamW with weight decay 1).

The p² pairs (a, b) are split once, from the run's seed alone, into a **training subset** of
``round(train_fraction · p²)`` pairs and the **held-out rest**: pair i goes to training when its rank under a
hash of (seed, i) is below that count. The split never depends on the step, the stream or the stack, so the
training split evaluated later is exactly the set the model trained on. Batches draw pairs uniformly (with
replacement) from the subset of the config's ``part``. Splits: ``test`` = held-out pairs, ``train`` = training
pairs (evaluated with ``eval_every`` this gives the train-vs-test accuracy curve of grokking).

Token ids: 0 … p-1 = the numbers, p = '='. Example, p = 5::

    input    3  4  =        read-out at '=' (index 2)
    target            2     (3 + 4 = 7 ≡ 2 mod 5)
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from limitlab.rng import StackRNG, mix64
from limitlab.tasks.base import Batch, Task, TaskStack

_SPLIT_SALT = 0x5EED_0F_5B1
_GOLDEN = -0x61C8864680B583EB


def split_order(seeds: torch.Tensor, p: int) -> torch.Tensor:
    """(M, p²) pair ids of each model, ordered by a hash of (seed, pair): the first n_train are its training set."""
    pairs = torch.arange(p * p, dtype=torch.int64, device=seeds.device)
    keys = mix64(mix64(seeds.view(-1, 1) ^ _SPLIT_SALT) + pairs * _GOLDEN)  # (M, p²)
    return keys.argsort(dim=1)


class ModularAdditionTask(Task):
    """a + b mod p from a fixed ``train_fraction`` of all pairs (split from the run's seed)."""

    name = "modular_addition"
    p: int = Field(113, ge=2, le=1000, description="the modulus (the numbers are 0 … p-1)")
    train_fraction: float = Field(0.3, gt=0, lt=1, description="share of the p² pairs in the training set")
    part: Literal["train", "test"] = Field("train", description="which pairs this config samples: the training "
                                                                "subset or the held-out rest")

    @property
    def n_train(self) -> int:
        return max(1, min(self.p * self.p - 1, round(self.train_fraction * self.p * self.p)))

    def vocab_size(self) -> int:
        return self.p + 1

    def seq_len(self) -> int:
        return 3

    def n_outputs(self) -> int:
        return self.p

    def splits(self) -> dict[str, Task]:
        return {"test": self.model_copy(update={"part": "test"}), "train": self.model_copy(update={"part": "train"})}

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        p, n_train, part = stack.shared.p, stack.shared.n_train, stack.shared.part
        order = split_order(rng.seeds, p)  # (M, p²)
        lo, size = (0, n_train) if part == "train" else (n_train, p * p - n_train)
        pick = rng.randint((batch_size,), high=size, step=step) + lo  # (M, B) ranks in the chosen part
        pair = order.gather(1, pick)  # (M, B) pair ids
        a, b = pair // p, pair % p
        inputs = torch.stack([a, b, torch.full_like(a, p)], dim=-1)  # (M, B, 3)
        target = ((a + b) % p).unsqueeze(-1)  # (M, B, 1)
        readout = torch.full_like(target, 2)
        return Batch(inputs, target, torch.ones_like(target, dtype=torch.bool), readout)
