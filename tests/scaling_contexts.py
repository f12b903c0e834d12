"""Report contexts for the scaling experiments' tests: a real store after training a preset, or a small in-memory
store of given specs, metrics records and final results (for a claim's criterion on synthetic numbers)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from limitlab.analysis.frames import done
from limitlab.report.sections import ReportContext
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.train.trainer import train_runs


class MemoryStore:
    """What an experiment reads from a store: ``spec(run_id)`` and ``metrics(run_id)``."""

    def __init__(self, specs: list[RunSpec], records: dict[str, list[dict]]) -> None:
        self.specs = {s.run_id: s for s in specs}
        self.records = records

    def spec(self, run_id: str) -> RunSpec:
        return self.specs[run_id]

    def metrics(self, run_id: str) -> list[dict]:
        return self.records.get(run_id, [])


def memory_context(specs: list[RunSpec], records: dict[str, list[dict]] | None = None,
                   results: dict[str, dict[str, float]] | None = None) -> ReportContext:
    """A context whose finished runs are ``specs`` (tags, d, seed and ``result.*`` columns from ``results``)."""
    rows = []
    for s in specs:
        row: dict[str, Any] = {"run_id": s.run_id, "status": "done", "seed": s.seed, "model.d_model": s.model.d_model,
                               "train.steps": s.train.steps, **{f"tags.{k}": v for k, v in s.tags.items()}}
        row.update({f"result.{k}": v for k, v in (results or {}).get(s.run_id, {}).items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    return ReportContext(None, MemoryStore(specs, records or {}), frame, frame)


def trained_context(specs: list[RunSpec], root: Any) -> ReportContext:
    """Train ``specs`` into a new store under ``root`` (one stack per task and model shape); its context."""
    store = RunStore(root)
    store.add(specs)
    stacks: dict[tuple, list[RunSpec]] = {}
    for s in specs:
        stacks.setdefault((s.task.stack_key(), s.model.model_dump_json()), []).append(s)
    for stack in stacks.values():
        train_runs(stack, store)
    raw = store.to_dataframe("scaling")
    return ReportContext(None, store, raw, done(raw))


def figures_on_page(section: Any) -> bool:
    """Every figure the section made is one of its figure blocks (what the page shows)."""
    shown = {args[0] for kind, args, _ in section.blocks if kind == "figure"}
    return set(section.figures) == shown
