"""Shared fixtures: small specs, a 2-thread torch (the CI machine has 2 cores), and a chunk cache per test."""

from __future__ import annotations

import pytest
import torch

from limitlab.spec import RunSpec

torch.set_num_threads(2)


def counting_spec(m: int = 4, d: int = 16, seed: int = 0, steps: int = 60, **over) -> RunSpec:
    """A tiny counting run that trains in well under a second per 100 steps on a CPU."""
    data = {
        "study": "test",
        "task": {"name": "counting", "m": m, "n": 4 * m, **over.pop("task", {})},
        "model": {"d_model": d, "n_heads": 2, "n_layers": 2, "norm": "none", "max_len": 256, **over.pop("model", {})},
        "optim": {"lr": 3e-3, **over.pop("optim", {})},
        "train": {"steps": steps, "batch_size": 16, "eval_size": 128, **over.pop("train", {})},
        "seed": seed,
    }
    data.update(over)
    return RunSpec.model_validate(data)


@pytest.fixture(autouse=True)
def chunk_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty CPU chunk cache (train/chunking.py), so none writes to ~/.cache or sees
    another's measurements; child processes inherit it through the environment."""
    folder = tmp_path_factory.mktemp("limitlab-cache")
    monkeypatch.setenv("LIMITLAB_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def make_spec():
    return counting_spec
