"""The counting report's figures: matplotlib ``Figure`` objects on the Agg canvas (no pyplot state), one PNG each.

heatmap_<task>_<variant>.png (accuracy over d × m), mthr_<task>.png (m_thr vs d with spread, censoring and the
fit), constructed_<task>.png (hand-wired vs trained accuracy) and ood.png (ood_long vs test accuracy per run).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from limitlab.studies.counting import analysis as A
from limitlab.studies.counting.common import base_first, pairs, pick
from limitlab.studies.counting.results import Report

__all__ = ["write_figures"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name))


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _heatmap(ax: Any, pivot: pd.DataFrame, title: str, marks: dict[int, float] | None = None,
             diagonal: bool = True) -> Any:
    """pivot: index d, columns m, values accuracy in [0, 1] (NaN = missing, drawn grey)."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    data = np.ma.masked_invalid(pivot.to_numpy(dtype=float))
    im = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0)
    ms, ds = list(pivot.columns), list(pivot.index)
    ax.set_xticks(range(len(ms)), [str(m) for m in ms], fontsize=7, rotation=90 if len(ms) > 12 else 0)
    ax.set_yticks(range(len(ds)), [str(d) for d in ds], fontsize=8)
    ax.set_xlabel("vocabulary m")
    ax.set_ylabel("embedding d")
    ax.set_title(title, fontsize=9)
    if len(ms) * len(ds) <= 200:
        for i in range(len(ds)):
            for j in range(len(ms)):
                v = data[i, j]
                if v is not np.ma.masked:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if v > 0.6 else "white")
    idx = np.arange(len(ms), dtype=float)
    for i, d in enumerate(ds):
        if diagonal and len(ms) > 1 and ms[0] <= d <= ms[-1]:
            x = float(np.interp(d, ms, idx))
            ax.plot([x, x], [i - 0.45, i + 0.45], color="white", lw=1.5, ls="--")
        if marks and d in marks and len(ms) > 1 and not math.isnan(marks[d]) and ms[0] <= marks[d] <= ms[-1]:
            ax.plot(float(np.interp(marks[d], ms, idx)), i, marker="x", color="red", ms=7, mew=2)
    return im


def _fig_heatmap(rep: Report, task: str, variant: str, path: Path) -> None:
    g = pick(rep.runs, task, variant)
    pivot = g.groupby(["d", "m"])["accuracy"].mean().unstack("m").sort_index().sort_index(axis=1)
    s = pick(rep.summary, task, variant)
    marks = {int(r["d"]): float(r["mean"]) for r in s.to_dict("records")}
    fig = _new_figure(min(2.0 + 0.45 * pivot.shape[1], 13), 1.6 + 0.4 * pivot.shape[0])
    ax = fig.subplots()
    im = _heatmap(ax, pivot, f"{task.upper()} / {variant}: test accuracy, mean over seeds\n"
                             "white dashes: m = d; red ×: mean m_thr", marks)
    fig.colorbar(im, ax=ax, label="accuracy")
    fig.savefig(path)


def _fig_mthr(rep: Report, task: str, path: Path) -> None:
    fig = _new_figure(6.4, 4.4)
    ax = fig.subplots()
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    t_all = rep.thresholds[rep.thresholds["task"] == task]
    ds = sorted(rep.runs.loc[rep.runs["task"] == task, "d"].unique())
    drawn = False
    for k, variant in enumerate(sorted(t_all["variant"].unique())):
        c = colors[k % len(colors)]
        t = t_all[t_all["variant"] == variant]
        ex = t[t["censored"] == "none"]
        ax.scatter(ex["d"], ex["m_thr"], color=c, alpha=0.35, s=14)
        s = pick(rep.summary, task, variant)
        s = s[s["n_exact"] > 0]
        if len(s):
            err = np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]])
            err = np.where(np.isnan(err), 0.0, err)
            ax.errorbar(s["d"], s["mean"], yerr=err, color=c, marker="o", capsize=3, lw=0, elinewidth=1.2,
                        label=f"{variant}: mean ± 95% CI")
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
    ax.set_ylabel("m_thr (accuracy falls to 80%)")
    ax.set_title(f"{task.upper()}: threshold vocabulary vs embedding size", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.savefig(path)


def _fig_constructed(rep: Report, task: str, path: Path) -> None:
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
    fig = _new_figure(min(14, (1.6 + 0.4 * n_m) * len(panels)), 1.8 + 0.4 * n_d)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    im = None
    for ax, (title, frame) in zip(axes, panels):
        pivot = frame.groupby(["d", "m"])["acc"].mean().unstack("m").sort_index().sort_index(axis=1)
        im = _heatmap(ax, pivot.astype(float), title)
    fig.colorbar(im, ax=list(axes), label="test accuracy")
    fig.savefig(path)


def _fig_ood(rep: Report, path: Path) -> None:
    fig = _new_figure(5.2, 4.6)
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
    fig.savefig(path)


def write_figures(rep: Report, out: Path) -> dict[str, str]:
    """Draw every figure the report's data allow into ``out``; returns {key: file name}, e.g. "mthr/qc"."""
    figs: dict[str, str] = {}
    for task, variant in pairs(rep.runs):
        name = f"heatmap_{_safe(task)}_{_safe(variant)}.png"
        _fig_heatmap(rep, task, variant, out / name)
        figs[f"heatmap/{task}/{variant}"] = name
    for task in dict.fromkeys(t for t, _ in pairs(rep.runs)):
        name = f"mthr_{_safe(task)}.png"
        _fig_mthr(rep, task, out / name)
        figs[f"mthr/{task}"] = name
    cons = rep.results["constructions"]
    for task in cons.get("tasks", []) if cons.get("available") else []:
        name = f"constructed_{_safe(task)}.png"
        _fig_constructed(rep, task, out / name)
        figs[f"constructed/{task}"] = name
    if rep.runs["ood_accuracy"].notna().any():
        _fig_ood(rep, out / "ood.png")
        figs["ood"] = "ood.png"
    return figs
