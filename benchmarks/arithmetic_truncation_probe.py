"""Why does learned-APE addition (D≤4, fixed width 10) follow the truncated target less and less beyond 5 digits?

Xu et al. report that learned absolute positions give the *truncated* answer (the sum of the low four digits) at
~100% on longer operands. The quick preset's model (2 layers, width 64, 2,000 steps) does at 5 digits but not at
7–9. This trains the quick run's spec with one knob changed at a time — weight decay, width, steps, depth — and
prints, per seed, accuracy in distribution and against the truncated and the true target at 5–9 digits.

    PYTHONPATH=src python benchmarks/arithmetic_truncation_probe.py --store /tmp/arith-probe   # ~30 CPU-min

Finished runs in the store are kept (a rerun only prints).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from limitlab.executors import run_local
from limitlab.store import RunStore
from limitlab.studies.arithmetic.study import _cpu_spec
from limitlab.sweep import prepare
from limitlab.train.trainer import TrainOptions

QUICK = dict(steps=2000, d_model=64, n_layers=2, lr=3e-3)
VARIANTS = {  # name: (changes to the quick run, seeds)
    "quick (2 layers, width 64, 2k steps, wd 0.1)": ({}, (0, 1, 2)),
    "weight decay 1.0": ({"weight_decay": 1.0}, (0, 1, 2)),
    "width 128": ({"d_model": 128}, (0, 1, 2)),
    "8k steps": ({"steps": 8000}, (0, 1, 2)),
    "4 layers, width 128, lr 1e-3": ({"d_model": 128, "n_layers": 4, "lr": 1e-3}, (0, 1, 2)),
    "4 layers, width 128 (quick's lr 3e-3)": ({"d_model": 128, "n_layers": 4}, (0,)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    store = RunStore(args.store)
    specs, names = [], {}
    for name, (change, seeds) in VARIANTS.items():
        for seed in seeds:
            spec = _cpu_spec("add", [1, 2, 3, 4], seed=seed, eval_size=1800, test_digits=range(1, 10), width=10,
                             **{**QUICK, **change})
            specs.append(spec)
            names[spec.run_id] = name
    plan = prepare(specs, store, max_models=256, device="cpu", write=False)
    plan.keep(store)
    run_local(plan, store, TrainOptions(device="cpu"), progress=None)
    print("| variant | seed | in distribution (1–4) | truncated target, 5 / 6 / 7 / 8 / 9 digits | true target, 5–9 |")
    print("|---|---|---|---|---|")
    for spec in specs:
        result = json.loads((Path(args.store) / "runs" / spec.run_id / "result.json").read_text())
        true, trunc = result["lengths/accuracy_by_length"], result["lengths_truncated/accuracy_by_length"]
        print(f"| {names[spec.run_id]} | {spec.seed} | {100 * sum(true[1:5]) / 4:.1f} | "
              + " / ".join(f"{100 * x:.1f}" for x in trunc[5:10]) + " | "
              + " / ".join(f"{100 * x:.1f}" for x in true[5:10]) + " |")


if __name__ == "__main__":
    main()
