"""The constructions experiment: hand-wired counting models (:mod:`.constructions`) evaluated on every (task, d, m,
n) cell of the trained runs, next to the trained accuracy — what is expressible at this d against what training
finds.

QC: the histogram model (exact when m ≤ d − 1) and, where it cannot be exact (m ≥ d), CountAttend. MFC: the
histogram at every position plus a max-selection layer (exact when m ≤ d − 2). The number of test sequences per
cell is chosen so the whole grid takes about two CPU minutes (32 … 256).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from limitlab.analysis.frames import distinct
from limitlab.claims import Claim, Measure
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.studies.counting import analysis as A
from limitlab.studies.counting import claims as C
from limitlab.studies.counting.figures import constructed_figure

__all__ = ["CONSTRUCTIONS", "ReportOptions", "construction_cells"]

BUDGET_S = 120.0  # CPU seconds per construction kind, for the automatic number of test sequences
SECONDS_PER_UNIT = 8e-11  # measured: one sequence of n tokens through a width-d construction ≈ 8e-11·d·n² s
SPLITS = ("test", "ood_long")


class ReportOptions(BaseModel):
    """``limitlab report counting --set KEY=VALUE``: how the report evaluates the hand-wired models."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    constructions: bool = Field(True, description="evaluate the hand-wired constructions on the trained grid")
    construction_sequences: int | None = Field(None, ge=8, le=100_000, description="test sequences per cell and "
                                               "split (default: 32…256, about two CPU minutes for the grid)")


def construction_cells(trained: pd.DataFrame, raw: pd.DataFrame, n_sequences: int | None = None
                       ) -> tuple[list[dict], int, str]:
    """One row per (task, d, m, n) of ``trained`` (tidy runs): the hand-wired accuracies (test and ood_long), the
    regime, and the trained accuracy per variant (mean over seeds)."""
    from limitlab.studies.counting import constructions as K

    todo = trained[trained["task"].isin(["qc", "mfc"])]
    cells = todo[["task", "d", "m", "n"]].drop_duplicates()
    cells = cells.assign(order=cells["task"].map({"qc": 0, "mfc": 1})).sort_values(["order", "d", "m", "n"])
    queries = distinct(raw, "task.query") if "task.query" in raw else []
    query = queries[0] if len(queries) == 1 and queries[0] in ("last", "appended") else "last"
    if n_sequences is None:
        cost = sum(d * n * n * 5 for d, n in zip(cells["d"], cells["n"]))  # ood_long: 2n tokens, 4× the cost
        n_sequences = int(np.clip(BUDGET_S / max(cost * SECONDS_PER_UNIT, 1e-9), 32, 256))
    out = []
    for task, d, m, n in zip(cells["task"], cells["d"], cells["m"], cells["n"]):
        d, m, n = int(d), int(m), int(n)
        capacity = K.histogram_capacity(d) if task == "qc" else d - 2
        cell: dict[str, Any] = {"task": task, "d": d, "m": m, "n": n, "exact_regime": m <= capacity,
                                "histogram": None, "histogram_ood": None, "count_attend": None,
                                "count_attend_mlp_width": None, "count_attend_beta": None}
        kinds = ["histogram", "count_attend"] if task == "qc" and m > capacity else ["histogram"]
        for kind in kinds:
            if task == "mfc" and capacity < 1:  # the MFC model needs d ≥ 3
                continue
            options = {} if task == "mfc" else {"query": query}
            row = K.construction_cell("mfc" if task == "mfc" else kind, d, m, n, n_sequences, splits=list(SPLITS),
                                      **options)
            cell[kind] = row["accuracy"]
            cell[f"{kind}_ood"] = row.get("ood_long_accuracy")
            if kind == "count_attend":
                cell["count_attend_mlp_width"], cell["count_attend_beta"] = row.get("mlp_width"), row.get("beta")
        g = todo[(todo["task"] == task) & (todo["d"] == d) & (todo["m"] == m) & (todo["n"] == n)]
        cell["trained"] = {v: float(x) for v, x in g.groupby("variant")["accuracy"].mean().items()}
        out.append(cell)
    return out, n_sequences, query


def _worst(cells: list[dict], keys: tuple[str, ...]) -> Measure | None:
    values = [c[k] for c in cells for k in keys if c.get(k) is not None]
    if not values:
        return None
    return Measure(min(values), float("nan"), float("nan"), len(cells), tuple(values),
                   f"worst {min(values):.3g} over {len(cells)} cells ({len(values)} accuracies)")


def _judge(sec: Section, claim: Claim, cells: list[dict], keys: tuple[str, ...], why: str) -> None:
    measure = _worst(cells, keys)
    if measure is None:
        sec.not_measured(claim, why)
    else:
        sec.judge(claim, measure)


def analyze_constructions(ctx: ReportContext | None) -> Section:
    sec = Section("constructions", "Hand-wired constructions vs trained models")
    runs = A.tidy(ctx.raw) if ctx is not None else A.tidy(pd.DataFrame())
    sec.uses(runs)
    options = (ctx.options if ctx is not None else None) or ReportOptions()
    if runs.empty or not options.constructions:
        why = "no finished runs whose (d, m, n) cells to evaluate" if runs.empty else \
            "skipped by the report option constructions=false"
        for claim in (C.HISTOGRAM_QC, C.HISTOGRAM_MFC, C.COUNT_ATTEND):
            sec.not_measured(claim, why)
        return sec
    started = time.monotonic()
    raw = ctx.raw[ctx.raw["status"] == "done"]
    cells, n_sequences, query = construction_cells(runs, raw, options.construction_sequences)
    seconds = time.monotonic() - started
    sec.paragraph(
        "On every (task, d, m, n) of the trained runs. QC: the histogram construction (1 layer, 1 head, no "
        "LayerNorm, no positions, a BOS token; exact when m ≤ d − 1) and, where it cannot be exact (m ≥ d), "
        "CountAttend (random near-orthogonal codes, a large attention temperature β and an MLP that inverts the BOS "
        "attention mass; its MLP width is chosen for n). MFC: the histogram at every position plus a layer that "
        f"selects the largest count (exact when m ≤ d − 2). QC query format: {query}. Accuracy on {n_sequences} "
        f"sequences per split ({seconds:.0f} s). The constructions use a BOS token and their own widths: they show "
        "what is expressible at this d, not what training finds.")
    sec.results.update({"n_sequences": n_sequences, "query": query, "cells": cells})
    qc = [c for c in cells if c["task"] == "qc"]
    mfc = [c for c in cells if c["task"] == "mfc"]
    _judge(sec, C.HISTOGRAM_QC, [c for c in qc if c["exact_regime"]], ("histogram", "histogram_ood"),
           "no evaluated QC cell with m ≤ d − 1")
    _judge(sec, C.HISTOGRAM_MFC, [c for c in mfc if c["exact_regime"]], ("histogram", "histogram_ood"),
           "no evaluated MFC cell with m ≤ d − 2")
    _judge(sec, C.COUNT_ATTEND, [c for c in qc if c["count_attend"] is not None], ("count_attend",),
           "no evaluated QC cell with m ≥ d")
    for task, group in (("qc", qc), ("mfc", mfc)):
        if not group:
            continue
        frame = pd.DataFrame(group)
        sec.heading(f"{task.upper()}: constructed vs trained")
        sec.figure(f"constructed_{task}.png", constructed_figure(frame, task),
                   f"{task.upper()}: trained (mean over seeds) vs hand-wired accuracy on the same (d, m) grid")
        rows = []
        for c in group:
            row = {"d": c["d"], "m": c["m"], "n": c["n"], "exact regime": c["exact_regime"]}
            row.update({f"trained {v}": a for v, a in c["trained"].items()})
            row.update({"histogram": c["histogram"], "histogram ood": c["histogram_ood"]})
            if task == "qc":
                row.update({"CountAttend": c["count_attend"], "CountAttend ood": c.get("count_attend_ood"),
                            "CountAttend MLP width": c["count_attend_mlp_width"]})
            rows.append(row)
        sec.table(rows, caption=f"{task.upper()}: accuracy per cell (ood = the ood_long split, 2·n tokens)")
    return sec


CONSTRUCTIONS = Experiment("constructions", "Hand-wired constructions vs trained models",
                           (C.HISTOGRAM_QC, C.HISTOGRAM_MFC, C.COUNT_ATTEND), analyze_constructions)
