"""The ray executor on a local Ray instance (CPU): same results as local, finished runs skipped on relaunch."""

from __future__ import annotations

import pytest

from limitlab.executors import run_local
from limitlab.planner import Stack
from limitlab.ray_executor import gpu_fraction, run_ray, train_stack
from limitlab.store import RunStore
from limitlab.train.trainer import TrainOptions


def _specs(make_spec):
    # two stacks: d=8 runs (different lengths, padded together or not) and a d=16 run
    return [make_spec(m=3, d=8, seed=0, steps=30), make_spec(m=3, d=8, seed=1, steps=30),
            make_spec(m=3, d=16, seed=0, steps=30)]


def test_train_stack_claims_and_skips(tmp_path, make_spec):
    """The task body without Ray: trains what it claims, skips what is done."""
    specs = _specs(make_spec)[:2]
    store = RunStore(tmp_path / "store")
    store.add(specs)
    payload = [s.model_dump_json() for s in specs]
    assert train_stack(payload, str(tmp_path / "store"), {"device": "cpu"}) == {"trained": 2, "skipped": 0,
                                                                                 "failed": 0}
    assert train_stack(payload, str(tmp_path / "store"), {"device": "cpu"})["skipped"] == 2


def test_gpu_fraction():
    def stack(memory: float) -> Stack:
        return Stack([], 1, 1, 1, 1, 1, memory, 1.0, 1.0)

    assert gpu_fraction(stack(1e9), 80e9) == 0.125
    assert gpu_fraction(stack(30e9), 80e9) == 0.5
    assert gpu_fraction(stack(70e9), 80e9) == 1.0


@pytest.mark.slow
def test_ray_trains_like_local_and_resumes(tmp_path, make_spec):
    ray = pytest.importorskip("ray")
    specs = _specs(make_spec)
    local_store = RunStore(tmp_path / "local")
    run_local(specs, local_store, TrainOptions())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        path = str(tmp_path / "ray")
        assert run_ray(specs, path, TrainOptions()) == {"trained": 3, "skipped": 0, "failed": 0}
        store = RunStore(path)
        assert store.status_of([s.run_id for s in specs]) == {s.run_id: "done" for s in specs}
        for spec in specs:  # same stacks, same seeds -> same numbers as the local executor
            ours, theirs = store.result(spec.run_id), local_store.result(spec.run_id)
            assert ours["step"] == theirs["step"] == 30
            assert ours["test/loss"] == pytest.approx(theirs["test/loss"], abs=1e-4)
        # a relaunched sweep (one new run) trains only what is missing
        extra = make_spec(m=4, d=8, seed=5, steps=30)
        assert run_ray([*specs, extra], path, TrainOptions()) == {"trained": 1, "skipped": 3, "failed": 0}
    finally:
        ray.shutdown()
