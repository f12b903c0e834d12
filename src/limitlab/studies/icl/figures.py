"""The icl report's figures, drawn from the evaluation records (one per (group, set, predictor) curve).

* ``curves_<group>.png`` — error vs number of in-context examples, one panel per family the group's models were
  scored on, every baseline and the Bayes curve; the transformer with its 95% two-level bootstrap band over seeds
  and prompts; the dashed line at 1 is the zero predictor (Garg's normalisation).
* ``ood_<group>.png`` — the same for Garg's out-of-distribution prompt sets (dense linear models).
* ``nnz.png`` — error at a fixed context size vs the number of non-zero weights (Yadlowsky's sparsity sweep).
* ``alpha.png`` — error at the last index vs α of α·linear + (1 − α)·sine.
* ``freq.png`` — error at the last index vs the sine frequency; the pretraining range shaded.
* ``rare.png`` — error of the sine family vs its weight in the pretraining mixture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from limitlab.report import line_with_band, new_figure
from limitlab.studies.icl.evaluate import TRANSFORMER

Record = dict[str, Any]
_STYLE = {TRANSFORMER: {"color": "black", "lw": 2.0}}


def _panel(ax: Any, recs: Sequence[Record], title: str) -> None:
    for r in sorted(recs, key=lambda r: (r["predictor"] != TRANSFORMER, r["predictor"])):
        k = r["index"]
        if r["predictor"] == TRANSFORMER:
            seeds = r.get("seeds", 1)
            line_with_band(ax, k, r["mean"], r["low"], r["high"], label=f"transformer ({seeds} seed(s))",
                           color="black", marker=None)
        else:
            dashed = r["predictor"].startswith("Bayes")
            ax.plot(k, r["mean"], ls="--" if dashed else "-", lw=1.2, label=r["predictor"])
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("in-context examples k")
    ax.set_ylabel("squared error / Var y")
    top = max([1.3] + [min(3.0, np.nanmax(np.asarray(r["mean"], dtype=float))) for r in recs
                       if np.isfinite(np.asarray(r["mean"], dtype=float)).any()])
    ax.set_ylim(-0.02, top * 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def curve_grid(records: Sequence[Record], keys: Sequence[str], title: str, cols: int = 3) -> Any:
    """One panel per evaluation-set key (in order), all predictors of that set."""
    n = max(1, len(keys))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = new_figure(4.2 * cols, 3.3 * rows)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        _panel(ax, [r for r in records if r["key"] == key], key)
    fig.suptitle(title, fontsize=10)
    return fig


def sweep_figure(points: Sequence[Record], x_label: str, title: str, log_x: bool = False,
                 shade: tuple[float, float] | None = None) -> Any:
    """Lines of {series, x, mean, low, high} points: one per series (transformers with bands, baselines plain)."""
    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for series in sorted({p["series"] for p in points}):
        pts = sorted((p for p in points if p["series"] == series), key=lambda p: p["x"])
        x = [p["x"] for p in pts]
        if series.startswith("transformer"):
            line_with_band(ax, x, [p["mean"] for p in pts], [p["low"] for p in pts], [p["high"] for p in pts],
                           label=series)
        else:
            ax.plot(x, [p["mean"] for p in pts], ls="--" if "Bayes" in series else "-", marker=".", label=series)
    if shade is not None:
        ax.axvspan(*shade, color="tab:green", alpha=0.1, label="pretraining range")
    if log_x:
        ax.set_xscale("log")
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set_xlabel(x_label)
    ax.set_ylabel("squared error / Var y")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return fig
