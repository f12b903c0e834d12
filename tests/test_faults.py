"""Nothing lost, nothing hidden: damaged checkpoints, results and indexes are repaired; SIGTERM hands runs back;
progress shows in logs; bad input gets one line (a property-based campaign over invalid specs and arguments)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from limitlab.cli import main
from limitlab.spec import RunSpec
from limitlab.store import RunStore

TINY = ["run", "counting", "--preset", "smoke", "--set", "study.ds=[8]", "--set", "study.ms=[3]",
        "--set", 'study.tasks=["qc"]', "--set", "study.steps=30", "--quiet"]


def results(store: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((store / "runs").glob("*/result.json"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict]:
    """A store with one finished tiny run, and its result (a reference every repair must reproduce)."""
    store = tmp_path_factory.mktemp("finished") / "store"
    assert main([*TINY, "--store", str(store)]) == 0
    return store, results(store)


def _copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    return dst


@pytest.mark.parametrize("damage", ["garbage", "empty", "braces", "list", "deleted"])
def test_damaged_result_is_shown_named_and_retrained(finished, tmp_path, capsys, damage):
    store = _copy(finished[0], tmp_path / "store")
    (run_id,) = finished[1]
    path = store / "runs" / run_id / "result.json"
    if damage == "deleted":
        subprocess.run(["rm", "-r", str(path.parent)], check=True)
    else:
        path.write_text({"garbage": "{not json", "empty": "", "braces": "{}", "list": "[1, 2]"}[damage])
    assert main(["status", "--store", str(store)]) == 0
    out = capsys.readouterr()
    assert f"damaged {run_id}" in out.out and "warning" in out.err
    assert main(["report", "counting", "--store", str(store), "--out", str(tmp_path / "r")]) == 0
    assert run_id in capsys.readouterr().err  # the report names the damaged run
    assert main([*TINY, "--store", str(store)]) == 0
    assert results(store) == finished[1]  # retrained to the same numbers


def test_deleted_index_is_rebuilt_from_the_run_folders(finished, tmp_path, capsys):
    store = _copy(finished[0], tmp_path / "store")
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (store / name).unlink(missing_ok=True)
    assert main(["status", "--store", str(store)]) == 0
    assert "restored" in capsys.readouterr().err
    assert RunStore(store).counts()["counting"]["done"] == 1
    assert main([*TINY, "--store", str(store)]) == 0
    assert "1 already done, 0 to train" in capsys.readouterr().out


def test_corrupt_checkpoint_is_set_aside_and_the_run_restarts(finished, tmp_path, capsys):
    store = tmp_path / "store"
    (run_id,) = finished[1]
    spec = RunStore(finished[0]).spec(run_id)
    s = RunStore(store)
    s.add([spec])
    (store / "runs" / run_id / "checkpoint.safetensors").write_bytes(b"")  # a truncated checkpoint from a killed writer
    s.append_metrics(run_id, [{"step": 10, "train_loss": 9.9}])  # records of the cut-off attempt
    assert main([*TINY, "--store", str(store)]) == 0
    err = capsys.readouterr().err
    assert "checkpoint.safetensors.corrupt" in err and len([ln for ln in err.splitlines() if run_id in ln]) == 1
    assert results(store) == finished[1]
    steps = [r["step"] for r in RunStore(store).metrics(run_id) if "train_loss" in r]
    assert steps == sorted(set(steps)) and 9.9 not in [r.get("train_loss") for r in RunStore(store).metrics(run_id)]


def _start(args: list[str], store: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "limitlab.cli", *args, "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(path_glob: str, root: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not list(root.glob(path_glob)) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)


def test_sigterm_hands_runs_back_and_resume_does_not_duplicate_metrics(tmp_path):
    store = tmp_path / "store"
    args = [a for a in TINY if a != "--quiet"] + ["--set", "study.steps=600", "--set", "train.checkpoint_every=20",
                                                  "--log-seconds", "1"]
    proc = _start(args, store)
    _wait_for("runs/*/checkpoint.safetensors", store, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("limitlab: terminated") and "Traceback" not in err
    assert RunStore(store).counts()["counting"]["pending"] == 1  # handed back, not left 'running'
    resumed = _start(args, store)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "progress: runs 1/1, model-steps 600/600, 100% of the work" in err  # plain lines without a terminal
    (run_id,) = results(store)
    steps = [r["step"] for r in RunStore(store).metrics(run_id) if "train_loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 600


# ---- fuzz: invalid input is one line, exit 2, and the store is unchanged -------------------------------------------

BAD_VALUES = {
    "model.d_model": [0, -8, "abc", [], {}, None, 10**9, 1.5], "model.n_heads": [0, -1, "x", None, 3.7],
    "model.position": ["nope", "rope+rope", "none+rope", 3, None], "model.norm": ["batch", 1, None],
    "optim.lr": [0, -1, "fast", None, 100.0], "optim.beta1": [1.0, -0.1, "x"], "train.steps": [0, -5, 10**12, "x"],
    "train.batch_size": [0, -1, None, "big"], "task.m": [1, 0, -3, "m", None], "task.kind": ["median", 3],
    "seed": [-1, "s", 2**63], "study.ds": [8, None, "8", {}, [], [0], [-8]], "study.ms": [[], 3, None, [1]],
    "study.seeds": [0, -1, [0, 0], "x", None, []], "study.steps": [0, -1, "x"], "study.bogus": [1],
    "model.bogus": [1], "bogus": [1], "task.name": ["nosuchtask"],
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and not p.name.startswith("index.sqlite")} | {"index": _index_rows(root)}


def _index_rows(root: Path) -> bytes:
    return json.dumps(sorted(RunStore(root).status_of([p.name for p in (root / "runs").iterdir()]).items())).encode()


bad_set = st.sampled_from(sorted(BAD_VALUES)).flatmap(
    lambda key: st.sampled_from(BAD_VALUES[key]).map(lambda v: f"{key}={json.dumps(v)}"))
good_set = st.sampled_from(["study.steps=10", "model.d_model=8", "optim.lr=0.001", "train.batch_size=8"])
junk_flag = st.sampled_from([["--max-stack", "0"], ["--chunk-models", "-1"], ["--device", "tpu"],
                             ["--preset", "huge"], ["--executor", "spark"], ["--checkpoint-minutes", "-2"],
                             ["--log-seconds", "nan"], ["--bogus"], []])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.lists(bad_set, min_size=1, max_size=3), good=st.lists(good_set, max_size=2), flag=junk_flag)
def test_fuzzed_invalid_command_lines(finished, capsys, bad, good, flag):
    store = finished[0]
    before = _snapshot(store)
    sets = [x for pair in (["--set", s] for s in good + bad) for x in pair]
    try:
        code = main(["run", "counting", "--preset", "smoke", *sets, *flag, "--store", str(store), "--quiet"])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, (sets, flag, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("limitlab: error:") and "Traceback" not in err, err
    assert _snapshot(store) == before


spec_field = st.sampled_from([k for k in BAD_VALUES if not k.startswith("study.")])


@settings(max_examples=1000, deadline=None)
@given(key=spec_field, data=st.data())
def test_fuzzed_invalid_specs_raise_validation_errors(key, data):
    value = data.draw(st.sampled_from(BAD_VALUES[key]) | st.one_of(st.none(), st.text(max_size=5),
                                                                    st.integers(-10, 0), st.lists(st.integers())))
    spec = {"study": "fuzz", "task": {"name": "counting", "m": 4}, "model": {"d_model": 8, "n_heads": 2}}
    node, *path = key.split(".")
    if path:
        spec.setdefault(node, {})[path[0]] = value
    else:
        spec[node] = value
    try:
        RunSpec.model_validate(spec)
    except (ValidationError, ValueError) as exc:  # ValidationError is a ValueError: one readable message
        assert str(exc).strip()


@pytest.mark.parametrize("value", ['"16"', '"qc"'])
def test_a_string_for_a_list_option_is_refused(finished, capsys, value):
    """A string is a sequence of characters: study.ds="16" used to train d = 1 and d = 6 models."""
    store = finished[0]
    before = _snapshot(store)
    key = "study.ds" if value == '"16"' else "study.tasks"
    assert main(["run", "counting", "--preset", "smoke", "--set", f"{key}={value}", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "wants Sequence" in err and key in err
    assert _snapshot(store) == before
