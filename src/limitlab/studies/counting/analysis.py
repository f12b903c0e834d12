"""Counting analysis: the threshold vocabulary m_thr, its spread over seeds, its shape in d, transition sharpness,
MFC against QC, and length generalisation — per seed, so every claim gets an interval over seeds. Pure functions on
pandas DataFrames; the shared layer (:mod:`limitlab.analysis`) does the crossings, intervals and fits.

**m_thr.** For one learning curve (task, variant, d, seed) — test accuracy over the vocabulary grid m — m_thr is
the first m at which accuracy falls to ``level`` (0.8), linearly interpolated between neighbouring grid points
(:func:`limitlab.analysis.first_crossing`). Censoring, never a made-up number: accuracy ≥ level at every m is
**right-censored** (m_thr > max m, label ``'> 16'``); accuracy < level already at the smallest m is
**left-censored** (``'< 3'``). Censored values are counted, shown as bounds, and left out of means and fits.

Example: accuracy 1.0, 0.9, 0.7 at m = 5, 7, 9 crosses 0.8 halfway between 7 and 9, so m_thr = 8.0.

>>> df = pd.DataFrame({"task": "qc", "variant": "base", "d": 8, "seed": 0, "m": [5, 7, 9],
...                    "accuracy": [1.0, 0.9, 0.7]})
>>> row = thresholds(df).iloc[0]
>>> round(float(row["m_thr"]), 9), row["censored"], row["label"]
(8.0, 'none', '8')
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from limitlab.analysis import NONNEGATIVE, Crossing, crossings, first_crossing, summarize_crossings
from limitlab.analysis.fits import aicc_margin, shape_aicc
from limitlab.analysis.frames import column, done

__all__ = ["CURVE", "GROUP", "LEVEL", "crossing", "main_variant", "ood_per_seed", "per_seed_mean", "shape_support",
           "summarize_thresholds", "task_gap", "thresholds", "tidy", "transition_points"]

LEVEL = 0.8
GROUP = ["task", "variant", "d"]  # one m_thr summary per group
CURVE = [*GROUP, "seed"]  # one learning curve (accuracy vs m) per key
TIDY_COLUMNS = ["run_id", "task", "variant", "position", "d", "m", "n", "seed", "accuracy", "ood_accuracy",
                "train_loss"]


def tidy(df: pd.DataFrame, statuses: Sequence[str] = ("done",)) -> pd.DataFrame:
    """The store's ``to_dataframe('counting')`` -> one row per run with the columns the analysis uses:

    ``run_id, task, variant, position, d, m, n, seed, accuracy, ood_accuracy, train_loss`` (NaN where a result is
    missing). Grid coordinates come from the spec, the variant from ``tags.variant`` ('untagged' without one).

    >>> raw = pd.DataFrame({"status": ["done", "failed"], "task.kind": "qc", "model.d_model": 8, "task.m": 3,
    ...                     "task.n": 12, "seed": 0, "result.test/accuracy": [0.5, None]})
    >>> tidy(raw)[["task", "variant", "position", "d", "m", "n", "accuracy"]].to_dict("records")
    [{'task': 'qc', 'variant': 'untagged', 'position': 'learned', 'd': 8, 'm': 3, 'n': 12, 'accuracy': 0.5}]
    """
    if df.empty or "status" not in df:
        return pd.DataFrame(columns=TIDY_COLUMNS)
    df = done(df, statuses)
    if df.empty:
        return pd.DataFrame(columns=TIDY_COLUMNS)
    m = column(df, "task.m").astype(int)
    n = column(df, "task.n").where(column(df, "task.n").notna(), 10 * m)  # task default: n = 10·m
    variant = column(df, "tags.variant", None).where(column(df, "tags.variant", None).notna(), "untagged")
    position = column(df, "model.position", None).where(column(df, "model.position", None).notna(), "learned")
    out = pd.DataFrame({
        "run_id": column(df, "run_id", None), "task": column(df, "task.kind", "qc"), "variant": variant.astype(str),
        "position": position.astype(str), "d": column(df, "model.d_model").astype(int), "m": m,
        "n": n.astype(int), "seed": column(df, "seed", 0).astype(int),
        "accuracy": pd.to_numeric(column(df, "result.test/accuracy"), errors="coerce"),
        "ood_accuracy": pd.to_numeric(column(df, "result.ood_long/accuracy"), errors="coerce"),
        "train_loss": pd.to_numeric(column(df, "result.train_loss"), errors="coerce"),
    })
    return out.reset_index(drop=True)


def main_variant(runs: pd.DataFrame) -> str | None:
    """The variant the claims are judged on: learned positions, 'base' if present, else 'bos', else the first
    learned-position variant by name (None when there is none).

    >>> main_variant(pd.DataFrame({"variant": ["bos_nope", "bos"], "position": ["none", "learned"]}))
    'bos'
    """
    learned = sorted(set(runs.loc[runs["position"] == "learned", "variant"])) if len(runs) else []
    for name in ("base", "bos"):
        if name in learned:
            return name
    return learned[0] if learned else None


def crossing(ms: Sequence[float], accs: Sequence[float], level: float = LEVEL) -> Crossing:
    """The first m at which accuracy falls from ≥ level to < level, linearly interpolated on the grid.

    >>> round(crossing([4, 6, 8, 10], [1.0, 0.95, 0.85, 0.75]).value, 9)   # 0.8 is halfway between m = 8 and 10
    9.0
    >>> crossing([4, 6], [0.9, 0.85]).label, crossing([4, 6], [0.5, 0.1]).label
    ('> 6', '< 4')
    """
    return first_crossing(ms, accs, level, direction="below", floor=0.0)


def thresholds(df: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """One row per curve (task, variant, d, seed): m_thr (NaN when censored), censored, bound, label, recovers,
    points, m_min, m_max. ``df`` needs columns task, variant, d, seed, m, accuracy (as from :func:`tidy`)."""
    cr = crossings(df, CURVE, "m", "accuracy", level)
    return cr.rename(columns={"value": "m_thr", "x_min": "m_min", "x_max": "m_max"})


def summarize_thresholds(thr: pd.DataFrame) -> pd.DataFrame:
    """Per (task, variant, d): seeds, n_exact / n_right / n_left, mean, std, ci_low, ci_high (95% t over the
    uncensored seeds, clipped at 0), clipped, lo, hi (every seed's m_thr lies in [lo, hi]) and a table label."""
    s = summarize_crossings(thr.rename(columns={"m_thr": "value"}), GROUP, bounds=NONNEGATIVE, unit="seed")
    return s.rename(columns={"curves": "seeds"})


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


def per_seed_mean(frame: pd.DataFrame, value: str) -> dict[int, float]:
    """{seed: mean of ``value`` over that seed's rows with a value} (seeds with none are left out).

    >>> per_seed_mean(pd.DataFrame({"seed": [0, 0, 1, 2], "ratio": [1.0, 2.0, 1.5, float("nan")]}), "ratio")
    {0: 1.5, 1: 1.5}
    """
    kept = frame[frame[value].notna()] if len(frame) else frame
    return {int(s): float(g[value].mean()) for s, g in kept.groupby("seed")} if len(kept) else {}


def shape_support(thr: pd.DataFrame, claimed: str, rivals: Sequence[str]) -> tuple[pd.DataFrame, float]:
    """AICc of m_thr(d) for each shape (:func:`limitlab.analysis.fits.shape_aicc`) on the uncensored per-seed
    points of ``thr`` (one task and variant), and the closest rival's AICc minus the claimed shape's.

    >>> thr = pd.DataFrame({"d": [4, 8, 16] * 3, "seed": [0] * 3 + [1] * 3 + [2] * 3, "censored": "none",
    ...                     "m_thr": [5.2, 9.1, 16.8, 4.9, 8.8, 17.1, 5.0, 9.3, 17.0]})
    >>> table, margin = shape_support(thr, "linear", ["constant", "sqrt"]); margin > 2
    True
    """
    ok = thr[thr["censored"] == "none"]
    table = shape_aicc(ok["d"], ok["m_thr"], [claimed, *rivals])
    return table, aicc_margin(table, claimed, rivals)


def task_gap(thr: pd.DataFrame, variant: str, first: str = "qc", second: str = "mfc") -> tuple[dict, int, int]:
    """Paired per (d, seed): m_thr(first) − m_thr(second), averaged over d per seed: ({seed: gap}, pairs used,
    pairs left out because one of the two is censored).

    >>> thr = pd.DataFrame({"task": ["qc", "mfc", "qc", "mfc"], "variant": "bos", "d": 8, "seed": [0, 0, 1, 1],
    ...                     "m_thr": [9.0, 6.0, 8.0, float("nan")], "censored": ["none", "none", "none", "right"]})
    >>> task_gap(thr, "bos")
    ({0: 3.0}, 1, 1)
    """
    t = thr[thr["variant"] == variant]
    a = t[t["task"] == first].set_index(["d", "seed"])
    b = t[t["task"] == second].set_index(["d", "seed"])
    both = a.index.intersection(b.index)
    exact = [k for k in both if a.loc[k, "censored"] == "none" and b.loc[k, "censored"] == "none"]
    gaps = pd.DataFrame([{"seed": k[1], "gap": a.loc[k, "m_thr"] - b.loc[k, "m_thr"]} for k in exact],
                        columns=["seed", "gap"])
    return per_seed_mean(gaps, "gap"), len(exact), len(both) - len(exact)


def ood_per_seed(runs: pd.DataFrame, learned: float = LEVEL) -> pd.DataFrame:
    """Per (task, variant, seed) over the runs that learned in distribution (test accuracy ≥ ``learned``): runs,
    test, ood (mean accuracies) and retained = mean over those runs of ood / test accuracy.

    >>> runs = pd.DataFrame({"task": "qc", "variant": "bos", "seed": [0, 0, 0], "accuracy": [1.0, 0.9, 0.3],
    ...                      "ood_accuracy": [0.1, 0.45, 0.0]})
    >>> ood_per_seed(runs)[["runs", "retained"]].round(3).to_dict("records")
    [{'runs': 2, 'retained': 0.3}]
    """
    cols = ["task", "variant", "seed", "runs", "test", "ood", "retained"]
    g = runs[runs["ood_accuracy"].notna() & (runs["accuracy"] >= learned)] if len(runs) else runs
    if g.empty:
        return pd.DataFrame(columns=cols)
    g = g.assign(retained=g["ood_accuracy"] / g["accuracy"])
    out = g.groupby(["task", "variant", "seed"], sort=True).agg(
        runs=("accuracy", "size"), test=("accuracy", "mean"), ood=("ood_accuracy", "mean"),
        retained=("retained", "mean")).reset_index()
    return out[cols]
