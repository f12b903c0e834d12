"""The ``tasks`` study: train any registered task with any model from the command line, and report it generically.

Its presets are the task registry (:data:`limitlab.tasks.TASKS`), read when asked, so a new task file plus its
registry line is a preset with no other change::

    limitlab run tasks --preset counting --set task.m=5 --set model.d_model=16 --set study.seeds=3
    limitlab report tasks                     # reports/tasks/{index.html, results.json, loss_<task>.png}

A preset trains ``study.seeds`` seeds (default 3) of the task with its own config defaults, the default model
(:class:`~limitlab.nn.model.ModelConfig`, ``max_len`` raised to the task's longest split where needed), optimizer
(:class:`~limitlab.spec.OptimConfig`) and training settings (:class:`~limitlab.spec.TrainConfig`), then the
``--set`` overrides. ``task.<field>`` overrides are applied *before* the task is validated, so a task with
required fields works (``limitlab run tasks --preset T`` names the missing ``--set task.<field>=...``), and a
field the task does not have is refused with the list of those it has. Each run is tagged ``task=<name>``.

The report (:mod:`.report`) has one row per distinct spec (seeds pooled): every split's final metrics as a mean
with a 95% interval over seeds, and the training-loss curve of each spec.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.spec import RunSpec, apply_overrides
from limitlab.studies.base import PresetFn, Study
from limitlab.tasks import TASKS, Task

NAME = "tasks"
DEFAULT_MAX_LEN = 512  # ModelConfig's default position table, raised for tasks with longer sequences


def build_task(name: str, sets: Mapping[str, Any] | None = None) -> Task:
    """Task ``name`` with its config defaults and the dotted ``task.<field>`` overrides ``sets``.

    >>> build_task("counting", {"task.m": 5}).m
    5
    >>> build_task("counting", {"task.size": 5})
    Traceback (most recent call last):
    ...
    ValueError: task 'counting' has no field 'size'; its fields: kind, m, n, bos, query, max_count, ood_factor
    """
    if name not in TASKS:
        raise ValueError(f"unknown preset {name!r} for study {NAME!r}; its presets are the registered tasks: "
                         f"{', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    sets = dict(sets or {})
    if "task.name" in sets:
        raise ValueError(f"task.name cannot be set in study {NAME!r}: choose the task with --preset (here {name!r})")
    fields = apply_overrides({"task": {}}, sets)["task"] if sets else {}
    unknown = sorted(set(fields) - set(cls.model_fields))
    if unknown:
        raise ValueError(f"task {name!r} has no field {unknown[0]!r}; its fields: {', '.join(cls.model_fields)}")
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        missing = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "missing"]
        if missing:
            raise ValueError(f"task {name!r} needs " + " ".join(f"--set task.{m}=..." for m in missing)
                             + f" (its fields: {', '.join(cls.model_fields)})") from None
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        got = f" (got {err['input']!r})" if where and not isinstance(err["input"], dict) else ""
        raise ValueError(f"invalid setting: {f'task.{where}' if where else f'task {name!r}'}: {err['msg']}{got}") \
            from None


def task_specs(task: Task, seeds: int | Sequence[int] = 3) -> list[RunSpec]:
    """``seeds`` runs (a count, or a list of seeds) of ``task`` with the default model, optimizer and training."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    longest = max(t.seq_len() for t in task.splits().values())
    model = {"max_len": max(DEFAULT_MAX_LEN, longest)}
    return [RunSpec(study=NAME, task=task, model=model, seed=seed, tags={"task": task.name}) for seed in seed_list]


def _preset(name: str) -> PresetFn:
    """The preset of one task (its defaults; ``study.seeds`` only). :meth:`TaskStudy.specs` adds task overrides."""
    def preset(seeds: int | Sequence[int] = 3) -> list[RunSpec]:
        return task_specs(build_task(name), seeds)

    preset.__doc__ = _first_line(TASKS[name])
    return preset


def _first_line(cls: type[Task]) -> str:
    """The first line of a task's docstring, without reST's double backticks (for ``limitlab studies``)."""
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0].replace("``", "") if doc else cls.__name__


class _Registry(Mapping):
    """A live view of the task registry: name -> ``fn(name)``, so a task registered later is listed too."""

    def __init__(self, fn) -> None:
        self._fn = fn

    def __getitem__(self, name: str) -> Any:
        if name not in TASKS:
            raise KeyError(name)
        return self._fn(name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(TASKS))

    def __len__(self) -> int:
        return len(TASKS)


class TaskStudy(Study):
    """A :class:`Study` whose presets are the registered tasks and whose ``task.*`` overrides build the task."""

    def specs(self, preset: str, overrides: dict[str, Any] | None = None) -> list[RunSpec]:
        overrides = dict(overrides or {})
        task = build_task(preset, {k: v for k, v in overrides.items() if k.startswith("task.")})
        fn = functools.partial(task_specs, task)  # its signature keeps `seeds`: the one study option
        one = Study(self.name, self.question, self.reproduces, {preset: fn}, labels=self.labels, design=self.design)
        return one.specs(preset, overrides)


def _analyze(ctx: ReportContext) -> Section:
    from limitlab.studies.tasks.report import analyze  # pandas and matplotlib: imported when a report is written

    return analyze(ctx)


STUDY = TaskStudy(
    name=NAME,
    question="Train any registered task with the default model (plus --set overrides); a generic metrics report",
    reproduces="nothing in particular: a workbench for new tasks (presets are the task names)",
    presets=_Registry(_preset),  # type: ignore[arg-type]
    experiments=(Experiment("metrics", "Final metrics per spec", (), _analyze),),
    preset_notes=_Registry(lambda name: _first_line(TASKS[name])),  # type: ignore[arg-type]
    labels={"seed": "seed", "task": "task.name"},
)
