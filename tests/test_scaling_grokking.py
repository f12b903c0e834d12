"""Scaling study, grokking: the modular-addition split, the existence claim on synthetic curves (agree, disagree,
inconclusive, runs outside the published regime not counted), and the smoke preset trained into a section."""

from __future__ import annotations

import doctest

import torch

from limitlab.rng import TEST, StackRNG
from limitlab.studies.scaling import evals
from limitlab.studies.scaling import grokking as G
from limitlab.tasks.base import TaskStack
from limitlab.tasks.modular_addition import ModularAdditionTask, split_order
from tests.scaling_contexts import figures_on_page, memory_context, trained_context


def test_modular_addition_split_is_fixed_and_disjoint():
    task = ModularAdditionTask(p=11, train_fraction=0.3)
    order = split_order(torch.tensor([5, 6]), 11)
    assert sorted(order[0].tolist()) == list(range(121)) and not torch.equal(order[0], order[1])
    train_ids = set(order[0, : task.n_train].tolist())
    assert task.n_train == 36
    stack = TaskStack([task])
    seen_train, seen_test = set(), set()
    for step in range(30):
        for rng, split, seen in ((StackRNG([5]), "train", seen_train), (StackRNG([5], TEST), "test", seen_test)):
            b = stack.split(split).sample(rng, 64, step)
            a, c = b.inputs[0, :, 0], b.inputs[0, :, 1]
            assert torch.equal(b.targets[0, :, 0], (a + c) % 11) and (b.inputs[0, :, 2] == 11).all()
            seen |= set((a * 11 + c).tolist())
    assert seen_train == train_ids  # the training split is exactly the trained-on set, whatever the stream
    assert not seen_test & train_ids and len(seen_test) > 60
    assert set(task.splits()) == {"test", "train"}


def _curve(memorise: int, generalise: int | None, steps: int = 5000) -> list[dict]:
    """Evaluation records every 100 steps: train accuracy 1 from ``memorise``, held-out 1 from ``generalise``."""
    return [{"step": s, "train/accuracy": 1.0 if s >= memorise else 0.5,
             "test/accuracy": 1.0 if generalise is not None and s >= generalise else 0.02}
            for s in range(100, steps + 1, 100)]


def _verdict(curves: list[tuple[int, int | None]], lr: float = 1e-3) -> tuple[str, str]:
    specs = G.grokking_specs(seeds=len(curves), lrs=(lr,), steps=5000)
    section = G.EXPERIMENT.run(memory_context(specs, {s.run_id: _curve(*c) for s, c in zip(specs, curves)}))
    row = section.claims[0]
    return row.verdict, row.ours


def test_claim_on_synthetic_curves():
    assert doctest.testmod(G).failed == 0 and doctest.testmod(evals).failed == 0
    verdict, ours = _verdict([(1000, 3400), (1000, 3500), (900, 3300)])
    assert verdict == "agree" and "3 of 3 runs" in ours and "×3.4" in ours
    assert _verdict([(1000, 1200), (1000, 1500), (900, None)])[0] == "disagree"  # together, or never
    assert _verdict([(1000, 3400), (1000, 3500)])[0] == "inconclusive"  # two runs: fewer than the claim needs
    assert _verdict([(500, 600)] * 3, lr=1e-2)[0] == "not measured"  # outside the published regime: not counted


def test_runs_outside_the_regime_are_shown_not_counted():
    inside = G.grokking_specs(seeds=3, lrs=(1e-3,), steps=5000)
    outside = G.grokking_specs(seeds=3, lrs=(1e-2,), steps=5000)
    records = {s.run_id: _curve(1000, 3400) for s in inside} | {s.run_id: _curve(300, 400) for s in outside}
    section = G.EXPERIMENT.run(memory_context(inside + outside, records))
    assert section.claims[0].verdict == "agree" and section.claims[0].measure.n == 3
    assert sum(not r["regime"] for r in section.results["runs"]) == 3 and figures_on_page(section)


def test_smoke_preset_trains_into_a_section(tmp_path):
    specs = G.smoke()
    assert len({s.seed for s in specs}) == 3 and all(s.tags["experiment"] == "grokking" for s in specs)
    section = G.EXPERIMENT.run(trained_context(specs, tmp_path / "store"))
    assert section.results["runs"] and all(r["steps"] == 120 for r in section.results["runs"])
    assert section.claims[0].verdict == "not measured"  # p = 7 is not the published regime
    assert figures_on_page(section) and set(section.figures) == {"grokking_curves.png"}
