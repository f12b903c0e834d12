"""The one report writer every study uses: run the study's experiments on the store, write one page.

``write_study_report(study, store, out_dir, options)`` reads the study's runs, runs each :class:`Experiment`
(:mod:`.sections`), and writes into ``out_dir``::

    results.json   schema 'limitlab.<study>.report/3' (:class:`limitlab.report.schema.StudyResults`): runs,
                   protocol, claims (every experiment's rows, as data), warnings, figures, sections {key: {title,
                   presets, runs, results}}
    *.png          every section's figures
    index.html     title, scale banner, the claims table, the protocol, then one part per experiment

A report never trains: an experiment that needs stored weights says which command keeps them.

>>> from limitlab.studies import STUDIES                                     # doctest: +SKIP
>>> write_study_report(STUDIES["counting"], RunStore("limitlab-store"), "reports/counting")   # doctest: +SKIP
PosixPath('reports/counting/index.html')
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd

from limitlab.analysis.frames import done
from limitlab.report.html import VERDICT_CLASSES, Page
from limitlab.report.runs import run_counts, status_warnings
from limitlab.report.scale import add_scale_banner
from limitlab.report.schema import StudyResults
from limitlab.report.sections import ReportContext, Section, figure_names
from limitlab.report.write import write_report

__all__ = ["CLAIM_COLUMNS", "presets_of", "study_sections", "write_study_report"]

CLAIM_COLUMNS = ["id", "paper", "place", "statement", "ours", "criterion", "untested", "verdict"]
_SHOWN = {"id": "claim", "place": "where", "untested": "does not test", "ours": "ours (95% interval)"}


def study_sections(study: Any, store: Any, options: Any = None) -> tuple[ReportContext, list[Section]]:
    """Run every experiment of ``study`` on ``store``: (the context, one section per experiment)."""
    raw = store.to_dataframe(study.name)
    ctx = ReportContext(study, store, raw, done(raw) if len(raw) else raw, options)
    return ctx, [experiment.run(ctx) for experiment in study.experiments]


@functools.lru_cache(maxsize=16)
def _preset_ids(study_name: str) -> dict[str, frozenset[str]]:
    from limitlab.studies import STUDIES

    study = STUDIES[study_name]
    out = {}
    for preset in study.presets:
        try:
            out[preset] = frozenset(spec.run_id for spec in study.specs(preset))
        except ValueError:  # a preset that needs an option (a corpus path) has no default runs
            continue
    return out


def presets_of(study: Any, run_ids: set[str]) -> list[str]:
    """The presets (default options) whose runs include some of ``run_ids``, most covered first; 'custom' for
    runs no preset lists (``--set`` overrides)."""
    if not run_ids:
        return []
    by_preset = _preset_ids(study.name) if study.name in _registered() else {}
    hits = sorted(((len(run_ids & ids), name) for name, ids in by_preset.items() if run_ids & ids), reverse=True)
    named = [name for _, name in hits]
    covered = set().union(*(by_preset[n] for n in named)) if named else set()
    return named + (["custom"] if run_ids - covered else [])


def _registered() -> set[str]:
    from limitlab.studies import STUDIES

    return set(STUDIES)


def claim_rows(study: Any, sections: list[Section]) -> list[dict[str, Any]]:
    """Every section's claim rows as JSON, each naming its study, experiment and the presets its runs came from."""
    rows = []
    for sec in sections:
        came_from = presets_of(study, sec.run_ids)
        for result in sec.claims:
            rows.append({**result.row(), "study": study.name, "experiment": sec.key,
                         "came_from": came_from if result.verdict != "not measured" else []})
    return rows


def claims_table(page: Page, rows: list[dict[str, Any]]) -> None:
    """The claims table, verdicts coloured."""
    shown = [{_SHOWN.get(k, k): r[k] for k in CLAIM_COLUMNS} for r in rows]
    page.table(shown, highlight={"verdict": VERDICT_CLASSES})


def write_study_report(study: Any, store: Any, out_dir: str | Path, options: Any = None) -> Path:
    """Run ``study``'s experiments on ``store`` and write the folder (see the module docstring); returns the path
    of index.html."""
    ctx, sections = study_sections(study, store, options)
    counts = run_counts(ctx.raw, used=len(ctx.runs))
    rows = claim_rows(study, sections)
    protocol = list(study.protocol(ctx)) if study.protocol is not None else []
    warnings = status_warnings(counts) + [w for sec in sections for w in sec.warnings]
    page = Page(f"{study.name}: {study.question}", f"Reproduces {study.reproduces}.")
    add_scale_banner(page, study, ctx.raw)
    page.paragraph(f"Store {getattr(store, 'root', store)}: {counts['total']} {study.name} run(s), {counts['done']} "
                   f"done, {counts['failed']} failed, {counts['pending'] + counts['running']} unfinished.")
    if not len(ctx.runs):
        page.paragraph(f"No finished {study.name} runs in this store: nothing to analyse yet. Run "
                       f"`limitlab run {study.name} --preset {next(iter(study.presets))}` first.", css="error")
    if warnings:
        page.bullets(warnings)
    tally = pd.Series([r["verdict"] for r in rows], dtype=object).value_counts()
    page.heading("Claims")
    page.paragraph("Each criterion was fixed from the paper's statement before the runs; its thresholds are the "
                   "numbers the code tests. Verdict: " + ", ".join(f"{v} {int(tally.get(v, 0))}" for v in
                                                                   VERDICT_CLASSES) + ".")
    claims_table(page, rows)
    if protocol:
        page.heading("Protocol: paper vs ours")
        page.table(protocol, highlight={"status": {"departure": "warn", "paper unknown": "muted"}})
    for sec in sections:
        page.heading(sec.title, anchor=sec.key)
        sec.render(page)
    results = {"schema": f"limitlab.{study.name}.report/3", "study": study.name, "runs": counts,
               "protocol": protocol, "claims": rows, "warnings": warnings,
               "figures": {name: name for sec in sections for name in sec.figures},
               "store": str(getattr(store, "root", "")),
               "sections": {sec.key: {"title": sec.title, "presets": presets_of(study, sec.run_ids),
                                      "runs": len(sec.run_ids), "results": sec.results} for sec in sections}}
    return write_report(out_dir, results, figure_names(sections), page, StudyResults)
