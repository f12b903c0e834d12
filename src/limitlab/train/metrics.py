"""The evaluation loop shared by training, constructions and probes: a task's metric sums, reduced over batches.

A task's ``metrics(out, batch)`` returns per-model ``(sum, count)`` pairs, scalar (M,) or vector (M, G). Here
they are added over evaluation batches (vectors zero-padded to the longest G seen) and divided once, in float64
on the host: a metric is the same whatever the evaluation batch size. A vector entry with no count is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from limitlab.nn.model import StackedTransformer
from limitlab.rng import TEST, StackRNG
from limitlab.tasks.base import Batch, Metric, Task, TaskStack

EVAL_BLOCK = 256  # evaluation sequences per rng step
Result = dict[str, dict[str, list]]  # {split: {metric: [per model: float, or list of floats for a vector]}}


def forward(model, batch: Batch) -> torch.Tensor:
    """Outputs (M, B, K, C) of ``model`` (a stacked model, or a compiled or functional wrapper) on ``batch``."""
    return model(batch.inputs, batch.positions, valid=batch.valid)


def add_metrics(totals: dict[str, list[torch.Tensor]], metrics: dict[str, Metric]) -> None:
    """totals[name] += (sum, count), zero-padding vector metrics to the longer length."""
    for name, (s, c) in metrics.items():
        s, c = s.detach().double(), c.detach().double()
        if name not in totals:
            totals[name] = [s, c]
            continue
        old_s, old_c = totals[name]
        if s.dim() == 2 and s.shape[1] != old_s.shape[1]:
            width = max(s.shape[1], old_s.shape[1])
            s, c, old_s, old_c = (_pad(x, width) for x in (s, c, old_s, old_c))
        totals[name] = [old_s + s, old_c + c]


def reduce_metrics(totals: dict[str, list[torch.Tensor]]) -> dict[str, list]:
    """{name: per-model value} from summed (sum, count): floats, or lists for vector metrics (NaN: no count)."""
    out: dict[str, list] = {}
    for name, (s, c) in totals.items():
        value = (s.cpu() / c.cpu()).where(c.cpu() > 0, torch.tensor(math.nan, dtype=torch.float64))
        out[name] = value.tolist()
    return out


def _pad(x: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, width - x.shape[1]))


@torch.no_grad()
def evaluate(
    model: StackedTransformer,
    tasks: Sequence[Task],
    seeds: Sequence[int],
    n_sequences: int,
    batch_size: int = 256,
    splits: Sequence[str] | None = None,
) -> Result:
    """Evaluate every model of a stack on every split of its task, from the TEST rng stream.

    Returns ``{split: {metric: [value per model]}}`` with the task's metrics (for classification tasks by
    default: loss, accuracy = exact match of all scored read-outs of a sequence, token_accuracy).
    ``batch_size`` is in sequences; a split whose sequences are longer gets proportionally fewer per batch
    (:func:`eval_batch_for`), so one evaluation batch holds about the same number of tokens at every length.
    Sequence j is always the same sequence (rng step j // EVAL_BLOCK, row j % EVAL_BLOCK), so the numbers do not
    depend on the batch size.
    """
    device = next(model.parameters()).device
    stack = TaskStack(tasks, device)
    rng = StackRNG(list(seeds), stream=TEST).to(device)
    names = splits if splits is not None else stack.split_names()
    base_len = stack.max("seq_len")
    was_training = model.training
    model.eval()
    out: Result = {}
    for name in names:
        split = stack.split(name)
        size = eval_batch_for(batch_size, base_len, split.max("seq_len"))
        totals: dict[str, list[torch.Tensor]] = {}
        start = 0
        while start < n_sequences:
            block, row = divmod(start, EVAL_BLOCK)
            rows = min(size, EVAL_BLOCK - row, n_sequences - start)
            batch = split.sample(rng.rows_from(row), rows, step=block)
            add_metrics(totals, split.cls.metrics(forward(model, batch), batch))
            start += rows
        out[name] = reduce_metrics(totals)
    model.train(was_training)
    return out


def eval_batch_for(batch_size: int, base_len: int, split_len: int) -> int:
    """Sequences per evaluation batch at ``split_len`` tokens, for ``batch_size`` sequences of ``base_len``.

    Keeps the tokens per batch (and so the activation memory) about constant when an out-of-distribution split
    is longer than the training length. A pure function of the shape, so results never depend on the device.
    """
    return max(1, (batch_size * max(base_len, 1)) // max(split_len, 1))
