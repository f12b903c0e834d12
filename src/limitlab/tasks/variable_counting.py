"""Variable counting, the CoPE paper's counting task (Golovneva et al. 2024, §5.2; RAM's ``count_data_gen.py``).

A program of statements over ``n_vars`` variables (the first letters a, b, c, …), then a question::

    a = 0;   pass;   a ++;   pass;   pass;   b = 0;   a ++;   pass;   print a      -> answer 2

Statements are drawn i.i.d. with weights ``set : increment : pass`` = 1 : 7 : 50 (``op_weights``), the variable
uniformly. A value never exceeds ``max_value`` (10): an increment of a variable at the cap, or of one not yet set,
is redrawn from the other two kinds (set : pass = 1 : 50), which is what "resample the op" gives. The first
statement is always a set (of a uniform variable), so every program has a variable to ask about; the question
asks about a uniformly chosen variable among those set. The number of statements is uniform in
[``min_statements``, ``max_statements``] (3 … 512 in the paper).

Tokens follow RAM's whitespace tokenizer (``pass;`` and ``++;`` are single tokens)::

    id     0    1       2   3     4     5       6 …
    token  PAD  pass;   =   0;    ++;   print   a, b, c, …

    input    a  =  0;  pass;  a  ++;  print  a   PAD …      read-out at the last question token
    target                                       1          the value of a (a class 0 … max_value)

A sample is never truncated: ``seq_len()`` is the longest possible program (every statement a 3-token set) plus
the question, shorter programs are right-padded and the padding is marked invalid (``Batch.valid``), so no
statement is ever dropped. ``max_tokens`` gives a shorter length (the paper preset: 768 for 512 statements, about
19 standard deviations above the longest expected program); a batch holding a program that does not fit raises
a ValueError naming its length (RAM's collator left-truncates at 512 tokens, losing early statements in ~14% of
samples). ``extras['n_statements']`` carries each program's length (for tests). Groups: ``answer`` (accuracy
per answer value).

Splits: ``test`` (the training distribution) and, when ``long_statements`` is set, ``long``: programs of
``max_statements`` + 1 … ``long_statements`` statements, longer than any trained on (the paper has no such test).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Metric, Task, TaskStack

PAD, PASS, EQ, ZERO, INC, PRINT, FIRST_VAR = 0, 1, 2, 3, 4, 5, 6
WORDS = ["PAD", "pass;", "=", "0;", "++;", "print"]
SET_OP, INC_OP, PASS_OP = 0, 1, 2
OP_TOKENS = 3  # the longest statement (a set: `a = 0;`)


class VariableCountingTask(Task):
    """Programs of set / increment / pass statements; predict the value of the variable asked for."""

    name = "variable_counting"
    n_vars: int = Field(3, ge=1, le=26, description="number of variables (the paper: 1, 3 or 5)")
    min_statements: int = Field(3, ge=1, description="fewest statements in a program")
    max_statements: int = Field(512, ge=1, le=100_000, description="most statements in a program")
    max_value: int = Field(10, ge=1, le=1000, description="values are capped here; answers are 0 … max_value")
    op_weights: tuple[float, float, float] = Field((1.0, 7.0, 50.0), description="set : increment : pass")
    max_tokens: int | None = Field(None, ge=3, description="sequence length; default: the longest possible program")
    long_statements: int | None = Field(None, ge=2, le=100_000, description="adds the 'long' split: programs of "
                                        "max_statements + 1 … long_statements statements (out of distribution)")
    added_later: ClassVar[frozenset[str]] = frozenset({"long_statements"})

    @model_validator(mode="after")
    def _check(self) -> VariableCountingTask:
        if self.min_statements > self.max_statements:
            raise ValueError(f"min_statements={self.min_statements} exceeds max_statements={self.max_statements}")
        if self.max_tokens is not None and self.max_tokens > OP_TOKENS * self.max_statements + 2:
            raise ValueError(f"max_tokens={self.max_tokens} exceeds the longest possible program "
                             f"({OP_TOKENS * self.max_statements + 2} tokens); leave it unset")
        if self.long_statements is not None and self.long_statements <= self.max_statements:
            raise ValueError(f"long_statements={self.long_statements} must exceed max_statements="
                             f"{self.max_statements} (the long split holds longer programs than training)")
        if any(w < 0 for w in self.op_weights) or self.op_weights[0] + self.op_weights[2] <= 0:
            raise ValueError(f"op_weights={self.op_weights} must be >= 0 with set + pass > 0")
        return self

    def vocab_size(self) -> int:
        return FIRST_VAR + self.n_vars

    def splits(self) -> dict[str, Task]:
        """'test', and with ``long_statements`` the 'long' split: programs longer than any trained on."""
        out: dict[str, Task] = {"test": self}
        if self.long_statements is not None:
            out["long"] = self.model_copy(update={"min_statements": self.max_statements + 1, "max_tokens": None,
                                                  "max_statements": self.long_statements, "long_statements": None})
        return out

    def seq_len(self) -> int:
        return self.max_tokens if self.max_tokens is not None else OP_TOKENS * self.max_statements + 2

    def n_outputs(self) -> int:
        return self.max_value + 1

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        sh = stack.shared
        s_max, n_vars, cap, min_stmt = sh.max_statements, sh.n_vars, sh.max_value, sh.min_statements
        w_set, w_inc, w_pass = (w / sum(sh.op_weights) for w in sh.op_weights)
        dev = rng.device
        shape = (batch_size, s_max)
        n_stmt = rng.randint((batch_size,), high=s_max + 1, low=min_stmt, step=step, salt=0)  # (M, B)
        u_op = rng.random(shape, step=step, salt=1)  # (M, B, S)
        u_redraw = rng.random(shape, step=step, salt=2)
        var = rng.randint(shape, high=n_vars, step=step, salt=3)
        op = torch.where(u_op < w_set, SET_OP, torch.where(u_op < w_set + w_inc, INC_OP, PASS_OP))
        redraw = torch.where(u_redraw * (w_set + w_pass) < w_set, SET_OP, PASS_OP)  # set : pass, for bad increments
        op[..., 0] = SET_OP
        m = op.shape[0]
        value = torch.full((m, batch_size, n_vars), -1, dtype=torch.int64, device=dev)  # -1 = not set
        active = torch.arange(s_max, device=dev) < n_stmt.unsqueeze(-1)  # (M, B, S)
        for s in range(s_max):  # sequential: whether an increment is allowed depends on the values so far
            v = var[..., s : s + 1]  # (M, B, 1)
            current = value.gather(-1, v)
            o = op[..., s : s + 1]
            o = torch.where((o == INC_OP) & ((current < 0) | (current >= cap)), redraw[..., s : s + 1], o)
            op[..., s : s + 1] = o
            new = torch.where(o == SET_OP, 0, torch.where(o == INC_OP, current + 1, current))
            value.scatter_(-1, v, torch.where(active[..., s : s + 1], new, current))
        # tokens of every statement, left-aligned in 3 slots: (M, B, S, 3)
        name = var + FIRST_VAR
        pad = torch.full_like(name, PAD)
        toks = torch.where((op == SET_OP).unsqueeze(-1), torch.stack([name, torch.full_like(name, EQ),
                                                                      torch.full_like(name, ZERO)], -1),
                           torch.where((op == INC_OP).unsqueeze(-1),
                                       torch.stack([name, torch.full_like(name, INC), pad], -1),
                                       torch.stack([torch.full_like(name, PASS), pad, pad], -1)))
        length = torch.where(op == SET_OP, 3, torch.where(op == INC_OP, 2, 1)) * active  # (M, B, S)
        start = length.cumsum(-1) - length  # token offset of each statement
        total = length.sum(-1)  # (M, B) program tokens
        width = sh.max_tokens if sh.max_tokens is not None else OP_TOKENS * s_max + 2
        if sh.max_tokens is not None:  # one host sync per batch: a program that does not fit is an error, never cut
            longest = int(total.max()) + 2
            if longest > width:
                raise ValueError(f"a program of {longest} tokens does not fit max_tokens={width} "
                                 f"(max_statements={s_max}); raise max_tokens or leave it unset")
        slot = torch.arange(OP_TOKENS, device=dev)
        index = start.unsqueeze(-1) + slot  # (M, B, S, 3)
        keep = slot < length.unsqueeze(-1)
        index = torch.where(keep, index, OP_TOKENS * s_max + 2)  # unused slots go to a spare column, dropped below
        inputs = torch.zeros(m, batch_size, OP_TOKENS * s_max + 3, dtype=torch.int64, device=dev)
        inputs.scatter_(-1, index.flatten(-2), toks.flatten(-2))
        # the question: a uniformly chosen variable among those set
        keys = rng.random((batch_size, n_vars), step=step, salt=4)  # (M, B, V)
        asked = torch.where(value >= 0, keys, -1.0).argmax(-1, keepdim=True)  # (M, B, 1)
        answer = value.gather(-1, asked)
        q_index = total.unsqueeze(-1) + torch.arange(2, device=dev)  # (M, B, 2)
        inputs.scatter_(-1, q_index, torch.cat([torch.full_like(asked, PRINT), asked + FIRST_VAR], -1))
        inputs = inputs[..., :width]
        valid = torch.arange(width, device=dev) < (total + 2).unsqueeze(-1)  # (M, B, T)
        readout = (total + 1).unsqueeze(-1)  # (M, B, 1)
        return Batch(inputs, answer, torch.ones_like(answer, dtype=torch.bool), readout, valid,
                     groups={"answer": answer[..., 0]}, extras={"n_statements": n_stmt})

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        result = super().metrics(out, batch)
        right, count = result["accuracy"]
        result["error"] = (count - right, count)
        return result


def decode(tokens: torch.Tensor, n_vars: int = 26) -> str:
    """The program text of one (T,) sequence, padding dropped: 'a = 0; pass; a ++; print a'."""
    words = WORDS + [chr(ord("a") + i) for i in range(n_vars)]
    return " ".join(words[t] for t in tokens.tolist() if t != PAD)


def run_program(text: str) -> int:
    """Execute a decoded program in Python and return the printed value (the reference answer)."""
    body, _, asked = text.rpartition("print ")
    code = body.replace(" ++;", " += 1\n").replace(" = 0;", " = 0\n").replace("pass;", "pass\n")
    code = "\n".join(line.strip() for line in code.splitlines())
    scope: dict[str, int] = {}
    exec(code, {}, scope)  # noqa: S102 - our own generated, token-checked program
    return scope[asked.strip()]
