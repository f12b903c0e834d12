"""CPU: limitlab's per-step bookkeeping at M = 1 — one limitlab model against the plain PyTorch loop, interleaved.

Times ``steps`` steps of a one-model ``StackTrainer`` and of ``limitlab.bench_plain.PlainLoop`` on the same spec,
back to back, for many short rounds (the order alternates each round), and prints the median of the paired
same-round ratios (plain seconds / limitlab seconds; 1.0 = no overhead) with its middle half. Short paired rounds
make this far less sensitive to a drifting machine than best-of-rounds. Benchmarks are not tests: run by hand,

    python benchmarks/cpu_one_model.py --d 8 --m 3 --rounds 40 --steps 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from limitlab.bench import _long, shape_specs
from limitlab.bench_plain import PlainLoop
from limitlab.train.trainer import StackTrainer, TrainOptions


def paired_rounds(d: int, m: int, batch: int, rounds: int, steps: int) -> dict:
    (spec,) = _long(shape_specs(d, m, 1, batch))
    sides = {"limitlab": StackTrainer([spec], None, TrainOptions()).train_step, "plain": PlainLoop([spec]).step}
    for step in sides.values():
        for _ in range(20):  # warm-up
            step()
    ratios, seconds = [], {k: [] for k in sides}
    for r in range(rounds):
        for name in (("limitlab", "plain") if r % 2 == 0 else ("plain", "limitlab")):
            start = time.perf_counter()
            for _ in range(steps):
                sides[name]()
            seconds[name].append((time.perf_counter() - start) / steps)
        ratios.append(seconds["plain"][-1] / seconds["limitlab"][-1])
    q = statistics.quantiles(ratios, n=4)
    return {"d": d, "n": 10 * m, "rounds": rounds, "steps": steps, "median": statistics.median(ratios),
            "quartiles": [q[0], q[2]], "best_us": {k: 1e6 * min(v) for k, v in seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--m", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20, help="steps per side per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [paired_rounds(d, m, args.batch, args.rounds, args.steps) for d in args.d for m in args.m]
    if args.json:
        print(json.dumps(rows, indent=2))
    for r in [] if args.json else rows:
        print(f"d={r['d']:<4} n={r['n']:<4} limitlab M=1 / plain: median {r['median']:.3f} "
              f"(middle half {r['quartiles'][0]:.3f}-{r['quartiles'][1]:.3f}); best step "
              f"{r['best_us']['limitlab']:.0f} vs {r['best_us']['plain']:.0f} us")


if __name__ == "__main__":
    main()
