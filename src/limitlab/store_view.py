"""A store seen through a filter: ``limitlab report STUDY --where KEY=VALUE`` reports only the matching runs.

A report reads runs through ``store.to_dataframe(study)``; :class:`StoreView` is that store with the frame's rows
restricted to runs whose columns equal the given values (``model.d_model=32``, ``tags.variant=base``,
``seed=0``), and everything else (specs, results, weights) passed through. Two variants of a preset in one store
can so be reported apart instead of pooled.

>>> view = StoreView(RunStore("limitlab-store"), {"tags.variant": "base"})   # doctest: +SKIP
>>> view.to_dataframe("counting")["tags.variant"].unique()                 # doctest: +SKIP
array(['base'], dtype=object)
"""

from __future__ import annotations

from typing import Any

import pandas as pd


class StoreView:
    """``store`` whose :meth:`to_dataframe` keeps only the rows where every ``where`` column equals its value."""

    def __init__(self, store: Any, where: dict[str, Any]) -> None:
        self.store, self.where = store, dict(where)

    def __getattr__(self, name: str) -> Any:  # specs, results, weights, root, runs_dir: the store's own
        return getattr(self.store, name)

    def to_dataframe(self, study: str | None = None) -> pd.DataFrame:
        frame = self.store.to_dataframe(study)
        for column, value in self.where.items():
            if column not in frame.columns:
                raise ValueError(f"--where {column}: no such column in the runs; `limitlab runs` lists the columns "
                                 "(spec fields such as model.d_model, tags.<name>, seed)")
            frame = frame[frame[column].map(lambda v, want=value: _equal(v, want))]
        return frame.reset_index(drop=True)


def _equal(got: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want or got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return float(got) == float(want)
    return got == want or str(got) == str(want)
