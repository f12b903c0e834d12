"""A full disk: the run stops with one line naming the file it could not write, nothing finished is lost, and the
same command finishes the sweep once space is freed.

The store lives on a small tmpfs mounted for the test (root only; skipped with the reason where mount is not
allowed). A finished run A is in the store; then run B starts, and the disk fills just before one chosen write
(the hook only fills the disk, the failing write is the engine's):

==========  =====================================================================================
target      the write that finds the disk full
==========  =====================================================================================
checkpoint  B's first checkpoint.safetensors (written to a temporary file, then renamed)
metrics     B's first metrics.jsonl append
result      B's result.json (temporary file, then renamed)
index       the index row that marks B done (result.json is already complete: B is done, not lost)
natural     no hook: the disk is filled to 40 kB free before B starts, and B fails wherever it fails
==========  =====================================================================================
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from limitlab.cli import main
from limitlab.store import RunStore
from limitlab.store_codec import decode_checkpoint

TINY = ["run", "counting", "--preset", "smoke", "--set", "study.ds=[8]", "--set", "study.ms=[3]",
        "--set", 'study.tasks=["qc"]', "--set", "study.steps=10", "--set", "train.checkpoint_every=5",
        "--set", "train.eval_every=5", "--quiet"]
A, B = [*TINY, "--set", "study.seeds=[0]"], [*TINY, "--set", "study.seeds=[1]"]
NAMES = {"checkpoint": "checkpoint.safetensors", "metrics": "metrics.jsonl", "result": "result.json",
         "index": "index.sqlite"}

HOOK = r'''
import sys
from pathlib import Path

import limitlab.cli as cli
from limitlab import store as store_mod
from limitlab.store import RunStore
from limitlab.store_files import RunFiles

target, filler = sys.argv[1], Path(sys.argv[2])


def fill():
    global target
    target = None  # only once
    with open(filler, "ab", buffering=0) as f:
        try:
            while f.write(bytes(1 << 16)):
                pass
        except OSError:
            pass
        try:
            while f.write(b"\0"):
                pass
        except OSError:
            pass


def before(cls, name, when):
    original = getattr(cls, name)
    def hooked(*args):
        if target is not None and when(*args):
            fill()
        return original(*args)
    setattr(cls, name, hooked)


if target == "checkpoint":
    before(RunFiles, "save_checkpoint", lambda *a: True)
elif target == "metrics":
    before(RunFiles, "append_metrics", lambda *a: True)
elif target == "result":
    before(store_mod, "_atomic_write", lambda path, data: path.name == "result.json")
elif target == "index":  # after finish() wrote result.json and deleted the checkpoint: the index row is next
    tidy = RunStore._tidy
    def tidy_then_fill(self, run_id):
        tidy(self, run_id)
        fill()
    RunStore._tidy = tidy_then_fill
sys.exit(cli.main(sys.argv[3:]))
'''


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A store with run A finished (copied onto each test's tmpfs)."""
    store = tmp_path_factory.mktemp("finished") / "store"
    assert main([*A, "--store", str(store)]) == 0
    return store


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                              text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(path: Path, leave: int = 0) -> None:
    """Fill the file system of ``path`` (a new file), then give ``leave`` bytes back."""
    with open(path, "ab", buffering=0) as f:
        for size in (1 << 16, 1):
            try:
                while f.write(bytes(size)):
                    pass
            except OSError:
                pass
    os.truncate(path, max(path.stat().st_size - leave, 0))


def _folders(store: Path) -> dict[str, Path]:
    return {p.name: p for p in (store / "runs").iterdir()}


def _index_status(store: Path) -> dict[str, str]:
    """The index rows, read without writing (the disk is full)."""
    with sqlite3.connect(f"file:{store / 'index.sqlite'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT run_id, status FROM runs").fetchall())


@pytest.mark.slow
@pytest.mark.parametrize("target", ["checkpoint", "metrics", "result", "index", "natural"])
def test_full_disk_stops_with_one_line_and_loses_nothing(finished, tmpfs, target, capsys):
    store, filler = tmpfs / "store", tmpfs / "filler"
    shutil.copytree(finished, store)
    (a,) = _folders(store)
    finished = (store / "runs" / a / "result.json").read_bytes()
    if target == "natural":
        _fill(filler, leave=40_000)

    proc = subprocess.run([sys.executable, "-c", HOOK, target, str(filler), *B, "--store", str(store)],
                          capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    with capsys.disabled():
        print(f"\n{target}: {lines[-1] if lines else proc.stderr}")
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"limitlab: error: disk full: No space left on device writing {tmpfs}"), lines[0]
    assert lines[0].endswith("finished runs are kept, free space and run the same command again to resume")
    if target in NAMES:
        assert f"{NAMES[target]};" in lines[0], lines[0]

    # nothing finished is lost or torn, while the disk is still full
    assert (store / "runs" / a / "result.json").read_bytes() == finished
    assert _index_status(store)[a] == "done"
    (b,) = set(_folders(store)) - {a}
    for folder in _folders(store).values():
        assert not list(folder.glob(".*.tmp")), list(folder.iterdir())  # a failed write leaves no temporary file
        if (folder / "checkpoint.safetensors").exists():
            assert decode_checkpoint((folder / "checkpoint.safetensors").read_bytes())["step"] > 0
        if (folder / "result.json").exists():
            assert json.loads((folder / "result.json").read_bytes())["step"] == 10
    b_done = (store / "runs" / b / "result.json").exists()
    assert b_done == (target == "index"), target  # only the index write came after B's result

    filler.unlink(missing_ok=True)
    capsys.readouterr()
    assert main([*B, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert (", 1 already done, 0 to train" if b_done else ", 0 already done, 1 to train") in out, out
    counts = RunStore(store).counts("counting")["counting"]
    assert counts == {"pending": 0, "running": 0, "done": 2, "failed": 0, "damaged": 0, "stale": 0}
    assert (store / "runs" / a / "result.json").read_bytes() == finished
    assert not (store / "runs" / b / "checkpoint.safetensors").exists()
