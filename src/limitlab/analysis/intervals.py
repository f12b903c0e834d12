"""Aggregating over seeds: mean, std, n and a 95% confidence interval that stays inside the metric's range.

**The interval.** With the 2–3 seeds a CPU study can afford, every interval is wide; the honest thing is to show
that width, not to hide it with a method that looks narrow. The mean's interval is the Student-t interval
``mean ± t(0.975, n−1) · std / √n`` (with 2 seeds t = 12.7: very wide, and rightly so), **clipped to the metric's
range** — accuracy to [0, 1], a threshold or a loss to [0, ∞) — and flagged ``clipped=True`` when the clip bit,
so a table can say so. Fewer than 2 values: no interval (NaN), never a made-up one.

Why not a bootstrap over seeds: with 2 seeds the bootstrap distribution of the mean has three points and its
percentile interval is [min, max] — far too narrow (it covers the true mean about half the time). Why not a
Wilson interval: it bounds a binomial proportion from its count of trials; the spread between seeds is not a
binomial count (each seed's accuracy already averages hundreds of test sequences), so :func:`wilson` is offered
for one run's accuracy over its test sequences, not for seeds. A bootstrap is right over many units — prompts or
sequences, see :mod:`.bootstrap`.

>>> iv = mean_ci([0.9, 0.99], bounds=(0.0, 1.0))     # 2 seeds: the t-interval would reach 1.52
>>> round(iv.mean, 3), round(iv.low, 3), iv.high, iv.clipped
(0.945, 0.373, 1.0, True)
>>> mean_ci([7.0]).low                                 # 1 value: no interval
nan
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["NONNEGATIVE", "PROPORTION", "UNBOUNDED", "Interval", "aggregate", "mean_ci", "t_interval", "wilson"]

PROPORTION = (0.0, 1.0)  # accuracy, a fraction of sequences
NONNEGATIVE = (0.0, math.inf)  # a loss, a squared error, a threshold m_thr
UNBOUNDED = (-math.inf, math.inf)


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values with its ``confidence`` interval [low, high] (NaN when n < 2).

    ``clipped``: the t-interval reached outside ``bounds`` and was cut back to them.
    """

    mean: float
    std: float
    n: int
    low: float
    high: float
    clipped: bool = False
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        """(high − low) / 2: the ± of an unclipped interval."""
        return (self.high - self.low) / 2


def _check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    return lo, hi


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(confidence)


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(std, low, high): sample std (ddof=1) and the unclipped Student-t interval of the mean; NaNs for < 2 values.

    >>> std, lo, hi = t_interval([7.0, 8.0, 9.0])
    >>> std, round(lo, 4), round(hi, 4)                  # 8 ± 4.303 / √3
    (1.0, 5.5159, 10.4841)
    """
    x = np.asarray(values, dtype=float)
    k = len(x)
    if k < 2:
        return (math.nan, math.nan, math.nan)
    mean, std = float(x.mean()), float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + _check_confidence(confidence) / 2, k - 1)) * std / math.sqrt(k)
    return (std, mean - half, mean + half)


def mean_ci(values: Sequence[float] | np.ndarray, bounds: tuple[float, float] = UNBOUNDED,
            confidence: float = 0.95) -> Interval:
    """Mean, std and the t-interval of ``values`` (NaNs dropped), clipped to ``bounds``; see the module docstring.

    A value outside ``bounds`` is a ValueError (the metric is not what the bounds say)."""
    lo_b, hi_b = _check_bounds(bounds)
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if ((x < lo_b) | (x > hi_b)).any():
        bad = x[(x < lo_b) | (x > hi_b)][0]
        raise ValueError(f"value {bad:g} is outside the metric's range [{lo_b:g}, {hi_b:g}]")
    if len(x) == 0:
        return Interval(math.nan, math.nan, 0, math.nan, math.nan, False, confidence)
    std, low, high = t_interval(x, confidence)
    clipped = bool(len(x) >= 2 and (low < lo_b or high > hi_b))
    if len(x) >= 2:
        low, high = max(low, lo_b), min(high, hi_b)
    return Interval(float(x.mean()), std, len(x), low, high, clipped, confidence)


def wilson(successes: float, trials: float, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (e.g. one run's accuracy over its test sequences).

    >>> lo, hi = wilson(0, 10)                 # 0 of 10 correct: the interval is not [0, 0]
    >>> lo, round(hi, 4)
    (0.0, 0.2775)
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"wilson needs 0 ≤ successes ≤ trials and trials > 0, got {successes}/{trials}")
    z = float(stats.norm.ppf(0.5 + _check_confidence(confidence) / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends where rounding would miss them
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def aggregate(frame: pd.DataFrame, by: Sequence[str], value: str, bounds: tuple[float, float] = UNBOUNDED,
              confidence: float = 0.95) -> pd.DataFrame:
    """Per group of ``by``: ``n, mean, std, ci_low, ci_high, clipped`` of ``value`` (NaNs dropped), e.g. accuracy
    over seeds per (d, m). Groups whose values are all NaN get n = 0 and NaN statistics; rows whose ``by`` key is
    NaN are left out (pandas' groupby).

    >>> df = pd.DataFrame({"d": [8, 8, 16], "acc": [0.5, 0.7, 0.9]})
    >>> aggregate(df, ["d"], "acc", bounds=PROPORTION)[["d", "n", "mean", "ci_low", "clipped"]].round(3).to_dict(
    ...     "records")
    [{'d': 8, 'n': 2, 'mean': 0.6, 'ci_low': 0.0, 'clipped': True}, {'d': 16, 'n': 1, 'mean': 0.9, 'ci_low': nan, \
'clipped': False}]
    """
    by = list(by)
    cols = [*by, "n", "mean", "std", "ci_low", "ci_high", "clipped"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in frame.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        iv = mean_ci(pd.to_numeric(g[value], errors="coerce").to_numpy(dtype=float), bounds, confidence)
        rows.append({**dict(zip(by, key)), "n": iv.n, "mean": iv.mean, "std": iv.std, "ci_low": iv.low,
                     "ci_high": iv.high, "clipped": iv.clipped})
    return pd.DataFrame(rows, columns=cols)
