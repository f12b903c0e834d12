"""Exact match per test digit count for every finished arithmetic run of a store, one line per run.

    python benchmarks/arithmetic_per_seed.py /tmp/ar-repro

Each line: experiment, encoding, seed, exact match on the training distribution (the test split), then exact match
per test digit count n = 1.. against the true and against the truncated target (percent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(root: Path) -> None:
    rows = []
    for run in sorted((root / "runs").iterdir()):
        if not (run / "result.json").exists():
            continue
        spec = json.loads((run / "spec.json").read_text())
        result = json.loads((run / "result.json").read_text())
        true = result["lengths/accuracy_by_length"][1:]
        truncated = (result.get("lengths_truncated/accuracy_by_length") or [None])[1:]
        rows.append((spec["tags"]["experiment"], spec["model"]["position"], spec["seed"],
                     100 * result["test/accuracy"], true, truncated))
    for exp, pos, seed, in_dist, true, truncated in sorted(rows):
        print(f"{exp:24s} {pos:8s} {seed} ID {in_dist:.0f} | " + " ".join(f"{100 * x:.0f}" for x in true)
              + " | truncated " + " ".join(f"{100 * x:.0f}" for x in truncated if x is not None))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
