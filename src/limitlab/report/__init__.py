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

from limitlab.report.figures import heatmap, line_with_band, lines_with_bands, new_figure
from limitlab.report.html import VERDICT_CLASSES, Page, fmt
from limitlab.report.runs import run_counts, status_warnings
from limitlab.report.schema import ClaimRow, ProtocolRow, ReportResults, RunCounts, clean, validate_results
from limitlab.report.tables import VERDICTS, ClaimsTable, ProtocolTable, not_measured, show, verdict
from limitlab.report.write import write_json, write_report

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
