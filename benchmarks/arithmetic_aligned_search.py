"""One recipe candidate for the arithmetic repro preset: aligned-format runs (one per encoding and seed), their
in-distribution exact match every steps/6 steps, and exact match per test digit count (true, truncated target).

    PYTHONPATH=src python benchmarks/arithmetic_aligned_search.py --store /tmp/ars-add3 --layers 4 --lr 3e-3 \\
        --steps 2400 --positions rope,t5,none
    PYTHONPATH=src python benchmarks/arithmetic_aligned_search.py --store /tmp/ars-mul4 --op mul --digits 1,2 \\
        --width 7 --test 4 --positions learned --layers 4 --lr 3e-3 --steps 6000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from limitlab.executors import run_local
from limitlab.store import RunStore
from limitlab.studies.arithmetic.study import arithmetic_spec
from limitlab.sweep import prepare
from limitlab.train.trainer import TrainOptions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--op", default="add")
    p.add_argument("--digits", default="1,2,3,4", help="training digit counts")
    p.add_argument("--width", type=int, default=10, help="operand width of the aligned format")
    p.add_argument("--test", type=int, default=9, help="largest test digit count")
    p.add_argument("--positions", default="learned,rope,t5,none,abacus")
    p.add_argument("--seeds", default="0")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--wd", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    store = RunStore(a.store)
    specs = [arithmetic_spec(a.op, [int(x) for x in a.digits.split(",")], fmt="aligned", position=pos, seed=seed,
                             width=a.width, test_digits=range(1, a.test + 1), n_layers=a.layers, n_heads=a.heads,
                             d_model=a.d, steps=a.steps, lr=a.lr, batch_size=a.batch, eval_size=900, warmup=50,
                             weight_decay=a.wd, eval_every=a.steps // 6)
             for pos in a.positions.split(",") for seed in map(int, a.seeds.split(","))]
    plan = prepare(specs, store, max_models=256, device="cpu", write=False)
    plan.keep(store)
    run_local(plan, store, TrainOptions(device="cpu"), progress=None)
    for spec in specs:
        curve = " ".join(f"{r['test/accuracy']:.2f}" for r in store.metrics(spec.run_id) if "test/accuracy" in r)
        result = json.loads((Path(a.store) / "runs" / spec.run_id / "result.json").read_text())
        true = " ".join(f"{100 * x:.0f}" for x in result["lengths/accuracy_by_length"][1:])
        truncated = " ".join(f"{100 * x:.0f}" for x in result["lengths_truncated/accuracy_by_length"][1:])
        print(f"{spec.tags['position']:8s} seed {spec.seed} ID curve {curve} | true {true} | truncated {truncated}")


if __name__ == "__main__":
    main()
