"""Figures of the scaling-laws section, from :func:`.laws_report.analyze_corpus`'s result: loss vs N and vs D
(mean over seeds with 95% bands, the L(N, D) fit, the held-out run and its prediction), loss vs compute (the power
law and its two alternatives fitted on the cheap frontier, extrapolated), and the compute-optimal N_opt(C).
Returns ``{key: Figure}``; the section names the files ``laws_<corpus>_<key>.png``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from limitlab.report.figures import line_with_band, new_figure
from limitlab.studies.scaling.fit import compute_optimal
from limitlab.studies.scaling.laws_report import frontier


def _held(ax: Any, r: dict[str, Any], key: str, x: float) -> None:
    """The held-out run (star: mean over seeds) and its prediction (mean over seeds, bar: 95% interval)."""
    mf, m = r["mean_fit"], r["measures"][f"predict_{key}"]
    measured = r["mean_cells"]["loss"].iloc[-1]
    ax.plot([x], [measured], marker="*", ms=14, color="black", ls="none", label="held-out run (measured)")
    if m.n and math.isfinite(m.estimate):
        # relative error e = (measured − predicted)/measured  ⇒  predicted = measured·(1 − e)
        pred = measured * (1 - m.estimate)
        lo, hi = measured * (1 - m.high), measured * (1 - m.low)
        err = [[max(pred - lo, 0)], [max(hi - pred, 0)]] if math.isfinite(m.low) else None
        ax.errorbar([x * 1.1], [pred], yerr=err, fmt="o", color="crimson", capsize=4,
                    label=f"predicted from ≥{mf['compute_ratio']:.0f}× less compute")


def figures(label: str, r: dict[str, Any]) -> dict[str, Any]:
    import matplotlib

    mc, mf, floor = r["mean_cells"], r["mean_fit"], r["floor"]
    if mc.empty:
        return {}
    out: dict[str, Any] = {}
    cmap = matplotlib.colormaps["viridis"]
    budgets = sorted(mc["steps"].unique())
    colours = {s: cmap(i / max(len(budgets) - 1, 1)) for i, s in enumerate(budgets)}
    full = mf["full"]

    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    grid_n = np.geomspace(mc["N"].min() / 1.5, mc["N"].max() * 1.5, 100)
    for steps in budgets:
        cell = mc[mc["steps"] == steps].sort_values("N")
        line_with_band(ax, cell["N"], cell["loss"], cell["low"], cell["high"], color=colours[steps],
                       label=f"{steps} steps (D = {cell['D'].iloc[0]:.3g})")
        if full is not None:
            ax.plot(grid_n, full.predict(grid_n, cell["D"].iloc[0]), "--", color=colours[steps], lw=1)
    _held(ax, r, "lnd", mc["N"].iloc[-1])
    if floor is not None:
        ax.axhline(floor, color="grey", ls=":", label=f"entropy floor H = {floor:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="N (parameters)", ylabel="test loss (nats/token)",
           title=f"{label}: loss vs model size")
    ax.legend(fontsize=7)
    out["loss_vs_N"] = fig

    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    sizes = sorted(mc["size"].unique())
    grid_d = np.geomspace(mc["D"].min() / 1.5, mc["D"].max() * 1.5, 100)
    for k, size in enumerate(sizes):
        cell = mc[mc["size"] == size].sort_values("D")
        colour = cmap(k / max(len(sizes) - 1, 1))
        line_with_band(ax, cell["D"], cell["loss"], cell["low"], cell["high"], color=colour,
                       label=f"N = {cell['N'].iloc[0]:,.0f}")
        if full is not None:
            ax.plot(grid_d, full.predict(cell["N"].iloc[0], grid_d), "--", color=colour, lw=1)
    if floor is not None:
        ax.axhline(floor, color="grey", ls=":", label=f"entropy floor H = {floor:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="D (training tokens)", ylabel="test loss (nats/token)",
           title=f"{label}: loss vs data")
    ax.legend(fontsize=6, ncol=2)
    out["loss_vs_D"] = fig

    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    for steps in budgets:
        cell = mc[mc["steps"] == steps]
        ax.plot(cell["C"], cell["loss"], "o", color=colours[steps], ms=4, label=f"{steps} steps")
    cut = mf["held_C"] / 100
    ax.axvline(cut, color="grey", ls="--", lw=1, label="fit set: C ≤ C_max/100")
    grid_c = np.geomspace(mc["C"].min(), mc["C"].max() * 2, 100)
    styles = {"power law": ("crimson", "-"), "log-linear": ("tab:blue", "-."), "exponential": ("tab:green", ":")}
    for name, law in mf["alternatives"].items():
        if law is not None and not getattr(law, "error", ""):
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                y = np.asarray(law.predict(grid_c), dtype=float)
            y[y <= 0] = np.nan
            colour, ls = styles[name]
            ax.plot(grid_c, y, ls, color=colour, lw=1.2, label=f"{name} fitted on the cheap frontier")
    _held(ax, r, "lc", mf["held_C"])
    if floor is not None:
        ax.axhline(floor, color="grey", ls=":")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="test loss (nats/token)",
           title=f"{label}: loss vs compute")
    ax.set_ylim(mc["loss"].min() * 0.8, mc["loss"].max() * 1.2)
    ax.legend(fontsize=7)
    out["loss_vs_C"] = fig

    if full is not None and full.params["alpha"] > 0 and full.params["beta"] > 0:
        fig = new_figure(6.4, 4.2)
        ax = fig.add_subplot()
        grid = np.geomspace(mc["C"].min(), mc["C"].max() * 100, 60)
        n_opt, _ = compute_optimal(full, grid)
        ax.plot(grid, n_opt, "-", color="navy", label=f"N_opt ∝ C^{full.params['a_opt']:.3f} (mean cells)")
        curves = [compute_optimal(x["full"], grid)[0] for x in r["per_seed"].values()
                  if x["full"] is not None and x["full"].params["alpha"] > 0 and x["full"].params["beta"] > 0]
        if len(curves) >= 2:
            ax.fill_between(grid, np.min(curves, axis=0), np.max(curves, axis=0), color="navy", alpha=0.15,
                            label=f"range of the {len(curves)} per-seed fits")
        fr = frontier(mc)
        ax.plot(fr["C"], fr["N"], "s", color="darkorange", label="frontier cells (measured)")
        ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="N (parameters)",
               title=f"{label}: compute-optimal model size")
        ax.legend(fontsize=7)
        out["nopt"] = fig
    return out
