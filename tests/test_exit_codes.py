"""`limitlab run` exits with status 1 when a run of its sweep failed (also after --retry-failed, and when an earlier
failure is not retried), after the summary line that says how many failed and how to see why; 0 once all are done."""

from __future__ import annotations

import pytest

from limitlab.cli import main
from limitlab.train import trainer

TINY = ["run", "counting", "--preset", "smoke", "--set", "study.ds=[8]", "--set", "study.ms=[3]",
        "--set", 'study.tasks=["qc"]', "--set", "study.steps=20", "--set", "study.seeds=[0,1]", "--quiet"]


@pytest.fixture
def diverging(monkeypatch):
    """Every model starts with NaN in its output head, so its loss is NaN and the run fails (as a huge learning
    rate would make it, only certain)."""
    build = trainer.build_model

    def nan_head(specs, device="cpu", stack=None):
        model = build(specs, device, stack)
        model.head.weight.data.fill_(float("nan"))
        return model

    monkeypatch.setattr(trainer, "build_model", nan_head)
    return monkeypatch


def test_a_sweep_with_failed_runs_exits_1(tmp_path, capsys, diverging):
    store = ["--store", str(tmp_path / "store")]
    assert main([*TINY, *store]) == 1
    summary = capsys.readouterr().out.splitlines()[-1]
    assert "failed 2 in" in summary and "2 run(s) of this sweep failed" in summary
    assert "limitlab status --runs" in summary
    assert main([*TINY, "--retry-failed", *store]) == 1  # every run failed again
    assert "failed 2 in" in capsys.readouterr().out
    diverging.undo()
    assert main([*TINY, *store]) == 1  # not retried: the sweep still has failed runs
    assert "2 run(s) of this sweep failed" in capsys.readouterr().out
    assert main([*TINY, "--retry-failed", *store]) == 0  # trained again, and now they finish
    out = capsys.readouterr().out
    assert "failed 0 in" in out and "of this sweep failed" not in out
