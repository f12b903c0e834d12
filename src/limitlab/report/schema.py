"""The typed results.json every study report writes (:mod:`.study_report`), checked on write.

:class:`StudyResults` is the one schema: ``schema`` (``'limitlab.<study>.report/3'``), ``study``, ``runs`` (counts
by status), ``protocol`` (paper vs ours), ``claims`` (every claim as data: test, thresholds, estimate, interval,
seeds, verdict — :class:`ClaimData`), ``warnings``, ``figures``, ``store`` and ``sections`` (each experiment's
numbers). :func:`validate_results` raises a one-line ValueError naming the first bad field, so a report that would
write a malformed results.json fails instead. NaN and ±inf are not JSON: :func:`clean` turns them into null.

>>> ok = {"schema": "limitlab.toy.report/3", "study": "toy", "runs": {"total": 1, "done": 1}, "protocol": [],
...       "claims": [], "warnings": [], "figures": {}, "store": "", "sections": {}}
>>> validate_results(ok).study
'toy'
>>> validate_results({**ok, "runs": {"total": 1, "done": -1}})
Traceback (most recent call last):
ValueError: results.json (StudyResults) is invalid at runs.done: Input should be greater than or equal to 0 (got -1)
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["ClaimData", "ProtocolRow", "RunCounts", "SectionData", "StudyResults", "clean", "validate_results"]

ProtocolStatus = Literal["same", "departure", "paper unknown"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunCounts(_Strict):
    """How many of the study's runs the store holds, by status; ``used`` = the finished runs the report uses."""

    total: int = Field(ge=0)
    done: int = Field(ge=0)
    failed: int = Field(default=0, ge=0)
    pending: int = Field(default=0, ge=0)
    running: int = Field(default=0, ge=0)
    used: int | None = Field(default=None, ge=0)


class ProtocolRow(_Strict):
    """One protocol item: the paper's value with its source tag, ours read from the stored specs, and the status."""

    item: str
    paper: str
    ours: str
    status: ProtocolStatus
    note: str = ""


class ClaimData(_Strict):
    """One claim row of a study report (:meth:`limitlab.claims.ClaimResult.row` plus where it came from): the
    claim as data — its test and numeric thresholds — and what we measured, with the interval over seeds."""

    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
    study: str
    experiment: str
    paper: str
    place: str
    statement: str
    quantity: str
    test: str
    thresholds: dict[str, float]
    criterion: str
    untested: str
    min_seeds: int = Field(ge=1)
    preset: str
    came_from: list[str]
    ours: str
    estimate: float | None
    low: float | None
    high: float | None
    seeds: int = Field(ge=0)
    values: list[float | None]
    verdict: Literal["agree", "disagree", "inconclusive", "not measured"]
    note: str

    @model_validator(mode="after")
    def _interval_holds_estimate(self) -> ClaimData:
        if None not in (self.low, self.high, self.estimate) and not self.low <= self.estimate <= self.high:
            raise ValueError(f"interval [{self.low}, {self.high}] does not hold the estimate {self.estimate}")
        return self


class SectionData(_Strict):
    """One experiment's part: its title, the presets its runs came from, how many runs, and its numbers."""

    title: str
    presets: list[str]
    runs: int = Field(ge=0)
    results: dict[str, Any]


class StudyResults(_Strict):
    """results.json of every study report (:mod:`limitlab.report.study_report`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field(alias="schema", pattern=r"^limitlab\.[a-z0-9_]+\.report/3$")
    study: str
    runs: RunCounts
    protocol: list[ProtocolRow]
    claims: list[ClaimData]
    warnings: list[str]
    figures: dict[str, str]
    store: str
    sections: dict[str, SectionData]


def clean(obj: Any) -> Any:
    """JSON-safe: numpy scalars -> python, NaN/±inf -> None, tuples -> lists, keys -> str.

    >>> import numpy as np
    >>> clean({"a": np.float64(0.5), "b": (1, float("nan")), 3: [np.int64(2), float("inf")]})
    {'a': 0.5, 'b': [1, None], '3': [2, None]}
    """
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def validate_results(results: dict[str, Any], schema: type[BaseModel] | None = None) -> BaseModel:
    """``schema.model_validate(results)`` (default :class:`StudyResults`), or a one-line ValueError naming the
    first bad field."""
    schema = schema or StudyResults
    try:
        return schema.model_validate(results)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        shown = repr(err["input"])
        got = f" (got {shown[:80]}{'…' * (len(shown) > 80)})" if err["type"] != "missing" else ""
        raise ValueError(f"results.json ({schema.__name__}) is invalid at {where}: {err['msg']}{got}") from None
