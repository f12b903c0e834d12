"""Executors decide where a stack trains, never what it computes.

Every executor goes through :func:`train_claimed`: claim the stack's runs in the store (finished runs and runs
another process is training are skipped), consume the events of their training, record them in the store, and
hand the runs back if anything goes wrong. ``local`` produces the events in this process; ``ray``
(:mod:`limitlab.ray_executor`) streams them from a worker, so only this process ever writes the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from limitlab.planner import plan
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.train.events import Event, StoreSink
from limitlab.train.trainer import StackTrainer, TrainOptions

Progress = Callable[[int, int], None]  # (model steps taken, runs finished)


def train_claimed(store: RunStore, stack: Sequence[RunSpec],
                  train: Callable[[list[RunSpec], StoreSink], Iterable[Event]],
                  progress: Progress | None = None, retry_failed: bool = False) -> dict[str, int]:
    """Claim ``stack``'s runs, record the events ``train(claimed, sink)`` yields, release the runs on error.

    Returns {"trained", "skipped", "failed"} for this stack.
    """
    claimed = set(store.claim([s.run_id for s in stack], retry_failed=retry_failed))
    todo = [s for s in stack if s.run_id in claimed]
    summary = {"trained": 0, "skipped": len(stack) - len(todo), "failed": 0}
    if not todo:
        return summary
    sink = StoreSink(store)
    try:
        for event in train(todo, sink):
            if event.kind == "progress":
                if progress is not None:
                    progress(event.data["model_steps"], 0)
                continue
            sink(event)
            if event.kind in ("finish", "fail"):
                summary["trained" if event.kind == "finish" else "failed"] += 1
                if progress is not None:
                    progress(0, 1)
    except BaseException:
        store.release([s.run_id for s in todo])
        raise
    return summary


def run_local(specs: Sequence[RunSpec], store: RunStore, options: TrainOptions, max_models: int = 256,
              progress: Progress | None = None, retry_failed: bool = False) -> dict[str, int]:
    """Train every not-yet-done run of ``specs`` in this process, stack after stack."""
    store.add(specs)
    summary = {"trained": 0, "skipped": 0, "failed": 0}

    def train(todo: list[RunSpec], sink: StoreSink) -> Iterable[Event]:
        return StackTrainer(todo, sink, options).events()

    for stack in plan(specs, max_models=max_models, device=options.device, eval_batch_size=options.eval_batch_size):
        part = train_claimed(store, stack, train, progress, retry_failed)
        for key in summary:
            summary[key] += part[key]
    return summary
