"""The task protocol: a validated config that samples batches for a whole stack of models at once.

A task is a frozen pydantic model (one instance per model in a stack, so a stack may mix vocabulary sizes or
sequence lengths). ``sample`` takes the instances of a stack, a :class:`~limitlab.rng.StackRNG` and a step,
and returns a :class:`Batch` with a leading model dimension M, generated on the rng's device.

Train and test batches come from disjoint rng streams (``rng.TRAIN`` / ``rng.TEST``). Out-of-distribution
splits are named variants of the config (``splits()``), evaluated with the same code as the test split.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict

from limitlab.rng import StackRNG


class Batch(NamedTuple):
    """One batch for M models. K = number of read-out positions per sequence."""

    inputs: torch.Tensor  # (M, B, T) int64 tokens, or (M, B, T, D) float for a linear read-in
    targets: torch.Tensor  # (M, B, K) int64 classes, or float for scalar regression
    mask: torch.Tensor  # (M, B, K) bool: which read-outs are scored
    positions: torch.Tensor | None  # (M, B, K) int64 sequence index of each read-out; None: K = T


class Task(BaseModel):
    """Base class. Subclasses declare fields (validated) and implement the four methods below."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: ClassVar[str]
    regression: ClassVar[bool] = False  # targets are floats (MSE) rather than classes (cross-entropy)

    @abstractmethod
    def vocab_size(self) -> int:
        """Number of input token ids (0 for continuous inputs)."""

    @abstractmethod
    def seq_len(self) -> int:
        """Length T of an input sequence."""

    @abstractmethod
    def n_outputs(self) -> int:
        """Number of output classes (1 for scalar regression)."""

    @classmethod
    @abstractmethod
    def sample(cls, tasks: Sequence[Task], rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        """A batch for the stack: ``tasks[m]`` configures model m; sequences are right-padded to the max T."""

    def splits(self) -> dict[str, Task]:
        """Named evaluation splits. 'test' is in distribution; others are out-of-distribution variants."""
        return {"test": self}

    def input_dim(self) -> int:
        """Width of a continuous input vector (0 for token inputs)."""
        return 0

    def stack_key(self) -> tuple:
        """Runs whose tasks share this key (and model shape) may share a stack; sizes may differ (padded)."""
        return (self.name,)

    def describe(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.model_dump().items())
        return f"{self.name}({fields})"


def check_stack(tasks: Sequence[Task]) -> type[Task]:
    """All tasks of a stack must be of one class; returns it."""
    kinds = {type(t) for t in tasks}
    if len(kinds) != 1:
        raise ValueError(f"a stack mixes task kinds {sorted(k.name for k in kinds)}; one kind per stack")
    return kinds.pop()


def per_model(tasks: Sequence[Task], field: str, device: torch.device) -> torch.Tensor:
    """A per-model int64 tensor (M,) of one task field (or property), cached so a training step copies nothing."""
    return _cached_tensor(tuple(getattr(t, field) for t in tasks), str(device))


@functools.lru_cache(maxsize=256)
def _cached_tensor(values: tuple[int, ...], device: str) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64, device=device)
