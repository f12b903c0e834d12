"""In-context classification with a semantic prior, and the flipped-label test of Wei et al. 2023.

A sequence shows ``k`` exemplars (x, label) with **distinct** symbols x, then ``n_queries`` queries, each a symbol
from the exemplars followed by its label. Labels come from one of two mappings:

* the **prior** g: one fixed, balanced map symbol -> label shared by every run (the "semantics" a model can store
  in its weights), used by a share ``prior_fraction`` of the pretraining sequences;
* a **per-sequence** random map, used by the rest: only the context tells the label. A share ``alt_fraction``
  of these write their labels with a second, *semantically unrelated* label set (tokens that never carry g).

Every label is a read-out (next-token prediction), but the metrics score the queries only. Evaluation splits:

=========  =====================================================================================
split      exemplars and queries
=========  =====================================================================================
test       the pretraining mixture
flip0 …    labelled by g, with round(p·k) of the k exemplars' labels flipped to another label
flip100    (p = 0, .25, .5, .75, 1); a query shows the label its symbol has in the context
sul        labelled by g but written with the unrelated label set (no flips): ICL without a prior
=========  =====================================================================================

Metrics per query, with the prediction = argmax over the sequence's label set (as in multiple-choice scoring):
``accuracy`` (= ``context_accuracy``) against the in-context label, ``prior_accuracy`` against g,
``flip_follow`` (share of *flipped* queries answered with the flipped label; no count when none is flipped) and
``invalid_rate`` (share whose argmax over the whole vocabulary is not a label of the set). A model that follows
the context scores prior_accuracy ≈ 1 - p; a model that ignores it keeps ≈ 1.

Tokens: 0 … S-1 symbols, S … S+L-1 labels, S+L … S+2L-1 unrelated labels (S = ``n_symbols``, L = ``n_labels``).
Example, k = 3, one query, L = 2 (labels A, B; prior g(x1) = A, g(x4) = B, g(x6) = A), split flip…::

    input    x4 B  x1 B  x6 A  x1        read-outs after every symbol; x1's label was flipped A -> B
    target      B     B     A     B      prior_accuracy counts A at the query, context/flip_follow count B
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from limitlab.rng import StackRNG, mix64
from limitlab.tasks.base import Batch, Metric, Task, TaskStack

FLIP_RATES = (0.0, 0.25, 0.5, 0.75, 1.0)
_PRIOR_SALT = 0x9_1A_B0


def prior_labels(n_symbols: int, n_labels: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixed prior g (n_symbols,) label indices: balanced (rank of a fixed hash mod n_labels), run-independent."""
    keys = mix64(torch.arange(n_symbols, dtype=torch.int64, device=device) + _PRIOR_SALT)
    rank = keys.argsort().argsort()
    return rank % n_labels


class FlippedICLTask(Task):
    """k exemplars with distinct symbols and n_queries queries; prior vs per-sequence label maps."""

    name = "flipped_icl"
    n_symbols: int = Field(32, ge=2, le=10_000, description="number of input symbols x")
    n_labels: int = Field(2, ge=2, le=100, description="labels per label set")
    k: int = Field(8, ge=1, description="exemplars per sequence (distinct symbols)")
    n_queries: int = Field(4, ge=1, description="queries per sequence (symbols from the exemplars)")
    prior_fraction: float = Field(0.5, ge=0, le=1, description="share of pretraining sequences labelled by g")
    alt_fraction: float = Field(0.5, ge=0, le=1, description="share of per-sequence maps using the unrelated labels")
    mode: Literal["train", "flip", "sul"] = Field("train", description="pretraining mixture, flipped or SUL test")
    flip: float = Field(0.0, ge=0, le=1, description="mode 'flip': share of exemplar labels flipped")

    @model_validator(mode="after")
    def _check(self) -> FlippedICLTask:
        if self.k > self.n_symbols:
            raise ValueError(f"k={self.k} exemplars need distinct symbols; allowed: k <= n_symbols={self.n_symbols}")
        if self.flip and self.mode != "flip":
            raise ValueError(f"flip={self.flip} applies to mode='flip' only, not mode={self.mode!r}")
        return self

    def vocab_size(self) -> int:
        return self.n_symbols + 2 * self.n_labels

    def seq_len(self) -> int:
        return 2 * (self.k + self.n_queries) - 1

    def n_outputs(self) -> int:
        return self.vocab_size()

    def splits(self) -> dict[str, Task]:
        base = self.model_copy(update={"mode": "train", "flip": 0.0})
        out: dict[str, Task] = {"test": base}
        for p in FLIP_RATES:
            out[f"flip{round(100 * p)}"] = base.model_copy(update={"mode": "flip", "flip": p})
        out["sul"] = base.model_copy(update={"mode": "sul"})
        return out

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        t = stack.shared
        S, L, k, Q, B, dev = t.n_symbols, t.n_labels, t.k, t.n_queries, batch_size, rng.device
        g = prior_labels(S, L, dev)  # (S,)
        x = rng.permutation_keys((B, S), step, salt=0).argsort(-1)[..., :k]  # (M, B, k) distinct symbols
        prior = g[x]  # (M, B, k)
        if t.mode == "train":
            own = rng.randint((B, S), high=L, step=step, salt=1).gather(-1, x)  # per-sequence map
            use_prior = rng.random((B, 1), step, salt=2) < t.prior_fraction  # (M, B, 1)
            alt = ~use_prior & (rng.random((B, 1), step, salt=3) < t.alt_fraction)
            label = torch.where(use_prior, prior, own)
            flipped = torch.zeros_like(label, dtype=torch.bool)
        elif t.mode == "flip":
            n_flip = round(t.flip * k)
            flipped = rng.permutation_keys((B, k), step, salt=5).argsort(-1).argsort(-1) < n_flip  # (M, B, k)
            shift = 1 + rng.randint((B, k), high=L - 1, step=step, salt=6)
            label = torch.where(flipped, (prior + shift) % L, prior)
            alt = torch.zeros_like(label[..., :1], dtype=torch.bool)
        else:  # sul: the prior map written with the unrelated labels
            label, flipped = prior, torch.zeros_like(prior, dtype=torch.bool)
            alt = torch.ones_like(label[..., :1], dtype=torch.bool)
        base = S + L * alt.long()  # (M, B, 1) token of label 0 of the sequence's label set
        pick = rng.randint((B, Q), high=k, step=step, salt=4)  # (M, B, Q) which exemplar each query repeats
        qx, ql = x.gather(-1, pick), label.gather(-1, pick)
        xs, ls = torch.cat([x, qx], -1), torch.cat([label, ql], -1) + base  # (M, B, k+Q)
        inputs = torch.stack([xs, ls], -1).flatten(-2)[..., :-1]  # (M, B, 2(k+Q)-1): x y x y … x
        readout = torch.arange(0, 2 * (k + Q), 2, device=dev).expand_as(xs).contiguous()
        extras = {"prior": prior.gather(-1, pick) + base, "flipped": flipped.gather(-1, pick),
                  "labels": base + torch.arange(L, device=dev)}  # labels: (M, B, L)
        return Batch(inputs, ls, torch.ones_like(ls, dtype=torch.bool), readout, extras=extras)

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        Q = batch.extras["prior"].shape[-1]
        out, target = out[..., -Q:, :].float(), batch.targets[..., -Q:]  # queries only: (M, B, Q, C), (M, B, Q)
        labels = batch.extras["labels"]  # (M, B, L) the token ids of the sequence's label set
        n_labels = labels.shape[-1]
        label_logits = out.gather(-1, labels.unsqueeze(2).expand(*out.shape[:-1], n_labels))  # (M, B, Q, L)
        base = labels[..., :1]  # (M, B, 1)
        pred = label_logits.argmax(-1) + base  # (M, B, Q) restricted prediction (token id)
        free = out.argmax(-1)  # (M, B, Q) unrestricted
        count = torch.full_like(out[:, 0, 0, 0], target.shape[1] * Q)
        ce = torch.nn.functional.cross_entropy(out.flatten(0, 2), target.flatten(), reduction="none")
        flipped = batch.extras["flipped"]
        ctx = (pred == target).float()
        return {
            "loss": (ce.view(target.shape).sum((1, 2)), count),
            "accuracy": (ctx.sum((1, 2)), count),
            "context_accuracy": (ctx.sum((1, 2)), count),
            "prior_accuracy": ((pred == batch.extras["prior"]).float().sum((1, 2)), count),
            "flip_follow": ((ctx * flipped).sum((1, 2)), flipped.float().sum((1, 2))),
            "invalid_rate": (((free < base) | (free >= base + n_labels)).float().sum((1, 2)), count),
        }

