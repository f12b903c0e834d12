"""Read-only stores and the store's integrity: read commands never write, a store shared read-only can be read and
reported, an edited spec.json is never adopted, and a finished run always has its spec."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

import limitlab
from limitlab.cli import main
from limitlab.store import RunStore, StoreError
from limitlab.store_files import StoreWarning
from tests.test_store import make_specs

TINY = ["run", "counting", "--preset", "smoke", "--set", "study.ds=[8]", "--set", "study.ms=[3]",
        "--set", 'study.tasks=["qc"]', "--set", "study.steps=30", "--quiet"]
SRC = Path(limitlab.__file__).resolve().parents[1]  # the limitlab under test, for the commands run as another user


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A store with one finished tiny run (closed: no WAL file beside the index)."""
    store = tmp_path_factory.mktemp("finished") / "store"
    assert main([*TINY, "--store", str(store)]) == 0
    gc.collect()  # the command's store is closed, as when its process ends: SQLite folds the WAL into the index
    assert not (store / "index.sqlite-wal").exists()
    return store


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (folders included) with its kind, size and modification time."""
    out = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return out


def read_commands(store: Path, out: Path, run_id: str) -> list[list[str]]:
    s = ["--store", str(store)]
    return [["status", *s], ["status", "--runs", *s], ["runs", *s], ["runs", "counting", "--format", "json", *s],
            ["plan", "counting", "--preset", "smoke", *s], ["report", "counting", *s, "--out", str(out / "report")],
            ["export", run_id, *s, "--out", str(out / "export")]]


def test_read_commands_change_nothing_in_a_store(finished, tmp_path, capsys):
    store = shutil.copytree(finished, tmp_path / "store")
    (run_id,) = [p.name for p in (store / "runs").iterdir()]
    before = snapshot(store)
    for argv in read_commands(store, tmp_path, run_id):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == (2 if argv[0] == "export" else 0), (argv, err)  # export: the run has no saved weights
        assert snapshot(store) == before, argv  # no file, folder, WAL or probe created; no mtime changed
    assert (tmp_path / "report" / "index.html").exists() and not (tmp_path / "export").exists()


@pytest.mark.parametrize("where", ["empty", "missing", "file"])
def test_read_commands_on_a_folder_without_a_store_create_nothing(tmp_path, capsys, where):
    path = tmp_path / "x"
    if where == "empty":
        path.mkdir()
    elif where == "file":
        path.write_text("not a store")
    before = snapshot(tmp_path)
    for argv in read_commands(path, tmp_path / "out", "0123456789abcdef"):
        code = main(argv)
        err = capsys.readouterr().err
        if argv[0] == "plan":  # plans as for an empty store
            assert code == 0, err
            continue
        assert code == 2 and err.count("\n") == 1 and "no store at" in err, (argv, err)
    assert snapshot(tmp_path) == before


def test_read_only_store_repairs_in_memory_and_refuses_writes(finished, tmp_path):
    store = shutil.copytree(finished, tmp_path / "store")
    (run_id,) = [p.name for p in (store / "runs").iterdir()]
    (store / "runs" / run_id / "result.json").write_text("{torn")
    before = snapshot(store)
    with pytest.warns(StoreWarning, match=run_id):
        ro = RunStore.open_readonly(store)
    assert ro.status_of([run_id]) == {run_id: "damaged"} and ro.damaged() == {run_id: "result.json missing or "
                                                                                       "unreadable"}
    for write in (lambda: ro.add(make_specs(1, start=50)), lambda: ro.claim([run_id]), lambda: ro.fail(run_id, "x"),
                  lambda: ro.finish(run_id, {"a": 1}), lambda: ro.append_metrics(run_id, [{"step": 1}]),
                  lambda: ro.release([run_id])):
        with pytest.raises(StoreError, match="read-only"):
            write()
    ro.close()
    assert snapshot(store) == before
    with sqlite3.connect(f"file:{store / 'index.sqlite'}?immutable=1", uri=True) as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("done",)]  # the file still says done
    with pytest.raises(StoreError, match="no store at"):
        RunStore.open_readonly(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_read_only_open_reads_a_live_index_and_its_wal(tmp_path):
    """A store being written (its rows still in index.sqlite-wal) is read whole; a copy of one whose -shm is gone
    and cannot be made (a directory stands in its place) too."""
    writer = RunStore(tmp_path / "store")
    ids = writer.add(make_specs(3))
    writer.claim(ids[:1])
    writer.finish(ids[0], {"accuracy": 1.0})
    assert (tmp_path / "store" / "index.sqlite-wal").stat().st_size > 0
    assert RunStore.open_readonly(tmp_path / "store").counts()["counting"]["done"] == 1
    copy = shutil.copytree(tmp_path / "store", tmp_path / "copy")
    (copy / "index.sqlite-shm").unlink()
    (copy / "index.sqlite-shm").mkdir()
    before = snapshot(copy)
    assert RunStore.open_readonly(copy).status_of(ids) == {ids[0]: "done", ids[1]: "pending", ids[2]: "pending"}
    assert snapshot(copy) == before
    writer.close()


def _as_another_user(argv: list[str], cwd: Path) -> subprocess.CompletedProcess | None:
    """Run ``limitlab argv`` as a user who may not write the store (as root: 'nobody', via setpriv); None if that
    cannot be arranged here."""
    cmd = [sys.executable, "-m", "limitlab.cli", *argv]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            return None
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOME": str(cwd), "MPLCONFIGDIR": str(cwd / ".mpl")}
    probe = subprocess.run([*cmd[:-len(argv) - 2], "-c", "import limitlab.cli"], cwd=cwd, env=env,
                           capture_output=True)
    if probe.returncode != 0:
        return None  # that user cannot read this checkout or interpreter
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("live", [False, True], ids=["closed", "wal"])
def test_a_store_shared_read_only_can_be_read_and_reported(finished, live):
    """``chmod -R a-w`` on the store (closed cleanly, or copied while a writer had rows in its WAL and no -shm):
    status, runs and report read it as a user who cannot write there; nothing in it changes."""
    base = Path(tempfile.mkdtemp(prefix="limitlab-shared-"))
    try:
        os.chmod(base, 0o777)
        store = base / "store"
        if live:
            writer = RunStore(shutil.copytree(finished, base / "w"))
            writer.add(make_specs(1, start=7))  # a row only in the WAL while the writer is open
            shutil.copytree(base / "w", store)
            writer.close()
            (store / "index.sqlite-shm").unlink(missing_ok=True)
            assert (store / "index.sqlite-wal").stat().st_size > 0
        else:
            shutil.copytree(finished, store)
        for path in [*store.rglob("*"), store]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        before = snapshot(store)
        result = _as_another_user(["status", "--store", str(store)], base)
        if result is None:
            pytest.skip("cannot run a command as a user without write access here")
        assert result.returncode == 0, result.stderr
        assert "counting" in result.stdout and "Traceback" not in result.stderr
        out = base / "report"
        report = _as_another_user(["report", "counting", "--store", str(store), "--out", str(out)], base)
        assert report.returncode == 0, report.stderr
        assert (out / "index.html").exists()
        runs = _as_another_user(["runs", "--store", str(store), "--format", "json"], base)
        assert runs.returncode == 0, runs.stderr
        assert len(json.loads(runs.stdout)) == 1 + live
        assert snapshot(store) == before
    finally:
        for path in base.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(base)


def test_an_edited_spec_is_never_adopted_when_the_index_is_lost(tmp_path):
    store = RunStore(tmp_path / "store")
    specs = make_specs(2)
    ids = store.add(specs)
    store.claim(ids)
    store.finish(ids[0], {"accuracy": 1.0})
    store.close()
    edited = tmp_path / "store" / "runs" / ids[0] / "spec.json"
    data = json.loads(edited.read_text())
    data["seed"] = 99  # hashes to another run id now
    edited.write_text(json.dumps(data))
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (tmp_path / "store" / name).unlink(missing_ok=True)
    before = snapshot(tmp_path / "store" / "runs" / ids[0])
    for opened in (RunStore.open_readonly, RunStore):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reopened = opened(tmp_path / "store")
        refusals = [str(w.message) for w in caught if "does not hash" in str(w.message)]
        assert len(refusals) == 1 and ids[0] in refusals[0]
        assert reopened.status_of([ids[0], ids[1], specs[0].model_copy(update={"seed": 99}).run_id]) == \
            {ids[1]: "pending"}  # the edited folder is neither adopted nor added as a new run
        reopened.close()
    assert snapshot(tmp_path / "store" / "runs" / ids[0]) == before  # left as it was


def test_finishing_a_run_whose_folder_was_deleted_writes_its_spec_back(tmp_path):
    store = RunStore(tmp_path / "store")
    spec = make_specs(1)[0]
    (run_id,) = store.add([spec])
    store.claim([run_id])
    shutil.rmtree(store.runs_dir / run_id)  # deleted while it trains
    store.append_metrics(run_id, [{"step": 1, "loss": 0.5}])
    store.finish(run_id, {"accuracy": 1.0})
    assert store.status_of([run_id]) == {run_id: "done"}
    from limitlab.spec import RunSpec

    assert RunSpec.model_validate_json((store.runs_dir / run_id / "spec.json").read_text()) == spec
    with pytest.raises(KeyError):
        store.finish("0123456789abcdef", {"accuracy": 1.0})  # a run the index does not know: no result, no spec
    assert not (store.runs_dir / "0123456789abcdef").exists()
