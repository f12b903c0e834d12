"""Scaling study, time to think: equal-compute specs per format, the three paired claims on synthetic curves
(agree, disagree, inconclusive), and the smoke preset trained into a section."""

from __future__ import annotations

import doctest

import pytest

from limitlab.studies.scaling import scratchpad as S
from tests.scaling_contexts import figures_on_page, memory_context, trained_context


def test_equal_tokens_fewer_samples_for_longer_formats():
    specs = S.scratchpad_specs([16, 32], digits=3, token_budget=1_000_000, seeds=2)
    assert len(specs) == 3 * 2 * 2 and all(s.tags["experiment"] == "scratchpad" for s in specs)
    by_fmt = {s.tags["format"]: s for s in specs}
    assert {f: s.task.format for f, s in by_fmt.items()} == {"plain": "plain", "reverse": "fixed",
                                                           "scratchpad": "detailed"}
    for s in specs:
        assert s.tags["tokens"] == pytest.approx(1_000_000, rel=0.01)
        assert s.tags["tokens"] == s.train.steps * s.train.batch_size * s.task.seq_len()
    assert by_fmt["scratchpad"].tags["samples"] < by_fmt["plain"].tags["samples"] == by_fmt["reverse"].tags["samples"]
    with pytest.raises(ValueError, match="format 'cot'"):
        S.scratchpad_specs([16], formats=["cot"])


def _verdicts(reach: dict[str, list[float | None]]) -> dict[str, str]:
    """Exact match rises linearly from 0 to 1 over ``reach[format][seed]`` samples (None: stays at 0.1)."""
    specs = S.scratchpad_specs([32], digits=3, token_budget=1_000_000, seeds=len(reach["plain"]), n_evals=20)
    records = {}
    for s in specs:
        end, batch = reach[s.tags["format"]][s.seed], s.train.batch_size
        every = s.train.eval_every
        records[s.run_id] = [{"step": k, "test/accuracy": 0.1 if end is None else min(1.0, k * batch / end),
                              "test/token_accuracy": 0.5} for k in range(every, s.train.steps + 1, every)]
    section = S.EXPERIMENT.run(memory_context(specs, records))
    assert figures_on_page(section)
    return {r.claim.id.rsplit(".", 1)[1]: r.verdict for r in section.claims}


def test_claims_on_synthetic_curves():
    assert doctest.testmod(S).failed == 0
    lee = _verdicts({"plain": [60_000, 70_000, 65_000], "reverse": [30_000, 35_000, 32_000],
                     "scratchpad": [10_000, 12_000, 11_000]})
    assert lee == {"samples": "agree", "compute": "agree", "reverse": "agree"}  # 25 vs 11 tokens a sample
    costly = _verdicts({"plain": [30_000, 35_000, 32_000], "reverse": [60_000, 70_000, 65_000],
                        "scratchpad": [20_000, 25_000, 22_000]})  # fewer samples, but more tokens than plain
    assert costly == {"samples": "agree", "compute": "disagree", "reverse": "disagree"}
    noisy = _verdicts({"plain": [30_000, 60_000, 20_000], "reverse": [30_000, 60_000, 20_000],
                       "scratchpad": [20_000, 70_000, 19_000]})
    assert noisy["samples"] == "inconclusive"
    never = _verdicts({"plain": [None] * 3, "reverse": [None] * 3, "scratchpad": [None] * 3})
    assert set(never.values()) == {"not measured"}  # no run reached the level: no pair to compare


def test_smoke_preset_trains_into_a_section(tmp_path):
    specs = S.smoke()
    section = S.EXPERIMENT.run(trained_context(specs, tmp_path / "store"))
    runs = section.results["runs"]
    assert sorted(r["format"] for r in runs) == sorted(S.FORMATS * 3)
    assert all(0 <= r["final_exact_match"] <= 1 for r in runs)
    assert figures_on_page(section) and set(section.figures) == {"scratchpad_exact_match.png"}
    assert [r.claim for r in section.claims] == list(S.CLAIMS)
