"""A finished run's saved weights, checked against the model its spec builds before anything is exported.

The store decodes the file (tensors only, :mod:`limitlab.store_codec`); this module checks that the tensors are
the parameters of the run's model: every parameter present, no other, each with the model's shape, except that
sizes that follow the vocabulary or the outputs may be larger (a run trained in a padded stack keeps the padding
rows and columns, which the exporters drop). Anything else is a ``ValueError`` with one line naming the first
mismatch, never a traceback from deep inside an exporter.

>>> weights = run_weights(RunStore("limitlab-store"), "3f2a9c0d1e4b5a67")   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch

from limitlab.nn.model import StackedTransformer
from limitlab.spec import RunSpec


def run_weights(store: Any, run_id: str) -> dict[str, torch.Tensor]:
    """The run's saved weights, checked by :func:`check_weights`; ``ValueError`` if there are none or they misfit."""
    weights = store.load_weights(run_id)
    if weights is None:
        raise ValueError(f"run {run_id} has no saved weights; train it with `limitlab run ... --save-weights`")
    problem = check_weights(store.spec(run_id), weights)
    if problem:
        raise ValueError(f"run {run_id}: its saved weights do not fit its model ({problem}); retrain it with "
                         "--save-weights")
    return weights


def check_weights(spec: RunSpec, weights: dict[str, torch.Tensor]) -> str | None:
    """Why ``weights`` are not the parameters of one ``spec`` model (None: they are). A size that grows with the
    vocabulary or the number of outputs may be larger (the stack's padding); every other size must be equal."""
    task = spec.task
    vocab, outputs, inputs = task.vocab_size(), task.n_outputs(), task.input_dim()
    own, padded = (_shapes(spec, vocab + extra * (vocab > 0), outputs + extra, inputs) for extra in (0, 1))
    missing, unexpected = sorted(own.keys() - weights.keys()), sorted(weights.keys() - own.keys())
    if missing or unexpected:
        return f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
    for name, shape in own.items():
        saved = tuple(weights[name].shape)
        if len(saved) != len(shape) or any(s < o or (s != o and o == p)
                                           for s, o, p in zip(saved, shape, padded[name])):
            return f"{name} has shape {saved}, the model's is {shape}"
    return None


def _shapes(spec: RunSpec, vocab: int, outputs: int, inputs: int) -> dict[str, tuple[int, ...]]:
    """{parameter name: one model's shape} of a ``spec`` model with these sizes."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = StackedTransformer(spec.model, 1, vocab, outputs, inputs)
    return {name: tuple(p.shape[1:]) for name, p in model.named_parameters()}
