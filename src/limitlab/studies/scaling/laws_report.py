"""Analysis, figures and report section of the scaling-laws experiment (per corpus).

From the finished runs (test loss in nats per token, mean over seeds per (size, budget) cell):

1. **Full fit** L(N, D) = E + A/N^α + B/D^β on every cell, with bootstrap intervals; on the Markov corpus the
   fitted E is compared with the known entropy floor H.
2. **L(N)** at the largest budget and **L(C)** = E + A·C^(−α) on the compute frontier (cells no cheaper cell
   beats), i.e. L(C) = a·C^b + c with b = −α.
3. **Held-out prediction** (GPT-4 style): the cell with the most compute is held out; L(N, D) and the frontier
   L(C) are fitted on the cells with ≥ 100× less compute and their predictions for the held-out cell (with
   bootstrap intervals, which carry the fit's uncertainty, not seed noise) are compared with its measured loss.
4. **Compute-optimal frontier** N_opt(C) = G·(C/6)^(β/(α+β)) from the full fit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from limitlab.studies.scaling.fit import Fit, compute_optimal, fit_chinchilla, fit_power_law

N_BOOT = 40  # bootstrap refits per fit (the tests lower it)
HOLDOUT_RATIO = 100.0  # fit on cells with at most 1/HOLDOUT_RATIO of the held-out compute
PREDICTION_TOLERANCE = 0.05  # relative error that counts as "predicted" in the claims table
LOSS = "result.test/loss"


def cells(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (corpus, size, steps) of the finished runs: N, D, C, mean loss, seeds, floor."""
    done = runs[runs["status"] == "done"]
    if done.empty or LOSS not in done.columns:
        return pd.DataFrame(columns=["corpus", "size", "steps", "N", "D", "C", "loss", "loss_std", "seeds"])
    frame = pd.DataFrame({
        "corpus": done["tags.corpus"], "size": done["tags.size"].astype(int), "steps": done["tags.steps"].astype(int),
        "N": done["tags.n_params"].astype(float), "D": done["tags.tokens"].astype(float),
        "C": done["tags.flops"].astype(float), "loss": done[LOSS].astype(float),
        "floor": pd.to_numeric(done["tags.entropy_floor"], errors="coerce") if "tags.entropy_floor" in done
        else np.nan,
        "d_model": done["tags.d_model"], "n_layers": done["tags.n_layers"],
    })
    frame = frame[np.isfinite(frame["loss"])]
    out = frame.groupby(["corpus", "size", "steps"], as_index=False).agg(
        N=("N", "first"), D=("D", "first"), C=("C", "first"), loss=("loss", "mean"), loss_std=("loss", "std"),
        seeds=("loss", "size"), floor=("floor", "first"), d_model=("d_model", "first"), n_layers=("n_layers", "first"))
    return out.sort_values(["corpus", "C"]).reset_index(drop=True)


def frontier(c: pd.DataFrame) -> pd.DataFrame:
    """Cells on the compute frontier: lower loss than every cell with less (or equal) compute."""
    c = c.sort_values("C")
    best, keep = math.inf, []
    for i, loss in zip(c.index, c["loss"]):
        if loss < best:
            keep.append(i)
            best = loss
    return c.loc[keep]


def _try(fn: Any, *args: Any, **kw: Any) -> tuple[Fit | None, str]:
    try:
        return fn(*args, **kw), ""
    except ValueError as exc:
        return None, str(exc)


def analyze_corpus(c: pd.DataFrame, n_boot: int | None = None) -> dict[str, Any]:
    """Every number of one corpus's section (see the module docstring); fits are None with a reason when they
    cannot be made. Private Fit objects are kept under '_fits' for the figures."""
    n_boot = N_BOOT if n_boot is None else n_boot
    out: dict[str, Any] = {"cells": c.to_dict("records"), "n_cells": len(c)}
    floor = c["floor"].dropna()
    out["entropy_floor"] = float(floor.iloc[0]) if len(floor) else None
    fits: dict[str, Fit | None] = {}
    fits["full"], why = _try(fit_chinchilla, c["N"], c["D"], c["loss"], n_boot=n_boot)
    out["full_fit"] = fits["full"].to_dict() if fits["full"] else {"error": why}
    top = c[c["steps"] == c["steps"].max()] if len(c) else c
    fits["L_N"], why = _try(fit_power_law, top["N"], top["loss"], n_boot=n_boot)
    out["L_N_fit"] = {**fits["L_N"].to_dict(), "steps": int(top["steps"].iloc[0])} if fits["L_N"] else {"error": why}
    front = frontier(c) if len(c) else c
    out["frontier"] = front[["size", "steps", "N", "D", "C", "loss"]].to_dict("records")
    fits["L_C"], why = _try(fit_power_law, front["C"], front["loss"], n_boot=n_boot)
    out["L_C_fit"] = fits["L_C"].to_dict() if fits["L_C"] else {"error": why}
    out["holdout"] = _holdout(c, fits, n_boot)
    out["compute_optimal"] = _optimal(c, fits["full"])
    if out["entropy_floor"] is not None and fits["full"] is not None:
        e, floor_h = fits["full"].params["E"], out["entropy_floor"]
        out["E_vs_floor"] = {"E": e, "E_ci95": fits["full"].ci.get("E"), "floor": floor_h,
                             "relative_error": (e - floor_h) / floor_h}
    out["_fits"] = fits
    return out


def _holdout(c: pd.DataFrame, fits: dict[str, Fit | None], n_boot: int) -> dict[str, Any]:
    if len(c) < 2:
        return {"error": "fewer than 2 cells"}
    held = c.loc[c["C"].idxmax()]
    train = c[c["C"] <= held["C"] / HOLDOUT_RATIO]
    res: dict[str, Any] = {"held": {k: _py(held[k]) for k in ("size", "steps", "N", "D", "C", "loss")},
                           "n_fit_cells": len(train),
                           "max_fit_compute": float(train["C"].max()) if len(train) else None,
                           "compute_ratio": float(held["C"] / train["C"].max()) if len(train) else None}
    fit_nd, why = _try(fit_chinchilla, train["N"], train["D"], train["loss"], n_boot=n_boot)
    fits["held_nd"] = fit_nd
    res["L_ND"] = _prediction(fit_nd, why, held["loss"], held["N"], held["D"])
    front = frontier(train) if len(train) else train
    fit_c, why = _try(fit_power_law, front["C"], front["loss"], n_boot=n_boot)
    fits["held_c"] = fit_c
    res["L_C"] = _prediction(fit_c, why, held["loss"], held["C"])
    res["L_C"]["n_frontier_cells"] = len(front)
    return res


def _prediction(fit: Fit | None, why: str, measured: float, *x: float) -> dict[str, Any]:
    if fit is None:
        return {"error": why}
    pred = float(fit.predict(*x)[0])
    lo, hi = (float(v[0]) for v in fit.predict_interval(*x))
    return {"fit": fit.to_dict(), "predicted": pred, "ci95": [lo, hi], "measured": float(measured),
            "abs_error": pred - float(measured), "relative_error": (pred - float(measured)) / float(measured),
            "inside_ci": bool(lo <= measured <= hi) if math.isfinite(lo) else None}


def _optimal(c: pd.DataFrame, fit: Fit | None) -> dict[str, Any]:
    if fit is None or not len(c):
        return {"error": "no L(N, D) fit"}
    budgets = np.geomspace(c["C"].min(), c["C"].max() * 100, 6)
    n_opt, d_opt = compute_optimal(fit, budgets)
    exps = []
    if fit.boot_thetas is not None:
        for t in fit.boot_thetas:
            a, b = t[2], t[4]
            exps.append(b / (a + b) if a + b else math.nan)
    q = [float(np.nanquantile(exps, 0.025)), float(np.nanquantile(exps, 0.975))] if exps else None
    return {"exponent_a": fit.params["a_opt"], "exponent_ci95": q,
            "table": [{"C": float(C), "N_opt": float(n), "D_opt": float(d)} for C, n, d in zip(budgets, n_opt, d_opt)],
            "note": "N_opt ∝ C^a with a = β/(α+β); Chinchilla ≈ 0.5, Kaplan ≈ 0.73"}


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def claims(corpus: str, r: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims-table rows of one corpus."""
    rows = []
    lc = r["L_C_fit"]
    if "error" in lc:
        ours, verdict = f"no L(C) fit: {lc['error']}", "not measured"
    else:
        p, ci = lc["params"], lc["ci95"].get("alpha")
        ours = f"b = −{p['alpha']:.3g}" + (f" (95% CI −{ci[1]:.3g}…−{ci[0]:.3g})" if ci else "") + \
            f", c = {p['E']:.3g} nats on {lc['n_points']} frontier cells"
        verdict = "agree" if p["alpha"] > 0 and (not ci or ci[0] > 0) else "disagree"
    rows.append({"intuition": "Scaling compute predictably lowers loss", "claim": f"[{corpus}] L(C) = a·C^b + c "
                 "with b < 0 on the compute frontier", "ours": ours,
                 "criterion": "fitted b < 0 with its bootstrap interval excluding 0", "verdict": verdict})
    h = r["holdout"]
    for form in ("L_ND", "L_C"):
        pred = h.get(form, {})
        if "error" in h or "error" in pred:
            ours, verdict = f"no prediction: {h.get('error') or pred.get('error')}", "not measured"
        else:
            ours = (f"predicted {pred['predicted']:.4g} [{pred['ci95'][0]:.4g}, {pred['ci95'][1]:.4g}] vs measured "
                    f"{pred['measured']:.4g} ({100 * pred['relative_error']:+.1f}%), from {h['n_fit_cells']} cells "
                    f"with ≥ {h['compute_ratio']:.0f}× less compute")
            verdict = "agree" if abs(pred["relative_error"]) <= PREDICTION_TOLERANCE else "disagree"
        name = "L(N, D)" if form == "L_ND" else "frontier L(C)"
        rows.append({"intuition": "Predict big from small (GPT-4 report)", "claim": f"[{corpus}] the largest run's "
                     f"loss follows from {name} fitted on runs with ≥ 100× less compute", "ours": ours,
                     "criterion": f"|relative error| ≤ {PREDICTION_TOLERANCE:.0%}", "verdict": verdict})
    if r.get("E_vs_floor"):
        e = r["E_vs_floor"]
        ci = e["E_ci95"]
        inside = ci is not None and ci[0] <= e["floor"] <= ci[1]
        rows.append({"intuition": "Loss has an irreducible part (the data's entropy)", "claim": f"[{corpus}] the "
                     "fitted E of L(N, D) is the language's entropy rate H",
                     "ours": f"E = {e['E']:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "") +
                     f" vs H = {e['floor']:.4g} ({100 * e['relative_error']:+.1f}%)",
                     "criterion": "H inside E's bootstrap interval, or |E − H| ≤ 5% of H",
                     "verdict": "agree" if inside or abs(e["relative_error"]) <= 0.05 else "disagree"})
    opt = r["compute_optimal"]
    if "error" not in opt:
        ci = opt["exponent_ci95"]
        ours = f"a = {opt['exponent_a']:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")
        verdict = "not measured" if not ci else "agree" if ci[0] <= 0.5 <= ci[1] else "disagree"
        rows.append({"intuition": "Scale size and data together (Chinchilla)", "claim": f"[{corpus}] N_opt ∝ C^a "
                     "with a ≈ 0.5", "ours": ours, "criterion": "0.5 inside a's bootstrap interval",
                     "verdict": verdict})
    return rows


def report_section(runs: pd.DataFrame, out_dir: Path) -> tuple[dict, dict, list, Any]:
    """The laws section (contract: limitlab.studies.scaling)."""
    from limitlab.studies.scaling.laws_figures import write_figures

    table = cells(runs)
    results: dict[str, Any] = {"runs": {k: int(v) for k, v in runs["status"].value_counts().items()},
                               "holdout_ratio": HOLDOUT_RATIO, "n_boot": N_BOOT, "corpora": {}}
    figures: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for corpus, c in table.groupby("corpus", sort=True):
        r = analyze_corpus(c.reset_index(drop=True))
        figures.update(write_figures(corpus, c, r, Path(out_dir)))
        r.pop("_fits")
        results["corpora"][corpus] = r
        rows += claims(corpus, r)

    def render(page: Any) -> None:
        _render(page, results, figures)

    return results, figures, rows, render


def _fit_row(name: str, f: dict[str, Any]) -> dict[str, Any]:
    if "error" in f:
        return {"fit": name, "note": f["error"]}
    row: dict[str, Any] = {"fit": name, "points": f["n_points"]}
    for k, v in f["params"].items():
        ci = f["ci95"].get(k)
        row[k] = f"{v:.6g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")
    return row


def _render(page: Any, results: dict[str, Any], figures: dict[str, str]) -> None:
    page.paragraph("A ladder of model sizes × token budgets, one run per cell with a cosine schedule ending at its "
                   "budget. N counts all parameters (embeddings included), D the scored training tokens, "
                   "C = 6·N_matmul·D + 6·n_layers·T·d·D FLOPs. Fits: Huber (δ = 1e-3) on log L, summed, log-sum-exp "
                   "parameterisation, L-BFGS from the best points of a start grid, "
                   f"{results['n_boot']} bootstrap refits for the 95% intervals; parameters unrounded.")
    if not results["corpora"]:
        page.paragraph("No finished laws runs yet.", css="error")
    for corpus, r in results["corpora"].items():
        page.heading(f"Corpus: {corpus}", level=3)
        if r["entropy_floor"] is not None:
            page.paragraph(f"Known entropy floor H = {r['entropy_floor']:.6g} nats/token (closed form).")
        page.table([_fit_row("L(N, D) all cells", r["full_fit"]),
                    _fit_row(f"L(N) at {r['L_N_fit'].get('steps', '?')} steps", r["L_N_fit"]),
                    _fit_row("L(C) frontier (c = E, b = −alpha, a = A)", r["L_C_fit"])],
                   caption=f"{corpus}: fitted laws (value [95% CI])")
        h = r["holdout"]
        if "error" not in h:
            rows = []
            for form, name in (("L_ND", "L(N, D)"), ("L_C", "frontier L(C)")):
                p = h[form]
                rows.append({"law": name, "predicted": p.get("predicted"), "95% CI": p.get("ci95"),
                             "measured": p.get("measured"), "relative error": p.get("relative_error"),
                             "inside CI": p.get("inside_ci"), "note": p.get("error")})
            page.table(rows, caption=f"{corpus}: held-out largest run (N = {h['held']['N']:.4g}, D = "
                                     f"{h['held']['D']:.4g}, C = {h['held']['C']:.3g}) predicted from "
                                     f"{h['n_fit_cells']} cells with ≥ {h['compute_ratio'] or math.nan:.0f}× "
                                     "less compute")
        for key, caption in (("loss_vs_N", "test loss vs N per budget; dashed: L(N, D) fit; star: held-out run, "
                                           "error bar: its prediction from ≥ 100× less compute"),
                             ("loss_vs_D", "test loss vs training tokens per model size; dashed: L(N, D) fit"),
                             ("loss_vs_C", "test loss vs compute; line: frontier L(C) fit on the cheap cells, "
                                           "extrapolated to the held-out run"),
                             ("nopt", "compute-optimal N_opt(C) from the L(N, D) fit (band: bootstrap)")):
            if f"{corpus}/{key}" in figures:
                page.figure(figures[f"{corpus}/{key}"], f"{corpus}: {caption}")
        opt = r["compute_optimal"]
        if "error" not in opt:
            page.table(opt["table"], caption=f"{corpus}: N_opt(C) (a = {opt['exponent_a']:.4g}; {opt['note']})")
        page.table(pd.DataFrame(r["cells"])[["size", "n_layers", "d_model", "steps", "N", "D", "C", "loss",
                                             "seeds"]], caption=f"{corpus}: measured cells (mean test loss, nats)")
