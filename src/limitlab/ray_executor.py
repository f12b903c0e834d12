"""The ``ray`` executor: stacks train on Ray workers anywhere in a cluster; only the driver touches the store.

The RunStore is SQLite plus files on a local disk, so workers never open it. The driver (the process that
called :func:`run_ray`) does what the local executor does, through the same routine
(:func:`limitlab.executors.train_claimed`): it claims a stack's runs, loads their last checkpoints, and records
every event of their training. Only the middle step moves: the driver sends the specs and checkpoints to a
Ray *streaming generator* task (:func:`stream_stack`), which builds the same
:class:`~limitlab.train.trainer.StackTrainer` and yields its events back in small batches::

    driver                                              worker (any node)
    claim runs, load checkpoints ── specs + checkpoints ─► StackTrainer(specs, checkpoints).events()
    write log/eval/checkpoint/finish ◄── [events] ───────  batched: progress summed, flushed every second
    heartbeat the runs it owns                              and right after each round of checkpoints

A worker that dies mid-stack (killed, out of memory, its node lost) costs at most one checkpoint interval:
the driver notices the broken stream, reloads the checkpoints it has written, and starts the stack's
unfinished runs again on another worker, up to ``retries`` times per stack. When those are used up, the runs
are released (back to 'pending', checkpoints kept) and :func:`run_ray` raises after the other stacks finish,
so the next launch resumes them. An error raised by the training code itself (a bad spec, a CUDA error) is not
retried: it would fail again.

Resources: on CUDA a stack asks for a GPU, or a fraction of one when its estimated memory leaves room for
others (``planner.model_bytes``; fractions of 1/2, 1/4 or 1/8, so small launch-bound stacks share a GPU); on a
CPU one core per stack. Longest stacks are submitted first. Every node needs limitlab installed (the same
version as the driver); no shared filesystem is needed.

>>> run_ray(specs, "runs/", TrainOptions(device="cuda"), address="auto")    # doctest: +SKIP
{'trained': 720, 'skipped': 0, 'failed': 0, 'nodes': 4, 'workers_lost': 0}
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any

from limitlab.executors import Progress, Watcher, stack_options, train_claimed, weighed
from limitlab.planner import Stack
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.sweep import PlannedStack, SweepPlan
from limitlab.train.events import Event, StoreSink
from limitlab.train.trainer import TrainOptions

Checkpoints = dict[str, "dict | None"]  # run_id -> last checkpoint state (None: start from step 0)
log = logging.getLogger(__name__)
Start = Callable[[list[str], Checkpoints], Iterable[list[Event]]]  # one attempt (run ids to train): event batches


class WorkerLost(Exception):
    """The process training a stack went away (killed, out of memory, node lost) before the stack finished."""


def _locked(watch: Watcher, lock: threading.Lock) -> Watcher:
    """``watch`` called under ``lock`` (the driver's stack threads share one TensorBoard or W&B sink)."""
    def locked(event: Event) -> None:
        with lock:
            watch(event)
    return locked


def gpu_fraction(stack: Stack, gpu_bytes: float) -> float:
    """The share of one GPU a stack asks Ray for: 1, 1/2, 1/4 or 1/8 — at least its memory estimate."""
    need = stack.memory / gpu_bytes if gpu_bytes > 0 else 1.0
    for share in (0.125, 0.25, 0.5):
        if need <= share:
            return share
    return 1.0


# ---- the worker side ---------------------------------------------------------------------------------------------

def stream_stack(spec_json: list[str], train: list[str], checkpoints: Checkpoints, options: dict,
                 flush_seconds: float = 1.0) -> Iterator[list[Event]]:
    """Body of one Ray task (a plain generator, testable without Ray): train a stack, yield its events in batches.

    ``spec_json``: the whole stack; ``train``: the run ids to train (the rest ride along, see
    :mod:`limitlab.sweep`). ``checkpoints`` come from the driver; nothing here reads or writes a store.
    """
    from limitlab.train.trainer import StackTrainer

    specs = [RunSpec.model_validate_json(s) for s in spec_json]
    opts = TrainOptions(**options)
    if opts.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():  # a task placed on a machine without a GPU: say so, don't hang
            raise RuntimeError("stack was scheduled with a GPU share but CUDA is not available in the worker")
    trainer = StackTrainer(specs, checkpoints.get, opts, train=train)
    yield [Event("worker", data={"node": _node_id(), "pid": os.getpid()})]  # where the stack runs (driver only)
    yield from batch_events(trainer.events(), flush_seconds)


def _node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    try:
        import ray
    except ImportError:
        return None
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def batch_events(events: Iterable[Event], flush_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> Iterator[list[Event]]:
    """Group a trainer's events into batches for the wire.

    Progress events are summed into one per batch (first in the batch). A batch is sent once ``flush_seconds``
    passed since the last one, as soon as a round of checkpoints is complete (the next event is not a
    checkpoint), and at the end. Heartbeats are dropped: the driver, which owns the runs, heartbeats them.
    """
    buffer: list[Event] = []
    steps, last, checkpoint_pending = 0, clock(), False

    def flush() -> list[Event]:
        nonlocal buffer, steps, last, checkpoint_pending
        batch = ([Event("progress", data={"model_steps": steps})] if steps else []) + buffer
        buffer, steps, last, checkpoint_pending = [], 0, clock(), False
        return batch

    for event in events:
        if checkpoint_pending and event.kind != "checkpoint":
            yield flush()
        if event.kind == "progress":
            steps += event.data["model_steps"]
        elif event.kind != "heartbeat":
            buffer.append(event)
            checkpoint_pending = checkpoint_pending or event.kind == "checkpoint"
        if not checkpoint_pending and (buffer or steps) and clock() - last >= flush_seconds:
            yield flush()
    if buffer or steps:
        yield flush()


# ---- the driver side ---------------------------------------------------------------------------------------------

def remote_events(todo: Sequence[str], sink: StoreSink, start: Start, retries: int = 2,
                  heartbeat_seconds: float = 30.0, on_lost: Callable[[WorkerLost], None] | None = None,
                  clock: Callable[[], float] = time.monotonic) -> Iterator[Event]:
    """The events of training ``todo`` elsewhere, as :func:`train_claimed` consumes them; retries lost workers.

    ``start(run_ids, checkpoints)`` launches one attempt of the stack training ``run_ids`` and iterates its event
    batches (an empty batch means "nothing yet"); it raises :class:`WorkerLost` when the worker goes away. Each
    retry trains only the runs that have not finished (the others ride along), from the checkpoints ``sink``
    holds by then. A heartbeat for the runs is yielded
    every ``heartbeat_seconds`` while the stack is queued or training. ``on_lost`` hears of every lost worker.
    """
    remaining = dict.fromkeys(todo)
    ids = list(remaining)
    last_beat = clock()
    for attempt in range(retries + 1):
        train = list(remaining)
        try:
            for batch in start(train, {run_id: sink.load_checkpoint(run_id) for run_id in train}):
                for event in batch:
                    if event.kind in ("finish", "fail"):
                        remaining.pop(event.run_id, None)
                    yield event
                if clock() - last_beat >= heartbeat_seconds:
                    yield Event("heartbeat", data={"run_ids": ids})
                    last_beat = clock()
        except WorkerLost as exc:
            if on_lost is not None:
                on_lost(exc)
            if attempt == retries:
                raise WorkerLost(f"{exc} ({retries + 1} attempt(s); the runs are released, resume on relaunch)") \
                    from exc
            continue
        if remaining:
            raise RuntimeError(f"the worker stopped without finishing runs {sorted(remaining)}")
        return


def _ray_start(ray: Any, remote: Any, specs: list[RunSpec], options: dict, resources: dict, flush_seconds: float,
               stop: threading.Event, nodes: set) -> Start:
    """``start`` for :func:`remote_events`: submit :func:`stream_stack` to Ray and iterate its stream.

    The worker's first batch says where it runs; its node goes into ``nodes`` and the batch goes no further.
    """

    def start(train: list[str], checkpoints: Checkpoints) -> Iterator[list[Event]]:
        from ray.exceptions import RayError, RayTaskError, TaskCancelledError

        # max_retries=0: Ray would re-run the task with the old checkpoints; remote_events retries with newer ones
        stream = remote.options(**resources, num_returns="streaming", max_retries=0).remote(
            [s.model_dump_json() for s in specs], train, checkpoints, options, flush_seconds)
        finished = False
        try:
            while True:
                if stop.is_set():
                    raise KeyboardInterrupt("the driver was interrupted")
                ready, _ = ray.wait([stream], timeout=1.0)
                if not ready:
                    yield []  # still queued or between batches: lets the caller heartbeat
                    continue
                try:
                    batch = ray.get(next(stream))
                except StopIteration:
                    finished = True
                    return
                except RayError as exc:
                    if isinstance(exc, (RayTaskError, TaskCancelledError)):
                        raise  # the training code failed, or we cancelled: retrying would not help
                    raise WorkerLost(f"worker lost mid-stack: {type(exc).__name__}: {str(exc).splitlines()[0]}") \
                        from None
                if batch and batch[0].kind == "worker":
                    nodes.add(batch[0].data["node"])
                    batch = batch[1:]
                yield batch
        finally:
            if not finished:  # interrupted or failed: do not leave the task running
                try:
                    ray.cancel(stream, force=True)
                except Exception:  # noqa: BLE001 - best effort: the task may be gone already
                    pass

    return start


def connect(ray: Any, address: str | None = None, timeout: float = 120.0) -> str:
    """Join the Ray cluster at ``address`` (else ``RAY_ADDRESS``; else an already initialised Ray; else a private
    local Ray started for this process) and return one line saying which, with its nodes, CPUs and GPUs.

    Bounded: a ``host:port`` where nothing listens is refused at once (Ray itself retries for minutes), a Ray that
    does not come up within ``timeout`` seconds (e.g. under a ``ulimit -v`` memory limit) is reported, and Ray's
    own connection errors become one line. Each is a ValueError naming the address.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        _check_listening(address)
        outcome: dict[str, BaseException | None] = {}

        def start() -> None:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
                outcome["error"] = None
            except BaseException as exc:  # noqa: BLE001 - reported by the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=start, name="limitlab-ray-init", daemon=True)
        thread.start()
        thread.join(timeout)
        where = f"at {address!r}" if address else "(a local Ray for this command)"
        if "error" not in outcome:
            raise ValueError(f"Ray did not start {where} within {timeout:.0f} s (a memory limit such as ulimit -v "
                             "stops Ray's processes; check `ray status`)")
        if outcome["error"] is not None:
            first = (str(outcome["error"]).strip().splitlines() or [type(outcome["error"]).__name__])[0]
            raise ValueError(f"cannot connect to Ray {where}: {first}")
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    resources = ray.cluster_resources()
    target = address or "a local Ray started for this command"
    return (f"ray: {target}, {len(nodes)} node(s), {resources.get('CPU', 0):g} CPU(s), "
            f"{resources.get('GPU', 0):g} GPU(s)")


def _check_listening(address: str | None, seconds: float = 5.0) -> None:
    """Refuse a ``host:port`` address where nothing accepts a TCP connection (``auto``, ``local`` and ``ray://``
    addresses are left to Ray)."""
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not host:port, 'auto', 'local' or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise ValueError(f"no Ray cluster answers at {address!r} ({exc.strerror or exc}); start one with "
                         "`ray start --head` or give another --ray-address") from None


def run_ray(plan: SweepPlan, store: RunStore, options: TrainOptions, address: str | None = None,
            retries: int = 2, progress: Progress | None = None, retry_failed: bool = False,
            flush_seconds: float = 1.0, max_in_flight: int | None = None,
            watchers: Sequence[Watcher] = ()) -> dict[str, int]:
    """Train the stacks of ``plan`` (from :func:`limitlab.sweep.prepare`) as Ray tasks, one per stack.

    Returns {"trained", "skipped", "failed"} summed over the stacks, plus "nodes" (distinct Ray nodes that
    trained a stack) and "workers_lost" (workers that died mid-stack; their stacks were retried).

    Connects as :func:`connect` does. Runs claimed by another process when their stack's turn comes ride along
    untrained.
    ``max_in_flight`` stacks are claimed and submitted at a time (default: twice what the cluster can run at
    once, so the next stack is queued when one finishes).
    """
    try:
        import ray
    except ImportError as exc:
        raise ValueError("the ray executor needs Ray: pip install 'limitlab[ray]'") from exc
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    summary = {"trained": 0, "skipped": 0, "failed": 0, "nodes": 0, "workers_lost": 0}
    if plan.stacks:
        connect(ray, address)
        _train_stacks(ray, store, plan, summary, options, retries, progress, retry_failed, flush_seconds,
                      max_in_flight, watchers)
    return summary


def _train_stacks(ray: Any, store: RunStore, plan: SweepPlan, summary: dict[str, int], options: TrainOptions,
                  retries: int, progress: Progress | None, retry_failed: bool,
                  flush_seconds: float, max_in_flight: int | None, watchers: Sequence[Watcher]) -> None:
    """Train the plan's stacks on Ray (several at a time, one driver thread each), add to summary."""
    cuda = options.device.startswith("cuda")
    stacks = sorted(plan.stacks, key=lambda s: -s.estimate.cost_s)  # longest first: better packing across workers
    worker_options = replace(options, device="cuda" if cuda else options.device)  # a worker sees its GPU as 0
    shares = [gpu_fraction(s.estimate, plan.profile.memory_bytes) if cuda else 0.0 for s in stacks]
    cluster = ray.cluster_resources()
    if cuda and not cluster.get("GPU"):
        raise ValueError(f"device {options.device!r} asks for GPUs but the Ray cluster has none "
                         f"(resources: {cluster}); use --device cpu or add GPU nodes")
    if max_in_flight is None:
        slots = cluster.get("GPU", 0) / min(shares) if cuda else cluster.get("CPU", 1)
        max_in_flight = 2 * max(1, int(slots))
    remote = ray.remote(stream_stack)
    stop = threading.Event()
    lock = threading.Lock()
    nodes: set = set()
    lost: list[WorkerLost] = []

    def on_lost(exc: WorkerLost) -> None:
        with lock:
            lost.append(exc)
        log.warning("limitlab ray executor: %s; restarting its unfinished runs from their last checkpoints", exc)

    def report(model_steps: int, finished: int, **work: float) -> None:  # stacks report from several threads
        if progress is not None:
            with lock:
                progress(model_steps, finished, **work)

    def one_stack(stack: PlannedStack, share: float) -> dict[str, int]:
        resources = {"num_gpus": share, "num_cpus": 1} if cuda else {"num_cpus": 1}
        opts = asdict(stack_options(worker_options, stack))
        start = _ray_start(ray, remote, stack.specs, opts, resources, flush_seconds, stop, nodes)

        def train(claimed: list[str], sink: StoreSink) -> Iterable[Event]:
            return remote_events(claimed, sink, start, retries, options.heartbeat_seconds, on_lost)

        return train_claimed(store, stack, train, weighed(report, stack), retry_failed, [_locked(w, lock)
                                                                                          for w in watchers])

    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, min(len(stacks), max_in_flight)),
                            thread_name_prefix="limitlab-ray") as pool:
        futures = [pool.submit(one_stack, stack, share) for stack, share in zip(stacks, shares)]
        try:
            for future in futures:  # every stack finishes (or fails) before we report
                try:
                    part = future.result()
                except Exception as exc:  # noqa: BLE001 - a failed stack must not hide the others' results
                    errors.append(exc)
                    continue
                for key in part:
                    summary[key] += part[key]
        except BaseException:  # Ctrl-C: stop every stack (its runs are released), then re-raise
            stop.set()
            for future in futures:
                future.cancel()
            raise
    summary["nodes"], summary["workers_lost"] = len(nodes - {None}), len(lost)
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(stacks)} stack(s) failed under Ray (their runs are released "
                           f"and train on the next launch); first error: {errors[0]}")
