"""The generic report of the ``tasks`` study: every distinct spec's final metrics over seeds, and its loss curve.

One section (written by the generic study report): per task, one table row per distinct spec, one column per
split/metric, and ``loss_<task>.png``, the training loss against step, one line per distinct spec (mean over
seeds, 95% band). The study tests no paper's claims, so its claims table is empty.

A *distinct spec* is a run's whole spec except its seed (and tags): the runs that differ only in the seed are
pooled. Each scalar metric of each split (``result.<split>/<metric>``, plus the final ``train_loss``) is shown as
``mean [low, high]``: the Student-t 95% interval over seeds of :func:`limitlab.analysis.mean_ci`, clipped to the
metric's range, which is read from its name — ``[0, 1]`` for ``*accuracy*``, ``*agreement*``, ``*match*``;
``[0, ∞)`` for ``*loss*``, ``*error*``, ``*distance*``; unbounded otherwise (no clip). A vector metric (accuracy
per length, error per position, ...) is summarised by the mean of its entries per run (entries with no count
left out), marked ``(mean of vector)``. The ``settings`` column lists the spec's fields that differ from the
preset's defaults for that task (``defaults`` if none).

``sections.metrics.results.specs`` in results.json, one entry per distinct spec::

    {"task": "counting", "settings": "model.d_model=16, task.m=5", "seeds": 3, "run_ids": [...],
     "metrics": {"test/accuracy": {"mean": 0.93, "low": 0.81, "high": 1.0, "n": 3, "clipped": true,
                                   "vector": false}, ...}}

"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from limitlab.analysis import NONNEGATIVE, PROPORTION, UNBOUNDED, aggregate, mean_ci
from limitlab.analysis.frames import result_columns
from limitlab.nn.model import ModelConfig
from limitlab.report.figures import lines_with_bands, new_figure
from limitlab.report.html import fmt
from limitlab.report.sections import ReportContext, Section
from limitlab.spec import OptimConfig, TrainConfig
from limitlab.studies.tasks import build_task, task_specs

_NOT_SPEC = {"run_id", "study", "status", "error", "seed"}


def metric_bounds(name: str) -> tuple[float, float]:
    """The range of a metric, read from its name (see the module docstring).

    >>> metric_bounds("test/accuracy_by_length"), metric_bounds("ood/loss"), metric_bounds("test/r2")
    ((0.0, 1.0), (0.0, inf), (-inf, inf))
    """
    metric = name.rsplit("/", 1)[-1]
    if any(word in metric for word in ("accuracy", "agreement", "match")):
        return PROPORTION
    if any(word in metric for word in ("loss", "error", "distance")):
        return NONNEGATIVE
    return UNBOUNDED


def spec_key(row: dict[str, Any]) -> str:
    """A run's spec without seed, tags and results, as canonical JSON: equal for the seeds of one spec."""
    fields = {k: v for k, v in row.items() if isinstance(k, str) and k not in _NOT_SPEC
              and not k.startswith(("tags.", "result.")) and not _missing(v)}
    return json.dumps(fields, sort_keys=True, default=str)


def settings(fields: dict[str, Any]) -> str:
    """The fields of a spec (flattened) that differ from its task preset's defaults, as 'key=value, ...'."""
    name = fields.get("task.name")
    try:
        base = task_specs(build_task(name), [0])[0].flat()
    except ValueError:  # a task with required fields, or no longer registered: all its task fields are shown
        base = {f"{part}.{k}": v for part, cfg in (("model", ModelConfig()), ("optim", OptimConfig()),
                                                   ("train", TrainConfig()))
                for k, v in cfg.model_dump(mode="json").items()}
    diff = [f"{k}={_show(v)}" for k, v in sorted(fields.items())
            if k not in ("study", "task.name") and base.get(k, _ABSENT) != v]
    return ", ".join(diff) or "defaults"


_ABSENT = object()


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict, str)) and not isinstance(value, bool) else str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _scalar(value: Any) -> tuple[float, bool]:
    """(the number a cell stands for, whether it was a vector): a vector is the mean of its finite entries."""
    if isinstance(value, (list, tuple, np.ndarray)):
        vals = [float(v) for v in value if v is not None and not math.isnan(float(v))]
        return (float(np.mean(vals)) if vals else math.nan), True
    return (math.nan if _missing(value) else float(value)), False


def summarize(done: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per distinct spec of the finished runs ``done`` (see the module docstring)."""
    metrics = {"train_loss": "result.train_loss", **result_columns(done)} if "result.train_loss" in done else \
        result_columns(done)
    records = done.to_dict("records")
    by_key: dict[str, list[dict]] = {}
    for rec in records:
        by_key.setdefault(spec_key(rec), []).append(rec)
    out = []
    for key, recs in by_key.items():
        fields = json.loads(key)
        entry = {"task": fields.get("task.name"), "settings": settings(fields), "seeds": len(recs),
                 "run_ids": sorted(r["run_id"] for r in recs), "metrics": {}}
        for name, col in metrics.items():
            cells = [_scalar(r.get(col)) for r in recs]
            values = [v for v, _ in cells if not math.isnan(v)]
            if not values:
                continue
            bounds = metric_bounds(name)
            if min(values) < bounds[0] or max(values) > bounds[1]:  # the name misled: no clip
                bounds = UNBOUNDED
            iv = mean_ci(values, bounds)
            entry["metrics"][name] = {"mean": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n,
                                      "clipped": iv.clipped, "vector": any(vec for _, vec in cells)}
        out.append(entry)
    return sorted(out, key=lambda e: str(e["task"]))  # within a task: the order the specs were first stored


def loss_curves(store: Any, done: pd.DataFrame, entries: list[dict]) -> dict[str, pd.DataFrame]:
    """Per task: the training loss per (spec, step), mean and 95% interval over seeds (from metrics.jsonl)."""
    out: dict[str, pd.DataFrame] = {}
    for entry in entries:
        rows = [{"step": rec["step"], "train_loss": rec["train_loss"]}
                for run_id in entry["run_ids"] for rec in store.metrics(run_id) if "train_loss" in rec]
        if not rows:
            continue
        frame = pd.DataFrame(rows).drop_duplicates()
        bounds = NONNEGATIVE if (frame["train_loss"] >= 0).all() else UNBOUNDED
        band = aggregate(frame, ["step"], "train_loss", bounds)
        band["spec"] = entry["settings"]
        out.setdefault(entry["task"], []).append(band)  # type: ignore[arg-type]
    return {task: pd.concat(parts, ignore_index=True) for task, parts in out.items()}


def figures(curves: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """One PNG per task: training loss vs step, a line (and band over seeds) per distinct spec."""
    figs = {}
    for task, frame in curves.items():
        fig = new_figure(6.5, 3.8)
        ax = fig.subplots()
        labels = {s: s if len(s) <= 60 else s[:57] + "…" for s in frame["spec"].unique()}
        lines_with_bands(ax, frame.assign(spec=frame["spec"].map(labels)), "step", "mean", "ci_low", "ci_high",
                         by="spec")
        ax.set(xlabel="step", ylabel="training loss (one batch per log)", title=f"{task}: training loss")
        figs[f"loss_{re.sub(r'[^A-Za-z0-9_.-]+', '-', task)}.png"] = fig
    return figs


def analyze(ctx: ReportContext) -> Section:
    """The one section of the tasks report: per task, a table of the distinct specs and their loss curves."""
    sec = Section("metrics", "Final metrics per spec")
    done = sec.uses(ctx.runs)
    entries = summarize(done) if len(done) else []
    sec.results["specs"] = entries
    sec.paragraph("Runs of `limitlab run tasks --preset <task>`, pooled over seeds: mean [95% interval over seeds]. "
                  "Intervals are Student-t over seeds, clipped to the metric's range (accuracies to [0, 1], losses "
                  "and errors to [0, ∞)); one seed shows no interval. A vector metric (per length, per position, "
                  "...) is shown as the mean of its entries, marked '(mean of vector)'.")
    figs = figures(loss_curves(ctx.store, done, entries))
    by_task: dict[str, list[dict]] = {}
    for entry in entries:
        by_task.setdefault(entry["task"], []).append(entry)
    for task, mine in by_task.items():
        sec.heading(str(task))
        names = sorted({n for e in mine for n in e["metrics"]},
                       key=lambda n: (n != "train_loss", not n.startswith("test/"), n))  # train loss, test, others
        vector = {n for e in mine for n, m in e["metrics"].items() if m["vector"]}
        columns = ["settings", "seeds"] + [f"{n} (mean of vector)" if n in vector else n for n in names]
        rows = [[e["settings"], e["seeds"], *(_cell(e["metrics"].get(n)) for n in names)] for e in mine]
        sec.table(rows, columns=columns, caption=f"{task}: one row per distinct spec (seeds pooled)")
        name = f"loss_{re.sub(r'[^A-Za-z0-9_.-]+', '-', str(task))}.png"
        if name in figs:
            sec.figure(name, figs[name], f"{task}: training loss per spec (mean over seeds, 95% band)")
    return sec


def _cell(m: dict[str, Any] | None) -> str:
    if not m:
        return "—"
    interval = f" [{fmt(m['low'])}, {fmt(m['high'])}]" if m["n"] >= 2 else ""
    return fmt(m["mean"]) + interval
