"""Figures of the scaling-laws section: loss vs N (with the L(N, D) fit and the held-out prediction), loss vs
compute (frontier fit extrapolated to the held-out run), and the compute-optimal N_opt(C). Matplotlib on the Agg
canvas (no pyplot state); files ``laws_<corpus>_<kind>.png``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from limitlab.studies.scaling.fit import compute_optimal


def new_figure(width: float = 6.4, height: float = 4.2) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig: Any, out: Path, name: str) -> str:
    fig.savefig(out / name)
    return name


def _held_marker(ax: Any, h: dict[str, Any], form: str, x: float) -> None:
    """The held-out run (star) and its prediction from the cheap runs (error bar)."""
    ax.plot([x], [h["held"]["loss"]], marker="*", ms=14, color="black", ls="none", label="held-out run (measured)")
    p = h.get(form, {})
    if "predicted" in p:
        lo, hi = p["ci95"]
        err = None if not math.isfinite(lo) else [[max(p["predicted"] - lo, 0)], [max(hi - p["predicted"], 0)]]
        ax.errorbar([x * 1.08], [p["predicted"]], yerr=err, fmt="o", color="crimson", capsize=4,
                    label="predicted from ≥100× less compute")


def write_figures(corpus: str, c: pd.DataFrame, r: dict[str, Any], out: Path) -> dict[str, str]:
    if c.empty:
        return {}
    out.mkdir(parents=True, exist_ok=True)
    fits = r["_fits"]
    floor = r.get("entropy_floor")
    figures: dict[str, str] = {}
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    budgets = sorted(c["steps"].unique())
    colours = {s: cmap(i / max(len(budgets) - 1, 1)) for i, s in enumerate(budgets)}

    fig = new_figure()
    ax = fig.add_subplot()
    grid_n = np.geomspace(c["N"].min() / 1.5, c["N"].max() * 1.5, 100)
    for steps in budgets:
        cell = c[c["steps"] == steps].sort_values("N")
        ax.plot(cell["N"], cell["loss"], "o-", color=colours[steps],
                label=f"{steps} steps (D = {cell['D'].iloc[0]:.3g})")
        if fits.get("full") is not None:
            ax.plot(grid_n, fits["full"].predict(grid_n, cell["D"].iloc[0]), "--", color=colours[steps], lw=1)
    h = r["holdout"]
    if "held" in h:
        _held_marker(ax, h, "L_ND", h["held"]["N"])
    if floor is not None:
        ax.axhline(floor, color="grey", ls=":", label=f"entropy floor H = {floor:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="N (parameters)", ylabel="test loss (nats/token)",
           title=f"{corpus}: loss vs model size")
    ax.legend(fontsize=7)
    figures[f"{corpus}/loss_vs_N"] = _save(fig, out, f"laws_{corpus}_loss_vs_N.png")

    fig = new_figure()
    ax = fig.add_subplot()
    sizes = sorted(c["size"].unique())
    grid_d = np.geomspace(c["D"].min() / 1.5, c["D"].max() * 1.5, 100)
    for k, size in enumerate(sizes):
        cell = c[c["size"] == size].sort_values("D")
        colour = cmap(k / max(len(sizes) - 1, 1))
        ax.plot(cell["D"], cell["loss"], "o-", color=colour, label=f"N = {cell['N'].iloc[0]:,.0f}")
        if fits.get("full") is not None:
            ax.plot(grid_d, fits["full"].predict(cell["N"].iloc[0], grid_d), "--", color=colour, lw=1)
    if floor is not None:
        ax.axhline(floor, color="grey", ls=":", label=f"entropy floor H = {floor:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="D (training tokens)", ylabel="test loss (nats/token)",
           title=f"{corpus}: loss vs data")
    ax.legend(fontsize=6, ncol=2)
    figures[f"{corpus}/loss_vs_D"] = _save(fig, out, f"laws_{corpus}_loss_vs_D.png")

    fig = new_figure()
    ax = fig.add_subplot()
    for steps in budgets:
        cell = c[c["steps"] == steps]
        ax.plot(cell["C"], cell["loss"], "o", color=colours[steps], label=f"{steps} steps")
    if "held" in h and h.get("max_fit_compute"):
        ax.axvline(h["max_fit_compute"], color="grey", ls="--", lw=1, label="fit set: C ≤ this")
    grid_c = np.geomspace(c["C"].min(), c["C"].max() * 2, 100)
    if fits.get("held_c") is not None:
        ax.plot(grid_c, fits["held_c"].predict(grid_c), "-", color="crimson", lw=1.2,
                label="L(C) fitted on cheap cells")
    if fits.get("L_C") is not None:
        ax.plot(grid_c, fits["L_C"].predict(grid_c), ":", color="black", lw=1,
                label="L(C) fitted on all frontier cells")
    if "held" in h:
        _held_marker(ax, h, "L_C", h["held"]["C"])
    if floor is not None:
        ax.axhline(floor, color="grey", ls=":")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="test loss (nats/token)",
           title=f"{corpus}: loss vs compute")
    ax.legend(fontsize=7)
    figures[f"{corpus}/loss_vs_C"] = _save(fig, out, f"laws_{corpus}_loss_vs_C.png")

    full = fits.get("full")
    if full is not None and full.params["alpha"] > 0 and full.params["beta"] > 0:
        fig = new_figure()
        ax = fig.add_subplot()
        grid = np.geomspace(c["C"].min(), c["C"].max() * 100, 60)
        n_opt, _ = compute_optimal(full, grid)
        ax.plot(grid, n_opt, "-", color="navy", label=f"N_opt ∝ C^{full.params['a_opt']:.3f}")
        if full.boot_thetas is not None and len(full.boot_thetas) > 2:
            curves = []
            for t in full.boot_thetas:
                a, b = t[2], t[4]
                if a > 0 and b > 0:
                    G = (a * math.exp(t[1]) / (b * math.exp(t[3]))) ** (1 / (a + b))
                    curves.append(G * (grid / 6) ** (b / (a + b)))
            if len(curves) > 2:
                ax.fill_between(grid, np.quantile(curves, 0.025, axis=0), np.quantile(curves, 0.975, axis=0),
                                color="navy", alpha=0.15, label="95% bootstrap band")
        fr = pd.DataFrame(r["frontier"])
        ax.plot(fr["C"], fr["N"], "s", color="darkorange", label="frontier runs (measured)")
        ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="N (parameters)",
               title=f"{corpus}: compute-optimal model size")
        ax.legend(fontsize=7)
        figures[f"{corpus}/nopt"] = _save(fig, out, f"laws_{corpus}_nopt.png")
    return figures
