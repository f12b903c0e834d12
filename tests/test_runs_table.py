"""``limitlab runs`` writes a table safely (Parquet round-trips, nothing clobbered or half-written) and an empty
selection is an error, as is a report of a study the store does not hold."""

from __future__ import annotations

import pandas as pd
import pytest

from limitlab.cli import main
from limitlab.runs_table import parquet_ready
from limitlab.store import RunStore

TINY = ["--set", "study.ds=[8]", "--set", "study.ms=[3]", "--set", "study.steps=5", "--set", 'study.variants=["base"]']


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "store"
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--store", str(path), "--quiet"]) == 0
    return path


def test_parquet_round_trips(store, tmp_path):
    out = tmp_path / "runs.parquet"
    assert main(["runs", "counting", "--format", "parquet", "--out", str(out), "--store", str(store)]) == 0
    want = parquet_ready(RunStore(store).to_dataframe("counting"))
    got = pd.read_parquet(out)
    assert list(got.columns) == list(want.columns) and len(got) == len(want) == 2
    for column in want.columns:
        values = [v.tolist() if hasattr(v, "tolist") else v for v in got[column]]
        assert values == want[column].tolist(), column


@pytest.mark.parametrize("where, message", [("exists", "exists; add --force"), ("folder", "is a folder"),
                                            ("nowhere", "does not exist")])
def test_runs_out_is_never_clobbered_or_half_written(store, tmp_path, capsys, where, message):
    out = {"exists": tmp_path / "mine.csv", "folder": tmp_path, "nowhere": tmp_path / "no" / "x.csv"}[where]
    if where == "exists":
        out.write_text("my own file\n")
    assert main(["runs", "counting", "--out", str(out), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1
    if where == "exists":
        assert out.read_text() == "my own file\n"
        assert main(["runs", "counting", "--out", str(out), "--store", str(store), "--force"]) == 0
        assert out.read_text().startswith("run_id,")
    assert not list(tmp_path.glob(".*.tmp"))


def test_empty_selections_are_errors(store, tmp_path, capsys):
    assert main(["runs", "nosuchstudy", "--store", str(store)]) == 2
    assert "no runs of study 'nosuchstudy'" in capsys.readouterr().err
    out = tmp_path / "report"
    assert main(["report", "cope", "--store", str(store), "--out", str(out)]) == 2
    assert "no runs of study 'cope'" in capsys.readouterr().err and not out.exists()


def test_report_where_keeps_variants_apart(tmp_path, capsys):
    import json

    store = tmp_path / "two"
    both = [*TINY[:-2], "--set", 'study.variants=["base","bos"]']
    assert main(["run", "counting", "--preset", "smoke", *both, "--store", str(store), "--quiet"]) == 0
    out = tmp_path / "base"
    assert main(["report", "counting", "--store", str(store), "--out", str(out), "--where", "tags.variant=base"]) == 0
    assert json.loads((out / "results.json").read_text())["runs"]["total"] == 2  # of 4: base only (qc and mfc)
    assert main(["report", "counting", "--store", str(store), "--out", str(out), "--where", "tags.nope=1"]) == 2
    assert "no such column" in capsys.readouterr().err
