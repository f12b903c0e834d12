"""scikit-learn reference models, fit per prompt and per prefix — slow by design.

These loop in Python over prompts × prefixes (one scikit-learn fit each, P·(n−1) fits a call), as Garg et al.'s
evaluation does. The greedy tree and gradient boosting have no batched counterpart here; the least-squares and
Lasso loops are the references the batched baselines are checked and timed against
(``benchmarks/icl_baselines.py``). Gradient boosting is scikit-learn's ``GradientBoostingRegressor`` with its
defaults (100 trees of depth 3, learning rate 0.1) standing in for Garg's ``XGBRegressor()``: xgboost is not a
dependency of this project.

At i = 0 every model predicts 0; the tree models fit even one example (they then predict its y).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso as SkLasso
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeRegressor

from limitlab.studies.icl.baselines.base import check_inputs


def per_prefix(make_model, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Fit ``make_model()`` on every prefix of every prompt and predict the next query (slow: P·(n−1) fits)."""
    check_inputs(xs, ys)
    x = xs.detach().double().cpu().numpy()
    y = ys.detach().double().cpu().numpy()
    p, n, _ = x.shape
    out = np.zeros((p, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for a in range(p):
            for i in range(1, n):
                model = make_model().fit(x[a, :i], y[a, :i])
                out[a, i] = model.predict(x[a, i:i + 1])[0]
    return torch.from_numpy(out).to(device=ys.device, dtype=ys.dtype)


@dataclass(frozen=True)
class SklearnLeastSquares:
    """``LinearRegression(fit_intercept=False)`` per prompt and prefix (min-norm lstsq). Slow: the reference."""

    @property
    def name(self) -> str:
        return "sklearn_least_squares"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return per_prefix(lambda: LinearRegression(fit_intercept=False), xs, ys)


@dataclass(frozen=True)
class SklearnLasso:
    """``Lasso(alpha, fit_intercept=False)`` per prompt and prefix (Garg's Lasso). Slow: the reference."""

    alpha: float = 0.01
    tol: float = 1e-4
    max_iter: int = 100_000

    @property
    def name(self) -> str:
        return f"sklearn_lasso_{self.alpha:g}"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return per_prefix(lambda: SkLasso(alpha=self.alpha, fit_intercept=False, tol=self.tol,
                                          max_iter=self.max_iter), xs, ys)


@dataclass(frozen=True)
class DecisionTree:
    """Greedy regression tree (``DecisionTreeRegressor``, max_depth 4 as Garg; None = unlimited). Slow: loops."""

    max_depth: int | None = 4
    seed: int = 0

    @property
    def name(self) -> str:
        return f"tree_depth_{self.max_depth}" if self.max_depth is not None else "tree"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return per_prefix(lambda: DecisionTreeRegressor(max_depth=self.max_depth, random_state=self.seed), xs, ys)


@dataclass(frozen=True)
class GradientBoosting:
    """Gradient-boosted trees (``GradientBoostingRegressor``, stand-in for Garg's XGBoost). Slow: loops."""

    n_estimators: int = 100
    max_depth: int = 3
    learning_rate: float = 0.1
    seed: int = 0

    @property
    def name(self) -> str:
        return "gradient_boosting"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return per_prefix(lambda: GradientBoostingRegressor(
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            random_state=self.seed), xs, ys)
