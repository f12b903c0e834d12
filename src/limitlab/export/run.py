"""``limitlab export``: check the run and the destination, then write one exporter's folder and mark it.

Only a finished run exports (a pending or failed run may hold the weights of an attempt that never finished). The
destination is a folder: an existing file is refused, and so is a folder that holds files no export wrote (its
marker ``.limitlab-export`` is missing) unless ``force``; a folder an earlier export wrote is written again. Every
refusal is a one-line ``ValueError`` raised before anything is written.

>>> export_run(RunStore.open_readonly("limitlab-store"), "3f2a9c0d1e4b5a67", "hf", "exported/run")  # doctest: +SKIP
PosixPath('exported/run')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from limitlab.export.hf import export_hf
from limitlab.export.lens import check_lens_exportable, export_transformer_lens

MARKER = ".limitlab-export"
# exporter, and the check of the run's shape made first (hf checks its weights before their shape, as before)
EXPORTERS = {"hf": (None, export_hf), "transformer-lens": (check_lens_exportable, export_transformer_lens)}


def export_run(store: Any, run_id: str, to: str, out: str | Path, force: bool = False) -> Path:
    """Export the finished run ``run_id`` of ``store`` with exporter ``to`` into folder ``out``; returns ``out``."""
    if to not in EXPORTERS:
        raise ValueError(f"cannot export to {to!r}; allowed: {', '.join(EXPORTERS)}")
    check, export = EXPORTERS[to]
    try:
        spec = store.spec(run_id)
    except (KeyError, ValueError):
        raise ValueError(f"no run {run_id!r} in the store {str(store.root)!r}; `limitlab status --runs` lists the "
                         "runs") from None
    if check is not None:
        check(spec)
    status = store.status_of([run_id]).get(run_id)
    if status != "done":
        raise ValueError(f"run {run_id} is {status}, not done; only a finished run exports (`limitlab run` trains it, "
                         "`limitlab status --runs` shows why it failed)")
    out = Path(out)
    check_destination(out, force)
    written = export(store, run_id, out)
    (written / MARKER).write_text(f"written by limitlab export of run {run_id} --to {to}\n")
    return written


def check_destination(out: Path, force: bool = False) -> None:
    """Refuse an ``out`` that is a file, or a folder holding files that no export wrote (unless ``force``)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a folder (it is created if missing)")
    if out.is_dir() and not force and not (out / MARKER).exists() and any(out.iterdir()):
        raise ValueError(f"--out {str(out)!r} holds files that no limitlab export wrote; give another folder or add "
                         "--force to write into it")
