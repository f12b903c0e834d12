"""Extra stdlib cells for the laws ladder's cheap corner: the runs the quick ladder leaves out under its 100× cut.

The quick ladder's held-out run is 2 layers d 48 at 540 steps; the claim fits L(N, D) on the cells with ≤ 1/100 of
its compute. This trains, with 3 seeds each, the 4 smallest sizes as long as that cut allows (225 / 105 / 65 / 45
steps) and two in-between widths (1 layer d 6 and d 10) at every quick budget under the cut, one stack per size,
into STORE. ``benchmarks/laws_heldout_miss.py LADDER_STORE --extra STORE`` then adds them to the claim's fit set.

    PYTHONPATH=src python benchmarks/laws_small_end_runs.py STORE
"""

from __future__ import annotations

import sys
import time

import torch

from limitlab.store import RunStore
from limitlab.studies.scaling.laws import QUICK_SIZES, laws_specs
from limitlab.train.trainer import train_runs


def main(root: str) -> None:
    torch.set_num_threads(1)
    held = laws_specs("stdlib", [QUICK_SIZES[-1]], [540], 1)[0]
    cut = held.tags["flops"] / 100
    sizes = [QUICK_SIZES[0], (1, 6, 1), QUICK_SIZES[1], (1, 10, 1), QUICK_SIZES[2], QUICK_SIZES[3]]
    in_ladder = {QUICK_SIZES[0]: {20, 60, 180}, QUICK_SIZES[1]: {20, 60}, QUICK_SIZES[2]: {20, 60},
                 QUICK_SIZES[3]: {20}}  # the quick ladder's cells under the cut
    specs = []
    for size in sizes:
        per_step = laws_specs("stdlib", [size], [100], 1)[0].tags["flops"] / 100
        longest = int(cut / per_step) // 5 * 5
        steps = sorted({s for s in (20, 60, 180, longest) if 20 <= s and s * per_step <= cut}
                       - in_ladder.get(size, set()))
        print(size, "longest under the cut", longest, "new budgets", steps, flush=True)
        if steps:
            specs += laws_specs("stdlib", [size], steps, 3)
    store = RunStore(root)
    store.add(specs)
    start = time.process_time()
    stacks: dict[str, list] = {}
    for spec in specs:
        stacks.setdefault(spec.model.model_dump_json(), []).append(spec)
    for stack in stacks.values():
        train_runs(stack, store)
    print(len(specs), "runs, CPU", round(time.process_time() - start, 1), "s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
