"""Bootstrap intervals over many units — test prompts, sequences, points of a fit — where resampling is honest.

A bootstrap replays the experiment by drawing the units again with replacement; the spread of a statistic over
the replays estimates its sampling spread, and the percentile interval is the (α/2, 1 − α/2) quantiles of the
replays. That needs many units: use it over the 1,000 prompts of an error curve, not over 2 seeds (see
:mod:`.intervals`). Every function takes a ``seed`` and is deterministic for it.

An error curve — squared error per in-context example index, one row per prompt — gets a band per index:

>>> errors = np.array([[1.0, 0.5], [1.0, 0.7], [1.0, 0.6]])          # 3 prompts × 2 indices
>>> band = bootstrap_band(errors, n_boot=200, seed=0)
>>> band[["x", "mean", "low", "high"]].round(2).to_dict("records")[0]     # every prompt 1.0: no spread
{'x': 0, 'mean': 1.0, 'low': 1.0, 'high': 1.0}
>>> row = band.iloc[1]; bool(0.5 <= row["low"] < row["mean"] < row["high"] <= 0.7)   # inside [min, max]
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["bootstrap_band", "bootstrap_ci", "bootstrap_band_frame"]


def _check(n_boot: int, confidence: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be ≥ 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def bootstrap_ci(values: Sequence[float] | np.ndarray, stat: Callable[[np.ndarray], float] = np.mean,
                 n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(stat of the values, low, high): the percentile bootstrap interval of ``stat`` over the values (NaNs
    dropped). Fewer than 2 values: (stat, NaN, NaN).

    >>> est, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0], seed=1)
    >>> est, 1.0 < lo < 3.0 < hi < 5.0
    (3.0, True)
    """
    _check(n_boot, confidence)
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (float("nan"), float("nan"), float("nan"))
    est = float(stat(x))
    if len(x) < 2:
        return (est, float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    try:  # numpy reductions take an axis: one vectorised call
        reps = np.asarray(stat(x[idx], axis=1), dtype=float)
    except TypeError:
        reps = np.array([stat(x[i]) for i in idx], dtype=float)
    alpha = (1.0 - confidence) / 2
    return (est, float(np.quantile(reps, alpha)), float(np.quantile(reps, 1 - alpha)))


def bootstrap_band(values: np.ndarray, x: Sequence | None = None, n_boot: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """A band for a curve: ``values`` is (units, points) — one row per prompt / sequence, one column per x. Rows
    are resampled together (a prompt's errors at different x are correlated); per x the mean over units and the
    percentile interval of that mean. NaN entries (a unit with no value at that x) are left out of that x's mean.

    Columns: x, mean, low, high, n (units with a value at that x)."""
    _check(n_boot, confidence)
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"values must be 2-D (units, points), got shape {v.shape}")
    xs = list(range(v.shape[1])) if x is None else list(x)
    if len(xs) != v.shape[1]:
        raise ValueError(f"x has {len(xs)} entries but values has {v.shape[1]} columns")
    cols = ["x", "mean", "low", "high", "n"]
    if v.shape[0] == 0:
        return pd.DataFrame(columns=cols)
    counts = (~np.isnan(v)).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(v, axis=0) if v.size else np.full(v.shape[1], np.nan)
    rng = np.random.default_rng(seed)
    units = v.shape[0]
    weights = rng.multinomial(units, np.full(units, 1.0 / units), size=n_boot).astype(float)  # (n_boot, units)
    sums = weights @ np.nan_to_num(v)  # (n_boot, points): each replay's sum over its resampled units
    ns = weights @ (~np.isnan(v)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = sums / ns
    alpha = (1.0 - confidence) / 2
    low = np.array([np.quantile(r[~np.isnan(r)], alpha) if (~np.isnan(r)).any() else np.nan for r in reps.T])
    high = np.array([np.quantile(r[~np.isnan(r)], 1 - alpha) if (~np.isnan(r)).any() else np.nan for r in reps.T])
    single = counts < 2
    low[single], high[single] = np.nan, np.nan
    return pd.DataFrame({"x": xs, "mean": mean, "low": low, "high": high, "n": counts}, columns=cols)


def bootstrap_band_frame(frame: pd.DataFrame, unit: str, x: str, value: str, by: Sequence[str] = (),
                         n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """:func:`bootstrap_band` on a long frame (one row per (unit, x), e.g. from :func:`.frames.long_frame` with
    ``unit='run_id'``), per group of ``by``. Columns: the ``by`` keys, then x (named ``x``), mean, low, high, n."""
    by = list(by)
    out = []
    parts = [((), frame)] if not by else frame.groupby(by, sort=True)
    for key, g in parts:
        key = key if isinstance(key, tuple) else (key,)
        wide = g.pivot_table(index=unit, columns=x, values=value, aggfunc="mean", dropna=False).sort_index(axis=1)
        band = bootstrap_band(wide.to_numpy(dtype=float), list(wide.columns), n_boot, confidence, seed)
        for i, (k, v) in enumerate(zip(by, key)):
            band.insert(i, k, v)
        out.append(band)
    if not out:
        return pd.DataFrame(columns=[*by, x, "mean", "low", "high", "n"])
    return pd.concat(out, ignore_index=True).rename(columns={"x": x})
