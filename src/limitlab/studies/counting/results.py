"""The numbers of the counting report: from the store's DataFrame to the results.json dict (schema in
:mod:`.report`) and the frames the figures are drawn from, including the hand-wired constructions evaluated on
every (task, d, m, n) cell of the trained runs."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from limitlab.report.runs import run_counts, status_warnings
from limitlab.report.schema import clean
from limitlab.studies.counting import analysis as A
from limitlab.studies.counting.claims import paper_claims
from limitlab.studies.counting.common import base_first, distinct, pairs, pick, show
from limitlab.studies.counting.protocol import protocol_table

__all__ = ["RESULTS_SCHEMA", "Report", "analyze"]

RESULTS_SCHEMA = "limitlab.counting.report/2"  # /2: m_thr ci95 clipped at 0, ci95_clipped
_CONSTRUCTION_BUDGET_S = 120.0  # CPU seconds per construction kind, for the automatic number of test sequences
_SECONDS_PER_UNIT = 8e-11  # measured: one sequence of n tokens through a width-d construction ≈ 8e-11·d·n² s


@dataclass
class Report:
    """Everything the report computed: the results.json dict and the frames the figures are drawn from."""

    results: dict[str, Any]
    runs: pd.DataFrame  # tidy, one row per finished run
    thresholds: pd.DataFrame  # one row per curve
    summary: pd.DataFrame  # one row per (task, variant, d)
    fits: pd.DataFrame  # one row per (task, variant)
    figures: dict[str, str] = field(default_factory=dict)


def _ci(lo: float, hi: float) -> list[float] | None:
    return None if lo is None or hi is None or math.isnan(lo) or math.isnan(hi) else [lo, hi]


def analyze(raw: pd.DataFrame, level: float = A.LEVEL, constructions: bool = True,
            construction_sequences: int | None = None,
            construction_splits: Sequence[str] = ("test", "ood_long")) -> Report:
    """All numbers of the report from the store's DataFrame (``store.to_dataframe('counting')``)."""
    runs = A.tidy(raw)
    used_raw = raw[raw["status"] == "done"] if "status" in raw else raw
    thr = A.thresholds(runs, level)
    summary = A.summarize_thresholds(thr)
    fits = A.fit_lines(thr)
    trans = A.transition_points(runs, thr)
    ood = A.ood_summary(runs, level)
    results: dict[str, Any] = {
        "schema": RESULTS_SCHEMA, "study": "counting", "level": level,
        "runs": run_counts(raw, used=len(runs)),
        "grid": {"tasks": list(dict.fromkeys(t for t, _ in pairs(runs))),
                 "variants": base_first(runs["variant"].unique().tolist()),
                 "d": sorted(int(x) for x in runs["d"].unique()), "m": sorted(int(x) for x in runs["m"].unique()),
                 "seeds": sorted(int(x) for x in runs["seed"].unique())},
        "protocol": protocol_table(used_raw),
        "results": {},
    }
    warnings = status_warnings(results["runs"])
    dup = runs.groupby([*A.CURVE, "m"]).size() if len(runs) else pd.Series(dtype=int)
    if (dup > 1).any():
        warnings.append(f"{int((dup > 1).sum())} grid cell(s) have more than one finished run (different specs with "
                        "the same task/variant/d/m/seed); their accuracies are averaged.")

    for task, variant in pairs(runs):
        g = pick(runs, task, variant)
        cells = g.groupby(["d", "m"]).agg(seeds=("seed", "nunique"), mean=("accuracy", "mean"),
                                          std=("accuracy", "std"), ood_mean=("ood_accuracy", "mean")).reset_index()
        expected = g["d"].nunique() * g["m"].nunique() * g["seed"].nunique()
        present = len(g.drop_duplicates(["d", "m", "seed"]))
        if present < expected:
            warnings.append(f"{task}/{variant}: {expected - present} of {expected} (d, m, seed) cells are missing; "
                            "their heatmap cells are blank and their curves use the points present.")
        t, s, tr, o = (pick(frame, task, variant) for frame in (thr, summary, trans, ood))
        f = pick(fits, task, variant).iloc[0].to_dict()
        n_left, n_curves = int((t["censored"] == "left").sum()), len(t)
        if n_curves and n_left / n_curves > 0.5:
            steps = show(distinct(used_raw[used_raw["task.kind"] == task], "train.steps"))
            warnings.append(f"{task}/{variant}: accuracy is below {level:g} already at the smallest m in {n_left} of "
                            f"{n_curves} curves, so m_thr is mostly left-censored: the runs may be under-trained "
                            f"(steps: {steps}; the paper used 100,000) or the m grid starts above m_thr.")
        if t["recovers"].any():
            warnings.append(f"{task}/{variant}: {int(t['recovers'].sum())} curve(s) climb back above {level:g} after "
                            "their first crossing (non-monotone); m_thr is the first crossing.")
        m_thr = []
        for row in s.to_dict("records"):
            seeds = t[t["d"] == row["d"]]
            m_thr.append({"d": row["d"], "seeds": row["seeds"], "n_exact": row["n_exact"], "n_right": row["n_right"],
                          "n_left": row["n_left"], "mean": row["mean"], "std": row["std"],
                          "ci95": _ci(row["ci_low"], row["ci_high"]), "ci95_clipped": bool(row["clipped"]),
                          "label": row["label"],
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
    results["claims"] = paper_claims(runs, summary, fits, trans, ood, cons)
    results["warnings"] = warnings
    return Report(clean(results), runs, thr, summary, fits)


def _constructions(trained: pd.DataFrame, raw: pd.DataFrame, n_sequences: int | None,
                   splits: Sequence[str]) -> dict[str, Any]:
    """Hand-wired accuracy on every (task, d, m, n) cell of the trained runs: QC — the histogram model (exact for
    m ≤ d − 1) and, where it cannot be exact, CountAttend; MFC — the histogram + max-selection model (m ≤ d − 2)."""
    from limitlab.studies.counting import constructions as C

    todo = trained[trained["task"].isin(["qc", "mfc"])]
    cells = todo[["task", "d", "m", "n"]].drop_duplicates()
    cells = cells.assign(order=cells["task"].map({"qc": 0, "mfc": 1})).sort_values(["order", "d", "m", "n"])
    qc_raw = raw[raw["task.kind"] == "qc"] if "task.kind" in raw else raw
    query = distinct(qc_raw, "task.query") if "task.query" in raw else ["last"]
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
            options = {} if task == "mfc" else {"query": query}
            rows = C.construction_cell("mfc" if task == "mfc" else kind, d, m, n, n_sequences, splits=list(splits),
                                       **options)
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
    tasks = sorted(set(cells["task"]), key=["qc", "mfc"].index)
    return {"available": True, "error": None, "tasks": tasks, "query": query, "bos": True,
            "n_sequences": n_sequences, "splits": list(splits),
            "seconds": round(time.monotonic() - started, 2), "cells": out_cells}
