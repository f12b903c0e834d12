"""The icl report: evaluate every finished icl run in a store and write results.json, figures and index.html.

``write_report(store, out_dir)`` groups the runs by pretraining distribution (:mod:`.results`), evaluates each
group's models and every baseline on the same prompts (:mod:`.evaluate`), and writes::

    results.json        every number on the page (schema "limitlab.icl.report/1", below)
    curves_<group>.png  error vs in-context examples per evaluation family, all baselines and the Bayes curve
    ood_<group>.png     Garg's out-of-distribution prompt sets (dense linear models)
    nnz.png, alpha.png, freq.png, rare.png   Yadlowsky's sweeps (when the store has the runs)
    index.html          claims, protocol, figures

results.json::

    runs      {total, done, failed, pending, running, used}
    groups    [{label, pretrain, task, family, d, n_points, fmt, seeds, run_ids, steps, eval_prompts, eval_seconds,
                sparsity, freq_min, freq_max, families, weights}]
    curves    [{group, key, kind, value, family, predictor, index, mean, low, high, n_prompts,
                (transformer:) n_seeds, seed_means}]     errors ÷ Var y; band: 90% bootstrap over prompts
    sweeps    {nnz | alpha | freq: [{series, group, x, k, mean, low, high}]}
    rare      [{series, group, x = sine weight, k, mean, low, high}]
    claims, protocol, warnings, figures, timing {evaluation_seconds, device}, store, study, schema
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from limitlab.report import VERDICT_CLASSES, Page
from limitlab.report import write_report as write_folder
from limitlab.report.scale import add_scale_banner
from limitlab.store import RunStore
from limitlab.studies.icl.claims import claims_table, protocol_table
from limitlab.studies.icl.evaluate import CONFIDENCE, EVAL_SEED
from limitlab.studies.icl.figures import curve_grid, sweep_figure
from limitlab.studies.icl.results import analyze, sweep_k
from limitlab.studies.icl.study import ReportOptions

SCHEMA = "limitlab.icl.report/1"


def _figures(res: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    figs, index = {}, {}
    recs = res["curves"]
    for g in res["_groups"]:
        mine = [r for r in recs if r["group"] == g.label]
        keys = list(dict.fromkeys(r["key"] for r in mine if r["kind"] == "family"))
        safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in g.label)
        if keys:
            name = f"curves_{safe}.png"
            figs[name] = curve_grid(mine, keys, f"pretrained on {g.label}: error vs in-context examples")
            index[f"curves/{g.label}"] = name
        ood = list(dict.fromkeys(r["key"] for r in mine if r["kind"] == "ood"))
        if ood:
            name = f"ood_{safe}.png"
            figs[name] = curve_grid(mine, ood, f"pretrained on {g.label}: Garg's prompt distribution shifts", cols=4)
            index[f"ood/{g.label}"] = name
    titles = {"nnz": ("non-zero weights (nnz)", "sparsity sweep at k = ⌊d/2⌋ in-context examples", False),
              "alpha": ("α (weight of the linear part)", "α·linear + (1−α)·sine, at the last index", False),
              "freq": ("sine frequency ω", "frequency sweep at the last index", True)}
    for kind, (xl, title, log_x) in titles.items():
        pts = res["sweeps"][kind]
        if pts:
            shade = None
            if kind == "freq":
                info = next(g for g in res["groups"] if g["label"] == pts[0]["group"])
                shade = (info["freq_min"] or 1.0, info["freq_max"] or 2.0)
            figs[f"{kind}.png"] = sweep_figure(pts, xl, title, log_x, shade)
            index[kind] = f"{kind}.png"
    if res["rare"]:
        figs["rare.png"] = sweep_figure(res["rare"], "weight of the sine family in pretraining",
                                        "rare-family sweep, at the last index")
        index["rare"] = "rare.png"
    return figs, index


def _page(res: dict[str, Any], store_root: str) -> Page:
    page = Page("In-context regression: function classes and pretraining mixtures",
                "Reproduction of Garg et al. 2022 (what can transformers learn in context?) and Yadlowsky et al. 2023 "
                "(pretraining mixtures and model selection): a transformer against least squares, Lasso and "
                "exact Bayes-optimal predictors on the same prompts.")
    runs = res["runs"]
    page.paragraph(f"Store {store_root}: {runs['total']} icl run(s), {runs['done']} done, {runs['failed']} failed, "
                   f"{runs['pending'] + runs['running']} unfinished; {runs['used']} evaluated. Errors are squared "
                   f"errors divided by Var y of the evaluation set (Garg: ÷d dense and ReLU net, ÷k sparse, ÷1 "
                   f"tree; the zero predictor scores 1), averaged over prompts drawn once from seed {EVAL_SEED} and "
                   f"shared by every model and baseline; bands are {CONFIDENCE:.0%} percentile bootstraps over "
                   f"prompts. Evaluation took {res['timing']['evaluation_seconds']:.0f} s on "
                   f"{res['timing']['device']}.")
    if not runs["used"]:
        page.paragraph("No finished icl runs with saved weights in this store: run `limitlab run icl --preset quick` "
                       "first.", css="error")
    for w in res["warnings"]:
        page.paragraph(w, css="note")
    page.heading("Claims")
    page.table(res["claims"], columns=["claim", "source", "scope", "ours", "criterion", "verdict"],
               highlight={"verdict": VERDICT_CLASSES})
    page.heading("Protocol: paper vs ours")
    page.table(res["protocol"], columns=["item", "paper", "ours", "status", "note"])
    page.heading("Models evaluated")
    page.table([{k: g[k] for k in ("label", "task", "d", "n_points", "fmt", "seeds", "steps", "eval_prompts",
                                   "eval_seconds")} for g in res["groups"]])
    figs = res["figures"]
    page.heading("Error curves")
    for key, name in figs.items():
        if key.startswith("curves/"):
            page.figure(name, f"Pretrained on {key[7:]}: normalised squared error vs number of in-context examples; "
                              "transformer (black) with its bootstrap band, baselines, Bayes (dashed).")
    for key, name in figs.items():
        if key.startswith("ood/"):
            page.heading("Out-of-distribution prompts (Garg)")
            page.figure(name, f"Pretrained on {key[4:]}: random quadrants, orthogonal / overlapping query, half "
                              "subspace, skewed covariance, scaled x and y, noisy y.")
    captions = {"nnz": "Error vs sparsity of the evaluation function at a fixed context (k = ⌊d/2⌋).",
                "alpha": "Error on α·linear + (1−α)·sine at the last index, against the Bayes predictor that knows α.",
                "freq": "Error vs sine frequency at the last index; the pretraining range is shaded.",
                "rare": "Sine- and dense-family error vs the sine family's weight in pretraining."}
    if any(k in figs for k in captions):
        page.heading("Yadlowsky's sweeps")
        for key, caption in captions.items():
            if key in figs:
                page.figure(figs[key], caption)
    sweep_rows = [{"sweep": kind, "series": p["series"], "x": p["x"], "k": p["k"], "mean": p["mean"],
                   "low": p["low"], "high": p["high"]} for kind, pts in res["sweeps"].items() for p in pts]
    if sweep_rows:
        page.heading("Sweep numbers", level=3)
        page.table(sweep_rows)
    return page


def write_report(store: RunStore, out_dir: str | Path, device: str | None = None, quiet: bool = False,
                 options: ReportOptions | None = None) -> Path:
    """Evaluate the store's icl runs and write the report folder; returns the path of index.html."""
    options = options or ReportOptions()
    def progress(msg: str) -> None:
        if not quiet:
            print(f"icl report: evaluating {msg}", file=sys.stderr, flush=True)

    res = analyze(store, device, progress, options.eval_prompts, options.eval_full)
    frame = store.to_dataframe("icl")
    used = {rid for g in res["groups"] for rid in g["run_ids"]}
    runs = frame[frame["run_id"].isin(used)] if len(frame) else frame
    res["claims"] = claims_table(res)
    res["protocol"] = protocol_table(runs, options.eval_prompts)
    figs, index = _figures(res)
    res["figures"] = index
    page = _page(res, str(store.root))
    add_scale_banner(page, "icl", runs)
    results = {k: v for k, v in res.items() if not k.startswith("_")}
    results.update({"schema": SCHEMA, "study": "icl", "store": str(store.root),
                    "sweep_k": {g.label: {k: sweep_k(g.task, k) for k in ("nnz", "alpha", "freq")}
                                for g in res["_groups"]}})
    return write_folder(out_dir, results, figs, page)
