"""Progress of a sweep: a tqdm bar on a terminal, a plain line every ``interval`` seconds elsewhere (a batch job,
``nohup``, CI), so a long run is never silent in a log.

>>> p = SweepProgress(total_steps=1000, total_runs=4, runs_done=1, interval=0, stream=sys.stdout, tty=False)
>>> p.update(500, 1)  # doctest: +ELLIPSIS
progress: runs 2/4, model-steps 500/1000 (50%), ... model-steps/s, ETA ...
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class SweepProgress:
    """``update(model_steps, runs_finished)`` after every step; ``close()`` at the end."""

    def __init__(self, total_steps: int, total_runs: int, runs_done: int = 0, interval: float = 30.0,
                 stream: TextIO | None = None, tty: bool | None = None, quiet: bool = False) -> None:
        self.total_steps, self.total_runs, self.runs_done = total_steps, total_runs, runs_done
        self.steps, self.interval, self.quiet = 0, interval, quiet
        self.stream = stream or sys.stderr
        self.start = self.last = time.monotonic()
        tty = self.stream.isatty() if tty is None else tty
        self.bar = None
        if tty and not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, unit="model-step", unit_scale=True, dynamic_ncols=True,
                            file=self.stream)

    def update(self, model_steps: int, runs_finished: int = 0) -> None:
        self.steps += model_steps
        self.runs_done += runs_finished
        if self.bar is not None:
            self.bar.update(model_steps)
            self.bar.set_postfix_str(f"runs {self.runs_done}/{self.total_runs}", refresh=False)
            return
        now = time.monotonic()
        if not self.quiet and now - self.last >= self.interval:
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float) -> str:
        rate = self.steps / max(now - self.start, 1e-9)
        left = max(self.total_steps - self.steps, 0)
        eta = f"{left / rate / 60:.1f} min" if rate > 0 else "unknown"
        share = self.steps / self.total_steps if self.total_steps else 1.0
        return (f"progress: runs {self.runs_done}/{self.total_runs}, model-steps {self.steps}/{self.total_steps} "
                f"({share:.0%}), {rate:.0f} model-steps/s, ETA {eta}")

    def close(self) -> None:
        """Close the bar; without a terminal, print a last line (so a log always ends with the totals)."""
        if self.bar is not None:
            self.bar.close()
        elif not self.quiet:
            print(self.line(time.monotonic()), file=self.stream, flush=True)
