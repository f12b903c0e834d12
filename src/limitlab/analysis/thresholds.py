"""Censored threshold crossings: where a curve first falls below (or rises above) a level.

For a curve y(x) on a grid — test accuracy over vocabulary size m, error over the number of in-context examples,
loss over training steps — the crossing is the first pair of neighbouring grid points with y(x_i) ≥ level >
y(x_{i+1}) (``direction='below'``), linearly interpolated between them. Censoring, never a made-up number:

* y stays on its starting side at every x: **right-censored**, the crossing is beyond the largest x (``'> 24'``);
* y is already past the level at the smallest x: **left-censored**, the crossing is below the smallest x
  (``'< 4'``); the value lies in (floor, min x), floor 0 by default (x is a size or a count).

``direction='above'`` mirrors it: the first x where y rises from ≤ level to > level (e.g. accuracy over steps).
Over seeds, :func:`summarize_crossings` averages only the uncensored crossings, counts the censored ones, and
gives the interval every seed's crossing lies in (lo, hi) for censoring-aware comparisons.

>>> c = first_crossing([5, 7, 9], [1.0, 0.9, 0.7], level=0.8)   # 0.8 is halfway between 7 and 9
>>> round(c.value, 9), c.censored, c.label
(8.0, 'none', '8')
>>> first_crossing([5, 7, 9], [0.9, 0.85, 0.82], 0.8).label, first_crossing([5, 7], [0.5, 0.1], 0.8).label
('> 9', '< 5')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from limitlab.analysis.intervals import NONNEGATIVE, mean_ci

__all__ = ["Crossing", "crossings", "first_crossing", "summarize_crossings"]

CROSSING_COLUMNS = ["value", "censored", "bound", "label", "recovers", "points", "x_min", "x_max"]


@dataclass(frozen=True)
class Crossing:
    """Where one curve crosses a level. ``value`` is None unless ``censored == 'none'``.

    censored: 'none' (interpolated), 'right' (never crosses: value > bound = max x), 'left' (already past the
    level at the smallest x: floor < value < bound = min x), or 'no data'. ``recovers``: the curve comes back to
    its starting side at a larger x after the first crossing (non-monotone; the first crossing is reported).
    """

    value: float | None
    censored: str
    bound: float | None = None
    recovers: bool = False
    floor: float = 0.0

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
        """The values the crossing can take: [v, v] exact, (max x, ∞) right-, (floor, min x) left-censored."""
        if self.censored == "none":
            return (self.value, self.value)
        if self.censored == "right":
            return (self.bound, math.inf)
        if self.censored == "left":
            return (self.floor, self.bound)
        return (math.nan, math.nan)


def first_crossing(x: Sequence[float], y: Sequence[float], level: float, direction: str = "below",
                   floor: float = 0.0) -> Crossing:
    """The first x at which y crosses ``level`` (see the module docstring). Repeated x are averaged, NaN y dropped.

    >>> round(first_crossing([4, 6, 8, 10], [1.0, 0.95, 0.85, 0.75], 0.8).value, 9)
    9.0
    >>> first_crossing([0, 100, 200], [0.1, 0.5, 0.9], 0.7, direction="above").value   # accuracy over steps
    150.0
    """
    if direction not in ("below", "above"):
        raise ValueError(f"direction must be 'below' or 'above', got {direction!r}")
    s = pd.Series(np.asarray(y, dtype=float), index=np.asarray(x, dtype=float)).dropna()
    if s.empty:
        return Crossing(None, "no data", floor=floor)
    s = s.groupby(level=0).mean().sort_index()
    xs, a = s.index.to_numpy(), s.to_numpy()
    sign = 1.0 if direction == "below" else -1.0  # 'above' is 'below' on −y
    a, lev = sign * a, sign * level
    if a[0] < lev:
        return Crossing(None, "left", float(xs[0]), floor=floor)
    past = np.flatnonzero(a < lev)
    if past.size == 0:
        return Crossing(None, "right", float(xs[-1]), floor=floor)
    j = int(past[0])  # a[j-1] >= lev > a[j]
    x0, x1, a0, a1 = xs[j - 1], xs[j], a[j - 1], a[j]
    value = float(x0 + (a0 - lev) * (x1 - x0) / (a0 - a1))
    return Crossing(value, "none", None, bool((a[j:] >= lev).any()), floor)


def crossings(frame: pd.DataFrame, by: Sequence[str], x: str, y: str, level: float, direction: str = "below",
              floor: float = 0.0) -> pd.DataFrame:
    """One row per curve (group of ``by``): the ``by`` keys, value (NaN when censored), censored, bound, label,
    recovers, points (distinct x with a value), x_min, x_max.

    >>> df = pd.DataFrame({"d": 8, "seed": [0, 0, 1, 1], "m": [3, 6, 3, 6], "acc": [1.0, 0.6, 0.5, 0.2]})
    >>> crossings(df, ["d", "seed"], "m", "acc", 0.8)[["seed", "value", "censored", "label"]].to_dict("records")
    [{'seed': 0, 'value': 4.5, 'censored': 'none', 'label': '4.5'}, {'seed': 1, 'value': nan, 'censored': 'left', \
'label': '< 3'}]
    """
    by = list(by)
    cols = [*by, *CROSSING_COLUMNS]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in frame.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        c = first_crossing(g[x].to_numpy(), g[y].to_numpy(), level, direction, floor)
        xs = g.loc[g[y].notna(), x]
        rows.append({**dict(zip(by, key)), "value": np.nan if c.value is None else c.value, "censored": c.censored,
                     "bound": np.nan if c.bound is None else c.bound, "label": c.label, "recovers": c.recovers,
                     "points": int(xs.nunique()), "x_min": float(xs.min()) if len(xs) else np.nan,
                     "x_max": float(xs.max()) if len(xs) else np.nan})
    return pd.DataFrame(rows, columns=cols)


def _plural(k: int, unit: str) -> str:
    return f"{k} {unit}{'s' * (k != 1)}"


def summary_label(mean: float, n_exact: int, low: float, high: float, clipped: bool, n_right: int, n_left: int,
                  right_bound: float, left_bound: float, total: int, unit: str = "seed") -> str:
    """'8 ± 1.2 (3 seeds)', '8 [0, 21] (2 seeds)' when the interval was clipped to the range, then the censored
    curves: '1 seed > 24', or '> 24' alone when every curve is censored the same way."""
    parts = []
    if n_exact:
        if n_exact > 1 and clipped:
            spread = f" [{low:.3g}, {high:.3g}]"
        elif n_exact > 1:
            spread = f" ± {(high - low) / 2:.3g}"
        else:
            spread = ""
        parts.append(f"{mean:.3g}{spread} ({_plural(n_exact, unit)})")
    for k, sign, bound in ((n_right, ">", right_bound), (n_left, "<", left_bound)):
        if k:
            who = f"all {unit}s" if k == total and total > 1 else _plural(k, unit)
            parts.append(f"{sign} {bound:g}" if k == total else f"{who} {sign} {bound:g}")
    return "; ".join(parts) or "—"


def summarize_crossings(cr: pd.DataFrame, by: Sequence[str], bounds: tuple[float, float] = NONNEGATIVE,
                        confidence: float = 0.95, unit: str = "seed", floor: float = 0.0) -> pd.DataFrame:
    """Per group of ``by`` over the curves of :func:`crossings`: curves, n_exact, n_right, n_left; mean, std,
    ci_low, ci_high, clipped of the *uncensored* values (the t-interval clipped to ``bounds``, see
    :mod:`.intervals`); lo, hi — the interval every curve's crossing lies in (censored ones by their bounds); label.

    >>> cr = pd.DataFrame({"d": 8, "value": [7.0, 9.0, float("nan")], "censored": ["none", "none", "right"],
    ...                    "bound": [float("nan"), float("nan"), 24.0]})
    >>> summarize_crossings(cr, ["d"])[["mean", "ci_low", "clipped", "label"]].round(2).to_dict("records")
    [{'mean': 8.0, 'ci_low': 0.0, 'clipped': True, 'label': '8 [0, 20.7] (2 seeds); 1 seed > 24'}]
    """
    by = list(by)
    cols = [*by, "curves", "n_exact", "n_right", "n_left", "mean", "std", "ci_low", "ci_high", "clipped", "lo", "hi",
            "label"]
    if cr.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in cr.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        exact = g.loc[g["censored"] == "none", "value"].to_numpy(dtype=float)
        right, left = g[g["censored"] == "right"], g[g["censored"] == "left"]
        iv = mean_ci(exact, bounds, confidence)
        lows = [*exact, *right["bound"], *([floor] * len(left))]
        highs = [*exact, *([math.inf] * len(right)), *left["bound"]]
        label = summary_label(iv.mean, len(exact), iv.low, iv.high, iv.clipped, len(right), len(left),
                              min(right["bound"]) if len(right) else math.nan,
                              max(left["bound"]) if len(left) else math.nan, len(g), unit)
        rows.append({**dict(zip(by, key)), "curves": len(g), "n_exact": len(exact), "n_right": len(right),
                     "n_left": len(left), "mean": iv.mean, "std": iv.std, "ci_low": iv.low, "ci_high": iv.high,
                     "clipped": iv.clipped, "lo": min(lows) if lows else math.nan,
                     "hi": max(highs) if highs else math.nan, "label": label})
    return pd.DataFrame(rows, columns=cols)
