"""Progress of a sweep: a tqdm bar on a terminal, a plain line every ``interval`` seconds elsewhere (a batch job,
``nohup``, CI), so a long run is never silent in a log.

Progress counts model-steps, and the ETA weighs them by cost: executors report each stack's steps with ``work``,
its planned seconds per model-step (a model-step of a d = 128 stack costs far more than one of d = 8), so the
share done and the time left follow the work, not the step count.

>>> p = SweepProgress(total_steps=1000, total_runs=4, runs_done=1, interval=0, stream=sys.stdout, tty=False,
...                   total_work=2000.0)
>>> p.update(500, 1, work=500.0)  # doctest: +ELLIPSIS
progress: runs 2/4, model-steps 500/1000, 25% of the work, ETA ...
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class SweepProgress:
    """``update(model_steps, runs_finished)`` after every step; ``close()`` at the end."""

    def __init__(self, total_steps: int, total_runs: int, runs_done: int = 0, interval: float = 30.0,
                 stream: TextIO | None = None, tty: bool | None = None, quiet: bool = False,
                 total_work: float | None = None) -> None:
        self.total_steps, self.total_runs, self.runs_done = total_steps, total_runs, runs_done
        self.total_work = total_work if total_work else float(total_steps)  # without costs: a step is a unit
        self.steps, self.work, self.interval, self.quiet = 0, 0.0, interval, quiet
        self.stream = stream or sys.stderr
        self.start = self.last = time.monotonic()
        tty = self.stream.isatty() if tty is None else tty
        self.bar = None
        if tty and not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total_work, unit=" work", unit_scale=True, dynamic_ncols=True,
                            file=self.stream)

    def update(self, model_steps: int, runs_finished: int = 0, work: float | None = None) -> None:
        """``work``: the planned cost of these steps (default: one unit per model-step)."""
        self.steps += model_steps
        self.work += model_steps if work is None else work
        self.runs_done += runs_finished
        if self.bar is not None:
            self.bar.update(model_steps if work is None else work)  # its ETA follows the planned cost
            self.bar.set_postfix_str(f"runs {self.runs_done}/{self.total_runs}, model-steps {self.steps}",
                                     refresh=False)
            return
        now = time.monotonic()
        if not self.quiet and now - self.last >= self.interval:
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float) -> str:
        share = min(self.work / self.total_work, 1.0) if self.total_work else 1.0
        elapsed = max(now - self.start, 1e-9)
        eta = f"{elapsed * (1 - share) / share / 60:.1f} min" if share > 0 else "unknown"
        return (f"progress: runs {self.runs_done}/{self.total_runs}, model-steps {self.steps}/{self.total_steps}, "
                f"{share:.0%} of the work, ETA {eta}")

    def close(self) -> None:
        """Close the bar; without a terminal, print a last line (so a log always ends with the totals)."""
        if self.bar is not None:
            self.bar.close()
        elif not self.quiet:
            print(self.line(time.monotonic()), file=self.stream, flush=True)
