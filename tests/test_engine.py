"""The engine a new study builds on: safe stacking, task-owned vector metrics, padding masks, a task added as one
file plus one registry line and trained through the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from limitlab.cli import main
from limitlab.nn.model import ModelConfig, StackedTransformer
from limitlab.planner import plan
from limitlab.rng import StackRNG
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.studies import STUDIES
from limitlab.studies.base import Study
from limitlab.tasks import TASKS, CountingTask
from limitlab.tasks.base import TaskStack, group_sums
from limitlab.train.metrics import evaluate
from limitlab.train.trainer import StackTrainer, TrainOptions, build_model, train_runs
from tests.toy_regression import ToyRegression


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(TASKS, "toy_regression", ToyRegression)  # the one registry line


def toy_spec(width: int = 3, length: int = 8, seed: int = 0, steps: int = 40) -> RunSpec:
    return RunSpec(study="toy", task={"name": "toy_regression", "width": width, "length": length},
                   model={"d_model": 16, "n_heads": 2, "n_layers": 1, "max_len": 64}, seed=seed,
                   optim={"lr": 3e-3}, train={"steps": steps, "batch_size": 8, "eval_size": 64})


# ---- safe stacking ----------------------------------------------------------------------------------------------

def test_mixed_input_widths_are_never_stacked(toy_registered):
    narrow, wide = toy_spec(width=3), toy_spec(width=5)
    stacks = plan([narrow, wide], device="cpu")
    assert sorted(len(s) for s in stacks) == [1, 1]  # the planner splits them
    with pytest.raises(ValueError, match="width"):  # and a hand-made stack is refused, naming the field
        StackTrainer([narrow, wide])


def test_varying_fields_share_a_stack_and_pad(toy_registered):
    short, long = toy_spec(length=4), toy_spec(length=8)
    assert len(plan([short, long], device="cpu")) == 1
    batch = TaskStack([short.task, long.task]).sample(StackRNG([0, 1]), 2, 0)
    assert batch.inputs.shape == (2, 2, 8, 3)
    assert batch.valid[0, :, 4:].any().item() is False and batch.mask[0, :, 4:].any().item() is False


def test_stack_view_refuses_varying_fields_as_shared():
    stack = TaskStack([CountingTask(m=3), CountingTask(m=5)])
    assert stack.shared.kind == "qc" and stack.max("m") == 5 and stack.per_model("m").tolist() == [3, 5]
    with pytest.raises(AttributeError, match="per_model"):
        _ = stack.shared.m
    with pytest.raises(ValueError, match="kind"):
        TaskStack([CountingTask(kind="qc"), CountingTask(kind="mfc")])


def test_group_sums():
    values = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    group = torch.tensor([[0, 2, 2, 0]])
    sums, counts = group_sums(values, group)
    assert sums.tolist() == [[2.0, 0.0, 1.0]] and counts.tolist() == [[2.0, 0.0, 2.0]]


# ---- metrics ----------------------------------------------------------------------------------------------------

def test_vector_metric_and_batch_size_independence(toy_registered):
    specs = [toy_spec(length=4), toy_spec(length=8, seed=1)]
    model = build_model(specs)
    tasks = [s.task for s in specs]
    small = evaluate(model, tasks, [0, 1], 100, batch_size=16)
    large = evaluate(model, tasks, [0, 1], 100, batch_size=256)
    vec = large["test"]["error_by_position"]
    assert len(vec[0]) == 8 and len(vec[1]) == 8
    assert all(v != v for v in vec[0][4:])  # positions the short model never has: NaN, not 0
    for key in large["test"]:
        a, b = torch.tensor(small["test"][key]), torch.tensor(large["test"][key])
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7, equal_nan=True), key
    # the scalar loss is the count-weighted mean of the per-position errors
    errs = torch.tensor(vec[0][:4])
    assert large["test"]["loss"][0] == pytest.approx(errs.mean().item(), rel=1e-5)


def test_train_loss_is_the_runs_own(make_spec):
    """A run's stored training loss is its loss at its own last step, whatever its stack mates' budgets."""
    run = make_spec(seed=1, steps=10)
    alone = train_runs([run])[run.run_id]
    stacked = train_runs([run, make_spec(seed=2, steps=20), make_spec(seed=3, steps=30)])[run.run_id]
    assert stacked["train_loss"] == pytest.approx(alone["train_loss"], rel=1e-5)
    assert stacked == pytest.approx(alone, rel=1e-5)


def test_metric_records_are_not_repeated_after_a_run_finishes(tmp_path, make_spec):
    store = RunStore(tmp_path / "s")
    short, long = make_spec(seed=1, steps=20), make_spec(seed=2, steps=60)
    store.add([short, long])
    train_runs([short, long], store, TrainOptions(log_every=10))
    steps = [r["step"] for r in store.metrics(short.run_id) if "train_loss" in r]
    assert steps == [10, 20]


# ---- padding mask -----------------------------------------------------------------------------------------------

ENCODINGS = ["none", "learned", "sinusoidal", "rope", "alibi", "t5", "relative", "cope", "cope+rope"]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("position", ENCODINGS)
def test_padding_tokens_change_no_valid_output(position, causal):
    if "cope" in position and not causal:
        pytest.skip("cope is causal only (refused at construction)")
    cfg = ModelConfig(d_model=16, n_heads=2, n_layers=2, position=position, causal=causal, max_len=32)
    model = StackedTransformer(cfg, n_models=2, vocab_size=11, n_outputs=5).double()
    model.reset_parameters([0, 1])
    with torch.no_grad():  # tables that start at zero get random values, so they matter
        for name, p in model.named_parameters():
            if "table" in name:
                p.copy_(torch.randn_like(p))
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 11, (2, 3, 12), generator=gen)
    valid = torch.rand(2, 3, 12, generator=gen) > 0.35
    valid[..., 0] = True
    garbage = torch.where(valid, tokens, torch.randint(0, 11, tokens.shape, generator=gen))
    a = model(tokens, valid=valid)
    b = model(garbage, valid=valid)
    assert torch.allclose(a[valid], b[valid], atol=1e-10)
    assert not torch.allclose(model(tokens)[valid], model(garbage)[valid], atol=1e-6)  # unmasked: it would leak
    all_valid = torch.ones_like(valid)
    assert torch.allclose(model(tokens, valid=all_valid), model(tokens), atol=1e-10)
    readout = torch.tensor([5, 9, 11]).expand(2, 3, 3)  # the read-out shortcut honours the mask too
    rows = model(tokens, readout, valid=valid)
    assert torch.allclose(rows, a.gather(2, readout[..., None].expand(-1, -1, -1, 5)), atol=1e-10)


# ---- a new task through the CLI ---------------------------------------------------------------------------------

def test_new_task_trains_through_the_cli_with_a_vector_metric(tmp_path, toy_registered, monkeypatch, capsys):
    def smoke(seeds: int = 2) -> list[RunSpec]:
        return [toy_spec(length=length, seed=s, steps=120) for length in (4, 8) for s in range(seeds)]

    monkeypatch.setitem(STUDIES, "toy", Study("toy", "toy regression", "nothing", {"smoke": smoke}))
    store = tmp_path / "store"
    assert main(["run", "toy", "--preset", "smoke", "--store", str(store), "--quiet"]) == 0
    assert "done 4" in capsys.readouterr().out
    df = RunStore(store).to_dataframe("toy")
    assert len(df) == 4 and (df["status"] == "done").all()
    for length, vec in zip(df["task.length"], df["result.test/error_by_position"]):
        assert len(vec) == 8 and all(v == v for v in vec[:length])
    # trained, not a stub: the error at the last position (a mean of many inputs, variance 1/T) beats predicting 0
    last = [vec[length - 1] for length, vec in zip(df["task.length"], df["result.test/error_by_position"])]
    assert max(last) < 1.0 / 8
    result = json.loads(next((store / "runs").glob("*/result.json")).read_text())
    assert isinstance(result["test/error_by_position"], list)
