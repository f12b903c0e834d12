"""What the emergence, grokking, flipped and scratchpad experiments share: an experiment's finished runs with their
specs, their evaluation curves from the store, and curves averaged over seeds with 95% bands.

A run evaluated every ``train.eval_every`` steps leaves records ``{"step", "test/<metric>", "train/<metric>", ...}``
in the store (``RunStore.metrics``); :func:`eval_curves` turns them into one row per (run, evaluation step), with the
columns a caller derives from the run's spec. :func:`seed_band` then averages a metric over seeds at each step
(t-interval clipped to the metric's range), which :func:`plot_band` draws as a line with a shaded band:

>>> import pandas as pd
>>> curve = pd.DataFrame({"d": [8] * 6, "seed": [0, 1, 2] * 2, "step": [100] * 3 + [200] * 3,
...                       "test/accuracy": [0.1, 0.2, 0.3, 0.8, 0.9, 1.0]})
>>> band = seed_band(curve, ["d"], "step", "test/accuracy")
>>> band[["d", "step", "n", "mean"]].round(3).to_dict("records")
[{'d': 8, 'step': 100, 'n': 3, 'mean': 0.2}, {'d': 8, 'step': 200, 'n': 3, 'mean': 0.9}]
>>> float(band["high"].iloc[1])                                   # clipped to accuracy's range
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from limitlab.analysis.intervals import PROPORTION, aggregate
from limitlab.report.figures import line_with_band
from limitlab.spec import RunSpec

__all__ = ["eval_curves", "experiment_runs", "first_step", "plot_band", "seed_band"]


def experiment_runs(ctx: Any, experiment: str) -> tuple[pd.DataFrame, dict[str, RunSpec]]:
    """The finished runs tagged ``experiment`` (the context's frame) and {run_id: its RunSpec}."""
    runs = ctx.tagged(experiment=experiment)
    return runs, {str(rid): ctx.store.spec(str(rid)) for rid in runs["run_id"]} if len(runs) else {}


def eval_curves(store: Any, specs: dict[str, RunSpec],
                columns: Callable[[RunSpec], dict[str, Any]] = lambda spec: {}) -> pd.DataFrame:
    """One row per (run, evaluation step): ``run_id``, ``seed``, ``columns(spec)``, ``step`` and every metric of
    the evaluation record (``test/accuracy``, ``train/accuracy``, ...); the last record of a step wins (a resumed
    run may repeat one). Training-loss records are left out."""
    rows = []
    for run_id, spec in specs.items():
        base = {"run_id": run_id, "seed": spec.seed, **columns(spec)}
        for rec in store.metrics(run_id):
            if any(k.startswith("test/") for k in rec):
                rows.append({**base, **rec})
    if not rows:
        return pd.DataFrame(columns=["run_id", "seed", "step"])
    frame = pd.DataFrame(rows).drop_duplicates(["run_id", "step"], keep="last")
    return frame.sort_values(["run_id", "step"]).reset_index(drop=True)


def seed_band(frame: pd.DataFrame, by: Sequence[str], x: str, value: str,
              bounds: tuple[float, float] = PROPORTION) -> pd.DataFrame:
    """Per (``by``…, ``x``): ``n`` seeds, ``mean`` of ``value`` and its 95% interval ``low``/``high`` over seeds
    (:func:`limitlab.analysis.aggregate`, clipped to ``bounds``)."""
    band = aggregate(frame, [*by, x], value, bounds)
    return band.rename(columns={"ci_low": "low", "ci_high": "high"})


def plot_band(ax: Any, band: pd.DataFrame, x: str, label: str | None = None, color: str | None = None,
              ls: str = "-") -> None:
    """One seed band (a frame of :func:`seed_band`, one group) as a line with its shaded 95% interval."""
    band = band.sort_values(x)
    line_with_band(ax, band[x], band["mean"], band["low"], band["high"], label=label, color=color, marker=None)
    if ls != "-":
        ax.lines[-1].set_linestyle(ls)


def first_step(steps: Sequence[float], values: Sequence[float], level: float) -> float:
    """The first step whose value is ≥ ``level`` (NaN if never).

    >>> first_step([100, 200, 300], [0.1, 0.95, 0.99], 0.9), first_step([100], [0.1], 0.9)
    (200.0, nan)
    """
    for s, v in zip(steps, values):
        if v >= level:
            return float(s)
    return float(np.nan)
