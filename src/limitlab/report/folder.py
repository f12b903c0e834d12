"""A report folder is published whole: written in a fresh sibling folder, then swapped into place.

A reader of ``reports/counting`` therefore sees the previous report or the new one, never new figures beside an
old page (a report killed mid-write leaves only a hidden ``.counting.*`` folder, removed by the next report into
the same place), and reports written into one place at once each land whole, the last one winning. A report
folder carries a marker file; a folder without it that holds anything is not replaced unless asked (``force``).

>>> with publishing("reports/counting") as tmp:                     # doctest: +SKIP
...     study.report(store, tmp)
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from limitlab.store import _pid_alive

MARKER = ".limitlab-report"


class FolderError(ValueError):
    """A destination that cannot take a report, with a one-line message."""


def check_destination(out: Path, force: bool = False) -> None:
    """Refuse a destination that is a file, or a folder with contents that no report wrote (unless ``force``)."""
    if out.exists() and not out.is_dir():
        raise FolderError(f"--out {str(out)!r} is a file; give a folder (it is created if missing)")
    if out.is_dir() and not force and not _is_report(out) and any(out.iterdir()):
        raise FolderError(f"--out {str(out)!r} holds files that no limitlab report wrote; give another folder or "
                          "add --force to replace it")


def _is_report(folder: Path) -> bool:
    return (folder / MARKER).exists() or ((folder / "index.html").exists() and (folder / "results.json").exists())


@contextlib.contextmanager
def publishing(out: str | Path) -> Iterator[Path]:
    """A fresh folder beside ``out`` to write into; swapped into ``out`` when the block ends without an error,
    removed when it raises."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _sweep_leftovers(out)
        tmp = out.parent / f".{out.name}.new-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
    except OSError as exc:
        raise FolderError(f"--out {str(out)!r} is not writable: {exc.strerror or exc}") from None
    try:
        yield tmp
        (tmp / MARKER).write_text("written by limitlab report\n")
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, out: Path, tries: int = 20) -> None:
    """Move ``tmp`` to ``out``, moving a previous ``out`` aside first (and deleting it after)."""
    for _ in range(tries):
        old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):  # another report landed in between: retry
                shutil.rmtree(old, ignore_errors=True)
                continue
            with contextlib.suppress(OSError):  # put the previous report back
                os.rename(old, out)
            raise FolderError(f"--out {str(out)!r} cannot be replaced: {exc.strerror or exc}") from None
        shutil.rmtree(old, ignore_errors=True)
        return
    raise FolderError(f"--out {str(out)!r}: other reports kept replacing it; try again")


def _sweep_leftovers(out: Path) -> None:
    """Remove hidden siblings left by reports into ``out`` whose process is gone (killed mid-write)."""
    for path in out.parent.glob(f".{out.name}.*-*-*"):
        pid = path.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
