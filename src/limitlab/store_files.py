"""The files of one run in a store folder: metrics stream, checkpoint, result and (opt-in) weights.

Every file is written to a temporary name in the same folder, fsynced, then ``os.replace``d, so a reader sees the
old file or the new one, never half of one. What is read back is checked: an unreadable checkpoint is moved aside
(``checkpoint.safetensors.corrupt``) with one warning and the run restarts from step 0; a result that is not a
complete result (missing, torn, empty, or not a JSON object) reads as None, so the index marks the run damaged
and it is trained again.

Nothing read from a store can run code, whoever wrote it: checkpoints and weights are safetensors
(:mod:`limitlab.store_codec`), never pickles, and a checkpoint whose layout is wrong is set aside like a torn
one. A file in a run folder is opened without following a symbolic link: a link, a FIFO or any other file that
is not a regular file is refused with one line (:class:`UnsafeFileError`), and a replaced file replaces the link
itself, never what it points to. ``checkpoint.pt`` files of older limitlab versions (pickles) are never loaded:
they are moved aside and their runs restart; their ``weights.pt`` are read with PyTorch's tensors-only loader.
"""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from limitlab.store_codec import (
    FormatError,
    check_tensors,
    decode_checkpoint,
    decode_weights,
    encode_checkpoint,
    encode_weights,
)

CHECKPOINT = "checkpoint.safetensors"  # the last checkpoint of an unfinished run
WEIGHTS = "weights.safetensors"  # a finished run's weights (limitlab run --save-weights)
OLD_CHECKPOINT, OLD_WEIGHTS = "checkpoint.pt", "weights.pt"  # pickles written by limitlab before safetensors
_NO_FOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO opens without waiting, then is refused


class StoreError(Exception):
    """A store that cannot be used, with a one-line, human message."""


class UnsafeFileError(StoreError):
    """A path in a run folder that is a symbolic link or not a regular file (never followed, read or written)."""

    def __init__(self, path: Path, kind: str, want: str = "a regular file") -> None:
        super().__init__(f"{path} is {kind}, not {want}; limitlab never follows links or opens special files inside "
                         "a store (remove it, and the run's files are written afresh)")
        self.kind = kind


class StoreWarning(UserWarning):
    """Something in a store was damaged and repaired; the message names the run and what was done."""


class RunFiles:
    """Per-run file access, mixed into :class:`~limitlab.store.RunStore` (which sets ``runs_dir``)."""

    runs_dir: Path
    readonly: bool = False

    def _check_writable(self) -> None:
        """Raise :class:`StoreError` if the store was opened read-only (``RunStore(path, readonly=True)``)."""
        if self.readonly:
            raise StoreError(f"store {self.runs_dir.parent} is opened read-only; open it with RunStore(path) to "
                             "change it")

    def _dir(self, run_id: str) -> Path:
        """runs/<run_id>; refused if the id is not a plain name or the folder is a link or not a directory."""
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise ValueError(f"not a run id: {run_id!r}")
        folder = self.runs_dir / run_id
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            return folder
        if not stat.S_ISDIR(mode):
            raise UnsafeFileError(folder, _kind(mode), "a run folder") from None
        return folder

    def append_metrics(self, run_id: str, records: Sequence[dict]) -> None:
        """Append records as JSON lines to runs/<id>/metrics.jsonl and fsync."""
        if not records:
            return
        self._check_writable()
        path = self._dir(run_id) / "metrics.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = "".join(json.dumps(r, default=_jsonable) + "\n" for r in records).encode()
        try:
            with os.fdopen(_open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT), "a+b") as f:
                if f.seek(0, os.SEEK_END) > 0:  # reads may seek; writes always append
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
        return _records(_read_regular(self._dir(run_id) / "metrics.jsonl") or b"")

    def save_checkpoint(self, run_id: str, state: dict) -> None:
        """Replace runs/<id>/checkpoint.safetensors atomically with the encoded ``state`` (see store_codec)."""
        self._check_writable()
        _atomic_write(self._dir(run_id) / CHECKPOINT, encode_checkpoint(state))

    def save_weights(self, run_id: str, weights: dict) -> None:
        """Keep a finished run's weights (runs/<id>/weights.safetensors, that model's slice of every stacked
        parameter)."""
        self._check_writable()
        _atomic_write(self._dir(run_id) / WEIGHTS, encode_weights(weights))

    def has_weights(self, run_id: str) -> bool:
        """Whether the run has saved weights (of this version or an older one)."""
        folder = self._dir(run_id)
        return any(os.path.lexists(folder / name) for name in (WEIGHTS, OLD_WEIGHTS))

    def load_weights(self, run_id: str, map_location: Any = "cpu") -> dict | None:
        """The weights saved with ``limitlab run --save-weights``, or None; :class:`StoreError` (one line) if the
        file is not a regular file of parameter tensors."""
        folder = self._dir(run_id)
        name = WEIGHTS
        try:
            data = _read_regular(folder / WEIGHTS)
            if data is not None:
                weights = decode_weights(data)
            else:
                name = OLD_WEIGHTS
                data = _read_regular(folder / OLD_WEIGHTS)
                if data is None:
                    return None
                weights = _old_weights(data)
        except FormatError as exc:
            raise StoreError(f"run {run_id}: {folder / name} is not usable weights: {exc}") from None
        return {k: v.to(map_location) for k, v in weights.items()}

    def load_checkpoint(self, run_id: str, map_location: Any = "cpu") -> dict | None:
        """The last saved checkpoint state, or None. Tensors load on ``map_location`` (cpu by default).

        A checkpoint that cannot be read or is not laid out as a checkpoint is moved aside
        (``checkpoint.safetensors.corrupt``) with one warning, and None is returned: the run restarts from step 0
        instead of stopping the sweep. A ``checkpoint.pt`` of an older limitlab (a pickle) is never loaded: it is
        moved to ``checkpoint.pt.old`` with one warning.
        """
        folder = self._dir(run_id)
        if os.path.lexists(folder / OLD_CHECKPOINT):
            self._set_aside(run_id, OLD_CHECKPOINT, ".old", "a pickle written by an older limitlab, never loaded")
        try:
            data = _read_regular(folder / CHECKPOINT)
            if data is None:
                return None
            state = decode_checkpoint(data)
        except (StoreError, ValueError, OSError) as exc:  # torn, crafted, a link: set it aside, restart the run
            reason = exc.kind if isinstance(exc, UnsafeFileError) else _first_line(exc)
            self.discard_checkpoint(run_id, reason)
            return None
        state["params"] = {k: v.to(map_location) for k, v in state["params"].items()}
        for key in ("exp_avg", "exp_avg_sq"):
            state["optim"][key] = [v.to(map_location) for v in state["optim"][key]]
        return state

    def discard_checkpoint(self, run_id: str, reason: str) -> None:
        """Move a run's checkpoint aside (``checkpoint.safetensors.corrupt``) and warn once."""
        self._set_aside(run_id, CHECKPOINT, ".corrupt", reason)

    def _set_aside(self, run_id: str, name: str, suffix: str, reason: str) -> None:
        """Rename runs/<id>/<name> (the link itself, if it is one) to <name><suffix>; one warning."""
        self._check_writable()
        folder = self._dir(run_id)
        try:
            os.replace(folder / name, folder / f"{name}{suffix}")
        except OSError as e:
            raise StoreError(f"run {run_id}: {folder / name} is unusable ({reason}) and cannot be moved aside: "
                             f"{e.strerror or e}") from None
        warnings.warn(f"run {run_id}: unusable checkpoint moved to {name}{suffix} ({reason}); the run restarts "
                      "from step 0", StoreWarning, stacklevel=3)

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop the metric records past ``after_step`` (those of an attempt that was cut off: on resume they are
        written again, never duplicated)."""
        self._check_writable()
        path = self._dir(run_id) / "metrics.jsonl"
        data = _read_regular(path) or b""
        records = _records(data)
        kept = [r for r in records if isinstance(r.get("step", 0), (int, float)) and r.get("step", 0) <= after_step]
        if len(kept) != len(records) or (data and not data.endswith(b"\n")):
            _atomic_write(path, "".join(json.dumps(r, default=_jsonable) + "\n" for r in kept).encode())

    def result(self, run_id: str) -> dict | None:
        """The result written by ``finish``, or None if there is none or it is not a complete result (a link or a
        special file in its place counts as none)."""
        path = self._dir(run_id) / "result.json"
        try:
            result = json.loads(_read_regular(path) or b"")
        except (OSError, ValueError, StoreError):
            return None
        return result if isinstance(result, dict) and result else None


def _records(data: bytes) -> list:
    """The JSON objects, one a line, of ``data``; lines torn by a crash (or not an object) are skipped."""
    out = []
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def _old_weights(data: bytes) -> dict[str, torch.Tensor]:
    """A ``weights.pt`` of an older limitlab, read by PyTorch's tensors-only unpickler (it refuses any other object;
    before torch 2.6 it could be tricked, so older torch versions do not read these files at all)."""
    if torch.torch_version.TorchVersion(torch.__version__) < (2, 6):
        raise FormatError(f"an older limitlab's pickle; reading it safely needs torch >= 2.6 (this is "
                          f"{torch.__version__}), or retrain the run with --save-weights")
    try:
        weights = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything this loader refuses (a pickle with code in it, a torn file)
        raise FormatError(f"not a file of tensors ({type(exc).__name__}: {_first_line(exc)})") from None
    return check_tensors(weights, OLD_WEIGHTS)


def _open_regular(path: Path, flags: int) -> int | None:
    """``os.open(path, flags)`` for a regular file only, never through a symbolic link; None if it is missing (and
    not being created). Anything else raises :class:`UnsafeFileError` before it is read or written."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            return None
    else:
        if not stat.S_ISREG(mode):
            raise UnsafeFileError(path, _kind(mode))
    try:
        fd = os.open(path, flags | _NO_FOLLOW, 0o666)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):  # swapped in since the lstat
            raise UnsafeFileError(path, "a symbolic link or a special file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafeFileError(path, _kind(mode))
    return fd


def _read_regular(path: Path) -> bytes | None:
    """The bytes of the regular file at ``path``, None if there is none; see :func:`_open_regular`."""
    fd = _open_regular(path, os.O_RDONLY)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return kind
    return "a device file"


def _first_line(exc: BaseException) -> str:
    """``exc`` as one line: its message's first line, after its type unless it is a FormatError (a message)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if text and isinstance(exc, FormatError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def _atomic_write(path: Path, data: bytes | Any) -> None:
    """Write ``data`` (bytes, or a function of a binary file) to ``path`` via temp file + fsync + os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb") as f:  # a new file (never through a link); os.replace swaps in the file, not a target
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
