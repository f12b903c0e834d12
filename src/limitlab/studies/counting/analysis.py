"""Counting analysis: the threshold vocabulary m_thr, its spread over seeds, the linear fit m_thr = a·d + b,
transition sharpness and length generalisation. Thin wrappers around :mod:`limitlab.analysis` that name its
columns for this study (m, accuracy, d, seed); the verdicts on the paper's claims live in :mod:`.claims`.

**m_thr.** For one learning curve (task, variant, d, seed) — test accuracy over the vocabulary grid m — m_thr is
the first m at which accuracy falls to ``level`` (0.8): the first pair of neighbouring grid points with
acc(m_i) ≥ level > acc(m_{i+1}), linearly interpolated between them
(:func:`limitlab.analysis.first_crossing`). Censoring, never a made-up number:

* accuracy ≥ level at every m: **right-censored**, m_thr > max m (label ``'> 24'``);
* accuracy < level already at the smallest m: **left-censored**, m_thr < min m (label ``'< 4'``).

Example: accuracy 1.0, 0.9, 0.7 at m = 5, 7, 9 crosses 0.8 halfway between 7 and 9, so m_thr = 8.0.

**Spread.** Over seeds: mean, std (ddof=1) and a 95% Student-t interval of the *uncensored* seeds, clipped at 0
(m_thr is a vocabulary size; with 2 seeds the raw interval reaches below 0) and flagged ``clipped``; censored seeds
are counted and shown next to the mean (``'8 ± 0.4 (3 seeds); 1 seed > 24'``, or ``'8 [0, 20.7] (2 seeds)'`` when
clipped), never averaged in.

**Fit.** m_thr = a·d + b by least squares on the per-seed uncensored points (censored points are excluded and
their number reported), with R², the slope's standard error and a 95% t-interval. A fit needs ≥ 3 points and ≥ 2
distinct d; otherwise its status says 'too few points' and a, b, R² are None.

>>> import pandas as pd
>>> df = pd.DataFrame({"task": "qc", "variant": "base", "d": 8, "seed": 0, "m": [5, 7, 9],
...                    "accuracy": [1.0, 0.9, 0.7]})
>>> row = thresholds(df).iloc[0]
>>> round(float(row["m_thr"]), 9), row["censored"], row["label"]
(8.0, 'none', '8')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from limitlab.analysis import NONNEGATIVE, Crossing, crossings, first_crossing, linear_fit, summarize_crossings
from limitlab.analysis.frames import column, done

__all__ = [
    "CURVE",
    "GROUP",
    "LEVEL",
    "Threshold",
    "crossing",
    "fit_lines",
    "ood_summary",
    "summarize_thresholds",
    "thresholds",
    "tidy",
    "transition_points",
]

LEVEL = 0.8
GROUP = ["task", "variant", "d"]  # one m_thr summary per group
CURVE = [*GROUP, "seed"]  # one learning curve (accuracy vs m) per key
MIN_FIT_POINTS = 3
Threshold = Crossing  # where one accuracy curve falls to the level: value, censored, bound, recovers, label


def tidy(df: pd.DataFrame, statuses: Sequence[str] = ("done",)) -> pd.DataFrame:
    """The store's ``to_dataframe('counting')`` -> one row per run with the columns the analysis uses:

    ``run_id, task, variant, d, m, n, seed, accuracy, ood_accuracy, train_loss`` (NaN where a result is missing).
    Grid coordinates come from the spec (``task.kind``, ``model.d_model``, ``task.m``, ``seed``), the variant
    from ``tags.variant`` ('untagged' when a run has none). Only runs whose status is in ``statuses``.

    >>> raw = pd.DataFrame({"status": ["done", "failed"], "task.kind": "qc", "model.d_model": 8, "task.m": 3,
    ...                     "task.n": 12, "seed": 0, "result.test/accuracy": [0.5, None]})
    >>> tidy(raw)[["task", "variant", "d", "m", "n", "accuracy"]].to_dict("records")
    [{'task': 'qc', 'variant': 'untagged', 'd': 8, 'm': 3, 'n': 12, 'accuracy': 0.5}]
    """
    cols = ["run_id", "task", "variant", "d", "m", "n", "seed", "accuracy", "ood_accuracy", "train_loss"]
    if df.empty or "status" not in df:
        return pd.DataFrame(columns=cols)
    df = done(df, statuses)
    if df.empty:
        return pd.DataFrame(columns=cols)
    m = column(df, "task.m").astype(int)
    n = column(df, "task.n").where(column(df, "task.n").notna(), 10 * m)  # task default: n = 10·m
    variant = column(df, "tags.variant", None).where(column(df, "tags.variant", None).notna(), "untagged")
    out = pd.DataFrame({
        "run_id": column(df, "run_id", None), "task": column(df, "task.kind", "qc"), "variant": variant.astype(str),
        "d": column(df, "model.d_model").astype(int), "m": m, "n": n.astype(int),
        "seed": column(df, "seed", 0).astype(int),
        "accuracy": pd.to_numeric(column(df, "result.test/accuracy"), errors="coerce"),
        "ood_accuracy": pd.to_numeric(column(df, "result.ood_long/accuracy"), errors="coerce"),
        "train_loss": pd.to_numeric(column(df, "result.train_loss"), errors="coerce"),
    })
    return out.reset_index(drop=True)


def crossing(ms: Sequence[float], accs: Sequence[float], level: float = LEVEL) -> Crossing:
    """The first m at which accuracy falls from ≥ level to < level, linearly interpolated on the grid.

    Repeated m values are averaged; NaN accuracies are dropped.

    >>> round(crossing([4, 6, 8, 10], [1.0, 0.95, 0.85, 0.75]).value, 9)   # 0.8 is halfway between m = 8 and 10
    9.0
    >>> crossing([4, 6], [0.9, 0.85]).label, crossing([4, 6], [0.5, 0.1]).label
    ('> 6', '< 4')
    """
    return first_crossing(ms, accs, level, direction="below", floor=0.0)


def thresholds(df: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """One row per curve (task, variant, d, seed): m_thr, censored, bound, label, recovers, points, m_min, m_max.

    ``df`` needs columns task, variant, d, seed, m, accuracy (as from :func:`tidy`). m_thr is NaN when censored.

    >>> df = pd.DataFrame({"task": "qc", "variant": "base", "d": 8, "seed": 0, "m": [3, 6],
    ...                    "accuracy": [0.5, 0.2]})
    >>> thresholds(df)[["m_thr", "censored", "bound", "label"]].to_dict("records")
    [{'m_thr': nan, 'censored': 'left', 'bound': 3.0, 'label': '< 3'}]
    """
    cr = crossings(df, CURVE, "m", "accuracy", level)
    return cr.rename(columns={"value": "m_thr", "x_min": "m_min", "x_max": "m_max"})


def summarize_thresholds(thr: pd.DataFrame) -> pd.DataFrame:
    """Per (task, variant, d): seeds, n_exact / n_right / n_left censored, mean, std, ci_low, ci_high (95% t,
    clipped at 0), clipped, the interval [lo, hi] every seed's m_thr lies in, and a label for tables.

    >>> thr = pd.DataFrame({"task": "qc", "variant": "base", "d": 8, "seed": [0, 1, 2],
    ...                     "m_thr": [7.0, 9.0, float("nan")], "censored": ["none", "none", "right"],
    ...                     "bound": [float("nan"), float("nan"), 24.0]})
    >>> summarize_thresholds(thr)[["mean", "n_exact", "n_right", "label"]].to_dict("records")
    [{'mean': 8.0, 'n_exact': 2, 'n_right': 1, 'label': '8 [0, 20.7] (2 seeds); 1 seed > 24'}]
    """
    s = summarize_crossings(thr.rename(columns={"m_thr": "value"}), GROUP, bounds=NONNEGATIVE, unit="seed")
    return s.rename(columns={"curves": "seeds"})


def fit_lines(thr: pd.DataFrame, by: Sequence[str] = ("task", "variant"), min_points: int = MIN_FIT_POINTS
              ) -> pd.DataFrame:
    """m_thr = a·d + b per group, least squares on the per-seed uncensored points (censored ones excluded).

    Columns: the ``by`` keys, status ('ok' | 'too few points'), reason, a, b, r2, a_stderr, a_ci_low, a_ci_high
    (95% t), n_points, n_d, n_censored, censored (how they were treated).

    >>> thr = pd.DataFrame({"task": "qc", "variant": "base", "d": [8, 16, 32], "seed": 0,
    ...                     "m_thr": [10.0, 18.0, 34.0], "censored": "none"})
    >>> row = fit_lines(thr).iloc[0]
    >>> round(float(row["a"]), 6), round(float(row["b"]), 6), round(float(row["r2"]), 6), row["status"]
    (1.0, 2.0, 1.0, 'ok')
    """
    by = list(by)
    cols = [*by, "status", "reason", "a", "b", "r2", "a_stderr", "a_ci_low", "a_ci_high", "n_points", "n_d",
            "n_censored", "censored"]
    if thr.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in thr.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        ok = g[g["censored"] == "none"]
        n_cens = int((g["censored"] != "none").sum())
        f = linear_fit(ok["d"].to_numpy(dtype=float), ok["m_thr"].to_numpy(dtype=float), min_points=min_points)
        row: dict[str, Any] = {**dict(zip(by, key)), "status": f.status, "reason": f.reason, "a": f.slope,
                               "b": f.intercept, "r2": f.r2, "a_stderr": f.slope_stderr,
                               "a_ci_low": f.slope_ci[0] if f.slope_ci else None,
                               "a_ci_high": f.slope_ci[1] if f.slope_ci else None, "n_points": f.n_points,
                               "n_d": f.n_x, "n_censored": n_cens,
                               "censored": f"{n_cens} censored point(s) excluded from the fit"}
        if f.status != "ok":
            row["reason"] = (f"{f.n_points} uncensored point(s) over {f.n_x} distinct d; a fit needs "
                             f"≥ {min_points} points and ≥ 2 distinct d")
        elif f.reason:
            row["reason"] = "m_thr is the same at every point: R² undefined"
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def transition_points(df: pd.DataFrame, thr: pd.DataFrame, lower: float = 0.5) -> pd.DataFrame:
    """Per curve: ratio = m_thr / d and width = m(lower) / m_thr, the factor in m over which accuracy falls from
    80% to ``lower`` (both NaN where a crossing is censored).

    >>> df = pd.DataFrame({"task": "qc", "variant": "base", "d": 8, "seed": 0, "m": [4, 8, 16],
    ...                    "accuracy": [1.0, 0.8, 0.2]})
    >>> transition_points(df, thresholds(df))[["ratio", "width"]].to_dict("records")
    [{'ratio': 1.0, 'width': 1.5}]
    """
    cols = [*CURVE, "ratio", "width"]
    if thr.empty:
        return pd.DataFrame(columns=cols)
    low = {key: crossing(g["m"].to_numpy(), g["accuracy"].to_numpy(), lower) for key, g in df.groupby(CURVE)}
    rows = []
    for r in thr.itertuples(index=False):
        key = tuple(getattr(r, c) for c in CURVE)
        t = low.get(key)
        exact = r.censored == "none"
        width = t.value / r.m_thr if exact and t is not None and t.value is not None and r.m_thr > 0 else math.nan
        rows.append({**dict(zip(CURVE, key)), "ratio": r.m_thr / r.d if exact else math.nan, "width": width})
    return pd.DataFrame(rows, columns=cols)


def ood_summary(df: pd.DataFrame, learned: float = LEVEL) -> pd.DataFrame:
    """Per (task, variant): runs, mean test and OOD accuracy over all runs, and over the runs that learned
    in distribution (test accuracy ≥ ``learned``): n_learned, test_learned, ood_learned, ratio = ood / test."""
    cols = ["task", "variant", "runs", "test_mean", "ood_mean", "n_learned", "test_learned", "ood_learned", "ratio"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (task, variant), g in df.groupby(["task", "variant"], sort=True):
        g = g[g["ood_accuracy"].notna() & g["accuracy"].notna()]
        good = g[g["accuracy"] >= learned]
        test_l = float(good["accuracy"].mean()) if len(good) else math.nan
        ood_l = float(good["ood_accuracy"].mean()) if len(good) else math.nan
        rows.append({"task": task, "variant": variant, "runs": len(g),
                     "test_mean": float(g["accuracy"].mean()) if len(g) else math.nan,
                     "ood_mean": float(g["ood_accuracy"].mean()) if len(g) else math.nan,
                     "n_learned": len(good), "test_learned": test_l, "ood_learned": ood_l,
                     "ratio": ood_l / test_l if len(good) else math.nan})
    return pd.DataFrame(rows, columns=cols)
