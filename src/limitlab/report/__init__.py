"""The shared report builder: a typed results.json, the protocol and claims tables, figure helpers, an HTML page,
and :func:`write_report` that writes them into one folder. A study's report computes its numbers with
:mod:`limitlab.analysis`, fills these in, and calls ``write_report(out_dir, results, figures, page)``.

* :mod:`.schema` — :class:`ReportResults` (the envelope every results.json has; subclass it to type a study's
  sections), :func:`validate_results`, :func:`clean` (NaN -> null);
* :mod:`.tables` — :class:`ProtocolTable` (paper vs ours, read from the stored specs), :class:`ClaimsTable`,
  :func:`verdict`, :func:`not_measured`, :func:`show`;
* :mod:`.figures` — :func:`new_figure` (Agg), :func:`heatmap`, :func:`line_with_band`, :func:`lines_with_bands`;
* :mod:`.html` — :class:`Page` (headings, paragraphs, tables, figures; self-contained index.html);
* :mod:`.runs` — :func:`run_counts` (the ``runs`` section), :func:`status_warnings` (failed / unfinished runs);
* :mod:`.write` — :func:`write_report`, :func:`write_json` (atomic).
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
    "ClaimRow": "limitlab.report.schema",
    "ProtocolRow": "limitlab.report.schema",
    "ReportResults": "limitlab.report.schema",
    "RunCounts": "limitlab.report.schema",
    "clean": "limitlab.report.schema",
    "validate_results": "limitlab.report.schema",
    "VERDICTS": "limitlab.report.tables",
    "ClaimsTable": "limitlab.report.tables",
    "ProtocolTable": "limitlab.report.tables",
    "not_measured": "limitlab.report.tables",
    "show": "limitlab.report.tables",
    "verdict": "limitlab.report.tables",
    "write_json": "limitlab.report.write",
    "write_report": "limitlab.report.write",
}

__all__ = [
    "VERDICTS",
    "VERDICT_CLASSES",
    "ClaimRow",
    "ClaimsTable",
    "Page",
    "ProtocolRow",
    "ProtocolTable",
    "ReportResults",
    "RunCounts",
    "clean",
    "fmt",
    "heatmap",
    "line_with_band",
    "lines_with_bands",
    "new_figure",
    "not_measured",
    "run_counts",
    "show",
    "status_warnings",
    "validate_results",
    "verdict",
    "write_json",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'limitlab.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
