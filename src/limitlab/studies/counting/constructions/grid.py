"""Evaluating the constructions: accuracy per prescribed count (:func:`count_sweep`) and over a (d, m) grid with
``evaluate()`` (:func:`construction_cell`, :func:`construction_grid`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from limitlab.nn.model import StackedTransformer
from limitlab.studies.counting.constructions.count_attend import count_attend_model
from limitlab.studies.counting.constructions.histogram import histogram_model, mfc_histogram_model
from limitlab.studies.counting.constructions.wiring import query_offset
from limitlab.tasks.counting import BOS, FIRST_SYMBOL, SEP, CountingTask
from limitlab.train.metrics import evaluate

__all__ = ["construction_cell", "construction_grid", "count_sweep"]

Kind = Literal["histogram", "count_attend", "mfc"]


@torch.no_grad()
def count_sweep(model: StackedTransformer, task: CountingTask, counts: Sequence[int] | None = None,
                per_count: int = 2, seed: int = 0, batch_size: int = 128) -> dict[int, float]:
    """Accuracy at each prescribed count (default every count the head can output, 1..n or 0..n).

    i.i.d. test data only reach counts ≈ n/m ± a few, so this checks the whole range: per count c, build
    ``per_count`` sequences (seeded) with exactly c copies of a random query among uniformly drawn other
    symbols, in the task's format, and read out as ``evaluate`` does. Not a substitute for :func:`evaluate`,
    which remains the accuracy of record.
    """
    n, m, o = task.length, task.m, query_offset(task.query)
    if counts is None:
        counts = range(1 - o, min(n, task.classes - 1) + 1)
    counts = [int(c) for c in counts]
    if any(not 1 - o <= c <= n for c in counts):
        raise ValueError(f"counts must lie in {1 - o}..{n}")
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    rows, targets = [], []
    for c in counts:
        for _ in range(per_count):
            q = int(torch.randint(m, (1,), generator=gen))
            other = torch.randint(m - 1, (n,), generator=gen)
            seq = other + (other >= q).long()  # uniform over symbols != q
            if o == 0:
                pos = torch.randperm(n - 1, generator=gen)[: c - 1]
                seq[n - 1] = q
            else:
                pos = torch.randperm(n, generator=gen)[:c]
            seq[pos] = q
            parts = [torch.tensor([BOS]), seq + FIRST_SYMBOL]
            if o:
                parts.append(torch.tensor([SEP, q + FIRST_SYMBOL]))
            rows.append(torch.cat(parts))
            targets.append(min(c, task.classes - 1))
    inputs, target = torch.stack(rows).to(device), torch.tensor(targets, device=device)
    correct = torch.empty(len(rows), dtype=torch.bool, device=device)
    for i in range(0, len(rows), batch_size):
        x = inputs[i:i + batch_size][None]
        readout = torch.full((1, x.shape[1], 1), x.shape[2] - 1, device=device)
        correct[i:i + batch_size] = model(x, readout)[0, :, 0].argmax(-1) == target[i:i + batch_size]
    per = correct.view(len(counts), per_count).float().mean(1).tolist()
    return dict(zip(counts, per))


def construction_cell(
    kind: Kind,
    d: int,
    m: int,
    n: int | None,
    n_sequences: int = 400,
    seed: int = 0,
    batch_size: int = 256,
    splits: Sequence[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Build one construction at (d, m, n) and evaluate it with ``evaluate()``: one row of
    :func:`construction_grid` (see there for the row's keys and ``options``)."""
    builders = {"histogram": histogram_model, "count_attend": count_attend_model, "mfc": mfc_histogram_model}
    if kind not in builders:
        raise ValueError(f"unknown construction {kind!r}; one of {sorted(builders)}")
    model, task = builders[kind](d, m, n, seed=seed, **options)
    info = dict(model.construction_info)  # type: ignore[arg-type]
    if kind == "count_attend":
        info["exact_regime"] = info["max_exact_count"] >= task.length
    else:
        info["exact_regime"] = m <= info["capacity"]
    res = evaluate(model, [task], [seed], n_sequences, batch_size, splits)
    row: dict[str, Any] = {"kind": kind, "d": d, "m": m, "n": task.length}
    for split, metrics in res.items():
        row[f"{split}_accuracy"] = metrics["accuracy"][0]
        row[f"{split}_loss"] = metrics["loss"][0]
    row["accuracy"] = row.get("test_accuracy", next(iter(res.values()))["accuracy"][0])
    return row | info


def construction_grid(
    ds: Sequence[int],
    ms: Sequence[int],
    kind: Kind = "histogram",
    n_sequences: int = 400,
    n_factor: int = 10,
    seed: int = 0,
    batch_size: int = 256,
    splits: Sequence[str] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Build the construction for every (d, m) with n = n_factor·m and evaluate it with ``evaluate()``.

    ``kind``: "histogram" / "count_attend" (QC) or "mfc" (:func:`mfc_histogram_model`). Rows: ``{kind, d, m,
    n, accuracy (test split), <split>_accuracy, <split>_loss, exact_regime, extra_dims, beta, mlp_width,
    coherence}``. ``exact_regime`` is m ≤ capacity (histogram: d − n_heads, mfc: d − 2) or "width covers n"
    (count_attend; interference is budgeted by β). ``options`` go to the builder (e.g. ``n_heads``, ``beta``,
    ``overflow``, ``mlp_width``, ``codes``). ``splits`` default: all of the task's splits (test, ood_long).
    """
    return [construction_cell(kind, d, m, n_factor * m, n_sequences, seed, batch_size, splits, **options)
            for d in ds for m in ms]
