"""A real code corpus on every machine: byte-level next-token prediction on the Python standard library's source.

The corpus is every ``*.py`` file under the running interpreter's stdlib directory (``sysconfig``), minus test
packages (``test``, ``tests``, ``idle_test``) and ``site-packages``, read as bytes in sorted path order and joined
with a newline. Files are split into a **train** and a **test** part by a CRC32 hash of their relative path
(``test_percent`` of the files go to test), so no test window shares a file with a training window. A batch draws
windows of ``length + 1`` bytes at uniform random offsets of its part; nothing is downloaded, but the corpus
depends on the Python version (recorded by :func:`corpus_info`), so losses are comparable within one interpreter.

Vocabulary: the 256 byte values. Example (``length = 6``) from ``import os``::

    position   0    1    2    3    4    5
    input      i    m    p    o    r    t
    target     m    p    o    r    t    ' '      (every position scored)
"""

from __future__ import annotations

import functools
import sys
import sysconfig
import zlib
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Task, TaskStack

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__"}


class StdlibLMTask(Task):
    """Byte-level language modelling on the Python standard library's source (train/test split by file)."""

    name = "stdlib_lm"
    length: int = Field(64, ge=1, le=8192, description="input bytes per sequence (T)")
    test_percent: int = Field(5, ge=1, le=50, description="share of the files held out for the test part")
    part: Literal["train", "test"] = Field("train", description="which files this config samples windows from")

    def vocab_size(self) -> int:
        return 256

    def seq_len(self) -> int:
        return self.length

    def n_outputs(self) -> int:
        return 256

    @property
    def scored_tokens(self) -> int:
        return self.length

    def splits(self) -> dict[str, Task]:
        return {"test": self.model_copy(update={"part": "test"})}

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        task = stack.tasks[0]
        T = task.length
        data = _corpus_tensor(task.part, task.test_percent, str(rng.device))  # (L,) uint8
        if data.numel() <= T + 1:
            raise ValueError(f"the stdlib {task.part} corpus has {data.numel()} bytes; need more than length+1={T + 1}")
        start = rng.randint((batch_size,), high=data.numel() - T - 1, step=step)  # (M, B)
        idx = start[..., None] + torch.arange(T + 1, device=rng.device)  # (M, B, T+1)
        seq = data[idx].long()
        return Batch(seq[..., :T], seq[..., 1:], torch.ones_like(seq[..., 1:], dtype=torch.bool))


def stdlib_files() -> list[tuple[str, Path]]:
    """(relative path, path) of every source file of the corpus, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if not (_SKIP_DIRS & set(rel.parts[:-1])):
            out.append((rel.as_posix(), path))
    return sorted(out)


def is_test_file(rel: str, test_percent: int) -> bool:
    return zlib.crc32(rel.encode()) % 100 < test_percent


@functools.lru_cache(maxsize=4)
def corpus_bytes(part: str, test_percent: int) -> bytes:
    """The joined bytes of one part of the corpus."""
    chunks = []
    for rel, path in stdlib_files():
        if is_test_file(rel, test_percent) == (part == "test"):
            try:
                chunks.append(path.read_bytes())
            except OSError:
                continue
    if not chunks:
        raise ValueError(f"no stdlib source files found under {sysconfig.get_paths()['stdlib']!r}")
    return b"\n".join(chunks)


def corpus_info(test_percent: int = 5) -> dict:
    """What the corpus is on this machine: Python version, file and byte counts per part."""
    files = stdlib_files()
    n_test = sum(is_test_file(rel, test_percent) for rel, _ in files)
    return {"python": sys.version.split()[0], "files": len(files), "test_files": n_test,
            "train_bytes": len(corpus_bytes("train", test_percent)),
            "test_bytes": len(corpus_bytes("test", test_percent))}


@functools.lru_cache(maxsize=8)
def _corpus_tensor(part: str, test_percent: int, device: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(corpus_bytes(part, test_percent)), dtype=torch.uint8).to(device)
