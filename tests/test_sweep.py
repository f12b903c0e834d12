"""The front door of a sweep (limitlab.sweep): one plan per command, kept in the store, so that an interrupted
sweep resumes bit for bit; ``limitlab plan``; tags that follow the spec; a ``--set`` collision refused."""

from __future__ import annotations

import json

import pytest
import torch

from limitlab import executors
from limitlab.cli import main
from limitlab.executors import train_sweep
from limitlab.planner import DeviceProfile
from limitlab.store import RunStore
from limitlab.studies.base import Study
from limitlab.sweep import prepare, read_stack_record
from limitlab.train import trainer as trainer_mod
from limitlab.train.events import StoreSink
from limitlab.train.trainer import TrainOptions

OPTIONS = TrainOptions(save_weights=True, log_every=5, checkpoint_seconds=0)


def _snapshot(store: RunStore, specs) -> dict:
    """Every number a run leaves: its result, its metric records and its final weights."""
    out = {}
    for spec in specs:
        weights = store.load_weights(spec.run_id)
        out[spec.run_id] = (store.result(spec.run_id), store.metrics(spec.run_id),
                            {k: v.clone() for k, v in weights.items()})
    return out


def _assert_bitwise(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for run_id, (result, metrics, weights) in want.items():
        assert got[run_id][0] == result, run_id
        assert got[run_id][1] == metrics, run_id
        for name, tensor in weights.items():
            assert torch.equal(got[run_id][2][name], tensor), (run_id, name)


class _Killed(Exception):
    """Stands for a SIGKILL at a chosen instant (the fault campaign kills for real)."""


def _interrupt_after(monkeypatch, kind: str, count: int = 1) -> None:
    """The store sink dies right after recording the ``count``-th event of ``kind``."""
    seen = [0]
    record = StoreSink.__call__

    def dying(self, event):
        record(self, event)
        if event.kind == kind:
            seen[0] += 1
            if seen[0] == count:
                raise _Killed(kind)

    monkeypatch.setattr(StoreSink, "__call__", dying)


def test_a_run_resumed_after_its_stack_mate_finished_is_bit_identical(tmp_path, make_spec, monkeypatch):
    """The mate's result is written, the other run's is not: the resumed stack keeps the finished run riding
    along (a stack of one rounds differently on a CPU), so the second run's numbers are the uninterrupted ones."""
    specs = [make_spec(m=3, d=16, seed=s, steps=30, train={"checkpoint_every": 10, "eval_every": 7}) for s in (0, 1)]
    reference = RunStore(tmp_path / "reference")
    train_sweep(specs, reference, OPTIONS)
    want = _snapshot(reference, specs)

    store = RunStore(tmp_path / "store")
    with monkeypatch.context() as patch:
        _interrupt_after(patch, "finish")
        with pytest.raises(_Killed):
            train_sweep(specs, store, OPTIONS)
    status = store.status_of([s.run_id for s in specs])
    assert sorted(status.values()) == ["done", "pending"]
    plan = prepare(specs, store)
    assert len(plan.stacks) == 1 and len(plan.stacks[0].specs) == 2 and len(plan.stacks[0].train) == 1
    train_sweep(specs, store, OPTIONS)
    _assert_bitwise(_snapshot(store, specs), want)


def test_a_kill_between_stacks_resumes_with_the_same_stacks(tmp_path, make_spec, monkeypatch):
    specs = [make_spec(m=3, d=d, seed=s, steps=15) for d in (8, 16) for s in (0, 1)]
    reference = RunStore(tmp_path / "reference")
    train_sweep(specs, reference, OPTIONS)
    store = RunStore(tmp_path / "store")
    calls = [0]
    real = executors.train_claimed

    def second_stack_never_starts(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            raise _Killed("between stacks")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(executors, "train_claimed", second_stack_never_starts)
        with pytest.raises(_Killed):
            train_sweep(specs, store, OPTIONS)
    assert sorted(store.status_of([s.run_id for s in specs]).values()) == ["done", "done", "pending", "pending"]
    train_sweep(specs, store, OPTIONS)
    _assert_bitwise(_snapshot(store, specs), _snapshot(reference, specs))


def test_the_kept_plan_survives_finished_runs(tmp_path, make_spec):
    """Six runs in two stacks of three (a small memory budget): after one run finishes, a fresh plan would put the
    other five in stacks of 3 + 2; the kept plan keeps 3 + 3 with the finished run riding along."""
    specs = [make_spec(m=3, d=16, seed=s, steps=5) for s in range(6)]
    store = RunStore(tmp_path / "store")
    one = DeviceProfile.for_device("cpu")
    from limitlab.planner import make_stack

    per_model = make_stack(specs[:1], one).memory
    profile = one.with_memory(3.5 * per_model)
    first = prepare(specs, store, profile=profile)
    assert [len(s.specs) for s in first.stacks] == [3, 3]
    store.claim([first.stacks[0].ids[0]])
    store.finish(first.stacks[0].ids[0], {"step": 5})
    again = prepare(specs, store, profile=profile)
    assert [s.ids for s in again.stacks] == [s.ids for s in first.stacks]
    assert [len(s.train) for s in again.stacks] == [2, 3]


def test_runs_claimed_elsewhere_ride_along(tmp_path, make_spec):
    specs = [make_spec(m=3, d=16, seed=s, steps=20) for s in (0, 1)]
    reference = RunStore(tmp_path / "reference")
    train_sweep(specs, reference, OPTIONS)
    store = RunStore(tmp_path / "store")
    store.add(specs)
    other = RunStore(tmp_path / "store")
    assert other.claim([specs[0].run_id]) == [specs[0].run_id]  # another process trains run 0
    summary = train_sweep(specs, store, OPTIONS)
    assert summary == {"trained": 1, "skipped": 1, "failed": 0}
    mine = _snapshot(store, specs[1:])
    _assert_bitwise(mine, _snapshot(reference, specs[1:]))


def test_a_started_stack_records_its_runs_and_chunk(tmp_path, make_spec):
    specs = [make_spec(m=3, d=16, seed=s, steps=5) for s in (0, 1)]
    store = RunStore(tmp_path / "store")
    train_sweep(specs, store, TrainOptions(chunk_models=1))
    for spec in specs:
        assert read_stack_record(store, spec.run_id) == {"runs": [s.run_id for s in specs], "chunk": 1}
    (store.runs_dir / specs[0].run_id / "stack.json").write_text("{not json")  # unreadable: planned afresh
    assert read_stack_record(store, specs[0].run_id) is None


def test_check_stackable_runs_once_per_stack(tmp_path, make_spec, monkeypatch):
    calls = []
    real = trainer_mod.check_stackable
    monkeypatch.setattr(trainer_mod, "check_stackable", lambda specs: calls.append(len(specs)) or real(specs))
    train_sweep([make_spec(m=3, seed=s, steps=3) for s in (0, 1)], RunStore(tmp_path / "s"), OPTIONS)
    assert calls == [2]


# ---- the command line ------------------------------------------------------------------------------------------

TINY = ["--set", "study.ds=[8]", "--set", "study.ms=[3]", "--set", 'study.tasks=["qc"]', "--set", "study.steps=5",
        "--set", 'study.variants=["base"]', "--set", "study.seeds=[0,1,2]"]


def test_one_store_open_and_one_plan_per_run_command(tmp_path, monkeypatch):
    opened, added = [], []
    init, add = RunStore.__init__, RunStore.add
    monkeypatch.setattr(RunStore, "__init__", lambda self, *a, **k: opened.append(a) or init(self, *a, **k))
    monkeypatch.setattr(RunStore, "add", lambda self, specs: added.append(1) or add(self, specs))
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--store", str(tmp_path / "s"), "--quiet"]) == 0
    assert len(opened) == 1 and len(added) == 1


def test_plan_command_lists_runs_and_stacks_and_writes_nothing(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["plan", "counting", "--preset", "smoke", *TINY, "--store", str(store), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert not store.exists()
    assert len(plan["runs"]) == 3 and all(r["status"] == "new" and r["stack"] == 0 for r in plan["runs"])
    assert plan["runs"][0]["spec"]["model"]["d_model"] == 8 and len(plan["stacks"]) == 1
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--store", str(store), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["plan", "counting", "--preset", "smoke", *TINY, "--store", str(store)]) == 0
    assert "3 already done, 0 to train in 0 stack(s)" in capsys.readouterr().out


def test_a_set_that_merges_runs_is_refused_before_anything_is_written(tmp_path, capsys):
    store = tmp_path / "store"
    code = main(["run", "counting", "--preset", "smoke", "--set", "model.d_model=32", "--store", str(store)])
    err = capsys.readouterr().err
    assert code == 2 and "twice" in err and '"d": 8' in err and '"d": 16' in err and len(err.splitlines()) == 1
    assert not store.exists()


def test_tags_follow_the_spec_after_set(tmp_path):
    from limitlab.studies import STUDIES

    specs = STUDIES["counting"].specs("smoke", {"model.d_model": 24, "study.ds": [8], "study.ms": [5]})
    assert {s.tags["d"] for s in specs} == {24} and {s.tags["m"] for s in specs} == {5}
    assert all(s.tags["set"] == "model.d_model=24" for s in specs)
    plain = STUDIES["counting"].specs("smoke", {"study.ds": [8]})
    assert all("set" not in s.tags for s in plain)


def test_a_preset_whose_tag_contradicts_its_spec_is_refused(make_spec):
    def wrong():
        return [make_spec(d=16).model_copy(update={"tags": {"d": 8}})]

    study = Study("toy", "?", "?", {"p": wrong}, labels={"d": "model.d_model"})
    with pytest.raises(ValueError, match=r"tags run \w+ with d=8 but its model.d_model is 16"):
        study.specs("p")


def test_computed_labels_are_recomputed_after_set_and_undeclared_tags_refuse_it(make_spec):
    from limitlab.studies import STUDIES

    spec = STUDIES["scaling"].specs("laws-smoke", {"train.steps": 5})[0]
    assert spec.tags["steps"] == 5 and spec.tags["tokens"] == 5 * spec.train.batch_size * spec.task.scored_tokens

    def preset():
        return [make_spec(d=16).model_copy(update={"tags": {"n_params": 123}})]

    study = Study("toy", "?", "?", {"p": preset})
    assert study.specs("p")[0].tags == {"n_params": 123}
    with pytest.raises(ValueError, match="computes the tags n_params from the spec, and they would go stale"):
        study.specs("p", {"model.d_model": 32})


def test_a_sweep_estimated_over_an_hour_asks_first(tmp_path, capsys, monkeypatch):
    """Without a terminal it is refused in one line and nothing is registered; --yes starts it."""
    import limitlab.commands as commands

    monkeypatch.setattr(commands, "LONG_RUN_SECONDS", 1e-9)  # every sweep is "long"
    store = tmp_path / "store"
    args = ["run", "counting", "--preset", "smoke", *TINY, "--store", str(store), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not started; add --yes" in err and len(err.splitlines()) == 1
    assert RunStore(store).counts() == {}
    assert main([*args, "--yes"]) == 0


def test_progress_is_weighed_by_the_planned_cost(tmp_path, make_spec):
    """A model-step of a wide stack counts for more of the ETA than one of a narrow stack."""
    from limitlab.executors import weighed

    specs = [make_spec(m=3, d=8, steps=10), make_spec(m=3, d=64, steps=10)]
    plan = prepare(specs, RunStore(tmp_path / "s"))
    seen = []
    for stack in plan.stacks:
        weighed(lambda steps, runs, work: seen.append(work), stack)(10, 0)
    assert sum(seen) == pytest.approx(sum(s.estimate.cost_s for s in plan.stacks))
    assert max(seen) > 2 * min(seen)
