"""The scaling report: one page with a section per experiment found in the store, and one claims table.

``write_report(store, out_dir)`` reads every ``scaling`` run of the store, splits them by ``tags.experiment``,
hands each experiment's rows (plus their ``metrics.jsonl`` records, column ``metrics``) to that module's
``report_section`` (the contract is in :mod:`limitlab.studies.scaling`), and writes to ``out_dir``::

    results.json       {"schema": "limitlab.scaling.report/1", "store", "runs": {experiment: {status: count}},
                        "experiments": {experiment: results}, "claims": [row + "experiment"],
                        "figures": {"<experiment>/<key>": file name}, "errors": {experiment: message}}
    <experiment>_*.png the sections' figures
    index.html         the claims table first (one row per intuition), then each section

A section that raises is not allowed to take the whole report down: its error is shown in its place and kept in
``results.json["errors"]`` (the tests require that map to be empty).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from limitlab.report.html import VERDICT_CLASSES, Page
from limitlab.report.scale import add_scale_banner
from limitlab.studies import scaling as S

SCHEMA = "limitlab.scaling.report/1"


def runs_by_experiment(store: Any) -> dict[str, Any]:
    """{experiment: DataFrame of its runs (every status) with a ``metrics`` column}; untagged runs under ''."""
    frame = store.to_dataframe(S.STUDY_NAME)
    if frame.empty:
        return {}
    if "tags.experiment" not in frame.columns:
        frame["tags.experiment"] = ""
    frame["tags.experiment"] = frame["tags.experiment"].fillna("")
    frame["metrics"] = [store.metrics(r) if s != "pending" else [] for r, s in zip(frame["run_id"], frame["status"])]
    return {name: sub.reset_index(drop=True) for name, sub in frame.groupby("tags.experiment", sort=False)}


def _section(experiment: str, runs: Any, out: Path) -> S.Section:
    module = S.load(experiment)
    got = module.report_section(runs, out)
    if not (isinstance(got, tuple) and len(got) == 4):
        raise ValueError(f"{module.__name__}.report_section returned {type(got).__name__}; expected a Section "
                         "(results, figures, claims, render)")
    return S.Section(*got)


def write_report(store: Any, out_dir: str | Path) -> Path:
    """Write results.json, the figures and index.html for the scaling runs of ``store``; returns index.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = runs_by_experiment(store)
    results: dict[str, Any] = {"schema": SCHEMA, "store": str(getattr(store, "root", "")), "runs": {},
                               "experiments": {}, "claims": [], "figures": {}, "errors": {}}
    renders: dict[str, Any] = {}
    for experiment, runs in groups.items():
        results["runs"][experiment or "(untagged)"] = {k: int(v) for k, v in runs["status"].value_counts().items()}
    for experiment in S.EXPERIMENTS:
        if experiment not in groups:
            continue
        try:
            section = _section(experiment, groups[experiment], out)
        except Exception as exc:  # noqa: BLE001 - shown on the page and in results.json, never swallowed silently
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            results["errors"][experiment] = message
            continue
        results["experiments"][experiment] = section.results
        results["figures"].update({f"{experiment}/{k}": v for k, v in section.figures.items()})
        results["claims"] += [{"experiment": experiment, **row} for row in section.claims]
        renders[experiment] = section.render
    unknown = sorted(set(groups) - set(S.EXPERIMENTS))
    if unknown:
        results["errors"]["(unknown)"] = f"runs tagged with unknown experiment(s) {unknown}; not reported"
    blob = json.dumps(_clean(results), indent=2, allow_nan=False)
    tmp = out / ".results.json.tmp"
    tmp.write_text(blob)
    tmp.replace(out / "results.json")
    page = _page(results, renders, groups)
    if groups:
        add_scale_banner(page, S.STUDY_NAME, pd.concat(list(groups.values()), ignore_index=True))
    return page.write(out / "index.html")


def _page(results: dict[str, Any], renders: dict[str, Any], groups: dict[str, Any]) -> Page:
    page = Page("Scaling: Wei's intuitions about large language models, at small scale",
                "Models limitlab trains itself (thousands to millions of parameters, synthetic data and the Python "
                "standard library) tested against the intuitions of J. Wei, 'Some intuitions about large language "
                "models' (2023). Every number here was measured on the runs of this store.")
    counts = ", ".join(f"{e}: " + ", ".join(f"{n} {s}" for s, n in c.items()) for e, c in results["runs"].items())
    page.paragraph(f"Store {results['store']}. Runs per experiment: {counts or 'none'}.")
    if not groups:
        page.paragraph("No scaling runs in this store yet. Run `limitlab run scaling --preset smoke` (or quick) "
                       "first.", css="error")
    missing = [e for e in S.EXPERIMENTS if e not in groups]
    if missing and groups:
        page.paragraph("No runs in this store for: " + ", ".join(missing) + " (run `limitlab run scaling --preset "
                       "<experiment>-quick`).", css="note")
    page.heading("Wei's intuitions vs our numbers", anchor="claims")
    page.paragraph("One row per claim; 'ours' quotes the measured numbers, 'criterion' says what would count as "
                   "agreement, and 'not measured' means the runs in this store cannot decide it.")
    page.table(results["claims"], columns=["experiment", "intuition", "claim", "ours", "criterion", "verdict"],
               highlight={"verdict": VERDICT_CLASSES})
    for experiment in S.EXPERIMENTS:
        if experiment not in groups:
            continue
        page.heading(S.TITLES[experiment], anchor=experiment)
        if experiment in results["errors"]:
            page.paragraph(f"This section failed: {results['errors'][experiment]}", css="error")
            continue
        render = renders[experiment]
        if isinstance(render, str):
            page.raw(render)
        else:
            render(page)
    for name, message in results["errors"].items():
        if name not in S.EXPERIMENTS:
            page.paragraph(message, css="error")
    page.paragraph("Files: results.json holds every number on this page.")
    return page


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> python, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
