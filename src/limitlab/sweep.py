"""The front door of a sweep: specs → store → runs to train → stacks, decided once and kept in the store.

:func:`prepare` registers a command's runs in the store, reads their statuses and returns a :class:`SweepPlan`
that every executor takes as it is (nothing is planned twice). The plan is also *kept*, so that a sweep killed at
any instant and run again trains every stack exactly as the uninterrupted sweep would have, bit for bit:

* **The sweep's stacks** are saved when first planned (``sweeps/<sweep id>.json``, the id a hash of the command's
  run ids, ``max_models`` and the device kind). The same command finds them again, however many of its runs
  finished meanwhile, instead of planning the unfinished rest into new stacks.
* **A started stack** writes ``runs/<id>/stack.json`` for each of its runs before its first step: the stack's run
  ids in order and its chunk size (models per forward/backward on a CPU). A run that started always resumes in
  that stack, with that chunking, whichever command resumes it.
* **Finished stack mates ride along**: a resumed stack keeps its finished (or elsewhere claimed) runs as models
  that are computed but never updated or reported (``StackTrainer(train=...)``), so the padded shapes, the
  batched kernels and the chunks are those of the first attempt, and so is every run's float rounding.

>>> plan = prepare(specs, store, device="cpu")                       # doctest: +SKIP
>>> [(len(s.specs), len(s.train), s.chunk) for s in plan.stacks]     # doctest: +SKIP
[(32, 32, None), (22, 7, 4)]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from limitlab.planner import DeviceProfile, Stack, make_stack, plan_stacks, unique_specs
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.store_files import StoreError, _atomic_write, _read_regular


@dataclass(frozen=True)
class PlannedStack:
    """One stack of a sweep: every model in its planned order, which of them to train, and its chunk size.

    ``chunk`` is the chunk size recorded when the stack first started (None: not started; the trainer chooses).
    ``estimate`` carries the planner's padded shapes, memory and cost for the whole stack.
    """

    specs: list[RunSpec]
    train: frozenset[str]
    chunk: int | None
    estimate: Stack

    @property
    def ids(self) -> list[str]:
        return [s.run_id for s in self.specs]


@dataclass(frozen=True)
class SweepPlan:
    """What one ``limitlab run`` will do: its runs, their statuses and the stacks that train the rest."""

    specs: list[RunSpec]
    status: dict[str, str]
    todo: list[RunSpec]
    stacks: list[PlannedStack]
    profile: DeviceProfile
    key: str  # the sweep id its plan is kept under
    groups: list[tuple[str, ...]]  # every stack of the sweep (run ids in order), trained or not
    changed: bool  # the groups differ from the kept plan (or none is kept): keep() writes them

    def keep(self, store: RunStore) -> None:
        """Register the runs in ``store`` (as pending) and keep the plan there, so the same command resumes it."""
        store.add(self.specs)
        if self.changed:
            _atomic_write(store.root / "sweeps" / f"{self.key}.json",
                          json.dumps([list(g) for g in self.groups]).encode())

    @property
    def done(self) -> int:
        return sum(1 for s in self.specs if self.status.get(s.run_id) == "done")

    @property
    def failed(self) -> int:
        return sum(1 for s in self.specs if self.status.get(s.run_id) == "failed")

    def to_json(self) -> list[dict[str, Any]]:
        """One record per run of the command: run id, status, its stack (index, or None when not trained), spec."""
        where = {run_id: i for i, st in enumerate(self.stacks) for run_id in st.train}
        return [{"run_id": s.run_id, "status": self.status.get(s.run_id, "new"), "stack": where.get(s.run_id),
                 "spec": s.model_dump(mode="json")} for s in self.specs]


def prepare(specs: Sequence[RunSpec], store: RunStore | None, max_models: int = 256, device: str = "cpu",
            retry_failed: bool = False, eval_batch_size: int = 256, profile: DeviceProfile | None = None,
            write: bool = True, redo: Collection[str] = ()) -> SweepPlan:
    """Plan the runs of ``specs`` not yet done in ``store`` into stacks, then register them and keep the plan
    (:meth:`SweepPlan.keep`; see the module docstring).

    ``write=False`` registers nothing and keeps nothing (``limitlab plan``; ``limitlab run`` keeps the plan once
    its cost is accepted); ``store=None`` plans as for an empty store. ``redo``: finished runs to plan as if
    they were not (``--rerun-other-code``; the caller reopens them in the store).
    """
    specs = unique_specs(specs)
    if max_models < 1:
        raise ValueError(f"max_models must be >= 1, got {max_models}")
    status = store.status_of([s.run_id for s in specs]) if store is not None else {}
    skip = {"done"} if retry_failed else {"done", "failed"}
    status.update({run_id: "pending" for run_id in redo if run_id in status})
    todo = [s for s in specs if status.get(s.run_id) not in skip]
    profile = profile or DeviceProfile.for_device(device)
    known = {s.run_id: s for s in specs}
    todo_ids = {s.run_id for s in todo}

    def spec_of(run_id: str) -> RunSpec | None:
        if run_id in known:
            return known[run_id]
        try:
            return store.spec(run_id)
        except (KeyError, ValueError):
            return None

    started = {}  # run id -> the record of the stack it started in (whose runs the store all knows)
    for s in todo if store is not None else []:
        record = read_stack_record(store, s.run_id)
        if record is not None and all(spec_of(i) is not None for i in record["runs"]):
            started[s.run_id] = record
    key = sweep_id(specs, max_models, profile.name)
    kept = _read_groups(store, key) if store is not None else []
    groups = [tuple(record["runs"]) for record in started.values()]  # started stacks first, as they ran
    groups += [tuple(i for i in g if i in known and i not in started) for g in kept]
    groups = list(dict.fromkeys(g for g in groups if g))
    planned = {i for g in groups for i in g}
    fresh = [s for s in todo if s.run_id not in planned]
    if fresh:
        groups += [tuple(s.run_id for s in st.specs)
                   for st in plan_stacks(fresh, max_models, profile=profile, eval_batch_size=eval_batch_size)]

    stacks, assigned = [], set()
    for group in groups:
        train = frozenset(i for i in group if i in todo_ids and i not in assigned)  # each run trains in one stack
        if not train:
            continue
        assigned |= train
        members = [spec_of(i) for i in group]
        chunks = {started[i]["chunk"] for i in train if i in started and tuple(started[i]["runs"]) == group}
        chunk = chunks.pop() if len(chunks) == 1 else None
        stacks.append(PlannedStack(members, train, chunk, make_stack(members, profile, eval_batch_size)))
    plan = SweepPlan(specs, status, todo, stacks, profile, key, groups, [list(g) for g in groups] != kept)
    if store is not None and write:
        plan.keep(store)
    return plan


def sweep_id(specs: Sequence[RunSpec], max_models: int, device: str) -> str:
    """A command's identity for its kept plan: its run ids (as a set), ``max_models`` and the device kind."""
    blob = json.dumps([sorted(s.run_id for s in specs), max_models, device.split(":")[0]])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record_stack(store: RunStore, stack: PlannedStack, chunk: int, run_ids: Sequence[str]) -> None:
    """Write ``runs/<id>/stack.json`` (the stack's runs in order and ``chunk``) for ``run_ids`` before training.

    Records already there stay as they are (a resumed stack keeps its first chunking)."""
    blob = json.dumps({"runs": stack.ids, "chunk": int(chunk)}).encode()
    for run_id in run_ids:
        if read_stack_record(store, run_id) is None:
            _atomic_write(store._dir(run_id) / "stack.json", blob)


def read_stack_record(store: RunStore, run_id: str) -> dict | None:
    """A run's started-stack record, or None when it has none (or an unreadable one: the run plans afresh)."""
    try:
        blob = _read_regular(store._dir(run_id) / "stack.json")
        record = json.loads(blob) if blob is not None else None
    except (OSError, ValueError, StoreError):  # unreadable, a link, not JSON: the run plans afresh
        return None
    if not isinstance(record, dict):
        return None
    runs, chunk = record.get("runs"), record.get("chunk")
    if (not isinstance(runs, list) or run_id not in runs or not all(isinstance(r, str) for r in runs)
            or not isinstance(chunk, int) or chunk < 1):
        return None
    return {"runs": runs, "chunk": chunk}


def _read_groups(store: RunStore, key: str) -> list[list[str]]:
    """A kept sweep plan (a list of lists of run ids), or [] when missing or unreadable."""
    try:
        blob = _read_regular(store.root / "sweeps" / f"{key}.json")
        groups = json.loads(blob) if blob is not None else []
    except (OSError, ValueError, StoreError):
        return []
    if not isinstance(groups, list) or not all(isinstance(g, list) and all(isinstance(i, str) for i in g)
                                               for g in groups):
        return []
    return groups
