"""The protocol table every study report has (paper vs ours), and :func:`show` for values in tables and prose.

**Protocol.** One row per item (layers, learning rate, steps, ...): the paper's value and its source tag, *ours*
read from the stored specs of the runs the report uses (never assumed), and a status — 'same', 'departure', or
'paper unknown' when the sources do not say (then ours is our choice).

Claims are data: see :mod:`limitlab.claims`.

>>> runs = pd.DataFrame({"optim.lr": [1e-3, 1e-3], "model.n_layers": [2, 2], "tags.variant": ["a", "b"]})
>>> proto = ProtocolTable(runs)
>>> proto.add("layers", "model.n_layers", 2, "[V]")
>>> proto.add("learning rate", "optim.lr", 1e-4, "[B]")
>>> proto.add("schedule", None, "unknown", known=False, values=["constant"])
>>> [(r["item"], r["paper"], r["ours"], r["status"]) for r in proto.rows]
[('layers', '2 [V]', '2', 'same'), ('learning rate', '0.0001 [B]', '0.001', 'departure'), \
('schedule', 'unknown', 'constant', 'paper unknown')]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from limitlab.analysis.frames import distinct

__all__ = ["ProtocolTable", "show"]


def show(vals: Sequence) -> str:
    """'a, b, c' for tables and prose: floats with :g, None as 'default', '—' for no values.

    >>> show([0.001, 2, None]), show([])
    ('0.001, 2, default', '—')
    """
    if not vals:
        return "—"
    return ", ".join("default" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in vals)


class ProtocolTable:
    """Protocol rows read from ``runs`` (the store's DataFrame, restricted to the runs the report uses).

    ``group``: a column (e.g. ``tags.variant``); where every group has one value but the groups differ, ours reads
    'a: 1e-3; b: 1e-4'. ``order`` sorts the groups for that display. ``display`` maps a column to a function that
    turns one run's row into the value shown (for items that combine several spec fields)."""

    def __init__(self, runs: pd.DataFrame, group: str | None = "tags.variant",
                 order: Callable[[list], list] = sorted) -> None:
        self.runs = runs
        self.group = group if group is not None and group in runs else None
        self.order = order
        self.rows: list[dict[str, Any]] = []

    def ours(self, column: str) -> tuple[list, str]:
        """(distinct values of ``column`` over the runs, display text; per group where the groups differ)."""
        vals = distinct(self.runs, column)
        if len(vals) <= 1 or self.group is None or self.runs[self.group].nunique() < 2:
            return vals, show(vals)
        by = {g: distinct(rows, column) for g, rows in self.runs.groupby(self.group, sort=False)}
        if all(len(x) == 1 for x in by.values()):
            return vals, "; ".join(f"{g}: {show(by[g])}" for g in self.order(list(by)))
        return vals, show(vals)

    def add(self, item: str, column: str | None, paper: Any, source: str = "", known: bool = True,
            same: bool | None = None, note: str = "", values: Sequence | None = None) -> None:
        """One row. Ours: the distinct values of ``column`` in the runs, or ``values`` when ``column`` is None.

        Status: 'paper unknown' if not ``known``; else 'same' if ``same`` (or, when ``same`` is None, if the runs
        have exactly one value and it equals ``paper``); else 'departure'."""
        vals, shown = self.ours(column) if column else (list(values or []), show(list(values or [])))
        if not known:
            status = "paper unknown"
        elif same if same is not None else (len(vals) == 1 and vals[0] == paper):
            status = "same"
        else:
            status = "departure"
        text = paper if isinstance(paper, str) else show([paper])
        self.rows.append({"item": item, "paper": f"{text} {source}".strip(), "ours": shown, "status": status,
                          "note": note})
