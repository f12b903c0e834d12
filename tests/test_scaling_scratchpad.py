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
    by_fmt = {s.task.format: s for s in specs}
    for s in specs:
        assert s.tags["tokens"] == pytest.approx(1_000_000, rel=0.01)
        assert s.tags["tokens"] == s.train.steps * s.train.batch_size * s.task.seq_len()
    assert by_fmt["scratchpad"].tags["samples"] < by_fmt["plain"].tags["samples"] == by_fmt["reverse"].tags["samples"]
    with pytest.raises(ValueError, match="format 'cot'"):
        S.scratchpad_specs([16], formats=["cot"])


def test_claim_logic():
    rows = [{"format": f, "d": 32, "exact_match": em} for f, em in (("plain", 0.2), ("reverse", 0.5),
                                                                    ("scratchpad", 0.9))]
    assert S.claim({"final": rows})["verdict"] == "agree"
    rows[2]["exact_match"] = 0.25
    assert S.claim({"final": rows})["verdict"] == "disagree"
    assert S.claim({"final": rows[:1]})["verdict"] == "not measured"


def test_smoke_preset_trains_and_reports(tmp_path):
    specs = S.smoke()
    store = RunStore(tmp_path / "store")
    store.add(specs)
    for fmt in S.FORMATS:
        train_runs([s for s in specs if s.task.format == fmt], store)
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
