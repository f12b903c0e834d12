"""Exact base-10 arithmetic on digit tensors, the packing of digit segments into token sequences, and the edit
distance between token rows.

Numbers are tensors of digits, **least significant first**, with a trailing model/batch shape: ``x[..., i]`` is
the digit of 10^i, zero beyond the number's length. Operands of 20 or 100 digits do not fit in an int64, so
addition, multiplication and remainders are done digit by digit (schoolbook, with carries), vectorised over
the batch: one Python loop over digit positions, never over samples.

>>> a, b = to_digits([1234], 6), to_digits([5678], 6)
>>> from_digits(add_digits(a, b)), from_digits(mul_digits(a, b)), remainders(a, 101)[..., 0].tolist()
([6912], [7006652], [22])

:func:`pack` lays out variable-length segments one after another per sequence (right-padded with PAD), which
is how every format of :mod:`limitlab.tasks.arithmetic` builds its sequences.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# token ids shared by every arithmetic format
PAD, BOS, DIGIT0, PLUS, TIMES, EQ, END, SEP = 0, 1, 2, 12, 13, 14, 15, 16
VOCAB = 17
SYMBOLS = {PAD: "_", BOS: "^", PLUS: "+", TIMES: "*", EQ: "=", END: ";", SEP: "|"}


def to_digits(values: Sequence[int], length: int) -> torch.Tensor:
    """Python ints (any size, ≥ 0) -> (len(values), length) digits, least significant first."""
    out = torch.zeros(len(values), length, dtype=torch.int64)
    for row, v in enumerate(values):
        if v < 0 or v >= 10**length:
            raise ValueError(f"value {v} does not fit in {length} digits (allowed: 0 <= value < 10**{length})")
        for i in range(length):
            v, out[row, i] = divmod(v, 10)
    return out


def from_digits(digits: torch.Tensor) -> list[int]:
    """(N, L) digits, least significant first -> Python ints (exact, any size)."""
    rows = digits.reshape(-1, digits.shape[-1]).tolist()
    return [int("".join(str(d) for d in reversed(row)) or "0") for row in rows]


def n_digits(digits: torch.Tensor) -> torch.Tensor:
    """The length of each number without leading zeros (0 has length 1): (..., L) -> (...)."""
    index = torch.arange(1, digits.shape[-1] + 1, device=digits.device)
    return ((digits != 0) * index).amax(-1).clamp(min=1)


def add_digits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b: (..., L) each -> (..., L + 1)."""
    out = torch.zeros(*a.shape[:-1], a.shape[-1] + 1, dtype=torch.int64, device=a.device)
    carry = torch.zeros_like(a[..., 0])
    for i in range(a.shape[-1]):
        s = a[..., i] + b[..., i] + carry
        out[..., i], carry = s % 10, s // 10
    out[..., -1] = carry
    return out


def carries(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The carry out of every position of a + b: (..., L) -> (..., L); carries[i] goes into digit i + 1."""
    out = torch.zeros_like(a)
    carry = torch.zeros_like(a[..., 0])
    for i in range(a.shape[-1]):
        carry = (a[..., i] + b[..., i] + carry) // 10
        out[..., i] = carry
    return out


def normalize(columns: torch.Tensor, length: int) -> torch.Tensor:
    """Column sums (any non-negative ints) -> proper digits of ``length`` positions, carrying upward."""
    out = torch.zeros(*columns.shape[:-1], length, dtype=torch.int64, device=columns.device)
    carry = torch.zeros_like(columns[..., 0])
    for i in range(length):
        s = carry + (columns[..., i] if i < columns.shape[-1] else 0)
        out[..., i], carry = s % 10, s // 10
    return out


def mul_digits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a · b: (..., La), (..., Lb) -> (..., La + Lb)."""
    la, lb = a.shape[-1], b.shape[-1]
    cols = torch.zeros(*a.shape[:-1], la + lb, dtype=torch.int64, device=a.device)
    for i in range(la):
        cols[..., i:i + lb] += a[..., i:i + 1] * b  # column sums ≤ 81·min(La, Lb)
    return normalize(cols, la + lb)


def remainders(x: torch.Tensor, p: int) -> torch.Tensor:
    """r[..., j] = ⌊x / 10^j⌋ mod p, by the most-significant-first recursion r ← (10·r + digit) mod p.

    r[..., 0] is x mod p; reading r from the top digit down gives the running remainder after each digit.
    """
    out = torch.zeros_like(x)
    r = torch.zeros_like(x[..., 0])
    for j in range(x.shape[-1] - 1, -1, -1):
        r = (10 * r + x[..., j]) % p
        out[..., j] = r
    return out


def value_digits(value: torch.Tensor, length: int) -> torch.Tensor:
    """Small non-negative int64 values (...) -> (..., length) digits."""
    powers = 10 ** torch.arange(length, device=value.device)
    return (value.unsqueeze(-1) // powers) % 10


def truncate(x: torch.Tensor, n: int) -> torch.Tensor:
    """x mod 10^n: the digits above n zeroed."""
    return x * (torch.arange(x.shape[-1], device=x.device) < n)


def reverse_within(digits: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Most significant first within each number's own length: out[..., k] = digits[..., length - 1 - k]."""
    k = torch.arange(digits.shape[-1], device=digits.device)
    idx = (length.unsqueeze(-1) - 1 - k).clamp(min=0)
    return digits.gather(-1, idx) * (k < length.unsqueeze(-1))


def edit_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Levenshtein distance between token rows: (..., L) and (..., L') -> (...) float.

    One row of the dynamic-programming table per token of ``pred``, vectorised over the batch and over the row:
    with t[j] = min(deletion, substitution) from the row above, the insertion chain cur[j] = min(t[j],
    cur[j-1] + 1) is the running minimum cur[j] = j + min over k ≤ j of (t[k] − k).

    >>> edit_distance(torch.tensor([[1, 2, 3], [1, 2, 3]]), torch.tensor([[1, 3, 3], [2, 3, 0]])).tolist()
    [1.0, 2.0]
    """
    lp, lt = pred.shape[-1], target.shape[-1]
    lead = pred.shape[:-1]
    j = torch.arange(lt + 1, device=pred.device, dtype=torch.float32)
    prev = j.expand(*lead, lt + 1)  # (..., L' + 1): distances from the empty prefix of pred
    for i in range(1, lp + 1):
        sub = prev[..., :-1] + (pred[..., i - 1:i] != target).float()  # (..., L')
        t = torch.cat([torch.full((*lead, 1), float(i), device=pred.device), torch.minimum(sub, prev[..., 1:] + 1)],
                      -1)
        prev = torch.cummin(t - j, -1).values + j
    return prev[..., lt]


@dataclass(frozen=True)
class Segment:
    """Tokens (M, B, W) of which the first ``length`` (M, B) (or all W) go into the sequence; ``scored`` (bool,
    or a (M, B, W) tensor) marks the tokens the model writes (its answer), which are trained and scored."""

    tokens: torch.Tensor
    length: torch.Tensor | None = None
    scored: bool | torch.Tensor = False


def token(value: int, like: torch.Tensor, scored: bool = False) -> Segment:
    """A one-token segment; ``like`` is any (M, B, ...) tensor."""
    return Segment(torch.full((*like.shape[:2], 1), value, dtype=torch.int64, device=like.device), None, scored)


def digits(d: torch.Tensor, length: torch.Tensor | None = None, scored: bool | torch.Tensor = False) -> Segment:
    """A segment of digit tokens from digits (M, B, W)."""
    return Segment(d + DIGIT0, length, scored)


def pack(segments: Sequence[Segment], total: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segments laid end to end per sequence, right-padded to ``total`` tokens.

    Returns tokens (M, B, total), scored (M, B, total) bool and valid (M, B, total) bool (False = padding).
    """
    first = segments[0].tokens
    m, b = first.shape[:2]
    dev = first.device
    buffer = torch.cat([s.tokens for s in segments], -1)  # (M, B, sum W)
    flags = torch.cat([s.scored.expand_as(s.tokens) if torch.is_tensor(s.scored)
                       else torch.full_like(s.tokens, bool(s.scored), dtype=torch.bool) for s in segments], -1)
    width = buffer.shape[-1]
    if all(s.length is None for s in segments):  # fixed widths: the segments end to end, then padding
        if width > total:
            raise ValueError(f"packed sequence of {width} tokens exceeds its declared {total}")
        valid = (torch.arange(total, device=dev) < width).expand(m, b, total)
        return (torch.nn.functional.pad(buffer, (0, total - width), value=PAD),
                torch.nn.functional.pad(flags, (0, total - width), value=False), valid)
    lengths = [s.length if s.length is not None else torch.full((m, b), s.tokens.shape[-1], device=dev)
               for s in segments]
    lengths = torch.stack(lengths, -1)  # (M, B, P)
    ends = lengths.cumsum(-1)  # (M, B, P)
    starts = ends - lengths
    if dev.type == "cpu" and int(ends[..., -1].max()) > total:  # checked where it costs no device sync
        raise ValueError(f"packed sequence of {int(ends[..., -1].max())} tokens exceeds its declared {total}")
    buf_start = _offsets(tuple(s.tokens.shape[-1] for s in segments), str(dev))  # (P,) segment offsets in the buffer
    t = torch.arange(total, device=dev)
    part = (t[None, None, :, None] >= starts[..., None, :]).sum(-1) - 1  # (M, B, total): segment of each token
    within = t - starts.gather(-1, part)
    valid = t < ends[..., -1:]  # (M, B, total)
    idx = (buf_start[part] + within).clamp(max=width - 1)
    idx = torch.where(valid, idx, 0)
    tokens = torch.where(valid, buffer.gather(-1, idx), PAD)
    scored = flags.gather(-1, idx) & valid
    return tokens, scored, valid


def readouts(scored: torch.Tensor, slots: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The read-outs of the scored tokens, in order: (positions, index of the target token, mask), each (M, B, slots).

    The model predicts token t at position t - 1 (teacher forcing), so read-out k sits one before the k-th scored
    token. Unused slots (a sequence with fewer scored tokens) point at position 0 and are masked.
    """
    t = scored.shape[-1]
    order = torch.where(scored, torch.arange(t, device=scored.device), t + torch.arange(t, device=scored.device))
    index = order.argsort(-1)[..., :slots]  # (M, B, slots): scored token indices first, in sequence order
    mask = scored.gather(-1, index)
    if scored.device.type == "cpu" and int(scored.sum(-1).max()) > slots:
        raise ValueError(f"{int(scored.sum(-1).max())} scored tokens exceed the declared {slots} read-out slots")
    index = torch.where(mask, index, 1)
    return index - 1, index, mask


@functools.lru_cache(maxsize=256)
def _offsets(widths: tuple[int, ...], device: str) -> torch.Tensor:
    return torch.tensor([0, *widths[:-1]], device=device).cumsum(0)


def render(tokens: Sequence[int]) -> str:
    """Token ids -> text (digits, + * = ; | and ^ for BOS; padding dropped), for docs and tests."""
    out = []
    for tok in tokens:
        tok = int(tok)
        if tok == PAD:
            continue
        out.append(str(tok - DIGIT0) if DIGIT0 <= tok < DIGIT0 + 10 else SYMBOLS[tok])
    return "".join(out)
