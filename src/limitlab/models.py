"""A trained run's model, loaded back from the store: one model (M = 1) at the run's own sizes.

The store keeps a finished run's weights when it was trained with ``--save-weights`` (or by a study that keeps
them). :func:`load_model` checks them against the model the run's spec builds (:mod:`limitlab.export.weights`),
drops the rows and columns a padded stack added, and returns a :class:`~limitlab.nn.model.StackedTransformer`
in eval mode, ready for a batch of the run's task.

>>> model = load_model(RunStore("limitlab-store"), "3f2a9c0d1e4b5a67")     # doctest: +SKIP
>>> batch = TaskStack([spec.task]).sample(StackRNG([spec.seed], stream=TEST), 8, 0)  # doctest: +SKIP
>>> model(batch.inputs, batch.positions).shape  # (M=1, B, T or K, outputs)          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch

from limitlab.export.weights import run_weights
from limitlab.nn.model import StackedTransformer


def load_model(store: Any, run_id: str, device: str | torch.device = "cpu") -> StackedTransformer:
    """The finished run ``run_id`` of ``store`` as a one-model stack on ``device`` (eval mode); ValueError in one
    line when the run has no saved weights or they do not fit its spec."""
    spec = store.spec(run_id)
    weights = run_weights(store, run_id)
    task = spec.task
    model = StackedTransformer(spec.model, 1, task.vocab_size(), task.n_outputs(), task.input_dim())
    with torch.no_grad():
        for name, p in model.named_parameters():
            saved = weights[name]
            p[0].copy_(saved[tuple(slice(0, n) for n in p.shape[1:])])  # a padded stack's extra rows dropped
    return model.to(device).eval()
