"""Step time of chosen (task, encoding) stacks of a leaderboard preset, in ``limitlab bench --json``'s format.

``limitlab bench --preset leaderboard/quick`` times every stack of the whole preset; this script times the stacks
of a part of it (``study.tasks`` × ``study.encodings``) with the same function (:func:`limitlab.bench.measure`,
eager mode, no one-at-a-time baselines), so that a report of that part can show step times::

    python benchmarks/leaderboard_bench.py --preset quick --tasks counting lm --encodings learned cope \\
        --threads 1 --out bench.json
    limitlab report leaderboard --set bench=bench.json
"""

from __future__ import annotations

import argparse
import json

import torch

from limitlab.bench import measure
from limitlab.bench_device import device_info, load_average
from limitlab.studies import STUDIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--tasks", nargs="+", required=True)
    parser.add_argument("--encodings", nargs="+", required=True)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = device_info("cpu")
    rows = []
    for task in args.tasks:
        for encoding in args.encodings:
            specs = STUDIES["leaderboard"].specs(args.preset, {"study.tasks": [task], "study.encodings": [encoding]})
            row = measure(specs, modes=["eager"], device="cpu", seconds=args.seconds, loop=False, loop_models=1,
                          repeat=1, peak=info["peak_flops"])
            row["labels"] = {"task": specs[0].task.name, "position": encoding,
                             "tags": {"task": task, "encoding": encoding}}
            rows.append(row)
            print(task, encoding, f"{1000 / row['modes']['eager']['stacked']['model_steps_per_s']:.1f} ms/model-step",
                  flush=True)
    info["load_avg_end"] = load_average()
    with open(args.out, "w") as f:
        json.dump({"info": info, "modes": ["eager"], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
