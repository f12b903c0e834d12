"""One page for every paper: each study's report, and every claim of every study in one table and one JSON.

``write_all(store, out)`` writes, published whole (:mod:`.folder`)::

    out/index.html        every claim: study, paper and place, statement, ours (interval, seeds), verdict, the
                          presets its runs came from, and a link to the part of its study page that decides it
    out/claims.json       the same rows as data (schema 'limitlab.claims/1') and a tally per study
    out/claims.md         the same table in Markdown, for a results document
    out/<study>/          each study's own report (index.html, results.json, figures), for studies with runs

A study with no runs in the store still lists its claims, 'not measured', each naming the preset that would
measure it (``limitlab run <study> --preset <preset>``).

>>> write_all(RunStore("limitlab-store"), "reports/all")                 # doctest: +SKIP
PosixPath('reports/all/index.html')
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from limitlab.report.html import VERDICT_CLASSES, Page
from limitlab.report.write import write_json

__all__ = ["SCHEMA", "write_all"]

SCHEMA = "limitlab.claims/1"
COLUMNS = ["claim", "paper, where", "statement", "ours", "seeds", "verdict", "runs from", "measured by preset"]


def _absent_rows(study: Any, why: str) -> list[dict[str, Any]]:
    """The declared claims of a study that has no report, each 'not measured' with ``why``."""
    rows = []
    for experiment in study.experiments:
        for claim in experiment.claims:
            row = claim.not_measured(why).row()
            rows.append({**row, "study": study.name, "experiment": experiment.key, "came_from": []})
    return rows


def collect(store: Any, folder: Path, studies: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Write each study's report that has runs into ``folder/<study>``; (claim rows, one summary per study)."""
    from limitlab import write_report as publish

    rows, summaries = [], []
    for name, study in studies.items():
        if not study.claims:  # a workbench study (tasks) tests no paper
            continue
        runs = sum(store.counts(name).get(name, {}).values())
        page = None
        if runs:
            try:
                publish(name, store, folder / name)
                page = f"{name}/index.html"
                mine = json.loads((folder / name / "results.json").read_text())["claims"]
            except ValueError as exc:  # a study whose report cannot be written: its claims say why
                mine = _absent_rows(study, f"its report failed: {exc}")
        else:
            mine = _absent_rows(study, f"no {name} runs in the store")
        for row in mine:
            row["page"] = f"{page}#{row['experiment']}" if page else None
        rows += mine
        summaries.append({"study": name, "reproduces": study.reproduces, "runs": runs, "page": page,
                          **Counter(r["verdict"] for r in mine)})
    return rows, summaries


def write_all(store: Any, out: str | Path, force: bool = False, studies: dict[str, Any] | None = None) -> Path:
    """Write every study's report and the all-claims page into ``out`` (see the module docstring); returns the
    path of index.html."""
    from limitlab.report.folder import check_destination, publishing
    from limitlab.studies import STUDIES

    out = Path(out)
    check_destination(out, force)
    with publishing(out) as tmp:
        rows, summaries = collect(store, tmp, dict(studies or STUDIES))
        write_json(tmp / "claims.json", {"schema": SCHEMA, "store": str(getattr(store, "root", "")),
                                         "studies": summaries, "claims": rows})
        _page(rows, summaries, str(getattr(store, "root", ""))).write(tmp / "index.html")
        (tmp / "claims.md").write_text(markdown(rows, summaries), encoding="utf-8")
    return out / "index.html"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[dict], summaries: list[dict]) -> str:
    """The studies' tally and the claims table as Markdown."""
    verdicts = list(VERDICT_CLASSES)
    out = ["| study | runs | " + " | ".join(verdicts) + " |", "|---|---|" + "---|" * len(verdicts)]
    out += [f"| {s['study']} | {s['runs']} | " + " | ".join(str(s.get(v, 0)) for v in verdicts) + " |"
            for s in summaries]
    out += ["", "| claim | paper, where | ours | seeds | verdict | criterion | does not test |",
            "|---|---|---|---|---|---|---|"]
    out += [f"| `{r['id']}` | {_cell(r['paper'])}, {_cell(r['place'])} | {_cell(r['ours'])} | {r['seeds']} | "
            f"**{r['verdict']}** | {_cell(r['criterion'])} | {_cell(r['untested']) or '—'} |" for r in rows]
    return "\n".join(out) + "\n"


def _page(rows: list[dict], summaries: list[dict], store: str) -> Page:
    page = Page("limitlab: every claim of every paper",
                f"Store {store}. One row per claim (its id starts with its study); the link leads to the part of the "
                "study's page that decides it, with the criterion and the numbers. Each criterion was fixed from the "
                "paper's statement before the runs. A claim not measured names the preset that measures it: "
                "`limitlab run STUDY --preset PRESET`.")
    page.heading("Studies")
    page.table([{"study": s["study"], "reproduces": s["reproduces"], "runs": s["runs"],
                 **{v: s.get(v, 0) for v in VERDICT_CLASSES}} for s in summaries],
               links={"study": [s["page"] for s in summaries]})
    page.heading("Claims")
    shown = [{"claim": r["id"], "paper, where": f"{r['paper']}, {r['place']}", "statement": r["statement"],
              "ours": r["ours"], "seeds": r["seeds"], "verdict": r["verdict"],
              "runs from": ", ".join(r["came_from"]) or "—", "measured by preset": r["preset"]} for r in rows]
    page.table(shown, columns=COLUMNS, highlight={"verdict": VERDICT_CLASSES},
               links={"claim": [r["page"] for r in rows]})
    return page
