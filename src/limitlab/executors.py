"""Executors decide where a stack trains, never what it computes.

Executors take a :class:`~limitlab.sweep.SweepPlan` (:func:`limitlab.sweep.prepare`: the one place that
registers, plans and keeps a sweep's stacks) and go through :func:`train_claimed` for each stack: claim the
stack's runs in the store (runs another process took meanwhile ride along untrained), consume the events of
their training, record them in the store, and hand the runs back if anything goes wrong. ``local`` produces
the events in this process; ``ray`` (:mod:`limitlab.ray_executor`) streams them from a worker, so only this
process ever writes the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.sweep import PlannedStack, SweepPlan, prepare, record_stack
from limitlab.train.events import Event, StoreSink
from limitlab.train.trainer import StackTrainer, TrainOptions

Progress = Callable[..., None]  # (model steps taken, runs finished, work=their planned seconds)


def weighed(progress: Progress | None, stack: PlannedStack) -> Progress | None:
    """``progress`` told the planned cost of each of ``stack``'s model-steps (see :mod:`limitlab.progress`)."""
    if progress is None:
        return None
    per_step = stack.estimate.cost_s / max(1, stack.estimate.steps * len(stack.train))
    return lambda steps, runs: progress(steps, runs, work=steps * per_step)


Watcher = Callable[[Event], None]  # sees every log, eval, finish and fail event too (live curves: train/curves.py)


def train_claimed(store: RunStore, stack: PlannedStack,
                  train: Callable[[list[str], StoreSink], Iterable[Event]],
                  progress: Progress | None = None, retry_failed: bool = False,
                  watchers: Sequence[Watcher] = ()) -> dict[str, int]:
    """Claim ``stack``'s runs to train, record the events ``train(claimed ids, sink)`` yields, release on error.

    The trainer trains the claimed runs in the stack's full composition (the others ride along, see
    :mod:`limitlab.sweep`); its ``start`` event, before the first step, records the stack and its chunking in the
    claimed runs' folders. Returns {"trained", "skipped", "failed"} for this stack.
    """
    claimed = set(store.claim([i for i in stack.ids if i in stack.train], retry_failed=retry_failed))
    todo = [i for i in stack.ids if i in claimed]
    summary = {"trained": 0, "skipped": len(stack.train) - len(todo), "failed": 0}
    if not todo:
        return summary
    sink = StoreSink(store)
    try:
        for event in train(todo, sink):
            if event.kind == "progress":
                if progress is not None:
                    progress(event.data["model_steps"], 0)
                continue
            if event.kind == "start":
                record_stack(store, stack, event.data["chunk"], todo)
                continue
            sink(event)
            for watch in watchers:
                watch(event)
            if event.kind in ("finish", "fail"):
                summary["trained" if event.kind == "finish" else "failed"] += 1
                if progress is not None:
                    progress(0, 1)
    except BaseException:
        store.release(todo)
        raise
    return summary


def stack_options(options: TrainOptions, stack: PlannedStack) -> TrainOptions:
    """``options`` with the chunking the stack recorded at its first start (a resumed stack runs as it ran)."""
    return replace(options, chunk_models=stack.chunk) if stack.chunk else options


def run_local(plan: SweepPlan, store: RunStore, options: TrainOptions, progress: Progress | None = None,
              retry_failed: bool = False, watchers: Sequence[Watcher] = ()) -> dict[str, int]:
    """Train the stacks of ``plan`` (from :func:`limitlab.sweep.prepare`) in this process, one after another."""
    summary = {"trained": 0, "skipped": 0, "failed": 0}
    for stack in plan.stacks:
        def train(todo: list[str], sink: StoreSink, stack: PlannedStack = stack) -> Iterable[Event]:
            return StackTrainer(stack.specs, sink, stack_options(options, stack), train=todo).events()

        part = train_claimed(store, stack, train, weighed(progress, stack), retry_failed, watchers)
        for key in summary:
            summary[key] += part[key]
    return summary


def train_sweep(specs: Sequence[RunSpec], store: RunStore, options: TrainOptions, max_models: int = 256,
                progress: Progress | None = None, retry_failed: bool = False) -> dict[str, int]:
    """Prepare and train a sweep in this process: :func:`limitlab.sweep.prepare` then :func:`run_local`."""
    plan = prepare(specs, store, max_models=max_models, device=options.device, retry_failed=retry_failed,
                   eval_batch_size=options.eval_batch_size)
    return run_local(plan, store, options, progress, retry_failed)
