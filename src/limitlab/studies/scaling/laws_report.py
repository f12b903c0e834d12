"""Analysis and report section of the scaling-laws experiment (claims: :data:`.laws.CLAIMS`).

Each seed is one replicate of the whole ladder (every (size, budget) cell is its own run per seed), so every
fit is made **per seed** and every claim's interval is over seeds:

1. **Full fit** L(N, D) = E + A/N^α + B/D^β on all of a seed's cells: the compute-optimal exponent
   a = β/(α+β) (N_opt ∝ C^a) and, on the Markov corpus, E against the known entropy rate H.
2. **Held-out prediction** (GPT-4 style): the cell with the most compute is held out; L(N, D) on the cells with
   ≥ 100× less compute and L(C) = E + A·C^(−α) on their compute frontier predict its loss; the relative error
   (measured − predicted)/measured per seed gives the prediction's 95% interval over seeds.
3. **Power law vs the alternatives**: the same cheap frontier cells also fit a log-linear law a − b·log C and an
   exponential E + A·exp(−k·C/C_fit); each law predicts the seed's frontier cells above the cut, scored by the RMS
   of its relative error; the claim is the paired per-seed margin of the best alternative over the power
   law.

Figures and tables show the mean over seeds per cell with its 95% interval, and the laws fitted on those means.

>>> import pandas as pd
>>> from limitlab.report.sections import ReportContext
>>> sec = analyze(ReportContext(None, None, pd.DataFrame(), pd.DataFrame()))
>>> [r.verdict for r in sec.claims][:2]
['not measured', 'not measured']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from limitlab.analysis.intervals import aggregate
from limitlab.claims import Measure
from limitlab.report.sections import ReportContext, Section
from limitlab.studies.scaling.fit import Fit, fit_chinchilla, fit_exponential, fit_log_linear, fit_power_law
from limitlab.studies.scaling.laws import CLAIMS

HOLDOUT_RATIO = 100.0  # fit on cells with at most 1/HOLDOUT_RATIO of the held-out compute
MIN_SIZES, MIN_BUDGETS = 4, 3  # a ladder smaller than this (a half-finished sweep) decides no claim
LOSS = "result.test/loss"
COLUMNS = ["corpus", "seed", "size", "steps", "N", "D", "C", "loss", "floor", "d_model", "n_layers"]


def cells(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: corpus, seed, size, steps, N (all parameters), D (tokens), C (FLOPs), test loss."""
    if runs.empty or LOSS not in runs:
        return pd.DataFrame(columns=COLUMNS)
    floor = pd.to_numeric(runs["tags.entropy_floor"], errors="coerce") if "tags.entropy_floor" in runs else np.nan
    frame = pd.DataFrame({
        "corpus": runs["tags.corpus"], "seed": runs["seed"].astype(int), "size": runs["tags.size"].astype(int),
        "steps": runs["tags.steps"].astype(int), "N": runs["tags.n_params"].astype(float),
        "D": runs["tags.tokens"].astype(float), "C": runs["tags.flops"].astype(float),
        "loss": pd.to_numeric(runs[LOSS], errors="coerce"), "floor": floor, "d_model": runs["tags.d_model"],
        "n_layers": runs["tags.n_layers"]})
    return frame[np.isfinite(frame["loss"])].sort_values(["corpus", "C", "seed"]).reset_index(drop=True)


def means(c: pd.DataFrame) -> pd.DataFrame:
    """One row per (size, steps): N, D, C, the mean loss over seeds with its 95% interval (``low``, ``high``)."""
    agg = aggregate(c, ["size", "steps"], "loss", bounds=(0.0, math.inf))
    first = c.groupby(["size", "steps"], as_index=False)[["N", "D", "C", "d_model", "n_layers"]].first()
    out = first.merge(agg.rename(columns={"mean": "loss", "ci_low": "low", "ci_high": "high", "n": "seeds"}),
                      on=["size", "steps"])
    return out[["size", "steps", "n_layers", "d_model", "N", "D", "C", "loss", "low", "high", "seeds"]].sort_values(
        "C").reset_index(drop=True)


def frontier(c: pd.DataFrame) -> pd.DataFrame:
    """Cells on the compute frontier: lower loss than every cell with less (or equal) compute."""
    c = c.sort_values("C")
    best, keep = math.inf, []
    for i, loss in zip(c.index, c["loss"]):
        if loss < best:
            keep.append(i)
            best = loss
    return c.loc[keep]


def _try(fn: Any, *args: Any) -> Fit | None:
    try:
        return fn(*args)
    except ValueError:
        return None


def _rel_error(law: Any, x: np.ndarray, measured: np.ndarray) -> float:
    """RMS of the relative error (predicted − measured)/measured (finite even where a law predicts a loss ≤ 0)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        pred = np.asarray(law.predict(x), dtype=float)
        return float(np.sqrt(np.mean(((pred - measured) / measured) ** 2)))


def replicate(c: pd.DataFrame) -> dict[str, Any]:
    """Every fit of one seed's ladder (or of the mean cells): the numbers the claims and tables use."""
    out: dict[str, Any] = {"n_cells": len(c)}
    full = _try(fit_chinchilla, c["N"], c["D"], c["loss"])
    out["full"] = full
    out["a_opt"] = full.params["a_opt"] if full else math.nan
    out["E"] = full.params["E"] if full else math.nan
    held = c.loc[c["C"].idxmax()]
    cut = held["C"] / HOLDOUT_RATIO
    cheap = c[c["C"] <= cut]
    front_cheap, front_above = frontier(cheap), frontier(c)
    front_above = front_above[front_above["C"] > cut]
    out.update(held_C=float(held["C"]), held_loss=float(held["loss"]), n_fit_cells=len(cheap),
               n_frontier_cells=len(front_cheap), n_scored_cells=len(front_above),
               compute_ratio=float(held["C"] / cheap["C"].max()) if len(cheap) else math.nan)
    out["held_nd"] = _try(fit_chinchilla, cheap["N"], cheap["D"], cheap["loss"])
    out["held_c"] = _try(fit_power_law, front_cheap["C"], front_cheap["loss"])
    for key, fit, x in (("lnd", out["held_nd"], (held["N"], held["D"])), ("lc", out["held_c"], (held["C"],))):
        pred = float(fit.predict(*x)[0]) if fit else math.nan
        out[f"pred_{key}"] = pred
        out[f"err_{key}"] = (held["loss"] - pred) / held["loss"]  # (measured − predicted) / measured
    laws = {"power law": out["held_c"]}
    if len(front_cheap):
        laws["log-linear"] = fit_log_linear(front_cheap["C"], front_cheap["loss"])
        laws["exponential"] = fit_exponential(front_cheap["C"], front_cheap["loss"])
    out["alternatives"] = laws
    x, y = front_above["C"].to_numpy(float), front_above["loss"].to_numpy(float)
    out["heldout_error"] = {k: _rel_error(v, x, y) if v is not None and not getattr(v, "error", "") and len(x)
                            else math.nan for k, v in laws.items()}
    alt = [v for k, v in out["heldout_error"].items() if k != "power law" and math.isfinite(v)]
    out["best_alternative_error"] = min(alt) if len(alt) == 2 else math.nan
    return out


def _public(r: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able numbers of :func:`replicate` (fits as their parameters)."""
    out = {k: v for k, v in r.items() if not isinstance(v, (Fit, dict)) and v is not None}
    for key in ("full", "held_nd", "held_c"):
        out[key] = r[key].params if r[key] is not None else None
    out["heldout_error"] = r["heldout_error"]
    out["alternatives"] = {k: getattr(v, "params", None) for k, v in r["alternatives"].items() if v is not None}
    return out


def analyze_corpus(c: pd.DataFrame) -> dict[str, Any]:
    """Per-seed replicates, the mean-cell fits, and one :class:`Measure` per claim of one corpus's runs."""
    seeds = sorted(c["seed"].unique())
    per_seed = {int(s): replicate(c[c["seed"] == s].reset_index(drop=True)) for s in seeds}
    mean_cells = means(c)
    mean_fit = replicate(mean_cells)
    top = mean_cells[mean_cells["steps"] == mean_cells["steps"].max()]
    mean_fit["L_N"] = _try(fit_power_law, top["N"], top["loss"])
    mean_fit["L_C"] = _try(fit_power_law, frontier(mean_cells)["C"], frontier(mean_cells)["loss"])
    floor = c["floor"].dropna()
    H = float(floor.iloc[0]) if len(floor) else None
    by = {k: {s: r[k] for s, r in per_seed.items()} for k in ("err_lc", "err_lnd", "a_opt", "E",
                                                               "best_alternative_error")}
    power = {s: r["heldout_error"]["power law"] for s, r in per_seed.items()}
    measures = {
        "power_law": Measure.paired(by["best_alternative_error"], power),
        "predict_lc": Measure.of(list(by["err_lc"].values())),
        "predict_lnd": Measure.of(list(by["err_lnd"].values())),
        "n_opt": Measure.of(list(by["a_opt"].values()), bounds=(0.0, 1.0)),
    }
    if H is not None:
        measures["floor"] = Measure.of([(e - H) / H for e in by["E"].values()], bounds=(-1.0, math.inf))
    return {"per_seed": per_seed, "mean_cells": mean_cells, "mean_fit": mean_fit, "floor": H, "measures": measures,
            "cells": c}


def _percent(m: Measure) -> str:
    return (f"{100 * m.estimate:+.1f}% [{100 * m.low:+.1f}%, {100 * m.high:+.1f}%] over {m.n} seeds"
            if m.n and math.isfinite(m.low) else "")


def analyze(ctx: ReportContext) -> Section:
    """The laws section: per corpus, the claims, the fits, the held-out predictions and the figures."""
    from limitlab.studies.scaling.laws_figures import figures

    sec = Section("laws", "Scaling laws that predict")
    runs = sec.uses(ctx.tagged(experiment="laws"))
    table = cells(runs)
    sec.paragraph("A ladder of model sizes × token budgets, one run per (size, budget, seed) with a cosine schedule "
                  "ending at its budget. N counts all parameters (embeddings included), D the scored training "
                  "tokens, C = (6·N_matmul + 12·n_layers·T·d)·D FLOPs. Fits: Huber (δ = 1e-3) on log L, summed, "
                  "log-sum-exp parameterisation, L-BFGS from the best points of a start grid; parameters unrounded. "
                  "Each seed is a replicate of the whole ladder: every fit is made per seed and every claim's "
                  "interval is a 95% t-interval over seeds.")
    sec.results = {"holdout_ratio": HOLDOUT_RATIO, "corpora": {}}
    found: dict[str, pd.DataFrame] = {}
    for label, c in table.groupby("corpus", sort=True):
        kind = "markov" if str(label).startswith("markov") else str(label)
        if kind in CLAIMS and kind not in found:
            found[kind] = c.reset_index(drop=True)
        elif kind in found:
            sec.warnings.append(f"laws: runs of a second {kind} language ({label}) are left out of the claims")
    for kind, claims in CLAIMS.items():
        if kind not in found:
            for claim in claims:
                sec.not_measured(claim, f"no finished {kind} laws runs")
            continue
        c = found[kind]
        label = str(c["corpus"].iloc[0])
        r = analyze_corpus(c)
        m = r["measures"]
        sizes, budgets = c["size"].nunique(), c["steps"].nunique()
        fit_cells = min(x["n_fit_cells"] for x in r["per_seed"].values())
        for claim in claims:
            what = claim.id.split(f"{kind}_", 1)[1]
            measure = m.get(what)
            if sizes < MIN_SIZES or budgets < MIN_BUDGETS:
                sec.not_measured(claim, f"the finished {label} runs span {sizes} sizes × {budgets} budgets; the "
                                        f"fits need ≥ {MIN_SIZES} × {MIN_BUDGETS}")
                continue
            if measure is None or measure.n == 0:
                sec.not_measured(claim, f"no seed's fit succeeded ({fit_cells} cells with ≤ 1/{HOLDOUT_RATIO:.0f} "
                                        "of the held-out compute in the poorest seed)")
                continue
            if what.startswith("predict") or what == "floor":
                measure = Measure(measure.estimate, measure.low, measure.high, measure.n, measure.values,
                                  _percent(measure))
            sec.judge(claim, measure)
        sec.heading(f"Corpus: {label}")
        _render_corpus(sec, label, r, figures(label, r))
        sec.results["corpora"][label] = _results(r)
    return sec


def _results(r: dict[str, Any]) -> dict[str, Any]:
    return {"entropy_floor": r["floor"], "per_seed": {s: _public(x) for s, x in r["per_seed"].items()},
            "mean_fit": {**_public(r["mean_fit"]), **{k: (r["mean_fit"][k].params if r["mean_fit"][k] else None)
                                                      for k in ("L_N", "L_C")}},
            "mean_cells": r["mean_cells"].to_dict("records"),
            "measures": {k: {"estimate": v.estimate, "low": v.low, "high": v.high, "n": v.n, "values": v.values}
                         for k, v in r["measures"].items()}}


def _fit_row(name: str, fit: Fit | None, n: int) -> dict[str, Any]:
    if fit is None:
        return {"fit": name, "points": n, "note": "too few points"}
    return {"fit": name, "points": fit.n_points, **{k: f"{v:.5g}" for k, v in fit.params.items()}}


def _render_corpus(sec: Section, label: str, r: dict[str, Any], figs: dict[str, Any]) -> None:
    mf, mc = r["mean_fit"], r["mean_cells"]
    if r["floor"] is not None:
        sec.paragraph(f"Known entropy floor H = {r['floor']:.6g} nats/token (closed form).")
    sec.table([_fit_row("L(N, D), all cells", mf["full"], len(mc)),
               _fit_row("L(N) at the largest budget", mf["L_N"], 0),
               _fit_row("L(C) on the frontier (c = E, b = −alpha, a = A)", mf["L_C"], 0)],
              caption=f"{label}: laws fitted on the mean over seeds of each cell (figures' dashed lines)")
    rows = []
    for s, x in r["per_seed"].items():
        rows.append({"seed": s, "E": x["E"], "a = β/(α+β)": x["a_opt"], "held-out loss": x["held_loss"],
                     "L(C) predicts": x["pred_lc"], "L(N, D) predicts": x["pred_lnd"],
                     "fit cells": x["n_fit_cells"], "compute ratio": x["compute_ratio"],
                     **{f"held-out error: {k}": v for k, v in x["heldout_error"].items()}})
    sec.table(rows, caption=f"{label}: per seed — the fits behind the claims (held-out error: RMS relative "
                            f"error over the frontier cells with more than 1/{HOLDOUT_RATIO:.0f} of the held-out "
                            "compute)")
    captions = {"loss_vs_N": "test loss vs N per budget (mean over seeds, band: 95% interval); dashed: L(N, D) "
                             "fit; star: held-out run, error bar: its prediction's 95% interval over seeds",
                "loss_vs_D": "test loss vs training tokens per model size (mean over seeds, band: 95% interval); "
                             "dashed: L(N, D) fit",
                "loss_vs_C": "test loss vs compute; the three laws fitted on the cheap frontier (C ≤ C_max/100), "
                             "extrapolated to the held-out frontier cells",
                "nopt": "compute-optimal N_opt(C) from the L(N, D) fit of the mean cells; band: range of the "
                        "per-seed fits"}
    for key, fig in figs.items():
        sec.figure(f"laws_{label}_{key}.png", fig, f"{label}: {captions[key]}")
    sec.table(mc, caption=f"{label}: measured cells (mean test loss over seeds, nats, with its 95% interval)")
