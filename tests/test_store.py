"""RunStore: idempotent add, exclusive claims across processes, stale reclaim, atomic files under SIGKILL."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from limitlab.spec import RunSpec
from limitlab.store import RunStore, StoreError


def make_specs(n: int, start: int = 0, study: str = "counting") -> list[RunSpec]:
    return [RunSpec(study=study, task={"name": "counting", "m": 5}, model={"d_model": 8, "n_heads": 2, "max_len": 128},
                    seed=i) for i in range(start, start + n)]


def checkpoint_state(step: int) -> dict:
    """A checkpoint with the trainer's layout: params and Adam moments (tensors) and plain numbers."""
    w = torch.arange(6.0).view(2, 3) * step
    return {"step": step, "alive": True, "final_loss": 0.5, "params": {"w": w, "b": torch.ones(3)},
            "optim": {"exp_avg": [w / 2, torch.zeros(3)], "exp_avg_sq": [w * w, torch.ones(3)], "t": float(step)}}


def sql(store: RunStore, query: str, *args) -> list[tuple]:
    with sqlite3.connect(store.root / "index.sqlite") as db:
        return db.execute(query, args).fetchall()


def test_add_is_idempotent(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    specs = make_specs(4)
    ids = store.add(specs)
    assert ids == [s.run_id for s in specs] and len(set(ids)) == 4
    store.claim(ids[:1])
    store.finish(ids[0], {"accuracy": 1.0})
    assert store.add(specs + make_specs(1, start=10)) == ids + [make_specs(1, start=10)[0].run_id]
    assert store.status_of(ids) == {ids[0]: "done", **{i: "pending" for i in ids[1:]}}
    assert sql(store, "SELECT COUNT(*) FROM runs") == [(5,)]
    assert store.spec(ids[2]) == specs[2]
    assert RunSpec.model_validate_json((store.runs_dir / ids[2] / "spec.json").read_text()) == specs[2]
    assert store.counts() == {"counting": {"pending": 4, "running": 0, "done": 1, "failed": 0, "damaged": 0,
                                           "stale": 0}}
    with pytest.raises(KeyError):
        store.spec("0123456789abcdef")


def test_claim_takes_only_available_runs(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    ids = store.add(make_specs(5))
    assert store.claim(ids[:2]) == ids[:2]
    assert store.claim(list(reversed(ids))) == list(reversed(ids[2:]))  # given order, only what is left
    assert store.claim(ids) == []
    store.finish(ids[0], {"accuracy": 0.5})
    store.fail(ids[1], "loss is NaN at step 12")
    store.release(ids[2:4])
    assert store.status_of(ids) == dict(zip(ids, ["done", "failed", "pending", "pending", "running"]))
    assert store.claim(ids) == ids[2:4]  # not done, not failed, not the live running one
    assert store.claim(ids, retry_failed=True) == [ids[1]]
    store.fail(ids[0], "too late")  # a done run stays done
    assert store.claim(ids, retry_failed=True) == []
    assert store.status_of(ids + ["nope"])[ids[0]] == "done" and "nope" not in store.status_of(["nope"])


def test_release_and_heartbeat_only_touch_own_runs(tmp_path: Path) -> None:
    mine, other = RunStore(tmp_path / "store"), RunStore(tmp_path / "store")
    ids = mine.add(make_specs(2))
    assert other.claim(ids[:1]) == ids[:1]
    mine.release(ids)
    mine.heartbeat(ids)
    assert sql(mine, "SELECT status, owner FROM runs WHERE run_id=?", ids[0]) == [("running", other.owner)]
    assert mine.claim(ids) == ids[1:]


def test_stale_claims_are_reclaimable_live_ones_are_not(tmp_path: Path) -> None:
    first, second = RunStore(tmp_path / "store"), RunStore(tmp_path / "store", stale_after=60)
    ids = first.add(make_specs(3))
    assert first.claim(ids) == ids
    assert second.claim(ids) == []  # live: fresh heartbeat, owner pid alive

    # 1) a heartbeat older than stale_after
    sql(first, "UPDATE runs SET heartbeat=? WHERE run_id=?", time.time() - 3600, ids[0])
    # 2) an owner on this host whose process is gone (fresh heartbeat)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    sql(first, "UPDATE runs SET owner=? WHERE run_id=?", f"{socket.gethostname()}:{dead.pid}:0000", ids[1])
    # 3) an owner on another host, fresh heartbeat: we cannot check its pid, so it is live
    sql(first, "UPDATE runs SET owner=? WHERE run_id=?", f"elsewhere.invalid:{dead.pid}:0000", ids[2])

    assert second.counts()["counting"] == {"pending": 0, "running": 1, "done": 0, "failed": 0, "damaged": 0, "stale": 2}
    assert second.claim(ids) == ids[:2]
    assert second.claim(ids) == []
    first.heartbeat(ids[:2])  # the old owner lost them: its heartbeat must not steal them back
    assert sql(first, "SELECT DISTINCT owner FROM runs WHERE run_id IN (?, ?)", *ids[:2]) == [(second.owner,)]


WORKER = """
import json, random, sys, time
from pathlib import Path
from limitlab.spec import RunSpec
from limitlab.store import RunStore

root, sync, name, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
specs = [RunSpec(study="counting", task={"name": "counting", "m": 5},
                 model={"d_model": 8, "n_heads": 2, "max_len": 128}, seed=i) for i in range(n)]
store = RunStore(root)
(sync / f"ready.{name}").touch()
while not (sync / "go").exists():
    time.sleep(0.005)
ids = store.add(specs)
rng, finished = random.Random(name), []
while True:
    status = store.status_of(ids)
    todo = [i for i in ids if status[i] != "done"]
    if not todo:
        break
    claimed = store.claim(rng.sample(todo, min(4, len(todo))))
    for run_id in claimed:
        store.append_metrics(run_id, [{"step": 1, "worker": name}])
        store.heartbeat([run_id])
        store.finish(run_id, {"accuracy": 1.0, "worker": name})
        finished.append(run_id)
    if not claimed:
        time.sleep(0.002)
print(json.dumps(finished))
"""


def test_two_processes_never_claim_the_same_run(tmp_path: Path) -> None:
    root, sync, n = tmp_path / "store", tmp_path / "sync", 60
    sync.mkdir()
    procs = {name: subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(sync), name, str(n)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")}
    deadline = time.time() + 60
    while not all((sync / f"ready.{name}").exists() for name in procs):
        assert time.time() < deadline and all(p.poll() is None for p in procs.values()), "workers did not start"
        time.sleep(0.01)
    (sync / "go").touch()
    finished = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        finished[name] = json.loads(out.strip().splitlines()[-1])

    ids = [s.run_id for s in make_specs(n)]
    a, b = finished["a"], finished["b"]
    assert len(a) == len(set(a)) and len(b) == len(set(b))
    assert not set(a) & set(b) and set(a) | set(b) == set(ids)
    store = RunStore(root)
    assert sql(store, "PRAGMA integrity_check") == [("ok",)]
    assert store.counts() == {"counting": {"pending": 0, "running": 0, "done": n, "failed": 0, "damaged": 0,
                                           "stale": 0}}
    for name, done in finished.items():
        for run_id in done:
            assert store.metrics(run_id) == [{"step": 1, "worker": name}]  # trained exactly once
            assert store.result(run_id) == {"accuracy": 1.0, "worker": name}


WRITER = """
import sys
import torch
from limitlab.spec import RunSpec
from limitlab.store import RunStore

def spec(seed):
    return RunSpec(study="counting", task={"name": "counting", "m": 5},
                   model={"d_model": 8, "n_heads": 2, "max_len": 128}, seed=seed)

store = RunStore(sys.argv[1])
ckpt, res = store.add([spec(0), spec(1)])
k = 0
while True:
    k += 1
    store.save_checkpoint(ckpt, {"step": k, "alive": True, "params": {"w": torch.full((1_000_000,), float(k))},
                                 "optim": {"exp_avg": [], "exp_avg_sq": [], "t": float(k)}})
    store.finish(res, {"step": k, "values": [k] * 50_000})
    store.append_metrics(ckpt, [{"step": k, "pad": "x" * 5000}])
    store.add([spec(1000 + k)])
    if k == 1:
        print("ready", flush=True)
"""


def test_sigkill_leaves_no_torn_files(tmp_path: Path) -> None:
    roots = [tmp_path / f"store{i}" for i in range(3)]  # three writers at once, killed at different moments
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
             for root in roots]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        time.sleep(0.13)
        proc.send_signal(signal.SIGKILL)
    for proc in procs:
        proc.wait(timeout=10)
        proc.stdout.close()

    ckpt, res = (s.run_id for s in make_specs(2))
    for root in roots:
        store = RunStore(root)
        state = store.load_checkpoint(ckpt)
        assert state is not None and state["step"] >= 1 and bool((state["params"]["w"] == state["step"]).all())
        result = store.result(res)
        assert result is not None and result["values"] == [result["step"]] * 50_000
        steps = [m["step"] for m in store.metrics(ckpt)]
        assert steps == list(range(1, len(steps) + 1))  # a torn last line is dropped, nothing else
        for spec_file in store.runs_dir.glob("*/spec.json"):
            RunSpec.model_validate_json(spec_file.read_text())
        assert store.status_of([res]) == {res: "done"}
        assert sql(store, "PRAGMA integrity_check") == [("ok",)]


def test_interrupted_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RunStore(tmp_path / "store")
    (run_id,) = store.add(make_specs(1))
    store.save_checkpoint(run_id, checkpoint_state(1))

    def torn_fsync(fd: int) -> None:  # killed after the temporary file was written, before it is renamed
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", torn_fsync)
    with pytest.raises(KeyboardInterrupt):
        store.save_checkpoint(run_id, checkpoint_state(2))
    monkeypatch.undo()
    assert store.load_checkpoint(run_id)["step"] == 1
    assert sorted(p.name for p in (store.runs_dir / run_id).iterdir()) == ["checkpoint.safetensors", "spec.json"]


def test_reopen_marks_runs_with_a_result_done(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    ids = store.add(make_specs(3))
    store.claim(ids)
    (store.runs_dir / ids[0] / "result.json").write_text(json.dumps({"accuracy": 0.9}))  # died before the index
    (store.runs_dir / ids[1] / "result.json").write_text('{"accuracy": 0.')  # not a result: ignored
    store.close()
    reopened = RunStore(tmp_path / "store")
    assert reopened.status_of(ids) == {ids[0]: "done", ids[1]: "running", ids[2]: "running"}
    assert reopened.result(ids[0]) == {"accuracy": 0.9} and reopened.result(ids[1]) is None


def test_metrics_skip_a_torn_line(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    (run_id,) = store.add(make_specs(1))
    assert store.metrics(run_id) == []
    store.append_metrics(run_id, [{"step": 1, "loss": 2.0}, {"step": 2, "loss": torch.tensor(1.5)}])
    with open(store.runs_dir / run_id / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 3, "lo')  # a crash mid-write
    assert store.metrics(run_id) == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]
    store.append_metrics(run_id, [{"step": 3, "loss": 1.0}])  # after resume
    assert [m["step"] for m in store.metrics(run_id)] == [1, 2, 3]


def test_checkpoint_roundtrip_and_cleanup(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    a, b = store.add(make_specs(2))
    assert store.load_checkpoint(a) is None
    state = checkpoint_state(7)
    state["final_loss"] = float("nan")
    store.save_checkpoint(a, state)
    loaded = store.load_checkpoint(a)
    assert (loaded["step"], loaded["alive"], loaded["optim"]["t"]) == (7, True, 7.0)
    assert math.isnan(loaded["final_loss"])
    assert loaded.keys() == state.keys() and torch.equal(loaded["params"]["w"], state["params"]["w"])
    assert all(torch.equal(x, y) for x, y in zip(loaded["optim"]["exp_avg_sq"], state["optim"]["exp_avg_sq"]))
    with pytest.raises(KeyError):  # only a checkpoint's layout can be written (tensors and plain numbers)
        store.save_checkpoint(b, {"path": Path("/tmp"), "ids": {1, 2}})
    assert store.load_checkpoint(b) is None
    (store.runs_dir / a / ".checkpoint.safetensors.999999999.beef.tmp").write_bytes(b"left by a killed writer")
    store.finish(a, {"accuracy": 1.0})
    assert store.load_checkpoint(a) is None
    assert sorted(p.name for p in (store.runs_dir / a).iterdir()) == ["result.json", "spec.json"]


def test_unusable_root_raises_a_one_line_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for root in (blocker / "store", blocker):
        with pytest.raises(StoreError) as info:
            RunStore(root)
        message = str(info.value)
        assert "\n" not in message and str(root) in message and info.value.__cause__ is None


def test_to_dataframe_has_spec_and_result_columns(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    assert list(store.to_dataframe().columns) == ["run_id", "study", "status", "error"]
    specs = make_specs(3) + make_specs(1, study="other")
    ids = store.add(specs)
    store.claim(ids)
    store.finish(ids[0], {"accuracy": 0.5, "ood": {"exact_match": 0.25}, "curve": [1, 2]})
    store.finish(ids[1], {"accuracy": 0.75, "ood": {"exact_match": 0.5}, "curve": [3]})
    store.fail(ids[2], "diverged")
    df = store.to_dataframe("counting")
    assert list(df["run_id"]) == ids[:3] and list(df.columns[:4]) == ["run_id", "study", "status", "error"]
    assert list(df["task.m"]) == [5, 5, 5] and list(df["seed"]) == [0, 1, 2]
    assert df["result.accuracy"].tolist()[:2] == [0.5, 0.75] and df["result.ood.exact_match"].iloc[1] == 0.5
    assert df["result.curve"].iloc[0] == [1, 2] and df["error"].iloc[2] == "diverged"
    assert set(specs[0].flat()) <= set(df.columns)
    assert len(store.to_dataframe()) == 4


def test_store_pickles_by_path(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    ids = store.add(make_specs(2))
    clone = pickle.loads(pickle.dumps(store))
    assert clone.root == store.root and clone.owner != store.owner and clone.status_of(ids)[ids[0]] == "pending"
