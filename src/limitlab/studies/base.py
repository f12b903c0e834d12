"""A study: a named set of presets that each expand to a list of RunSpecs, plus a report over the results.

A preset is a plain function returning RunSpecs (zoology-style: a sweep is a Python list of validated
configs). ``limitlab run STUDY --set key=value`` applies dotted overrides to every spec (``train.steps=100``)
or, with the ``study.`` prefix, passes a keyword to the preset (``study.seeds=5``).

Tags label runs for the reports, and a tag must never contradict its spec. So a study declares its tags:

* ``labels`` — a tag that names a spec field (``{"d": "model.d_model"}``) or a function of the spec (a parameter
  count) is *derived*: set from the spec after the overrides (a preset that wrote a different value is a bug,
  refused);
* ``design`` — a name the preset gives a grid point (``variant``, ``experiment``): kept; when ``--set`` changed
  the spec, the tag ``set`` records what was changed (``"model.d_model=32"``), so the run is not mistaken
  for the preset's own point;
* any other tag is something the study cannot recompute: it would go stale, so ``--set`` of spec fields is refused
  for such a preset (its ``study.`` options recompute it).

Run ids are checked after the overrides: two runs that an override makes identical are refused, named.

>>> from limitlab.studies import STUDIES
>>> [s.tags["d"] for s in STUDIES["counting"].specs("smoke", {"model.d_model": 32, "study.ds": [8]})][:1]
[32]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from limitlab.claims import Claim
from limitlab.report.sections import Experiment, ReportContext
from limitlab.spec import RunSpec, apply_overrides
from limitlab.studies.options import check_read_as_given, options_model, shown, validate_options

PresetFn = Callable[..., list[RunSpec]]
MAX_RUNS = 100_000  # runs one preset may expand to


@dataclass
class Study:
    name: str
    question: str
    reproduces: str
    presets: dict[str, PresetFn]
    report: Callable[..., Path] | None = None  # report(store, out_dir) -> index.html path
    preset_notes: dict[str, str] = field(default_factory=dict)
    save_weights: bool = False  # its runs always keep their weights (the report evaluates the trained models)
    labels: dict[str, str | Callable[[RunSpec], Any]] = field(default_factory=lambda: {"seed": "seed"})  # tag ->
    # the spec field it names, or a function of the spec
    design: frozenset[str] = frozenset()  # tags that name a grid point of a preset (see the module docstring)
    report_options: type[BaseModel] | None = None  # `limitlab report STUDY --set k=v`: report(store, out, options)
    experiments: tuple[Experiment, ...] = ()  # the report: one section per experiment (limitlab.report.sections)
    protocol: Callable[[ReportContext], list[dict[str, Any]]] | None = None  # paper vs ours rows

    def __post_init__(self) -> None:
        if self.experiments and self.report is not None:
            raise ValueError(f"study {self.name!r} has both experiments and its own report; the generic report "
                             "renders the experiments")
        keys = [e.key for e in self.experiments]
        claims = [c.id for e in self.experiments for c in e.claims]
        for what, names in (("experiment", keys), ("claim", claims)):
            if len(set(names)) != len(names):
                raise ValueError(f"study {self.name!r} declares a {what} twice: {names}")
        if self.experiments:
            self.report = self._generic_report

    def _generic_report(self, store: Any, out: Path, options: Any = None) -> Path:
        from limitlab.report.study_report import write_study_report

        return write_study_report(self, store, out, options)

    @property
    def claims(self) -> list[Claim]:
        """Every claim the study's experiments test, in page order."""
        return [c for e in self.experiments for c in e.claims]

    def specs(self, preset: str, overrides: dict[str, Any] | None = None) -> list[RunSpec]:
        """Expand a preset into RunSpecs, with ``--set`` overrides applied and validated."""
        if preset not in self.presets:
            raise ValueError(f"unknown preset {preset!r} for study {self.name!r}; allowed: {', '.join(self.presets)}")
        overrides = dict(overrides or {})
        fn = self.presets[preset]
        kwargs = validate_options(fn, preset, {k[len("study."):]: v for k, v in overrides.items()
                                               if k.startswith("study.")})
        spec_overrides = {k: v for k, v in overrides.items() if not k.startswith("study.")}
        for key in spec_overrides:
            top = key.split(".")[0]
            if top not in RunSpec.model_fields or top in ("study", "tags"):
                raise ValueError(f"cannot set {key!r}: allowed prefixes are task., model., optim., train., seed "
                                 f"and study.<preset option>")
        shown_options = ", ".join(f"study.{k}={shown(v)}" for k, v in kwargs.items()) or "its defaults"
        try:
            specs = fn(**kwargs)
        except ValidationError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, OSError, RuntimeError) as exc:  # a value the preset
            # refuses (study.ms=[]), a path it cannot use (study.corpus="~nobody/x": RuntimeError from expanduser)
            raise ValueError(f"preset {preset!r} cannot use {shown_options}: {exc}") from None
        if not specs:
            raise ValueError(f"preset {preset!r} with {shown_options} gives no runs; check the lists and counts "
                             "you set")
        if len(specs) > MAX_RUNS:
            raise ValueError(f"preset {preset!r} with {shown_options} gives {len(specs):,} runs, more than "
                             f"{MAX_RUNS:,}; split the sweep")
        points = [self._derive_tags(spec, preset, check=True) for spec in specs]  # the preset's grid points
        allowed = ", ".join(f"study.{name}" for name in options_model(fn).model_fields) or "none"
        specs = [self._override(spec, spec_overrides, preset, allowed) for spec in points] if spec_overrides \
            else points
        _refuse_duplicates(specs, points, f"preset {preset!r} with {shown_options}"
                           + "".join(f", {k}={shown(v)}" for k, v in spec_overrides.items()))
        return specs

    def _derive_tags(self, spec: RunSpec, preset: str, check: bool) -> RunSpec:
        """``spec`` with every declared label set from the field it names (``check``: the preset's own value must
        agree)."""
        flat = spec.flat()
        tags = dict(spec.tags)
        for tag, path in self.labels.items():
            if tag not in tags or not (callable(path) or path in flat):
                continue
            value = path(spec) if callable(path) else flat[path]
            if check and tags[tag] != value:
                where = "spec gives" if callable(path) else f"{path} is"
                raise ValueError(f"preset {preset!r} of study {self.name!r} tags run {spec.run_id} with "
                                 f"{tag}={tags[tag]!r} but its {where} {value!r}")
            tags[tag] = value
        return spec if tags == spec.tags else spec.model_copy(update={"tags": tags})

    def _override(self, spec: RunSpec, overrides: dict[str, Any], preset: str, allowed: str) -> RunSpec:
        """Apply ``--set`` overrides to one spec; re-derive its labels; record the change (see the module doc)."""
        computed = sorted(set(spec.tags) - set(self.labels) - set(self.design) - {"set"})
        if computed:
            raise ValueError(f"cannot --set {', '.join(overrides)} for study {self.name!r}: its preset {preset!r} "
                             f"computes the tags {', '.join(computed)} from the spec, and they would go stale; "
                             f"use the preset's options instead: {allowed}")
        data = apply_overrides(spec.model_dump(mode="json"), overrides)
        new = RunSpec.model_validate(data)
        check_read_as_given(overrides, new.model_dump(mode="json"))
        changed = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(overrides.items()))
        tags = {**new.tags, "set": changed} if new.run_id != spec.run_id else new.tags
        return self._derive_tags(new.model_copy(update={"tags": tags}), preset, check=False)


def _refuse_duplicates(specs: list[RunSpec], points: list[RunSpec], what: str) -> None:
    """Refuse a list in which two specs are the same run (one id), naming the first clash by the grid points
    (``points``: the preset's specs before overrides) that became one run."""
    first: dict[str, RunSpec] = {}
    clashes = 0
    example = ""
    for spec, point in zip(specs, points):
        if spec.run_id in first:
            clashes += 1
            if not example:
                example = (f": run {spec.run_id} is both {_short(first[spec.run_id].tags)} and {_short(point.tags)}")
        else:
            first[spec.run_id] = point
    if clashes:
        raise ValueError(f"{what} lists {clashes} run(s) twice{example} (repeated seeds or values, or an override "
                         "that makes grid points equal)")


def _short(tags: dict[str, Any]) -> str:
    text = json.dumps({k: v for k, v in tags.items() if k != "set"}, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."
