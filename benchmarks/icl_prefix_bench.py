"""Training on the prefix a fixed-length curriculum uses, against the full-length prompt, side by side.

The leaderboard's in-context regression task holds 2n pairs and trains on the first n (a curriculum with
``points_inc = 0``); training then runs 2n tokens, not 4n (``tasks/icl_common.py: trained_prefix``). The same
models on the full-length shape are what the trainer did before: a curriculum that adds points only after
10⁹ steps keeps n pairs in use but the whole 2n-pair shape, its second half invalid. Both variants are timed
with :func:`limitlab.bench.measure` (eager, one stack of 3 seeds), alternating, ``--rounds`` times each::

    python benchmarks/icl_prefix_bench.py --encodings learned cope --rounds 3 --seconds 2
"""

from __future__ import annotations

import argparse
import statistics

import torch

from limitlab.bench import measure
from limitlab.bench_device import device_info, load_average
from limitlab.spec import RunSpec
from limitlab.studies import STUDIES


def full_length(spec: RunSpec) -> RunSpec:
    """``spec`` with its curriculum keeping the whole prompt shape (points added only after 10⁹ steps)."""
    data = spec.model_dump(mode="json")
    data["task"]["curriculum"].update(points_inc=2, interval=10**9)
    return RunSpec.model_validate(data)


def model_steps_per_s(specs: list[RunSpec], seconds: float, peak: float) -> float:
    row = measure(specs, modes=["eager"], device="cpu", seconds=seconds, loop=False, loop_models=1, repeat=1,
                  peak=peak)
    return row["modes"]["eager"]["stacked"]["model_steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encodings", nargs="+", default=["learned", "cope"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = device_info("cpu")
    print(f"{info['name']}; caches {info['caches']}; torch {info['torch']}; load {load_average()}")
    print("| encoding | prefix (2n tokens) ms / model-step | full shape (4n) ms / model-step | speed-up |")
    print("|---|---|---|---|")
    for encoding in args.encodings:
        prefix = STUDIES["leaderboard"].specs("quick", {"study.tasks": ["icl"], "study.encodings": [encoding]})
        full = [full_length(s) for s in prefix]
        times: dict[str, list[float]] = {"prefix": [], "full": []}
        for _ in range(args.rounds):
            for name, specs in (("prefix", prefix), ("full", full)):
                times[name].append(1000 / model_steps_per_s(specs, args.seconds, info["peak_flops"]))
        a, b = statistics.median(times["prefix"]), statistics.median(times["full"])
        print(f"| {encoding} | {a:.1f} | {b:.1f} | {b / a:.2f}× |", flush=True)
    print(f"load at the end {load_average()}")


if __name__ == "__main__":
    main()
