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
from abc import ABC, abstractmethod
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


class _PerRunSink(ABC):
    """A sink that opens one dashboard run per limitlab run at its first record and closes it when it ends."""

    def __init__(self, specs: dict[str, RunSpec]) -> None:
        self.specs, self.open_runs = specs, {}

    def __call__(self, event: Event) -> None:
        handle = self.open_runs.get(event.run_id)
        if event.kind in ("log", "eval"):
            if handle is None:
                handle = self.open_runs[event.run_id] = self._open(event.run_id, self.specs[event.run_id])
            self._write(handle, _scalars(event.data), event.data["step"])
        elif event.kind in ("finish", "fail") and handle is not None:
            self._close(self.open_runs.pop(event.run_id), event.kind == "finish")

    def close(self) -> None:
        for handle in self.open_runs.values():
            self._close(handle, True)
        self.open_runs.clear()

    @abstractmethod
    def _open(self, run_id: str, spec: RunSpec) -> Any:
        """Open the dashboard run of ``run_id``; returns its handle."""

    @abstractmethod
    def _write(self, handle: Any, scalars: dict[str, float], step: int) -> None:
        """Add ``scalars`` at ``step``."""

    @abstractmethod
    def _close(self, handle: Any, ok: bool) -> None:
        """Close the run (``ok``: it finished; else it failed)."""


class TensorBoardSink(_PerRunSink):
    """Writes each run's curves as TensorBoard event files under ``root/<study>/<run id>``."""

    def __init__(self, root: str | Path, specs: dict[str, RunSpec]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ValueError(f"--tensorboard needs the tensorboard package (pip install 'limitlab[curves]'): "
                             f"{exc}") from None
        super().__init__(specs)
        self._writer_class, self.root = SummaryWriter, Path(root)

    def _open(self, run_id: str, spec: RunSpec) -> Any:
        return self._writer_class(str(self.root / spec.study / run_id))

    def _write(self, handle: Any, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            handle.add_scalar(name, value, step)

    def _close(self, handle: Any, ok: bool) -> None:
        handle.close()


class WandbSink(_PerRunSink):
    """Logs each run to Weights & Biases project ``project`` (its own run, spec as config); offline if W&B says so
    (``WANDB_MODE=offline``)."""

    def __init__(self, project: str, specs: dict[str, RunSpec]) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ValueError(f"--wandb needs the wandb package (pip install wandb): {exc}") from None
        super().__init__(specs)
        self.wandb, self.project = wandb, project

    def _open(self, run_id: str, spec: RunSpec) -> Any:
        return self.wandb.init(project=self.project, name=run_id, group=spec.study,
                               config=spec.model_dump(mode="json"),
                               tags=[f"{k}={v}" for k, v in spec.tags.items()][:20], reinit="create_new")

    def _write(self, handle: Any, scalars: dict[str, float], step: int) -> None:
        handle.log(scalars, step=step)

    def _close(self, handle: Any, ok: bool) -> None:
        handle.finish(exit_code=0 if ok else 1)
