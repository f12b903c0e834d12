"""The counting report: results.json, PNG figures and index.html from whatever counting runs are in a store.

``write_report(store, out_dir)`` works on any subset of the grid (a smoke store of 2 d × 2 m × 1 seed, a half
finished sweep, one task only): missing cells are left blank, fits say when they have too few points, and the
protocol table is read from the stored specs, never assumed. Files written to ``out_dir``::

    results.json                  every number on the page (schema below)
    heatmap_<task>_<variant>.png  test accuracy over d × m (mean over seeds); m = d and mean m_thr marked
    mthr_<task>.png               m_thr vs d: seeds, mean ± 95% CI, censored points, fit line, m = d line
    constructed_<task>.png        hand-wired models vs trained accuracy on the trained (d, m) grid (QC: histogram
                                  and CountAttend; MFC: histogram + max head)
    ood.png                       ood_long (2·n tokens) accuracy vs test accuracy, one point per run
    index.html                    all of the above, with the paper-vs-ours table

results.json (``"schema": "limitlab.counting.report/2"``, typed by :class:`.schema.CountingResults` and validated
before it is written; NaN is written as null)::

    runs         {total, done, failed, pending, running, used}
    grid         {tasks, variants, d, m, seeds}               what the finished runs cover
    protocol     [{item, paper, ours, status, note}]          status: same | departure | paper unknown
    results      {task: {variant: {
                   accuracy:   [{d, m, seeds, mean, std, ood_mean}],
                   m_thr:      [{d, seeds, n_exact, n_right, n_left, mean, std, ci95: [lo, hi] | null,
                                 ci95_clipped, label,
                                 per_seed: [{seed, m_thr | null, censored, bound, label, recovers}]}],
                   fit:        {status, reason, a, b, r2, a_stderr, a_ci95, n_points, n_d, n_censored, censored},
                   transition: {curves, median_ratio, median_width},
                   ood:        {runs, test_mean, ood_mean, n_learned, test_learned, ood_learned, ratio}}}}
    constructions {available, error, tasks, query, bos, n_sequences, splits, seconds,
                   cells: [{task, d, m, n, histogram, histogram_ood, histogram_exact_regime, count_attend,
                            count_attend_ood, count_attend_mlp_width, trained_mlp_width, trained: {variant: acc},
                            trained_ood: {variant: acc}}]}
    claims       [{claim, source, scope, ours, criterion, verdict}]   verdict: agree | disagree | not measured
    warnings     [str]
    figures      {key: file name}, e.g. "mthr/qc": "mthr_qc.png"
    level, store, study, schema

Version 2 of the schema (was 1): ``ci95`` of m_thr is the t-interval clipped at 0 and ``ci95_clipped`` says when
the clip bit (with 2 seeds the raw interval reaches below 0). Modules: :mod:`.results` computes the numbers
(:func:`analyze`) with :mod:`limitlab.analysis`, :mod:`.protocol` the protocol table, :mod:`.claims` the verdicts,
:mod:`.figures` the figures; this module builds the page and writes everything with
:func:`limitlab.report.write_report`.

>>> from limitlab.store import RunStore                                    # doctest: +SKIP
>>> write_report(RunStore("limitlab-store"), "reports/counting")           # doctest: +SKIP
PosixPath('reports/counting/index.html')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from limitlab.report import VERDICT_CLASSES, Page, show
from limitlab.report import write_report as write_folder
from limitlab.report.scale import add_scale_banner
from limitlab.studies.counting import analysis as A
from limitlab.studies.counting.figures import make_figures
from limitlab.studies.counting.protocol import protocol_table
from limitlab.studies.counting.results import RESULTS_SCHEMA, Report, analyze
from limitlab.studies.counting.schema import CountingResults

__all__ = ["RESULTS_SCHEMA", "Report", "analyze", "protocol_table", "write_report"]


def _page(rep: Report, store_root: str) -> Page:
    """index.html: claims, protocol, m_thr, heatmaps, constructions and length generalisation, in that order."""
    r = rep.results
    page = Page("Counting: when can transformers count to n?",
                "Reproduction of Yehudai et al. 2024 (arXiv 2407.15160): QC and MFC accuracy over embedding size d × "
                "vocabulary m, the threshold m_thr, hand-wired constructions and length generalisation.")
    g = r["grid"]
    runs = r["runs"]
    page.paragraph(f"Store {store_root}: {runs['total']} counting run(s), {runs['done']} done, {runs['failed']} "
                   f"failed, {runs['pending'] + runs['running']} unfinished. Grid in this report: tasks "
                   f"{show(g['tasks'])}; variants {show(g['variants'])}; d ∈ {{{show(g['d'])}}}; m ∈ "
                   f"{{{show(g['m'])}}}; seeds {show(g['seeds'])}.")
    if not runs["used"]:
        page.paragraph("No finished counting runs in this store: nothing to analyse yet. Run "
                       "`limitlab run counting --preset smoke` first.", css="error")
    for w in r["warnings"]:
        page.paragraph(w, css="note")

    page.heading("Paper's claims vs our numbers", anchor="claims")
    page.paragraph("Source tags (reference/counting.md): [V] checked in a source, [B] from a news article about the "
                   "paper only, [R] recalled, unverified, [A] our own analysis. A verdict is 'not measured' when the "
                   "runs in this store cannot decide it.")
    page.table(r["claims"], columns=["claim", "source", "scope", "ours", "criterion", "verdict"],
               highlight={"verdict": VERDICT_CLASSES})

    page.heading("Protocol: ours vs the paper's", anchor="protocol")
    page.paragraph("Read from the specs of the runs used here. 'departure' = differs from what the paper is "
                   "reported to use; 'paper unknown' = not stated in the sources consulted, so this is our choice.")
    page.table(r["protocol"], columns=["item", "paper", "ours", "status", "note"],
               highlight={"status": {"departure": "warn", "same": "good", "paper unknown": "muted"}})

    page.heading("Threshold vocabulary m_thr", anchor="mthr")
    page.paragraph(f"m_thr is the first m at which test accuracy falls from ≥ {r['level']:g} to < {r['level']:g}, "
                   "linearly interpolated between grid points, per (task, variant, d, seed). A curve that never falls "
                   "is right-censored ('> max m'), one already below at the smallest m is left-censored ('< min m'); "
                   "censored values are shown as bounds, never averaged, and excluded from the fit. Spread: std and "
                   "a 95% Student-t interval over the uncensored seeds, clipped at 0 (m_thr cannot be negative; with "
                   "2 seeds the t-interval is very wide) and then shown as [low, high]. Fit: least squares "
                   "m_thr = a·d + b on the per-seed uncensored points; a fit needs ≥ 3 points over ≥ 2 distinct d.")
    fit_rows = []
    for task, by_variant in r["results"].items():
        for variant, res in by_variant.items():
            f = res["fit"]
            fit_rows.append({"task": task, "variant": variant, "status": f["status"], "a": f["a"],
                             "a 95% CI": f["a_ci95"], "b": f["b"], "R²": f["r2"], "points": f["n_points"],
                             "censored (excluded)": f["n_censored"], "note": f["reason"]})
    page.table(fit_rows, caption="Linear fit m_thr = a·d + b")
    for task, by_variant in r["results"].items():
        page.heading(f"{task.upper()}", level=3)
        if f"mthr/{task}" in rep.figures:
            page.figure(rep.figures[f"mthr/{task}"], f"{task.upper()}: m_thr vs d (dotted: m = d; dashed: fit)")
        for variant, res in by_variant.items():
            rows = [{"d": x["d"], "m_thr": x["label"], "mean": x["mean"], "std": x["std"], "95% CI": x["ci95"],
                     "CI clipped at 0": x["ci95_clipped"], "seeds": x["seeds"], "censored >": x["n_right"],
                     "censored <": x["n_left"]} for x in res["m_thr"]]
            page.table(rows, caption=f"{task}/{variant}: m_thr per d")

    page.heading("Accuracy over d × m", anchor="heatmaps")
    for key, name in rep.figures.items():
        if key.startswith("heatmap/"):
            _, task, variant = key.split("/", 2)
            page.figure(name, f"{task.upper()} / {variant}: test accuracy, mean over seeds (grey = no run)")

    page.heading("Hand-wired constructions vs trained models", anchor="constructions")
    cons = r["constructions"]
    if not cons.get("available"):
        page.paragraph(f"Constructions not evaluated: {cons.get('error')}", css="error")
    else:
        page.paragraph(
            f"On every (task, d, m, n) of the trained runs. QC: the histogram construction (1 layer, 1 head, no "
            f"LayerNorm, no positions, a BOS token; exact when m ≤ d − 1) and, where it cannot be exact (m ≥ d), "
            f"CountAttend (random near-orthogonal codes, a large attention temperature β and an MLP that inverts the "
            f"BOS attention mass; its MLP width is chosen for n). MFC: the histogram at every position plus a second "
            f"layer that selects the largest count (exact when m ≤ d − 2). QC query format: {cons['query']}. "
            f"Accuracy on {cons['n_sequences']} test sequences per split ({cons['seconds']} s). The constructions "
            f"use a BOS token and their own widths, so they show what is expressible at this d, not what training "
            f"finds.")
        for task in cons["tasks"]:
            page.heading(f"{task.upper()}: constructed vs trained", level=3)
            if f"constructed/{task}" in rep.figures:
                page.figure(rep.figures[f"constructed/{task}"],
                            f"{task.upper()}: trained vs hand-wired accuracy on the same (d, m) grid")
            rows = []
            for c in (c for c in cons["cells"] if c["task"] == task):
                row = {"d": c["d"], "m": c["m"], "n": c["n"]}
                row.update({f"trained {v}": a for v, a in c["trained"].items()})
                row.update({"histogram": c["histogram"], "histogram ood": c.get("histogram_ood")})
                if task == "qc":
                    row.update({"CountAttend": c.get("count_attend"), "CountAttend ood": c.get("count_attend_ood"),
                                "CountAttend MLP width": c.get("count_attend_mlp_width")})
                row["trained MLP width"] = c.get("trained_mlp_width")
                rows.append(row)
            page.table(rows, caption=f"{task.upper()}: accuracy per cell (ood = the ood_long split, 2·n tokens)")

    page.heading("Length generalisation (ood_long: 2·n tokens)", anchor="ood")
    if "ood" in rep.figures:
        page.figure(rep.figures["ood"], "ood_long vs test accuracy per run; dashed: test accuracy 0.8")
    ood_rows = [{"task": t, "variant": v, **(res["ood"] or {})} for t, bv in r["results"].items()
                for v, res in bv.items()]
    page.table(ood_rows, columns=["task", "variant", "runs", "test_mean", "ood_mean", "n_learned", "test_learned",
                                  "ood_learned", "ratio"],
               caption="Mean accuracy; 'learned' = runs with test accuracy ≥ 0.8")
    page.paragraph("Files: results.json holds every number on this page.")
    return page


def write_report(store: Any, out_dir: str | Path, level: float = A.LEVEL, constructions: bool = True,
                 construction_sequences: int | None = None) -> Path:
    """Analyse the counting runs of ``store`` and write results.json, figures and index.html to ``out_dir``.

    ``construction_sequences``: test sequences per cell for the hand-wired models (default: 256, fewer on large
    grids so the constructions take about two CPU minutes). Returns the path of index.html.

    >>> write_report(RunStore("limitlab-store"), "reports/counting")      # doctest: +SKIP
    PosixPath('reports/counting/index.html')
    """
    raw = store.to_dataframe("counting")
    rep = analyze(raw, level, constructions, construction_sequences)
    keys, figures = make_figures(rep) if len(rep.runs) else ({}, {})
    rep.figures = keys
    rep.results["figures"] = dict(keys)
    rep.results["store"] = str(getattr(store, "root", ""))
    page = _page(rep, str(getattr(store, "root", "")))
    add_scale_banner(page, "counting", raw)
    return write_folder(out_dir, rep.results, figures, page, CountingResults)
