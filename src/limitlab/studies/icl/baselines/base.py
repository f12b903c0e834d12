"""What every in-context regression baseline is, and the small helpers they share.

A baseline is a callable ``predict(xs, ys) -> preds`` with xs (P, n, d), ys (P, n) and preds (P, n), where
``preds[:, i]`` predicts y_i from the first i examples (x_1 … x_{i-1}, y_1 … y_{i-1}) and the query x_i. So one
call scores every prefix length i = 0 … n−1, exactly what the transformer is scored on (it reads its
prediction of y_i at the x_i token). With no examples (i = 0) a baseline predicts 0, the prior mean of every
family here. Tensors in, tensors out, on the inputs' device, in the dtype of ``ys``.

The default evaluation never loops in Python over prompts × prefixes: a baseline works on all P prompts at
once and either on all prefixes at once or in a loop over the n prefix lengths. Only the scikit-learn
reference models (:mod:`.reference`) loop per prompt and prefix; they say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch


class Baseline(Protocol):
    """A predictor of y_i from the prefix before it, for every i at once (see the module docstring)."""

    @property
    def name(self) -> str: ...

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor: ...


def check_inputs(xs: torch.Tensor, ys: torch.Tensor) -> None:
    """Raise a one-line ValueError unless xs is (P, n, d) and ys is (P, n) with the same P and n."""
    if xs.dim() != 3:
        raise ValueError(f"xs must be (P, n, d), got shape {tuple(xs.shape)}")
    if ys.shape != xs.shape[:2]:
        raise ValueError(f"ys must be (P, n) = {tuple(xs.shape[:2])} to match xs, got {tuple(ys.shape)}")
    if not (xs.is_floating_point() and ys.is_floating_point()):
        raise ValueError(f"xs and ys must be floating point, got {xs.dtype} and {ys.dtype}")


def prompt_chunks(n_prompts: int, bytes_per_prompt: int, budget: int = 2 ** 28) -> Iterator[slice]:
    """Slices of the prompt axis so that one slice's working set stays under ``budget`` bytes."""
    size = max(1, budget // max(1, bytes_per_prompt))
    for start in range(0, n_prompts, size):
        yield slice(start, min(n_prompts, start + size))


def exclusive_cumsum(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sums of the entries strictly before each index along ``dim`` (index 0 gets 0)."""
    return torch.cumsum(t, dim) - t
