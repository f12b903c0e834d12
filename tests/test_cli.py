"""The command line: the smoke preset end to end, resume after SIGKILL, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from limitlab.cli import main

TINY = ["--set", "study.ds=[8]", "--set", "study.ms=[3]", "--set", 'study.tasks=["qc"]']


def limitlab(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "limitlab.cli", *args], capture_output=True, text=True, **kw)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def results(store: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((store / "runs").glob("*/result.json"))}


def test_smoke_preset_end_to_end(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["run", "counting", "--preset", "smoke", "--store", str(store), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "8 to train" in out and "done 8" in out
    done = results(store)
    assert len(done) == 8 and all(0 <= r["test/accuracy"] <= 1 for r in done.values())
    # better than chance: QC's best constant answer (the modal count 1 + Binomial(n-1, 1/m)) at each m
    from limitlab.store import RunStore

    df = RunStore(store).to_dataframe()
    qc = df[df["task.kind"] == "qc"]
    chance = [torch.distributions.Binomial(4 * m - 1, torch.tensor(1 / m)).log_prob(
        torch.arange(4 * m).float()).exp().max().item() for m in qc["task.m"]]
    assert qc["result.test/accuracy"].mean() > sum(chance) / len(chance) + 0.1
    # running it again trains nothing: finished runs are never retrained
    assert main(["run", "counting", "--preset", "smoke", "--store", str(store), "--quiet"]) == 0
    assert "8 already done, 0 to train" in capsys.readouterr().out
    assert main(["status", "--store", str(store)]) == 0
    assert "counting" in capsys.readouterr().out


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    args = ["run", "counting", "--preset", "smoke", *TINY, "--set", "study.steps=200",
            "--set", "train.checkpoint_every=10", "--quiet"]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([sys.executable, "-m", "limitlab.cli", *args, "--store", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(killed.glob("runs/*/checkpoint.safetensors")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(killed.glob("runs/*/checkpoint.safetensors")), "no checkpoint was written before the kill"
    assert not results(killed), "the run finished before it was killed; the test proves nothing"
    limitlab(*args, "--store", str(killed))
    limitlab(*args, "--store", str(clean))
    resumed, reference = results(killed), results(clean)
    assert resumed.keys() == reference.keys() and len(resumed) == 1
    assert resumed == reference  # bit-identical: same device, same seeds, exact resume


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "counting", "--preset", "nope"], "unknown preset 'nope'"),
        (["run", "nosuchstudy"], "unknown study 'nosuchstudy'"),
        (["run", "counting", "--preset", "smoke", "--set", "model.d_model=-3"], "model.d_model"),
        (["run", "counting", "--preset", "smoke", "--set", "model.d=3"], "model.d"),
        (["run", "counting", "--preset", "smoke", "--set", "model.position=nope"], "unknown position encoding"),
        (["run", "counting", "--preset", "smoke", "--set", "study.bogus=1"], "study.bogus"),
        (["run", "counting", "--preset", "smoke", "--set", "novalue"], "key=value"),
        (["run", "counting", "--preset", "smoke", "--device", "tpu"], "--device 'tpu'"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, capsys, args, needle):
    assert main([*args, "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("limitlab: error:"), err
    assert needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "s" / "runs").exists() or not any((tmp_path / "s" / "runs").iterdir())


def test_bad_input_in_a_fresh_process_prints_no_traceback(tmp_path):
    proc = limitlab("run", "counting", "--set", "model.n_heads=0", "--store", str(tmp_path / "s"), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("limitlab: error:") and "Traceback" not in proc.stderr


def test_unwritable_store_is_refused_and_existing_store_untouched(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["run", "counting", "--preset", "smoke", "--store", str(blocker / "store")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert blocker.read_text() == "not a directory"


def test_bad_override_leaves_finished_runs_intact(tmp_path):
    store = tmp_path / "store"
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--set", "study.steps=20", "--store", str(store),
                 "--quiet"]) == 0
    before = results(store)
    assert main(["run", "counting", "--preset", "smoke", "--set", "optim.lr=-1", "--store", str(store)]) == 2
    assert results(store) == before and len(before) == 1


def test_status_of_missing_store(tmp_path, capsys):
    assert main(["status", "--store", str(tmp_path / "none")]) == 2
    assert "no store" in capsys.readouterr().err


def test_studies_lists_presets(capsys):
    assert main(["studies"]) == 0
    out = capsys.readouterr().out
    assert "counting" in out and "--preset smoke" in out and "--preset paper" in out


def test_two_processes_share_one_store(tmp_path):
    """Two `limitlab run` processes on one store: both succeed, every run is trained exactly once."""
    store = tmp_path / "store"
    args = ["run", "counting", "--preset", "smoke", "--set", "study.ds=[8]", "--set", "study.ms=[3,4,5]",
            "--set", "study.steps=30", "--set", "study.seeds=2", "--max-stack", "1", "--quiet", "--store", str(store)]
    procs = [subprocess.Popen([sys.executable, "-m", "limitlab.cli", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    done = results(store)
    assert len(done) == 12  # 2 tasks x 3 m x 2 seeds
    trained = [int(out.split("trained ")[1].split()[0]) for out, _ in outs]
    assert sum(trained) == 12, outs
    for run in (store / "runs").iterdir():
        finals = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "test/accuracy" in r]
        assert len(finals) == 1, f"run {run.name} was evaluated {len(finals)} times"


def test_an_empty_store_path_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["run", "counting", "--preset", "smoke", *TINY], ["status"], ["plan", "counting"]):
        assert main([*command, "--store", ""]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "store path is empty" in err
    assert list(tmp_path.iterdir()) == []  # nothing trained into the current folder


def test_a_store_name_longer_than_the_filesystem_allows_is_one_line(tmp_path, capsys):
    long = str(tmp_path / ("s" * 300))
    for command in (["run", "counting", "--preset", "smoke", *TINY], ["status"], ["runs"], ["plan", "counting"],
                    ["report", "counting"], ["export", "0123456789abcdef"]):
        assert main([*command, "--store", long]) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "255" in err and "Traceback" not in err, (command, err)
    assert main(["report", "counting", "--store", long[:100], "--out", long]) == 2  # --out too: one line
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_unwritable_run_folder_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    from limitlab.store_files import RunFiles

    def refuse(self, run_id, records):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.runs_dir / run_id / "metrics.jsonl"))

    monkeypatch.setattr(RunFiles, "append_metrics", refuse)  # as a run folder another user owns (root ignores chmod)
    store = tmp_path / "store"
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--set", "study.steps=20", "--store", str(store),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and "metrics.jsonl" in err
    from limitlab.store import RunStore

    assert RunStore(store).counts()["counting"]["pending"] == 1  # handed back, trains on the next run


def test_a_relative_corpus_names_the_same_data_from_any_folder(tmp_path, monkeypatch):
    from limitlab.studies import STUDIES

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for sub in ("a", "b"):
        (tmp_path / sub / "text.txt").write_text(sub * 4000)
    ids = {}
    for sub in ("a", "b"):
        monkeypatch.chdir(tmp_path / sub)
        specs = STUDIES["cope"].specs("smoke", {"study.corpus": "text.txt"})
        lm = [s for s in specs if s.task.name == "text_lm"]
        assert lm and all(s.task.corpus == str(tmp_path / sub / "text.txt") for s in lm)
        ids[sub] = {s.run_id for s in lm}
    assert not ids["a"] & ids["b"]  # different data, different runs: never "already done" for the other folder


def test_help_is_fast_because_it_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom limitlab.cli import main\n"
            "for argv in (['--help'], ['run', '--help'], ['bench', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("False"), out.stderr
    assert "(default: quick)" in out.stdout  # and it shows the defaults


def test_python_dash_m_prints_a_commands_error_in_one_line(tmp_path):
    """`python -m limitlab.cli` runs the module as __main__: a command's CliError must still be caught (it was a
    traceback, because __main__.CliError is another class than the limitlab.cli.CliError the commands raise)."""
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--store", str(tmp_path), "--quiet"]) == 0
    proc = limitlab("report", "counting", "--store", str(tmp_path), "--where", "model.d_model=999", "--out",
                    str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("limitlab: error: no runs of study 'counting' match")
