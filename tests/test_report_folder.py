"""A report folder is replaced whole: never a mix of an old page and new figures, never a user's folder."""

from __future__ import annotations

import threading

import pytest

from limitlab.cli import main
from limitlab.report.folder import FolderError, check_destination, publishing


def _write(folder, tag: str) -> None:
    for name in ("a.png", "b.png", "results.json", "index.html"):
        (folder / name).write_text(tag)


def test_a_report_that_fails_mid_write_leaves_the_previous_one(tmp_path):
    out = tmp_path / "report"
    with publishing(out) as tmp:
        _write(tmp, "old")
    with pytest.raises(RuntimeError), publishing(out) as tmp:
        (tmp / "a.png").write_text("new")
        raise RuntimeError("killed while drawing b.png")
    assert {p.name: p.read_text() for p in out.iterdir() if p.suffix} == {
        "a.png": "old", "b.png": "old", "results.json": "old", "index.html": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # nothing half-written left beside it


def test_reports_written_at_once_each_land_whole(tmp_path):
    out = tmp_path / "report"
    errors = []

    def one(tag: str) -> None:
        try:
            with publishing(out) as tmp:
                _write(tmp, tag)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(str(i),)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({p.read_text() for p in out.iterdir() if p.suffix}) == 1  # one report, whole
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_a_folder_no_report_wrote_is_not_replaced(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(FolderError, match="no limitlab report wrote"):
        check_destination(mine)
    check_destination(mine, force=True)
    check_destination(tmp_path / "new")  # missing: fine
    empty = tmp_path / "empty"
    empty.mkdir()
    check_destination(empty)
    store = tmp_path / "store"
    tiny = ["--set", "study.ds=[8]", "--set", "study.ms=[3]", "--set", 'study.tasks=["qc"]', "--set", "study.steps=5",
            "--set", 'study.variants=["base"]']
    assert main(["run", "counting", "--preset", "smoke", *tiny, "--store", str(store), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", "counting", "--store", str(store), "--out", str(mine)]) == 2
    assert "no limitlab report wrote" in capsys.readouterr().err and (mine / "thesis.tex").read_text() == "precious"
    assert main(["report", "counting", "--store", str(store), "--out", str(mine), "--force"]) == 0
    assert not (mine / "thesis.tex").exists() and (mine / "index.html").exists()  # replaced whole, as asked
