"""The planner: grouping, padding decisions, memory caps — and padding that does not change a run's result."""

from __future__ import annotations

import pytest
import torch

from limitlab.costs import model_bytes
from limitlab.planner import DeviceProfile, plan, plan_stacks
from limitlab.train.trainer import StackTrainer, TrainOptions, build_model, train_runs

CPU = DeviceProfile("cpu", memory_bytes=8e9, step_overhead_s=5e-3, flops_per_s=2e10, bytes_per_s=1e10)


def _close(a: dict, b: dict, tol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=tol, rel=tol), key


# --- padding is exact --------------------------------------------------------------------------------------------

def test_vocab_padded_run_equals_run_alone(make_spec):
    """A run inside a stack padded to a larger vocabulary and more output classes ends with the same metrics."""
    alone = make_spec(m=4, seed=1, steps=40, task={"n": 16})
    bigger = make_spec(m=9, seed=2, steps=40, task={"n": 16, "max_count": 30})  # V 12 vs 7, classes 31 vs 17
    solo = train_runs([alone])[alone.run_id]
    trainer = StackTrainer([bigger, alone], None, TrainOptions(chunk_models=2))  # one plain stacked step
    assert trainer.model.vocab_size == 12 and trainer.model.n_outputs == 31
    _close(trainer.run()[alone.run_id], solo, 1e-5)


def test_length_padded_run_equals_run_alone(make_spec):
    """A causal run right-padded to a longer sequence (and larger vocabulary) inside a stack: same metrics."""
    alone = make_spec(m=4, seed=1, steps=40)  # n = 16
    longer = make_spec(m=7, seed=3, steps=40)  # n = 28, vocabulary 10
    solo = train_runs([alone])[alone.run_id]
    stacked = StackTrainer([alone, longer], None, TrainOptions(chunk_models=2)).run()
    _close(stacked[alone.run_id], solo, 1e-4)


def test_padded_logits_are_masked(make_spec):
    model = build_model([make_spec(m=4, seed=0), make_spec(m=9, seed=1, task={"n": 16, "max_count": 30})])
    inputs = torch.randint(0, 7, (2, 3, 16))
    logits = model(inputs, torch.full((2, 3, 1), 15))
    assert torch.isinf(logits[1, ..., 17:]).sum() == 0 and torch.isneginf(logits[0, ..., 17:]).all()
    assert model.embed.weight[0, 7:].abs().sum() == 0  # unused embedding rows stay zero


# --- grouping ----------------------------------------------------------------------------------------------------

def test_runs_that_cannot_share_are_split(make_spec):
    a, b = make_spec(seed=0), make_spec(seed=1)
    other_d = make_spec(seed=0, d=32)
    bidir = [make_spec(seed=0, m=4, model={"causal": False}), make_spec(seed=0, m=5, model={"causal": False})]
    stacks = plan([a, other_d, b, *bidir], profile=CPU)
    assert [len(s) for s in stacks] == [2, 1, 1, 1]  # bidirectional runs never pad their length
    assert stacks[0] == [a, b]


def test_duplicates_train_once_and_order_is_stable(make_spec):
    specs = [make_spec(seed=s) for s in range(5)]
    stacks = plan(specs + specs[:2], profile=CPU)
    assert stacks == [specs]


def test_max_models_splits_into_equal_chunks(make_spec):
    specs = [make_spec(seed=s) for s in range(10)]
    stacks = plan(specs, max_models=4, profile=CPU)
    assert sorted(len(s) for s in stacks) == [3, 3, 4]
    assert sorted(r.seed for s in stacks for r in s) == list(range(10))


def test_padding_only_where_cheap(make_spec):
    """Cheap (launch-bound) runs of different lengths share a stack; expensive ones split by length."""
    short = [make_spec(m=3, seed=s) for s in range(3)]
    long = [make_spec(m=30, seed=s) for s in range(3)]
    launch_bound = DeviceProfile("gpu", 80e9, step_overhead_s=1e-2, flops_per_s=1e15, bytes_per_s=1e13)
    compute_bound = DeviceProfile("slow", 80e9, step_overhead_s=1e-6, flops_per_s=1e9, bytes_per_s=1e9)
    assert len(plan(short + long, profile=launch_bound)) == 1
    stacks = plan_stacks(short + long, profile=compute_bound)
    assert len(stacks) == 2 and all(s.padding_waste == 0 for s in stacks)
    merged = plan_stacks(short + long, profile=launch_bound)[0]
    assert merged.seq_len == 120 and 0.3 < merged.padding_waste < 1


def test_memory_budget_caps_stacks(make_spec):
    specs = [make_spec(seed=s, m=20) for s in range(8)]
    per_model = model_bytes(specs[0])
    stacks = plan_stacks(specs, profile=CPU, memory_budget=3.5 * per_model)
    assert [len(s.specs) for s in stacks] == [3, 3, 2]
    assert all(s.memory <= 3.5 * per_model for s in stacks)
    with pytest.raises(ValueError, match="memory budget"):
        plan(specs, profile=CPU, memory_budget=0.5 * per_model)


