"""Claims as data and the study contract: each test's decision at, above and below its threshold; too few seeds is
inconclusive; an experiment's declared claims always appear once; the generic report and the all-claims page
write every claim, with a link to its study page, and a study without runs names the preset that measures it."""

from __future__ import annotations

import json
import math

import pytest

from limitlab.claims import AtLeast, AtMost, Claim, Exists, Measure, Predicts, Within
from limitlab.cli import main
from limitlab.report.all_claims import write_all
from limitlab.report.schema import StudyResults, validate_results
from limitlab.report.sections import Experiment, Section
from limitlab.studies import STUDIES
from limitlab.studies.base import Study
from limitlab.studies.tasks import build_task, task_specs
from limitlab.tasks import TASKS
from tests.toy_regression import ToyRegression


def _m(low: float, high: float, n: int = 3) -> Measure:
    return Measure((low + high) / 2, low, high, n)


@pytest.mark.parametrize("test, measure, verdict", [
    (AtLeast(0.9), _m(0.92, 0.99), "agree"),
    (AtLeast(0.9), _m(0.9, 0.99), "agree"),             # at the threshold counts (not strict)
    (AtLeast(0.9, strict=True), _m(0.9, 0.99), "inconclusive"),
    (AtLeast(0.9), _m(0.5, 0.89), "disagree"),
    (AtLeast(0.9), _m(0.85, 0.95), "inconclusive"),
    (AtMost(0.1), _m(0.0, 0.09), "agree"),
    (AtMost(0.1), _m(0.11, 0.3), "disagree"),
    (AtMost(0.1), _m(0.05, 0.2), "inconclusive"),
    (Within(0.8, 1.2), _m(0.9, 1.1), "agree"),
    (Within(0.8, 1.2), _m(1.3, 1.5), "disagree"),
    (Within(0.8, 1.2), _m(0.7, 1.1), "inconclusive"),
    (Predicts(0.1), _m(-0.05, 0.08), "agree"),
    (Predicts(0.1), _m(-0.29, 0.9), "inconclusive"),    # covers, but too wide to decide
    (Predicts(0.1), _m(0.02, 0.08), "disagree"),        # the measured value is outside the interval
])
def test_each_test_decides_by_its_numbers(test, measure, verdict):
    claim = Claim("toy.c", "Toy 2024", "Table 1", "s", "the quantity", test)
    assert claim.judge(measure).verdict == verdict
    assert claim.judge(measure).row()["thresholds"] == test.thresholds()
    for number in test.thresholds().values():  # the criterion text shows the numbers the code tests
        shown = f"{100 * number:.3g}" if isinstance(test, Predicts) else f"{number:.3g}"
        assert shown in claim.criterion


def test_exists_needs_one_clean_instance():
    claim = Claim("toy.exists", "Toy", "Fig 1", "it can happen", "held-out accuracy", Exists(0.9))
    assert claim.judge(Measure.count([0.2, 0.95, 0.3])).verdict == "agree"
    assert claim.judge(Measure.count([0.2, 0.5, 0.3])).verdict == "disagree"
    assert claim.judge(Measure.count([0.95, 0.96])).verdict == "inconclusive"  # 2 runs < min_seeds
    assert "one run" in claim.criterion and "0.9" in claim.criterion


def test_too_few_seeds_and_no_data():
    claim = Claim("toy.c", "Toy", "T1", "s", "q", AtLeast(0.5), min_seeds=3)
    assert claim.judge(Measure.of([0.9, 0.95], bounds=(0, 1))).verdict == "inconclusive"
    assert claim.judge(None).verdict == "not measured"
    assert claim.judge(Measure.of([math.nan])).verdict == "not measured"
    row = claim.not_measured("no runs").row()
    assert row["verdict"] == "not measured" and "'quick' preset" in row["ours"] and row["estimate"] is None


def test_paired_measure_uses_common_seeds_only():
    m = Measure.paired({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.5, 1: 0.9, 3: 0.1})
    assert m.n == 2 and m.values == pytest.approx((0.4, -0.1))


LEARNS = Claim("toy.learns", "Toy 2024", "Table 1", "the model fits the toy task", "test loss", AtMost(10.0),
               min_seeds=2)
NEVER = Claim("toy.never", "Toy 2024", "Fig 2", "a claim no run measures", "something", AtLeast(1.0),
              preset="big")


def _analyze(ctx):
    sec = Section("main", "Main result")
    runs = sec.uses(ctx.runs)
    sec.paragraph(f"{len(runs)} runs.")
    if len(runs):
        sec.judge(LEARNS, Measure.of(runs["result.test/loss"].to_numpy(), bounds=(0, math.inf)))
    return sec


def _toy_preset(seeds: int = 2):
    return [s.model_copy(update={"study": "toy"}) for s in task_specs(build_task("toy_regression"), seeds)]


TOY = Study("toy", "does the toy learn?", "Toy et al. 2024", {"smoke": _toy_preset},
            labels={"seed": "seed", "task": "task.name"},
            experiments=(Experiment("main", "Main result", (LEARNS, NEVER), _analyze),))


def test_experiment_fills_undecided_claims_and_refuses_undeclared_ones():
    sec = TOY.experiments[0].run(type("Ctx", (), {"runs": __import__("pandas").DataFrame()})())
    assert [(r.claim.id, r.verdict) for r in sec.claims] == [("toy.learns", "not measured"),
                                                               ("toy.never", "not measured")]

    def rogue(ctx):
        s = Section("x", "x")
        s.judge(NEVER, Measure.of([1, 1, 1]))
        return s

    with pytest.raises(ValueError, match="does not declare"):
        Experiment("x", "x", (LEARNS,), rogue).run(None)
    with pytest.raises(ValueError, match="claim twice"):
        Study("t2", "q", "r", {}, experiments=(Experiment("a", "a", (LEARNS,), rogue),
                                                Experiment("b", "b", (LEARNS,), rogue)))


@pytest.fixture
def toy_store(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, "toy_regression", ToyRegression)
    monkeypatch.setitem(STUDIES, "toy", TOY)
    store = tmp_path / "store"
    assert main(["run", "toy", "--preset", "smoke", "--store", str(store), "--set", "train.steps=30",
                 "--set", "model.d_model=8", "--set", "model.n_heads=2", "--set", "model.n_layers=1", "--quiet"]) == 0
    return store


def test_generic_report_and_all_claims_page(toy_store, tmp_path):
    out = tmp_path / "toy_report"
    assert main(["report", "toy", "--store", str(toy_store), "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    validate_results(data, StudyResults)
    rows = {r["id"]: r for r in data["claims"]}
    assert rows["toy.learns"]["verdict"] == "agree" and rows["toy.learns"]["seeds"] == 2
    assert rows["toy.learns"]["came_from"] == ["custom"]  # trained with --set: no preset lists these runs
    assert rows["toy.never"]["verdict"] == "not measured" and "'big' preset" in rows["toy.never"]["ours"]
    assert data["sections"]["main"]["runs"] == 2

    index = write_all(__import__("limitlab").RunStore(toy_store), tmp_path / "all",
                      studies={"toy": TOY, "counting_like": Study(
                          "counting_like", "q", "Other 2023", {"quick": _toy_preset},
                          experiments=(Experiment("e", "E", (NEVER,), _analyze),))})
    claims = json.loads((index.parent / "claims.json").read_text())
    by = {(r["study"], r["id"]): r for r in claims["claims"]}
    assert by[("toy", "toy.learns")]["page"] == "toy/index.html#main"
    assert by[("counting_like", "toy.never")]["page"] is None
    assert "no counting_like runs in the store" in by[("counting_like", "toy.never")]["ours"]
    html = index.read_text()
    assert 'href="toy/index.html#main"' in html and ">big</td>" in html
    assert (index.parent / "toy" / "index.html").exists()
    md = (index.parent / "claims.md").read_text()
    assert "| `toy.learns` |" in md and "**agree**" in md and "**not measured**" in md


def test_report_all_from_the_command_line(toy_store, tmp_path, capsys):
    assert main(["report", "--all", "--store", str(toy_store), "--out", str(tmp_path / "all")]) == 0
    assert (tmp_path / "all" / "claims.json").exists()
    assert main(["report", "toy", "--all", "--store", str(toy_store)]) == 2
    assert "give no study" in capsys.readouterr().err
    assert main(["report", "--store", str(toy_store)]) == 2
