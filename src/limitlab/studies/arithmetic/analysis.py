"""The arithmetic study's frames: one row per run, one row per (run, test digit count), and per-seed values.

* :func:`runs_frame` — finished runs with their task rebuilt from the spec, the in-distribution exact match and
  whether the run learned its training distribution (``learned``: at least :data:`LEARNED`);
* :func:`per_length` — per (run, n): exact match against the true and the truncated target, the OOD kind
  (**in distribution**: n in the training support; **outward**: n above its largest count; **inward**: n at or
  below it but outside the support, e.g. D_ab4 at 3 digits) and the theory's exact prediction
  (:func:`limitlab.studies.arithmetic.theory.truncation_agreement`);
* :func:`seed_values` — one number per seed from the run groups a claim reads, keeping only seeds whose runs
  learned their training distribution (a run that did not learn it says nothing about generalizing beyond it).

>>> long = pd.DataFrame({"seed": [0, 0, 1, 1], "digits": [5, 6, 5, 6], "exact": [0.0, 0.1, 0.0, 0.0],
...                      "learned": [True, True, True, False]})
>>> seed_values(long, "exact", "max")         # seed 1 did not learn: left out
{0: 0.1}
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from limitlab.analysis import PROPORTION, aggregate, tidy
from limitlab.studies.arithmetic.theory import p_prime, truncation_agreement
from limitlab.tasks.arithmetic import ArithmeticTask

LEARNED = 0.9  # a run has learned its training distribution when its in-distribution exact match is at least this
KEYS = ["experiment", "position"]
COLUMNS = {
    "test_acc": "result.test/accuracy",
    "exact": "result.lengths/accuracy_by_length",
    "truncated": "result.lengths_truncated/accuracy_by_length",
    "digits": "result.lengths/digit_accuracy_by_length",
}
LONG = ["run_id", "experiment", "position", "op", "modulus", "format", "train", "seed", "in_distribution", "learned",
        "digits", "kind", "exact", "truncated", "predicted", "p_prime"]


def _none(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def task_of(row: pd.Series) -> ArithmeticTask:
    """Rebuild a run's task from its flattened ``task.*`` spec columns."""
    fields = {k[len("task."):]: _none(v) for k, v in row.items()
              if isinstance(k, str) and k.startswith("task.") and k != "task.name"}
    return ArithmeticTask(**{k: v for k, v in fields.items() if v is not None or k in ("modulus", "truncate_digits")})


def _at(vec: Any, n: int) -> float:
    return float(vec[n]) if isinstance(vec, list) and n < len(vec) and vec[n] is not None else math.nan


def runs_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished arithmetic run (``runs``: the report context's finished runs): tags, seed, the result
    vectors, its task (column ``task``), ``in_distribution`` (exact match on the training distribution)
    and ``learned``."""
    out = tidy(runs, COLUMNS)
    if out.empty:
        return out.assign(task=[], in_distribution=[], learned=[])
    out["task"] = [task_of(r) for _, r in runs.reset_index(drop=True).iterrows()]
    out["in_distribution"] = [_in_distribution(vec, t, acc) for vec, t, acc in
                              zip(out["exact"], out["task"], out.get("test_acc", [math.nan] * len(out)))]
    out["learned"] = out["in_distribution"] >= LEARNED
    return out


def _in_distribution(exact: Any, task: ArithmeticTask, test_accuracy: float) -> float:
    """Exact match on the training distribution: the mean of the length split over the training digit counts, or,
    for D_ab n (both operands exactly n digits), the test split itself — the length split's n-digit sequences let
    the other operand be shorter, which a D_ab run never saw."""
    if task.both_exact:
        return float(test_accuracy) if test_accuracy is not None else math.nan
    return float(np.nanmean([_at(exact, n) for n in task.train_digits if n in task.test_digits] or [math.nan]))


def per_length(runs: pd.DataFrame) -> pd.DataFrame:
    """Long frame (columns :data:`LONG`): one row per (run, test digit count n)."""
    rows = []
    for rec in runs.to_dict("records"):
        task: ArithmeticTask = rec["task"]
        support, top, k = set(task.train_digits), task.max_digits, task.truncation
        for n in task.test_digits:
            kind = "in distribution" if n in support else "outward" if n > top else "inward"
            predicted = truncation_agreement(task.op, task.modulus, k, n) if task.format != "remainder" else math.nan
            rows.append({"run_id": rec["run_id"], "experiment": rec["experiment"], "position": rec["position"],
                         "op": task.op, "modulus": task.modulus, "format": task.format, "train": rec["train"],
                         "seed": rec["seed"], "in_distribution": rec["in_distribution"], "learned": rec["learned"],
                         "digits": n, "kind": kind,
                         "exact": _at(rec["exact"], n), "truncated": _at(rec["truncated"], n),
                         "predicted": predicted,
                         "p_prime": p_prime(task.modulus, k) if task.modulus is not None else math.nan})
    return pd.DataFrame(rows, columns=LONG)


def seed_values(long: pd.DataFrame, value: str, how: str = "mean") -> dict[Any, float]:
    """{seed: ``how`` (mean, max or min) of ``value`` over the rows of that seed}, for seeds whose every run in
    ``long`` learned its training distribution."""
    out = {}
    for seed, g in long.groupby("seed", sort=True):
        if g["learned"].all() and g[value].notna().any():
            out[seed] = float(getattr(g[value], how)())
    return out


def dropped(long: pd.DataFrame) -> str:
    """A note naming the runs left out because they did not learn their training distribution ('' if none)."""
    bad = long[~long["learned"].astype(bool)].drop_duplicates("run_id")
    if bad.empty:
        return ""
    shown = ", ".join(f"{r.experiment} {r.position} seed {r.seed} ({r.in_distribution:.0%})" for r in bad.itertuples())
    return f"left out (in-distribution exact match below {LEARNED:.0%}): {shown}"


def curves(long: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, position, digits): exact and truncated-target match as mean with a 95% interval over
    seeds (``mean, ci_low, ci_high`` and ``trunc_mean, trunc_low, trunc_high``), ``n`` seeds, and the theory's
    exact prediction."""
    by = [*KEYS, "digits"]
    if long.empty:
        return pd.DataFrame(columns=[*by, "n", "mean", "ci_low", "ci_high", "trunc_mean", "trunc_low", "trunc_high",
                                     "predicted"])
    exact = aggregate(long, by, "exact", bounds=PROPORTION)[[*by, "n", "mean", "ci_low", "ci_high"]]
    trunc = aggregate(long, by, "truncated", bounds=PROPORTION).rename(
        columns={"mean": "trunc_mean", "ci_low": "trunc_low", "ci_high": "trunc_high"})
    pred = long.groupby(by, as_index=False)["predicted"].first()
    out = exact.merge(trunc[[*by, "trunc_mean", "trunc_low", "trunc_high"]], on=by).merge(pred, on=by)
    return out


def digit_maps(runs: pd.DataFrame) -> list[dict]:
    """Digit-wise accuracy per (experiment, position): rows = test digit counts n, columns = answer slot k
    (mean over seeds); the last slot is END."""
    out = []
    for (exp, pos), g in runs.groupby(KEYS, sort=True):
        task: ArithmeticTask = g["task"].iloc[0]
        k = task.splits()["lengths"].slots()
        mats = []
        for vec in g["digits"]:
            if not isinstance(vec, list):
                continue
            arr = np.array([np.nan if v is None else v for v in vec], dtype=float)
            size = (max(task.test_digits) + 1) * k
            arr = np.pad(arr, (0, max(0, size - len(arr))), constant_values=np.nan)[:size]
            mats.append(arr.reshape(-1, k)[task.test_digits])
        if mats:
            with warnings.catch_warnings():  # a cell no seed scored stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(np.stack(mats), 0)
            out.append({"experiment": exp, "position": pos, "n": list(task.test_digits), "slots": k,
                        "accuracy": mean.tolist(), "seeds": len(mats)})
    return out
