"""From the store's DataFrame to tidy frames: pick runs, name columns, group by tags, unroll vector metrics.

``RunStore.to_dataframe(study)`` gives one row per run with dotted columns: the spec's fields (``model.d_model``,
``task.m``, ``seed``, ...), its tags (``tags.<name>``), and its results (``result.<split>/<metric>``; a vector metric
is a list in the cell, e.g. squared error per in-context example). A study's analysis starts by choosing the columns
it needs under short names:

>>> raw = pd.DataFrame({"run_id": ["a", "b", "c"], "status": ["done", "done", "failed"],
...                     "tags.d": [8, 16, 8], "seed": [0, 0, 1], "result.test/accuracy": [0.9, 0.7, None],
...                     "result.test/per_index": [[0.5, 0.25], [0.75, 0.5], None]})
>>> runs = tidy(raw, {"acc": "result.test/accuracy", "curve": "result.test/per_index"})
>>> runs[["run_id", "d", "seed", "acc"]].to_dict("records")
[{'run_id': 'a', 'd': 8, 'seed': 0, 'acc': 0.9}, {'run_id': 'b', 'd': 16, 'seed': 0, 'acc': 0.7}]
>>> long_frame(runs, "curve", keep=["d"]).to_dict("records")
[{'run_id': 'a', 'd': 8, 'index': 0, 'curve': 0.5}, {'run_id': 'a', 'd': 8, 'index': 1, 'curve': 0.25}, \
{'run_id': 'b', 'd': 16, 'index': 0, 'curve': 0.75}, {'run_id': 'b', 'd': 16, 'index': 1, 'curve': 0.5}]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["column", "distinct", "done", "groups", "long_frame", "result_columns", "tag_columns", "tidy"]


def done(raw: pd.DataFrame, statuses: Sequence[str] = ("done",)) -> pd.DataFrame:
    """The rows of ``raw`` whose ``status`` is in ``statuses`` (all rows if there is no status column)."""
    if "status" not in raw:
        return raw
    return raw[raw["status"].isin(list(statuses))]


def column(raw: pd.DataFrame, name: str, default: Any = np.nan) -> pd.Series:
    """``raw[name]``, or a column of ``default`` when the store has no such column (no run set that field)."""
    if name in raw:
        return raw[name]
    return pd.Series([default] * len(raw), index=raw.index, dtype=object if default is None else None)


def tag_columns(raw: pd.DataFrame) -> dict[str, str]:
    """{short name: column} for every ``tags.<name>`` column, e.g. {'d': 'tags.d'}."""
    return {c[len("tags."):]: c for c in raw.columns if isinstance(c, str) and c.startswith("tags.")}


def result_columns(raw: pd.DataFrame, split: str | None = None) -> dict[str, str]:
    """{'<split>/<metric>': column} for every ``result.<split>/<metric>`` column (of one split if given)."""
    out = {}
    for c in raw.columns:
        if isinstance(c, str) and c.startswith("result.") and "/" in c:
            key = c[len("result."):]
            if split is None or key.split("/", 1)[0] == split:
                out[key] = c
    return out


def tidy(raw: pd.DataFrame, columns: Mapping[str, str] | None = None, tags: bool = True,
         statuses: Sequence[str] | None = ("done",)) -> pd.DataFrame:
    """One row per run: ``run_id``, ``seed``, every tag under its short name (if ``tags``), then ``columns``
    ({new name: store column}; a column no run has is all NaN). Only runs whose status is in ``statuses``
    (None: all runs). Numeric result cells are left as they are (vector metrics stay lists)."""
    rows = raw if statuses is None else done(raw, statuses)
    out = pd.DataFrame(index=rows.index)
    out["run_id"] = column(rows, "run_id", None)
    if "seed" in rows:
        out["seed"] = rows["seed"]
    if tags:
        for short, col in tag_columns(rows).items():
            out[short] = rows[col]
    for new, col in (columns or {}).items():
        out[new] = column(rows, col)
    return out.reset_index(drop=True)


def distinct(frame: pd.DataFrame, name: str) -> list:
    """The distinct values of ``frame[name]`` (NaN as None), sorted where they compare, None last; [] if absent.

    >>> distinct(pd.DataFrame({"x": [3, 1, None, 3]}), "x")
    [1.0, 3.0, None]
    """
    if name not in frame:
        return []
    out = []
    for v in frame[name]:
        v = None if (isinstance(v, float) and math.isnan(v)) else v
        if v not in out:
            out.append(v)
    try:
        return sorted(out, key=lambda v: (v is None, v))
    except TypeError:
        return out


def groups(frame: pd.DataFrame, by: Sequence[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """(key as {column: value}, rows) per group of ``by``, in sorted order; NaN keys form their own group.

    >>> [(k, len(g)) for k, g in groups(pd.DataFrame({"d": [16, 8, 8]}), ["d"])]
    [({'d': 8}, 2), ({'d': 16}, 1)]
    """
    by = list(by)
    if frame.empty:
        return
    for key, g in frame.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(by, key)), g


def long_frame(frame: pd.DataFrame, name: str, index: str = "index", keep: Sequence[str] = (),
               start: int = 0) -> pd.DataFrame:
    """A vector column (a list per run) as a long frame: one row per (run, position) with ``run_id``, the
    ``keep`` columns, the position as ``index`` (from ``start``) and the value under ``name``. Runs whose cell
    is not a list (missing result) are dropped; NaN entries (no count at that position) are kept."""
    cols = ["run_id", *keep, index, name]
    rows = []
    for rec in frame.to_dict("records"):
        vec = rec.get(name)
        if not isinstance(vec, (list, tuple, np.ndarray)):
            continue
        base = {"run_id": rec.get("run_id"), **{k: rec.get(k) for k in keep}}
        for i, v in enumerate(vec):
            rows.append({**base, index: i + start, name: np.nan if v is None else float(v)})
    return pd.DataFrame(rows, columns=cols)
