"""What a training stack reports, as a stream of events, and the sinks that record them.

The trainer never writes anywhere itself: :meth:`StackTrainer.events` yields :class:`Event` s and a sink
decides what to do with them. :class:`StoreSink` writes them to a :class:`~limitlab.store.RunStore` (the local
executor); the Ray executor streams the same events from a worker back to the driver, which alone writes the
store. Tests collect them in a list.

===========  =========  ===================================================================
kind         run_id     data
===========  =========  ===================================================================
start        None       {"chunk": models per forward/backward chunk}, before the first step
progress     None       {"model_steps": models that took a step}
log          run id     {"step", "train_loss"}
eval         run id     {"step", "<split>/<metric>": value or list, ..., "weight_norm": L2 norm of its weights}
checkpoint   run id     {"state": {"step", "alive", "params", "optim"}}
finish       run id     {"result": {...}, "weights": state dict or None, "provenance": {code, machine, finished}}
fail         run id     {"reason": str}
heartbeat    None       {"run_ids": [...]}
===========  =========  ===================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from limitlab.provenance import write_provenance
from limitlab.store import RunStore


@dataclass(frozen=True)
class Event:
    kind: str
    run_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class StoreSink:
    """Writes a stack's events to a RunStore; also the source of the checkpoints a stack resumes from."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def load_checkpoint(self, run_id: str) -> dict | None:
        """The run's checkpoint (None: start at step 0); metric records past it, from a cut-off attempt, are dropped
        so that resuming never duplicates them."""
        state = self.store.load_checkpoint(run_id)
        self.store.truncate_metrics(run_id, state["step"] if state is not None else 0)
        return state

    def reject_checkpoint(self, run_id: str, reason: str) -> None:
        """A checkpoint that loaded but cannot resume the run: set it aside (one warning) and drop the run's metric
        records, which it restarts from step 0."""
        self.store.discard_checkpoint(run_id, reason)
        self.store.truncate_metrics(run_id, 0)

    def __call__(self, event: Event) -> None:
        kind, run_id, data = event.kind, event.run_id, event.data
        if kind in ("log", "eval"):
            self.store.append_metrics(run_id, [data])
        elif kind == "checkpoint":
            self.store.save_checkpoint(run_id, data["state"])
        elif kind == "finish":
            if data.get("weights") is not None:
                self.store.save_weights(run_id, data["weights"])
            if data.get("provenance") is not None:
                write_provenance(self.store, run_id, data["provenance"])
            self.store.finish(run_id, data["result"])
        elif kind == "fail":
            self.store.fail(run_id, data["reason"])
        elif kind == "heartbeat":
            self.store.heartbeat(data["run_ids"])
