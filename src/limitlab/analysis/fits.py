"""Fits with intervals: a straight line with its slope's t-interval, and any curve with bootstrap intervals.

**Line.** ``y = a·x + b`` by ordinary least squares; R², the slope's standard error
``sqrt(SS_res / (n − 2) / Sxx)`` and its 95% Student-t interval with n − 2 degrees of freedom (the same numbers as
``scipy.stats.linregress``). A line needs ≥ ``min_points`` points (3 by default: with 2 there is no residual and
so no interval) over ≥ 2 distinct x; otherwise ``status`` says 'too few points' and the numbers are None.

**Shape comparison.** Is a line the right shape, or would √x, log x, a constant or a parabola do as well?
:func:`shape_aicc` fits each candidate (least squares on a basis, :data:`BASES`) and scores it by the corrected
Akaike criterion, which charges each extra parameter, so a parabola that only fits noise loses to the line;
:func:`aicc_margin` is the closest rival's AICc minus the claimed shape's (≥ 2: the claimed shape is clearly better
supported). On 3 seeds a leave-one-seed-out error has too few units to decide anything; AICc uses every point.

**Curve.** ``y = f(x; θ)`` by ``scipy.optimize.curve_fit``; the interval of each parameter is the percentile
interval over refits on points resampled with replacement (a case bootstrap: no assumption about the noise, and it
works for a power law, a saturating exponential, anything ``f`` says). Replays where the fit fails or is degenerate
are dropped and counted.

>>> fit = linear_fit([1, 2, 3, 4], [3.1, 4.9, 7.1, 8.9])
>>> round(fit.slope, 3), round(fit.intercept, 3), fit.status, fit.slope_ci[0] < 1.96 < fit.slope_ci[1]
(1.96, 1.1, 'ok', True)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = ["BASES", "CurveFit", "LinearFit", "aicc_margin", "curve_fit", "linear_fit", "linear_fits",
           "power_law_fit", "shape_aicc"]


@dataclass(frozen=True)
class LinearFit:
    """y = slope·x + intercept. Numbers are None when ``status != 'ok'``; ``reason`` says why (or notes a
    degenerate R²)."""

    status: str
    reason: str
    slope: float | None
    intercept: float | None
    r2: float | None
    slope_stderr: float | None
    slope_ci: tuple[float, float] | None
    n_points: int
    n_x: int

    def predict(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        if self.status != "ok":
            raise ValueError(f"no line to predict from: {self.reason}")
        return self.slope * np.asarray(x, dtype=float) + self.intercept


def linear_fit(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, confidence: float = 0.95,
               min_points: int = 3) -> LinearFit:
    """Least-squares line through (x, y) (pairs with a NaN dropped) with R² and the slope's t-interval."""
    if min_points < 3:
        raise ValueError(f"min_points must be ≥ 3 (a slope interval needs a residual), got {min_points}")
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.shape} and {ya.shape}")
    ok = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[ok], ya[ok]
    n, n_x = len(xa), int(np.unique(xa).size)
    if n < min_points or n_x < 2:
        reason = (f"{n} point(s) over {n_x} distinct x; a fit needs ≥ {min_points} points and ≥ 2 distinct x")
        return LinearFit("too few points", reason, None, None, None, None, None, n, n_x)
    a, b = np.polyfit(xa, ya, 1)
    resid = ya - (a * xa + b)
    ss_res, ss_tot = float((resid ** 2).sum()), float(((ya - ya.mean()) ** 2).sum())
    sxx = float(((xa - xa.mean()) ** 2).sum())
    stderr = math.sqrt(ss_res / (n - 2) / sxx)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * stderr
    r2 = (1.0 - ss_res / ss_tot) if ss_tot > 0 else math.nan
    reason = "y is the same at every point: R² undefined" if ss_tot == 0 else ""
    return LinearFit("ok", reason, float(a), float(b), r2, stderr, (float(a) - half, float(a) + half), n, n_x)


def linear_fits(frame: pd.DataFrame, by: Sequence[str], x: str, y: str, confidence: float = 0.95,
                min_points: int = 3) -> pd.DataFrame:
    """:func:`linear_fit` per group of ``by``. Columns: the ``by`` keys, status, reason, slope, intercept, r2,
    slope_stderr, slope_ci_low, slope_ci_high, n_points, n_x (numbers None when the status is not 'ok').

    >>> df = pd.DataFrame({"task": "qc", "d": [8, 16, 32], "m_thr": [10.0, 18.0, 34.0]})
    >>> linear_fits(df, ["task"], "d", "m_thr")[["slope", "intercept", "r2"]].round(6).to_dict("records")
    [{'slope': 1.0, 'intercept': 2.0, 'r2': 1.0}]
    """
    by = list(by)
    cols = [*by, "status", "reason", "slope", "intercept", "r2", "slope_stderr", "slope_ci_low", "slope_ci_high",
            "n_points", "n_x"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in frame.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        f = linear_fit(g[x].to_numpy(dtype=float), g[y].to_numpy(dtype=float), confidence, min_points)
        ci = f.slope_ci or (None, None)
        rows.append({**dict(zip(by, key)), "status": f.status, "reason": f.reason, "slope": f.slope,
                     "intercept": f.intercept, "r2": f.r2, "slope_stderr": f.slope_stderr, "slope_ci_low": ci[0],
                     "slope_ci_high": ci[1], "n_points": f.n_points, "n_x": f.n_x})
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class CurveFit:
    """Parameters of ``y = f(x; θ)`` with percentile bootstrap intervals (``ci[name] = (low, high)``).

    ``n_boot_ok``: replays that converged (the interval rests on these); ``status`` 'ok' or 'failed' (+ reason).
    """

    status: str
    reason: str
    params: dict[str, float] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_points: int = 0
    n_boot_ok: int = 0
    rmse: float | None = None


def _fit_once(f: Callable, x: np.ndarray, y: np.ndarray, p0: Sequence[float] | None, bounds: tuple) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        popt, _ = optimize.curve_fit(f, x, y, p0=p0, bounds=bounds, maxfev=20000)
    return np.asarray(popt, dtype=float)


def curve_fit(f: Callable[..., np.ndarray], x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
              names: Sequence[str], p0: Sequence[float] | None = None,
              bounds: tuple[Sequence[float] | float, Sequence[float] | float] = (-np.inf, np.inf),
              n_boot: int = 500, confidence: float = 0.95, seed: int = 0) -> CurveFit:
    """Fit ``f(x, *θ)`` to the points (NaN pairs dropped) and bootstrap each parameter's interval over the points.

    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(1, 10, 30); y = 2.0 * x ** -0.5 + rng.normal(0, 0.01, 30)
    >>> fit = curve_fit(lambda x, c, k: c * x ** -k, x, y, ["c", "k"], p0=[1, 1], n_boot=100)
    >>> round(fit.params["k"], 2), fit.ci["k"][0] < 0.5 < fit.ci["k"][1]
    (0.5, True)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[ok], ya[ok]
    names = list(names)
    if len(xa) <= len(names):
        return CurveFit("failed", f"{len(xa)} point(s) for {len(names)} parameter(s): need more points than "
                                  "parameters", n_points=len(xa))
    try:
        best = _fit_once(f, xa, ya, p0, bounds)
    except (RuntimeError, ValueError) as e:
        return CurveFit("failed", f"the fit did not converge: {e}", n_points=len(xa))
    if len(best) != len(names):
        raise ValueError(f"f has {len(best)} parameters but names lists {len(names)}: {names}")
    rmse = float(np.sqrt(np.mean((f(xa, *best) - ya) ** 2)))
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        i = rng.integers(0, len(xa), len(xa))
        if np.unique(xa[i]).size < len(names):
            continue
        try:
            reps.append(_fit_once(f, xa[i], ya[i], best, bounds))
        except (RuntimeError, ValueError):
            continue
    reps_a = np.asarray(reps, dtype=float).reshape(-1, len(names))
    reps_a = reps_a[np.isfinite(reps_a).all(axis=1)]
    alpha = (1.0 - confidence) / 2
    ci = {}
    if len(reps_a) >= 2:
        ci = {n: (float(np.quantile(reps_a[:, j], alpha)), float(np.quantile(reps_a[:, j], 1 - alpha)))
              for j, n in enumerate(names)}
    reason = "" if ci else "too few bootstrap replays converged for an interval"
    return CurveFit("ok", reason, dict(zip(names, map(float, best))), ci, len(xa), len(reps_a), rmse)


def power_law_fit(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, confidence: float = 0.95,
                  min_points: int = 3) -> LinearFit:
    """y = c·x^k as a line in log-log: ``slope`` is the exponent k (with its t-interval), ``intercept`` is log c.
    Points with x ≤ 0 or y ≤ 0 cannot be on a power law and are a ValueError.

    >>> fit = power_law_fit([1, 10, 100], [3.0, 0.3, 0.03])
    >>> round(fit.slope, 6), round(math.exp(fit.intercept), 6)
    (-1.0, 3.0)
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if (xa[~np.isnan(xa)] <= 0).any() or (ya[~np.isnan(ya)] <= 0).any():
        raise ValueError("power_law_fit needs x > 0 and y > 0 (it fits a line to log y over log x)")
    return linear_fit(np.log(xa), np.log(ya), confidence, min_points)



BASES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "constant": lambda x: np.ones((len(x), 1)),
    "linear": lambda x: np.column_stack([np.ones(len(x)), x]),
    "sqrt": lambda x: np.column_stack([np.ones(len(x)), np.sqrt(x)]),
    "log": lambda x: np.column_stack([np.ones(len(x)), np.log(x)]),
    "quadratic": lambda x: np.column_stack([np.ones(len(x)), x, x ** 2]),
}  # shape name -> design matrix of x (least squares); log and sqrt need x > 0


def shape_aicc(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
               shapes: Sequence[str] = tuple(BASES)) -> pd.DataFrame:
    """Each shape of :data:`BASES` fitted to (x, y) by least squares and scored by the corrected Akaike
    information criterion (Gaussian errors): ``AICc = n·log(RSS/n) + 2k + 2k(k+1)/(n−k−1)``, k = the shape's
    coefficients + 1 (the noise variance). Lower is better; a difference of 2 or more is the usual mark of
    clearly better support. Rows: shape, params, rss, aicc (NaN where n ≤ k + 1 or fewer distinct x than
    coefficients). NaN pairs are dropped.

    >>> x = [4, 8, 16] * 3; y = [5.2, 9.1, 16.8, 4.9, 8.8, 17.1, 5.0, 9.3, 17.0]     # about d + 1
    >>> t = shape_aicc(x, y, ["linear", "sqrt", "constant"]).set_index("shape")
    >>> bool(t.loc["sqrt", "aicc"] - t.loc["linear", "aicc"] > 2), int(t.loc["linear", "params"])
    (True, 3)
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    unknown = [s for s in shapes if s not in BASES]
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; allowed: {', '.join(BASES)}")
    ok = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[ok], ya[ok]
    n = len(xa)
    rows = []
    for shape in shapes:
        design = BASES[shape](xa)
        k = design.shape[1] + 1
        rss = aicc = math.nan
        if n > k + 1 and np.unique(xa).size >= design.shape[1]:
            coef, *_ = np.linalg.lstsq(design, ya, rcond=None)
            rss = max(float(((design @ coef - ya) ** 2).sum()), 1e-12 * max(float((ya ** 2).sum()), 1e-300))
            aicc = n * math.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
        rows.append({"shape": shape, "params": k, "rss": rss, "aicc": aicc})
    return pd.DataFrame(rows, columns=["shape", "params", "rss", "aicc"])


def aicc_margin(table: pd.DataFrame, claimed: str, rivals: Sequence[str]) -> float:
    """The closest rival's AICc minus the claimed shape's (> 0: the claimed shape is better supported); NaN when
    any of them has no AICc.

    >>> aicc_margin(pd.DataFrame({"shape": ["linear", "sqrt", "constant"], "aicc": [1.0, 4.5, 20.0]}),
    ...             "linear", ["sqrt", "constant"])
    3.5
    """
    a = dict(zip(table["shape"], table["aicc"]))
    vals = [a.get(s, math.nan) for s in (claimed, *rivals)]
    if any(math.isnan(v) for v in vals):
        return math.nan
    return float(min(vals[1:]) - vals[0])
