"""Every run and every report says where its numbers came from; bookkeeping does not change a run's id."""

from __future__ import annotations

import json

from limitlab.cli import main
from limitlab.provenance import code_version, read_provenance
from limitlab.store import RunStore

TINY = ["--set", "study.ds=[8]", "--set", "study.ms=[3]", "--set", 'study.tasks=["qc"]', "--set", "study.steps=5",
        "--set", 'study.variants=["base"]', "--set", "study.seeds=[0,1]"]


def test_runs_and_reports_record_their_code_and_machine(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--store", str(store), "--quiet"]) == 0
    runs = RunStore(store)
    ids = sorted(runs.to_dataframe()["run_id"])
    made = read_provenance(runs, ids[0])
    assert made["code"] == code_version() and made["machine"]["device"] == "cpu" and made["machine"]["threads"] >= 1
    assert made["machine"]["torch"] and made["finished"].endswith("+00:00")
    capsys.readouterr()
    assert main(["status", "--store", str(store)]) == 0
    assert "other code" not in capsys.readouterr().out

    older = {**made, "code": {**made["code"], "source": "0ldc0de0ldc0"}}
    (store / "runs" / ids[0] / "provenance.json").write_text(json.dumps(older))
    assert main(["status", "--store", str(store)]) == 0
    assert f"1 of 2 finished run(s) were made by other code than this limitlab ({code_version()['source']})" \
        in capsys.readouterr().out

    assert main(["run", "counting", "--preset", "smoke", *TINY, "--store", str(store), "--quiet"]) == 0
    assert "0 to train" in capsys.readouterr().out  # finished runs are skipped, whatever made them
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--store", str(store), "--quiet",
                 "--rerun-other-code"]) == 0
    assert "1 finished run(s) made by other code will train again" in capsys.readouterr().out
    assert read_provenance(RunStore(store), ids[0])["code"] == code_version()  # retrained by this code
    assert (store / "runs" / ids[0] / "result.json.reopened").exists()  # the old numbers kept aside
    (store / "runs" / ids[0] / "provenance.json").write_text(json.dumps(older))

    out = tmp_path / "report"
    assert main(["report", "counting", "--store", str(store), "--out", str(out)]) == 0
    report = json.loads((out / "provenance.json").read_text())
    assert report["code"] == code_version() and report["runs_by_code"] == {code_version()["source"]: 1,
                                                                           "0ldc0de0ldc0": 1}


def test_bookkeeping_fields_do_not_change_the_run_id(make_spec):
    plain = make_spec()
    assert make_spec(train={"eval_every": 7, "checkpoint_every": 10}).run_id == plain.run_id
    assert make_spec(train={"eval_size": 64}).run_id != plain.run_id  # the test set changes the numbers
