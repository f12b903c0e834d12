"""Per-model losses and metrics for a stack, and the evaluation loop shared by training and constructions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from limitlab.nn.model import StackedTransformer
from limitlab.rng import TEST, StackRNG
from limitlab.tasks.base import Batch, Task, check_stack


def per_model_loss(logits: torch.Tensor, batch: Batch, regression: bool) -> torch.Tensor:
    """Mean loss over each model's scored read-outs: (M,). logits: (M, B, K, C)."""
    mask = batch.mask.to(logits.dtype)  # (M, B, K)
    if regression:
        err = (logits[..., 0].float() - batch.targets.float()) ** 2
    else:
        err = F.cross_entropy(
            logits.float().flatten(0, 2), batch.targets.flatten(), reduction="none"
        ).view_as(mask)  # (M, B, K)
    return (err * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1)


def batch_stats(logits: torch.Tensor, batch: Batch, regression: bool) -> dict[str, torch.Tensor]:
    """Per-model sums over one batch: loss, scored tokens, correct tokens, sequences, correct sequences."""
    mask = batch.mask
    n_tokens = mask.sum((1, 2)).float()
    loss_sum = per_model_loss(logits, batch, regression) * n_tokens
    if regression:
        return {"loss": loss_sum, "tokens": n_tokens, "sequences": torch.full_like(n_tokens, mask.shape[1])}
    correct = (logits.argmax(-1) == batch.targets) | ~mask  # (M, B, K)
    return {
        "loss": loss_sum,
        "tokens": n_tokens,
        "correct_tokens": (correct & mask).sum((1, 2)).float(),
        "sequences": torch.full_like(n_tokens, mask.shape[1]),
        "correct_sequences": correct.all(-1).sum(-1).float(),
    }


@torch.no_grad()
def evaluate(
    model: StackedTransformer,
    tasks: Sequence[Task],
    seeds: Sequence[int],
    n_sequences: int,
    batch_size: int = 256,
    splits: Sequence[str] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Evaluate every model of a stack on every split of its task, from the TEST rng stream.

    Returns ``{split: {"loss": [M], "accuracy": [M], "token_accuracy": [M]}}``; accuracy is exact match of
    all scored read-outs of a sequence (for counting: the count is right). Regression tasks report MSE only.
    """
    cls = check_stack(tasks)
    device = next(model.parameters()).device
    rng = StackRNG(list(seeds), stream=TEST).to(device)
    names = splits if splits is not None else list(tasks[0].splits())
    was_training = model.training
    model.eval()
    out: dict[str, dict[str, list[float]]] = {}
    for name in names:
        split_tasks = [t.splits()[name] for t in tasks]
        totals: dict[str, torch.Tensor] = {}
        for i in range(math.ceil(n_sequences / batch_size)):
            size = min(batch_size, n_sequences - i * batch_size)
            batch = cls.sample(split_tasks, rng, size, step=i)
            logits = model(batch.inputs, batch.positions)
            for key, value in batch_stats(logits, batch, cls.regression).items():
                totals[key] = totals.get(key, 0) + value
        host = {k: v.double().cpu() for k, v in totals.items()}
        metrics = {"loss": (host["loss"] / host["tokens"].clamp(min=1)).tolist()}
        if not cls.regression:
            metrics["accuracy"] = (host["correct_sequences"] / host["sequences"]).tolist()
            metrics["token_accuracy"] = (host["correct_tokens"] / host["tokens"].clamp(min=1)).tolist()
        out[name] = metrics
    model.train(was_training)
    return out
