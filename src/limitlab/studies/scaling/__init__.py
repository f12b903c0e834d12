"""Scaling study: Jason Wei's "Some intuitions about large language models", reproduced at small scale.

One study, ``scaling``, made of experiments. Each experiment is one module of this package, listed in
:data:`EXPERIMENTS`; a module that does not exist yet is left out (its presets answer with a one-line error
saying so), so a new experiment is one new file::

    laws        scaling laws that predict: L(N), L(C), L(N, D) fits, held-out prediction, N_opt(C)   (part A)
    multitask   multitask sparse parity: smooth mean loss, abrupt per-subtask drops                  (part A)
    emergence   emergence vs metric: exact match vs per-token metrics on addition / sparse parity     (part B)
    grokking    modular addition: train vs test accuracy over steps                                  (part B)
    flipped     in-context learning with flipped / semantically unrelated labels                    (part B)
    scratchpad  time to think: plain vs reversed vs scratchpad addition                               (part B)

The contract an experiment module ``limitlab.studies.scaling.<name>`` must meet
-------------------------------------------------------------------------------

``PRESETS: dict[str, Callable[..., list[RunSpec]]]``
    Exactly the keys ``"smoke"``, ``"quick"``, ``"paper"`` (more keys are refused: one name per size). Each
    function takes only keyword arguments with defaults (they become ``--set study.<arg>=...`` options of that
    experiment's own presets) and returns RunSpecs with ``study == "scaling"`` and ``tags["experiment"] == <name>``
    (checked when the preset expands; a wrong tag is a ValueError). Other tags are free (the report reads them
    back as ``tags.<key>`` columns). ``smoke``: seconds on a CPU (the integration tests train it); ``quick``:
    shows the effect in under 10 minutes on 2 CPU cores, train and report; ``paper``: sized for one GPU.

``report_section(runs: pandas.DataFrame, out_dir: pathlib.Path) -> Section`` (or a plain 4-tuple in that order)
    ``runs`` holds one row per stored run of this experiment, every status (pending, running, done, failed):
    the columns of :meth:`RunStore.to_dataframe` (``run_id``, ``status``, the spec's dotted fields such as
    ``model.d_model`` and ``tags.<key>``, ``result.<split>/<metric>`` for finished runs) plus ``metrics``: the
    list of records of the run's ``metrics.jsonl`` (``{"step", "train_loss"}`` and ``{"step", "test/<metric>",
    ...}`` dicts; ``[]`` for a run not started). It must work on any subset (a smoke store, a half-finished
    sweep: say "too few runs" rather than raise) and returns:

    * ``results`` — a JSON-able dict (NaN allowed; written as null) of every number the section shows.
    * ``figures`` — ``{key: file name}`` of the PNGs it wrote into ``out_dir``; file names start with
      ``<name>_`` so experiments never overwrite each other.
    * ``claims`` — rows ``{"intuition", "claim", "ours", "criterion", "verdict"}`` (``verdict``: ``agree``,
      ``disagree`` or ``not measured``; ``ours`` quotes our numbers). The frame adds ``experiment``.
    * ``render`` — either a callable ``render(page: limitlab.report.html.Page) -> None`` that appends the
      section's body (headings at level 3 or deeper, paragraphs, tables, ``page.figure(file name, caption)``),
      or a string holding an already-escaped HTML fragment.

    The frame writes the experiment's level-2 heading, calls ``render``, and collects ``results``, ``figures``
    and ``claims`` into ``results.json`` and the page's claims table (see :mod:`.report`).

Presets of the study
--------------------

``smoke``, ``quick``, ``paper`` run that preset of every experiment present; ``<experiment>-<preset>`` (e.g.
``laws-quick``, ``grokking-smoke``) runs one experiment. ``limitlab studies`` lists them all;
``limitlab report scaling`` writes one report with a section per experiment found in the store.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from limitlab.spec import RunSpec
from limitlab.studies.base import Study
from limitlab.studies.scaling.labels import DESIGN, LABELS

STUDY_NAME = "scaling"
EXPERIMENTS: tuple[str, ...] = ("laws", "multitask", "emergence", "grokking", "flipped", "scratchpad")
LEVELS: tuple[str, ...] = ("smoke", "quick", "paper")
TITLES = {
    "laws": "Scaling laws that predict",
    "multitask": "Multitask next-token prediction (multitask sparse parity)",
    "emergence": "Emergence vs metric",
    "grokking": "Emergence in time: grokking",
    "flipped": "In-context learning with flipped labels",
    "scratchpad": "Time to think: plain, reversed and scratchpad addition",
}


class Section(NamedTuple):
    """What an experiment's ``report_section`` returns (a plain 4-tuple in this order works too)."""

    results: dict[str, Any]
    figures: dict[str, str]
    claims: list[dict[str, Any]]
    render: Callable[[Any], None] | str


def module_name(experiment: str) -> str:
    return f"{__name__}.{experiment}"


def is_present(experiment: str) -> bool:
    """True when the experiment's module exists (it may still fail to import: that error is not hidden)."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown scaling experiment {experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    return importlib.util.find_spec(module_name(experiment)) is not None


def load(experiment: str) -> ModuleType:
    """Import an experiment's module and check it against the contract; a missing module is a clear ValueError."""
    if not is_present(experiment):
        raise ValueError(f"scaling experiment {experiment!r} is not implemented yet: module "
                         f"{module_name(experiment)} does not exist (present: {', '.join(present()) or 'none'})")
    module = importlib.import_module(module_name(experiment))
    presets = getattr(module, "PRESETS", None)
    if not isinstance(presets, dict) or set(presets) != set(LEVELS):
        got = sorted(presets) if isinstance(presets, dict) else type(presets).__name__
        raise ValueError(f"{module.__name__}.PRESETS must be a dict with keys {list(LEVELS)}; got {got}")
    if not callable(getattr(module, "report_section", None)):
        raise ValueError(f"{module.__name__} has no report_section(runs, out_dir) function")
    return module


def present() -> list[str]:
    """The experiments whose module exists, in :data:`EXPERIMENTS` order."""
    return [e for e in EXPERIMENTS if importlib.util.find_spec(module_name(e)) is not None]


def check_specs(experiment: str, specs: list[RunSpec]) -> list[RunSpec]:
    """Refuse specs that break the contract (wrong study or experiment tag, duplicate runs)."""
    seen: set[str] = set()
    for spec in specs:
        if not isinstance(spec, RunSpec):
            raise ValueError(f"scaling/{experiment} preset returned {type(spec).__name__}, not a RunSpec")
        if spec.study != STUDY_NAME or spec.tags.get("experiment") != experiment:
            raise ValueError(f"scaling/{experiment} preset returned a run with study={spec.study!r}, "
                             f"tags.experiment={spec.tags.get('experiment')!r}; need {STUDY_NAME!r}, {experiment!r}")
        if spec.run_id in seen:
            raise ValueError(f"scaling/{experiment} preset returned run {spec.run_id} twice")
        seen.add(spec.run_id)
    return specs


class _OnePreset:
    """The preset ``<experiment>-<level>``: that module's function, imported only when used (so a broken or
    missing module never stops ``limitlab`` from starting); its signature is the module function's, so
    ``--set study.<arg>=...`` is validated against it."""

    def __init__(self, experiment: str, level: str) -> None:
        self.experiment, self.level = experiment, level
        self.__name__ = f"{experiment}-{level}"

    def _fn(self) -> Callable[..., list[RunSpec]]:
        return load(self.experiment).PRESETS[self.level]

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self._fn())

    @property
    def __wrapped__(self) -> Callable[..., list[RunSpec]]:  # inspect.unwrap: the annotations to validate against
        return self._fn()

    def __call__(self, **kwargs: Any) -> list[RunSpec]:
        return check_specs(self.experiment, self._fn()(**kwargs))


def _all(level: str) -> Callable[[], list[RunSpec]]:
    """The preset ``<level>``: that preset of every experiment present, concatenated."""
    def preset() -> list[RunSpec]:
        specs: list[RunSpec] = []
        for experiment in present():
            specs += check_specs(experiment, load(experiment).PRESETS[level]())
        return specs

    preset.__name__ = level
    return preset


def _presets() -> tuple[dict[str, Callable[..., list[RunSpec]]], dict[str, str]]:
    presets: dict[str, Callable[..., list[RunSpec]]] = {}
    have = present()
    missing = [e for e in EXPERIMENTS if e not in have]
    absent = f"; not implemented yet: {', '.join(missing)}" if missing else ""
    notes = {
        "smoke": f"smoke preset of every experiment present ({', '.join(have) or 'none'}){absent}",
        "quick": "quick preset of every experiment present (each under 10 min on 2 CPU cores)" + absent,
        "paper": "paper preset of every experiment present (for one GPU)" + absent,
    }
    for level in LEVELS:
        presets[level] = _all(level)
    for experiment in EXPERIMENTS:
        for level in LEVELS:
            key = f"{experiment}-{level}"
            presets[key] = _OnePreset(experiment, level)
            notes[key] = f"{TITLES[experiment]}: {level}" if experiment in have else "(module missing)"
    return presets, notes


def _report(store, out_dir):
    from limitlab.studies.scaling.report import write_report

    return write_report(store, out_dir)


_PRESETS, _NOTES = _presets()

STUDY = Study(
    name=STUDY_NAME,
    question="Wei's intuitions at small scale: power laws that predict, multitask loss, emergence vs metric, "
             "grokking, flipped-label ICL, time to think",
    reproduces="J. Wei 2023, 'Some intuitions about large language models' (with Hoffmann 2022, Michaud 2023, "
               "Schaeffer 2023, Power 2022, Wei 2023 ICL, Nye 2021)",
    presets=_PRESETS,
    report=_report,
    preset_notes=_NOTES,
    labels=LABELS,
    design=DESIGN,
)
