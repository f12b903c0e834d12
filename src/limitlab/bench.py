"""``limitlab bench``: model-steps/s of a stack of M models vs the same M models one at a time."""

from __future__ import annotations

import argparse
import json
import time

import torch

from limitlab.spec import RunSpec
from limitlab.train.trainer import StackTrainer, TrainOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--d", type=int, nargs="+", default=[16], help="embedding sizes")
    parser.add_argument("--m", type=int, default=10, help="vocabulary size (n = 10·m)")
    parser.add_argument("--models", type=int, default=32, help="models in the stack")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true")


def _specs(d: int, m: int, models: int, batch: int) -> list[RunSpec]:
    return [RunSpec(task={"name": "counting", "m": m}, model={"d_model": d, "n_heads": 4 if d % 4 == 0 else 1,
                                                               "max_len": 10 * m * 2 + 3},
                    train={"batch_size": batch}, seed=s) for s in range(models)]


def _rate(trainer: StackTrainer, steps: int, device: str) -> float:
    trainer.train_step()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def measure(d: int, m: int, models: int, batch: int, steps: int, device: str) -> dict:
    specs = _specs(d, m, models, batch)
    options = TrainOptions(device=device)
    stacked = _rate(StackTrainer(specs, None, options), steps, device) * models
    single = _rate(StackTrainer(specs[:1], None, options), steps, device)
    return {"device": device, "d": d, "m": m, "n": 10 * m, "batch": batch, "models": models,
            "stacked_model_steps_per_s": stacked, "single_model_steps_per_s": single, "speedup": stacked / single}


def main(args: argparse.Namespace) -> None:
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    rows = [measure(d, args.m, args.models, args.batch, args.steps, device) for d in args.d]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['device']} d={r['d']} n={r['n']} M={r['models']}: stacked {r['stacked_model_steps_per_s']:.1f} "
              f"model-steps/s, one at a time {r['single_model_steps_per_s']:.1f} -> {r['speedup']:.2f}x")
