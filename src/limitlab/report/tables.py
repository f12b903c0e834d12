"""The two tables every study report has: the protocol (paper vs ours) and the claims (with verdicts).

**Protocol.** One row per item (layers, learning rate, steps, ...): the paper's value and its source tag, *ours*
read from the stored specs of the runs the report uses (never assumed), and a status — 'same', 'departure', or
'paper unknown' when the sources do not say (then ours is our choice).

**Claims.** One row per claim of the paper and scope: the claim, its source tag, what we measured, the criterion
that turns the number into a verdict, and the verdict — 'agree', 'disagree', or 'not measured' when the runs in the
store cannot decide it. Write the criterion before looking at the number.

>>> runs = pd.DataFrame({"optim.lr": [1e-3, 1e-3], "model.n_layers": [2, 2], "tags.variant": ["a", "b"]})
>>> proto = ProtocolTable(runs)
>>> proto.add("layers", "model.n_layers", 2, "[V]")
>>> proto.add("learning rate", "optim.lr", 1e-4, "[B]")
>>> proto.add("schedule", None, "unknown", known=False, values=["constant"])
>>> [(r["item"], r["paper"], r["ours"], r["status"]) for r in proto.rows]
[('layers', '2 [V]', '2', 'same'), ('learning rate', '0.0001 [B]', '0.001', 'departure'), \
('schedule', 'unknown', 'constant', 'paper unknown')]
>>> claims = ClaimsTable()
>>> claims.add("accuracy falls with m", "[V] abstract", "qc", verdict("slope −0.1", "agree if slope < 0", "agree"))
>>> claims.rows[0]["verdict"]
'agree'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from limitlab.analysis.frames import distinct

__all__ = ["VERDICTS", "ClaimsTable", "ProtocolTable", "not_measured", "show", "verdict"]

VERDICTS = ("agree", "disagree", "not measured")


def show(vals: Sequence) -> str:
    """'a, b, c' for tables and prose: floats with :g, None as 'default', '—' for no values.

    >>> show([0.001, 2, None]), show([])
    ('0.001, 2, default', '—')
    """
    if not vals:
        return "—"
    return ", ".join("default" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in vals)


def verdict(ours: str, criterion: str, result: str) -> dict[str, str]:
    """``{ours, criterion, verdict}`` for :meth:`ClaimsTable.add`; ``result`` must be one of :data:`VERDICTS`."""
    if result not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}; got {result!r}")
    return {"ours": ours, "criterion": criterion, "verdict": result}


def not_measured(ours: str, criterion: str = "—") -> dict[str, str]:
    """A 'not measured' verdict: ``ours`` says why (no runs, too few points, every value censored, ...)."""
    return verdict(ours, criterion, "not measured")


class ClaimsTable:
    """Rows ``{claim, source, scope, ours, criterion, verdict}`` in the order added."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, claim: str, source: str, scope: str, result: dict[str, str]) -> None:
        """``result`` from :func:`verdict` / :func:`not_measured`."""
        if result.get("verdict") not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}; got {result.get('verdict')!r}")
        self.rows.append({"claim": claim, "source": source, "scope": scope, **result})


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
