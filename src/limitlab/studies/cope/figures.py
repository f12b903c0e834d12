"""The CoPE report's figures: ours with 95% intervals over seeds, the paper's number beside it (open diamonds).

* :func:`error_figure` — flip-flop / selective copy: per split and encoding a bar (mean over seeds) with its 95%
  interval, one dot per seed, and the paper's number;
* :func:`counting_figure` — variable counting: error vs number of variables per encoding, with intervals;
* :func:`lm_figure` — an LM corpus: perplexity vs evaluation context with bands (left) and the loss per position
  at the longest context (right);
* :func:`pmax_figure` — the p_max ablation: error vs p_max per split, with bands and seeds.

>>> rows = [{"pe": "cope", "test": {"mean": 0.0, "low": 0.0, "high": 0.0, "per_seed": [0.0, 0.0], "paper": 0.0}}]
>>> fig = error_figure(rows, ("test",), "Flip-flop"); len(fig.axes)
1
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from limitlab.report.figures import COLORS, line_with_band, new_figure

__all__ = ["counting_figure", "error_figure", "lm_figure", "pmax_figure"]


def _yerr(mean: float, low: float, high: float) -> list[list[float]]:
    if any(v is None or math.isnan(v) for v in (mean, low, high)):
        return [[0.0], [0.0]]
    return [[mean - low], [high - mean]]


def error_figure(rows: list[dict[str, Any]], splits: Sequence[str], title: str) -> Any:
    """Token error (%) per split (groups) and encoding (bars): mean with its 95% interval, seeds as dots, the
    paper's number as an open diamond."""
    fig = new_figure(2.2 + 0.55 * len(rows) * len(splits), 3.2)
    ax = fig.subplots()
    width = 0.8 / max(len(rows), 1)
    paper_label = "paper"  # one legend entry for every paper marker
    for k, row in enumerate(rows):
        color = COLORS[k % len(COLORS)]
        for j, split in enumerate(splits):
            s = row[split]
            if s["mean"] is None:
                continue
            x = j + k * width
            ax.bar([x], [s["mean"]], width * 0.9, color=color, alpha=0.5, label=row["pe"] if j == 0 else None,
                   yerr=_yerr(s["mean"], s["low"], s["high"]), capsize=3, error_kw={"lw": 1})
            ax.plot([x] * len(s["per_seed"]), s["per_seed"], "o", color=color, ms=3)
            if s.get("paper") is not None:
                ax.plot([x], [s["paper"]], marker="D", ms=6, mfc="none", mec="black", ls="none", label=paper_label)
                paper_label = None
    ax.set_xticks(np.arange(len(splits)) + width * (len(rows) - 1) / 2)
    ax.set_xticklabels(splits)
    ax.set_ylabel("token error (%)")
    ax.set_ylim(bottom=-3)  # a paper marker at 0% stays visible
    ax.set_title(f"{title}: bars = mean with 95% interval, dots = seeds, open diamonds = paper", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def counting_figure(rows: list[dict[str, Any]]) -> Any:
    """Variable counting: error (%) vs number of variables, one line per encoding (mean with its 95% interval over
    seeds) and the paper's Table 3 numbers as open diamonds in the same colour."""
    fig = new_figure(5.0, 3.2)
    ax = fig.subplots()
    pes = list(dict.fromkeys(r["pe"] for r in rows))  # rows come in the paper's encoding order
    for k, pe in enumerate(pes):
        color = COLORS[k % len(COLORS)]
        mine = sorted((r for r in rows if r["pe"] == pe and r["mean"] is not None), key=lambda r: r["n_vars"])
        offset = 0.06 * (k - (len(pes) - 1) / 2)  # side by side, so the intervals do not hide each other
        for r in mine:
            ax.errorbar([r["n_vars"] + offset], [r["mean"]], yerr=_yerr(r["mean"], r["low"], r["high"]), marker="o",
                        ms=4, capsize=3, color=color)
            ax.plot([r["n_vars"] + offset] * len(r["per_seed"]), r["per_seed"], ".", color=color, ms=3, alpha=0.6)
        if mine:
            ax.plot([r["n_vars"] + offset for r in mine], [r["mean"] for r in mine], color=color, label=pe)
        for r in (r for r in rows if r["pe"] == pe and r["paper"] is not None):
            ax.plot([r["n_vars"] + offset], [r["paper"]], marker="D", ms=6, mfc="none", mec=color, ls="none")
    if any(r["paper"] is not None for r in rows):  # one black legend entry for the coloured paper markers
        ax.plot([], [], marker="D", ms=6, mfc="none", mec="black", ls="none", label="paper")
    ax.set(xlabel="variables", ylabel="error (%)", ylim=(-3, None), xticks=sorted({r["n_vars"] for r in rows}))
    ax.set_title("Variable counting: ours (mean, 95% interval, seeds) vs paper (open diamonds)", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _multiple(split: str) -> float:
    """The evaluation context as a multiple of T: 'test' -> 1, 'ctx2.5x' -> 2.5."""
    return 1.0 if split == "test" else float(split[3:-1])


def lm_figure(rows: list[dict[str, Any]], curves: dict[str, dict[str, list[float]]], corpus: str) -> Any:
    """Left: perplexity vs evaluation context (multiples of T) per encoding, with 95% bands over seeds. Right: loss
    per position at the longest context (mean of seeds, moving average), the training context dotted."""
    fig = new_figure(10.0, 3.4)
    left, right = fig.subplots(1, 2)
    for k, row in enumerate(rows):
        splits = sorted((s for s in row if s == "test" or (s.startswith("ctx") and s.endswith("x"))), key=_multiple)
        pts = [(_multiple(s), row[s]) for s in splits if row[s]["mean"] is not None]
        if pts:
            line_with_band(left, [x for x, _ in pts], [s["mean"] for _, s in pts], [s["low"] for _, s in pts],
                           [s["high"] for _, s in pts], label=row["pe"], color=COLORS[k % len(COLORS)])
    left.set(xlabel="evaluation context (× training T)", ylabel="perplexity per byte")
    left.set_title(f"{corpus}: perplexity vs context, 95% band over seeds", fontsize=8)
    if left.lines:
        left.legend(fontsize=7)
    left.grid(alpha=0.3)
    train_len = None
    for k, row in enumerate(rows):
        by_split = curves.get(row["pe"], {})
        if not by_split:
            continue
        longest = max(by_split, key=lambda s: len(by_split[s]))
        y = np.asarray(by_split[longest], dtype=float)
        w = max(1, len(y) // 40)  # moving average over w positions: one evaluation batch per split is noisy
        smooth = np.convolve(y, np.ones(w) / w, mode="valid")
        right.plot(np.arange(len(smooth)) + (w + 1) / 2, smooth, color=COLORS[k % len(COLORS)], lw=1,
                   label=f"{row['pe']} ({longest})")
        if "test" in by_split:
            train_len = len(by_split["test"])
    if train_len:
        right.axvline(train_len, color="k", ls=":", lw=1, label="training context T")
    right.set(xlabel="position in the context", ylabel="loss (nats/byte), smoothed")
    right.set_title(f"{corpus}: loss per position at the longest context (mean of seeds)", fontsize=8)
    if right.lines:
        right.legend(fontsize=7)
    return fig


def pmax_figure(rows: list[dict[str, Any]], splits: Sequence[str]) -> Any:
    """CoPE's flip-flop token error (%) against p_max (log scale), one line per split: mean with its 95% band over
    seeds, seeds as dots."""
    fig = new_figure(5.6, 3.4)
    ax = fig.subplots()
    xs = [r["p_max"] for r in rows]
    for k, split in enumerate(splits):
        color = COLORS[k % len(COLORS)]
        pts = [(x, r[split]) for x, r in zip(xs, rows) if r[split]["mean"] is not None]
        if not pts:
            continue
        line_with_band(ax, [x for x, _ in pts], [s["mean"] for _, s in pts], [s["low"] for _, s in pts],
                       [s["high"] for _, s in pts], label=split, color=color)
        for x, s in pts:
            ax.plot([x] * len(s["per_seed"]), s["per_seed"], "o", color=color, ms=3, alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.set(xlabel="p_max (CoPE's position table size)", ylabel="token error (%)")
    ax.set_title("Flip-flop, CoPE: error vs p_max, 95% band over seeds, dots = seeds", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
