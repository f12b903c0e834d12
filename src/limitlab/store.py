"""RunStore: an SQLite index (WAL) plus one folder per run, safe under SIGKILL and under concurrent processes.

Layout of a store directory::

    root/index.sqlite           one row per run: run_id, study, status, spec_json, owner, heartbeat, ...
    root/runs/<run_id>/spec.json
    root/runs/<run_id>/metrics.jsonl   appended, fsynced; a torn line from a crash is skipped on read
    root/runs/<run_id>/checkpoint.safetensors   replaced atomically; deleted when the run finishes
    root/runs/<run_id>/result.json     written atomically *before* the row is marked 'done'
    root/runs/<run_id>/weights.safetensors      the finished model's weights, when asked for (opt-in)

Every file is written to a temporary name in the same folder, fsynced, then ``os.replace``d, so a reader sees the
old file or the new one, never half of one. A run's status goes pending -> running -> done | failed; ``claim``
takes runs inside one ``BEGIN IMMEDIATE`` transaction, so two processes never take the same run. A 'running' run
whose owner stopped heartbeating (or whose process is gone, on this host) is stale and may be claimed again.
``RunStore(root, readonly=True)`` (``RunStore.open_readonly``) reads a store without writing to it, a store
shared read-only too (:mod:`limitlab.store_readonly`); the repairs made on opening are in
:mod:`limitlab.store_repair`. The store must live on a local filesystem (SQLite WAL does not work over NFS).
Nothing in it is executed: tensors are safetensors, everything else JSON or SQLite rows
(see :mod:`limitlab.store_files`).

>>> store = RunStore("runs/")                                        # doctest: +SKIP
>>> ids = store.add(specs)                                           # doctest: +SKIP
>>> for run_id in store.claim(ids):                                  # doctest: +SKIP
...     store.append_metrics(run_id, [{"step": 100, "loss": 0.3}])
...     store.finish(run_id, {"accuracy": 0.97})
>>> store.counts()                                                   # doctest: +SKIP
{'counting': {'pending': 0, 'running': 0, 'done': 3, 'failed': 0, 'stale': 0}}
>>> df = store.to_dataframe("counting")                              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limitlab.spec import RunSpec
from limitlab.store_files import (
    WEIGHTS,
    RunFiles,
    StoreError,
    _atomic_write,
    _jsonable,
)
from limitlab.store_readonly import find_store, read_index
from limitlab.store_repair import Repairs, _pid_alive

if TYPE_CHECKING:
    import pandas

STATUSES = ("pending", "running", "done", "failed", "damaged")  # damaged: done, but its result is unreadable
_NAME_MAX = 255  # bytes in one file name (Linux, macOS, Windows)
_CHUNK = 500  # ids per SQL "IN (...)" list, well under SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id    TEXT PRIMARY KEY,
    study     TEXT NOT NULL,
    status    TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    owner     TEXT,
    heartbeat REAL,
    created   REAL NOT NULL,
    updated   REAL NOT NULL,
    error     TEXT
);
CREATE INDEX IF NOT EXISTS runs_study_status ON runs (study, status);
"""


class RunStore(Repairs, RunFiles):
    """SQLite index + per-run folders under ``root``; see the module docstring."""

    def __init__(self, root: str | Path, stale_after: float = 120.0, readonly: bool = False) -> None:
        self.root = _store_root(root)
        self.runs_dir = self.root / "runs"
        self.stale_after = float(stale_after)
        self.readonly = bool(readonly)
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{secrets.token_hex(4)}"
        self._lock = threading.RLock()
        if self.readonly:  # the index is read into memory; nothing is created or changed on disk
            find_store(self.root)
            self._db = read_index(self.root)
            with self._transaction() as db:
                for statement in _SCHEMA.split(";"):
                    db.execute(statement)
            self._reconcile()
            return
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store directory {self.root} is not a directory (a file with that name exists)")
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe.{os.getpid()}.{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise StoreError(f"store directory {self.root} is not writable: {e.strerror or e}") from None
        try:
            self._db = sqlite3.connect(self.root / "index.sqlite", timeout=30.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 30000")
            _retry_locked(lambda: self._db.execute("PRAGMA journal_mode = WAL"))  # may not wait on busy_timeout
            self._db.execute("PRAGMA synchronous = NORMAL")  # survives process crashes; result.json covers the rest
            with self._transaction() as db:
                for statement in _SCHEMA.split(";"):
                    db.execute(statement)
        except sqlite3.Error as e:
            raise StoreError(f"store index {self.root / 'index.sqlite'} cannot be opened: {e}") from None
        self._reconcile()

    @classmethod
    def open_readonly(cls, root: str | Path, stale_after: float = 120.0) -> RunStore:
        """The store at ``root`` for reading only (``RunStore(root, readonly=True)``): no folder, file or index is
        created or changed, repairs are made in memory, a store shared read-only can be read; :class:`StoreError`
        (one line) if there is no store at ``root``; writing methods raise :class:`StoreError`."""
        return cls(root, stale_after, readonly=True)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def __reduce__(self) -> tuple:  # a pickled store reopens (with its own owner id) in the receiving process
        return (RunStore, (str(self.root), self.stale_after, self.readonly))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- index -----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-then-write decisions are atomic."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLite may have rolled back already (e.g. after SQLITE_FULL)
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as e:
                if getattr(e, "sqlite_errorcode", None) == 13 or "disk is full" in str(e):  # 13: SQLITE_FULL
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.root / "index.sqlite")) from e
                raise

    def _rows(self, run_ids: Sequence[str], columns: str) -> dict[str, tuple]:
        """{run_id: (columns...)} for the ids that are in the index."""
        out: dict[str, tuple] = {}
        ids = list(dict.fromkeys(run_ids))
        with self._lock:
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i:i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(f"SELECT run_id, {columns} FROM runs WHERE run_id IN ({marks})", chunk):
                    out[row[0]] = row[1:]
        return out

    def _is_stale(self, owner: str | None, heartbeat: float | None, now: float) -> bool:
        """A running row is stale if its heartbeat is old, or its owner is a process on this host that is gone."""
        if heartbeat is None or now - heartbeat > self.stale_after:
            return True
        host, _, rest = (owner or "").partition(":")
        pid = rest.partition(":")[0]
        return host == self.host and pid.isdigit() and not _pid_alive(int(pid))

    def damaged(self, study: str | None = None) -> dict[str, str]:
        """{run_id: reason} of the runs whose result was found damaged (they train again on the next run)."""
        where, args = ("AND study=?", (study,)) if study is not None else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT run_id, error FROM runs WHERE status='damaged' {where}", args)
            return dict(rows.fetchall())

    def add(self, specs: Iterable[RunSpec]) -> list[str]:
        """Register runs as 'pending' (runs already in the store are left alone); return their ids in order."""
        specs = list(specs)
        for spec in specs:
            if not isinstance(spec, RunSpec):
                raise TypeError(f"RunStore.add takes RunSpec objects; got {type(spec).__name__}")
        ids = [spec.run_id for spec in specs]
        known = self._rows(ids, "status")
        new = {spec.run_id: spec for spec in specs if spec.run_id not in known}
        self._check_writable()
        for run_id, spec in new.items():  # files first: a row always has its spec.json
            _atomic_write(self._dir(run_id) / "spec.json", spec.model_dump_json(indent=2).encode())
        self._insert(new.values())
        return ids

    def _insert(self, specs: Iterable[RunSpec]) -> None:
        """Index rows ('pending') for specs whose spec.json is written; rows already there are left alone."""
        now = time.time()
        rows = [(s.run_id, s.study, s.model_dump_json(), now, now) for s in specs]
        if rows:
            with self._transaction() as db:
                db.executemany("INSERT OR IGNORE INTO runs (run_id, study, status, spec_json, created, updated) "
                               "VALUES (?, ?, 'pending', ?, ?, ?)", rows)

    def claim(self, run_ids: Sequence[str], owner: str | None = None, retry_failed: bool = False) -> list[str]:
        """Atomically take the runs that are pending, damaged, stale, or (with ``retry_failed``) failed; never done."""
        self._check_writable()
        owner = owner or self.owner
        ids = list(dict.fromkeys(run_ids))
        taken: set[str] = set()
        with self._transaction() as db:
            now = time.time()
            rows = self._rows(ids, "status, owner, heartbeat")
            for run_id, (status, row_owner, beat) in rows.items():
                if (status in ("pending", "damaged") or (status == "failed" and retry_failed)
                        or (status == "running" and self._is_stale(row_owner, beat, now))):
                    taken.add(run_id)
            db.executemany("UPDATE runs SET status='running', owner=?, heartbeat=?, updated=?, error=NULL "
                           "WHERE run_id=?", [(owner, now, now, run_id) for run_id in taken])
        return [run_id for run_id in ids if run_id in taken]

    def heartbeat(self, run_ids: Sequence[str], owner: str | None = None) -> None:
        """Refresh the heartbeat of the given runs that are still 'running' under our owner id."""
        self._check_writable()
        now = time.time()
        with self._transaction() as db:
            db.executemany("UPDATE runs SET heartbeat=?, updated=? WHERE run_id=? AND status='running' AND owner=?",
                           [(now, now, run_id, owner or self.owner) for run_id in run_ids])

    def release(self, run_ids: Sequence[str], owner: str | None = None) -> None:
        """Give runs we own back to the queue ('running' -> 'pending'), e.g. on KeyboardInterrupt."""
        self._check_writable()
        now = time.time()
        with self._transaction() as db:
            db.executemany("UPDATE runs SET status='pending', owner=NULL, heartbeat=NULL, updated=? "
                           "WHERE run_id=? AND status='running' AND owner=?",
                           [(now, run_id, owner or self.owner) for run_id in run_ids])

    def finish(self, run_id: str, result: dict) -> None:
        """Write result.json atomically, delete the checkpoint (no longer needed), then mark the run 'done'. A run
        whose spec.json is missing (its folder deleted while it trained) gets it back from the index first."""
        self._check_writable()
        if not self._rows([run_id], "status"):
            raise KeyError(f"run {run_id} is not in the store {self.root}")
        self._restore_spec(run_id)  # a folder deleted while the run trained: never a result without its spec
        blob = json.dumps(result, indent=2, default=_jsonable).encode()
        _atomic_write(self._dir(run_id) / "result.json", blob)
        self._tidy(run_id)  # before the index: a process killed in between leaves a complete run for _reconcile
        with self._transaction() as db:
            db.execute("UPDATE runs SET status='done', error=NULL, heartbeat=NULL, updated=? WHERE run_id=?",
                       (time.time(), run_id))

    def reopen(self, run_ids: Sequence[str], why: str) -> None:
        """Put finished runs back to 'pending' to train them again: their result, metrics, weights and provenance
        are set aside with the suffix ``.reopened`` (kept, never read), and ``why`` is recorded as the row's note."""
        self._check_writable()
        with self._transaction() as db:  # first the index: a kill in between leaves pending runs with results,
            db.executemany(  # which _reconcile marks done again (nothing lost)
                "UPDATE runs SET status='pending', error=?, owner=NULL, heartbeat=NULL, updated=? "
                "WHERE run_id=? AND status='done'", [(why, time.time(), run_id) for run_id in run_ids])
        for run_id in run_ids:
            folder = self._dir(run_id)
            for name in ("result.json", "metrics.jsonl", WEIGHTS, "provenance.json", "stack.json"):
                if os.path.lexists(folder / name):
                    os.replace(folder / name, folder / f"{name}.reopened")

    def fail(self, run_id: str, error: str) -> None:
        """Mark a run 'failed' with an error message (it is retried only with ``claim(..., retry_failed=True)``)."""
        self._check_writable()
        with self._transaction() as db:
            db.execute("UPDATE runs SET status='failed', error=?, heartbeat=NULL, updated=? "
                       "WHERE run_id=? AND status != 'done'", (str(error), time.time(), run_id))

    def status_of(self, run_ids: Sequence[str]) -> dict[str, str]:
        """{run_id: status} for the ids that are in the store (unknown ids are left out)."""
        rows = self._rows(run_ids, "status")
        return {run_id: rows[run_id][0] for run_id in dict.fromkeys(run_ids) if run_id in rows}

    def counts(self, study: str | None = None) -> dict[str, dict[str, int]]:
        """{study: {'pending', 'running', 'done', 'failed', 'stale': n}}; a stale run counts as 'stale' only."""
        where, args = ("WHERE study=?", (study,)) if study is not None else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT study, status, owner, heartbeat FROM runs {where}", args).fetchall()
        out: dict[str, dict[str, int]] = {study: {}} if study is not None else {}
        now = time.time()
        for row_study, status, owner, beat in rows:
            if status == "running" and self._is_stale(owner, beat, now):
                status = "stale"
            out.setdefault(row_study, {})
            out[row_study][status] = out[row_study].get(status, 0) + 1
        keys = (*STATUSES, "stale")
        return {name: {key: c.get(key, 0) for key in keys} for name, c in sorted(out.items())}

    def spec(self, run_id: str) -> RunSpec:
        """The RunSpec of a stored run (KeyError if the run is not in the store)."""
        rows = self._rows([run_id], "spec_json")
        if run_id not in rows:
            raise KeyError(f"run {run_id} is not in the store {self.root}")
        return RunSpec.model_validate_json(rows[run_id][0])

    def to_dataframe(self, study: str | None = None) -> pandas.DataFrame:
        """One row per run: run_id, study, status, error, the spec's dotted fields, then ``result.*`` columns."""
        import pandas

        where, args = ("WHERE study=?", (study,)) if study is not None else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT run_id, study, status, error, spec_json FROM runs {where} "
                                    "ORDER BY rowid", args).fetchall()
        records = []
        for run_id, row_study, status, error, spec_json in rows:
            record: dict[str, Any] = {"run_id": run_id, "study": row_study, "status": status, "error": error}
            for key, value in _flatten(json.loads(spec_json)).items():  # same keys as RunSpec.flat()
                record.setdefault(key, value)
            result = self.result(run_id) if status == "done" else None
            record.update(_flatten(result or {}, "result."))
            records.append(record)
        return pandas.DataFrame.from_records(records, columns=None if records else ["run_id", "study", "status",
                                                                                    "error"])


def _store_root(root: str | Path) -> Path:
    """The absolute path of a store; :class:`StoreError` for an empty path or a name longer than the filesystem
    allows (``--store ''`` would otherwise mean the current folder)."""
    text = os.fspath(root)
    if not str(text).strip():
        raise StoreError("the store path is empty; give a folder, e.g. --store limitlab-store")
    path = Path(text).expanduser().absolute()
    for part in path.parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise StoreError(f"store path {str(text)[:60]!r}…: a name in it is {len(os.fsencode(part))} bytes long; "
                             f"a file name may have at most {_NAME_MAX}")
    return path


def _retry_locked(fn: Any, tries: int = 100) -> Any:
    """Call ``fn``, retrying for a few seconds while SQLite says the database is locked."""
    for attempt in range(tries):
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == tries - 1:
                raise
            time.sleep(0.05)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys (as RunSpec.flat); lists and empty dicts stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
