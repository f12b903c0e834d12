"""Verdict stability: train a study's preset with 1 and with 2 torch threads, report both, compare every claim row.

Different thread counts round floats differently, so the two stores hold slightly different models. A verdict that
flips between them rests on rounding, not on the effect: each row must give the same verdict in both, or say
inconclusive in one of them.

    python benchmarks/verdict_stability.py counting                   # quick preset, stores under stability/
    python benchmarks/verdict_stability.py scaling --preset grokking-quick --root /tmp/stab

Prints a markdown table (claim, verdict with 1 thread, verdict with 2 threads, stable?) and writes it, with the
wall and CPU times and the load, to ``<root>/<study>-<preset>.json``. Exit status 1 when a row flips between
agree and disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DECIDED = {"agree", "disagree"}


def run(cmd: list[str]) -> tuple[float, float]:
    """Run a limitlab command line: (wall seconds, CPU seconds of the child). On a busy machine the wall time is
    inflated by the other load; the CPU time of a one-thread run is close to its wall time on a quiet core."""
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "limitlab.cli", *cmd], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def verdicts(report: Path) -> dict[str, dict]:
    rows = json.loads((report / "results.json").read_text())["claims"]
    return {r["id"]: r for r in rows}


def compare(one: dict[str, dict], two: dict[str, dict]) -> list[dict]:
    """One row per claim: both verdicts, both estimates, and whether the pair is stable (equal, or one of them
    inconclusive / not measured)."""
    rows = []
    for cid in dict.fromkeys([*one, *two]):
        a, b = one.get(cid, {}).get("verdict", "absent"), two.get(cid, {}).get("verdict", "absent")
        stable = a == b or not ({a, b} <= DECIDED)
        rows.append({"claim": cid, "threads_1": a, "threads_2": b, "ours_1": one.get(cid, {}).get("ours", ""),
                     "ours_2": two.get(cid, {}).get("ours", ""), "stable": stable})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--root", default="stability", help="folder for the two stores and reports")
    args = parser.parse_args(argv)
    root = Path(args.root)
    seconds, reports = {}, {}
    for threads in (1, 2):
        store = root / f"{args.study}-{args.preset}-t{threads}"
        out = store.with_name(store.name + "-report")
        train = ["run", args.study, "--preset", args.preset, "--store", str(store), "--threads", str(threads),
                 "--device", "cpu", "--quiet", "--yes"]
        seconds[f"train_{threads}"], seconds[f"train_{threads}_cpu"] = run(train)
        report = ["report", args.study, "--store", str(store), "--out", str(out)]
        seconds[f"report_{threads}"], seconds[f"report_{threads}_cpu"] = run(report)
        reports[threads] = verdicts(out)
    rows = compare(reports[1], reports[2])
    print("| claim | 1 thread | 2 threads | stable |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['claim']} | {r['threads_1']} | {r['threads_2']} | {'yes' if r['stable'] else '**no**'} |")
    print("seconds (wall; _cpu: CPU time of the child): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    print(f"load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    (root / f"{args.study}-{args.preset}.json").write_text(json.dumps({"rows": rows, "seconds": seconds,
                                                                        "load": os.getloadavg()}, indent=1))
    return 0 if all(r["stable"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
