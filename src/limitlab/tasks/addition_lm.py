"""Multi-digit addition as next-token prediction, in three answer formats (Lee et al. 2023; Nye et al. 2021).

Two ``digits``-digit operands (leading zeros kept, every digit uniform) are written most significant digit
first; the model then writes the output one token at a time, and every output token is a read-out (teacher
forcing: the read-out before output token j sees the true tokens 0 … j-1). Formats, for 3 digits, 128 + 395 = 523:

==========  ==========================  =============================================================
format      output (what is scored)      idea
==========  ==========================  =============================================================
plain       0 5 2 3                      the sum, most significant digit first (n + 1 tokens)
reverse     3 2 5 0                      least significant first: each digit needs only the carry so far
scratchpad  8 5 0 3  2 9 1 2  1 3 1 5    per digit i (units first): a_i b_i carry_in s_i; then the final
            0 > 0 5 2 3                  carry, '>', and the sum MSD first (5·n + 3 tokens)
==========  ==========================  =============================================================

The full input for ``plain`` is ``1 2 8 + 3 9 5 = 0 5 2`` (the last output token is never an input); read-outs
sit at '=' and at each output token but the last. Token ids: 0-9 digits, 10 '+', 11 '=', 12 '>'.

Scoring (all per sequence of output tokens): ``loss`` = mean cross-entropy per output token (nats),
``token_accuracy`` = share of output tokens whose argmax is right, ``accuracy`` = exact match of the whole
output, ``edit_distance`` = Levenshtein distance between the argmax output string and the target (tokens), and
``token_accuracy_by_position`` (a vector over output positions). Under teacher forcing an output that is right
at every position is exactly what greedy decoding would write, so ``accuracy`` equals greedy exact match; the
per-token metrics are teacher-forced.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Metric, Task, TaskStack

PLUS, EQUALS, ARROW = 10, 11, 12
VOCAB = 13
FORMATS = ("plain", "reverse", "scratchpad")


def output_length(digits: int, fmt: str) -> int:
    """Number of output (scored) tokens of one sequence."""
    return 5 * digits + 3 if fmt == "scratchpad" else digits + 1


def render(a: torch.Tensor, b: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits (..., n) MSD first of two operands -> (prompt (..., 2n+2), output (..., L)) token ids."""
    n = a.shape[-1]
    carry = torch.zeros_like(a[..., :1])  # (..., 1)
    sums, carries_in = [], []
    for i in range(n - 1, -1, -1):  # units first
        carries_in.append(carry)
        t = a[..., i:i + 1] + b[..., i:i + 1] + carry
        sums.append(t % 10)
        carry = t // 10
    lsd_first = torch.cat([*sums, carry], dim=-1)  # (..., n+1): s_0 … s_{n-1}, s_n = final carry
    msd_first = lsd_first.flip(-1)
    prompt = torch.cat([a, torch.full_like(carry, PLUS), b, torch.full_like(carry, EQUALS)], dim=-1)
    if fmt == "plain":
        return prompt, msd_first
    if fmt == "reverse":
        return prompt, lsd_first
    steps = []
    for k, i in enumerate(range(n - 1, -1, -1)):
        steps += [a[..., i:i + 1], b[..., i:i + 1], carries_in[k], sums[k]]
    out = torch.cat([*steps, carry, torch.full_like(carry, ARROW), msd_first], dim=-1)
    return prompt, out


def edit_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Levenshtein distance between token rows: (..., L) and (..., L') -> (...) float."""
    lp, lt = pred.shape[-1], target.shape[-1]
    lead = pred.shape[:-1]
    prev = torch.arange(lt + 1, device=pred.device, dtype=torch.float32).expand(*lead, lt + 1).clone()
    for i in range(1, lp + 1):
        cur = [torch.full(lead, float(i), device=pred.device)]
        for j in range(1, lt + 1):
            sub = prev[..., j - 1] + (pred[..., i - 1] != target[..., j - 1]).float()
            cur.append(torch.minimum(torch.minimum(prev[..., j] + 1, cur[j - 1] + 1), sub))
        prev = torch.stack(cur, dim=-1)
    return prev[..., lt]


class AdditionLMTask(Task):
    """a + b with ``digits``-digit operands, the output written in ``format`` (see the module docstring)."""

    name = "addition_lm"
    digits: int = Field(3, ge=1, le=20, description="digits per operand (the sum has digits + 1)")
    format: Literal["plain", "reverse", "scratchpad"] = Field("plain", description="how the output is written")

    @property
    def out_len(self) -> int:
        return output_length(self.digits, self.format)

    def vocab_size(self) -> int:
        return VOCAB

    def seq_len(self) -> int:
        return 2 * self.digits + 2 + self.out_len - 1

    def n_outputs(self) -> int:
        return VOCAB

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        n, fmt = stack.shared.digits, stack.shared.format
        a = rng.randint((batch_size, n), high=10, step=step, salt=0)  # (M, B, n)
        b = rng.randint((batch_size, n), high=10, step=step, salt=1)
        prompt, out = render(a, b, fmt)  # (M, B, 2n+2), (M, B, L)
        inputs = torch.cat([prompt, out[..., :-1]], dim=-1)  # (M, B, T)
        start = prompt.shape[-1] - 1  # '=' predicts the first output token
        readout = torch.arange(start, start + out.shape[-1], device=a.device).expand_as(out).contiguous()
        return Batch(inputs, out, torch.ones_like(out, dtype=torch.bool), readout)

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        result = Task.metrics.__func__(cls, out, batch)
        pred = out.argmax(-1)  # (M, B, L)
        dist = edit_distance(pred, batch.targets)  # (M, B)
        result["edit_distance"] = (dist.sum(-1), torch.full_like(dist[:, 0], dist.shape[1]))
        hit = (pred == batch.targets).float()  # (M, B, L)
        result["token_accuracy_by_position"] = (hit.sum(1), torch.full_like(hit[:, 0], hit.shape[1]))
        return result
