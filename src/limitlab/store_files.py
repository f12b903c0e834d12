"""The files of one run in a store folder: metrics stream, checkpoint, result and (opt-in) weights.

Every file is written to a temporary name in the same folder, fsynced, then ``os.replace``d, so a reader sees the
old file or the new one, never half of one. What is read back is checked: an unreadable checkpoint is moved aside
(``checkpoint.pt.corrupt``) with one warning and the run restarts from step 0; a result that is not a complete
result (missing, torn, empty, or not a JSON object) reads as None, so the index marks the run damaged and
it is trained again.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


class StoreWarning(UserWarning):
    """Something in a store was damaged and repaired; the message names the run and what was done."""


class RunFiles:
    """Per-run file access, mixed into :class:`~limitlab.store.RunStore` (which sets ``runs_dir``)."""

    runs_dir: Path

    def _dir(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.runs_dir / run_id

    def append_metrics(self, run_id: str, records: Sequence[dict]) -> None:
        """Append records as JSON lines to runs/<id>/metrics.jsonl and fsync."""
        if not records:
            return
        path = self._dir(run_id) / "metrics.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = "".join(json.dumps(r, default=_jsonable) + "\n" for r in records).encode()
        try:
            with open(path, "a+b") as f:  # reads may seek; writes always append
                if f.seek(0, os.SEEK_END) > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":  # a crash tore the last line: start a fresh one so the torn one stays apart
                        blob = b"\n" + blob
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # e.g. a full disk; a part of the blob may be written: a torn line, skipped on read
            if e.filename is None:
                raise _named(e, path) from e
            raise

    def metrics(self, run_id: str) -> list[dict]:
        """The metric records of a run, in order; lines torn by a crash are skipped."""
        path = self._dir(run_id) / "metrics.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def save_checkpoint(self, run_id: str, state: dict) -> None:
        """Replace runs/<id>/checkpoint.pt atomically with ``torch.save(state)``."""
        _atomic_write(self._dir(run_id) / "checkpoint.pt", lambda f: torch.save(state, f))

    def save_weights(self, run_id: str, weights: dict) -> None:
        """Keep a finished run's weights (runs/<id>/weights.pt, that model's slice of every stacked parameter)."""
        _atomic_write(self._dir(run_id) / "weights.pt", lambda f: torch.save(weights, f))

    def load_weights(self, run_id: str, map_location: Any = "cpu") -> dict | None:
        """The weights saved with ``limitlab run --save-weights``, or None."""
        path = self._dir(run_id) / "weights.pt"
        return torch.load(path, map_location=map_location, weights_only=True) if path.exists() else None

    def load_checkpoint(self, run_id: str, map_location: Any = "cpu") -> dict | None:
        """The last saved checkpoint state, or None. Tensors load on ``map_location`` (cpu by default).

        A checkpoint that cannot be read is moved aside (``checkpoint.pt.corrupt``) with one warning, and None is
        returned: the run restarts from step 0 instead of stopping the sweep.
        """
        path = self._dir(run_id) / "checkpoint.pt"
        if not path.exists():
            return None
        try:
            try:
                state = torch.load(path, map_location=map_location, weights_only=True)
            except pickle.UnpicklingError:  # a state with non-tensor objects; the file is our own, so trust it
                state = torch.load(path, map_location=map_location, weights_only=False)
            if not isinstance(state, dict):
                raise ValueError(f"a {type(state).__name__}, not a dict")
            return state
        except Exception as exc:  # noqa: BLE001 - any unreadable file: set it aside, restart the run
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.discard_checkpoint(run_id, f"{type(exc).__name__}: {detail}".rstrip(": "))
            return None

    def discard_checkpoint(self, run_id: str, reason: str) -> None:
        """Move a run's checkpoint aside (``checkpoint.pt.corrupt``) and warn once."""
        folder = self._dir(run_id)
        os.replace(folder / "checkpoint.pt", folder / "checkpoint.pt.corrupt")
        warnings.warn(f"run {run_id}: unreadable checkpoint moved to checkpoint.pt.corrupt ({reason}); "
                      "the run restarts from step 0", StoreWarning, stacklevel=2)

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop the metric records past ``after_step`` (those of an attempt that was cut off: on resume they are
        written again, never duplicated)."""
        path = self._dir(run_id) / "metrics.jsonl"
        records = self.metrics(run_id)
        kept = [r for r in records if r.get("step", 0) <= after_step]
        if len(kept) != len(records) or (path.exists() and not path.read_bytes().endswith(b"\n")):
            _atomic_write(path, "".join(json.dumps(r, default=_jsonable) + "\n" for r in kept).encode())

    def result(self, run_id: str) -> dict | None:
        """The result written by ``finish``, or None if there is none or it is not a complete result."""
        path = self._dir(run_id) / "result.json"
        try:
            result = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return result if isinstance(result, dict) and result else None


def _atomic_write(path: Path, data: bytes | Any) -> None:
    """Write ``data`` (bytes, or a function of a binary file) to ``path`` via temp file + fsync + os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # a failed write or fsync (a full disk): name the file
            raise _named(e, path) from e
        raise
    fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _named(error: OSError, path: Path) -> OSError:
    """The same OSError (errno and message) with ``path`` as its file name, for a one-line message."""
    return OSError(error.errno, error.strerror, str(path))


def _jsonable(value: Any) -> Any:
    """json.dumps fallback for tensors and numpy scalars/arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
