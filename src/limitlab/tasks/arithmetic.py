"""Integer arithmetic as next-token prediction: addition and multiplication, optionally mod p, base 10.

Xu et al. 2024 (arXiv 2407.17963) ask when a transformer trained on short operands gets longer ones right; Lee
et al. 2023 and Nye et al. 2021 ask how the way the answer is written (plain, reversed, with intermediate steps)
changes what a small model learns. A causal decoder reads the question and writes the answer, trained with teacher
forcing and a loss on the answer tokens only (``Batch.mask``); read-out k is the position that predicts the k-th
answer token.

Vocabulary (17 ids): 0 PAD, 1 BOS (^), 2..11 the digits 0..9, 12 '+', 13 '*', 14 '=', 15 END (;), 16 SEP (|).
Mod p uses the same operator token (the modulus is a property of the task, as in the paper). Examples for
a = 1234, b = 5678 (``width=6`` instead of the paper's 20 to fit the table); scored tokens are after '='::

    format      op, mod         sequence (render of ArithmeticTask(...).encode(1234, 5678))
    fixed       add             ^001234+005678=2196000;        operands MSB first, zero-padded to width;
                                                               answer zero-padded to width+1, reversed
    fixed       add mod 101     ^001234+005678=440;            6912 mod 101 = 44 -> "044", reversed
    plain       add             ^001234+005678=0006912;        as fixed, the answer most significant first
    reversed    add             ^4321+8765=2196;               LSB first, natural lengths (padding after)
    aligned     add             ^432100+876500=2196000;        LSB first, zero-padded to width: digit i of a,
                                                               b and the answer sit at fixed distances
    reversed    mul             ^4321*8765=2566007;            7006652 reversed
    scratchpad  add             ^4321+8765=1100|2196;          carry out of every position, then the sum
    scratchpad  mul             ^4321*8765=27890000|25269000|25663800|25660070;
                                                               running sums a·(b mod 10^j), la+lb digits each
    remainder   add mod 101     ^1001201230224022+5005605670628022=044;
                                                               each digit MSB first, then the running remainder
                                                               (3 digits); answer (22 + 22) mod 101, MSB first
    detailed    add             ^001234+005678=4802371126191506000000000|0006912;
                                                               operands as fixed; per digit from the units up
                                                               a_i b_i carry_in s_i, the final carry, then the
                                                               sum MSB first (Lee et al.'s detailed scratchpad)
    fixed, target="truncated", train_digits=[1, 2, 3]:
                add             ^001234+005678=2190000;        234 + 678 = 912: the truncated target

(``D.render`` writes BOS as ^ and END as ;; tests/test_arithmetic.py checks these strings.) In the ``remainder``
format the operand digits are given and the remainders r ← (10·r + digit) mod p after each digit are written by
the model, so every written token depends on a fixed-size neighbourhood: a translation-invariant recursion.

Training distributions (``train_digits``, ``both_exact``): for each sequence a digit count n is drawn uniformly
from ``train_digits``; ``D_n`` (both_exact False) makes one operand (either, at random) exactly n digits and the
other uniform in [0, 10^n); ``D_ab n`` (both_exact True) makes both exactly n digits. ``train_digits=[1,2,3,4]``
is D_≤4. "Exactly 1 digit" is 0..9. ``uniform`` instead draws both operands uniform in [0, 10^n) (every digit
uniform, leading zeros allowed: with ``width = n``, all n-digit strings). Data is sampled afresh every step (the
paper used fixed 100k-sample files).

Splits: ``test`` = the training distribution; ``lengths`` = the D_n scheme for each n in ``test_digits`` (one
split with the digit count as a group, so evaluation costs ``eval_size`` sequences in all, not per length);
``lengths_truncated`` (fixed and reversed formats) = the same sequences with the answer replaced by the
**truncated target** f(a mod 10^k, b mod 10^k), k = ``truncate_digits`` (default: the largest training n),
which is what a learned-absolute model is predicted to compute. ``test_digits=[]`` leaves the length splits out.

Metrics (beyond the defaults: loss, accuracy, token_accuracy, accuracy_by_length):

* ``accuracy`` is exact match under teacher forcing. It equals greedy decoding's exact match: if every answer
  token is right given the right prefix, greedy decoding reproduces that prefix token by token; if one is wrong,
  greedy decoding goes wrong at the first such token. (For the ``remainder`` format the operand digits between
  written tokens are forced, as a prompt.)
* ``digit_accuracy`` (vector over answer slots k, LSB first for reversed answers; the last slot is END) and
  ``digit_accuracy_by_length`` (flattened (n, k): index n·K + k, K = ``slots()`` of the split).
* ``truncation_agreement`` (and ``_by_length``): the fraction of sequences whose truncated target equals the
  true answer — the exact accuracy predicted for a model that computes the truncated function. For mod p the
  theory's asymptotic value is 1/p′, p′ = p / gcd(p, 10^k) (see :func:`predicted_accuracy`).
* ``edit_distance``: the Levenshtein distance (in tokens) between the argmax output and the target over the
  written tokens, a smooth score beside exact match (Schaeffer et al. 2023).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from pydantic import Field, model_validator

from limitlab.rng import StackRNG
from limitlab.tasks import arithmetic_digits as D
from limitlab.tasks.base import Batch, Metric, Task, TaskStack, group_sums

FIXED_WIDTH = ("fixed", "plain", "aligned", "detailed")  # operands zero-padded to ``width`` digits
TRUNCATABLE = ("fixed", "plain", "aligned", "reversed")  # formats writing just the answer (truncatable)


def predicted_accuracy(modulus: int, truncate_digits: int) -> float:
    """The theory's accuracy beyond the training length for a model computing the truncated function mod p:
    1/p′ with p′ = p / gcd(p, 10^k) (1.0 when p divides 10^k)."""
    return math.gcd(modulus, 10**truncate_digits) / modulus


def answer_width(modulus: int) -> int:
    """Digits of the largest residue p - 1."""
    return len(str(modulus - 1))


class ArithmeticTask(Task):
    """a ∘ b (mod p) in one of seven formats; see the module docstring for the layout and the metrics."""

    name = "arithmetic"
    varying = frozenset({"train_digits", "both_exact", "uniform", "truncate_digits"})  # sequence lengths pad
    op: Literal["add", "mul"] = "add"
    modulus: int | None = Field(None, ge=2, description="reduce the result mod p; None = exact result")
    format: Literal["fixed", "plain", "aligned", "reversed", "scratchpad", "remainder", "detailed"] = "fixed"
    width: int = Field(20, ge=1, le=200, description="fixed, plain, detailed: operand digits (answer: width + 1)")
    train_digits: list[int] = Field(default_factory=lambda: [1, 2, 3, 4], description="digit counts n drawn")
    both_exact: bool = Field(False, description="D_ab n: both operands exactly n digits (else one of them)")
    uniform: bool = Field(False, description="both operands uniform in [0, 10^n) instead of D_n")
    test_digits: list[int] = Field(default_factory=lambda: list(range(1, 10)),
                                   description="'lengths' split n ([]: no length splits)")
    truncate_digits: int | None = Field(None, ge=1, description="k of the truncated target; default max n")
    target: Literal["true", "truncated"] = "true"

    @model_validator(mode="after")
    def _check(self) -> ArithmeticTask:
        for field in ("train_digits", "test_digits"):
            vals = getattr(self, field)
            if (not vals and field == "train_digits") or (vals and min(vals) < 1) or len(set(vals)) != len(vals):
                raise ValueError(f"{field}={vals} must be a {'non-empty ' * (field == 'train_digits')}list of "
                                 "distinct digit counts >= 1")
        if self.uniform and self.both_exact:
            raise ValueError("uniform=True draws both operands uniform below 10^n; it excludes both_exact=True")
        if self.format == "detailed" and (self.op != "add" or self.modulus is not None):
            raise ValueError(f"format='detailed' is exact addition only (got op={self.op!r}, "
                             f"modulus={self.modulus})")
        if self.format == "remainder" and self.modulus is None:
            raise ValueError("format='remainder' needs a modulus (it writes running remainders mod p)")
        if self.format == "scratchpad" and self.modulus is not None:
            raise ValueError(f"format='scratchpad' is for exact results; with modulus={self.modulus} use "
                             f"format='remainder'")
        if self.target == "truncated" and self.format not in TRUNCATABLE:
            raise ValueError(f"target='truncated' applies to the {', '.join(TRUNCATABLE)} formats, not "
                             f"{self.format!r}")
        longest = max([*self.train_digits, *self.test_digits])
        if self.format in FIXED_WIDTH:
            if longest > self.width:
                raise ValueError(f"{self.format} format: {longest}-digit operands do not fit width={self.width}")
            if self.op == "mul" and self.modulus is None and 2 * longest > self.width + 1:
                raise ValueError(f"{self.format} format: a {2 * longest}-digit product does not fit the "
                                 f"{self.width + 1}-digit answer (width={self.width}); raise width")
        return self

    # ---- shapes ----------------------------------------------------------------------------------------------
    @property
    def max_digits(self) -> int:
        return max(self.train_digits)

    @property
    def truncation(self) -> int:
        return self.truncate_digits if self.truncate_digits is not None else self.max_digits

    @property
    def is_truncated(self) -> bool:
        return self.target == "truncated"

    def _answer_len(self) -> int:
        """Longest answer in digits for this config (fixed and reversed formats)."""
        if self.modulus is not None:
            return answer_width(self.modulus)
        if self.format in FIXED_WIDTH:
            return self.width + 1
        return self.max_digits + 1 if self.op == "add" else 2 * self.max_digits

    def slots(self) -> int:
        """Answer read-outs K: every token the model writes, END included."""
        n = self.max_digits
        if self.format in TRUNCATABLE:
            return self._answer_len() + 1
        if self.format == "detailed":
            return 5 * self.width + 4  # 4 per digit, the final carry, '|', width + 1 sum digits, END
        if self.format == "scratchpad":
            return 2 * n + 3 if self.op == "add" else 2 * n * n + n
        w = answer_width(self.modulus)
        return 2 * n * w + w + 1

    def seq_len(self) -> int:
        n = self.max_digits
        if self.format in FIXED_WIDTH:
            return 2 * self.width + 3 + self.slots()
        if self.format == "reversed":
            return 2 * n + 3 + self.slots()
        if self.format == "scratchpad":
            return 4 * n + 6 if self.op == "add" else 2 * n * n + 3 * n + 3
        w = answer_width(self.modulus)
        return 2 * n * (1 + w) + 3 + w + 1

    def vocab_size(self) -> int:
        return D.VOCAB

    def n_outputs(self) -> int:
        return D.VOCAB

    def splits(self) -> dict[str, Task]:
        if not self.test_digits:
            return {"test": self}
        lengths = self.model_copy(update={"train_digits": list(self.test_digits), "both_exact": False,
                                          "uniform": False, "truncate_digits": self.truncation})
        out: dict[str, Task] = {"test": self, "lengths": lengths}
        if self.format in TRUNCATABLE:
            out["lengths_truncated"] = lengths.model_copy(update={"target": "truncated"})
        return out

    def encode(self, a: int, b: int) -> list[int]:
        """The token ids of one sequence for the operands ``a``, ``b`` (the answer is this task's target)."""
        if a < 0 or b < 0:
            raise ValueError(f"operands must be >= 0, got a={a}, b={b}")
        width = self.width if self.format in FIXED_WIDTH else max(len(str(a)), len(str(b)), self.max_digits)
        da, db = (D.to_digits([x], width).unsqueeze(0) for x in (a, b))  # (1, 1, width)
        k = self.truncation
        true = _result(self.op, self.modulus, da, db)
        short = _result(self.op, self.modulus, D.truncate(da, k), D.truncate(db, k))
        answer = short if self.target == "truncated" else true
        task = self.model_copy(update={"train_digits": [width]})
        tokens, _, valid = D.pack(_layout(self.format, self.op, self.modulus, da, db, answer, TaskStack([task])),
                                  task.seq_len())
        return tokens[0, 0][valid[0, 0]].tolist()

    # ---- sampling --------------------------------------------------------------------------------------------
    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        dev = rng.device
        stack = stack.to(dev)
        s = stack.shared
        width = stack.max("max_digits") if s.format not in FIXED_WIDTH else s.width
        n = _draw_counts(stack, rng, batch_size, step)  # (M, B)
        a, b = _draw_operands(stack, rng, batch_size, step, n, width)  # (M, B, width) each
        trunc = stack.per_model("truncation").view(-1, 1, 1)
        keep = torch.arange(width, device=dev) < trunc  # (M, 1, width)
        ta, tb = a * keep, b * keep
        true = _result(s.op, s.modulus, a, b)
        short = _result(s.op, s.modulus, ta, tb)
        agrees = (_pad_to(true, short.shape[-1]) == _pad_to(short, true.shape[-1])).all(-1)  # (M, B)
        truncated = stack.per_model("is_truncated", torch.bool).view(-1, 1, 1)
        answer = torch.where(truncated, _pad_to(short, true.shape[-1]), _pad_to(true, short.shape[-1]))
        segments = _layout(s.format, s.op, s.modulus, a, b, answer, stack)
        tokens, scored, valid = D.pack(segments, stack.max("seq_len"))
        positions, target_index, mask = D.readouts(scored, stack.max("slots"))
        targets = tokens.gather(-1, target_index)
        return Batch(tokens, targets, mask, positions, valid if s.format not in FIXED_WIDTH else None,
                     groups={"length": n}, extras={"trunc_agrees": agrees.float()})

    # ---- scoring ---------------------------------------------------------------------------------------------
    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        result = super().metrics(out, batch)
        mask = batch.mask  # (M, B, K)
        right = ((out.argmax(-1) == batch.targets) & mask).float()
        result["digit_accuracy"] = (right.sum(1), mask.float().sum(1))  # (M, K)
        k = mask.shape[-1]
        length = batch.groups["length"]
        size = (int(length.max()) + 1) * k if length.numel() else 0
        cell = (length.unsqueeze(-1) * k + torch.arange(k, device=mask.device)).flatten(1)  # (M, B·K)
        sums = torch.zeros(mask.shape[0], size, dtype=right.dtype, device=mask.device)
        counts = torch.zeros_like(sums)
        sums.scatter_add_(1, cell, right.flatten(1))
        counts.scatter_add_(1, cell, mask.float().flatten(1))
        result["digit_accuracy_by_length"] = (sums, counts)
        agrees = batch.extras["trunc_agrees"]
        result["truncation_agreement"] = (agrees.sum(-1), torch.full_like(agrees[:, 0], agrees.shape[1]))
        result["truncation_agreement_by_length"] = group_sums(agrees, length)
        pred = torch.where(mask, out.argmax(-1), batch.targets)  # unused slots (at the end) agree: no cost
        dist = D.edit_distance(pred, batch.targets)  # (M, B)
        result["edit_distance"] = (dist.sum(-1), torch.full_like(dist[:, 0], dist.shape[1]))
        return result


def _pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, max(length - x.shape[-1], 0)))


def _draw_counts(stack: TaskStack, rng: StackRNG, batch_size: int, step) -> torch.Tensor:
    """A digit count per sequence, uniform over each model's ``train_digits``: (M, B)."""
    table, counts = _count_table(tuple(tuple(v) for v in stack.values("train_digits")), str(rng.device))
    pick = rng.randint((batch_size,), high=counts, step=step)  # (M, B)
    return table.gather(1, pick)


@functools.lru_cache(maxsize=256)
def _count_table(lists: tuple[tuple[int, ...], ...], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Each model's digit counts, right-padded to a (M, longest) table, and how many each has (M,)."""
    longest = max(len(v) for v in lists)
    table = torch.tensor([list(v) + [v[-1]] * (longest - len(v)) for v in lists], device=device)
    return table, torch.tensor([len(v) for v in lists], device=device)


def _draw_operands(stack: TaskStack, rng: StackRNG, batch_size: int, step, n: torch.Tensor, width: int):
    """Operands of the D_n / D_ab n scheme as digits (M, B, width)."""
    body = rng.randint((batch_size, 2, width), high=10, step=step, salt=1)  # (M, B, 2, width)
    top = rng.randint((batch_size, 2), high=9, step=step, salt=2) + 1  # (M, B, 2) leading digit 1..9
    coin = rng.randint((batch_size,), high=2, step=step, salt=3)  # (M, B): which operand is exactly n digits
    both = stack.per_model("both_exact", torch.bool).view(-1, 1, 1)
    uniform = stack.per_model("uniform", torch.bool).view(-1, 1, 1, 1)
    idx = torch.arange(2, device=rng.device)
    exact = both | (idx == coin.unsqueeze(-1))  # (M, B, 2)
    pos = torch.arange(width, device=rng.device)
    nn_ = n[..., None, None]  # (M, B, 1, 1)
    digits = torch.where(pos < nn_, body, 0)
    lead = (pos == nn_ - 1) & (nn_ >= 2) & exact.unsqueeze(-1) & ~uniform  # leading digit of an exact-n operand
    digits = torch.where(lead, top.unsqueeze(-1), digits)
    return digits[:, :, 0], digits[:, :, 1]


def _result(op: str, modulus: int | None, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Digits of a ∘ b, or of (a ∘ b) mod p in ``answer_width(p)`` digits."""
    if modulus is None:
        return D.add_digits(a, b) if op == "add" else D.mul_digits(a, b)
    ra, rb = D.remainders(a, modulus)[..., 0], D.remainders(b, modulus)[..., 0]
    r = (ra + rb) % modulus if op == "add" else (ra * rb) % modulus
    return D.value_digits(r, answer_width(modulus))


def _layout(fmt: str, op: str, modulus: int | None, a, b, answer, stack: TaskStack) -> list[D.Segment]:
    """The segments of every sequence of the batch in format ``fmt``."""
    opt = D.token(D.PLUS if op == "add" else D.TIMES, a)
    bos, eq, end = D.token(D.BOS, a), D.token(D.EQ, a), D.token(D.END, a, scored=True)
    if fmt in ("fixed", "plain", "aligned"):
        w = stack.shared.width
        ans_len = answer_width(modulus) if modulus is not None else w + 1
        ans = _pad_to(answer, ans_len)[..., :ans_len]  # (M, B, ans_len) least significant first
        if fmt == "aligned":  # everything least significant first: a_i, b_i, answer_i at fixed distances
            return [bos, D.digits(a), opt, D.digits(b), eq, D.digits(ans, scored=True), end]
        return [bos, D.digits(a.flip(-1)), opt, D.digits(b.flip(-1)), eq,
                D.digits(ans if fmt == "fixed" else ans.flip(-1), scored=True), end]
    if fmt == "detailed":  # per digit from the units up: a_i b_i carry_in s_i; the final carry; '|'; the sum
        carry_out = D.carries(a, b)  # (M, B, w)
        carry_in = torch.nn.functional.pad(carry_out[..., :-1], (1, 0))
        total = D.add_digits(a, b)  # (M, B, w + 1)
        steps = torch.stack([a, b, carry_in, total[..., :-1]], -1).flatten(-2)  # (M, B, 4·w)
        return [bos, D.digits(a.flip(-1)), opt, D.digits(b.flip(-1)), eq, D.digits(steps, scored=True),
                D.digits(carry_out[..., -1:], scored=True), D.token(D.SEP, a, scored=True),
                D.digits(total.flip(-1), scored=True), end]
    la, lb = D.n_digits(a), D.n_digits(b)
    if fmt == "reversed":
        ans_len = torch.full_like(la, answer.shape[-1]) if modulus is not None else D.n_digits(answer)
        return [bos, D.digits(a, la), opt, D.digits(b, lb), eq, D.digits(answer, ans_len, scored=True), end]
    if fmt == "remainder":
        return [bos, _remainder_blocks(a, la, modulus), opt, _remainder_blocks(b, lb, modulus), eq,
                D.digits(answer.flip(-1), scored=True), end]
    if op == "add":  # scratchpad: the carry out of every position, then the sum
        lab = torch.maximum(la, lb)
        return [bos, D.digits(a, la), opt, D.digits(b, lb), eq, D.digits(D.carries(a, b), lab, scored=True),
                D.token(D.SEP, a, scored=True), D.digits(answer, D.n_digits(answer), scored=True), end]
    segments = [bos, D.digits(a, la), opt, D.digits(b, lb), eq]  # scratchpad mul: running sums a·(b mod 10^(j+1))
    width = a.shape[-1]
    pos = torch.arange(width, device=a.device)
    for j in range(width):
        partial = D.mul_digits(a, b * (pos <= j))  # (M, B, 2·width)
        used = j < lb  # (M, B)
        segments.append(D.digits(partial, torch.where(used, la + lb, 0), scored=True))
        segments.append(D.Segment(torch.full_like(a[..., :1], D.SEP), (j < lb - 1).long(), scored=True))
    return segments + [end]


def _remainder_blocks(x: torch.Tensor, length: torch.Tensor, p: int) -> D.Segment:
    """Each digit of x, most significant first, followed by the running remainder (w digits, MSB first)."""
    w = answer_width(p)
    msb = D.reverse_within(x, length)  # (M, B, L)
    rems = D.reverse_within(D.remainders(x, p), length)  # (M, B, L): remainder after each MSB-first digit
    blocks = torch.cat([msb.unsqueeze(-1), D.value_digits(rems, w).flip(-1)], -1)  # (M, B, L, 1 + w)
    scored = (torch.arange(1 + w, device=x.device) >= 1).repeat(x.shape[-1])  # the remainders, not the digits
    return D.Segment(blocks.flatten(2) + D.DIGIT0, length * (1 + w), scored.expand(*x.shape[:2], -1))
