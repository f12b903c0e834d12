"""The ``ray`` executor: every planned stack is a Ray task; all tasks write to one RunStore.

Executors decide where a stack trains, never what it computes: a task builds the same
:class:`~limitlab.train.trainer.StackTrainer` the local executor builds. Each task first *claims* its runs in the
store, so runs finished (or being trained) elsewhere are skipped and a relaunched sweep resumes where it stopped;
checkpoints let a run that was cut off continue from its last checkpoint.

Resources: on CUDA a stack asks for a GPU, or a fraction of one when its estimated memory leaves room for
others (``planner.model_bytes``; fractions of 1/2, 1/4 or 1/8, so small launch-bound stacks share a GPU); on a
CPU one core per stack. The store must be reachable from every worker at the same path; it is an SQLite file,
so use one machine (many GPUs) or a filesystem with working POSIX locks.

>>> run_ray(specs, "runs/", TrainOptions(device="cuda"), max_models=256)    # doctest: +SKIP
{'trained': 720, 'skipped': 0, 'failed': 0}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, replace

from limitlab.planner import DeviceProfile, Stack, plan_stacks
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.train.trainer import TrainOptions


def gpu_fraction(stack: Stack, gpu_bytes: float) -> float:
    """The share of one GPU a stack asks Ray for: 1, 1/2, 1/4 or 1/8 — at least its memory estimate."""
    need = stack.memory / gpu_bytes if gpu_bytes > 0 else 1.0
    for share in (0.125, 0.25, 0.5):
        if need <= share:
            return share
    return 1.0


def train_stack(spec_json: list[str], store_path: str, options: dict) -> dict[str, int]:
    """Body of one Ray task (a plain function, so it is testable without Ray): claim, train, record."""
    from limitlab.train.events import StoreSink
    from limitlab.train.trainer import StackTrainer

    specs = [RunSpec.model_validate_json(s) for s in spec_json]
    store = RunStore(store_path)
    try:
        claimed = set(store.claim([s.run_id for s in specs]))
        todo = [s for s in specs if s.run_id in claimed]
        summary = {"trained": 0, "skipped": len(specs) - len(todo), "failed": 0}
        if not todo:
            return summary
        opts = TrainOptions(**options)
        if opts.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():  # a task placed on a machine without a GPU: say so, don't hang
                raise RuntimeError("stack was scheduled with a GPU share but CUDA is not available in the worker")
        try:
            sink = StoreSink(store)
            results = StackTrainer(todo, sink, opts).run(sink)
        except BaseException:
            store.release([s.run_id for s in todo])
            raise
        summary["trained"] = len(results)
        summary["failed"] = len(todo) - len(results)
        return summary
    finally:
        store.close()


def run_ray(specs: Sequence[RunSpec], store_path: str, options: TrainOptions, max_models: int = 256,
            address: str | None = None) -> dict[str, int]:
    """Train every not-yet-done run of ``specs`` as Ray tasks (one per stack); returns the summed summary.

    Connects to ``address`` (or ``RAY_ADDRESS``) if given, else to an already initialised Ray, else starts a
    local instance. Finished runs are skipped before planning; runs claimed by another process are skipped by
    the task that would train them.
    """
    try:
        import ray
    except ImportError as exc:
        raise ValueError("the ray executor needs Ray: pip install 'limitlab[ray]'") from exc

    store = RunStore(store_path)
    store.add(specs)
    status = store.status_of([s.run_id for s in specs])
    todo = [s for s in specs if status.get(s.run_id) != "done"]
    summary = {"trained": 0, "skipped": len(specs) - len(todo), "failed": 0}
    store.close()
    if not todo:
        return summary
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
    cuda = options.device.startswith("cuda")
    profile = DeviceProfile.for_device(options.device)
    stacks = plan_stacks(todo, max_models=max_models, profile=profile, eval_batch_size=options.eval_batch_size)
    stacks.sort(key=lambda s: -s.cost_s)  # longest first: better packing across workers
    payload = asdict(replace(options, device="cuda" if cuda else options.device))
    remote = ray.remote(train_stack)
    futures = []
    for stack in stacks:
        resources = {"num_gpus": gpu_fraction(stack, profile.memory_bytes), "num_cpus": 1} if cuda \
            else {"num_cpus": 1}
        futures.append(remote.options(**resources, max_retries=0).remote(
            [s.model_dump_json() for s in stack.specs], str(store_path), payload))
    errors = []
    for future in futures:  # every stack finishes (or fails) before we report
        try:
            part = ray.get(future)
        except Exception as exc:  # noqa: BLE001 - a failed stack must not hide the others' results
            errors.append(exc)
            continue
        for key in summary:
            summary[key] += part[key]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(futures)} stack(s) failed under Ray (their runs are released "
                           f"and train on the next launch); first error: {errors[0]}")
    return summary
