"""The scaling study's run labels, each a function of the spec, so a tag always says what its run is.

The experiments tag their runs with quantities the fits and figures read (parameter counts, tokens, FLOPs, the
Markov language's entropy floor, the multitask frequencies). Declared here as :class:`~limitlab.studies.base.Study`
labels, they are recomputed from the spec after every ``--set`` override, and checked against what a preset wrote.

>>> from limitlab.studies import STUDIES
>>> spec = STUDIES["scaling"].specs("laws-smoke", {"train.steps": 7})[0]
>>> spec.tags["steps"], spec.tags["tokens"] == 7 * spec.train.batch_size * spec.task.scored_tokens
(7, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from limitlab.costs import counts, train_flops_per_token
from limitlab.spec import RunSpec


def tokens(spec: RunSpec) -> int:
    """Training tokens: steps × batch × the tokens a sequence scores (its whole length when it does not say)."""
    per_sequence = getattr(spec.task, "scored_tokens", None)
    return spec.train.steps * spec.train.batch_size * (per_sequence if per_sequence is not None else
                                                       spec.task.seq_len())


LABELS: dict[str, str | Callable[[RunSpec], Any]] = {
    "seed": "seed", "d": "model.d_model", "d_model": "model.d_model", "n_layers": "model.n_layers",
    "steps": "train.steps", "lr": "optim.lr", "weight_decay": "optim.weight_decay", "p": "task.p",
    "train_fraction": "task.train_fraction",
    "subtasks": "task.subtasks", "zipf": "task.zipf",
    "n_params": lambda s: counts(s).total,
    "n_params_nonembedding": lambda s: counts(s).nonembedding,
    "samples": lambda s: s.train.steps * s.train.batch_size,
    "tokens": tokens,
    "flops": lambda s: train_flops_per_token(s) * tokens(s),
    "entropy_floor": lambda s: s.task.entropy_rate() if hasattr(s.task, "entropy_rate") else None,
    "frequencies": lambda s: s.task.frequencies().tolist(),
}
DESIGN = frozenset({"experiment", "corpus", "task", "size", "format"})  # format: plain/reverse/scratchpad
