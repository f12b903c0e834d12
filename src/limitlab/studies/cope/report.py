"""The CoPE report: results.json, PNG figures and index.html from whatever cope runs are in a store.

``write_cope_report(store, out_dir)`` works on any subset (a smoke store, the quick preset, part of the paper
preset): tables for tasks without runs say so. Files::

    results.json        every number on the page (schema 'limitlab.cope.report/1')
    errors_<task>.png   error per encoding and split: one dot per seed, bar = mean (flip-flop, selective copy)
    extrapolation_<corpus>.png   LM loss per position at 1×, 1.5×, 2×, 2.5× the training context
    cope_map.png        attention and CoPE positions of one flip-flop (or selective copy) test sample
    index.html

results.json sections beyond the common envelope: ``tables`` {flip_flop, selective_copy: [per encoding: split
means, stds, per-seed errors, sequence errors, paper], variable_counting, lm, p_max}, ``curves``
{corpus: {pe: {split: [loss per position]}}}, ``does_not_win`` [sentences], ``cope_map`` {run_id, source, task}.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from limitlab.report.figures import COLORS, new_figure
from limitlab.report.html import VERDICT_CLASSES, Page
from limitlab.report.scale import add_scale_banner
from limitlab.report.write import write_report
from limitlab.studies.cope import results as R

SCHEMA = "limitlab.cope.report/1"
TASK_TITLES = {"flip_flop": "Flip-flop", "selective_copy": "Selective copy"}


def _pct(x: Any) -> Any:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(100 * x, 2)


def _pm(mean: Any, std: Any) -> str:
    if mean is None:
        return "—"
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def _error_figure(rows: list[dict[str, Any]], task: str) -> Any:
    splits = R.SPLITS[task]
    fig = new_figure(2.2 + 1.1 * len(rows) * len(splits) / 2, 3.2)
    ax = fig.subplots()
    width = 0.8 / max(len(rows), 1)
    paper_label = "paper"  # one legend entry for every paper marker
    for k, row in enumerate(rows):
        xs = np.arange(len(splits)) + k * width
        means = [100 * (row[f"{s}_mean"] or 0) for s in splits]
        ax.bar(xs, means, width * 0.9, color=COLORS[k % len(COLORS)], alpha=0.5, label=row["pe"])
        for x, s in zip(xs, splits):
            seeds = [100 * v for v in row[f"{s}_per_seed"]]
            ax.plot([x] * len(seeds), seeds, "o", color=COLORS[k % len(COLORS)], ms=3)
            paper = row.get(f"{s}_paper")
            if paper is not None:
                ax.plot([x], [100 * paper], marker="D", ms=6, mfc="none", mec="black", ls="none", label=paper_label)
                paper_label = None
    ax.set_xticks(np.arange(len(splits)) + width * (len(rows) - 1) / 2)
    ax.set_xticklabels(splits)
    ax.set_ylabel("token error (%)")
    ax.set_ylim(bottom=-3)  # a paper marker at 0% stays visible
    ax.set_title(f"{TASK_TITLES[task]}: bars = mean, dots = seeds, open diamonds = paper", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _counting_figure(rows: list[dict[str, Any]]) -> Any:
    """Variable counting: error (%) vs number of variables, one line per encoding (mean ± seed std) and the
    paper's numbers as open diamonds in the same colour."""
    fig = new_figure(5.0, 3.2)
    ax = fig.subplots()
    for k, pe in enumerate(dict.fromkeys(r["pe"] for r in rows)):  # rows come in the table's encoding order
        mine = sorted((r for r in rows if r["pe"] == pe and r["mean"] is not None), key=lambda r: r["n_vars"])
        color = COLORS[k % len(COLORS)]
        if mine:
            ax.errorbar([r["n_vars"] for r in mine], [100 * r["mean"] for r in mine],
                        yerr=[100 * (r["std"] or 0) for r in mine], marker="o", ms=3, capsize=2, color=color, label=pe)
        for r in (r for r in rows if r["pe"] == pe and r["paper"] is not None):
            ax.plot([r["n_vars"]], [100 * r["paper"]], marker="D", ms=6, mfc="none", mec=color, ls="none")
    if any(r["paper"] is not None for r in rows):  # one black legend entry for the coloured paper markers
        ax.plot([], [], marker="D", ms=6, mfc="none", mec="black", ls="none", label="paper")
    ax.set(xlabel="variables", ylabel="error (%)", ylim=(-3, None), xticks=sorted({r["n_vars"] for r in rows}))
    ax.set_title("Variable counting: ours (lines, ± seed std) vs paper (open diamonds)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _curve_figure(curves: dict[str, dict[str, list[float]]], corpus: str) -> Any:
    fig = new_figure(6.5, 3.4)
    ax = fig.subplots()
    train_len = None
    for k, (pe, by_split) in enumerate(sorted(curves.items())):
        longest = max(by_split, key=lambda s: len(by_split[s]))
        y = np.asarray(by_split[longest], dtype=float)
        w = max(1, len(y) // 40)  # moving average over w positions: one evaluation batch per split is noisy
        smooth = np.convolve(y, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(len(smooth)) + (w + 1) / 2, smooth, color=COLORS[k % len(COLORS)], lw=1,
                label=f"{pe} ({longest})")
        if "test" in by_split:
            train_len = len(by_split["test"])
    if train_len:
        ax.axvline(train_len, color="k", ls=":", lw=1, label="training context T")
    ax.set_xlabel("position in the context")
    ax.set_ylabel("loss (nats/byte), smoothed")
    ax.set_title(f"{corpus}: loss per position at the longest context (mean of seeds)", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _map(store: Any, runs) -> tuple[dict[str, Any], Any]:
    """The CoPE map of one run: a flip-flop (else selective copy) run with stored weights, else the cheapest CoPE
    run retrained from its spec; ({}, None) when there is no CoPE run."""
    from limitlab.studies.cope.attention import cope_maps, map_figure, trained_model

    cand = runs[runs["task"].isin(list(TASK_TITLES)) & (runs["pe"] == "cope") & runs["ablation"].isna()]
    if cand.empty:
        return {}, None
    specs = [store.spec(run_id) for run_id in cand.sort_values(["task", "seed"])["run_id"]]
    stored = [s for s in specs if store.load_weights(s.run_id) is not None]
    spec = stored[0] if stored else min(specs, key=lambda s: (s.train.steps * s.task.seq_len(), s.seed))
    model, source = trained_model(store, spec)
    maps = cope_maps(model, spec)
    task = spec.task.name
    if task == "flip_flop":
        labels = ["wri01"[t] for t in maps["tokens"]]
    else:
        labels = ["." if t == 0 else ">" if t == 1 else chr(ord("A") + t - 2) for t in maps["tokens"]]
    fig = map_figure(maps, labels, TASK_TITLES[task])
    return {"run_id": spec.run_id, "task": task, "source": source, "seed": int(spec.seed)}, fig


def write_cope_report(store: Any, out_dir: str | Path, attention_map: bool = True) -> Path:
    """Analyse the cope runs of ``store``; write results.json, figures and index.html to ``out_dir``."""
    raw = store.to_dataframe("cope")
    statuses = raw["status"].value_counts().to_dict() if len(raw) else {}
    runs = R.runs_frame(raw) if len(raw) else None
    used = raw[raw["status"] == "done"] if len(raw) else raw
    warnings: list[str] = []
    tables: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    claims: list[dict] = []
    plain: list[str] = []
    cope_map: dict[str, Any] = {}
    if runs is not None and len(runs):
        for task in R.SPLITS:
            tables[task] = R.synthetic_table(runs, task)
            if tables[task]:
                figures[f"errors_{task}.png"] = _error_figure(tables[task], task)
        tables["variable_counting"] = R.counting_table(runs)
        if tables["variable_counting"]:
            figures["counting.png"] = _counting_figure(tables["variable_counting"])
        tables["lm"], curves = R.lm_tables(runs)
        tables["p_max"] = R.pmax_table(runs)
        for corpus, by_pe in curves.items():
            figures[f"extrapolation_{corpus}.png"] = _curve_figure(by_pe, corpus)
        claims, plain = R.claims_table(runs, tables["lm"])
        if attention_map:
            try:
                cope_map, fig = _map(store, runs)
                if fig is not None:
                    figures["cope_map.png"] = fig
            except Exception as exc:  # the map is an illustration: report the failure, keep the tables
                warnings.append(f"CoPE map not drawn: {type(exc).__name__}: {exc}")
    else:
        warnings.append("no finished cope runs in this store; run `limitlab run cope --preset quick` first")
    results = {
        "schema": SCHEMA, "study": "cope", "store": str(getattr(store, "root", "")),
        "runs": {"total": len(raw), "done": int(statuses.get("done", 0)), "failed": int(statuses.get("failed", 0)),
                 "pending": int(statuses.get("pending", 0)), "running": int(statuses.get("running", 0)),
                 "used": len(used)},
        "protocol": R.protocol_table(used) if len(used) else [],
        "claims": claims, "warnings": warnings, "figures": {k[:-4]: k for k in figures},
        "tables": tables, "curves": curves, "does_not_win": plain, "cope_map": cope_map,
    }
    page = _page(results)
    add_scale_banner(page, "cope", raw)
    return write_report(out_dir, results, figures, page)


def _page(r: dict[str, Any]) -> Page:
    page = Page("CoPE: contextual position encoding vs absolute, relative and RoPE",
                "Reproduction of Golovneva et al. 2024 (arXiv 2405.18719) on flip-flop, selective copy, variable "
                "counting and byte-level language modelling, with seeds.")
    runs = r["runs"]
    page.paragraph(f"Store {r['store']}: {runs['total']} cope run(s), {runs['done']} done, {runs['failed']} failed, "
                   f"{runs['pending'] + runs['running']} unfinished.")
    for w in r["warnings"]:
        page.paragraph(w, css="note")
    page.heading("Does CoPE win?", anchor="verdict")
    if r["does_not_win"]:
        page.paragraph("Where CoPE does not win in these runs (the rule: lowest mean, separated from the runner-up by "
                       "more than the larger seed std):", css="note")
        page.bullets(r["does_not_win"])
    elif r["claims"]:
        page.paragraph("CoPE wins every comparison measured here by the separation rule (see the claims table).")
    page.heading("Paper's claims vs our numbers", anchor="claims")
    page.table(r["claims"], columns=["claim", "source", "scope", "ours", "criterion", "verdict"],
               highlight={"verdict": VERDICT_CLASSES})
    page.heading("Protocol: ours vs the paper's", anchor="protocol")
    page.table(r["protocol"], columns=["item", "paper", "ours", "status", "note"],
               highlight={"status": {"departure": "warn", "same": "good", "paper unknown": "muted"}})

    t = r["tables"]
    for task, title in TASK_TITLES.items():
        page.heading(f"{title}: error (%)", anchor=task)
        rows = t.get(task) or []
        if not rows:
            page.paragraph(f"No {title.lower()} runs in this store.")
            continue
        splits = R.SPLITS[task]
        table = []
        for row in rows:
            line = {"encoding": row["pe"], "seeds": row["seeds"]}
            for s in splits:
                line[f"{s}: ours"] = _pm(row[f"{s}_mean"], row[f"{s}_std"])
                line[f"{s}: paper"] = _pct(row[f"{s}_paper"])
                line[f"{s}: seq err"] = _pct(row[f"{s}_seq_mean"])
            table.append(line)
        note = ("flip-flop: the paper reports one 'OOD' column, matched here to the sparse split (FFL(0.98)); "
                if task == "flip_flop" else "")
        page.table(table, caption=f"{title}: token error, mean ± std over seeds (%); 'seq err' = sequences with any "
                                  f"error; {note}paper numbers from its table")
        if f"errors_{task}" in r["figures"]:
            page.figure(r["figures"][f"errors_{task}"], f"{title}: token error (%) per encoding and split; bars: "
                        "mean over seeds, dots: each seed, open diamonds: the paper's number")

    page.heading("Variable counting: error (%)", anchor="counting")
    vc = t.get("variable_counting") or []
    page.table([{"variables": x["n_vars"], "encoding": x["pe"], "seeds": x["seeds"], "ours": _pm(x["mean"], x["std"]),
                 "paper": _pct(x["paper"])} for x in vc] or [{"note": "no counting runs (paper preset only)"}])
    if "counting" in r["figures"]:
        page.figure(r["figures"]["counting"], "Variable counting: error (%) vs number of variables per encoding; "
                    "lines: mean ± seed std, open diamonds: the paper's number")

    page.heading("Language and code modelling: perplexity per byte", anchor="lm")
    lm = t.get("lm") or []
    if lm:
        cols = [k for k in lm[0] if k.endswith("_ppl")]
        page.table([{"corpus": x["corpus"], "encoding": x["pe"], "seeds": x["seeds"],
                     **{k[:-4]: x.get(k) for k in cols}, "paper test ppl (BPE, not comparable)": x["paper_test_ppl"]}
                    for x in lm], caption="Mean over seeds; 'test' is the training context T, ctxNx are N·T")
        for key, name in r["figures"].items():
            if key.startswith("extrapolation_"):
                page.figure(name, f"{key[len('extrapolation_'):]}: test loss per byte position, one line per "
                                  "encoding (moving average); dotted line: the training context")
    else:
        page.paragraph("No LM runs in this store (paper preset only).")

    if t.get("p_max"):
        page.heading("p_max ablation (flip-flop, CoPE): error (%)", anchor="pmax")
        page.table([{"p_max": x["p_max"], "seeds": x["seeds"],
                     **{s: _pm(x[f"{s}_mean"], x[f"{s}_std"]) for s in R.SPLITS["flip_flop"]}} for x in t["p_max"]])

    page.heading("A CoPE attention and position map", anchor="map")
    if "cope_map" in r["figures"]:
        m = r["cope_map"]
        how = "weights stored with the run" if m["source"] == "stored" else \
            "run retrained from its spec (no stored weights; run with --save-weights to keep them)"
        page.paragraph(f"Run {m['run_id']} ({m['task']}, seed {m['seed']}; {how}); test sequence 0. Right: p_ij, the "
                       f"number of gated tokens between key j and query i.")
        page.figure(r["figures"]["cope_map"], "A CoPE model's last layer on one test sequence: attention weights "
                    "(left) and contextual positions p_ij (right); upper triangle (future keys) blank")
    else:
        page.paragraph("No CoPE flip-flop or selective-copy run to draw.")
    page.paragraph("Files: results.json holds every number on this page.")
    return page
