"""How a store repairs itself when it is opened: the run folders are the truth, and their integrity is checked.

Mixed into :class:`~limitlab.store.RunStore`, whose constructor calls :meth:`Repairs._reconcile`. A run folder
whose ``spec.json`` does not hash to the folder's name was edited (or damaged) and is never adopted: its name is
the content hash of the spec that was trained there, so the spec cannot be trusted to describe its result. A store
opened read-only makes every repair in its in-memory copy of the index and writes nothing.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from limitlab.spec import RunSpec
from limitlab.store_files import (
    CHECKPOINT,
    OLD_CHECKPOINT,
    RunFiles,
    StoreError,
    StoreWarning,
    _atomic_write,
    _read_regular,
)


class Repairs(RunFiles):
    """The repairs :class:`~limitlab.store.RunStore` makes on opening and on finishing a run."""

    root: Path
    readonly: bool

    def _reconcile(self) -> None:
        """Make the index agree with the run folders, which are the truth:

        * a run folder the index does not know (an emptied or deleted index.sqlite) is added back, as done when its
          result is complete, else pending — if its spec.json hashes to its folder's name; a folder whose spec was
          edited (or is unreadable) is named in one warning, left as it is, and never trained or adopted;
        * a run with a complete result.json is done, even if the process died before updating the index;
        * a 'done' run whose result is missing or unreadable is 'damaged': named in one warning, trained again.

        A read-only store makes these repairs in its in-memory copy of the index only.
        """
        with self._lock:
            rows = dict(self._db.execute("SELECT run_id, status FROM runs").fetchall())
        restored, refused = [], []
        for folder in sorted(self.runs_dir.iterdir()) if self.runs_dir.is_dir() else []:
            if folder.name not in rows and os.path.lexists(folder / "spec.json"):
                spec = self._folder_spec(folder.name)
                (restored if spec is not None else refused).append(spec or folder.name)
        if refused:
            warnings.warn(f"store {self.root}: {len(refused)} run folder(s) whose spec.json is unreadable or does not "
                          f"hash to the folder's name (edited?) are left out of the index and never trained: "
                          f"{_listed(refused)}", StoreWarning, stacklevel=3)
        if restored:
            self._insert(restored)
            warnings.warn(f"store {self.root}: {len(restored)} run(s) missing from the index were restored from "
                          "their folders", StoreWarning, stacklevel=3)
            rows.update({s.run_id: "pending" for s in restored})
        now = time.time()
        finished, damaged = [], []
        for run_id, status in rows.items():
            complete = self.result(run_id) is not None
            if complete and status != "done":
                finished.append(run_id)
            elif not complete and status == "done":
                damaged.append(run_id)
        if damaged:
            warnings.warn(f"{len(damaged)} finished run(s) have a missing or unreadable result.json and will be "
                          f"trained again: {_listed(damaged)}", StoreWarning, stacklevel=3)
        if finished or damaged:
            with self._transaction() as db:
                db.executemany("UPDATE runs SET status='done', error=NULL, updated=? WHERE run_id=?",
                               [(now, run_id) for run_id in finished])
                db.executemany("UPDATE runs SET status='damaged', error=?, updated=? WHERE run_id=?",
                               [("result.json missing or unreadable", now, run_id) for run_id in damaged])
            if self.readonly:
                return
            for run_id in finished:  # its process died between result.json and the index: finish its finish()
                self._tidy(run_id)
            for run_id in damaged:  # its spec.json may be gone with its folder
                self._restore_spec(run_id)

    def _folder_spec(self, run_id: str) -> RunSpec | None:
        """The RunSpec in runs/<run_id>/spec.json, or None if it is unreadable or does not hash to ``run_id``."""
        try:
            spec = RunSpec.model_validate_json(_read_regular(self._dir(run_id) / "spec.json") or b"")
        except (OSError, ValueError, ValidationError, StoreError):
            return None
        return spec if spec.run_id == run_id else None

    def _restore_spec(self, run_id: str) -> None:
        """Write runs/<run_id>/spec.json back from the index if it is missing (a folder deleted under a run)."""
        if not os.path.lexists(self._dir(run_id) / "spec.json"):
            spec_json = self._rows([run_id], "spec_json")[run_id][0]
            try:
                spec_json = RunSpec.model_validate_json(spec_json).model_dump_json(indent=2)  # as add() writes it
            except (ValueError, ValidationError):
                pass
            _atomic_write(self._dir(run_id) / "spec.json", spec_json.encode())

    def _tidy(self, run_id: str) -> None:
        """Delete a finished run's checkpoint and the temporary files of writers killed mid-write."""
        for name in (CHECKPOINT, OLD_CHECKPOINT):
            (self._dir(run_id) / name).unlink(missing_ok=True)
        for tmp in self._dir(run_id).glob(".*.tmp"):  # left by a writer killed mid-write: .NAME.PID.HEX.tmp
            pid = tmp.name.split(".")[-3]
            if not (pid.isdigit() and _pid_alive(int(pid))):
                tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed but not yet reaped) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
