"""The counting report's results.json, typed: the shared envelope (:class:`limitlab.report.ReportResults`) plus
the study's sections — grid, per (task, variant) accuracy cells, m_thr summaries, the fit, transition and OOD
numbers, and the constructions. ``write_report`` validates against :class:`CountingResults` before writing, so a
report with, say, an m_thr interval below zero or an unknown censoring label fails instead of being written."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from limitlab.report.schema import ReportResults

__all__ = ["CountingResults"]

Number = float | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Grid(_Strict):
    tasks: list[str]
    variants: list[str]
    d: list[int]
    m: list[int]
    seeds: list[int]


class AccuracyCell(_Strict):
    d: int
    m: int
    seeds: int
    mean: Number
    std: Number
    ood_mean: Number


class SeedThreshold(_Strict):
    seed: int
    m_thr: Number
    censored: Literal["none", "right", "left", "no data"]
    bound: Number
    label: str
    recovers: bool


class ThresholdSummary(_Strict):
    d: int
    seeds: int = Field(ge=0)
    n_exact: int = Field(ge=0)
    n_right: int = Field(ge=0)
    n_left: int = Field(ge=0)
    mean: Number = Field(ge=0)
    std: Number
    ci95: tuple[float, float] | None
    ci95_clipped: bool
    label: str
    per_seed: list[SeedThreshold]

    @model_validator(mode="after")
    def _inside_range(self) -> ThresholdSummary:
        if self.ci95 is not None and not 0.0 <= self.ci95[0] <= self.ci95[1]:
            raise ValueError(f"m_thr interval {self.ci95} must satisfy 0 ≤ low ≤ high")
        return self


class Fit(_Strict):
    status: Literal["ok", "too few points"]
    reason: str
    a: Number
    b: Number
    r2: Number
    a_stderr: Number
    a_ci95: tuple[float, float] | None
    n_points: int
    n_d: int
    n_censored: int
    censored: str


class Transition(_Strict):
    curves: int
    median_ratio: Number
    median_width: Number


class Ood(_Strict):
    runs: int
    test_mean: Number
    ood_mean: Number
    n_learned: int
    test_learned: Number
    ood_learned: Number
    ratio: Number


class VariantResults(_Strict):
    accuracy: list[AccuracyCell]
    m_thr: list[ThresholdSummary]
    fit: Fit
    transition: Transition
    ood: Ood | None


class Constructions(BaseModel):
    model_config = ConfigDict(extra="allow")

    available: bool
    error: str | None
    cells: list[dict[str, Any]]


class CountingResults(ReportResults):
    """results.json of the counting report (schema 'limitlab.counting.report/2'); see :mod:`.report`."""

    schema_: str = Field(alias="schema", pattern=r"^limitlab\.counting\.report/2$")
    level: float = Field(gt=0, lt=1)
    grid: Grid
    results: dict[str, dict[str, VariantResults]]
    constructions: Constructions
