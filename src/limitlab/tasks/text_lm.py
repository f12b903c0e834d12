"""Byte-level language modelling on a local corpus, with context extrapolation (train at T, test at 1.5T, 2T, 2.5T).

Corpora (``corpus``):

* ``"stdlib"`` (default) — the Python standard library's source, a code corpus that exists on every machine
  and needs no download: the ``*.py`` files under ``sysconfig.get_paths()["stdlib"]`` (site-packages excluded),
  sorted by relative path; every ``heldout_every``-th file is held out for evaluation, the rest is training
  text, so no test window shares a file with a training window. (Its size and content follow the Python
  version: about 31 MB in 1,790 files for CPython 3.11, so losses compare within one interpreter.)
  ``skip_dirs=["test", "tests", "idle_test"]`` leaves the test packages out (the library code only).
* a path — a directory with Wikitext-style ``*train*`` and ``*test*`` files (e.g. ``wiki.train.tokens``,
  ``wiki.test.tokens``); any other directory (its files, split by file as above; ``skip_dirs`` applies); or one
  file (its last 10% of bytes held out). The path is made absolute when the spec is made, so a relative path
  names the same data (and the same run id) from whichever folder the command runs in.

The tokenizer is the identity on bytes (256 ids, no dependency), so perplexity here is *per byte*, not per
BPE token as in the paper. The text is read once per process into a uint8 tensor; a sample is a window at a
uniformly random offset (drawn from the counter-based rng, the batch row first), and every position is scored::

    bytes     d   e   f   ·   f   (       ← input, length T
    target    e   f   ·   f   (   x       ← the next byte at every position

Splits: ``test`` (held-out text at length T) and ``ctx1.5x``, ``ctx2x``, ``ctx2.5x`` (held-out text at 1.5T, 2T,
2.5T; the factors are ``extrapolation``; ``[]`` evaluates at T only). Metrics: ``loss`` (nats per byte; perplexity =
exp(loss)), ``token_accuracy`` and ``loss_by_position`` (M, T): the mean loss at each position, for extrapolation
curves.
"""

from __future__ import annotations

import functools
import os
import sysconfig
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, field_validator

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Metric, Task, TaskStack

STDLIB = "stdlib"


class TextLMTask(Task):
    """Next-byte prediction on windows of ``length`` bytes from a local corpus."""

    name = "text_lm"
    corpus: str = Field(STDLIB, description="'stdlib' (Python's standard library source) or a local path")
    length: int = Field(256, ge=2, le=1_000_000, description="context length T in bytes")
    part: Literal["train", "test"] = Field("train", description="which text the task samples (splits use 'test')")
    extrapolation: tuple[float, ...] = Field((1.5, 2.0, 2.5), description="evaluation lengths as multiples of T")
    heldout_every: int = Field(10, ge=2, description="every N-th file (sorted) is held out")
    skip_dirs: tuple[str, ...] = Field((), description="directory names whose files are left out, e.g. 'test'")

    @field_validator("corpus")
    @classmethod
    def _check_corpus(cls, value: str) -> str:
        """A path is made absolute: the spec (and its run id) names the same data from whichever folder it is run."""
        if value == STDLIB:
            return value
        if not value or not Path(value).expanduser().exists():
            raise ValueError(f"corpus {value!r} is neither 'stdlib' nor an existing local path")
        return os.path.abspath(os.path.expanduser(value))

    @field_validator("extrapolation")
    @classmethod
    def _check_factors(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(f <= 0 for f in value):
            raise ValueError(f"extrapolation factors must be > 0, got {value}")
        return value

    def vocab_size(self) -> int:
        return 256

    @property
    def scored_tokens(self) -> int:
        """Scored tokens per training sequence (every position): what a token budget counts."""
        return self.length

    def seq_len(self) -> int:
        return self.length

    def n_outputs(self) -> int:
        return 256

    def splits(self) -> dict[str, Task]:
        out: dict[str, Task] = {"test": self.model_copy(update={"part": "test"})}
        for f in self.extrapolation:
            out[f"ctx{f:g}x"] = self.model_copy(update={"part": "test", "length": int(round(f * self.length))})
        return out

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        sh = stack.shared
        data = corpus_bytes(sh.corpus, sh.part, sh.heldout_every, str(rng.device), sh.skip_dirs)  # (N,) uint8
        length = sh.length
        if data.numel() <= length + 1:
            raise ValueError(f"corpus {sh.corpus!r} ({sh.part}) has {data.numel()} bytes, fewer than a window "
                             f"of length {length} + 1")
        start = rng.randint((batch_size, 1), high=data.numel() - length, step=step)  # (M, B, 1)
        window = data[start + torch.arange(length + 1, device=data.device)].long()  # (M, B, T + 1)
        inputs, targets = window[..., :-1], window[..., 1:]
        return Batch(inputs.contiguous(), targets.contiguous(), torch.ones_like(targets, dtype=torch.bool))

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        loss = cls.pointwise_loss(out, batch)  # (M, B, T)
        right = (out.argmax(-1) == batch.targets).float()
        n_tok = torch.full_like(loss[:, 0, 0], loss[0].numel())
        per_pos_count = torch.full_like(loss[:, 0, :], loss.shape[1])  # (M, T)
        return {"loss": (loss.sum((1, 2)), n_tok), "token_accuracy": (right.sum((1, 2)), n_tok),
                "loss_by_position": (loss.sum(1), per_pos_count)}


def corpus_files(corpus: str, part: str, heldout_every: int = 10, skip_dirs: tuple[str, ...] = ()) -> list[Path]:
    """The sorted files of one part of a corpus (see the module docstring)."""
    skip = {"site-packages", *skip_dirs} if corpus == STDLIB else set(skip_dirs)
    if corpus == STDLIB:
        root = Path(sysconfig.get_paths()["stdlib"])
        found = root.rglob("*.py")
    else:
        root = Path(corpus).expanduser()
        if root.is_file():
            return [root]
        found = root.rglob("*")
    files = sorted((p for p in found if p.is_file() and not skip & set(p.relative_to(root).parts[:-1])),
                   key=lambda p: p.relative_to(root).as_posix())
    if corpus != STDLIB:
        named = [p for p in files if part in p.name]
        if named and any("train" in p.name for p in files):
            return named
    return [p for i, p in enumerate(files) if (i % heldout_every == 0) == (part == "test")]


@functools.lru_cache(maxsize=8)
def corpus_bytes(corpus: str, part: str, heldout_every: int = 10, device: str = "cpu",
                 skip_dirs: tuple[str, ...] = ()) -> torch.Tensor:
    """One part of a corpus as a (N,) uint8 tensor of bytes on ``device`` (read once per process)."""
    if device != "cpu":
        return corpus_bytes(corpus, part, heldout_every, "cpu", skip_dirs).to(device)
    files = corpus_files(corpus, part, heldout_every, skip_dirs)
    if not files:
        raise ValueError(f"corpus {corpus!r} has no {part} files")
    blob = b"\n".join(p.read_bytes() for p in files)
    if len(files) == 1 and corpus != STDLIB and Path(corpus).expanduser().is_file():
        cut = int(len(blob) * 0.9)
        blob = blob[cut:] if part == "test" else blob[:cut]
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8)
