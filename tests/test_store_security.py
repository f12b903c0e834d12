"""Nothing in a store runs code or is followed: a pickle planted as a checkpoint or as weights never executes (the
run restarts with one warning; export stops with one line, exit 2), links and special files in a run folder are
refused with one line and never written through, and a checkpoint that loads but does not fit its run restarts
the run with one warning — never a traceback."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

from limitlab.cli import main
from limitlab.store import RunStore, StoreError
from limitlab.store_files import CHECKPOINT, OLD_CHECKPOINT, OLD_WEIGHTS, WEIGHTS
from limitlab.train.trainer import StackTrainer

TINY = ["run", "counting", "--preset", "smoke", "--set", "study.ds=[8]", "--set", "study.ms=[3]",
        "--set", 'study.tasks=["qc"]', "--set", "study.steps=30", "--set", "train.checkpoint_every=10", "--quiet"]


class Payload:
    """Unpickling this creates the folder ``marker``: any code path that unpickles it leaves a trace."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def pickled(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def results(store: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((store / "runs").glob("*/result.json"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, str, dict]:
    """A store with one finished tiny run (weights saved): (store, run id, its result)."""
    store = tmp_path_factory.mktemp("reference") / "store"
    assert main([*TINY, "--save-weights", "--store", str(store)]) == 0
    ((run_id, result),) = results(store).items()
    return store, run_id, result


@pytest.fixture(scope="module")
def genuine_checkpoint(reference) -> dict:
    """The state the trainer checkpoints for the reference run at step 10."""
    store, run_id, _ = reference
    spec = RunStore(store).spec(run_id)
    event = next(e for e in StackTrainer([spec]).events() if e.kind == "checkpoint")
    return event.data["state"]


def fresh(tmp_path: Path, reference) -> tuple[Path, Path]:
    """(a new store with the reference run registered but not trained, that run's folder)."""
    store, run_id, _ = reference
    s = RunStore(tmp_path / "store")
    s.add([RunStore(store).spec(run_id)])
    return tmp_path / "store", tmp_path / "store" / "runs" / run_id


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_the_payload_runs_when_unpickled(tmp_path):  # so that the tests below would notice if it ran
    torch.load(io.BytesIO(pickled({"step": 1, "x": Payload(tmp_path / "ran")})), weights_only=False)
    assert (tmp_path / "ran").is_dir()


@pytest.mark.parametrize("name", [CHECKPOINT, OLD_CHECKPOINT])
@pytest.mark.parametrize("planted", ["in the run's folder", "under a run id computed in advance"])
def test_a_pickled_checkpoint_never_runs_and_the_run_restarts(reference, genuine_checkpoint, tmp_path, capsys,
                                                              name, planted):
    _, run_id, result = reference
    marker = tmp_path / "ran"
    state = {**genuine_checkpoint, "extra": Payload(marker)}  # otherwise a valid checkpoint
    if planted == "in the run's folder":
        store, folder = fresh(tmp_path, reference)
    else:  # before the store knows the run: its folder holds nothing but the planted file
        store, folder = tmp_path / "store", tmp_path / "store" / "runs" / run_id
        folder.mkdir(parents=True)
    (folder / name).write_bytes(pickled(state))
    assert main([*TINY, "--store", str(store)]) == 0
    assert not marker.exists(), "the planted pickle was unpickled"
    assert results(store) == {run_id: result}  # restarted from step 0: the same numbers
    warned = [line for line in error_lines(capsys.readouterr().err) if run_id in line]
    assert len(warned) == 1 and "restarts from step 0" in warned[0], warned
    assert (folder / f"{name}.old").exists() if name == OLD_CHECKPOINT else (folder / f"{name}.corrupt").exists()


@pytest.mark.parametrize("name", [WEIGHTS, OLD_WEIGHTS])
@pytest.mark.parametrize("to", ["hf", "transformer-lens"])
def test_pickled_weights_never_run_and_export_says_so_in_one_line(reference, tmp_path, capsys, name, to):
    pytest.importorskip("transformers")
    store, run_id, _ = reference
    store = Path(shutil.copytree(store, tmp_path / "store"))
    folder, marker = store / "runs" / run_id, tmp_path / "ran"
    weights = RunStore(store).load_weights(run_id)
    (folder / WEIGHTS).unlink()
    (folder / name).write_bytes(pickled({**weights, "extra": Payload(marker)}))
    code = main(["export", run_id, "--to", to, "--store", str(store), "--out", str(tmp_path / "out")])
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("limitlab: error: "), lines
    assert name in lines[0] and not marker.exists() and not (tmp_path / "out").exists()
    with pytest.raises(StoreError):
        RunStore(store).load_weights(run_id)
    assert not marker.exists()


def test_weights_of_an_older_limitlab_load_as_tensors_only(reference, tmp_path):
    store, run_id, _ = reference
    store = Path(shutil.copytree(store, tmp_path / "store"))
    folder = store / "runs" / run_id
    weights = RunStore(store).load_weights(run_id)
    (folder / WEIGHTS).unlink()
    (folder / OLD_WEIGHTS).write_bytes(pickled(weights))  # what `--save-weights` wrote before safetensors
    if torch.torch_version.TorchVersion(torch.__version__) < (2, 6):
        with pytest.raises(StoreError, match="torch >= 2.6"):
            RunStore(store).load_weights(run_id)
        return
    loaded = RunStore(store).load_weights(run_id)
    assert loaded.keys() == weights.keys() and all(torch.equal(loaded[k], weights[k]) for k in weights)


@pytest.mark.parametrize("to", ["hf", "transformer-lens"])
@pytest.mark.parametrize("damage", ["a parameter missing", "a wrong shape", "an integer tensor", "empty"])
def test_weights_that_load_but_misfit_are_one_line(reference, tmp_path, capsys, to, damage):
    pytest.importorskip("transformers")
    store, run_id, _ = reference
    store = Path(shutil.copytree(store, tmp_path / "store"))
    weights = RunStore(store).load_weights(run_id)
    name = sorted(weights)[0]
    if damage == "a parameter missing":
        del weights[name]
    elif damage == "a wrong shape":
        weights[name] = torch.zeros(3)
    elif damage == "an integer tensor":
        weights[name] = weights[name].long()
    path = store / "runs" / run_id / WEIGHTS
    path.write_bytes(safetensors.torch.save(weights) if damage != "empty" else b"")
    code = main(["export", run_id, "--to", to, "--store", str(store), "--out", str(tmp_path / "out")])
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("limitlab: error: ") and "weights" in lines[0], lines


def _damaged(state: dict, damage: str) -> bytes | dict:
    """A checkpoint that decodes (or not) but cannot resume its run: bytes to write, or a state to save."""
    params = dict(state["params"])
    name = sorted(params)[0]
    if damage == "a parameter with the wrong number of dims":
        params[name] = torch.zeros(3)
    elif damage == "a parameter missing":
        del params[name]
    elif damage == "one moment short":
        return {**state, "optim": {**state["optim"], "exp_avg": state["optim"]["exp_avg"][:-1],
                                   "exp_avg_sq": state["optim"]["exp_avg_sq"][:-1]}}
    elif damage == "a step past the budget":
        return {**state, "step": 10**6}
    elif damage == "a string for the step":
        meta = {"limitlab": json.dumps({"kind": "checkpoint", "version": 1, "step": "ten", "alive": True,
                                        "final_loss": 1.0, "t": 10.0})}
        return safetensors.torch.save({f"params/{k}": v for k, v in params.items()}, metadata=meta)
    elif damage == "integers where floats belong":
        params[name] = params[name].long()
    elif damage == "no metadata":
        return safetensors.torch.save({f"params/{k}": v for k, v in params.items()})
    return {**state, "params": params}


@pytest.mark.parametrize("damage", ["a parameter with the wrong number of dims", "a parameter missing",
                                    "one moment short", "a step past the budget", "a string for the step",
                                    "integers where floats belong", "no metadata"])
def test_a_checkpoint_that_loads_but_does_not_fit_restarts_the_run(reference, genuine_checkpoint, tmp_path, capsys,
                                                                   damage):
    _, run_id, result = reference
    store, folder = fresh(tmp_path, reference)
    damaged = _damaged(genuine_checkpoint, damage)
    if isinstance(damaged, bytes):
        (folder / CHECKPOINT).write_bytes(damaged)
    else:
        RunStore(store).save_checkpoint(run_id, damaged)
    RunStore(store).append_metrics(run_id, [{"step": 10, "train_loss": 9.9}])  # records of the cut-off attempt
    assert main([*TINY, "--store", str(store)]) == 0
    warned = [line for line in error_lines(capsys.readouterr().err) if run_id in line]
    assert len(warned) == 1 and f"{CHECKPOINT}.corrupt" in warned[0] and "step 0" in warned[0], warned
    assert results(store) == {run_id: result}
    steps = [r["step"] for r in RunStore(store).metrics(run_id) if "train_loss" in r]
    assert steps == sorted(set(steps)) and 9.9 not in [r.get("train_loss") for r in RunStore(store).metrics(run_id)]


def test_a_genuine_checkpoint_resumes(reference, genuine_checkpoint, tmp_path, capsys):  # the control
    _, run_id, result = reference
    store, _ = fresh(tmp_path, reference)
    RunStore(store).save_checkpoint(run_id, genuine_checkpoint)
    assert main([*TINY, "--store", str(store)]) == 0
    assert run_id not in capsys.readouterr().err and results(store) == {run_id: result}


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_metrics_file_that_is_a_link_or_a_fifo_is_refused_and_never_written(reference, tmp_path, capsys, kind):
    _, run_id, result = reference
    store, folder = fresh(tmp_path, reference)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        (folder / "metrics.jsonl").symlink_to(victim)
    else:
        os.mkfifo(folder / "metrics.jsonl")
    assert main([*TINY, "--store", str(store)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("limitlab: error: ") and "metrics.jsonl" in lines[0], lines
    assert victim.read_text() == "keep me\n"
    (folder / "metrics.jsonl").unlink()  # what the line says to do; the run was handed back
    assert main([*TINY, "--store", str(store)]) == 0 and results(store) == {run_id: result}


def test_a_linked_checkpoint_is_set_aside_not_followed(reference, genuine_checkpoint, tmp_path, capsys):
    _, run_id, result = reference
    store, folder = fresh(tmp_path, reference)
    elsewhere = tmp_path / "elsewhere.safetensors"
    RunStore(store).save_checkpoint(run_id, genuine_checkpoint)
    os.replace(folder / CHECKPOINT, elsewhere)
    (folder / CHECKPOINT).symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    assert main([*TINY, "--store", str(store)]) == 0
    warned = [line for line in error_lines(capsys.readouterr().err) if run_id in line]
    assert len(warned) == 1 and "symbolic link" in warned[0], warned
    assert results(store) == {run_id: result} and elsewhere.read_bytes() == before
    assert (folder / f"{CHECKPOINT}.corrupt").is_symlink()


def test_a_linked_result_counts_as_damaged_and_is_replaced_not_followed(reference, tmp_path, capsys):
    store, run_id, result = reference
    store = Path(shutil.copytree(store, tmp_path / "store"))
    folder, victim = store / "runs" / run_id, tmp_path / "victim.json"
    victim.write_text(json.dumps({"accuracy": 1.0}))
    (folder / "result.json").unlink()
    (folder / "result.json").symlink_to(victim)
    assert main(["status", "--store", str(store)]) == 0
    assert f"damaged {run_id}" in capsys.readouterr().out
    assert main([*TINY, "--store", str(store)]) == 0
    assert not (folder / "result.json").is_symlink() and results(store) == {run_id: result}
    assert json.loads(victim.read_text()) == {"accuracy": 1.0}


def test_a_linked_run_folder_is_refused_in_one_line(reference, tmp_path, capsys):
    store, run_id, _ = reference
    store = Path(shutil.copytree(store, tmp_path / "store"))
    real = tmp_path / "real"
    os.replace(store / "runs" / run_id, real)
    (store / "runs" / run_id).symlink_to(real, target_is_directory=True)
    assert main(["status", "--store", str(store)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "symbolic link" in lines[0] and run_id in lines[0], lines


def test_a_linked_run_folder_planted_in_advance_is_never_written_through(reference, tmp_path, capsys):
    _, run_id, _ = reference
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store / "runs").mkdir(parents=True)
    (store / "runs" / run_id).symlink_to(elsewhere, target_is_directory=True)
    assert main([*TINY, "--store", str(store)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "symbolic link" in lines[0] and "not a run folder" in lines[0], lines
    assert list(elsewhere.iterdir()) == []


def test_metric_records_of_the_wrong_kind_do_not_stop_a_resume(tmp_path):
    store = RunStore(tmp_path / "store")
    from tests.conftest import counting_spec

    (run_id,) = store.add([counting_spec()])
    (store.runs_dir / run_id / "metrics.jsonl").write_text('{"step": "ten"}\n[1, 2]\n{"step": 3}\n{"step": 30}\n')
    store.truncate_metrics(run_id, 10)
    assert store.metrics(run_id) == [{"step": 3}]
