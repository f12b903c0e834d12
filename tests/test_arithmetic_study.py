"""The arithmetic study: presets, and the smoke preset trained and reported end to end through the CLI."""

from __future__ import annotations

import json

import pytest

from limitlab.cli import main
from limitlab.studies import STUDIES
from limitlab.studies.arithmetic.study import PAPER_MODULI, PAPER_POSITIONS, train_name
from limitlab.tasks.arithmetic import predicted_accuracy


def test_presets_expand_to_valid_specs():
    study = STUDIES["arithmetic"]
    assert set(study.presets) == {"smoke", "quick", "paper", "beyond"}
    paper = study.specs("paper")
    assert {s.model.position for s in paper} == set(PAPER_POSITIONS)
    assert {(s.model.n_layers, s.model.n_heads, s.model.d_model) for s in paper} == {(6, 6, 384)}
    assert {s.task.modulus for s in paper} == {None, *PAPER_MODULI}
    assert {s.seed for s in paper} == {0, 1, 2} and len(paper) == len({s.run_id for s in paper})
    assert {s.train.batch_size for s in paper} == {64} and {s.optim.optimizer for s in paper} == {"adamw"}
    assert {s.task.width for s in paper} == {20}
    assert {s.task.seq_len() for s in paper if s.task.modulus is None} == {65}  # the paper: ~65 tokens
    quick = study.specs("quick")
    more = study.specs("quick", {"study.encodings": ["abacus", "rope"]})
    assert {s.tags["experiment"] for s in more} - {s.tags["experiment"] for s in quick} == {"add/D≤4/reversed"}
    assert {s.tags["experiment"] for s in quick} == {"add/D≤4", "modadd100/D12", "modadd101/D12",
                                                     "modadd11/D≤4/remainder"}
    beyond = study.specs("beyond")
    abacus = [s for s in beyond if s.model.position == "abacus"]
    assert abacus and max(abacus[0].task.test_digits) == 100 and max(abacus[0].task.train_digits) == 20
    assert train_name([4], True) == "D_ab4" and train_name([1, 2, 3, 4], False) == "D≤4"
    assert train_name([4, 5], False) == "D45"


@pytest.mark.slow
def test_smoke_trains_and_reports(tmp_path):
    store, out = tmp_path / "store", tmp_path / "report"
    assert main(["run", "arithmetic", "--preset", "smoke", "--store", str(store), "--quiet"]) == 0
    assert main(["report", "arithmetic", "--store", str(store), "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["runs"]["done"] == r["runs"]["used"] == 4
    assert (out / "index.html").exists() and all((out / f).exists() for f in r["figures"].values())
    exps = {c["experiment"] for c in r["lengths"]}
    assert exps == {"add/D≤3", "modadd100/D≤3", "modadd101/D≤3", "modadd7/D12/remainder"}
    for c in r["lengths"]:
        assert 0 <= c["mean"] <= 1
    mod = {row["p"]: row for row in r["modulus"]}
    assert mod[100]["one_over_p_prime"] == 1.0 and mod[100]["outward_predicted"] == 1.0
    assert mod[101]["one_over_p_prime"] == pytest.approx(predicted_accuracy(101, 3))
    assert mod[101]["outward_predicted"] < 0.05  # a 4..6-digit test rarely makes the truncated sum right mod 101
    assert len(r["claims"]) >= 7 and {c["verdict"] for c in r["claims"]} <= {"agree", "disagree", "not measured"}
    digits = {d["experiment"]: d for d in r["digits"]}
    assert len(digits["add/D≤3"]["accuracy"]) == 6 and len(digits["add/D≤3"]["accuracy"][0]) == 8  # n × slots
    from limitlab.store import RunStore

    runs = RunStore(store).to_dataframe("arithmetic")
    assert (runs["result.test/token_accuracy"] > 0.3).all()  # past chance (1/17) after 40 steps
