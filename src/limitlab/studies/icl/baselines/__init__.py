"""Baselines of the in-context regression study: what a learner that sees the same prompt would predict.

Every baseline is a callable ``predict(xs (P, n, d), ys (P, n)) -> (P, n)`` whose column i predicts y_i from the
first i examples and the query x_i (:mod:`.base`). Construct one from the registry by name and settings::

    BASELINES["lasso"](alpha=0.01)(xs, ys)

Modules: :mod:`.linear` (zero, least squares, ridge, averaging, k-NN), :mod:`.lasso` (batched coordinate
descent), :mod:`.bayes` (exact posterior means: dense, sparse by support enumeration, sinusoid frequency grid,
family mixtures), :mod:`.nn` (stacked 2-layer networks fit by Adam), :mod:`.reference` (scikit-learn models fit
per prompt and prefix: greedy tree, gradient boosting, and the slow least-squares / Lasso references).
"""

from __future__ import annotations

from collections.abc import Callable

from limitlab.studies.icl.baselines.base import Baseline
from limitlab.studies.icl.baselines.bayes import DenseBayes, MixtureBayes, SineGridBayes, SparseBayes, from_task
from limitlab.studies.icl.baselines.lasso import Lasso
from limitlab.studies.icl.baselines.linear import KNN, Averaging, LeastSquares, Ridge, Zero
from limitlab.studies.icl.baselines.nn import TwoLayerNN
from limitlab.studies.icl.baselines.reference import (
    DecisionTree,
    GradientBoosting,
    SklearnLasso,
    SklearnLeastSquares,
)

BASELINES: dict[str, Callable[..., Baseline]] = {
    "zero": Zero,
    "least_squares": LeastSquares,
    "ridge": Ridge,
    "averaging": Averaging,
    "knn": KNN,
    "lasso": Lasso,
    "nn_gd": TwoLayerNN,
    "tree": DecisionTree,
    "gradient_boosting": GradientBoosting,
    "sklearn_least_squares": SklearnLeastSquares,
    "sklearn_lasso": SklearnLasso,
    "bayes_dense": DenseBayes,
    "bayes_sparse": SparseBayes,
    "bayes_sine": SineGridBayes,
    "bayes_mixture": MixtureBayes,
}


def make_baseline(name: str, **settings) -> Baseline:
    """``BASELINES[name](**settings)``, with a one-line error for an unknown name."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; allowed: {', '.join(BASELINES)}")
    return BASELINES[name](**settings)


__all__ = ["BASELINES", "KNN", "Averaging", "Baseline", "DecisionTree", "DenseBayes", "GradientBoosting", "Lasso",
           "LeastSquares", "MixtureBayes", "Ridge", "SineGridBayes", "SklearnLasso", "SklearnLeastSquares",
           "SparseBayes", "TwoLayerNN", "Zero", "from_task", "make_baseline"]
