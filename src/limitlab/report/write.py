"""Writing a report folder: results.json (validated, atomic), one PNG per figure, and index.html.

>>> from limitlab.report.html import Page                                                      # doctest: +SKIP
>>> write_report("reports/toy", results, {"curve.png": fig}, Page("toy"))                     # doctest: +SKIP
PosixPath('reports/toy/index.html')

The order is fixed so that a half-written folder never looks finished: figures first, then results.json (written
to a temporary file, flushed and renamed into place, so a reader sees the old file or the new one, never half of
one), then index.html last. results.json is checked against ``schema`` (default :class:`.schema.StudyResults`)
and made JSON-safe (NaN -> null) before anything is written.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from limitlab.report.html import Page
from limitlab.report.schema import StudyResults, clean, validate_results

__all__ = ["write_json", "write_report"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.png$")


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON (NaN refused: clean it first), atomically: temp file, fsync, rename."""
    path = Path(path)
    blob = json.dumps(data, indent=2, allow_nan=False)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_report(out_dir: str | Path, results: dict[str, Any], figures: Mapping[str, Any], page: Page,
                 schema: type[BaseModel] = StudyResults) -> Path:
    """Write ``figures`` ({file name: matplotlib Figure}, names like 'mthr_qc.png'), results.json and index.html
    into ``out_dir`` (created if needed); returns the path of index.html. ``results`` is cleaned (NaN -> null) and
    validated against ``schema`` first: a ValueError names the first bad field and nothing is written."""
    for name in figures:
        if not _NAME.match(name):
            raise ValueError(f"figure name {name!r} must be a plain file name ending in .png (letters, digits, _.-)")
    data = clean(results)
    validate_results(data, schema)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        fig.savefig(out / name)
    write_json(out / "results.json", data)
    return page.write(out / "index.html")
