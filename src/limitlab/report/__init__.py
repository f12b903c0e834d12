"""The shared report builder. A study's report is its experiments (:mod:`.sections`) rendered by the one generic
writer (:mod:`.study_report`); these are the pieces they use:

* :mod:`.sections` — :class:`Experiment`, :class:`Section`, :class:`ReportContext` (the study contract);
* :mod:`.study_report` — :func:`write_study_report`; :mod:`.all_claims` — every claim of every study on one page;
* :mod:`.schema` — :class:`StudyResults` (the one results.json schema), :func:`validate_results`, :func:`clean`;
* :mod:`.tables` — :class:`ProtocolTable` (paper vs ours, read from the stored specs), :func:`show`;
* :mod:`.figures` — :func:`new_figure` (Agg), :func:`heatmap`, :func:`line_with_band`, :func:`lines_with_bands`;
* :mod:`.html` — :class:`Page` (headings, paragraphs, tables, figures; self-contained index.html);
* :mod:`.runs` — :func:`run_counts` (the ``runs`` section), :func:`status_warnings` (failed / unfinished runs);
* :mod:`.write` — :func:`write_report`, :func:`write_json` (atomic).

Claims themselves are data: :mod:`limitlab.claims`.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {  # public name -> module (imported when first used: the study contract imports this package)
    "heatmap": "limitlab.report.figures",
    "line_with_band": "limitlab.report.figures",
    "lines_with_bands": "limitlab.report.figures",
    "new_figure": "limitlab.report.figures",
    "VERDICT_CLASSES": "limitlab.report.html",
    "Page": "limitlab.report.html",
    "fmt": "limitlab.report.html",
    "run_counts": "limitlab.report.runs",
    "status_warnings": "limitlab.report.runs",
    "ProtocolRow": "limitlab.report.schema",
    "RunCounts": "limitlab.report.schema",
    "StudyResults": "limitlab.report.schema",
    "clean": "limitlab.report.schema",
    "validate_results": "limitlab.report.schema",
    "ProtocolTable": "limitlab.report.tables",
    "show": "limitlab.report.tables",
    "write_json": "limitlab.report.write",
    "write_report": "limitlab.report.write",
}

__all__ = [
    "VERDICT_CLASSES",
    "Page",
    "ProtocolRow",
    "ProtocolTable",
    "RunCounts",
    "StudyResults",
    "clean",
    "fmt",
    "heatmap",
    "line_with_band",
    "lines_with_bands",
    "new_figure",
    "run_counts",
    "show",
    "status_warnings",
    "validate_results",
    "write_json",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'limitlab.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
