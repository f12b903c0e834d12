"""The stacked trainer: independence of stack mates, optimizer maths, schedules, NaN freezing."""

from __future__ import annotations

import math

import pytest
import torch

from limitlab.spec import OptimConfig
from limitlab.train.optim import StackedAdam
from limitlab.train.trainer import StackTrainer, TrainOptions, train_runs


def _close(a: dict, b: dict, tol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=tol, rel=tol), key


def test_run_in_a_stack_equals_run_alone(make_spec):
    """Seeds, data streams and learning rates are per model: stack mates do not change a run's result."""
    alone = make_spec(m=4, seed=1, optim={"lr": 2e-3})
    mates = [make_spec(m=4, seed=7, optim={"lr": 5e-3, "schedule": "cosine", "warmup_steps": 10}), alone,
             make_spec(m=4, seed=3, steps=30, optim={"optimizer": "adamw", "weight_decay": 0.1})]
    solo = train_runs([alone])[alone.run_id]
    stacked = train_runs(mates)
    _close(solo, stacked[alone.run_id])
    assert stacked[mates[2].run_id]["step"] == 30  # a shorter budget stops early, its mates carry on


def test_training_beats_chance(make_spec):
    """A few hundred steps on QC with m=3 clearly beat always answering the most common count."""
    spec = make_spec(m=3, steps=400, model={"causal": True})
    result = train_runs([spec])[spec.run_id]
    counts = torch.distributions.Binomial(spec.task.length - 1, torch.tensor(1 / 3))
    chance = counts.log_prob(torch.arange(spec.task.length).float()).exp().max().item()
    assert result["test/accuracy"] > chance + 0.2


def test_nan_model_is_frozen_and_siblings_finish(make_spec):
    specs = [make_spec(seed=0), make_spec(seed=1), make_spec(seed=2)]
    reference = train_runs([specs[0], specs[2]])
    trainer = StackTrainer(specs, None, TrainOptions(log_every=10))
    with torch.no_grad():
        trainer.model.head.weight[1].fill_(float("nan"))
    results = trainer.run()
    assert specs[1].run_id not in results and 1 in trainer.failed
    assert "non-finite" in trainer.failed[1]
    _close(results[specs[0].run_id], reference[specs[0].run_id])
    _close(results[specs[2].run_id], reference[specs[2].run_id])


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_stacked_adam_matches_torch(kind):
    """With M=1 the stacked optimizer takes exactly torch.optim's steps."""
    torch.manual_seed(0)
    w = torch.randn(1, 5, 3, dtype=torch.float64)
    ours, ref = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w[0].clone())
    cfg = OptimConfig(optimizer=kind, lr=0.05, weight_decay=0.1, beta1=0.8, beta2=0.99, eps=1e-6)
    opt = StackedAdam([ours], [cfg], [100])
    torch_cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    ref_opt = torch_cls([ref], lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    for step in range(5):
        grad = torch.randn(5, 3, dtype=torch.float64)
        ours.grad, ref.grad = grad[None].clone(), grad.clone()
        opt.step(torch.tensor([True]), torch.tensor([step]))
        ref_opt.step()
        assert torch.allclose(ours[0], ref, atol=1e-10)


def test_inactive_model_is_untouched():
    p = torch.nn.Parameter(torch.ones(2, 4))
    opt = StackedAdam([p], [OptimConfig(lr=0.1)] * 2, [10, 10])
    p.grad = torch.stack([torch.ones(4), torch.full((4,), float("nan"))])
    opt.step(torch.tensor([True, False]), torch.tensor([0, 0]))
    assert torch.all(p[1] == 1) and torch.all(p[0] < 1)
    assert torch.all(opt.exp_avg[0][1] == 0) and opt.t.tolist() == [1.0, 0.0]


def test_gradient_clipping_is_per_model():
    p = torch.nn.Parameter(torch.zeros(2, 3))
    opt = StackedAdam([p], [OptimConfig(lr=1.0, grad_clip=1.0, beta1=0.0)] * 2, [10, 10])
    p.grad = torch.tensor([[30.0, 40.0, 0.0], [0.3, 0.4, 0.0]])
    norms = opt.step(torch.tensor([True, True]), torch.tensor([0, 0]))
    assert norms.tolist() == pytest.approx([50.0, 0.5])
    assert opt.exp_avg[0][0].tolist() == pytest.approx([0.6, 0.8, 0.0], abs=1e-5)  # clipped to norm 1
    assert opt.exp_avg[0][1].tolist() == pytest.approx([0.3, 0.4, 0.0], abs=1e-6)  # under the limit: as is


def test_warmup_cosine_schedule_closed_form():
    cfg = OptimConfig(lr=1.0, schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    opt = StackedAdam([torch.nn.Parameter(torch.zeros(1, 1))], [cfg], [110])
    lr = lambda s: opt.lr_at(torch.tensor([s])).item()  # noqa: E731
    assert lr(0) == pytest.approx(0.1) and lr(9) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr(110) == pytest.approx(0.1)


def test_stacked_equals_alone_in_float64_over_a_long_run(make_spec):
    """In float32 a stacked run matches its solo twin only to rounding (which can flip one test sequence after
    ~1,500 steps); in float64 the rounding differences stay far below anything a metric can see."""
    alone = make_spec(m=3, d=8, seed=4, steps=800)
    mates = [make_spec(m=3, d=8, seed=5, steps=500), alone, make_spec(m=4, d=8, seed=6, steps=800)]
    options = TrainOptions(float64=True, chunk_models=3)
    solo = train_runs([alone], options=options)[alone.run_id]
    stacked = train_runs(mates, options=options)[alone.run_id]
    assert stacked["test/accuracy"] == solo["test/accuracy"]
    _close(solo, stacked, tol=1e-9)
