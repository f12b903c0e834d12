"""Live curves: TensorBoard event files (one run per line) and W&B runs (offline) written while a sweep trains."""

from __future__ import annotations

import pytest

from limitlab.cli import main

TINY = ["--set", "study.ds=[8]", "--set", "study.ms=[3]", "--set", 'study.tasks=["qc"]', "--set", "study.steps=40",
        "--set", 'study.variants=["base"]', "--set", "study.seeds=[0,1]", "--set", "train.eval_every=10"]


def test_tensorboard_curves_one_run_per_line(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = tmp_path / "tb"
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--store", str(tmp_path / "s"), "--quiet",
                 "--tensorboard", str(board)]) == 0
    runs = sorted((board / "counting").iterdir())
    assert len(runs) == 2
    events = EventAccumulator(str(runs[0])).Reload()
    assert {"train/loss", "test/accuracy", "ood_long/accuracy"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("test/accuracy")] == [10, 20, 30, 40]  # during training, and the end


def test_wandb_offline_runs(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert main(["run", "counting", "--preset", "smoke", *TINY, "--store", str(tmp_path / "s"), "--quiet",
                 "--wandb", "limitlab-test"]) == 0
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 2
