"""Figures of the multitask section: per-subtask loss curves over steps (one panel per size; mean over seeds with
a 95% band), the final per-subtask loss against model size (mean over seeds with a band), and the learning order:
the step at which the largest model learns each subtask against the subtask's frequency. Returns
``{name: (Figure, caption)}``; the section names the files ``multitask_<name>.png``."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from limitlab.analysis.intervals import aggregate
from limitlab.report.figures import line_with_band, new_figure


def _band(frames: list[pd.DataFrame], column: str) -> pd.DataFrame:
    """Mean over seeds of ``column`` per step, with its 95% t-interval (steps every seed evaluated)."""
    long = pd.concat([f[["step", column]].assign(seed=i) for i, f in enumerate(frames) if column in f])
    return aggregate(long, ["step"], column, bounds=(0.0, math.inf))


def figures(runs: list[dict[str, Any]], curves: dict[str, pd.DataFrame]) -> dict[str, tuple[Any, str]]:
    import matplotlib

    sizes = sorted({r["size"] for r in runs})
    K = len(runs[0]["subtasks"])
    cmap = matplotlib.colormaps["plasma"]
    colours = [cmap(j / max(K - 1, 1) * 0.85) for j in range(K)]
    n_seeds = len({r["seed"] for r in runs})
    out: dict[str, tuple[Any, str]] = {}

    fig = new_figure(3.2 * len(sizes) + 1, 3.4)
    axes = fig.subplots(1, len(sizes), squeeze=False, sharey=True)[0]
    for ax, s in zip(axes, sizes):
        mine = sorted((r for r in runs if r["size"] == s), key=lambda r: r["seed"])
        frames = [curves[r["run_id"]] for r in mine]
        first = frames[0]  # a mean over seeds would smear each run's jumps: one seed's subtask curves
        for j in range(K):
            if f"loss_{j}" in first:
                shown = j % max(1, K // 8) == 0 or j == K - 1  # a legend of at most ~9 entries
                ax.plot(first["step"], first[f"loss_{j}"], color=colours[j], lw=1,
                        label=f"subtask {j}" if shown else None)
        b = _band(frames, "loss")
        line_with_band(ax, b["step"], b["mean"], b["ci_low"], b["ci_high"], color="black", marker=None,
                       label="overall (mixture)")
        ax.set(title=f"N = {mine[0]['n_params']:,}", xlabel="step")
    axes[0].set_ylabel("test loss (nats)")
    axes[-1].legend(fontsize=6, ncol=2)
    out["curves"] = (fig, "loss over steps per model size: colour = per subtask in the lowest seed's run (uniform "
                          "split, 0 most frequent; a mean over seeds would smear each run's jumps), black = overall "
                          f"loss on the training mixture, mean over {n_seeds} seed(s) with its 95% band")

    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot()
    ns = [next(r["n_params"] for r in runs if r["size"] == s) for s in sizes]
    final = pd.DataFrame([{"size": r["size"], "subtask": x["subtask"], "loss": x.get("final_loss", math.nan)}
                          for r in runs for x in r["subtasks"]] +
                         [{"size": r["size"], "subtask": -1, "loss": r["final_loss"]} for r in runs])
    agg = aggregate(final, ["subtask", "size"], "loss", bounds=(0.0, math.inf))
    for j in range(-1, K):
        a = agg[agg["subtask"] == j].sort_values("size")
        x = [ns[sizes.index(s)] for s in a["size"]]
        line_with_band(ax, x, a["mean"], a["ci_low"], a["ci_high"], color="black" if j < 0 else colours[j],
                       label="overall" if j < 0 else (f"subtask {j}" if j % max(1, K // 8) == 0 else None),
                       alpha=0.12)
    ax.set(xscale="log", xlabel="N (parameters)", ylabel="final test loss (nats)", title="loss vs model size")
    ax.legend(fontsize=6, ncol=2)
    out["by_size"] = (fig, f"final per-subtask loss vs model size (mean over {n_seeds} seed(s), band: 95% "
                           "interval) and the overall loss (black)")
    out["order"] = (_order_figure(runs), "learning order: the step at which the largest model's accuracy on a "
                                         "subtask first reaches 90%, against the subtask's frequency in the training "
                                         "mixture, one marker per seed (▲ at the top: never within the run)")
    return out


def _order_figure(runs: list[dict[str, Any]]) -> Any:
    """Learning step of each subtask (largest size, every seed) against its frequency, log–log."""
    biggest = max(r["size"] for r in runs)
    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot()
    top = max((r["steps"] for r in runs), default=1) * 1.3
    for i, r in enumerate(sorted((r for r in runs if r["size"] == biggest), key=lambda r: r["seed"])):
        freq = [x["frequency"] for x in r["subtasks"] if "frequency" in x]
        step = [x["learned_step"] for x in r["subtasks"] if "frequency" in x]
        learned = [(f, s) for f, s in zip(freq, step) if s is not None]
        never = [f for f, s in zip(freq, step) if s is None]
        colour = f"C{i}"
        if learned:
            ax.scatter(*zip(*learned), color=colour, s=18, label=f"seed {r['seed']}")
        if never:
            ax.scatter(never, [top] * len(never), color=colour, marker="^", s=18)
    ax.axhline(top / 1.3, color="grey", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="subtask frequency in the training mixture",
           ylabel="step learned (accuracy ≥ 0.9)", title="learning order vs frequency (largest model)")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:  # no subtask learned: nothing to name
        ax.legend(fontsize=7)
    return fig



