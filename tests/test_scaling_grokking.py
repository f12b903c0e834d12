"""Scaling study, grokking: the modular-addition split, the existence claim on synthetic curves (agree, disagree,
inconclusive, runs outside the published regime not counted), and the smoke preset trained into a section."""

from __future__ import annotations

import doctest
from typing import Any

import torch

from limitlab.rng import TEST, StackRNG
from limitlab.studies.scaling import evals
from limitlab.studies.scaling import grokking as G
from limitlab.studies.scaling import grokking_sweep as S
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
    """Evaluation records every 100 steps: train accuracy 1 from ``memorise``, held-out 1 from ``generalise``; the
    weight norm falls from 40 to 20 as held-out accuracy rises."""
    return [{"step": s, "train/accuracy": 1.0 if s >= memorise else 0.5,
             "test/accuracy": 1.0 if generalise is not None and s >= generalise else 0.02,
             "weight_norm": 20.0 if generalise is not None and s >= generalise else 40.0}
            for s in range(100, steps + 1, 100)]


def _sweep(curves: dict[float, list[tuple[int, int | None]]]) -> Any:
    """The weight-decay claim's row for {weight decay: one (memorise, generalise) per seed}."""
    specs, records = [], {}
    for wd, per_seed in curves.items():
        for spec, c in zip(G.grokking_specs(seeds=len(per_seed), weight_decays=(wd,), steps=4000), per_seed):
            specs.append(spec)
            records[spec.run_id] = _curve(*c, steps=4000)
    section = G.EXPERIMENT.run(memory_context(specs, records))
    assert figures_on_page(section) and "grokking_delay_vs_wd.png" in section.figures
    return section.claims[1]


def test_weight_decay_claim_on_synthetic_sweeps():
    assert doctest.testmod(S).failed == 0
    faster = _sweep({0.3: [(1000, None), (900, None), (1000, 3800)], 1.0: [(1000, 3400)] * 3,
                     3.0: [(800, 1200), (700, 1400), (900, 1500)]})
    assert faster.verdict == "agree" and faster.claim.id == "scaling.grokking.weight_decay"
    assert "≥ ×4.0" in faster.ours and "wd 0.3" in faster.ours and "wd 3" in faster.ours
    slower = _sweep({0.3: [(1000, 1200), (900, 1100), (1000, 1300)], 3.0: [(800, 3200), (700, 3000), (900, 3500)]})
    assert slower.verdict == "disagree"
    # both ends censored: the bounds say nothing, so the pairs count 0 and nothing is decided
    assert _sweep({0.3: [(1000, None)] * 3, 3.0: [(800, None)] * 3}).verdict == "inconclusive"
    assert _sweep({0.3: [(1000, None)] * 2, 3.0: [(800, 1200)] * 2}).verdict == "inconclusive"  # two seeds


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
    assert figures_on_page(section) and set(section.figures) == {"grokking_curves.png", "grokking_delay_vs_wd.png"}
    records = section.results["runs"]
    assert all(r["final_norm"] > 0 for r in records)  # the weight norm is recorded with every evaluation
    assert section.claims[1].verdict == "not measured"  # one weight decay: no sweep


def _every_seed(curves: dict[float, list[tuple[int, int | None]]], lr: float = 1e-3) -> Any:
    """The every-seed claim's row for {weight decay: one (memorise, generalise) per seed}."""
    specs, records = [], {}
    for wd, per_seed in curves.items():
        for spec, c in zip(G.grokking_specs(seeds=len(per_seed), lrs=(lr,), weight_decays=(wd,), steps=5000),
                           per_seed):
            specs.append(spec)
            records[spec.run_id] = _curve(*c)
    row = G.EXPERIMENT.run(memory_context(specs, records)).claims[2]
    assert row.claim.id == "scaling.grokking.every_seed"
    return row


def test_every_seed_claim_on_synthetic_curves():
    row = _every_seed({1.0: [(1000, 3400), (1000, 2100), (900, 3300)]})
    assert row.verdict == "agree" and "3 of 3 runs" in row.ours and "wd 1" in row.ours
    assert _every_seed({1.0: [(1000, 3400), (1000, 3500), (1300, 2000)]}).verdict == "disagree"  # ×1.5: too soon
    assert _every_seed({1.0: [(1000, 3400), (1000, None), (900, 3300)]}).verdict == "disagree"  # never, in budget
    assert _every_seed({1.0: [(1000, 3400), (1000, 3500)]}).verdict == "inconclusive"  # two seeds only
    # 4 runs reach ×2 in the regime, but no one setting has 3 seeds that do: seeds of settings are not pooled
    mixed = _every_seed({1.0: [(1000, 3400), (1000, 3500), (1300, 2000)], 2.0: [(800, 2400), (900, 2000),
                                                                                  (700, 800)]})
    assert mixed.verdict == "disagree"
    # the best setting is the one judged: wd 0.3 is outside the regime and wd 2 has every seed at ≥ ×2
    best = _every_seed({0.3: [(700, None)] * 3, 1.0: [(1000, 1500)] * 3, 2.0: [(800, 2400), (900, 2000), (700, 1500)]})
    assert best.verdict == "agree" and "wd 2" in best.ours
    assert _every_seed({1.0: [(500, 600)] * 3}, lr=1e-2).verdict == "not measured"  # outside the regime
