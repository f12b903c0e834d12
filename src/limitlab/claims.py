"""Claims as data: a paper's statement, the quantity we measure, and a numeric test fixed before the data.

A :class:`Claim` is written once, beside the experiment that measures it, from the paper's statement — never from
a result. Its criterion text is generated from the same numbers the code tests, so the page cannot say one
threshold while the code checks another. An experiment measures the quantity (a :class:`Measure`: an estimate
with its 95% interval over seeds, inside the metric's range) and :meth:`Claim.judge` returns the row.

Verdicts:

=============  ============================================================================================
agree          the interval lies on the claim's side of the threshold
disagree       the interval lies on the other side
inconclusive   the interval straddles the threshold, or fewer seeds than the claim needs
not measured   the store has no runs that measure it (the row names the preset that would)
=============  ============================================================================================

Tests (each names its numbers):

* :class:`AtLeast` / :class:`AtMost` — a level: accuracy ≥ 0.9, an error ≤ 0.1, a paired per-seed difference
  > 0 (build the measure with :meth:`Measure.paired`);
* :class:`Within` — a value inside a published range (a fitted exponent near the paper's);
* :class:`Exists` — an existence claim: at least ``count`` runs of the published regime show the effect;
* :class:`BestShape` — a shape claim ('grows linearly'): the claimed curve is clearly better supported than each
  obvious rival (a constant, √x, log x, a parabola) by an information criterion
  (:func:`limitlab.analysis.fits.shape_aicc`);
* :class:`Predicts` — a prediction claim: the measured value inside the prediction interval, and that interval
  narrow enough to mean something.

>>> claim = Claim("toy.learns", "Toy et al. 2024", "Table 1", "the model learns the task",
...               "test accuracy", AtLeast(0.9), min_seeds=3)
>>> claim.criterion
'agree if the 95% interval of test accuracy lies at or above 0.9; disagree if it lies below 0.9; else \
inconclusive (fewer than 3 seeds: inconclusive)'
>>> claim.judge(Measure.of([0.97, 0.98, 0.99], bounds=(0, 1))).verdict
'agree'
>>> claim.judge(Measure.of([0.5, 0.99, 0.97], bounds=(0, 1))).verdict     # the interval straddles 0.9
'inconclusive'
>>> claim.judge(Measure.of([0.97, 0.98], bounds=(0, 1))).ours              # too few seeds
'0.975 [0.911, 1] over 2 seeds; needs 3 seeds'
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

UNBOUNDED = (-math.inf, math.inf)
DIFFERENCE_OF_PROPORTIONS = (-1.0, 1.0)  # bounds of a paired difference of two accuracies

__all__ = ["DIFFERENCE_OF_PROPORTIONS", "VERDICTS", "AtLeast", "AtMost", "BestShape", "Claim", "ClaimResult", "Exists",
           "Measure", "Predicts", "Test", "Within", "fmt_number"]

Verdict = Literal["agree", "disagree", "inconclusive", "not measured"]
VERDICTS: tuple[str, ...] = ("agree", "disagree", "inconclusive", "not measured")


def fmt_number(x: float) -> str:
    """A number for a criterion or a row: 3 significant digits, no trailing zeros ('0.9', '1.2e+04', '—')."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3g}"


@dataclass(frozen=True)
class Measure:
    """What an experiment measured for one claim: ``estimate`` with its 95% interval [low, high] over ``n`` seeds.

    ``values``: the per-seed (or per-run) values behind it, for :class:`Exists` and for the row's JSON;
    ``text``: what the row shows as *ours* (default: 'estimate [low, high] over n seeds').
    """

    estimate: float
    low: float
    high: float
    n: int
    values: tuple[float, ...] = ()
    text: str = ""

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray, bounds: tuple[float, float] = UNBOUNDED,
           text: str = "") -> Measure:
        """The mean over seeds with its t-interval clipped to ``bounds`` (NaNs dropped).

        >>> m = Measure.of([0.2, 0.4, 0.6], bounds=(0, 1)); round(m.estimate, 3), round(m.low, 3), m.n
        (0.4, 0.0, 3)
        """
        from limitlab.analysis.intervals import mean_ci  # scipy: imported when a report measures

        iv = mean_ci(values, bounds)
        kept = tuple(float(v) for v in np.asarray(values, dtype=float) if not math.isnan(v))
        return cls(iv.mean, iv.low, iv.high, iv.n, kept, text)

    @classmethod
    def paired(cls, a: dict[Any, float], b: dict[Any, float], text: str = "",
               bounds: tuple[float, float] = UNBOUNDED) -> Measure:
        """The paired per-seed difference ``a[seed] − b[seed]`` over the seeds both have, with its t-interval
        clipped to ``bounds`` (a difference of two proportions: (−1, 1)).

        >>> m = Measure.paired({0: 0.9, 1: 0.8, 2: 0.85}, {0: 0.5, 1: 0.6, 2: 0.4, 3: 0.1}); m.n, round(m.estimate, 3)
        (3, 0.35)
        >>> Measure.paired({0: 0.9, 1: 0.1, 2: 0.9}, {0: 0.0, 1: 0.0, 2: 0.0}, bounds=(-1, 1)).high
        1.0
        """
        seeds = sorted(set(a) & set(b), key=str)
        diffs = [a[s] - b[s] for s in seeds if not (math.isnan(a[s]) or math.isnan(b[s]))]
        return cls.of(diffs, bounds, text)

    @classmethod
    def count(cls, values: Sequence[float], text: str = "") -> Measure:
        """Per-run values for an :class:`Exists` test (the estimate is the best one; no interval)."""
        kept = tuple(float(v) for v in values if not math.isnan(v))
        best = max(kept) if kept else math.nan
        return cls(best, math.nan, math.nan, len(kept), kept, text)

    def shown(self) -> str:
        if self.text:
            return self.text
        if math.isnan(self.low):
            return f"{fmt_number(self.estimate)} over {self.n} seed{'s' * (self.n != 1)}"
        return (f"{fmt_number(self.estimate)} [{fmt_number(self.low)}, {fmt_number(self.high)}] over {self.n} "
                f"seed{'s' * (self.n != 1)}")


class Test(ABC):
    """A decision rule with its numbers. Subclasses define :meth:`criterion` (the text, from the numbers) and
    :meth:`decide` (the verdict for a measure with enough seeds)."""

    kind = "test"

    def thresholds(self) -> dict[str, float]:
        """The numbers the test decides by ({'threshold': 0.9}); flags such as ``strict`` are not numbers."""
        return {k: float(v) for k, v in vars(self).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    @abstractmethod
    def criterion(self, quantity: str) -> str:
        """The rule in words, with its numbers, for ``quantity``."""

    @abstractmethod
    def decide(self, m: Measure) -> Verdict:
        """The verdict for a measure with enough seeds."""


def _ends(m: Measure) -> tuple[float, float]:
    """The interval's ends; a measure without an interval stands at its estimate."""
    return (m.estimate if math.isnan(m.low) else m.low, m.estimate if math.isnan(m.high) else m.high)


@dataclass(frozen=True)
class AtLeast(Test):
    """Agree when the whole interval is at or above ``threshold`` (strictly above with ``strict``)."""

    threshold: float
    strict: bool = False
    kind = "at least"

    def criterion(self, quantity: str) -> str:
        t, op = fmt_number(self.threshold), "above" if self.strict else "at or above"
        return (f"agree if the 95% interval of {quantity} lies {op} {t}; disagree if it lies below {t}; "
                "else inconclusive")

    def decide(self, m: Measure) -> Verdict:
        low, high = _ends(m)
        if low > self.threshold or (low >= self.threshold and not self.strict):
            return "agree"
        if high < self.threshold:
            return "disagree"
        return "inconclusive"


@dataclass(frozen=True)
class AtMost(Test):
    """Agree when the whole interval is at or below ``threshold`` (strictly below with ``strict``)."""

    threshold: float
    strict: bool = False
    kind = "at most"

    def criterion(self, quantity: str) -> str:
        t, op = fmt_number(self.threshold), "below" if self.strict else "at or below"
        return (f"agree if the 95% interval of {quantity} lies {op} {t}; disagree if it lies above {t}; "
                "else inconclusive")

    def decide(self, m: Measure) -> Verdict:
        low, high = _ends(m)
        if high < self.threshold or (high <= self.threshold and not self.strict):
            return "agree"
        if low > self.threshold:
            return "disagree"
        return "inconclusive"


@dataclass(frozen=True)
class Within(Test):
    """Agree when the interval lies inside [low, high]; disagree when it lies wholly outside."""

    low: float
    high: float
    kind = "within"

    def criterion(self, quantity: str) -> str:
        lo, hi = fmt_number(self.low), fmt_number(self.high)
        return (f"agree if the 95% interval of {quantity} lies inside [{lo}, {hi}]; disagree if it lies wholly "
                f"outside; else inconclusive")

    def decide(self, m: Measure) -> Verdict:
        low, high = _ends(m)
        if self.low <= low and high <= self.high:
            return "agree"
        if high < self.low or low > self.high:
            return "disagree"
        return "inconclusive"


@dataclass(frozen=True)
class Exists(Test):
    """An existence claim: agree if at least ``count`` of the measured runs reach ``threshold`` (≥, or ≤ with
    ``above=False``); disagree if none of them does (every run of the published regime was tried)."""

    threshold: float
    count: int = 1
    above: bool = True
    kind = "exists"

    def criterion(self, quantity: str) -> str:
        op = "≥" if self.above else "≤"
        runs = "one run" if self.count == 1 else f"{self.count} runs"
        return (f"agree if at least {runs} of the published regime reach{'es' * (self.count == 1)} {quantity} {op} "
                f"{fmt_number(self.threshold)}; disagree if fewer do")

    def decide(self, m: Measure) -> Verdict:
        hits = sum((v >= self.threshold) if self.above else (v <= self.threshold) for v in m.values)
        return "agree" if hits >= self.count else "disagree"


@dataclass(frozen=True)
class BestShape(Test):
    """A shape claim ('grows linearly'): the ``claimed`` curve is better supported than every one of ``rivals``.

    The measure is the closest rival's information criterion minus the claimed curve's (e.g. AICc, see
    :func:`limitlab.analysis.fits.shape_aicc`; a point value, no interval). Agree if it is at least ``margin``
    (every rival is clearly worse); disagree if it is at most −``margin`` (some rival is clearly better); else
    inconclusive — two shapes the data cannot tell apart.

    >>> t = BestShape("linear", ("constant", "log", "quadratic"))
    >>> t.criterion("AICc(closest rival) − AICc(line)")
    'agree if AICc(closest rival) − AICc(line) ≥ 2 (the linear curve is clearly better supported than each of \
constant, log, quadratic); disagree if it is ≤ -2 (a rival is clearly better supported); else inconclusive'
    >>> nan = float("nan")
    >>> [t.decide(Measure(v, nan, nan, 9)) for v in (3.1, -2.5, 0.4)]
    ['agree', 'disagree', 'inconclusive']
    """

    claimed: str
    rivals: tuple[str, ...]
    margin: float = 2.0
    kind = "best shape"

    def criterion(self, quantity: str) -> str:
        t = fmt_number(self.margin)
        return (f"agree if {quantity} ≥ {t} (the {self.claimed} curve is clearly better supported than each of "
                f"{', '.join(self.rivals)}); disagree if it is ≤ {fmt_number(-self.margin)} (a rival is clearly "
                "better supported); else inconclusive")

    def decide(self, m: Measure) -> Verdict:
        if m.estimate >= self.margin:
            return "agree"
        if m.estimate <= -self.margin:
            return "disagree"
        return "inconclusive"


@dataclass(frozen=True)
class Predicts(Test):
    """A prediction claim. The measure is the relative error of the prediction, (measured − predicted) / measured,
    with ``low``/``high`` the prediction interval in the same units. Agree if 0 lies inside the interval and the
    interval is narrower than ±``tolerance``; disagree if 0 lies outside it; inconclusive if the interval is too
    wide to decide."""

    tolerance: float
    kind = "predicts"

    def criterion(self, quantity: str) -> str:
        t = fmt_number(100 * self.tolerance)
        return (f"agree if the measured {quantity} lies inside the 95% prediction interval and that interval is "
                f"within ±{t}%; disagree if it lies outside; inconclusive if the interval is wider than ±{t}%")

    def decide(self, m: Measure) -> Verdict:
        if math.isnan(m.low) or math.isnan(m.high):
            return "inconclusive"
        if not m.low <= 0.0 <= m.high:
            return "disagree"
        return "agree" if max(-m.low, m.high) <= self.tolerance else "inconclusive"


@dataclass(frozen=True)
class ClaimResult:
    """One row of the claims table: the claim, what we measured, the verdict (see :meth:`Claim.judge`)."""

    claim: Claim
    verdict: Verdict
    ours: str
    measure: Measure | None = None
    note: str = ""

    def row(self) -> dict[str, Any]:
        """The JSON row (results.json ``claims``)."""
        c, m = self.claim, self.measure
        return {"id": c.id, "paper": c.paper, "place": c.place, "statement": c.statement, "quantity": c.quantity,
                "test": c.test.kind, "thresholds": c.test.thresholds(), "criterion": c.criterion,
                "untested": c.untested, "min_seeds": c.min_seeds, "preset": c.preset, "ours": self.ours,
                "estimate": None if m is None else m.estimate, "low": None if m is None else m.low,
                "high": None if m is None else m.high, "seeds": 0 if m is None else m.n,
                "values": [] if m is None else list(m.values), "verdict": self.verdict, "note": self.note}


@dataclass(frozen=True)
class Claim:
    """A paper's claim as data (see the module docstring).

    ``place``: table, figure or section of the paper; ``quantity``: what we measure, in words the criterion
    reads; ``untested``: what this row does not test (said in the row); ``preset``: the preset that measures it.
    """

    id: str
    paper: str
    place: str
    statement: str
    quantity: str
    test: Test
    min_seeds: int = 3
    untested: str = ""
    preset: str = "quick"

    @property
    def criterion(self) -> str:
        seeds = f" (fewer than {self.min_seeds} seeds: inconclusive)" if self.min_seeds > 1 else ""
        return self.test.criterion(self.quantity) + seeds

    def judge(self, measure: Measure | None, note: str = "") -> ClaimResult:
        """The row for ``measure``: not measured without one, inconclusive with fewer than ``min_seeds`` values."""
        if measure is None or measure.n == 0 or math.isnan(measure.estimate):
            return self.not_measured(note or "no finished runs measure it")
        if measure.n < self.min_seeds:
            return ClaimResult(self, "inconclusive", f"{measure.shown()}; needs {self.min_seeds} seeds", measure,
                               note)
        return ClaimResult(self, self.test.decide(measure), measure.shown(), measure, note)

    def not_measured(self, why: str = "") -> ClaimResult:
        """A 'not measured' row that says why and which preset measures it."""
        why = why or "no finished runs measure it"
        return ClaimResult(self, "not measured", f"{why}; measured by the {self.preset!r} preset", None)
