"""Error against training steps: the trend that says whether an effect missing at a CPU budget would appear.

A run trained with ``train.eval_every`` keeps, at every evaluation, its squared error per in-context index on the
trainer's own test prompts (``test/error_by_index``, sums over ``eval_size`` prompts at the curriculum's end). For
linear families (dense and sparse, noiseless) least squares has a closed-form expected error, so the largest gap
to it over k needs no baseline run:

    E[(x·w − x·ŵ_LS)²] / Var y = max(0, d − k) / d        (x, w Gaussian; ŵ_LS the minimum-norm solution)

because the minimum-norm solution recovers w's projection on the span of the k context points and misses the
other d − k directions, each carrying an equal share of Var y (for sparse w too, by symmetry of x). That gap,
max over k ≥ 1, is the quantity of Garg's "≈ least squares" claim; its trend over steps on a log axis, against the
claim's threshold and the paper's value, shows how far a recipe is and how fast it closes. Other families show
their error at the last index (no closed form).

>>> least_squares_error(d=5, n=8).tolist()
[1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from limitlab.report.figures import new_figure
from limitlab.report.sections import ReportContext, Section
from limitlab.spec import RunSpec
from limitlab.studies.icl.claims import DENSE_LS
from limitlab.studies.icl.results import find_groups

LINEAR_TASKS = ("icl_linear",)
PAPER_STEPS = 500_000  # Garg's budget, where the gap is ≈ 0 (their figures; no number is printed)


def least_squares_error(d: int, n: int) -> np.ndarray:
    """Expected normalised error of noiseless minimum-norm least squares at k = 0 … n−1 context points."""
    k = np.arange(n)
    return np.maximum(0, d - k) / d


def trend(store: Any, spec: RunSpec) -> pd.DataFrame:
    """One row per evaluation of a run: step, the normalised error per index, and the quantity drawn."""
    task = spec.task
    rows = []
    for record in store.metrics(spec.run_id):
        errors = record.get("test/error_by_index")
        if errors is None:
            continue
        e = np.asarray(errors, dtype=float) / task.normaliser()
        if task.name in LINEAR_TASKS:
            value = float(np.max(e[1:] - least_squares_error(task.d, len(e))[1:]))
        else:
            value = float(e[-1])
        rows.append({"step": int(record["step"]), "seed": spec.seed, "value": value})
    return pd.DataFrame(rows)


def _summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds per step (min and max: with 3 seeds an interval would be mostly t)."""
    return frame.groupby("step")["value"].agg(["mean", "min", "max", "count"]).reset_index()


def analyze(ctx: ReportContext) -> Section:
    sec = Section("training", "Error against training steps")
    curves: dict[str, pd.DataFrame] = {}
    linear: set[str] = set()
    for g in find_groups(ctx):
        frames = [trend(ctx.store, s) for s in g.specs]
        frames = [f for f in frames if len(f)]
        if not frames:
            continue
        curves[g.label] = _summary(pd.concat(frames))
        if g.specs[0].task.name in LINEAR_TASKS:
            linear.add(g.label)
    if not curves:
        sec.paragraph("No run kept evaluations during training (train.eval_every = 0); the repro preset does.")
        return sec
    sec.paragraph(
        "At every evaluation during training, each run's error on the trainer's own test prompts (the curriculum's "
        "end). Linear families: the largest gap to least squares' closed-form expected error over k ≥ 1 — the "
        f"quantity of '{DENSE_LS.id}', whose threshold is {DENSE_LS.test.threshold:g}; Garg trains "
        f"{PAPER_STEPS:,} steps and draws the gap at ≈ 0. Other families: the error at the last index. Lines are "
        "means over seeds, shaded from the lowest to the highest seed. The trainer's test set is small "
        "(train.eval_size prompts), so single points are noisy; the claims use the report's own evaluation.")
    fig = new_figure(11, 4)
    axes = fig.subplots(1, 2)
    for ax, chosen, ylabel in ((axes[0], sorted(linear), "largest gap to least squares over k"),
                               (axes[1], sorted(set(curves) - linear), "error at the last index")):
        for label in chosen:
            c = curves[label]
            ax.plot(c["step"], c["mean"], marker=".", label=label)
            ax.fill_between(c["step"], c["min"], c["max"], alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        if ax is axes[0]:
            ax.axhline(DENSE_LS.test.threshold, color="red", ls="--", lw=1, label="claim threshold")
            ax.plot([PAPER_STEPS], [0.0], "k*", ms=10, label="Garg (500k steps, ≈ 0)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    sec.figure("training.png", fig, "Error against training steps (log axis), mean over seeds with the seeds' "
               "range; left: the dense-claim quantity with its threshold and Garg's value; right: other families.")
    rows = []
    for label, c in curves.items():
        last = c.iloc[-1]
        rows.append({"pretraining": label, "step": int(last["step"]), "seeds": int(last["count"]),
                     "at the end": f"{last['mean']:.3f} [{last['min']:.3f}, {last['max']:.3f}]",
                     "halfway": f"{c.iloc[len(c) // 2]['mean']:.3f} (step {int(c.iloc[len(c) // 2]['step'])})",
                     "quantity": "largest gap to LS" if label in linear else "error at the last index"})
    sec.table(rows, caption="The quantity at the last evaluation (mean [lowest, highest seed]) and halfway.")
    sec.results["curves"] = {k: v.to_dict("list") for k, v in curves.items()}
    return sec
