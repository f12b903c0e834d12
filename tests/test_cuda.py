"""The CUDA path (bf16 autocast, device-side data). Skipped cleanly on machines without CUDA."""

from __future__ import annotations

import pytest
import torch

from limitlab.train.trainer import StackTrainer, TrainOptions, train_runs

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_cuda_stack_trains_and_matches_cpu_in_fp32(make_spec):
    specs = [make_spec(m=4, seed=s, steps=40) for s in range(3)]
    cpu = train_runs(specs, options=TrainOptions(device="cpu"))
    gpu = train_runs(specs, options=TrainOptions(device="cuda", amp=False))
    for run_id, result in cpu.items():
        assert gpu[run_id]["test/accuracy"] == pytest.approx(result["test/accuracy"], abs=0.05)


def test_cuda_bf16_step_has_no_host_sync(make_spec):
    trainer = StackTrainer([make_spec(seed=s) for s in range(4)], None, TrainOptions(device="cuda"))
    trainer.train_step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(trainer.train_step()).all()
