"""Scaling study, time to think: equal-compute specs per format, the claim's logic, and the smoke preset trained
end to end into a report section."""

from __future__ import annotations

import pytest

from limitlab.report.html import Page
from limitlab.store import RunStore
from limitlab.studies.scaling import scratchpad as S
from limitlab.studies.scaling.report import runs_by_experiment
from limitlab.train.trainer import train_runs


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


def test_claim_logic():
    final = [{"format": f, "d": d, "exact_match": em} for f, d, em in
             (("plain", 16, 0.0), ("scratchpad", 16, 0.0), ("plain", 32, 1.0), ("scratchpad", 32, 1.0))]
    reach = [{"format": "plain", "d": 16, "tokens_to_0.5": float("nan")},
             {"format": "scratchpad", "d": 16, "tokens_to_0.5": float("nan")},
             {"format": "plain", "d": 32, "tokens_to_0.5": 1.0e6}, {"format": "scratchpad", "d": 32,
                                                                    "tokens_to_0.5": 0.7e6}]
    assert S.claim({"final": final, "samples_to_half": reach})["verdict"] == "agree"
    reach[3]["tokens_to_0.5"] = 0.9e6  # no more tokens, but not clearly fewer: not better anywhere
    assert S.claim({"final": final, "samples_to_half": reach})["verdict"] == "disagree"
    reach[3]["tokens_to_0.5"] = float("nan")  # plain gets there, the scratchpad never does
    assert S.claim({"final": final, "samples_to_half": reach})["verdict"] == "disagree"
    assert S.claim({"final": final[:1]})["verdict"] == "not measured"


def test_smoke_preset_trains_and_reports(tmp_path):
    specs = S.smoke()
    store = RunStore(tmp_path / "store")
    store.add(specs)
    for fmt in S.FORMATS:
        train_runs([s for s in specs if s.tags["format"] == fmt], store)
    page = Page("scaling")
    out, figures, claims, render = S.report_section(runs_by_experiment(store)["scratchpad"], tmp_path / "out")
    render(page)
    final = out["final"]
    assert sorted(r["format"] for r in final) == sorted(S.FORMATS)
    assert all(0 <= r["exact_match"] <= r["token_accuracy"] <= 1 for r in final)
    assert (tmp_path / "out" / figures["exact_match"]).exists() and "scratchpad" in page.render()
    assert claims[0]["verdict"] in ("agree", "disagree")
    curve = S.curves(specs, {s.run_id: store.metrics(s.run_id) for s in specs})
    assert set(curve["format"]) == set(S.FORMATS) and (curve.groupby("run_id").size() >= 2).all()
