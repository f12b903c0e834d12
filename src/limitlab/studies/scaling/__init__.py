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
    ≥ 3 seeds, shows the effect in under 10 minutes on 2 CPU cores, train and report; ``paper``: sized for one GPU.

``EXPERIMENT: limitlab.report.sections.Experiment``
    ``Experiment(key=<name>, title, claims=(...), analyze)``: the claims it tests (:class:`limitlab.claims.Claim`
    rows declared at module level, ids ``scaling.<name>.<what>``) and ``analyze(ctx) -> Section``. ``analyze``
    selects its runs with ``ctx.tagged(experiment=<name>)`` (finished runs: flattened spec, ``tags.<key>`` and
    ``result.<split>/<metric>`` columns), reads a run's evaluation curve with ``ctx.store.metrics(run_id)``, and
    must work on any subset (a smoke store, a half-finished sweep: say "too few runs" rather than raise). Figure
    file names start with ``<name>_`` so experiments never collide. The one generic writer
    (:mod:`limitlab.report.study_report`) renders every section and the claims table.

``protocol(ctx) -> list[dict]`` (optional)
    Paper-vs-ours rows ``{item, paper, ours, status, note}`` of this experiment; the study's protocol table lists
    every module's rows, each item prefixed with the experiment's name.

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
from typing import Any

from limitlab.report.sections import Experiment, ReportContext
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
    if experiment_of(module).key != experiment:
        raise ValueError(f"{module.__name__}.EXPERIMENT must be an Experiment with key {experiment!r}; got "
                         f"{experiment_of(module).key!r}")
    return module


def experiment_of(module: ModuleType) -> Experiment:
    """A module's ``EXPERIMENT``."""
    found = getattr(module, "EXPERIMENT", None)
    if isinstance(found, Experiment):
        return found
    raise ValueError(f"{module.__name__} defines no EXPERIMENT (a limitlab.report.sections.Experiment)")


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


def protocol(ctx: ReportContext) -> list[dict[str, Any]]:
    """Every experiment's paper-vs-ours rows (a module's optional ``protocol(ctx)``), items prefixed by its name."""
    rows = []
    for experiment in present():
        fn = getattr(load(experiment), "protocol", None)
        if fn is not None:
            rows += [{**row, "item": f"{experiment}: {row['item']}"} for row in fn(ctx)]
    return rows


_PRESETS, _NOTES = _presets()

STUDY = Study(
    name=STUDY_NAME,
    question="Wei's intuitions at small scale: power laws that predict, multitask loss, emergence vs metric, "
             "grokking, flipped-label ICL, time to think",
    reproduces="J. Wei 2023, 'Some intuitions about large language models' (with Hoffmann 2022, Michaud 2023, "
               "Schaeffer 2023, Power 2022, Wei 2023 ICL, Nye 2021)",
    presets=_PRESETS,
    experiments=tuple(experiment_of(load(e)) for e in present()),
    protocol=protocol,
    preset_notes=_NOTES,
    labels=LABELS,
    design=DESIGN,
)
