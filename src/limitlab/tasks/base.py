"""The task protocol: a validated config that samples batches for a whole stack of models, and scores them.

A task is a frozen pydantic model (one instance per model in a stack). It owns three things:

* **what may share a stack.** ``varying`` names the fields that may differ between the models of one stack
  (the sampler pads them or reads them per model); every other field, and the input width, must be equal.
  :meth:`Task.stack_key` is derived from that declaration, so a field a new task forgets to declare can only
  split stacks, never mix shapes. The sampler gets a :class:`TaskStack`, a validated view: shared fields read
  as plain attributes (``stack.shared.kind``), varying ones only per model (``stack.per_model("m")``) or as a
  maximum (``stack.max("length")``) — never ``tasks[0]``.
* **the batch.** ``sample(stack, rng, batch_size, step)`` returns a :class:`Batch` with a leading model dim M,
  generated on the rng's device from counter-based random numbers (train and test streams are disjoint).
* **the score.** ``loss(out, batch)`` is the per-model training loss (M,); ``metrics(out, batch)`` returns
  per-model *sums* with their counts — ``{name: (sum, count)}``, each (M,) or (M, G) for a vector metric
  (error per in-context example, accuracy per output digit or per operand length). Evaluation adds sums and
  counts over batches and divides once, so a metric is exact whatever the batch size; vectors whose length
  differs between batches are zero-padded before adding. The defaults score classification (cross-entropy,
  exact-match accuracy, token accuracy, accuracy per value of every group the batch carries) or, for
  ``regression = True``, squared error.

Out-of-distribution splits are named variants of the config (``splits()``), evaluated like the test split.

A new task is one file with a ``Task`` subclass plus one line in ``limitlab.tasks.TASKS``.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer
from torch.nn import functional as F

from limitlab.rng import StackRNG

Metric = tuple[torch.Tensor, torch.Tensor]  # (per-model sum, per-model count), each (M,) or (M, G)


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch for M models. T = sequence length, K = read-out positions per sequence.

    ``valid`` marks real tokens (False = padding, never attended to); None means every token is real.
    ``groups`` label each sequence with a small integer (operand length, function family): the default
    metrics report accuracy per group value. ``extras`` carries anything else a task's metrics need (a second
    target, the clean labels of a noisy task), each with a leading (M, B).
    """

    inputs: torch.Tensor  # (M, B, T) int64 tokens, or (M, B, T, D) float for a linear read-in
    targets: torch.Tensor  # (M, B, K) int64 classes, or float for scalar regression
    mask: torch.Tensor  # (M, B, K) bool: which read-outs are scored
    positions: torch.Tensor | None = None  # (M, B, K) int64 sequence index of each read-out; None: K = T
    valid: torch.Tensor | None = None  # (M, B, T) bool key-padding mask
    groups: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # name -> (M, B) int64
    extras: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # name -> (M, B, ...)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        """The same batch with ``fn`` applied to every tensor (e.g. a slice of the models)."""
        def app(x):
            return None if x is None else fn(x)

        return Batch(fn(self.inputs), fn(self.targets), fn(self.mask), app(self.positions), app(self.valid),
                     {k: fn(v) for k, v in self.groups.items()}, {k: fn(v) for k, v in self.extras.items()})

    def models(self, start: int, stop: int) -> Batch:
        """The rows of models ``start:stop``."""
        return self.map(lambda x: x[start:stop])

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor of the batch in a fixed order (for copying into static CUDA-graph buffers)."""
        out = [self.inputs, self.targets, self.mask, self.positions, self.valid]
        out += [self.groups[k] for k in sorted(self.groups)] + [self.extras[k] for k in sorted(self.extras)]
        return [x for x in out if x is not None]


class Task(BaseModel):
    """Base class. Subclasses declare fields (validated), ``varying``, and implement the abstract methods."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: ClassVar[str]
    regression: ClassVar[bool] = False  # default loss/metrics: squared error instead of cross-entropy/accuracy
    varying: ClassVar[frozenset[str]] = frozenset()  # fields that may differ within a stack
    # optional fields added after runs were stored: dumped only when set, so older specs keep their run ids
    added_later: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in self.added_later:
            if getattr(self, key) == type(self).model_fields[key].default:
                data.pop(key, None)
        return data

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
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        """A batch for the stack; sequences of shorter models are right-padded to the stack's longest."""

    def splits(self) -> dict[str, Task]:
        """Named evaluation splits. 'test' is in distribution; others are out-of-distribution variants."""
        return {"test": self}

    def input_dim(self) -> int:
        """Width of a continuous input vector (0 for token inputs)."""
        return 0

    def stack_key(self) -> tuple:
        """Runs whose tasks share this key (and model shape) may share a stack: the task's name, its input
        width and every field not declared ``varying``."""
        fixed = tuple((k, _hashable(v)) for k, v in sorted(self.model_dump().items()) if k not in self.varying)
        return (self.name, ("input_dim", self.input_dim()), *fixed)

    def describe(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.model_dump().items())
        return f"{self.name}({fields})"

    # ---- scoring (override to change what is trained and measured) ------------------------------------------

    @classmethod
    def pointwise_loss(cls, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Loss at every read-out (M, B, K): cross-entropy, or squared error for regression. out: (M, B, K, C)."""
        out = out.to(torch.promote_types(out.dtype, torch.float32))  # fp32 at least, fp64 for a fp64 model
        if cls.regression:
            return (out[..., 0] - batch.targets.to(out.dtype)) ** 2
        return F.cross_entropy(out.flatten(0, 2), batch.targets.flatten(), reduction="none").view(batch.mask.shape)

    @classmethod
    def loss(cls, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Training loss per model (M,): the mean pointwise loss over each model's scored read-outs."""
        err = cls.pointwise_loss(out, batch)
        mask = batch.mask.to(err.dtype)
        return (err * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1)

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        """Per-model sums and counts over one batch; see the module docstring."""
        mask = batch.mask
        tokens = mask.sum((1, 2)).float()
        err = cls.pointwise_loss(out, batch)
        sequences = torch.full_like(tokens, mask.shape[1])
        result = {"loss": ((err * mask).sum((1, 2)), tokens)}
        if cls.regression:
            return result
        correct = (out.argmax(-1) == batch.targets) | ~mask  # (M, B, K)
        exact = correct.all(-1)  # (M, B)
        result["accuracy"] = (exact.sum(-1).float(), sequences)
        result["token_accuracy"] = ((correct & mask).sum((1, 2)).float(), tokens)
        for name, group in batch.groups.items():
            result[f"accuracy_by_{name}"] = group_sums(exact.float(), group)
        return result


def group_sums(values: torch.Tensor, group: torch.Tensor, size: int | None = None,
               weight: torch.Tensor | None = None) -> Metric:
    """Sum of ``values`` (M, B) per group index (M, B) -> ((M, G), (M, G)) with G = ``size`` or max + 1.

    ``weight`` (M, B) counts each sequence that many times (default 1; 0 leaves it out).
    """
    size = size if size is not None else int(group.max()) + 1 if group.numel() else 0
    w = torch.ones_like(values) if weight is None else weight.to(values.dtype)
    sums = torch.zeros(*values.shape[:-1], size, dtype=values.dtype, device=values.device)
    counts = torch.zeros_like(sums)
    sums.scatter_add_(-1, group, values * w)
    counts.scatter_add_(-1, group, w)
    return sums, counts


class _SharedFields:
    """Attribute access to the fields every task of a stack shares; varying fields raise, naming the fix."""

    def __init__(self, stack: TaskStack) -> None:
        self._stack = stack

    def __getattr__(self, field: str) -> Any:
        first = self._stack.tasks[0]
        if field in type(first).varying:
            raise AttributeError(f"{first.name}.{field} may differ within a stack; read it with "
                                 f"stack.per_model({field!r}) or stack.max({field!r})")
        return getattr(first, field)


class TaskStack:
    """The validated tasks of one stack: one class, one stack key. What a sampler reads its settings from.

    >>> from limitlab.tasks import CountingTask
    >>> stack = TaskStack([CountingTask(m=3), CountingTask(m=5)])
    >>> stack.shared.kind, stack.max("m"), stack.per_model("m").tolist()
    ('qc', 5, [3, 5])
    >>> stack.shared.m
    Traceback (most recent call last):
    ...
    AttributeError: counting.m may differ within a stack; read it with stack.per_model('m') or stack.max('m')
    """

    def __init__(self, tasks: Sequence[Task], device: torch.device | str = "cpu") -> None:
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError("a stack needs at least one task")
        kinds = {type(t) for t in tasks}
        if len(kinds) != 1:
            raise ValueError(f"a stack mixes task kinds {sorted(k.name for k in kinds)}; one kind per stack")
        keys = {t.stack_key() for t in tasks}
        if len(keys) != 1:
            a, b = (dict(key[1:]) for key in sorted(keys, key=repr)[:2])
            diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            raise ValueError(f"tasks of one stack differ in {', '.join(map(str, diff))}, which must be equal "
                             f"within a stack (only {sorted(kinds.pop().varying) or 'no fields'} may differ)")
        self.tasks, self.cls = tasks, kinds.pop()
        self.device = torch.device(device)
        self.shared = _SharedFields(self)

    def __len__(self) -> int:
        return len(self.tasks)

    def to(self, device: torch.device | str) -> TaskStack:
        return TaskStack(self.tasks, device)

    def values(self, field: str) -> list:
        """The field (or property / zero-argument method) of every task, in stack order."""
        out = []
        for t in self.tasks:
            v = getattr(t, field)
            out.append(v() if callable(v) else v)
        return out

    def max(self, field: str) -> Any:
        """The largest value of a field over the stack (from the configs: no device sync)."""
        return max(self.values(field))

    def per_model(self, field: str, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """A per-model (M,) tensor of one field on the stack's device, cached so a step copies nothing."""
        return _cached_tensor(tuple(self.values(field)), dtype, str(self.device))

    def split(self, name: str) -> TaskStack:
        """The stack of every task's split ``name``."""
        return TaskStack([t.splits()[name] for t in self.tasks], self.device)

    def split_names(self) -> list[str]:
        return list(self.tasks[0].splits())

    def sample(self, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        return self.cls.sample(self, rng, batch_size, step)


def check_stack(tasks: Sequence[Task]) -> type[Task]:
    """All tasks of a stack must be of one class and share one stack key; returns the class."""
    return TaskStack(tasks).cls


@functools.lru_cache(maxsize=512)
def _cached_tensor(values: tuple, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value
