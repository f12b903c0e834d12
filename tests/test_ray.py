"""The ray executor: event batching and lost-worker retries in-process, then a two-node Ray cluster on loopback.

The cluster tests start a head and a second node (``ray.cluster_utils.Cluster``, one CPU each, so two stacks
must run on different nodes), train tiny counting runs through :func:`run_ray`, compare with the local
executor, and SIGKILL a worker once its first checkpoint has reached the driver.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from limitlab.executors import train_claimed, train_sweep
from limitlab.planner import Stack
from limitlab.ray_executor import WorkerLost, batch_events, gpu_fraction, remote_events, run_ray, stream_stack
from limitlab.store import RunStore
from limitlab.sweep import prepare
from limitlab.train.events import Event, StoreSink
from limitlab.train.trainer import TrainOptions

LOOPBACK = "127.0.0.2"  # a loopback address Ray does not rewrite to the host's network address
OPTIONS = TrainOptions(log_every=1)


def _specs(make_spec):
    # two stacks: two d=8 runs and a d=16 run
    return [make_spec(m=3, d=8, seed=0, steps=30), make_spec(m=3, d=8, seed=1, steps=30),
            make_spec(m=3, d=16, seed=0, steps=30)]


def _resumable(make_spec, steps: int = 30, every: int = 10):
    return [make_spec(m=3, d=8, seed=s, steps=steps, train={"checkpoint_every": every}) for s in (0, 1)]


def _ray_sweep(specs, path, options=OPTIONS):
    """``limitlab run --executor ray`` in code: one store, one plan, the Ray executor."""
    store = RunStore(path)
    return run_ray(prepare(specs, store, device=options.device), store, options)


def _only_stack(store: RunStore, specs):
    stacks = prepare(specs, store).stacks
    assert len(stacks) == 1
    return stacks[0]


def _logged_steps(store: RunStore, run_id: str) -> list[int]:
    return [r["step"] for r in store.metrics(run_id) if "train_loss" in r]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """``local(specs)``: a store holding the local executor's results for ``specs`` (each run trained once)."""
    store = RunStore(tmp_path_factory.mktemp("local"))

    def train(specs) -> RunStore:
        train_sweep(specs, store, OPTIONS)  # runs already there are skipped
        return store

    return train


def _assert_same_results(store: RunStore, reference: RunStore, specs) -> None:
    for spec in specs:
        ours, theirs = store.result(spec.run_id), reference.result(spec.run_id)
        assert ours["step"] == theirs["step"] == spec.train.steps
        assert ours["test/loss"] == pytest.approx(theirs["test/loss"], abs=1e-4)
        assert ours["test/accuracy"] == pytest.approx(theirs["test/accuracy"], abs=1e-6)


# ---- without Ray ------------------------------------------------------------------------------------------------

def test_batch_events_sums_progress_and_sends_checkpoints_at_once():
    ticks = iter(range(100))
    events = [Event("progress", data={"model_steps": 2})] * 3 + [
        Event("log", "a", {"step": 3}), Event("checkpoint", "a", {}), Event("checkpoint", "b", {}),
        Event("progress", data={"model_steps": 2}), Event("heartbeat", data={"run_ids": ["a", "b"]}),
        Event("eval", "a", {"step": 4}), Event("finish", "a", {}), Event("finish", "b", {})]
    batches = list(batch_events(events, flush_seconds=1000, clock=lambda: next(ticks)))
    assert [[(e.kind, e.run_id, e.data.get("model_steps")) for e in b] for b in batches] == [
        [("progress", None, 6), ("log", "a", None), ("checkpoint", "a", None), ("checkpoint", "b", None)],
        [("progress", None, 2), ("eval", "a", None), ("finish", "a", None), ("finish", "b", None)]]
    # with a 1-second flush and a clock that ticks a second per read, every event leaves on its own
    ticks = iter(range(100))
    timed = list(batch_events(events[:4], flush_seconds=1, clock=lambda: next(ticks)))
    assert [len(b) for b in timed] == [1, 1, 1, 1]


def test_lost_worker_retried_from_its_last_checkpoint(tmp_path, make_spec, local):
    """A stream that dies after its first checkpoint: the retry starts from that checkpoint, results unchanged."""
    specs = _resumable(make_spec)
    reference = local(specs)
    store = RunStore(tmp_path / "store")
    store.add(specs)
    seen: list[dict] = []

    def start(todo, checkpoints):
        seen.append({k: v and v["step"] for k, v in checkpoints.items()})
        for batch in stream_stack([s.model_dump_json() for s in specs], todo, checkpoints, {"log_every": 1}):
            yield batch
            if len(seen) == 1 and any(e.kind == "checkpoint" for e in batch):
                raise WorkerLost("worker lost mid-stack (test)")

    lost = []
    summary = train_claimed(store, _only_stack(store, specs),
                            lambda todo, sink: remote_events(todo, sink, start, 1, on_lost=lost.append))
    assert summary == {"trained": 2, "skipped": 0, "failed": 0} and len(lost) == 1
    assert seen == [{s.run_id: None for s in specs}, {s.run_id: 10 for s in specs}]
    _assert_same_results(store, reference, specs)
    for spec in specs:  # steps 1-10 once (from the lost worker), 11-30 once (the retry): nothing trained twice
        assert _logged_steps(store, spec.run_id) == list(range(1, 31))


def test_lost_worker_out_of_retries_releases_runs_with_their_checkpoints(tmp_path, make_spec, local):
    specs = _resumable(make_spec)
    store = RunStore(tmp_path / "store")
    store.add(specs)

    def start(todo, checkpoints):  # every attempt dies after its first round of checkpoints
        for batch in stream_stack([s.model_dump_json() for s in specs], todo, checkpoints, {"log_every": 1}):
            yield batch
            if any(e.kind == "checkpoint" for e in batch):
                raise WorkerLost("worker lost mid-stack (test)")

    with pytest.raises(WorkerLost, match="2 attempt.*released"):
        train_claimed(store, _only_stack(store, specs),
                      lambda todo, sink: remote_events(todo, sink, start, retries=1))
    assert store.status_of([s.run_id for s in specs]) == {s.run_id: "pending" for s in specs}
    assert [store.load_checkpoint(s.run_id)["step"] for s in specs] == [20, 20]  # two attempts, 10 steps each
    # the next launch resumes them (here locally) and gets the uninterrupted numbers
    assert train_sweep(specs, store, OPTIONS)["trained"] == 2
    reference = local(specs)
    _assert_same_results(store, reference, specs)


class _NoCheckpoints:
    def load_checkpoint(self, run_id):
        return None


def test_remote_events_heartbeats_while_waiting_and_refuses_a_short_stream(make_spec):
    spec = make_spec(m=3, d=8, steps=5)
    ticks = iter(range(0, 1000, 10))

    def start(todo, checkpoints):
        yield from ([], [], [Event("finish", spec.run_id, {})])  # queued, queued, done

    events = remote_events([spec.run_id], _NoCheckpoints(), start, heartbeat_seconds=15, clock=lambda: next(ticks))
    assert [(e.kind, e.data.get("run_ids")) for e in events] == [("heartbeat", [spec.run_id]), ("finish", None)]
    with pytest.raises(RuntimeError, match="without finishing runs"):
        list(remote_events([spec.run_id], _NoCheckpoints(), lambda todo, checkpoints: iter([[]])))


def test_stream_stack_opens_no_store(tmp_path, make_spec, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a worker opened a RunStore")

    monkeypatch.setattr(RunStore, "__init__", refuse)
    spec = make_spec(m=3, d=8, steps=5)
    events = [e for b in stream_stack([spec.model_dump_json()], [spec.run_id], {}, {}) for e in b]
    assert events[0].kind == "worker" and events[0].data["pid"] == os.getpid()
    assert events[-1].kind == "finish" and events[-1].data["result"]["step"] == 5


def test_missing_ray_is_a_one_line_error(tmp_path, make_spec, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ValueError, match=r"needs Ray: pip install 'limitlab\[ray\]'") as err:
        _ray_sweep([make_spec(m=3, d=8, steps=5)], str(tmp_path / "store"))
    assert "\n" not in str(err.value)


def test_gpu_fraction():
    def stack(memory: float) -> Stack:
        return Stack([], 1, 1, 1, 1, 1, memory, 1.0, 1.0)

    assert gpu_fraction(stack(1e9), 80e9) == 0.125
    assert gpu_fraction(stack(30e9), 80e9) == 0.5
    assert gpu_fraction(stack(70e9), 80e9) == 1.0


# ---- a two-node Ray cluster ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                          "node_ip_address": LOOPBACK})
    try:
        nodes.add_node(num_cpus=1, node_ip_address=LOOPBACK)
        ray.init(address=nodes.address, _node_ip_address=LOOPBACK, log_to_driver=False)
        yield ray
    finally:
        ray.shutdown()
        nodes.shutdown()


@pytest.mark.slow
def test_two_nodes_train_like_local_and_skip_finished(cluster, tmp_path, make_spec, local):
    specs = _specs(make_spec)
    reference = local(specs)
    path = str(tmp_path / "ray")
    summary = _ray_sweep(specs, path)
    assert summary == {"trained": 3, "skipped": 0, "failed": 0, "nodes": 2, "workers_lost": 0}
    store = RunStore(path)
    assert store.status_of([s.run_id for s in specs]) == {s.run_id: "done" for s in specs}
    _assert_same_results(store, reference, specs)
    assert all(_logged_steps(store, s.run_id) == list(range(1, 31)) for s in specs)
    # a relaunched sweep (one new run) trains only what is missing
    extra = make_spec(m=4, d=8, seed=5, steps=30)
    assert _ray_sweep([*specs, extra], path)["trained"] == 1


def _ray_workers(title: bytes) -> list[int]:
    """Pids of the processes Ray titled ``title`` (a Ray worker runs as 'ray::<function name>')."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().split(b"\0")[0] == title:
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_worker_killed_mid_stack_resumes_from_checkpoint(cluster, tmp_path, make_spec, monkeypatch, local):
    specs = _resumable(make_spec, steps=80, every=5)  # many steps after the first checkpoint: time to kill
    reference = local(specs)
    killed: list[int] = []
    save = RunStore.save_checkpoint

    def save_then_kill(self, run_id, state):  # the driver writes the first checkpoint, then the worker dies
        save(self, run_id, state)
        if not killed:
            killed.extend(_ray_workers(b"ray::stream_stack"))
            assert len(killed) == 1, killed
            os.kill(killed[0], signal.SIGKILL)

    monkeypatch.setattr(RunStore, "save_checkpoint", save_then_kill)
    sent: list[int | None] = []  # the step of each checkpoint the driver sends with a stack
    load = StoreSink.load_checkpoint

    def load_and_note(self, run_id):
        state = load(self, run_id)
        sent.append(state and state["step"])
        return state

    monkeypatch.setattr(StoreSink, "load_checkpoint", load_and_note)
    path = str(tmp_path / "ray")
    summary = _ray_sweep(specs, path)
    assert killed and summary["workers_lost"] == 1
    assert sent[:2] == [None, None] and len(sent) == 4 and all(step >= 5 for step in sent[2:])  # retry: resumed
    assert summary["trained"] == 2 and summary["failed"] == 0
    store = RunStore(path)
    assert store.status_of([s.run_id for s in specs]) == {s.run_id: "done" for s in specs}
    _assert_same_results(store, reference, specs)
    for spec in specs:
        steps = _logged_steps(store, spec.run_id)
        # every step logged; step 1 once (the retry started from the checkpoint, not from scratch); the steps
        # logged twice are those the killed worker took after its checkpoint (at most one interval)
        assert sorted(set(steps)) == list(range(1, 81)) and steps.count(1) == 1
        assert len(steps) - 80 <= 5
        assert steps[-1] == 80


@pytest.mark.slow  # needs the cluster
def test_cuda_on_a_cluster_without_gpus_is_a_one_line_error(cluster, tmp_path, make_spec):
    with pytest.raises(ValueError, match="asks for GPUs but the Ray cluster has none") as err:
        _ray_sweep([make_spec(m=3, d=8, steps=5)], str(tmp_path / "store"), TrainOptions(device="cuda"))
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_cli_runs_a_preset_on_the_cluster(cluster, tmp_path, capsys):
    from limitlab.cli import main

    tiny = ["--set", "study.ds=[8]", "--set", "study.ms=[3]", "--set", 'study.tasks=["qc"]', "--set", "study.steps=20"]
    store = tmp_path / "store"
    assert main(["run", "counting", "--preset", "smoke", *tiny, "--executor", "ray", "--store", str(store),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    runs = RunStore(store).counts("counting")["counting"]
    assert runs["done"] >= 1 and runs["pending"] == runs["running"] == runs["failed"] == 0
    assert f"trained {runs['done']} run(s)" in out
    assert "2 node(s)" in out and "ray: trained on" in out  # the cluster it used, and the nodes that trained


def test_an_address_where_nothing_listens_is_one_line_at_once(tmp_path, capsys, monkeypatch):
    import socket

    import ray

    from limitlab.cli import main

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process (the cluster tests' Ray is up)
    with socket.socket() as sock:  # a free loopback port, closed again: nothing listens there
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    code = main(["run", "counting", "--preset", "smoke", "--set", "study.ds=[8]", "--set", "study.ms=[3]",
                 "--set", 'study.tasks=["qc"]', "--executor", "ray", "--ray-address", f"{LOOPBACK}:{port}",
                 "--store", str(tmp_path / "store"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"no Ray cluster answers at '{LOOPBACK}:{port}'" in err and len(err.splitlines()) == 1
    assert time.monotonic() - started < 30


def test_ray_connection_errors_and_hangs_are_one_line(monkeypatch):
    from limitlab.ray_executor import connect

    class FakeRay:
        def __init__(self, init):
            self.init = init

        def is_initialized(self):
            return False

    def refuse(**kwargs):
        raise ConnectionError("Could not find any running Ray instance.\nmore text")

    with pytest.raises(ValueError, match=r"^cannot connect to Ray at 'auto': Could not find any running Ray inst"):
        connect(FakeRay(refuse), "auto")
    with pytest.raises(ValueError, match=r"did not start at 'auto' within 0 s"):
        connect(FakeRay(lambda **kwargs: time.sleep(5)), "auto", timeout=0.2)
    with pytest.raises(ValueError, match="is not host:port"):
        connect(FakeRay(refuse), "nonsense")
