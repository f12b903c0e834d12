"""Flip-flop language modelling, FFL(p_i) (Liu et al. 2023, "Exposing Attention Glitches", arXiv 2306.00946).

A sequence is ``length / 2`` (instruction, bit) pairs over the alphabet {w, r, i, 0, 1}: ``w b`` writes bit b,
``i b`` is a distractor (b is noise), ``r b`` must repeat the last written bit. The first instruction is ``w``, the
last is ``r``, and the ones in between are drawn i.i.d. with p(i) = p_i and p(w) = p(r) = (1 - p_i) / 2. The only
deterministic tokens are the bits after an ``r``; the task reads out at every instruction and scores only the
ones that are ``r`` (``Batch.mask``), which is also the training loss. Example, ``FlipFlopTask(length=10)``::

    position   0  1  2  3  4  5  6  7  8  9
    input      w  1  i  0  r  1  w  0  r  0
    read-out   ^     ^     ^     ^     ^          at every instruction (K = length / 2)
    target     1     0     1     0     0          the next token
    scored     .     .     x     .     x          only after r: the last written bit

Token ids: w = 0, r = 1, i = 2, bit 0 = 3, bit 1 = 4. Splits: ``test`` (in distribution, p_i as trained),
``sparse`` (p_i = 0.98: long write-to-read gaps) and ``dense`` (p_i = 0.1), all at the trained length, as in the
CoPE paper. Metrics: the defaults (``token_accuracy`` = fraction of scored reads right, ``accuracy`` = sequences
with every read right), plus ``error`` = 1 - token_accuracy (a fraction of the scored reads).
"""

from __future__ import annotations

import torch
from pydantic import Field

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Metric, Task, TaskStack

W, R, I, BIT0, BIT1 = 0, 1, 2, 3, 4
SYMBOLS = "wri01"


class FlipFlopTask(Task):
    """FFL(p_i) sequences of ``length`` symbols (an even number), scored at the bit after each ``r``."""

    name = "flip_flop"
    length: int = Field(512, ge=4, le=1_000_000, multiple_of=2, description="symbols per sequence (even)")
    p_i: float = Field(0.8, ge=0.0, lt=1.0, description="probability of an ignore instruction")
    sparse_p_i: float = Field(0.98, ge=0.0, lt=1.0, description="p_i of the 'sparse' OOD split")
    dense_p_i: float = Field(0.1, ge=0.0, lt=1.0, description="p_i of the 'dense' OOD split")

    def vocab_size(self) -> int:
        return len(SYMBOLS)

    def seq_len(self) -> int:
        return self.length

    def n_outputs(self) -> int:
        return len(SYMBOLS)

    def splits(self) -> dict[str, Task]:
        return {"test": self, "sparse": self.model_copy(update={"p_i": self.sparse_p_i}),
                "dense": self.model_copy(update={"p_i": self.dense_p_i})}

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        n = stack.shared.length // 2  # instructions per sequence
        p_i = stack.shared.p_i
        u = rng.random((batch_size, n), step=step)  # (M, B, n)
        instr = torch.where(u < p_i, I, torch.where(u < p_i + (1 - p_i) / 2, W, R))
        instr[..., 0] = W
        instr[..., -1] = R
        noise = rng.randint((batch_size, n), high=2, step=step, salt=1)  # (M, B, n) bits for w and i
        is_write = instr == W
        # the last written bit at each instruction: carry the index of the latest w forward (a cumulative max)
        idx = torch.arange(n, device=instr.device).expand_as(instr)
        last_w = torch.where(is_write, idx, 0).cummax(-1).values  # (M, B, n); instruction 0 is always w
        memory = noise.gather(-1, last_w)
        bits = torch.where(instr == R, memory, noise)
        inputs = torch.stack([instr, bits + BIT0], dim=-1).flatten(-2)  # (M, B, 2n): w b r b ...
        positions = (2 * idx).contiguous()  # (M, B, n): the instruction slots
        return Batch(inputs, bits + BIT0, instr == R, positions)

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        result = super().metrics(out, batch)
        right, count = result["token_accuracy"]
        result["error"] = (count - right, count)
        return result


def decode(tokens: torch.Tensor) -> str:
    """'w1i0r1…' for a (T,) tensor of token ids (for tests and docs)."""
    return "".join(SYMBOLS[t] for t in tokens.tolist())
