"""What the store holds for a report: run counts by status and the warnings every report starts with.

>>> raw = pd.DataFrame({"status": ["done", "done", "failed", "pending"]})
>>> run_counts(raw, used=2)
{'total': 4, 'done': 2, 'failed': 1, 'pending': 1, 'running': 0, 'used': 2}
>>> status_warnings(run_counts(raw, used=2))
['1 run(s) failed (diverged or errored) and are left out.', \
'1 run(s) are not finished yet; this report covers the finished ones only.']
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["run_counts", "status_warnings"]


def run_counts(raw: pd.DataFrame, used: int | None = None) -> dict[str, Any]:
    """``{total, done, failed, pending, running, used}`` from the store's DataFrame (the ``runs`` section of
    results.json); ``used`` = the finished runs the report analyses (default: the done ones)."""
    status = raw["status"].value_counts().to_dict() if "status" in raw else {}
    done = int(status.get("done", 0))
    return {"total": len(raw), "done": done, "failed": int(status.get("failed", 0)),
            "pending": int(status.get("pending", 0)), "running": int(status.get("running", 0)),
            "used": done if used is None else int(used)}


def status_warnings(counts: dict[str, Any]) -> list[str]:
    """The report's first warnings: failed runs left out, unfinished runs not covered."""
    out = []
    if counts.get("failed"):
        out.append(f"{counts['failed']} run(s) failed (diverged or errored) and are left out.")
    unfinished = counts.get("pending", 0) + counts.get("running", 0)
    if unfinished:
        out.append(f"{unfinished} run(s) are not finished yet; this report covers the finished ones only.")
    return out
