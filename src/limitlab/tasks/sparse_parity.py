"""Multitask sparse parity (Michaud et al. 2023, "The quantization model of neural scaling").

There are K subtasks. Subtask i owns a fixed subset S_i of k of the n data bits (drawn once from ``subset_seed``,
distinct across subtasks); its answer is the parity of those bits. A sequence names its subtask with a control
prefix — K one-hot bits (``control="onehot"``, Michaud's format) or one subtask token (``control="token"``) —
followed by the n uniformly random data bits, and is read out at its last position. Subtasks are drawn with
power-law frequencies p_i ∝ (i + 1)^(−``zipf``) (Michaud: α + 1 = 1.4), so subtask 0 is the most common.
Michaud's prediction: the mean loss falls smoothly with size and steps, while each subtask is learned abruptly,
in order of frequency.

Token ids: 0, 1 = bit values; 2 + i = the control token of subtask i (token mode). Example with K = 3, n = 4,
k = 2, S_1 = {0, 3}, one-hot control::

    position   0  1  2 | 3  4  5  6        read-out at the last position (6)
    input      0  1  0 | 1  0  1  0        control = subtask 1; data bits b0..b3 = 1 0 1 0
    target                          1      b0 xor b3 = 1

The batch carries ``groups["subtask"]``; :meth:`SparseParityTask.metrics` adds per-subtask vectors
``loss_by_subtask`` and ``accuracy_by_subtask`` (length K once every subtask occurred in the evaluation). The
``uniform`` split draws subtasks uniformly, so rare subtasks get as many test sequences as common ones.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Metric, Task, TaskStack, group_sums


class SparseParityTask(Task):
    """K parity subtasks of k bits among n, drawn with power-law frequencies; the subtask named by a prefix."""

    name = "sparse_parity"
    n_bits: int = Field(16, ge=1, le=512, description="n: data bits per sequence")
    k: int = Field(3, ge=1, le=16, description="bits per parity")
    subtasks: int = Field(8, ge=1, le=4096, description="K: number of subtasks")
    zipf: float = Field(1.4, ge=0, description="subtask i has frequency ∝ (i + 1)^-zipf")
    control: Literal["onehot", "token"] = "onehot"
    distribution: Literal["zipf", "uniform"] = Field("zipf", description="how subtasks are drawn")
    subset_seed: int = Field(0, ge=0, description="seed of the subtasks' bit subsets (the task, not the run)")

    @model_validator(mode="after")
    def _check(self) -> SparseParityTask:
        if self.k > self.n_bits:
            raise ValueError(f"k={self.k} exceeds n_bits={self.n_bits}; allowed: 1..n_bits")
        if _n_subsets(self.n_bits, self.k) < self.subtasks:
            raise ValueError(f"only {_n_subsets(self.n_bits, self.k)} distinct {self.k}-subsets of {self.n_bits} "
                             f"bits; subtasks={self.subtasks} is too many")
        return self

    def vocab_size(self) -> int:
        return 2 + (self.subtasks if self.control == "token" else 0)

    def seq_len(self) -> int:
        return (self.subtasks if self.control == "onehot" else 1) + self.n_bits

    def n_outputs(self) -> int:
        return 2

    def frequencies(self) -> np.ndarray:
        """(K,) probability of each subtask under the training distribution."""
        w = np.arange(1, self.subtasks + 1, dtype=np.float64) ** -self.zipf
        return w / w.sum()

    def subsets(self) -> np.ndarray:
        """(K, k) bit indices of each subtask's parity."""
        return _subsets(self.n_bits, self.k, self.subtasks, self.subset_seed)

    def splits(self) -> dict[str, Task]:
        return {"test": self, "uniform": self.model_copy(update={"distribution": "uniform"})}

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        task = stack.tasks[0]
        dev = rng.device
        K, n = task.subtasks, task.n_bits
        if task.distribution == "uniform":
            subtask = rng.randint((batch_size,), high=K, step=step, salt=1)  # (M, B)
        else:
            cdf = torch.tensor(np.cumsum(task.frequencies()), dtype=torch.float32, device=dev)
            u = rng.random((batch_size,), step, salt=1)
            subtask = (u[..., None] >= cdf).sum(-1).clamp(max=K - 1)  # (M, B) inverse cdf
        bits = rng.randint((batch_size, n), high=2, step=step)  # (M, B, n)
        subsets = torch.tensor(task.subsets(), dtype=torch.int64, device=dev)[subtask]  # (M, B, k)
        target = bits.gather(-1, subsets).sum(-1, keepdim=True) % 2  # (M, B, 1)
        if task.control == "onehot":
            prefix = (subtask[..., None] == torch.arange(K, device=dev)).long()  # (M, B, K)
        else:
            prefix = (subtask + 2)[..., None]  # (M, B, 1)
        inputs = torch.cat([prefix, bits], dim=-1)
        readout = torch.full_like(target, inputs.shape[-1] - 1)
        return Batch(inputs, target, torch.ones_like(target, dtype=torch.bool), readout, groups={"subtask": subtask})

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        """The default classification metrics plus per-subtask loss and accuracy vectors of length K."""
        result = super().metrics(out, batch)
        group = batch.groups["subtask"]
        loss = cls.pointwise_loss(out, batch)[..., 0]  # (M, B) one read-out per sequence
        correct = (out.argmax(-1) == batch.targets)[..., 0].float()  # (M, B)
        result["loss_by_subtask"] = group_sums(loss, group)  # length = largest subtask seen + 1 (evaluation pads)
        result["accuracy_by_subtask"] = group_sums(correct, group)
        return result


def _n_subsets(n: int, k: int) -> int:
    from math import comb

    return comb(n, k)


@functools.lru_cache(maxsize=32)
def _subsets(n: int, k: int, count: int, seed: int) -> np.ndarray:
    gen = np.random.default_rng([seed, n, k])
    seen: set[tuple[int, ...]] = set()
    out = []
    while len(out) < count:
        s = tuple(sorted(gen.choice(n, size=k, replace=False).tolist()))
        if s not in seen:
            seen.add(s)
            out.append(s)
    out_arr = np.array(out, dtype=np.int64)
    out_arr.setflags(write=False)
    return out_arr
