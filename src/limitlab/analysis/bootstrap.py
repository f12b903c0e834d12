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

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["bootstrap_band", "bootstrap_ci", "bootstrap_band_frame", "two_level_band", "two_level_ci",
           "two_level_replays"]


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


# --- two levels: seeds and prompts ---------------------------------------------------------------------------

def _group_means(v: np.ndarray, unit_weights: np.ndarray) -> np.ndarray:
    """Per replay and group, the weighted mean over units of ``v`` (groups, units, points) -> (n_boot, groups,
    points); NaN entries are left out, a group with no value at a point gives NaN there."""
    ok = (~np.isnan(v)).astype(float)
    if unit_weights.ndim == 2:  # one unit draw shared by every group: (n_boot, units)
        sums = np.einsum("bu,gux->bgx", unit_weights, np.nan_to_num(v))
        ns = np.einsum("bu,gux->bgx", unit_weights, ok)
    else:  # a draw per group: (n_boot, groups, units)
        sums = np.einsum("bgu,gux->bgx", unit_weights, np.nan_to_num(v))
        ns = np.einsum("bgu,gux->bgx", unit_weights, ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / ns


def _over_groups(per_group: np.ndarray, group_weights: np.ndarray) -> np.ndarray:
    """(n_boot, groups, points) group means, (n_boot, groups) weights -> (n_boot, points), NaN groups left out."""
    w = group_weights[:, :, None] * ~np.isnan(per_group)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * np.nan_to_num(per_group)).sum(1) / w.sum(1)


def two_level_replays(values: np.ndarray, n_boot: int = 1000, seed: int = 0, shared_units: bool = True
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the mean curve (points,), its replays over groups (n_boot, points), its replays over units (n_boot,
    points)) — the two levels of a two-level bootstrap, drawn apart.

    ``values`` is (groups, units, points) — e.g. seeds × prompts × in-context index — or (groups, units) for one
    point. The statistic is the mean over groups of each group's mean over units (NaN entries, a unit with no
    value at that point, left out). Group replays draw the groups (seeds) again with the units fixed; unit
    replays draw the units (prompts) with the groups fixed: one draw shared by every group when
    ``shared_units`` (a crossed design: every seed's model scored on the same prompts, so a prompt's difficulty
    moves every seed together), else a draw within each group (nested units).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be ≥ 1, got {n_boot}")
    v = np.asarray(values, dtype=float)
    if v.ndim == 2:
        v = v[:, :, None]
    if v.ndim != 3 or v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError(f"values must be (groups, units[, points]) with at least one of each, got {v.shape}")
    g, u, _ = v.shape
    rng = np.random.default_rng(seed)
    fixed_units = _group_means(v, np.ones((1, u)))  # (1, groups, points)
    mean = _over_groups(fixed_units, np.ones((1, g)))[0]
    group_w = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(float)  # (n_boot, groups)
    by_groups = _over_groups(np.broadcast_to(fixed_units, (n_boot, *fixed_units.shape[1:])), group_w)
    size = n_boot if shared_units else (n_boot, g)
    unit_w = rng.multinomial(u, np.full(u, 1.0 / u), size=size).astype(float)
    by_units = _over_groups(_group_means(v, unit_w), np.ones((n_boot, g)))
    return mean, by_groups, by_units


def _two_level_interval(est: np.ndarray, by_groups: np.ndarray, by_units: np.ndarray, groups: int, units: int,
                        confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """est ± t(df)·√(s_g² + s_u²): each level's bootstrap variance (the group level's corrected by g/(g−1), the
    bootstrap's bias for a mean over g), Welch–Satterthwaite degrees of freedom."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a point with no value: NaN
        var_g = np.nanvar(by_groups, axis=0) * (groups / (groups - 1) if groups > 1 else 0.0)
        var_u = np.nanvar(by_units, axis=0)
        total = var_g + var_u
        df = total ** 2 / (np.where(groups > 1, var_g ** 2 / max(groups - 1, 1), 0.0) + var_u ** 2 / max(units - 1, 1))
    df = np.where(np.isfinite(df) & (df > 0), df, max(units - 1, 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * np.sqrt(total)
    return est - half, est + half


def two_level_band(values: np.ndarray, x: Sequence | None = None, n_boot: int = 1000, confidence: float = 0.95,
                   seed: int = 0, shared_units: bool = True,
                   bounds: tuple[float, float] = (-np.inf, np.inf)) -> pd.DataFrame:
    """A band for a curve measured on several seeds and many prompts: ``values`` (groups, units, points); per
    point the mean over groups of the mean over units, and its interval from both levels (:func:`two_level_ci`),
    clipped to ``bounds`` (the metric's range). Columns: x, mean, low, high, groups (with a value at that x),
    units.

    >>> rng = np.random.default_rng(0)
    >>> errors = rng.random((3, 200, 2)) + np.array([0.0, 0.1, 0.2])[:, None, None]  # 3 seeds, 200 prompts
    >>> band = two_level_band(errors, bounds=(0, np.inf))
    >>> row = band.iloc[0]; bool(row["low"] < row["mean"] < row["high"]), int(row["groups"]), int(row["units"])
    (True, 3, 200)
    >>> prompts_only = bootstrap_band(errors.mean(0)).iloc[0]          # seeds averaged first: far narrower
    >>> bool(row["high"] - row["low"] > 2 * (prompts_only["high"] - prompts_only["low"]))
    True
    >>> two_level_band(np.zeros((2, 5, 1)), bounds=(0, 1))[["mean", "low", "high"]].to_numpy().tolist()
    [[0.0, 0.0, 0.0]]
    """
    _check(n_boot, confidence)
    mean, by_groups, by_units = two_level_replays(values, n_boot, seed, shared_units)
    v = np.asarray(values, dtype=float)
    v = v[:, :, None] if v.ndim == 2 else v
    xs = list(range(v.shape[2])) if x is None else list(x)
    if len(xs) != v.shape[2]:
        raise ValueError(f"x has {len(xs)} entries but values has {v.shape[2]} points")
    low, high = _two_level_interval(mean, by_groups, by_units, v.shape[0], v.shape[1], confidence)
    lo_b, hi_b = bounds
    groups = (~np.isnan(v)).any(axis=1).sum(axis=0)
    return pd.DataFrame({"x": xs, "mean": np.clip(mean, lo_b, hi_b), "low": np.clip(low, lo_b, hi_b),
                         "high": np.clip(high, lo_b, hi_b), "groups": groups, "units": v.shape[1]})


def two_level_ci(values: np.ndarray, stat: Callable[[np.ndarray], np.ndarray] | None = None, n_boot: int = 1000,
                 confidence: float = 0.95, seed: int = 0, shared_units: bool = True,
                 bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float, float]:
    """(estimate, low, high) of ``stat`` of the mean curve of ``values`` (groups, units, points) — seeds ×
    prompts × k — with an interval that carries both levels' uncertainty, clipped to ``bounds``.

    Each level is bootstrapped on its own (:func:`two_level_replays`): the spread of ``stat`` over seed replays
    (prompts fixed, its variance corrected by g/(g−1)) and over prompt replays (seeds fixed). The interval is
    estimate ± t·√(s_seeds² + s_prompts²) with Welch–Satterthwaite degrees of freedom — with 3 seeds and a
    seed-dominated spread that is the t-interval over seeds (t = 4.3), with many prompts and a prompt-dominated
    spread a normal one. Why not percentiles of one joint resample: over 3 seeds they come down to [min, max] of
    the seeds, which covers the mean about 75% of the time (see :mod:`.intervals`). ``stat`` reduces the last
    axis of a curve (``(..., points) -> (...)``; default the mean over points): the largest gap over k is
    ``lambda c: np.nanmax(c, -1)``.

    >>> gaps = np.stack([np.full((50, 3), s) for s in (0.1, 0.2, 0.3)])     # 3 seeds, no spread over prompts
    >>> est, lo, hi = two_level_ci(gaps, stat=lambda c: np.nanmax(c, -1))
    >>> round(est, 3), abs((hi - est) - 4.303 * 0.1 / 3 ** 0.5) < 0.01     # the t-interval over the 3 seeds
    (0.2, True)
    """
    _check(n_boot, confidence)
    mean, by_groups, by_units = two_level_replays(values, n_boot, seed, shared_units)
    f = stat or (lambda c: np.nanmean(c, -1))
    v = np.asarray(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        est = np.asarray(float(f(mean)))
        low, high = _two_level_interval(est, np.asarray(f(by_groups), dtype=float),
                                        np.asarray(f(by_units), dtype=float), v.shape[0], v.shape[1], confidence)
    lo_b, hi_b = bounds
    return (float(np.clip(est, lo_b, hi_b)), float(np.clip(low, lo_b, hi_b)), float(np.clip(high, lo_b, hi_b)))
