"""Abacus embeddings (McLeish et al. 2024, arXiv 2405.17399): a digit's position *within its number*.

Every maximal run of digit tokens is one number. The i-th digit of a run (1-based) gets a learned vector
e[i + k]; every other token gets e[0]. With operands and answers written least significant digit first, digits of
equal significance share an index, whatever their absolute positions: the model can line up the columns of an
addition without counting absolute positions. ::

    tokens   ^  4  3  2  1  +  8  7  6  5  =  2  1  9  6  ;
    index    0  1  2  3  4  0  1  2  3  4  0  1  2  3  4  0      (evaluation: k = 0)

**Random offset.** In training every sequence's indices of digits are shifted by one offset k ∈ [0,
``abacus_max_offset``] (McLeish et al. use 100), so rows beyond the training lengths get trained too and a model
trained on 20-digit numbers has seen e[21..120]. At evaluation (``model.eval()``) k = 0. So that a run stays a
pure function of its seed and step, k is not drawn from a global generator; and so that no position learns
anything about later tokens, k must not depend on the sequence's tokens (a hash of the whole sequence would leak
the future into every position of a causal model). k is a hash of the sequence's batch row: row b always gets
offset k_b, and with a batch of at least max_offset + 1 rows nearly every offset is trained at every step, each
time with fresh numbers. Resuming, restacking or padding a stack never changes it.

Options: the digit token ids (``abacus_first_digit``, ``abacus_n_digits``: by default ids 2..11, the arithmetic
tasks' digits), the padding id (``abacus_pad``, kept for configs; unused since offsets ignore tokens), and the
table size: indices above
``abacus_max_index`` share the last row (choose max_index ≥ longest number + max_offset to avoid that).
Input scope: one table (M, max_index + 1, d) per model, added to the token embeddings. Combine with an
attention-level encoding as 'abacus+rope' etc.; 'abacus' alone leaves attention position-free (NoPE).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from limitlab.nn.positions.base import PositionEncoding
from limitlab.rng import mix64


class AbacusOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    abacus_first_digit: int = Field(2, ge=0, description="token id of the digit 0 (digits are consecutive ids)")
    abacus_n_digits: int = Field(10, ge=1, description="number of digit token ids (the base)")
    abacus_pad: int = Field(0, description="padding token id (ignored when hashing the training offset)")
    abacus_max_offset: int = Field(100, ge=0, description="training offsets are drawn from 0..max_offset")
    abacus_max_index: int = Field(256, ge=1, description="largest index with its own row (larger ones share it)")


def digit_index(inputs: torch.Tensor, first: int, n_digits: int) -> torch.Tensor:
    """1-based index of every digit token within its run of consecutive digits, 0 for other tokens: (..., T)."""
    is_digit = (inputs >= first) & (inputs < first + n_digits)
    count = is_digit.long().cumsum(-1)  # digits so far
    before_run = torch.where(is_digit, 0, count).cummax(-1).values  # digits before the current run
    return torch.where(is_digit, count - before_run, 0)


def row_offsets(rows: int, max_offset: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A fixed pseudo-random offset in [0, max_offset] per batch row: (rows,). Independent of every token."""
    h = mix64(torch.arange(rows, dtype=torch.int64, device=device) * 7_919 + 1)
    return (h & ((1 << 62) - 1)) % (max_offset + 1)


class Abacus(PositionEncoding):
    name = "abacus"
    scope = "input"
    Options = AbacusOptions

    def __init__(self, geo, options) -> None:
        super().__init__(geo, options)
        self.table = nn.Parameter(torch.zeros(geo.n_models, options.abacus_max_index + 1, geo.d_model))

    @classmethod
    def check(cls, geo, options) -> None:
        if options.abacus_max_index <= options.abacus_max_offset:
            raise ValueError(f"abacus_max_index={options.abacus_max_index} must exceed abacus_max_offset="
                             f"{options.abacus_max_offset} (the table needs rows for offset digits)")

    def indices(self, inputs: torch.Tensor) -> torch.Tensor:
        """Table row of every token (M, B, T): its digit index, shifted by the sequence's offset in training."""
        o = self.options
        idx = digit_index(inputs, o.abacus_first_digit, o.abacus_n_digits)
        if self.training and o.abacus_max_offset > 0:
            shift = row_offsets(inputs.shape[1], o.abacus_max_offset, inputs.device)  # (B,)
            idx = torch.where(idx > 0, idx + shift.view(1, -1, 1), 0)
        return idx.clamp(max=o.abacus_max_index)

    def on_input(self, h: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        if inputs is None or inputs.dim() != 3 or inputs.is_floating_point():
            raise ValueError("abacus needs token ids (M, B, T); it cannot be used with a linear read-in")
        idx = self.indices(inputs)  # (M, B, T)
        models = torch.arange(idx.shape[0], device=idx.device).view(-1, 1, 1)
        return h + self.table[models, idx].to(h.dtype)  # (M, B, T, d)

    def init_model(self, m: int, gen: torch.Generator, scheme: str) -> None:
        std = 1.0 if scheme == "torch" else 0.02
        with torch.no_grad():
            self.table[m].copy_(torch.randn(self.table.shape[1:], generator=gen) * std)
