"""The counting report's figures: matplotlib ``Figure`` objects on the Agg canvas (no pyplot state), one PNG each.

heatmap_<task>_<variant>.png (accuracy over d × m), mthr_<task>.png (m_thr vs d with spread, censoring and the
fit), constructed_<task>.png (hand-wired vs trained accuracy) and ood.png (ood_long vs test accuracy per run).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from limitlab.report.figures import COLORS, heatmap, new_figure
from limitlab.studies.counting import analysis as A
from limitlab.studies.counting.common import base_first, pairs, pick
from limitlab.studies.counting.results import Report

__all__ = ["make_figures"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name))


def _heatmap(ax: Any, pivot: pd.DataFrame, title: str, marks: dict[int, float] | None = None,
             diagonal: bool = True) -> Any:
    """The shared heatmap of accuracy over d (rows) × m (columns), plus the line m = d (white dashes) and the mean
    m_thr per d (red ×) where they fall inside the m grid."""
    im = heatmap(ax, pivot, title, xlabel="vocabulary m", ylabel="embedding d")
    ms, ds = list(pivot.columns), list(pivot.index)
    idx = np.arange(len(ms), dtype=float)
    for i, d in enumerate(ds):
        if diagonal and len(ms) > 1 and ms[0] <= d <= ms[-1]:
            x = float(np.interp(d, ms, idx))
            ax.plot([x, x], [i - 0.45, i + 0.45], color="white", lw=1.5, ls="--")
        if marks and d in marks and len(ms) > 1 and not math.isnan(marks[d]) and ms[0] <= marks[d] <= ms[-1]:
            ax.plot(float(np.interp(marks[d], ms, idx)), i, marker="x", color="red", ms=7, mew=2)
    return im


def _fig_heatmap(rep: Report, task: str, variant: str) -> Any:
    g = pick(rep.runs, task, variant)
    pivot = g.groupby(["d", "m"])["accuracy"].mean().unstack("m").sort_index().sort_index(axis=1)
    s = pick(rep.summary, task, variant)
    marks = {int(r["d"]): float(r["mean"]) for r in s.to_dict("records")}
    fig = new_figure(min(2.0 + 0.45 * pivot.shape[1], 13), 1.6 + 0.4 * pivot.shape[0])
    ax = fig.subplots()
    im = _heatmap(ax, pivot, f"{task.upper()} / {variant}: test accuracy, mean over seeds\n"
                             "white dashes: m = d; red ×: mean m_thr", marks)
    fig.colorbar(im, ax=ax, label="accuracy")
    return fig


def _fig_mthr(rep: Report, task: str) -> Any:
    fig = new_figure(6.4, 4.4)
    ax = fig.subplots()
    t_all = rep.thresholds[rep.thresholds["task"] == task]
    ds = sorted(rep.runs.loc[rep.runs["task"] == task, "d"].unique())
    drawn = False
    for k, variant in enumerate(sorted(t_all["variant"].unique())):
        c = COLORS[k % len(COLORS)]
        t = t_all[t_all["variant"] == variant]
        ex = t[t["censored"] == "none"]
        ax.scatter(ex["d"], ex["m_thr"], color=c, alpha=0.35, s=14)
        s = pick(rep.summary, task, variant)
        s = s[s["n_exact"] > 0]
        if len(s):
            err = np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]])
            err = np.where(np.isnan(err), 0.0, err)
            ax.errorbar(s["d"], s["mean"], yerr=err, color=c, marker="o", capsize=3, lw=0, elinewidth=1.2,
                        label=f"{variant}: mean, 95% t-CI clipped at 0")
            drawn = True
        for cens, marker, text in (("right", "^", "> max m"), ("left", "v", "< min m")):
            cc = t[t["censored"] == cens]
            if len(cc):
                ax.scatter(cc["d"], cc["bound"], marker=marker, facecolors="none", edgecolors=c, s=50,
                           label=f"{variant}: censored ({text})")
                drawn = True
        f = pick(rep.fits, task, variant)
        if len(f) and f.iloc[0]["status"] == "ok":
            a, b, r2 = f.iloc[0]["a"], f.iloc[0]["b"], f.iloc[0]["r2"]
            xs = np.linspace(min(ds), max(ds), 50)
            ax.plot(xs, a * xs + b, color=c, ls="--", label=f"{variant}: fit {a:.2f}·d + {b:.1f} (R² {r2:.2f})")
    if ds:
        xs = np.linspace(min(ds), max(ds), 10)
        ax.plot(xs, xs, color="black", ls=":", label="m = d")
    if not drawn:
        ax.text(0.5, 0.5, "no m_thr to plot", transform=ax.transAxes, ha="center", color="gray")
    ax.set_xlabel("embedding d")
    ax.set_ylabel("m_thr (accuracy falls to 0.8)")
    ax.set_title(f"{task.upper()}: threshold vocabulary vs embedding size", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _fig_constructed(rep: Report, task: str) -> Any:
    all_cells = [c for c in rep.results["constructions"]["cells"] if c["task"] == task]
    cells = pd.DataFrame(all_cells)
    variants = base_first({v for c in all_cells for v in c["trained"]})
    panels = [(f"trained {task.upper()} / {v}", cells.assign(acc=[c.get(v) for c in cells["trained"]]))
              for v in variants]
    name = "hand-wired histogram" if task == "qc" else "hand-wired histogram + max"
    panels.append((name, cells.assign(acc=cells["histogram"])))
    if cells["count_attend"].notna().any():
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


def _fig_ood(rep: Report) -> Any:
    fig = new_figure(5.2, 4.6)
    ax = fig.subplots()
    markers = {"qc": "o", "mfc": "s"}
    g = rep.runs[rep.runs["ood_accuracy"].notna()]
    for (task, variant), h in g.groupby(["task", "variant"]):
        ax.scatter(h["accuracy"], h["ood_accuracy"], marker=markers.get(task, "D"), alpha=0.7, s=22,
                   label=f"{task}/{variant} ({len(h)} runs)")
    ax.plot([0, 1], [0, 1], color="black", ls=":", lw=1, label="ood = test")
    ax.axvline(A.LEVEL, color="gray", lw=0.8, ls="--")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("test accuracy (n tokens)")
    ax.set_ylabel("ood_long accuracy (2·n tokens)")
    ax.set_title("Length generalisation: one point per run", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def make_figures(rep: Report) -> tuple[dict[str, str], dict[str, Any]]:
    """Every figure the report's data allow: ({key: file name}, e.g. "mthr/qc": "mthr_qc.png"; {file name: Figure})."""
    keys: dict[str, str] = {}
    figs: dict[str, Any] = {}

    def add(key: str, name: str, fig: Any) -> None:
        keys[key], figs[name] = name, fig

    for task, variant in pairs(rep.runs):
        add(f"heatmap/{task}/{variant}", f"heatmap_{_safe(task)}_{_safe(variant)}.png",
            _fig_heatmap(rep, task, variant))
    for task in dict.fromkeys(t for t, _ in pairs(rep.runs)):
        add(f"mthr/{task}", f"mthr_{_safe(task)}.png", _fig_mthr(rep, task))
    cons = rep.results["constructions"]
    for task in cons.get("tasks", []) if cons.get("available") else []:
        add(f"constructed/{task}", f"constructed_{_safe(task)}.png", _fig_constructed(rep, task))
    if rep.runs["ood_accuracy"].notna().any():
        add("ood", "ood.png", _fig_ood(rep))
    return keys, figs
