"""Counting analysis: the threshold vocabulary m_thr, its spread over seeds, the linear fit m_thr = a·d + b,
transition sharpness and length generalisation. Pure functions on pandas DataFrames. The agree / disagree / not
measured verdicts on the paper's claims (and the MFC vs QC comparison) live in :mod:`.claims` and are re-exported
here.

**m_thr.** For one learning curve (task, variant, d, seed) — test accuracy over the vocabulary grid m — m_thr is
the first m at which accuracy falls to ``level`` (0.8): the first pair of neighbouring grid points with
acc(m_i) ≥ level > acc(m_{i+1}), linearly interpolated between them. Censoring, never a made-up number:

* accuracy ≥ level at every m: **right-censored**, m_thr > max m (label ``'> 24'``);
* accuracy < level already at the smallest m: **left-censored**, m_thr < min m (label ``'< 4'``).

Example: accuracy 1.0, 0.9, 0.7 at m = 5, 7, 9 crosses 0.8 halfway between 7 and 9, so m_thr = 8.0.

**Spread.** Over seeds: mean, std (ddof=1) and a 95% Student-t interval of the *uncensored* seeds; censored
seeds are counted and shown next to the mean (``'8.0 ± 0.4; 1 seed > 24'``), never averaged in.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

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


# ----------------------------------------------------------------------------------------------------------------
# from the store's DataFrame to a tidy frame


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
    df = df[df["status"].isin(list(statuses))]
    if df.empty:
        return pd.DataFrame(columns=cols)

    def col(name: str, default: Any = np.nan) -> pd.Series:
        return df[name] if name in df else pd.Series(default, index=df.index)

    m = col("task.m").astype(int)
    n = col("task.n").where(col("task.n").notna(), 10 * m)  # task default: n = 10·m
    variant = col("tags.variant", None).where(col("tags.variant", None).notna(), "untagged")
    out = pd.DataFrame({
        "run_id": col("run_id", None), "task": col("task.kind", "qc"), "variant": variant.astype(str),
        "d": col("model.d_model").astype(int), "m": m, "n": n.astype(int), "seed": col("seed", 0).astype(int),
        "accuracy": pd.to_numeric(col("result.test/accuracy"), errors="coerce"),
        "ood_accuracy": pd.to_numeric(col("result.ood_long/accuracy"), errors="coerce"),
        "train_loss": pd.to_numeric(col("result.train_loss"), errors="coerce"),
    })
    return out.reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# one curve


@dataclass(frozen=True)
class Threshold:
    """Where one accuracy curve falls to a level. ``value`` is None unless ``censored == 'none'``.

    censored: 'none' (interpolated crossing), 'right' (never falls: value > bound = max m), 'left' (already below
    at the smallest m: value < bound = min m), or 'no data'. ``recovers``: accuracy climbs back to ≥ level at a
    larger m after the first crossing (a non-monotone curve; the first crossing is still the one reported).
    """

    value: float | None
    censored: str
    bound: float | None = None
    recovers: bool = False

    @property
    def label(self) -> str:
        if self.censored == "none":
            return f"{self.value:.3g}"
        if self.censored == "right":
            return f"> {self.bound:g}"
        if self.censored == "left":
            return f"< {self.bound:g}"
        return "—"

    @property
    def interval(self) -> tuple[float, float]:
        """The values m_thr can take: [v, v] exact, (max m, ∞) right-, (0, min m) left-censored, (nan, nan)."""
        if self.censored == "none":
            return (self.value, self.value)
        if self.censored == "right":
            return (self.bound, math.inf)
        if self.censored == "left":
            return (0.0, self.bound)
        return (math.nan, math.nan)


def crossing(ms: Sequence[float], accs: Sequence[float], level: float = LEVEL) -> Threshold:
    """The first m at which accuracy falls from ≥ level to < level, linearly interpolated on the grid.

    Repeated m values are averaged; NaN accuracies are dropped.

    >>> round(crossing([4, 6, 8, 10], [1.0, 0.95, 0.85, 0.75]).value, 9)   # 0.8 is halfway between m = 8 and 10
    9.0
    >>> crossing([4, 6], [0.9, 0.85]).label, crossing([4, 6], [0.5, 0.1]).label
    ('> 6', '< 4')
    """
    s = pd.Series(np.asarray(accs, dtype=float), index=np.asarray(ms, dtype=float)).dropna()
    if s.empty:
        return Threshold(None, "no data")
    s = s.groupby(level=0).mean().sort_index()
    m, a = s.index.to_numpy(), s.to_numpy()
    if a[0] < level:
        return Threshold(None, "left", float(m[0]))
    below = np.flatnonzero(a < level)
    if below.size == 0:
        return Threshold(None, "right", float(m[-1]))
    j = int(below[0])  # a[j-1] >= level > a[j]
    m0, m1, a0, a1 = m[j - 1], m[j], a[j - 1], a[j]
    value = float(m0 + (a0 - level) * (m1 - m0) / (a0 - a1))
    return Threshold(value, "none", None, bool((a[j:] >= level).any()))


# ----------------------------------------------------------------------------------------------------------------
# per curve, per group


def thresholds(df: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """One row per curve (task, variant, d, seed): m_thr, censored, bound, label, recovers, points, m_min, m_max.

    ``df`` needs columns task, variant, d, seed, m, accuracy (as from :func:`tidy`). m_thr is NaN when censored.

    >>> df = pd.DataFrame({"task": "qc", "variant": "base", "d": 8, "seed": 0, "m": [3, 6],
    ...                    "accuracy": [0.5, 0.2]})
    >>> thresholds(df)[["m_thr", "censored", "bound", "label"]].to_dict("records")
    [{'m_thr': nan, 'censored': 'left', 'bound': 3.0, 'label': '< 3'}]
    """
    cols = [*CURVE, "m_thr", "censored", "bound", "label", "recovers", "points", "m_min", "m_max"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in df.groupby(CURVE, sort=True):
        t = crossing(g["m"].to_numpy(), g["accuracy"].to_numpy(), level)
        ms = g.loc[g["accuracy"].notna(), "m"]
        rows.append({**dict(zip(CURVE, key)), "m_thr": np.nan if t.value is None else t.value,
                     "censored": t.censored, "bound": np.nan if t.bound is None else t.bound, "label": t.label,
                     "recovers": t.recovers, "points": int(ms.nunique()),
                     "m_min": float(ms.min()) if len(ms) else np.nan, "m_max": float(ms.max()) if len(ms) else np.nan})
    return pd.DataFrame(rows, columns=cols)


def _t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(std, lo, hi): sample std (ddof=1) and the Student-t interval of the mean; NaNs for fewer than 2 values."""
    k = len(values)
    if k < 2:
        return (math.nan, math.nan, math.nan)
    mean, std = float(values.mean()), float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, k - 1)) * std / math.sqrt(k)
    return (std, mean - half, mean + half)


def summarize_thresholds(thr: pd.DataFrame) -> pd.DataFrame:
    """Per (task, variant, d): seeds, n_exact / n_right / n_left censored, mean, std, ci_low, ci_high (95% t) of
    the uncensored m_thr, the interval [lo, hi] every seed's m_thr lies in, and a label for tables.

    >>> thr = pd.DataFrame({"task": "qc", "variant": "base", "d": 8, "seed": [0, 1, 2],
    ...                     "m_thr": [7.0, 9.0, float("nan")], "censored": ["none", "none", "right"],
    ...                     "bound": [float("nan"), float("nan"), 24.0]})
    >>> summarize_thresholds(thr)[["mean", "n_exact", "n_right", "label"]].to_dict("records")
    [{'mean': 8.0, 'n_exact': 2, 'n_right': 1, 'label': '8 ± 12.7 (2 seeds); 1 seed > 24'}]
    """
    cols = [*GROUP, "seeds", "n_exact", "n_right", "n_left", "mean", "std", "ci_low", "ci_high", "lo", "hi",
            "label"]
    if thr.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in thr.groupby(GROUP, sort=True):
        exact = g.loc[g["censored"] == "none", "m_thr"].to_numpy(dtype=float)
        right, left = g[g["censored"] == "right"], g[g["censored"] == "left"]
        mean = float(exact.mean()) if len(exact) else math.nan
        std, lo_ci, hi_ci = _t_interval(exact)
        lows = [*exact, *right["bound"], *([0.0] * len(left))]
        highs = [*exact, *([math.inf] * len(right)), *left["bound"]]
        parts = []
        if len(exact):
            spread = f" ± {(hi_ci - lo_ci) / 2:.3g}" if len(exact) > 1 else ""
            parts.append(f"{mean:.3g}{spread} ({len(exact)} seed{'s' * (len(exact) != 1)})")
        for frame, sign, pick in ((right, ">", min), (left, "<", max)):
            if len(frame):
                who = "all seeds" if len(frame) == len(g) and len(g) > 1 else (
                    f"{len(frame)} seed{'s' * (len(frame) != 1)}")
                bound = pick(frame["bound"])
                parts.append(f"{sign} {bound:g}" if len(frame) == len(g) else f"{who} {sign} {bound:g}")
        rows.append({**dict(zip(GROUP, key)), "seeds": len(g), "n_exact": len(exact), "n_right": len(right),
                     "n_left": len(left), "mean": mean, "std": std, "ci_low": lo_ci, "ci_high": hi_ci,
                     "lo": min(lows) if lows else math.nan, "hi": max(highs) if highs else math.nan,
                     "label": "; ".join(parts) or "—"})
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------------------------------------------
# linear fit


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
        x, y = ok["d"].to_numpy(dtype=float), ok["m_thr"].to_numpy(dtype=float)
        n_cens = int((g["censored"] != "none").sum())
        row: dict[str, Any] = {**dict(zip(by, key)), "status": "ok", "reason": "", "a": None, "b": None, "r2": None,
                               "a_stderr": None, "a_ci_low": None, "a_ci_high": None, "n_points": len(x),
                               "n_d": int(np.unique(x).size), "n_censored": n_cens,
                               "censored": f"{n_cens} censored point(s) excluded from the fit"}
        if len(x) < min_points or np.unique(x).size < 2:
            row["status"] = "too few points"
            row["reason"] = (f"{len(x)} uncensored point(s) over {np.unique(x).size} distinct d; a fit needs "
                             f"≥ {min_points} points and ≥ 2 distinct d")
            rows.append(row)
            continue
        a, b = np.polyfit(x, y, 1)
        resid = y - (a * x + b)
        ss_res, ss_tot = float((resid ** 2).sum()), float(((y - y.mean()) ** 2).sum())
        sxx = float(((x - x.mean()) ** 2).sum())
        stderr = math.sqrt(ss_res / (len(x) - 2) / sxx) if len(x) > 2 else math.nan
        half = float(stats.t.ppf(0.975, len(x) - 2)) * stderr if len(x) > 2 else math.nan
        row.update(a=float(a), b=float(b), r2=(1.0 - ss_res / ss_tot) if ss_tot > 0 else math.nan,
                   a_stderr=stderr, a_ci_low=float(a) - half, a_ci_high=float(a) + half)
        if ss_tot == 0:
            row["reason"] = "m_thr is the same at every point: R² undefined"
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------------------------------------------
# transition sharpness, OOD


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
