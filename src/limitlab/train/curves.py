"""Live training curves: optional sinks that copy a stack's log and eval events to TensorBoard or Weights & Biases.

The store remains the record; these sinks are views for watching a sweep while it trains. Each run is one
TensorBoard run (``DIR/<study>/<run id>``, so TensorBoard draws one line per run) or one W&B run (named by its run
id, its spec as the config, its tags as W&B tags). ``train/loss`` comes every ``log_every`` steps; the evaluation
metrics (``test/accuracy``, ``ood_long/loss``, …) every ``train.eval_every`` steps and at the end; vector metrics
(one value per position or per digit) are left to the store. Example::

    limitlab run counting --preset quick --set train.eval_every=250 --tensorboard runs/tb
    tensorboard --logdir runs/tb
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from limitlab.spec import RunSpec
from limitlab.train.events import Event


def _scalars(data: dict[str, Any]) -> dict[str, float]:
    """The finite scalar metrics of a log or eval event, named for a dashboard (train_loss -> train/loss)."""
    out = {}
    for key, value in data.items():
        if key == "step" or isinstance(value, (list, tuple, dict, bool)) or value is None:
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            out["train/loss" if key == "train_loss" else key] = float(value)
    return out


class TensorBoardSink:
    """Writes each run's curves as TensorBoard event files under ``root/<study>/<run id>``."""

    def __init__(self, root: str | Path, specs: dict[str, RunSpec]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ValueError(f"--tensorboard needs the tensorboard package (pip install 'limitlab[curves]'): "
                             f"{exc}") from None
        self._writer_class, self.root, self.specs, self.writers = SummaryWriter, Path(root), specs, {}

    def __call__(self, event: Event) -> None:
        if event.kind not in ("log", "eval", "finish", "fail"):
            return
        writer = self.writers.get(event.run_id)
        if writer is None and event.kind in ("log", "eval"):
            spec = self.specs[event.run_id]
            writer = self.writers[event.run_id] = self._writer_class(str(self.root / spec.study / event.run_id))
        if writer is None:
            return
        if event.kind in ("log", "eval"):
            for name, value in _scalars(event.data).items():
                writer.add_scalar(name, value, event.data["step"])
        else:
            writer.close()
            del self.writers[event.run_id]

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


class WandbSink:
    """Logs each run to Weights & Biases project ``project`` (its own run, spec as config); offline if W&B says so
    (``WANDB_MODE=offline``)."""

    def __init__(self, project: str, specs: dict[str, RunSpec]) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ValueError(f"--wandb needs the wandb package (pip install wandb): {exc}") from None
        self.wandb, self.project, self.specs, self.runs = wandb, project, specs, {}

    def __call__(self, event: Event) -> None:
        if event.kind not in ("log", "eval", "finish", "fail"):
            return
        run = self.runs.get(event.run_id)
        if run is None and event.kind in ("log", "eval"):
            spec = self.specs[event.run_id]
            run = self.runs[event.run_id] = self.wandb.init(
                project=self.project, name=event.run_id, group=spec.study, config=spec.model_dump(mode="json"),
                tags=[f"{k}={v}" for k, v in spec.tags.items()][:20], reinit="create_new")
        if run is None:
            return
        if event.kind in ("log", "eval"):
            run.log(_scalars(event.data), step=event.data["step"])
        else:
            run.finish(exit_code=0 if event.kind == "finish" else 1)
            del self.runs[event.run_id]

    def close(self) -> None:
        for run in self.runs.values():
            run.finish()
        self.runs.clear()
