"""``limitlab runs``: the store's one-row-per-run frame as CSV, JSON or Parquet, written safely.

A file is written to a temporary name beside its destination and renamed into place, so a failed write (a full
disk, a value Parquet cannot hold) leaves the previous file or none, never a truncated one; an existing file is
replaced only when asked (``force``). Parquet keeps nested values: an empty dict (an encoding without options)
becomes null, since Parquet has no empty struct, and every other column round-trips
(``pandas.read_parquet(path)`` gives back the same rows).

>>> write_table(frame, "parquet", "runs.parquet")                 # doctest: +SKIP
'runs.parquet'
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pandas as pd

FORMATS = ("csv", "json", "parquet")


class TableError(ValueError):
    """A destination or format that cannot be written, with a one-line message."""


def parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with empty-dict cells (no Parquet type) as None; other values as they are."""
    out = frame.copy()
    for column in out.select_dtypes(include="object").columns:
        out[column] = out[column].map(lambda v: None if isinstance(v, dict) and not v else v)
    return out


def write_table(frame: pd.DataFrame, fmt: str, out: str | Path, force: bool = False) -> str:
    """Write ``frame`` to ``out`` in ``fmt`` (see the module docstring); returns the path written."""
    if fmt not in FORMATS:
        raise TableError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    path = Path(out)
    if path.is_dir():
        raise TableError(f"--out {str(path)!r} is a folder; give a file name")
    if path.exists() and not force:
        raise TableError(f"--out {str(path)!r} exists; add --force to replace it")
    if not path.parent.is_dir():
        raise TableError(f"--out {str(path)!r}: folder {str(path.parent)!r} does not exist")
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        elif fmt == "json":
            tmp.write_text(frame.to_json(orient="records", indent=1))
        else:
            try:
                parquet_ready(frame).to_parquet(tmp, index=False)
            except ImportError as exc:
                raise TableError(f"--format parquet needs pyarrow (pip install pyarrow): {exc}") from None
        os.replace(tmp, path)
    except OSError as exc:
        raise TableError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    except (TypeError, ValueError, NotImplementedError) as exc:  # pyarrow's errors derive from these
        if isinstance(exc, TableError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TableError(f"cannot write the runs as {fmt}: {first}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return str(path)
