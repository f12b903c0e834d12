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

results.json (``"schema": "limitlab.counting.report/1"``; NaN is written as null)::

    runs         {total, done, failed, pending, running, used}
    grid         {tasks, variants, d, m, seeds}               what the finished runs cover
    protocol     [{item, paper, ours, status, note}]          status: same | departure | paper unknown
    results      {task: {variant: {
                   accuracy:   [{d, m, seeds, mean, std, ood_mean}],
                   m_thr:      [{d, seeds, n_exact, n_right, n_left, mean, std, ci95: [lo, hi] | null, label,
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

>>> from limitlab.store import RunStore                                    # doctest: +SKIP
>>> write_report(RunStore("limitlab-store"), "reports/counting")           # doctest: +SKIP
PosixPath('reports/counting/index.html')
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from limitlab.report.html import VERDICT_CLASSES, Page
from limitlab.studies.counting import analysis as A
from limitlab.studies.counting.study import PAPER_DS, PAPER_MS

__all__ = ["RESULTS_SCHEMA", "Report", "analyze", "protocol_table", "write_report"]

RESULTS_SCHEMA = "limitlab.counting.report/1"
_CONSTRUCTION_BUDGET_S = 120.0  # CPU seconds per construction kind, for the automatic number of test sequences
_SECONDS_PER_UNIT = 8e-11  # measured: one sequence of n tokens through a width-d construction ≈ 8e-11·d·n² s


# ----------------------------------------------------------------------------------------------------------------
# protocol: what the runs did, read from their specs


def _values(raw: pd.DataFrame, column: str, transform: Any = None) -> list:
    if column not in raw:
        return []
    vals = raw[column].map(transform) if transform else raw[column]
    out = []
    for v in vals:
        v = None if (isinstance(v, float) and math.isnan(v)) else v
        if v not in out:
            out.append(v)
    try:
        return sorted(out, key=lambda v: (v is None, v))
    except TypeError:
        return out


def _show(vals: Sequence) -> str:
    if not vals:
        return "—"
    return ", ".join("default" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in vals)


def _readout(row: pd.Series) -> str:
    cap = row.get("task.max_count")
    top = "n" if cap is None or (isinstance(cap, float) and math.isnan(cap)) else str(int(cap))
    if row.get("task.query", "last") == "appended":
        where = "the appended query token (… SEP q)"
    else:
        where = "the last sequence token (the query is the last token)"
    return f"linear head over count classes 0..{top}, read at {where}"


def _per_run(raw: pd.DataFrame) -> pd.DataFrame:
    """One protocol column per item, one row per run (display values)."""
    def col(name: str) -> pd.Series:
        return raw[name] if name in raw else pd.Series([None] * len(raw), index=raw.index, dtype=object)

    def known(value: Any) -> bool:
        return value is not None and value == value

    n, m = col("task.n"), raw["task.m"]
    return pd.DataFrame({
        "layers": col("model.n_layers"), "heads": col("model.n_heads"), "d": col("model.d_model"), "m": m,
        "n_per_m": [float(a) / b if known(a) else 10.0 for a, b in zip(n, m)],
        "optimizer": col("optim.optimizer"), "lr": col("optim.lr"),
        "schedule": [f"{a}, warmup {w}" for a, w in zip(col("optim.schedule"), col("optim.warmup_steps"))],
        "batch": col("train.batch_size"), "steps": col("train.steps"), "eval": col("train.eval_size"),
        "position": col("model.position"), "norm": col("model.norm"),
        "mlp": [f"{int(w) if known(w) else '4·d'} / {a}" for w, a in zip(col("model.d_mlp"), col("model.activation"))],
        "causal": col("model.causal"), "bos": col("task.bos"),
        "readout": [_readout(r) for _, r in raw.iterrows()],
        "variant": col("tags.variant").map(lambda v: v if known(v) else "untagged"),
    }, index=raw.index)


def _ours(per_run: pd.DataFrame, column: str) -> tuple[list, str]:
    """(distinct values, display): one list, or 'variant: values' per variant when the variants differ."""
    vals = _values(per_run, column)
    if len(vals) <= 1 or per_run["variant"].nunique() < 2:
        return vals, _show(vals)
    by = {v: _values(g, column) for v, g in per_run.groupby("variant", sort=False)}
    if all(len(x) == 1 for x in by.values()):
        order = sorted(by, key=lambda v: (v != "base", v))
        return vals, "; ".join(f"{v}: {_show(by[v])}" for v in order)
    return vals, _show(vals)


def protocol_table(raw: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per protocol item: item, paper (value and source tag), ours (the distinct values in the runs, per
    variant where they differ), status ('same' | 'departure' | 'paper unknown'), note. ``raw`` is the store's
    DataFrame restricted to the runs the report uses; nothing here is assumed about what they did."""
    if raw.empty:
        return []
    per_run = _per_run(raw)
    rows: list[dict[str, Any]] = []

    def add(item: str, column: str | None, paper: Any, source: str = "[B]", known: bool = True,
            same: bool | None = None, note: str = "", values: list | None = None) -> None:
        vals, shown = _ours(per_run, column) if column else (values or [], _show(values or []))
        if not known:
            status = "paper unknown"
        elif same if same is not None else (len(vals) == 1 and vals[0] == paper):
            status = "same"
        else:
            status = "departure"
        text = paper if isinstance(paper, str) else _show([paper])
        rows.append({"item": item, "paper": f"{text} {source}".strip(), "ours": shown, "status": status,
                     "note": note})

    ds, ms = _values(per_run, "d"), _values(per_run, "m")
    seeds = raw.assign(variant=per_run["variant"]).groupby(["task.kind", "variant", "model.d_model", "task.m"])[
        "seed"].nunique()
    add("layers", "layers", 2)
    add("heads", "heads", 4)
    add("d (embedding)", "d", "8 … 128, exact grid unknown", known=set(ds) != set(PAPER_DS),
        note=f"study.paper guesses {', '.join(map(str, PAPER_DS))}")
    add("m (vocabulary)", "m", "20 values, 5 … 150", same=set(ms) == set(PAPER_MS))
    add("n per m (n = k·m)", "n_per_m", 10.0)
    add("optimizer", "optimizer", "adam")
    add("learning rate", "lr", 1e-4)
    add("lr schedule", "schedule", "unknown", "", known=False)
    add("batch size", "batch", 16)
    add("steps", "steps", 100_000)
    add("test sequences", "eval", 1600)
    add("seeds per (task, variant, d, m)", None, "unknown", "", known=False, values=sorted(set(seeds.tolist())))
    add("position encoding", "position", "unknown", "", known=False)
    add("LayerNorm", "norm", "unknown", "", known=False)
    add("MLP width / activation", "mlp", "unknown", "", known=False)
    add("causal mask", "causal", "unknown", "", known=False)
    add("BOS token", "bos", "unknown", "", known=False)
    add("query / readout", "readout", "query = last token [R]; readout unknown", "", known=False)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# constructions


def _constructions(trained: pd.DataFrame, raw: pd.DataFrame, n_sequences: int | None,
                   splits: Sequence[str]) -> dict[str, Any]:
    """Hand-wired accuracy on every (task, d, m, n) cell of the trained runs: QC — the histogram model (exact for
    m ≤ d − 1) and, where it cannot be exact, CountAttend; MFC — the histogram + max-selection model (m ≤ d − 2)."""
    try:
        from limitlab.studies.counting import constructions as C
    except ImportError as e:  # the report still works; the test suite insists the module exists
        return {"available": False, "error": f"limitlab.studies.counting.constructions: {e}", "cells": []}
    has_mfc = hasattr(C, "mfc_histogram_model")
    tasks = ["qc", "mfc"] if has_mfc else ["qc"]
    todo = trained[trained["task"].isin(tasks)]
    cells = todo[["task", "d", "m", "n"]].drop_duplicates()
    cells = cells.assign(order=cells["task"].map({"qc": 0, "mfc": 1})).sort_values(["order", "d", "m", "n"])
    qc_raw = raw[raw["task.kind"] == "qc"] if "task.kind" in raw else raw
    query = _values(qc_raw, "task.query") if "task.query" in raw else ["last"]
    query = query[0] if len(query) == 1 and query[0] in ("last", "appended") else "last"
    if n_sequences is None:
        cost = sum(d * n * n * (1 + 4 * ("ood_long" in splits)) for d, n in zip(cells["d"], cells["n"]))
        n_sequences = int(np.clip(_CONSTRUCTION_BUDGET_S / max(cost * _SECONDS_PER_UNIT, 1e-9), 32, 256))
    mlp = {}
    for d, v in zip(raw.get("model.d_model", []), raw.get("model.d_mlp", [])):
        mlp[int(d)] = 4 * int(d) if v is None or v != v else int(v)
    out_cells = []
    started = time.monotonic()
    for task, d, m, n in zip(cells["task"], cells["d"], cells["m"], cells["n"]):
        d, m, n = int(d), int(m), int(n)
        capacity = C.histogram_capacity(d) if task == "qc" else d - 2
        cell: dict[str, Any] = {"task": task, "d": d, "m": m, "n": n, "histogram_exact_regime": m <= capacity,
                                "count_attend": None, "count_attend_ood": None, "count_attend_mlp_width": None}
        kinds = ["histogram", "count_attend"] if task == "qc" and m > capacity else ["histogram"]
        for kind in kinds:
            if task == "mfc" and capacity < 1:  # mfc_histogram_model needs d >= 3
                cell.update(histogram=None, histogram_ood=None)
                continue
            rows = _construct(C, "mfc" if task == "mfc" else kind, d, m, n, n_sequences, splits, query)
            cell[kind] = rows["accuracy"]
            cell[f"{kind}_ood"] = rows.get("ood_long_accuracy")
            if kind == "count_attend":
                cell["count_attend_mlp_width"] = rows.get("mlp_width")
                cell["count_attend_beta"] = rows.get("beta")
        cell["trained_mlp_width"] = mlp.get(d)
        g = todo[(todo["task"] == task) & (todo["d"] == d) & (todo["m"] == m) & (todo["n"] == n)]
        cell["trained"] = {v: float(x) for v, x in g.groupby("variant")["accuracy"].mean().items()}
        cell["trained_ood"] = {v: float(x) for v, x in g.groupby("variant")["ood_accuracy"].mean().dropna().items()}
        out_cells.append(cell)
    return {"available": True, "error": None, "tasks": sorted(set(cells["task"]), key=tasks.index), "query": query,
            "bos": True, "n_sequences": n_sequences, "splits": list(splits),
            "seconds": round(time.monotonic() - started, 2), "cells": out_cells}


def _construct(C: Any, kind: str, d: int, m: int, n: int, n_sequences: int, splits: Sequence[str],
               query: str) -> dict[str, Any]:
    """One construction cell: ``construction_grid`` when n is a multiple of m, else built and evaluated here."""
    options = {} if kind == "mfc" else {"query": query}
    if n % m == 0:
        return C.construction_grid([d], [m], kind=kind, n_sequences=n_sequences, n_factor=n // m,
                                   splits=list(splits), **options)[0]
    from limitlab.train.metrics import evaluate

    build = {"histogram": C.histogram_model, "count_attend": C.count_attend_model, "mfc": C.mfc_histogram_model}
    model, task = build[kind](d, m, n, **options)
    res = evaluate(model, [task], [0], n_sequences, min(256, n_sequences), list(splits))
    row = {f"{s}_accuracy": r["accuracy"][0] for s, r in res.items()}
    row["accuracy"] = row.get("test_accuracy")
    row.update(getattr(model, "construction_info", {}))
    return row


# ----------------------------------------------------------------------------------------------------------------
# analysis -> results dict


@dataclass
class Report:
    """Everything the report computed: the results.json dict and the frames the figures are drawn from."""

    results: dict[str, Any]
    runs: pd.DataFrame  # tidy, one row per finished run
    thresholds: pd.DataFrame  # one row per curve
    summary: pd.DataFrame  # one row per (task, variant, d)
    fits: pd.DataFrame  # one row per (task, variant)
    figures: dict[str, str] = field(default_factory=dict)


def _pairs(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The (task, variant) pairs present: QC before MFC, the 'base' variant first."""
    order = {"qc": 0, "mfc": 1}
    pairs = {(str(t), str(v)) for t, v in zip(runs["task"], runs["variant"])}
    return sorted(pairs, key=lambda p: (order.get(p[0], 2), p[0], p[1] != "base", p[1]))


def _clean(obj: Any) -> Any:
    """JSON-safe: numpy -> python, NaN/inf -> None, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _ci(lo: float, hi: float) -> list[float] | None:
    return None if lo is None or hi is None or math.isnan(lo) or math.isnan(hi) else [lo, hi]


def analyze(raw: pd.DataFrame, level: float = A.LEVEL, constructions: bool = True,
            construction_sequences: int | None = None,
            construction_splits: Sequence[str] = ("test", "ood_long")) -> Report:
    """All numbers of the report from the store's DataFrame (``store.to_dataframe('counting')``)."""
    status = raw["status"].value_counts().to_dict() if "status" in raw else {}
    runs = A.tidy(raw)
    used_raw = raw[raw["status"] == "done"] if "status" in raw else raw
    thr = A.thresholds(runs, level)
    summary = A.summarize_thresholds(thr)
    fits = A.fit_lines(thr)
    trans = A.transition_points(runs, thr)
    ood = A.ood_summary(runs, level)
    warnings: list[str] = []
    results: dict[str, Any] = {
        "schema": RESULTS_SCHEMA, "study": "counting", "level": level,
        "runs": {"total": len(raw), "done": int(status.get("done", 0)), "failed": int(status.get("failed", 0)),
                 "pending": int(status.get("pending", 0)), "running": int(status.get("running", 0)),
                 "used": len(runs)},
        "grid": {"tasks": list(dict.fromkeys(t for t, _ in _pairs(runs))),
                 "variants": sorted(runs["variant"].unique().tolist(), key=lambda v: (v != "base", v)),
                 "d": sorted(int(x) for x in runs["d"].unique()), "m": sorted(int(x) for x in runs["m"].unique()),
                 "seeds": sorted(int(x) for x in runs["seed"].unique())},
        "protocol": protocol_table(used_raw),
        "results": {},
    }
    if results["runs"]["failed"]:
        warnings.append(f"{results['runs']['failed']} run(s) failed (diverged or errored) and are left out.")
    unfinished = results["runs"]["pending"] + results["runs"]["running"]
    if unfinished:
        warnings.append(f"{unfinished} run(s) are not finished yet; this report covers the finished ones only.")
    dup = runs.groupby([*A.CURVE, "m"]).size() if len(runs) else pd.Series(dtype=int)
    if (dup > 1).any():
        warnings.append(f"{int((dup > 1).sum())} grid cell(s) have more than one finished run (different specs with "
                        "the same task/variant/d/m/seed); their accuracies are averaged.")

    for task, variant in _pairs(runs):
        g = runs[(runs["task"] == task) & (runs["variant"] == variant)]
        cells = g.groupby(["d", "m"]).agg(seeds=("seed", "nunique"), mean=("accuracy", "mean"),
                                          std=("accuracy", "std"), ood_mean=("ood_accuracy", "mean")).reset_index()
        expected = g["d"].nunique() * g["m"].nunique() * g["seed"].nunique()
        present = len(g.drop_duplicates(["d", "m", "seed"]))
        if present < expected:
            warnings.append(f"{task}/{variant}: {expected - present} of {expected} (d, m, seed) cells are missing; "
                            "their heatmap cells are blank and their curves use the points present.")
        t = thr[(thr["task"] == task) & (thr["variant"] == variant)]
        s = summary[(summary["task"] == task) & (summary["variant"] == variant)]
        f = fits[(fits["task"] == task) & (fits["variant"] == variant)].iloc[0].to_dict()
        tr = trans[(trans["task"] == task) & (trans["variant"] == variant)]
        o = ood[(ood["task"] == task) & (ood["variant"] == variant)]
        n_left, n_curves = int((t["censored"] == "left").sum()), len(t)
        if n_curves and n_left / n_curves > 0.5:
            steps = _show(_values(used_raw[used_raw["task.kind"] == task], "train.steps"))
            warnings.append(f"{task}/{variant}: accuracy is below {level:.0%} already at the smallest m in {n_left} of "
                            f"{n_curves} curves, so m_thr is mostly left-censored: the runs may be under-trained "
                            f"(steps: {steps}; the paper used 100,000) or the m grid starts above m_thr.")
        if t["recovers"].any():
            warnings.append(f"{task}/{variant}: {int(t['recovers'].sum())} curve(s) climb back above {level:.0%} after "
                            "their first crossing (non-monotone); m_thr is the first crossing.")
        m_thr = []
        for row in s.to_dict("records"):
            seeds = t[t["d"] == row["d"]]
            m_thr.append({"d": row["d"], "seeds": row["seeds"], "n_exact": row["n_exact"], "n_right": row["n_right"],
                          "n_left": row["n_left"], "mean": row["mean"], "std": row["std"],
                          "ci95": _ci(row["ci_low"], row["ci_high"]), "label": row["label"],
                          "per_seed": [{"seed": r["seed"], "m_thr": r["m_thr"], "censored": r["censored"],
                                        "bound": r["bound"], "label": r["label"], "recovers": r["recovers"]}
                                       for r in seeds.to_dict("records")]})
        results["results"].setdefault(task, {})[variant] = {
            "accuracy": cells.to_dict("records"),
            "m_thr": m_thr,
            "fit": {"status": f["status"], "reason": f["reason"], "a": f["a"], "b": f["b"], "r2": f["r2"],
                    "a_stderr": f["a_stderr"], "a_ci95": _ci(f["a_ci_low"], f["a_ci_high"]),
                    "n_points": f["n_points"], "n_d": f["n_d"], "n_censored": f["n_censored"],
                    "censored": f["censored"]},
            "transition": {"curves": len(tr), "median_ratio": tr["ratio"].median(),
                           "median_width": tr["width"].median()},
            "ood": o.iloc[0].drop(["task", "variant"]).to_dict() if len(o) else None,
        }

    cons: dict[str, Any] = {"available": False, "error": "not requested", "cells": []}
    if constructions and len(runs):
        cons = _constructions(runs, used_raw, construction_sequences, construction_splits)
    elif constructions:
        cons["error"] = "no finished runs"
    results["constructions"] = cons
    results["claims"] = _claims(runs, summary, fits, trans, ood, cons)
    results["warnings"] = warnings
    return Report(_clean(results), runs, thr, summary, fits)


def _claims(runs: pd.DataFrame, summary: pd.DataFrame, fits: pd.DataFrame, trans: pd.DataFrame, ood: pd.DataFrame,
            cons: dict[str, Any]) -> list[dict[str, Any]]:
    claims = []

    def add(claim: str, source: str, scope: str, verdict: dict[str, str]) -> None:
        claims.append({"claim": claim, "source": source, "scope": scope, **verdict})

    pairs = _pairs(runs)
    for task, variant in pairs or [("qc", "—")]:
        f = fits[(fits["task"] == task) & (fits["variant"] == variant)]
        add("m_thr grows ~linearly in d (slope not reported)", "[B] news article", f"{task}/{variant}",
            A.claim_linear(f.iloc[0].to_dict() if len(f) else {}))
    for task, variant in pairs or [("qc", "—")]:
        tr = trans[(trans["task"] == task) & (trans["variant"] == variant)]
        add("sharp transition at d ≈ m", "[V] v3 abstract", f"{task}/{variant}", A.claim_transition(tr))
    for task, variant in pairs or [("qc", "—")]:
        o = ood[(ood["task"] == task) & (ood["variant"] == variant)]
        verdict = A.claim_ood(o.iloc[0].to_dict() if len(o) else None)
        verdict["ours"] += "; vocabulary OOD not measured"
        add("catastrophic OOD failure when scaling the context length", "[V] v3 abstract", f"{task}/{variant}",
            verdict)
    for variant in list(dict.fromkeys(v for _, v in pairs)) or ["—"]:
        comp = A.compare_tasks(summary[summary["variant"] == variant])
        add("m_thr(MFC) ≤ m_thr(QC)", "[A] expected (counting.md §6)", f"mfc vs qc/{variant}",
            A.claim_mfc_le_qc(comp))
    if cons.get("available"):
        for task in cons["tasks"]:
            cells = [c for c in cons["cells"] if c["task"] == task]
            what = "histogram" if task == "qc" else "histogram + max head"
            verdict = A.claim_histogram(cells)
            if task == "mfc":
                verdict["criterion"] = verdict["criterion"].replace("m ≤ d − 1", "m ≤ d − 2")
                verdict["ours"] = verdict["ours"].replace("m ≤ d − 1", "m ≤ d − 2").replace("m > d − 1", "m > d − 2")
            add("d ≥ m suffices: transformers can perfectly maintain token counts",
                "[V] v3 abstract; [R] construction", f"hand-wired {what}, {task.upper()}", verdict)
        ca = [c for c in cons["cells"] if c.get("count_attend") is not None]
        criterion = "agree if the CountAttend construction is 100% accurate at every evaluated QC (d, m) with m ≥ d"
        if ca:
            worst = min(c["count_attend"] for c in ca)
            widths = sorted({c["count_attend_mlp_width"] for c in ca if c.get("count_attend_mlp_width")})
            ours = (f"CountAttend: min accuracy {worst:.3g} over {len(ca)} cells with m ≥ d "
                    f"(MLP widths {_show(widths)})")
            verdict = {"ours": ours, "criterion": criterion, "verdict": "agree" if worst >= 1.0 else "disagree"}
        else:
            verdict = {"ours": "no evaluated QC cell with m ≥ d", "criterion": criterion, "verdict": "not measured"}
        add("m > d is still expressible exactly by a hand-wired model (the barrier is learnability)",
            "[A] our simulation (counting.md §3.2)", "hand-wired CountAttend, QC", verdict)
    else:
        add("d ≥ m suffices: transformers can perfectly maintain token counts", "[V] v3 abstract", "constructions",
            {"ours": f"constructions not evaluated: {cons.get('error')}", "criterion": "—",
             "verdict": "not measured"})
    add("pretrained LLMs fail similarly as the vocabulary grows (Gemini 1.5, MAE vs binary baseline)",
        "[V] v3 abstract; [B] details", "pretrained LM",
        {"ours": "not part of this report; run limitlab.studies.counting.probe", "criterion": "—",
         "verdict": "not measured"})
    return claims


# ----------------------------------------------------------------------------------------------------------------
# figures (matplotlib Figure objects, Agg canvas; no pyplot state)


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
    g = rep.runs[(rep.runs["task"] == task) & (rep.runs["variant"] == variant)]
    pivot = g.groupby(["d", "m"])["accuracy"].mean().unstack("m").sort_index().sort_index(axis=1)
    s = rep.summary[(rep.summary["task"] == task) & (rep.summary["variant"] == variant)]
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
        s = rep.summary[(rep.summary["task"] == task) & (rep.summary["variant"] == variant)]
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
        f = rep.fits[(rep.fits["task"] == task) & (rep.fits["variant"] == variant)]
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
    variants = sorted({v for c in all_cells for v in c["trained"]}, key=lambda v: (v != "base", v))
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


def _figures(rep: Report, out: Path) -> dict[str, str]:
    figs: dict[str, str] = {}
    for task, variant in _pairs(rep.runs):
        name = f"heatmap_{_safe(task)}_{_safe(variant)}.png"
        _fig_heatmap(rep, task, variant, out / name)
        figs[f"heatmap/{task}/{variant}"] = name
    for task in dict.fromkeys(t for t, _ in _pairs(rep.runs)):
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


# ----------------------------------------------------------------------------------------------------------------
# the page


def _page(rep: Report, store_root: str) -> Page:
    r = rep.results
    page = Page("Counting: when can transformers count to n?",
                "Reproduction of Yehudai et al. 2024 (arXiv 2407.15160): QC and MFC accuracy over embedding size d × "
                "vocabulary m, the threshold m_thr, hand-wired constructions and length generalisation.")
    g = r["grid"]
    runs = r["runs"]
    page.paragraph(f"Store {store_root}: {runs['total']} counting run(s), {runs['done']} done, {runs['failed']} "
                   f"failed, {runs['pending'] + runs['running']} unfinished. Grid in this report: tasks "
                   f"{_show(g['tasks'])}; variants {_show(g['variants'])}; d ∈ {{{_show(g['d'])}}}; m ∈ "
                   f"{{{_show(g['m'])}}}; seeds {_show(g['seeds'])}.")
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
    page.paragraph(f"m_thr is the first m at which test accuracy falls from ≥ {r['level']:.0%} to < {r['level']:.0%}, "
                   "linearly interpolated between grid points, per (task, variant, d, seed). A curve that never falls "
                   "is right-censored ('> max m'), one already below at the smallest m is left-censored ('< min m'); "
                   "censored values are shown as bounds, never averaged, and excluded from the fit. Spread: std and "
                   "a 95% Student-t interval over the uncensored seeds. Fit: least squares m_thr = a·d + b on the "
                   "per-seed uncensored points; a fit needs ≥ 3 points over ≥ 2 distinct d.")
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
                     "seeds": x["seeds"], "censored >": x["n_right"], "censored <": x["n_left"]} for x in res["m_thr"]]
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
        page.figure(rep.figures["ood"], "ood_long vs test accuracy per run; dashed: 80% test accuracy")
    ood_rows = [{"task": t, "variant": v, **(res["ood"] or {})} for t, bv in r["results"].items()
                for v, res in bv.items()]
    page.table(ood_rows, columns=["task", "variant", "runs", "test_mean", "ood_mean", "n_learned", "test_learned",
                                  "ood_learned", "ratio"],
               caption="Mean accuracy; 'learned' = runs with test accuracy ≥ 80%")
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = store.to_dataframe("counting")
    rep = analyze(raw, level, constructions, construction_sequences)
    if len(rep.runs):
        rep.figures = _figures(rep, out)
    rep.results["figures"] = dict(rep.figures)
    rep.results["store"] = str(getattr(store, "root", ""))
    blob = json.dumps(rep.results, indent=2, allow_nan=False)
    tmp = out / ".results.json.tmp"
    tmp.write_text(blob)
    tmp.replace(out / "results.json")
    return _page(rep, str(getattr(store, "root", ""))).write(out / "index.html")
