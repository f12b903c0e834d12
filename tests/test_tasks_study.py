"""The ``tasks`` study: any registered task trains from the command line and gets the generic report.

A task registered after import (the toy regression of tests/toy_regression.py, one registry line) is a preset with
no other change; required task fields are named in the error; the report pools seeds per distinct spec."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from limitlab.cli import main
from limitlab.report.schema import StudyResults, validate_results
from limitlab.studies import STUDIES
from limitlab.studies.tasks import report as R
from limitlab.tasks import TASKS
from tests.toy_regression import ToyRegression

TINY = ["--set", "model.d_model=8", "--set", "model.n_heads=2", "--set", "model.n_layers=1",
        "--set", "train.steps=40", "--set", "train.eval_size=64", "--set", "train.batch_size=16", "--quiet"]


class Needy(ToyRegression):
    """A toy regression whose width must be given."""

    name = "needy"
    width: int  # required: no default


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(TASKS, "toy_regression", ToyRegression)  # the one registry line
    monkeypatch.setitem(TASKS, "needy", Needy)


def test_train_any_task_from_the_command_line_and_report_it(tmp_path, toy, capsys):
    store, out = str(tmp_path / "store"), tmp_path / "report"
    run = ["run", "tasks", "--store", store, *TINY]
    assert main([*run, "--preset", "counting", "--set", "task.m=3", "--set", "study.seeds=2"]) == 0
    assert main([*run, "--preset", "counting", "--set", "task.m=3", "--set", "study.seeds=3"]) == 0  # 1 new seed
    assert "3 runs, 2 already done" in capsys.readouterr().out
    assert main([*run, "--preset", "toy_regression", "--set", "task.length=4", "--set", "study.seeds=[5,6]"]) == 0
    assert main([*run, "--preset", "needy", "--set", "task.width=2", "--set", "study.seeds=1"]) == 0
    assert main(["report", "tasks", "--store", store, "--out", str(out)]) == 0

    data = json.loads((out / "results.json").read_text())
    validate_results(data, StudyResults)
    assert data["runs"]["done"] == 6 and data["study"] == "tasks" and data["claims"] == []
    specs = data["sections"]["metrics"]["results"]["specs"]
    by_task = {e["task"]: e for e in specs}
    assert len(specs) == 3
    needy = by_task["needy"]  # required fields: no defaults to compare with, so every task field is shown
    assert needy["seeds"] == 1 and "task.width=2" in needy["settings"] and "task.length=8" in needy["settings"]
    assert math.isnan(needy["metrics"]["test/loss"]["low"] or math.nan)  # one seed: no interval
    count, toy_entry = by_task["counting"], by_task["toy_regression"]
    assert count["seeds"] == 3 and len(count["run_ids"]) == 3  # seeds pooled into one row
    assert "task.m=3" in count["settings"] and "model.d_model=8" in count["settings"]
    for name in ("test/accuracy", "ood_long/accuracy", "test/loss", "train_loss"):
        m = count["metrics"][name]
        assert m["n"] == 3 and m["low"] <= m["mean"] <= m["high"] and not m["vector"]
    acc = count["metrics"]["test/accuracy"]
    assert 0 <= acc["low"] and acc["high"] <= 1  # inside the metric's range
    assert count["metrics"]["test/loss"]["low"] >= 0
    vec = toy_entry["metrics"]["test/error_by_position"]
    assert vec["vector"] and vec["n"] == 2 and vec["low"] >= 0
    assert toy_entry["settings"].startswith("model.") and "task.length=4" in toy_entry["settings"]
    assert set(data["figures"].values()) == {"loss_counting.png", "loss_toy_regression.png", "loss_needy.png"}
    assert all((out / f).stat().st_size > 1000 for f in data["figures"].values())
    page = (out / "index.html").read_text()
    assert "test/error_by_position (mean of vector)" in page and "task.m=3" in page


def test_a_registered_task_is_a_preset_and_required_fields_are_named(toy, tmp_path, capsys):
    study = STUDIES["tasks"]
    assert set(study.presets) == set(TASKS) and "toy_regression" in study.presets
    specs = study.specs("toy_regression", {"task.width": 2, "model.d_model": 8, "study.seeds": 2})
    assert [s.seed for s in specs] == [0, 1] and all(s.task.width == 2 and s.model.d_model == 8 for s in specs)
    assert all(s.study == "tasks" and s.tags == {"task": "toy_regression", "set": "model.d_model=8, task.width=2"}
               for s in specs)  # the override is recorded beside the label
    assert study.specs("needy", {"task.width": 3})[0].task.width == 3

    store = ["--store", str(tmp_path / "store")]
    cases = [(["--preset", "needy"], "task 'needy' needs --set task.width=..."),
             (["--preset", "counting", "--set", "task.size=3"], "'counting' has no field 'size'; its fields: kind"),
             (["--preset", "counting", "--set", "task.m=1"], "invalid setting: task.m: Input should be greater"),
             (["--preset", "quick"], "unknown preset 'quick' for study 'tasks'; its presets are the registered tasks"),
             (["--preset", "counting", "--set", "task.name=flip_flop"], "choose the task with --preset")]
    for args, needle in cases:
        assert main(["run", "tasks", *args, *store]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").glob("runs/*"))


def test_every_registered_task_expands_with_its_defaults():
    for name in TASKS:
        specs = STUDIES["tasks"].specs(name)
        assert len(specs) == 3 and {s.task.name for s in specs} == {name}
        assert specs[0].model.max_len >= max(t.seq_len() for t in specs[0].task.splits().values())
    spec = STUDIES["tasks"].specs("counting", {"task.m": 80, "study.seeds": 1})[0]
    assert spec.model.max_len >= max(t.seq_len() for t in spec.task.splits().values()) > 512


def test_studies_lists_the_tasks_as_presets(toy, capsys):
    assert main(["studies"]) == 0
    out = capsys.readouterr().out
    listing = out[out.index("\ntasks "):]
    assert "--preset toy_regression" in listing and "--preset counting" in listing
    assert "``" not in listing


def test_summary_pools_seeds_and_keeps_intervals_in_range():
    rows = [{"run_id": f"r{i}", "status": "done", "seed": i, "study": "tasks", "task.name": "counting",
             "task.m": 3, "model.d_model": 8, "tags.task": "counting", "result.train_loss": 1.0 + i,
             "result.test/accuracy": acc, "result.test/accuracy_by_len": [acc, None, 1.0], "result.test/score": -1.0}
            for i, acc in enumerate([0.98, 1.0, 0.99])]
    rows.append({**rows[0], "run_id": "other", "model.d_model": 16})
    entries = R.summarize(pd.DataFrame(rows))
    assert [e["seeds"] for e in entries] == [3, 1]
    m = entries[0]["metrics"]
    assert m["test/accuracy"]["high"] == 1.0 and m["test/accuracy"]["clipped"]
    assert m["test/accuracy_by_len"]["vector"] and m["test/accuracy_by_len"]["mean"] == pytest.approx(0.995)
    assert m["test/score"]["mean"] == -1.0 and math.isnan(entries[1]["metrics"]["test/accuracy"]["low"])
    assert R.metric_bounds("test/edit_distance") == (0.0, math.inf)
