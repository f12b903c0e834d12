"""A bridge, only while a scaling experiment is not yet on the contract: wraps an old
``report_section(runs, out_dir) -> (results, figures, claims, render)`` as an :class:`Experiment`.

The old function gets what it used to get (every run of the experiment, any status, with a ``metrics`` column of
its ``metrics.jsonl`` records) and writes its PNGs into a temporary folder; the section replays its page calls,
hands its PNG files to the generic writer, and shows its old claim rows as a plain table inside the section (they
are prose, not :class:`~limitlab.claims.Claim` data, so they stay out of the study's claims table). Delete this
module once every experiment module defines ``EXPERIMENT``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from limitlab.report.sections import Experiment, ReportContext, Section


class _Png:
    """A PNG the old code wrote, held in memory; the writer saves it (what :meth:`Section.figure` needs)."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()

    def savefig(self, target: str | Path) -> None:
        Path(target).write_bytes(self.data)


class _Recorder:
    """Stands in for the page an old ``render(page)`` writes on: every call becomes a block of the section."""

    def __init__(self, section: Section, folder: Path) -> None:
        self.section, self.folder = section, folder

    def figure(self, src: str, caption: str, **_: Any) -> None:
        self.section.figure(Path(src).name, _Png(self.folder / Path(src).name), caption)

    def heading(self, text: str, level: int = 3, **_: Any) -> None:
        self.section.heading(text)

    def __getattr__(self, method: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self.section.blocks.append((method, args, kwargs))

        return record


def adapt(key: str, title: str, report_section: Callable[..., Any]) -> Experiment:
    """The :class:`Experiment` that runs an old ``report_section`` (see the module docstring)."""

    def analyze(ctx: ReportContext) -> Section:
        sec = Section(key, title)
        raw = ctx.raw
        if not len(raw) or "tags.experiment" not in raw:
            sec.paragraph(f"No {key} runs in this store.", css="note")
            return sec
        runs = raw[raw["tags.experiment"] == key].reset_index(drop=True)
        if runs.empty:
            sec.paragraph(f"No {key} runs in this store.", css="note")
            return sec
        runs["metrics"] = [ctx.store.metrics(r) if s != "pending" else [] for r, s in
                           zip(runs["run_id"], runs["status"])]
        sec.uses(runs[runs["status"] == "done"])
        with tempfile.TemporaryDirectory(prefix=f"limitlab-{key}-") as tmp:
            folder = Path(tmp)
            results, _figures, claims, render = report_section(runs, folder)
            sec.results.update(results)
            if claims:
                sec.table(claims, caption="Claims of this experiment (not yet on the claims-as-data contract)")
            if isinstance(render, str):
                sec.blocks.append(("raw", (render,), {}))
            else:
                render(_Recorder(sec, folder))
        return sec

    return Experiment(key, title, (), analyze)
