"""The icl report's numbers: group the finished runs by pretraining distribution, evaluate them, derive the sweeps.

A *group* is every finished run whose spec is the same up to the seed (the seeds of one pretraining distribution
under one protocol), labelled by its ``pretrain`` tag. Each group is evaluated once (:mod:`.evaluate`); the
sweeps are read off its curves at a fixed context size:

* nnz (Yadlowsky's sparsity sweep) at k = ⌊d/2⌋ — below d, where knowing the sparsity pays;
* α and frequency at the last index k = n − 1;
* the rare-family sweep: the sine family's error at the last index against its weight p in pretraining
  (p = 1 for a sine-only model, p = 0.5 for the balanced mixture, ``rare_sine_<p>`` runs for small p).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.studies.icl.evaluate import TRANSFORMER, evaluate_pretraining, family_of
from limitlab.tasks.icl_mixture import ICLMixture
from limitlab.tasks.icl_sine import ICLSine

Record = dict[str, Any]


@dataclass
class Group:
    label: str
    specs: list[RunSpec]
    missing_weights: list[str]

    @property
    def task(self):
        return self.specs[0].task


def find_groups(store: RunStore) -> tuple[list[Group], dict[str, int], list[str]]:
    """(groups with weights, run counts, warnings) from the finished icl runs of ``store``."""
    frame = store.to_dataframe("icl")
    counts = {"total": len(frame), "done": 0, "failed": 0, "pending": 0, "running": 0}
    for status in frame["status"] if len(frame) else []:
        if status in counts:
            counts[status] += 1
    warnings: list[str] = []
    by_key: dict[str, list[RunSpec]] = {}
    for run_id in frame.loc[frame["status"] == "done", "run_id"] if len(frame) else []:
        spec = store.spec(run_id)
        key = json.dumps(spec.model_dump(mode="json", exclude={"seed", "tags"}), sort_keys=True)
        by_key.setdefault(key, []).append(spec)
    groups, seen = [], {}
    for specs in by_key.values():
        specs.sort(key=lambda s: s.seed)
        name = str(specs[0].tags.get("pretrain", specs[0].task.name))
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}#{seen[name]}"
        missing = [s.run_id for s in specs if not store.has_weights(s.run_id)]
        if missing:
            warnings.append(f"{label}: {len(missing)} finished run(s) have no saved weights and are left out "
                            f"({', '.join(missing)}); train with `limitlab run icl` (the study saves weights)")
        groups.append(Group(label, [s for s in specs if s.run_id not in missing], missing))
    counts["used"] = sum(len(g.specs) for g in groups)
    return [g for g in groups if g.specs], counts, warnings


def evaluate_groups(store: RunStore, groups: list[Group], device: str, n_prompts: int, full: bool = False,
                    progress: Callable[[str], None] | None = None) -> tuple[list[Record], dict[str, float]]:
    """Every group's curves on ``n_prompts`` prompts (records tagged with ``group``) and the evaluation seconds per
    group; ``full``: every baseline at every prompt length."""
    records, seconds = [], {}
    for g in groups:
        start = time.monotonic()
        weights = [store.load_weights(s.run_id) for s in g.specs]
        for r in evaluate_pretraining(g.specs, weights, n_prompts, full, device,
                                      (lambda key, g=g: progress(f"{g.label}: {key}")) if progress else None):
            records.append({"group": g.label, **r})
        seconds[g.label] = round(time.monotonic() - start, 2)
    return records, seconds


def at(rec: Record, k: int) -> dict[str, float]:
    """{mean, low, high} of a curve at index k (NaN when the curve is shorter)."""
    if k < 0 or k >= len(rec["mean"]):
        return {"mean": math.nan, "low": math.nan, "high": math.nan}
    return {"mean": rec["mean"][k], "low": rec["low"][k], "high": rec["high"][k]}


def sweep_k(task, kind: str) -> int:
    return max(1, task.d // 2) if kind == "nnz" else task.n_points - 1


def sweep_points(records: list[Record], groups: list[Group], kind: str) -> list[Record]:
    """Points {series, group, x, k, mean, low, high} of one sweep kind over every group that has it.

    Transformers are one series per group; a baseline that is the same for every group (same prompts) appears
    once; the group's own pretraining-prior Bayes is one series per group."""
    out, seen = [], set()
    for g in groups:
        k = sweep_k(g.task, kind)
        for r in records:
            if r["group"] != g.label or r["kind"] != kind:
                continue
            if r["predictor"] == TRANSFORMER:
                series = f"transformer ({g.label})"
            elif "pretraining" in r["predictor"]:
                series = f"Bayes ({g.label} prior)"
            else:
                series = r["predictor"]
                if (series, r["value"]) in seen:
                    continue
                seen.add((series, r["value"]))
            out.append({"series": series, "group": g.label, "x": r["value"], "k": k, **at(r, k)})
    return out


def rare_points(records: list[Record], groups: list[Group]) -> list[Record]:
    """The sine and dense families' errors at the last index vs the sine weight p in pretraining."""
    out = []
    for g in groups:
        task = g.task
        if isinstance(task, ICLSine) and task.alpha == 0:
            p = 1.0
        elif isinstance(task, ICLMixture) and set(task.families) == {"dense", "sine"}:
            p = float(task.weights[task.families.index("sine")])
        else:
            continue
        k = task.n_points - 1
        for r in records:
            if r["group"] == g.label and r["kind"] == "family" and r["key"] in ("sine", "dense") \
                    and (r["predictor"] == TRANSFORMER or r["predictor"].startswith("Bayes")):
                name = "transformer" if r["predictor"] == TRANSFORMER else r["predictor"]
                out.append({"series": f"{name} on {r['key']}", "group": g.label, "x": p, "k": k, **at(r, k)})
    return out


def analyze(store: RunStore, device: str | None = None, progress: Callable[[str], None] | None = None,
            n_prompts: int = 1280, full: bool = False) -> dict[str, Any]:
    """Everything the page and results.json show, except the claims and the protocol table."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    groups, counts, warnings = find_groups(store)
    start = time.monotonic()
    records, seconds = evaluate_groups(store, groups, device, n_prompts, full, progress)
    info = []
    for g in groups:
        t = g.task
        info.append({"label": g.label, "pretrain": g.specs[0].tags.get("pretrain"), "task": t.name,
                     "family": family_of(t), "d": t.d, "n_points": t.n_points, "fmt": t.fmt,
                     "seeds": [s.seed for s in g.specs], "run_ids": [s.run_id for s in g.specs],
                     "steps": g.specs[0].train.steps, "eval_prompts": n_prompts,
                     "eval_seconds": seconds[g.label], "sparsity": getattr(t, "sparsity", None),
                     "freq_min": getattr(t, "freq_min", None), "freq_max": getattr(t, "freq_max", None),
                     "families": list(getattr(t, "families", [family_of(t)])),
                     "weights": list(getattr(t, "weights", [1.0]))})
    return {"runs": counts, "groups": info, "curves": records,
            "sweeps": {kind: sweep_points(records, groups, kind) for kind in ("nnz", "alpha", "freq")},
            "rare": rare_points(records, groups), "warnings": warnings,
            "timing": {"evaluation_seconds": round(time.monotonic() - start, 2), "device": device},
            "_groups": groups}
