"""Small helpers the counting report's modules share: the distinct values of a column and how they are shown, the
order of variants and of (task, variant) pairs, and one pair's rows of a frame."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd

__all__ = ["base_first", "distinct", "pairs", "pick", "show"]


def distinct(raw: pd.DataFrame, column: str) -> list:
    """The distinct values of ``raw[column]`` (NaN as None), sorted where they compare, None last; [] if absent."""
    if column not in raw:
        return []
    out = []
    for v in raw[column]:
        v = None if (isinstance(v, float) and math.isnan(v)) else v
        if v not in out:
            out.append(v)
    try:
        return sorted(out, key=lambda v: (v is None, v))
    except TypeError:
        return out


def show(vals: Sequence) -> str:
    """'a, b, c' for tables and prose: floats with :g, None as 'default', '—' for no values."""
    if not vals:
        return "—"
    return ", ".join("default" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in vals)


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
