"""The study contract's report half: an :class:`Experiment` turns the store's runs into a :class:`Section`.

A study is presets plus experiments. Each experiment declares the claims it tests (data, see
:mod:`limitlab.claims`) and an ``analyze(ctx) -> Section`` function; the generic writer
(:mod:`limitlab.report.study_report`) runs every experiment, puts every section's claims into one table, and
writes the page, the figures and one results.json. A section is written like a page — paragraphs, tables,
figures — and records its numbers in ``results``:

>>> from limitlab.claims import AtLeast, Claim, Measure
>>> LEARNS = Claim("toy.learns", "Toy 2024", "Table 1", "it learns", "test accuracy", AtLeast(0.9))
>>> def analyze(ctx):
...     sec = Section("main", "Accuracy")
...     sec.paragraph("Test accuracy over seeds.")
...     sec.judge(LEARNS, Measure.of([0.95, 0.97, 0.99], bounds=(0, 1)))
...     sec.results["accuracy"] = [0.95, 0.97, 0.99]
...     return sec
>>> exp = Experiment("main", "Accuracy", (LEARNS,), analyze)
>>> sec = exp.run(None)
>>> [r.verdict for r in sec.claims], sec.results["accuracy"][0]
(['agree'], 0.95)

A claim the experiment declares but does not judge becomes 'not measured' (naming its preset); judging a claim it
did not declare is a bug and raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from limitlab.claims import Claim, ClaimResult, Measure

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Experiment", "ReportContext", "Section"]


class Section:
    """One experiment's part of the page: blocks (paragraphs, tables, figures) in order, its numbers, its claims."""

    def __init__(self, key: str, title: str) -> None:
        self.key, self.title = key, title
        self.blocks: list[tuple[str, tuple, dict]] = []
        self.figures: dict[str, Any] = {}
        self.results: dict[str, Any] = {}
        self.claims: list[ClaimResult] = []
        self.warnings: list[str] = []
        self.run_ids: set[str] = set()

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", (text,), {"level": 3}))

    def paragraph(self, text: str, css: str | None = None) -> None:
        self.blocks.append(("paragraph", (text,), {"css": css}))

    def bullets(self, items: Iterable[str]) -> None:
        self.blocks.append(("bullets", (list(items),), {}))

    def code(self, text: str) -> None:
        self.blocks.append(("code", (text,), {}))

    def table(self, rows: Any, columns: Sequence[str] | None = None, caption: str | None = None,
              **kwargs: Any) -> None:
        """A table of dict rows (or a DataFrame); keyword arguments as :meth:`limitlab.report.Page.table`."""
        self.blocks.append(("table", (rows,), {"columns": columns, "caption": caption, **kwargs}))

    def figure(self, name: str, fig: Any, caption: str) -> None:
        """A matplotlib figure saved as ``name`` (a plain ``*.png`` file name), shown with ``caption``."""
        if name in self.figures:
            raise ValueError(f"section {self.key!r} has two figures named {name!r}")
        self.figures[name] = fig
        self.blocks.append(("figure", (name, caption), {}))

    def uses(self, runs: pd.DataFrame) -> pd.DataFrame:
        """Record the runs this section analyses (the claims table names the preset they came from)."""
        if "run_id" in runs:
            self.run_ids.update(runs["run_id"].astype(str))
        return runs

    def judge(self, claim: Claim, measure: Measure | None, note: str = "") -> ClaimResult:
        """Test ``claim`` on ``measure`` (see :meth:`limitlab.claims.Claim.judge`) and keep the row."""
        result = claim.judge(measure, note)
        self.claims.append(result)
        return result

    def cannot_decide(self, claim: Claim, measure: Measure, why: str) -> ClaimResult:
        """An 'inconclusive' row for a measure that cannot decide the test where it was taken (a threshold the
        quantity cannot reach at this scale); ``why`` says so in the row. A structural reason, never the result."""
        result = ClaimResult(claim, "inconclusive", f"{measure.shown()}; {why}", measure, why)
        self.claims.append(result)
        return result

    def not_measured(self, claim: Claim, why: str) -> ClaimResult:
        result = claim.not_measured(why)
        self.claims.append(result)
        return result

    def render(self, page: Any) -> None:
        """Replay the blocks onto a :class:`limitlab.report.Page`."""
        for method, args, kwargs in self.blocks:
            getattr(page, method)(*args, **{k: v for k, v in kwargs.items() if v is not None})


@dataclass
class ReportContext:
    """What an experiment reads: the study, the store, its finished runs (``runs``, one row per run, flattened
    spec and results columns) and every run whatever its status (``raw``), and the report options."""

    study: Any
    store: Any
    raw: pd.DataFrame
    runs: pd.DataFrame
    options: Any = None
    notes: dict[str, Any] = field(default_factory=dict)

    def tagged(self, **tags: Any) -> pd.DataFrame:
        """The finished runs whose tags equal ``tags`` (``ctx.tagged(experiment="grokking")``)."""
        runs = self.runs
        for key, value in tags.items():
            column = f"tags.{key}"
            if column not in runs:
                return runs.iloc[0:0]
            runs = runs[runs[column] == value]
        return runs

    def load_model(self, run_id: str) -> Any:
        """The trained model of ``run_id`` from its stored weights (:func:`limitlab.models.load_model`); a
        ValueError naming the command that keeps them when they are missing (a report never trains)."""
        from limitlab.models import load_model

        try:
            return load_model(self.store, run_id)
        except ValueError as exc:
            raise ValueError(f"{exc}; train with `limitlab run {self.study.name} --save-weights` to keep them "
                             "(a report never trains)") from None


@dataclass(frozen=True)
class Experiment:
    """A named analysis of a study's runs: the claims it tests and ``analyze(ctx) -> Section``."""

    key: str
    title: str
    claims: tuple[Claim, ...]
    analyze: Callable[[ReportContext], Section]

    def run(self, ctx: ReportContext | None) -> Section:
        """``analyze(ctx)`` with the claims checked: every declared claim has exactly one row, in declared
        order; undeclared ones raise."""
        section = self.analyze(ctx)
        declared = {c.id: c for c in self.claims}
        judged: dict[str, ClaimResult] = {}
        for result in section.claims:
            if result.claim.id not in declared:
                raise ValueError(f"experiment {self.key!r} judged claim {result.claim.id!r}, which it does not "
                                 f"declare (declared: {', '.join(declared) or 'none'})")
            if result.claim.id in judged:
                raise ValueError(f"experiment {self.key!r} judged claim {result.claim.id!r} twice")
            judged[result.claim.id] = result
        section.claims = [judged.get(c.id) or c.not_measured() for c in self.claims]
        return section


def figure_names(sections: Iterable[Section]) -> Mapping[str, Any]:
    """Every section's figures in one mapping; two sections may not use one file name."""
    out: dict[str, Any] = {}
    for sec in sections:
        for name, fig in sec.figures.items():
            if name in out:
                raise ValueError(f"two sections write the figure {name!r}")
            out[name] = fig
    return out
