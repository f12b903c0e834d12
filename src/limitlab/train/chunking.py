"""How many models a CPU step runs at a time: measured on this machine, once per stack shape, and remembered.

On a CPU a stack's forward/backward/update runs in chunks of ``c`` models (:func:`limitlab.train.fast.train_step`).
Which ``c`` is fastest depends on the shape *and* on the machine — its caches, cores, threads and PyTorch build —
so it is not predicted from the shape but timed: a few steps of every candidate (:func:`candidates`: powers of two
below M, and M) on a throwaway copy of the stack, the fastest kept. The answer is stored in a small JSON file
(:func:`cache_file`), keyed by the machine (:func:`machine_key`) and the stack's shape, so a stack of that shape
always runs the same way on that machine (the same chunking, hence the same float rounding), and pays for the
measurement once.

A choice (:class:`ChunkChoice`) says how it was made:

* ``option``: ``TrainOptions.chunk_models`` was given (e.g. the chunk recorded with a stack that resumes);
* ``whole stack``: nothing to choose (one model, not a CPU, or ``torch.compile``), or a stack too short to pay
  for a measurement (:func:`worth_measuring`);
* ``cached``: measured earlier on this machine for this shape;
* ``measured``: timed now (and cached);
* ``measured (busy, not cached)``: timed now while the load average exceeded :data:`BUSY` × the cores (other
  processes skew timings), used for this stack but not kept.

The cache lives in ``$LIMITLAB_CACHE_DIR`` (default ``$XDG_CACHE_HOME/limitlab``, else ``~/.cache/limitlab``).
An unreadable or malformed file reads as empty and an unwritable folder is skipped: the cache can only save time.
Each entry keeps every candidate's timing and the load average it was taken under; delete the file (or one entry)
to measure again.

>>> candidates(32), candidates(12), candidates(1)
([1, 2, 4, 8, 16, 32], [1, 2, 4, 8, 12], [1])
>>> worth_measuring(32, iterations=100), worth_measuring(32, iterations=100_000)
(False, True)
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from limitlab.train import fast
from limitlab.train.optim import StackedAdam

MEASURE_ROUNDS = 3  # timed steps per candidate, interleaved round by round; a candidate counts by its fastest
MEASURE_SHARE = 0.02  # measure only when its steps are at most this share of the steps the stack has left
CACHE_VERSION = 1


@dataclass(frozen=True)
class ChunkChoice:
    """Models per chunk, how they were chosen (``measured``, ``cached``, ``option``, ``whole stack``), and for a
    measurement the best seconds per step of every candidate."""

    chunk: int
    how: str
    seconds: dict[int, float] = field(default_factory=dict)


BUSY = 1.5  # load average per core above which a measurement is not cached

def candidates(n_models: int) -> list[int]:
    """Chunk sizes worth timing: every power of two below M, and M itself (the plain stacked step)."""
    return [1 << k for k in range(max(n_models - 1, 0).bit_length()) if 1 << k < n_models] + [n_models]


def measure_steps(n_models: int) -> int:
    """Stack steps a measurement runs: every candidate, MEASURE_ROUNDS times (each step trains all M models)."""
    return MEASURE_ROUNDS * len(candidates(n_models))


def worth_measuring(n_models: int, iterations: int) -> bool:
    """Is a measurement a small share of the training it speeds up?

    Counted in stack steps, not seconds, so the answer needs no speed figure of any machine: a measurement is
    :func:`measure_steps` steps of the same stack (each chunked step does the same work as a plain one, at a
    speed that differs from the best chunking's by the factor being measured), so it may run when it is at most
    ``MEASURE_SHARE`` of the ``iterations`` (stack steps) left. With 32 models: 18 steps, so from 900 on.
    """
    return n_models > 1 and measure_steps(n_models) <= MEASURE_SHARE * iterations


def time_chunks(step: Callable[[int], object], chunks: Sequence[int],
                rounds: int = MEASURE_ROUNDS) -> dict[int, float]:
    """Best seconds of ``step(c)`` per chunk size c, the sizes taken in turn in each round, so that load from other
    processes falls on all of them alike (a first round also pays each size's one-time costs; the best of the
    rounds does not)."""
    best = {c: float("inf") for c in chunks}
    for _ in range(rounds):
        for c in chunks:
            start = time.perf_counter()
            step(c)
            best[c] = min(best[c], time.perf_counter() - start)
    return best


def throwaway_step(model: torch.nn.Module, optim_configs: Sequence, totals: Sequence[int], batch, loss_fn: Callable,
                   step: torch.Tensor, alive: torch.Tensor) -> Callable[[int], None]:
    """``run(c)``: one training step, ``c`` models at a time, of a deep copy of ``model`` with a fresh optimizer over
    the copy — the same kernels on the same shapes as the real step, touching nothing of the real training state
    (weights, moments, step counters, the global random state)."""
    twin = copy.deepcopy(model)
    optim = StackedAdam(list(twin.parameters()), optim_configs, totals)
    step, alive = step.clone(), alive.clone()
    active = (step < torch.as_tensor(list(totals), device=step.device)) & alive

    def run(chunk: int) -> None:
        fast.train_step(twin, twin, optim, batch, loss_fn, active, alive.clone(), step, chunk, nullcontext)

    return run


def choose(shape: dict, n_models: int, iterations: int, measure: Callable[[list[int]], dict[int, float]],
           folder: Path | None = None) -> ChunkChoice:
    """This machine's cached chunk for ``shape``; else, when :func:`worth_measuring`, the fastest of ``measure``
    (seconds per step of each candidate), cached; else the whole stack (not cached: a longer stack of the same
    shape measures)."""
    key = {"machine": machine_key(), "shape": {**shape, "models": n_models}}
    entries = load_cache(folder)
    cached = entries.get(_digest(key))
    if cached is not None:
        return ChunkChoice(cached["chunk"], "cached", {int(c): s for c, s in cached.get("seconds", {}).items()})
    if not worth_measuring(n_models, iterations):
        return ChunkChoice(n_models, "whole stack")
    seconds = measure(candidates(n_models))
    best = min(seconds, key=seconds.get)
    load = _load_average()
    if load is not None and load[0] > BUSY * (os.cpu_count() or 1):  # timings of a busy machine: used, not kept
        return ChunkChoice(best, "measured (busy, not cached)", seconds)
    entries[_digest(key)] = {**key, "chunk": best, "seconds": {str(c): s for c, s in seconds.items()},
                             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_avg": load}
    save_cache(entries, folder)
    return ChunkChoice(best, "measured", seconds)


# ---- this machine --------------------------------------------------------------------------------------------

def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_caches() -> str:
    """This CPU's caches as seen by one core (Linux sysfs), e.g. 'L1d 48 KiB, L1i 32 KiB, L2 1 MiB, L3 32 MiB'
    (a shared cache at its full size); 'unknown' elsewhere."""
    parts = []
    for index in range(16):
        folder = f"/sys/devices/system/cpu/cpu0/cache/index{index}"
        try:
            level, kind, size = (Path(folder, name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            break
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        kib = int(size.rstrip("KMG")) * {"K": 1, "M": 1 << 10, "G": 1 << 20}.get(size[-1:], 1 / 1024)
        parts.append(f"L{level}{suffix} " + (f"{kib / 1024:g} MiB" if kib >= 1024 else f"{kib:g} KiB"))
    return ", ".join(parts) or "unknown"


def machine_key() -> dict:
    """What a chunk measurement holds for: the CPU model, its caches, torch's threads and torch's version."""
    return {"cpu": cpu_name(), "caches": cpu_caches(), "threads": torch.get_num_threads(), "torch": torch.__version__}


# ---- the cache file ------------------------------------------------------------------------------------------

def cache_file(folder: Path | None = None) -> Path:
    """``chunks.json`` in ``folder``, else ``$LIMITLAB_CACHE_DIR``, else the user's cache folder."""
    if folder is None:
        env = os.environ.get("LIMITLAB_CACHE_DIR")
        xdg = os.environ.get("XDG_CACHE_HOME")
        folder = Path(env) if env else Path(xdg or Path.home() / ".cache") / "limitlab"
    return Path(folder) / "chunks.json"


def load_cache(folder: Path | None = None) -> dict[str, dict]:
    """The cached entries by key digest; {} when the file is missing, unreadable or malformed."""
    try:
        data = json.loads(cache_file(folder).read_text())
        entries = data["entries"] if data.get("version") == CACHE_VERSION else {}
        return {k: v for k, v in entries.items() if isinstance(v, dict) and _valid(v)}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def save_cache(entries: dict[str, dict], folder: Path | None = None) -> bool:
    """Write the entries atomically (a temporary file, then a rename); False, and nothing raised, if impossible."""
    path = cache_file(folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".chunks-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": CACHE_VERSION, "entries": entries}, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return True
    except OSError:
        return False


def _load_average() -> list[float] | None:
    """The 1/5/15-minute load averages while measuring (timings on a busy machine are worth less)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _valid(entry: dict) -> bool:
    chunk, models, seconds = entry.get("chunk"), entry.get("shape", {}).get("models"), entry.get("seconds", {})
    return (isinstance(chunk, int) and isinstance(models, int) and 1 <= chunk <= models and isinstance(seconds, dict)
            and all(c.isdigit() and isinstance(s, (int, float)) for c, s in seconds.items()))


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
