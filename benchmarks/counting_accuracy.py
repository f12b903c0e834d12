"""Test accuracy per (task, m) at chosen d from a counting store, for the results doc's tables.

Prints mean [min, max] over the done runs of each cell (or one seed's value with ``--seed``), one row per task,
e.g. the d = 64 table and the learning-rate probe of docs/counting-results.md::

    python benchmarks/counting_accuracy.py /tmp/t-count64 --d 64
    python benchmarks/counting_accuracy.py /tmp/csmall-1e-3 --d 4 8 16 32 --seed 0
"""

from __future__ import annotations

import argparse

from limitlab.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("--d", type=int, nargs="+", required=True)
    parser.add_argument("--seed", type=int, help="one seed's values instead of mean [min, max] over seeds")
    args = parser.parse_args()
    runs = RunStore(args.store).to_dataframe("counting")
    runs = runs[runs["status"] == "done"]
    if args.seed is not None:
        runs = runs[runs["seed"] == args.seed]
    for d in args.d:
        for kind, group in runs[runs["model.d_model"] == d].groupby("task.kind"):
            cells = []
            for m, acc in group.groupby("task.m")["result.test/accuracy"]:
                text = f"{acc.mean():.2f}" if len(acc) == 1 or acc.max() - acc.min() < 0.005 else \
                    f"{acc.mean():.2f} [{acc.min():.2f}, {acc.max():.2f}]"
                cells.append(f"m = {m}: {text}")
            print(f"d = {d}, {kind.upper()} ({group['seed'].nunique()} seed(s)): " + "; ".join(cells))


if __name__ == "__main__":
    main()
