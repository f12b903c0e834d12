"""Opening a store without writing to it: the index is copied into memory, read through a path that writes nothing.

``limitlab status``, ``runs``, ``report``, ``plan`` and ``export`` only read a store, and a store may be someone
else's, shared read-only (``chmod -R a-w``). SQLite's plain read-only mode (``mode=ro``) is not enough for a store
in WAL mode: on a writable folder it creates ``index.sqlite-wal`` and ``-shm`` and leaves them behind, and on an
unwritable folder it cannot open at all. So the index is read in one of three ways, then copied into an in-memory
database that the store works on (repairs found while reading are made there, never on disk):

1. no ``index.sqlite-wal`` beside it (the store was closed cleanly): ``immutable=1`` — no lock, no file created;
2. a WAL file (a sweep is writing, or a writer died): ``mode=ro``, which shares the writer's ``-shm`` and reads
   its committed rows;
3. if that cannot open (the folder is unwritable and the ``-shm`` is missing): the index and its WAL are copied
   into a temporary folder and read there (nobody can be writing to a folder no one may write to).

>>> db = read_index(Path("limitlab-store"))                        # doctest: +SKIP
>>> db.execute("SELECT COUNT(*) FROM runs").fetchone()              # doctest: +SKIP
(12,)
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import quote

from limitlab.store_files import StoreError

INDEX = "index.sqlite"


class NoStoreError(StoreError):
    """There is no store at the path given (nothing there, not a folder, or a folder without a store in it)."""


def find_store(root: Path) -> None:
    """Raise :class:`NoStoreError` (one line) unless ``root`` is a folder holding a store (an index or run folders)."""
    if not root.is_dir():
        what = "nothing there" if not os.path.lexists(root) else "not a folder"
        raise NoStoreError(f"no store at {root} ({what}); `limitlab run STUDY --store {root}` creates one")
    if not (root / INDEX).is_file() and not (root / "runs").is_dir():
        raise NoStoreError(f"no store at {root} (the folder has no {INDEX} and no runs/); "
                         f"`limitlab run STUDY --store {root}` creates one")


def read_index(root: Path) -> sqlite3.Connection:
    """An in-memory copy of ``root/index.sqlite`` (empty if there is none), read without writing to ``root``."""
    memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    index = root / INDEX
    if not index.is_file():
        return memory
    wal = root / f"{INDEX}-wal"
    queries = ["immutable=1"] if not os.path.exists(wal) else []
    queries.append("mode=ro")
    for query in queries:
        try:
            _copy(sqlite3.connect(f"file:{quote(str(index))}?{query}", uri=True), memory)
            return memory
        except sqlite3.DatabaseError:
            continue  # immutable raced a writer that just started; mode=ro could not open the -shm
    with tempfile.TemporaryDirectory(prefix="limitlab-index-") as tmp:
        for name in (INDEX, f"{INDEX}-wal"):
            if os.path.exists(root / name):
                shutil.copyfile(root / name, Path(tmp) / name)
        try:
            _copy(sqlite3.connect(Path(tmp) / INDEX), memory)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"store index {index} cannot be read: {e}") from None
    return memory


def _copy(source: sqlite3.Connection, memory: sqlite3.Connection) -> None:
    """Copy ``source`` whole into ``memory`` (one consistent snapshot), then close ``source``."""
    try:
        source.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # fails here if the file cannot be read
        source.backup(memory)
    finally:
        source.close()
