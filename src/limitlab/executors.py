"""Executors decide where a stack trains, never what it computes.

``local`` trains stacks one after another in this process. Each stack first claims its runs in the store,
so finished runs are skipped and two processes on one store share the work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from limitlab.planner import plan
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.train.trainer import StackTrainer, TrainOptions


def run_local(specs: Sequence[RunSpec], store: RunStore, options: TrainOptions, max_models: int = 256,
              progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Train every not-yet-done run of ``specs``; ``progress(model_steps, runs_done)`` after each step."""
    store.add(specs)
    summary = {"trained": 0, "skipped": 0, "failed": 0}
    for stack in plan(specs, max_models=max_models, device=options.device, eval_batch_size=options.eval_batch_size):
        claimed = set(store.claim([s.run_id for s in stack]))
        summary["skipped"] += len(stack) - len(claimed)
        todo = [s for s in stack if s.run_id in claimed]
        if not todo:
            continue
        try:
            trainer = StackTrainer(todo, store, options)
            results = trainer.run(None if progress is None else (lambda n: progress(n, 0)))
        except BaseException:
            store.release([s.run_id for s in todo])
            raise
        summary["trained"] += len(results)
        summary["failed"] += len(todo) - len(results)
        if progress is not None:
            progress(0, len(todo))
    return summary
