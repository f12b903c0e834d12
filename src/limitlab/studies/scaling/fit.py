"""Scaling-law fits done the careful way (Hoffmann et al. 2022, Approach 3, as re-done by Besiroglu et al. 2024).

Every law here is a sum of an irreducible term and power laws, fitted in log space through a log-sum-exp:

    L(x)    = E + A / x^α                   log L = LSE(e, a − α·log x)                    (L(N), L(D), L(C))
    L(N, D) = E + A / N^α + B / D^β         log L = LSE(e, a − α·log N, b − β·log D)

with e = log E, a = log A, b = log B, so every parameter is unconstrained and E, A, B stay positive. The
objective is the **sum** (not the mean) of Huber_δ(predicted log L − observed log L) with δ = 1e-3, minimised by
L-BFGS (scipy) with an analytic gradient. **Multi-start**: the objective is evaluated on the grid
e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25}, α, β ∈ {0, 0.5, …, 2} (4,500 points for L(N, D)) and L-BFGS is run
from the ``n_starts`` best grid points (default 12; running it from all 4,500 gives the same optimum on the
test surfaces and costs ~400× more); the best end point wins. **Bootstrap**: resample the points with
replacement, refit (from the full-data optimum and the best grid point of the full data) and take percentile
intervals of every parameter and every derived quantity. Parameters are returned and stored **unrounded**.

Compute-optimal allocation of a fitted L(N, D) under C = 6·N·D: G = (αA / (βB))^(1/(α+β)),
N_opt(C) = G·(C/6)^(β/(α+β)), D_opt = C / (6·N_opt); E does not move the optimum.

>>> import numpy as np
>>> N = np.repeat([1e3, 3e3, 1e4, 3e4], 3); D = np.tile([1e5, 1e6, 1e7], 4)
>>> L = 1.0 + 400 / N**0.5 + 900 / D**0.4
>>> fit = fit_chinchilla(N, D, L)
>>> round(fit.params["E"], 3), round(fit.params["alpha"], 3), round(fit.params["beta"], 3)
(1.0, 0.5, 0.4)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits  # installed with scikit-learn

HUBER_DELTA = 1e-3
E_GRID = np.arange(-1.0, 1.01, 0.5)
A_GRID = np.arange(0.0, 25.01, 5.0)
EXP_GRID = np.arange(0.0, 2.01, 0.5)
BOOT_GRID_STARTS = 1  # a bootstrap refit starts from the full-data optimum and the best grid points of the full data


@dataclass
class Fit:
    """A fitted law. ``params``: E, A, alpha (and B, beta for L(N, D)), unrounded; ``theta``: the raw
    (e, a, α[, b, β]) vector; ``ci``: {name: [low, high]} from the bootstrap (empty without one)."""

    kind: str  # "power" (one variable) or "chinchilla" (N and D)
    theta: np.ndarray
    objective: float
    n_points: int
    params: dict[str, float] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    boot_thetas: np.ndarray | None = None  # (n_boot, P) refitted thetas

    def predict(self, *xs: Any) -> np.ndarray:
        """L at the given x (power) or (N, D) (chinchilla)."""
        return np.exp(_pred_log(self.theta, _logs(xs)))

    def predict_interval(self, *xs: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the prediction over the bootstrap refits (NaN without a bootstrap)."""
        logs = _logs(xs)
        if self.boot_thetas is None or not len(self.boot_thetas):
            nan = np.full(logs.shape[0], math.nan)
            return nan, nan
        with np.errstate(over="ignore", invalid="ignore"):
            preds = np.exp(np.stack([_pred_log(t, logs) for t in self.boot_thetas]))  # (n_boot, n)
        q = (1 - confidence) / 2
        return np.quantile(preds, q, axis=0), np.quantile(preds, 1 - q, axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params), "ci95": dict(self.ci), "objective": self.objective,
                "n_points": self.n_points, "huber_delta": HUBER_DELTA,
                "n_boot": 0 if self.boot_thetas is None else len(self.boot_thetas)}


def _logs(xs: tuple) -> np.ndarray:
    cols = [_positive_log(x) for x in xs]
    return np.stack(np.broadcast_arrays(*cols), axis=1)  # (n, F)


def _positive_log(x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = arr[~(np.isfinite(arr) & (arr > 0))][:3]
        raise ValueError(f"losses and sizes must be finite and positive; got {bad.tolist()}")
    return np.log(arr)


def _terms(theta: np.ndarray, logs: np.ndarray) -> np.ndarray:
    """(n, 1 + F) log-terms: e, then a_f − α_f·log x_f; theta = (e, a_1, α_1, a_2, α_2, ...)."""
    e = np.full((logs.shape[0], 1), theta[0])
    coef = theta[1:].reshape(-1, 2)  # (F, 2): (a_f, α_f)
    return np.concatenate([e, coef[:, 0] - coef[:, 1] * logs], axis=1)


def _lse(u: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(log Σ exp u, softmax u) along ``axis`` (plain numpy: scipy's versions cost ~20× more per call here)."""
    top = u.max(axis=axis, keepdims=True)
    ex = np.exp(u - top)
    total = ex.sum(axis=axis, keepdims=True)
    return np.squeeze(top + np.log(total), axis), ex / total


def _pred_log(theta: np.ndarray, logs: np.ndarray) -> np.ndarray:
    return _lse(_terms(theta, logs), 1)[0]


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _objective(theta: np.ndarray, logs: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Σ w·Huber(pred − log L) and its gradient. ``w``: bootstrap multiplicities (1 without a bootstrap)."""
    u = _terms(theta, logs)  # (n, T)
    pred, s = _lse(u, 1)  # (n,), (n, T): s = d pred / d term
    r = pred - y
    dr = np.clip(r, -HUBER_DELTA, HUBER_DELTA) * w  # Huber'(r), weighted
    grad = np.empty_like(theta)
    grad[0] = dr @ s[:, 0]
    grad[1::2] = dr @ s[:, 1:]
    grad[2::2] = -(dr[:, None] * s[:, 1:] * logs).sum(0)
    return float((w * huber(r)).sum()), grad


def _grid(n_features: int) -> np.ndarray:
    """(G, P) starting points: every combination of the e, a_f, α_f grids."""
    axes = [E_GRID] + [A_GRID, EXP_GRID] * n_features
    return np.array(list(itertools.product(*axes)))


def _grid_objective(grid: np.ndarray, logs: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Objective at every grid point, vectorised: (G,)."""
    e = np.broadcast_to(grid[:, :1, None], (grid.shape[0], 1, logs.shape[0]))
    coef = grid[:, 1:].reshape(grid.shape[0], -1, 2)  # (G, F, 2)
    terms = coef[:, :, :1] - coef[:, :, 1:] * logs.T[None]  # (G, F, n)
    pred = _lse(np.concatenate([e, terms], axis=1), 1)[0]  # (G, n)
    return (w * huber(pred - y)).sum(1)


def _minimise(starts: np.ndarray, logs: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    best, best_f = starts[0], math.inf
    for start in starts:
        res = optimize.minimize(_objective, start, args=(logs, y, w), jac=True, method="L-BFGS-B",
                                options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 30})
        if np.all(np.isfinite(res.x)) and res.fun < best_f:
            best, best_f = res.x, float(res.fun)
    return best, best_f


def _fit(kind: str, xs: tuple, L: Any, n_starts: int, n_boot: int, seed: int, confidence: float) -> Fit:
    # One BLAS thread: these problems are tiny, and on a busy CPU threaded BLAS inside L-BFGS spun for ~9 ms per
    # iteration (a 200 s smoke report on a loaded 2-core machine, against seconds with one thread).
    with threadpool_limits(limits=1):
        return _fit_unthreaded(kind, xs, L, n_starts, n_boot, seed, confidence)


def _fit_unthreaded(kind: str, xs: tuple, L: Any, n_starts: int, n_boot: int, seed: int, confidence: float) -> Fit:
    logs = _logs(xs)
    y = _positive_log(L)
    if len(y) != logs.shape[0]:
        raise ValueError(f"{len(y)} losses for {logs.shape[0]} points; give one loss per point")
    n_params = 1 + 2 * logs.shape[1]
    if len(y) < n_params:
        raise ValueError(f"{len(y)} points cannot determine a {n_params}-parameter law; give at least {n_params}")
    if n_starts < 1:
        raise ValueError(f"n_starts must be ≥ 1, got {n_starts}")
    grid = _grid(logs.shape[1])
    ones = np.ones_like(y)
    order = np.argsort(_grid_objective(grid, logs, y, ones))
    theta, obj = _minimise(grid[order[:n_starts]], logs, y, ones)
    fit = Fit(kind, theta, obj, len(y))
    boots = []
    rng = np.random.default_rng(seed)
    boot_starts = np.vstack([theta[None], grid[order[:BOOT_GRID_STARTS]]])
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(np.float64)  # multiplicities
        boots.append(_minimise(boot_starts, logs, y, w)[0])
    fit.boot_thetas = np.array(boots) if boots else None
    fit.params = _named(kind, theta)
    if boots:
        q = (1 - confidence) / 2
        named = [_named(kind, t) for t in boots]
        with np.errstate(invalid="ignore"):  # refits that ran off to infinity sit in the tails
            fit.ci = {k: [float(np.quantile([p[k] for p in named], q)),
                          float(np.quantile([p[k] for p in named], 1 - q))] for k in fit.params}
    return fit


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf  # a degenerate bootstrap refit may run off to infinity


def _named(kind: str, theta: np.ndarray) -> dict[str, float]:
    out = {"E": _exp(theta[0]), "A": _exp(theta[1]), "alpha": float(theta[2])}
    if kind == "chinchilla":
        out.update({"B": _exp(theta[3]), "beta": float(theta[4])})
        out["a_opt"] = out["beta"] / (out["alpha"] + out["beta"]) if out["alpha"] + out["beta"] else math.nan
    return out


def fit_power_law(x: Any, L: Any, n_starts: int = 12, n_boot: int = 0, seed: int = 0,
                  confidence: float = 0.95) -> Fit:
    """Fit L(x) = E + A / x^α (x = N, D or compute C; L(C) = a·C^b + c with a = A, b = −α, c = E)."""
    return _fit("power", (x,), L, n_starts, n_boot, seed, confidence)


def fit_chinchilla(N: Any, D: Any, L: Any, n_starts: int = 12, n_boot: int = 0, seed: int = 0,
                   confidence: float = 0.95) -> Fit:
    """Fit L(N, D) = E + A / N^α + B / D^β (Hoffmann et al. 2022, Approach 3)."""
    return _fit("chinchilla", (N, D), L, n_starts, n_boot, seed, confidence)


def compute_optimal(fit: Fit, C: Any, flops_per_param_token: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """(N_opt, D_opt) minimising the fitted L(N, D) subject to C = k·N·D (k = 6 by default)."""
    if fit.kind != "chinchilla":
        raise ValueError(f"compute_optimal needs an L(N, D) fit, got a {fit.kind!r} fit")
    p = fit.params
    a, b = p["alpha"], p["beta"]
    if a <= 0 or b <= 0:
        nan = np.full(np.shape(C), math.nan)
        return nan, nan
    G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    budget = np.asarray(C, dtype=np.float64) / flops_per_param_token
    n_opt = G * budget ** (b / (a + b))
    return n_opt, budget / n_opt


# ---- the obvious alternatives to a power law in compute, for the model comparison of the laws experiment -----------

@dataclass
class Curve:
    """A fitted one-variable law with ``predict(x)``: the alternatives :func:`fit_log_linear` and
    :func:`fit_exponential` (``params`` unrounded; ``error`` says why there is no fit)."""

    kind: str
    params: dict[str, float]
    x_ref: float = 1.0
    error: str = ""

    def predict(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        p = self.params
        if self.error:
            return np.full(x.shape, math.nan)
        if self.kind == "log-linear":
            return p["a"] - p["b"] * np.log(x)
        return p["E"] + p["A"] * np.exp(-p["k"] * x / self.x_ref)


def fit_log_linear(x: Any, L: Any) -> Curve:
    """L = a − b·log x by least squares: the straight line on a log-x plot, with no floor.

    >>> round(fit_log_linear([1, 10, 100], [3.0, 2.0, 1.0]).params["b"], 4)
    0.4343
    """
    lx, y = np.log(np.asarray(x, dtype=np.float64)), np.asarray(L, dtype=np.float64)
    if len(y) < 3:
        return Curve("log-linear", {}, error=f"{len(y)} points for a 2-parameter line; need 3")
    slope, intercept = np.polyfit(lx, y, 1)
    return Curve("log-linear", {"a": float(intercept), "b": float(-slope)})


def fit_exponential(x: Any, L: Any) -> Curve:
    """L = E + A·exp(−k·x/x_max) (E, A, k ≥ 0, x_max the largest x fitted), least squares on log L from a few
    starting rates k ∈ {0.3, 3, 30, 300}; the best end point wins.

    >>> x = np.array([1.0, 2, 4, 8, 16]); fit = fit_exponential(x, 1 + 2 * np.exp(-4 * x / 16))
    >>> round(fit.params["k"], 3), round(fit.params["E"], 3)
    (4.0, 1.0)
    """
    xa, y = np.asarray(x, dtype=np.float64), np.asarray(L, dtype=np.float64)
    if len(y) < 4:
        return Curve("exponential", {}, error=f"{len(y)} points for a 3-parameter law; need 4")
    ref = float(xa.max())

    def log_law(u: np.ndarray, E: float, A: float, k: float) -> np.ndarray:
        return np.log(E + A * np.exp(-k * u))

    best, best_sse = None, math.inf
    for k0 in (0.3, 3.0, 30.0, 300.0):
        p0 = [float(y.min()) * 0.9, max(float(y.max() - y.min()), 1e-3) * math.exp(min(k0 * xa.min() / ref, 50)),
              k0]
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                popt, _ = optimize.curve_fit(log_law, xa / ref, np.log(y), p0=p0, bounds=(1e-9, np.inf), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((log_law(xa / ref, *popt) - np.log(y)) ** 2))
        if sse < best_sse:
            best, best_sse = popt, sse
    if best is None:
        return Curve("exponential", {}, error="the fit did not converge")
    return Curve("exponential", {"E": float(best[0]), "A": float(best[1]), "k": float(best[2])}, ref)
