"""Small helpers the counting report's modules share: the order of variants and of (task, variant) pairs, and
one pair's rows of a frame. ``distinct`` and ``show`` come from the shared layer and are re-exported here."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from limitlab.analysis.frames import distinct
from limitlab.report.tables import show

__all__ = ["base_first", "distinct", "pairs", "pick", "show"]


def base_first(variants: Iterable[str]) -> list[str]:
    """The variants sorted by name, 'base' first."""
    return sorted(variants, key=lambda v: (v != "base", v))


def pairs(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The (task, variant) pairs present: QC before MFC, the 'base' variant first."""
    order = {"qc": 0, "mfc": 1}
    found = {(str(t), str(v)) for t, v in zip(runs["task"], runs["variant"])}
    return sorted(found, key=lambda p: (order.get(p[0], 2), p[0], p[1] != "base", p[1]))


def pick(frame: pd.DataFrame, task: str, variant: str) -> pd.DataFrame:
    """The rows of ``frame`` (with task and variant columns) that belong to one (task, variant)."""
    return frame[(frame["task"] == task) & (frame["variant"] == variant)]
