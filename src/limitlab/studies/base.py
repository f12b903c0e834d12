"""A study: a named set of presets that each expand to a list of RunSpecs, plus a report over the results.

A preset is a plain function returning RunSpecs (zoology-style: a sweep is a Python list of validated
configs). ``limitlab run STUDY --set key=value`` applies dotted overrides to every spec (``train.steps=100``)
or, with the ``study.`` prefix, passes a keyword to the preset (``study.seeds=5``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from limitlab.spec import RunSpec, apply_overrides

PresetFn = Callable[..., list[RunSpec]]


@dataclass
class Study:
    name: str
    question: str
    reproduces: str
    presets: dict[str, PresetFn]
    report: Callable[..., Path] | None = None  # report(store, out_dir) -> index.html path
    preset_notes: dict[str, str] = field(default_factory=dict)
    save_weights: bool = False  # its runs always keep their weights (the report evaluates the trained models)

    def specs(self, preset: str, overrides: dict[str, Any] | None = None) -> list[RunSpec]:
        """Expand a preset into RunSpecs, with ``--set`` overrides applied and validated."""
        if preset not in self.presets:
            raise ValueError(f"unknown preset {preset!r} for study {self.name!r}; allowed: {', '.join(self.presets)}")
        overrides = dict(overrides or {})
        fn = self.presets[preset]
        kwargs = {k[len("study."):]: v for k, v in overrides.items() if k.startswith("study.")}
        accepted = set(inspect.signature(fn).parameters)
        unknown = set(kwargs) - accepted
        if unknown:
            raise ValueError(f"unknown study option(s) {sorted('study.' + k for k in unknown)} for preset {preset!r}; "
                             f"allowed: {', '.join('study.' + a for a in sorted(accepted)) or 'none'}")
        params = inspect.signature(fn).parameters
        for key, value in kwargs.items():
            if isinstance(value, str) and _wants_sequence(params[key].annotation):
                example = f"[{value}]" if value.lstrip("-").isdigit() else json.dumps([value])
                raise ValueError(f"study.{key}={value!r} is a string where preset {preset!r} wants a list; "
                                 f"give JSON, e.g. study.{key}={example}")
        spec_overrides = {k: v for k, v in overrides.items() if not k.startswith("study.")}
        for key in spec_overrides:
            top = key.split(".")[0]
            if top not in RunSpec.model_fields or top in ("study", "tags"):
                raise ValueError(f"cannot set {key!r}: allowed prefixes are task., model., optim., train., seed "
                                 f"and study.<preset option>")
        shown = ", ".join(f"study.{k}={v!r}" for k, v in kwargs.items()) or "its defaults"
        try:
            specs = fn(**kwargs)
        except ValidationError:
            raise
        except (TypeError, ValueError, KeyError) as exc:  # a bad preset option, e.g. study.ds=8 or study.ms=[]
            raise ValueError(f"preset {preset!r} cannot use {shown}: {exc}") from None
        if not specs:
            raise ValueError(f"preset {preset!r} with {shown} gives no runs; check the lists and counts you set")
        ids = [s.run_id for s in specs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"preset {preset!r} with {shown} lists {len(ids) - len(set(ids))} run(s) twice "
                             "(repeated seeds or values?)")
        if not spec_overrides:
            return specs
        out = []
        for spec in specs:
            data = apply_overrides(spec.model_dump(mode="json"), spec_overrides)
            out.append(RunSpec.model_validate(data))
        return out


def _wants_sequence(annotation: Any) -> bool:
    """Does a preset parameter's annotation ask for a list (so a string, a sequence of characters, is a mistake)?"""
    parts = [part.strip() for part in str(annotation).split("|")]
    return "str" not in parts and any(part.startswith(("Sequence[", "list[", "tuple[", "typing.Sequence["))
                                      for part in parts)
