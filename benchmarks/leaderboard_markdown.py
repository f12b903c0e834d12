"""The leaderboard report's tables as Markdown, for docs/leaderboard-results.md.

Reads the ``results.json`` that ``limitlab report leaderboard --out DIR`` writes and prints, per task, every
encoding's scores per seed, how many seeds met the ID criterion and the ID / OOD mean ranks with their intervals;
then the overall ranks, the cost table and the papers' pairs and orders. Nothing is recomputed: every number is
the report's.

    python benchmarks/leaderboard_markdown.py /tmp/lb-report > /tmp/board.md
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def number(value: Any) -> str:
    """Three significant digits; '–' for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and abs(value) < 1e-9:
        return "0"  # a rank difference of exactly tied encodings, up to float rounding
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def rank(row: dict[str, Any]) -> str:
    return f"{row['mean_rank']:.2f} [{number(row['low'])}, {number(row['high'])}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def task_table(task: dict[str, Any]) -> str:
    """One task: per encoding (in OOD rank order, else ID) its scores per seed, ID met, and both ranks."""
    ids = {r["encoding"]: r for r in task["id_ranks"]}
    oods = {r["encoding"]: r for r in task["ood_ranks"]}
    order = [r["encoding"] for r in task["ood_ranks"]] or [r["encoding"] for r in task["id_ranks"]]
    rows = []
    for enc in order:
        runs = sorted((s for s in task["scores"] if s["encoding"] == enc), key=lambda s: s["seed"])
        rows.append([enc, ", ".join(number(s["id"]) for s in runs), f"{sum(s['ok'] for s in runs)}/{len(runs)}",
                     ", ".join(number(s["ood"]) for s in runs), rank(ids[enc]) if enc in ids else "–",
                     rank(oods[enc]) if enc in oods else "–"])
    return table(["encoding", "ID score per seed", "ID met", "OOD score per seed", "ID rank [95%]",
                  "OOD rank [95%]"], rows)


def overall_table(overall: dict[str, list[dict[str, Any]]]) -> str:
    ids = {r["encoding"]: r for r in overall["id"]}
    rows = [[r["encoding"], str(r["tasks"]), rank(r), str(ids[r["encoding"]]["tasks"]) if r["encoding"] in ids
             else "–", rank(ids[r["encoding"]]) if r["encoding"] in ids else "–"] for r in overall["ood"]]
    return table(["encoding", "tasks (OOD)", "OOD rank [95%]", "tasks (ID)", "ID rank [95%]"], rows)


def pivot(cells: dict[tuple[str, str], str], tasks: list[str]) -> str:
    """An encoding × task table of pre-formatted ``cells`` keyed (task, encoding)."""
    encodings = list(dict.fromkeys(enc for _, enc in cells))  # in the order first met
    rows = [[enc] + [cells.get((task, enc), "–") for task in tasks] for enc in encodings]
    return table(["encoding"] + tasks, rows)


def cost_table(cost: list[dict[str, Any]], tasks: list[str]) -> str:
    """The planner's memory estimate per model (MB), with the step time per model when a bench file was given."""
    cells = {(c["task"], c["encoding"]): number(c["memory_mb"]) + (f" · {number(c['ms_per_step'])} ms"
                                                                   if c.get("ms_per_step") else "") for c in cost}
    return pivot(cells, tasks)


def papers_tables(papers: dict[str, list[dict[str, Any]]]) -> str:
    pairs = [[p["paper"], p["place"], p["task"], p["split"], p["paper says"],
              f"{number(p['ours'])} [{number(p['low'])}, {number(p['high'])}]", f"**{p['verdict']}**", p["note"]]
             for p in papers["pairs"]]
    orders = [[o["paper"], o["where"], o["task"], o["split"], o["paper's order"], o["τ_b (ours)"],
               str(o["encodings"])] for o in papers["orders"]]
    return (table(["paper", "where", "task", "split", "paper says", "ours (95% interval)", "verdict", "note"], pairs)
            + "\n\n" + table(["paper", "where", "task", "split", "order", "τ_b", "encodings compared"], orders))


def stack_seconds(store: Path, tasks: list[str]) -> str:
    """Wall seconds per trained stack (3 seeds), per (task, encoding), from the store's run folders:
    ``stack.json`` is written when a worker claims the stack and ``result.json`` when a run's results are written
    (a one-thread worker on a quiet machine: about the stack's CPU time)."""
    seconds: dict[tuple[str, str], float] = {}
    for run in sorted((store / "runs").iterdir()):
        claimed, result = run / "stack.json", run / "result.json"
        if not (claimed.exists() and result.exists()):
            continue
        tags = json.loads((run / "spec.json").read_text()).get("tags", {})
        key = (tags.get("task", "?"), tags.get("encoding", "?"))
        seconds[key] = max(seconds.get(key, 0.0), result.stat().st_mtime - claimed.stat().st_mtime)
    return pivot({k: f"{v:.0f}" for k, v in seconds.items()}, tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, help="the folder `limitlab report leaderboard --out` wrote")
    parser.add_argument("--store", type=Path, help="also time each stack from this store's run folders")
    args = parser.parse_args()
    sections = json.loads((args.report / "results.json").read_text())["sections"]
    board = sections["board"]["results"]
    for name, task in board["tasks"].items():
        if task["scores"]:
            print(f"**{name}**\n\n{task_table(task)}\n")
    print(f"**Overall**\n\n{overall_table(board['overall'])}\n")
    tasks = [name for name, task in board["tasks"].items() if task["scores"]]
    title = "Memory per model, MB (planner estimate) · step time per model-step (bench, when given)"
    print(f"**{title}**\n\n{cost_table(sections['cost']['results']['cost'], tasks)}\n")
    print(f"**Papers**\n\n{papers_tables(sections['papers']['results'])}")
    if args.store:
        print(f"\n**Seconds per stack of 3 seeds**\n\n{stack_seconds(args.store, tasks)}")


if __name__ == "__main__":
    main()
