"""RunSpec: everything that determines a run, validated on construction and hashed to a stable id.

>>> spec = RunSpec(study="counting", task={"name": "counting", "m": 5}, model={"d_model": 16}, seed=0)
>>> spec.run_id == RunSpec.model_validate_json(spec.model_dump_json()).run_id
True
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from limitlab.nn.model import ModelConfig
from limitlab.nn.positions import declaration
from limitlab.tasks import TASKS, Task


class OptimConfig(BaseModel):
    """Adam / AdamW with an optional warmup + cosine schedule and per-model gradient clipping."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0, description="decoupled for adamw, L2 for adam")
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    grad_clip: float | None = Field(None, gt=0, description="per-model global-norm clip; None = off")


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    steps: int = Field(1000, ge=1, le=10**9, description="optimizer steps")
    batch_size: int = Field(32, ge=1)
    eval_every: int = Field(0, ge=0, description="evaluate every N steps (0: only at the end)")
    eval_size: int = Field(1600, ge=1, description="test sequences per split")
    checkpoint_every: int = Field(0, ge=0, description="checkpoint every N steps (0: never mid-run)")


BOOKKEEPING = ("checkpoint_every", "eval_every")  # train fields outside the run id (see RunSpec.run_id)


class RunSpec(BaseModel):
    """One training run. ``tags`` label the run for analysis and are not part of its id."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    study: str = "adhoc"
    task: Task
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = Field(0, ge=0, lt=2**62)
    tags: dict[str, Any] = Field(default_factory=dict)

    @field_validator("task", mode="before")
    @classmethod
    def _parse_task(cls, value: Any) -> Task:
        if isinstance(value, Task):
            return value
        if not isinstance(value, dict) or "name" not in value:
            raise ValueError(f"task must be a Task or a dict with a 'name'; got {value!r}")
        fields = dict(value)
        name = fields.pop("name")
        if not isinstance(name, str) or name not in TASKS:
            raise ValueError(f"unknown task {name!r}; allowed: {', '.join(sorted(TASKS))}")
        return TASKS[name].model_validate(fields)

    @field_serializer("task")
    def _dump_task(self, task: Task) -> dict[str, Any]:
        return {"name": task.name, **task.model_dump()}

    @model_validator(mode="after")
    def _check_lengths(self) -> RunSpec:
        limited = declaration(self.model.position).length_limited  # a table sized by model.max_len
        longest = max(t.seq_len() for t in self.task.splits().values())
        if limited and longest > self.model.max_len:
            raise ValueError(f"model.max_len={self.model.max_len} is shorter than the longest sequence "
                             f"({longest}) of task {self.task.describe()}; raise model.max_len")
        return self

    @property
    def run_id(self) -> str:
        """Stable content hash of everything that determines the result. Left out: the tags, and the bookkeeping
        that changes no number of the run (``train.checkpoint_every``, ``train.eval_every``: when to save and how
        often to add a point to the curves), so adding checkpoints or curves to a sweep does not retrain it."""
        content = self.model_dump(mode="json", exclude={"tags": True, "train": set(BOOKKEEPING)})
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """Flattened dict for a DataFrame row: {'task.m': 5, 'model.d_model': 16, ...}."""
        return _flatten(self.model_dump(mode="json"))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def apply_overrides(spec_dict: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``model.d_model=32``) in a nested spec dict; unknown top-level keys are refused."""
    out = json.loads(json.dumps(spec_dict))
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        node = out
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[keys[-1]] = value
    return out
