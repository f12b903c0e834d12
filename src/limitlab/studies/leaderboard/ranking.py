"""Ranks with intervals that account for seeds: per seed, per task, and overall.

**Per seed.** Within one task and one seed, the encodings are ranked by their score (1 = best; ties share the
mean of their ranks). In the OOD ranking a run that missed its in-distribution criterion (``ok`` False) or has no
score is not ranked as a success: every such run shares the ranks below all runs that met it (their mean), so
a model that never learned the task cannot win by an accident of its OOD score.

**Per task.** An encoding's mean rank over seeds, with a 95% percentile bootstrap interval over seeds
(:func:`limitlab.analysis.bootstrap_ci`). With 3 seeds the bootstrap has only 10 distinct resamples: the interval
is coarse, and wide where the seeds disagree; that is the honest spread, not a defect.

**Overall.** The mean over tasks of the per-task mean ranks; its interval resamples the seeds of every task
independently (the tasks are separate experiments) and takes the percentiles of the resulting overall means.
An encoding on fewer tasks (Abacus: arithmetic only) is averaged over the tasks it stands on; the table says how
many.

>>> frame = pd.DataFrame({"encoding": list("abcabc"), "seed": [0, 0, 0, 1, 1, 1],
...                       "score": [0.9, 0.5, 0.5, 0.8, 0.9, 0.1], "ok": [True, True, True, True, True, False]})
>>> seed_ranks(frame, higher_better=True).sort_values(["seed", "encoding"])["rank"].tolist()
[1.0, 2.5, 2.5, 2.0, 1.0, 3.0]
>>> rank_table(seed_ranks(frame, True))[["encoding", "mean_rank"]].to_dict("records")
[{'encoding': 'a', 'mean_rank': 1.5}, {'encoding': 'b', 'mean_rank': 1.75}, {'encoding': 'c', 'mean_rank': 2.75}]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from limitlab.analysis.bootstrap import bootstrap_ci

__all__ = ["overall", "rank_table", "seed_ranks"]


def seed_ranks(frame: pd.DataFrame, higher_better: bool, use_ok: bool = True) -> pd.DataFrame:
    """One row per (encoding, seed): the encoding's rank among the task's encodings of that seed.

    ``frame``: columns encoding, seed, score and (optional) ok. ``use_ok``: rank failures (ok False) below every
    success; a NaN score always ranks below every number."""
    rows = []
    for seed, group in frame.groupby("seed", sort=True):
        score = pd.to_numeric(group["score"], errors="coerce")
        good = score.notna()
        if use_ok and "ok" in group:
            good &= group["ok"].astype(bool)
        ranks = (-score if higher_better else score)[good].rank(method="average")
        n_good, n = int(good.sum()), len(group)
        shared = (n_good + 1 + n) / 2  # the mean of the ranks n_good + 1 … n
        for idx, enc in group["encoding"].items():
            rows.append({"encoding": enc, "seed": seed, "rank": float(ranks[idx]) if good[idx] else shared,
                         "success": bool(good[idx])})
    return pd.DataFrame(rows, columns=["encoding", "seed", "rank", "success"])


def rank_table(ranks: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean rank over seeds per encoding with its 95% bootstrap interval, best first."""
    rows = []
    for enc, group in ranks.groupby("encoding", sort=False):
        mean, low, high = bootstrap_ci(group["rank"].to_numpy(float), n_boot=n_boot, seed=seed)
        rows.append({"encoding": enc, "mean_rank": mean, "low": low, "high": high, "seeds": len(group)})
    out = pd.DataFrame(rows, columns=["encoding", "mean_rank", "low", "high", "seeds"])
    return out.sort_values(["mean_rank", "encoding"], kind="stable").reset_index(drop=True)


def overall(per_task: Mapping[str, pd.DataFrame], n_boot: int = 2000, seed: int = 0,
            confidence: float = 0.95) -> pd.DataFrame:
    """Mean over tasks of each encoding's mean rank, with a bootstrap interval resampling every task's seeds.

    ``per_task``: task -> :func:`seed_ranks` frame. Columns: encoding, tasks, mean_rank, low, high.

    >>> t = {"x": pd.DataFrame({"encoding": ["a", "b"] * 2, "seed": [0, 0, 1, 1], "rank": [1.0, 2.0, 1.0, 2.0]}),
    ...      "y": pd.DataFrame({"encoding": ["a", "b"] * 2, "seed": [0, 0, 1, 1], "rank": [2.0, 1.0, 2.0, 1.0]})}
    >>> overall(t)[["encoding", "tasks", "mean_rank", "low", "high"]].values.tolist()
    [['a', 2, 1.5, 1.5, 1.5], ['b', 2, 1.5, 1.5, 1.5]]
    """
    rng = np.random.default_rng(seed)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    points: dict[str, list[float]] = {}
    for ranks in per_task.values():
        if ranks.empty:
            continue
        table = ranks.pivot_table(index="seed", columns="encoding", values="rank", aggfunc="mean")
        values = table.to_numpy(float)  # (seeds, encodings); NaN where a run is missing
        draws = rng.integers(0, len(values), size=(n_boot, len(values)))
        with np.errstate(invalid="ignore"):
            boot = np.nanmean(values[draws], axis=1) if len(values) else np.empty((n_boot, 0))  # (n_boot, enc)
        for j, enc in enumerate(table.columns):
            col = boot[:, j]
            col = np.where(np.isnan(col), np.nanmean(values[:, j]), col)  # a draw of only missing seeds
            sums[enc] = sums.get(enc, np.zeros(n_boot)) + col
            counts[enc] = counts.get(enc, 0) + 1
            points.setdefault(enc, []).append(float(np.nanmean(values[:, j])))
    alpha = (1 - confidence) / 2
    rows = []
    for enc, total in sums.items():
        means = total / counts[enc]
        rows.append({"encoding": enc, "tasks": counts[enc], "mean_rank": float(np.mean(points[enc])),
                     "low": float(np.quantile(means, alpha)), "high": float(np.quantile(means, 1 - alpha))})
    out = pd.DataFrame(rows, columns=["encoding", "tasks", "mean_rank", "low", "high"])
    return out.sort_values(["mean_rank", "encoding"], kind="stable").reset_index(drop=True)
