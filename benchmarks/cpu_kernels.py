"""CPU: which way of running a stack's forward/backward is fastest at each counting shape?

For every shape (d_model, n = 10·m, batch 16, M models) this times, interleaved round-robin so that load from
other processes hits every variant alike, and keeps each variant's best round:

* ``stack/c``: one StackTrainer step with the stack run in model chunks of ``c`` (``c = M``: plain stacked step);
* ``auto(c)``: the trainer's default, ``c`` timed on this machine or read from its chunk cache
  (``limitlab.train.chunking``);
* ``loop``: single-model trainers one after another (limitlab at M = 1), per model-step;
* ``plain``: the plain PyTorch loop of ``limitlab bench`` (:mod:`limitlab.bench_plain`), per model-step;
* ``linear/*`` (``--kernels``): one StackedLinear-shaped matmul, forward + backward, as ``baddbmm`` over the stack,
  as a per-model loop of ``addmm``, and as one model's ``addmm`` times M (the loop's kernel).

Prints model-steps/s and each variant's speed relative to the loop. Benchmarks are not tests: run by hand,

    python benchmarks/cpu_kernels.py --d 8 16 32 64 128 --m 10 50 --json > cpu_kernels.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from limitlab.bench import _long, shape_specs
from limitlab.bench_plain import PlainLoop
from limitlab.train.trainer import StackTrainer, TrainOptions


def best_time(fns: dict[str, callable], rounds: int) -> dict[str, float]:
    best = {k: math.inf for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - start)
    return best


def step_variants(d: int, m: int, models: int, batch: int, chunks: list[int], steps: int) -> dict[str, callable]:
    specs = _long(shape_specs(d, m, models, batch))
    out = {}
    for c in chunks:
        trainer = StackTrainer(specs, None, TrainOptions(chunk_models=c))

        def run(trainer: StackTrainer = trainer) -> None:
            for _ in range(steps):
                trainer.train_step()
        out[f"stack/{c}" if c else f"auto({trainer.chunk})"] = run
    singles = [StackTrainer([s], None, TrainOptions()) for s in specs[:2]]

    def loop() -> None:  # per model-step, scaled to the stack's M below
        for single in singles:
            for _ in range(steps):
                single.train_step()
    out["loop"] = loop
    plain = PlainLoop(specs[:2])

    def plain_loop() -> None:  # per model-step, like the loop
        for _ in range(steps):
            plain.step()
    out["plain"] = plain_loop
    return out


def linear_variants(d_in: int, d_out: int, rows: int, models: int) -> dict[str, callable]:
    x = torch.randn(models, rows, d_in, requires_grad=True)
    w = torch.randn(models, d_in, d_out, requires_grad=True)
    b = torch.randn(models, 1, d_out, requires_grad=True)
    gy = torch.randn(models, rows, d_out)
    x1, w1, b1, gy1 = (t[:1].detach().clone().requires_grad_(t.requires_grad) for t in (x, w, b, gy))

    def bmm() -> None:
        torch.baddbmm(b, x, w).backward(gy)

    def loop() -> None:
        outs = [torch.addmm(bb[0], xx, ww) for xx, ww, bb in zip(x.unbind(0), w.unbind(0), b.unbind(0))]
        torch.stack(outs).backward(gy)

    def single() -> None:
        for _ in range(models):
            torch.addmm(b1[0, 0], x1[0], w1[0]).backward(gy1[0])
    return {"linear/baddbmm": bmm, "linear/addmm loop": loop, "linear/one model x M": single}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--m", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--chunks", type=int, nargs="+", default=[32, 8, 4, 2, 1])
    parser.add_argument("--steps", type=int, default=1, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kernels", action="store_true", help="also time StackedLinear kernel variants")
    parser.add_argument("--kernels-only", action="store_true", help="only the StackedLinear kernel variants")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for d in args.d:
        for m in args.m:
            row = {"d": d, "n": 10 * m, "models": args.models, "load_avg": list(os.getloadavg())}
            rate: dict[str, float] = {}
            if not args.kernels_only:
                chunks = [0] + sorted({min(c, args.models) for c in args.chunks}, reverse=True)  # 0: the rule
                times = best_time(step_variants(d, m, args.models, args.batch, chunks, args.steps), args.rounds)
                rate = {k: args.models * args.steps / t for k, t in times.items() if k not in ("loop", "plain")}
                rate.update({k: 2 * args.steps / times[k] for k in ("loop", "plain")})
                row.update(model_steps_per_s=rate, vs_loop={k: v / rate["loop"] for k, v in rate.items()})
            if args.kernels or args.kernels_only:
                rows_ = args.batch * 10 * m
                row["linear_ms"] = {}
                for name, (i, o) in {"qkv": (d, 3 * d), "down": (4 * d, d)}.items():
                    t = best_time(linear_variants(i, o, rows_, args.models), args.rounds)
                    row["linear_ms"][name] = {k: 1e3 * v for k, v in t.items()}
            rows.append(row)
            if not args.json:
                if rate:
                    best = max((k for k in rate if k != "loop"), key=rate.get)
                    print(f"d={d:<4} n={10 * m:<4} M={args.models}: loop {rate['loop']:8.1f} model-steps/s | "
                          + " ".join(f"{k} {row['vs_loop'][k]:.2f}x" for k in rate if k != "loop")
                          + " | vs plain: " + " ".join(f"{k} {rate[k] / rate['plain']:.2f}x" for k in rate
                                                      if k != "plain")
                          + f" | best {best} | load {row['load_avg'][0]:.1f}", flush=True)
                else:
                    print(f"d={d:<4} n={10 * m:<4} M={args.models} (load {row['load_avg'][0]:.1f})", flush=True)
                for name, t in row.get("linear_ms", {}).items():
                    print("    " + name + ": " + ", ".join(f"{k} {v:.2f} ms" for k, v in t.items()), flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
