"""The counting report's figures: matplotlib ``Figure`` objects (Agg canvas, no pyplot state), one PNG each.

``heatmap_<task>_<variant>.png`` accuracy over d × m; ``mthr_<task>.png`` m_thr vs d with a band over seeds;
``ood.png`` / ``ood_by_m.png`` length generalisation; ``constructed_<task>.png`` hand-wired vs trained accuracy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from limitlab.analysis import PROPORTION, aggregate
from limitlab.report.figures import COLORS, heatmap, line_with_band, new_figure
from limitlab.studies.counting.analysis import LEVEL

__all__ = ["constructed_figure", "heatmap_figure", "mthr_figure", "ood_by_m_figure", "ood_figure"]


def _heatmap(ax: Any, pivot: pd.DataFrame, title: str, marks: dict[int, float] | None = None) -> Any:
    """Accuracy over d (rows) × m (columns), plus the line m = d (white dashes) and the mean m_thr per d (red ×)
    where they fall inside the m grid."""
    im = heatmap(ax, pivot, title, xlabel="vocabulary m", ylabel="embedding d")
    ms, ds = list(pivot.columns), list(pivot.index)
    idx = np.arange(len(ms), dtype=float)
    for i, d in enumerate(ds):
        if len(ms) > 1 and ms[0] <= d <= ms[-1]:
            x = float(np.interp(d, ms, idx))
            ax.plot([x, x], [i - 0.45, i + 0.45], color="white", lw=1.5, ls="--")
        mark = (marks or {}).get(d, math.nan)
        if len(ms) > 1 and not math.isnan(mark) and ms[0] <= mark <= ms[-1]:
            ax.plot(float(np.interp(mark, ms, idx)), i, marker="x", color="red", ms=7, mew=2)
    return im


def heatmap_figure(runs: pd.DataFrame, summary: pd.DataFrame, task: str, variant: str) -> Any:
    """Mean test accuracy over d × m for one (task, variant); ``runs`` holds that pair's runs."""
    pivot = runs.groupby(["d", "m"])["accuracy"].mean().unstack("m").sort_index().sort_index(axis=1)
    s = summary[(summary["task"] == task) & (summary["variant"] == variant)]
    marks = {int(r["d"]): float(r["mean"]) for r in s.to_dict("records")}
    fig = new_figure(min(2.0 + 0.45 * pivot.shape[1], 13), 1.6 + 0.4 * pivot.shape[0])
    ax = fig.subplots()
    im = _heatmap(ax, pivot, f"{task.upper()} / {variant}: test accuracy, mean over seeds", marks)
    fig.colorbar(im, ax=ax, label="accuracy")
    return fig


def mthr_figure(runs: pd.DataFrame, thr: pd.DataFrame, summary: pd.DataFrame, task: str) -> Any:
    """m_thr vs d per variant: seeds (dots), mean with its 95% band over seeds, censored seeds (triangles at their
    bound), and the line m = d."""
    fig = new_figure(6.4, 4.4)
    ax = fig.subplots()
    ds = sorted(runs.loc[runs["task"] == task, "d"].unique())
    t_all = thr[thr["task"] == task]
    for k, variant in enumerate(sorted(t_all["variant"].unique())):
        c = COLORS[k % len(COLORS)]
        t = t_all[t_all["variant"] == variant]
        ex = t[t["censored"] == "none"]
        ax.scatter(ex["d"], ex["m_thr"], color=c, alpha=0.35, s=14)
        s = summary[(summary["task"] == task) & (summary["variant"] == variant) & (summary["n_exact"] > 0)]
        if len(s):
            line_with_band(ax, s["d"], s["mean"], s["ci_low"], s["ci_high"], label=f"{variant}: mean, 95% band",
                           color=c)
        for cens, marker, text in (("right", "^", "> max m"), ("left", "v", "< min m")):
            cc = t[t["censored"] == cens]
            if len(cc):
                ax.scatter(cc["d"], cc["bound"], marker=marker, facecolors="none", edgecolors=c, s=50,
                           label=f"{variant}: censored ({text})")
    if ds:
        ax.plot(ds, ds, color="black", ls=":", label="m = d")
    ax.set_xlabel("embedding d")
    ax.set_ylabel(f"m_thr (accuracy falls to {LEVEL:g})")
    ax.set_title(f"{task.upper()}: threshold vocabulary vs embedding size", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def ood_figure(runs: pd.DataFrame) -> Any:
    """ood_long vs test accuracy, one point per run, per (task, variant)."""
    fig = new_figure(5.2, 4.6)
    ax = fig.subplots()
    markers = {"qc": "o", "mfc": "s"}
    g = runs[runs["ood_accuracy"].notna()]
    for (task, variant), h in g.groupby(["task", "variant"]):
        ax.scatter(h["accuracy"], h["ood_accuracy"], marker=markers.get(task, "D"), alpha=0.7, s=22,
                   label=f"{task}/{variant} ({len(h)} runs)")
    ax.plot([0, 1], [0, 1], color="black", ls=":", lw=1, label="ood = test")
    ax.axvline(LEVEL, color="gray", lw=0.8, ls="--")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("test accuracy (n tokens)")
    ax.set_ylabel("ood_long accuracy (2·n tokens)")
    ax.set_title("Length generalisation: one point per run", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def ood_by_m_figure(runs: pd.DataFrame) -> Any:
    """Test (dashed) and ood_long (solid) accuracy over m for each (task, variant) at the d values where a NoPE
    variant was trained: mean over seeds with its 95% band."""
    ds = sorted(set(runs.loc[runs["position"] == "none", "d"]))
    g = runs[runs["d"].isin(ds)]
    fig = new_figure(6.4, 4.4)
    ax = fig.subplots()
    for k, ((task, variant, d), h) in enumerate(g.groupby(["task", "variant", "d"])):
        c = COLORS[k % len(COLORS)]
        for col, style in (("ood_accuracy", "-"), ("accuracy", "--")):
            a = aggregate(h, ["m"], col, bounds=PROPORTION)
            line_with_band(ax, a["m"], a["mean"], a["ci_low"], a["ci_high"], color=c,
                           label=f"{task}/{variant}, d={d}" if col == "ood_accuracy" else None)
            ax.lines[-1].set_linestyle(style)
    ax.set_xlabel("vocabulary m")
    ax.set_ylabel("accuracy (solid: 2·n tokens; dashed: n tokens)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Length generalisation by position encoding", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def constructed_figure(cells: pd.DataFrame, task: str) -> Any:
    """Heatmaps over d × m: each trained variant (mean over seeds) next to the hand-wired models."""
    variants = sorted({v for t in cells["trained"] for v in t})
    panels = [(f"trained {task.upper()} / {v}", cells.assign(acc=[t.get(v) for t in cells["trained"]]))
              for v in variants]
    panels.append(("hand-wired histogram" + (" + max" if task == "mfc" else ""), cells.assign(acc=cells["histogram"])))
    if "count_attend" in cells and cells["count_attend"].notna().any():
        panels.append(("hand-wired CountAttend (m ≥ d)", cells.assign(acc=cells["count_attend"])))
    n_m, n_d = cells["m"].nunique(), cells["d"].nunique()
    fig = new_figure(min(14, (1.6 + 0.4 * n_m) * len(panels)), 1.8 + 0.4 * n_d)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    im = None
    for ax, (title, frame) in zip(axes, panels):
        pivot = frame.groupby(["d", "m"])["acc"].mean().unstack("m").sort_index().sort_index(axis=1)
        im = _heatmap(ax, pivot.astype(float), title)
    fig.colorbar(im, ax=list(axes), label="test accuracy")
    return fig
