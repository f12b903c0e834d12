"""Layers whose parameters carry a leading model dimension M: M independent models run in one call.

Every layer takes activations shaped (M, ..., features) and applies model m's weights to slice m.
Initialisation is done per model from the model's own seed (see ``StackedTransformer.reset_parameters``),
so a model's weights do not depend on the stack it is trained in.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t.to(dtype)``, skipping the call when ``t`` already is (a small model's step would make ~30 such calls)."""
    return t if t.dtype == dtype else t.to(dtype)


class StackedLinear(nn.Module):
    """y[m] = x[m] @ weight[m] + bias[m]. weight: (M, in, out); x: (M, ..., in)."""

    def __init__(self, n_models: int, d_in: int, d_out: int, bias: bool = True) -> None:
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.weight = nn.Parameter(torch.empty(n_models, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(n_models, 1, d_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[1:-1]
        flat = x.reshape(x.shape[0], -1, self.d_in)  # (M, N, in)
        if self.bias is None:
            y = torch.bmm(flat, self.weight)
        else:
            y = torch.baddbmm(_as(self.bias, flat.dtype), flat, _as(self.weight, flat.dtype))
        return y.view(x.shape[0], *lead, self.d_out)

    def init_model(self, m: int, gen: torch.Generator, scheme: str, std_scale: float = 1.0) -> None:
        """Initialise model m: 'torch' = nn.Linear's U(±1/√in); 'gpt2' = N(0, 0.02·std_scale), bias 0."""
        with torch.no_grad():
            if scheme == "torch":
                bound = 1.0 / math.sqrt(self.d_in)
                w = torch.empty(self.d_out, self.d_in).uniform_(-bound, bound, generator=gen)
                self.weight[m].copy_(w.T)
                if self.bias is not None:
                    self.bias[m, 0].copy_(torch.empty(self.d_out).uniform_(-bound, bound, generator=gen))
            else:
                self.weight[m].copy_(torch.randn(self.d_in, self.d_out, generator=gen) * 0.02 * std_scale)
                if self.bias is not None:
                    self.bias[m].zero_()

    def init_rows(self, m: int, gen: torch.Generator, scheme: str, n_out: int) -> None:
        """Initialise only the first ``n_out`` output columns of model m (a padded head); the rest are 0."""
        with torch.no_grad():
            self.weight[m].zero_()
            if self.bias is not None:
                self.bias[m].zero_()
            bound = 1.0 / math.sqrt(self.d_in)
            if scheme == "torch":
                w = torch.empty(n_out, self.d_in).uniform_(-bound, bound, generator=gen)
                self.weight[m, :, :n_out].copy_(w.T)
                if self.bias is not None:
                    self.bias[m, 0, :n_out].copy_(torch.empty(n_out).uniform_(-bound, bound, generator=gen))
            else:
                self.weight[m, :, :n_out].copy_(torch.randn(self.d_in, n_out, generator=gen) * 0.02)


class StackedEmbedding(nn.Module):
    """Token lookup per model. weight: (M, V, d); ids: (M, B, T) -> (M, B, T, d)."""

    def __init__(self, n_models: int, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_models, vocab_size, d_model))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n_models, vocab = self.weight.shape[:2]
        if n_models == 1:
            return nn.functional.embedding(ids, self.weight[0])
        offset = (torch.arange(n_models, device=ids.device) * vocab).view(-1, *([1] * (ids.dim() - 1)))
        return nn.functional.embedding(ids + offset, self.weight.reshape(n_models * vocab, -1))  # (M·V, d) table

    def init_model(self, m: int, gen: torch.Generator, scheme: str, n_rows: int) -> None:
        """Rows beyond ``n_rows`` (padding of a smaller vocabulary) stay zero and are never looked up."""
        std = 1.0 if scheme == "torch" else 0.02
        with torch.no_grad():
            self.weight[m].zero_()
            self.weight[m, :n_rows].copy_(torch.randn(n_rows, self.weight.shape[2], generator=gen) * std)


class StackedLayerNorm(nn.Module):
    """LayerNorm over the last dim with per-model gain and bias: (M, d)."""

    def __init__(self, n_models: int, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_models, d_model))
        self.bias = nn.Parameter(torch.zeros(n_models, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = _as(self.weight, x.dtype), _as(self.bias, x.dtype)
        if x.shape[0] == 1:  # one model: the fused kernel with its affine
            return nn.functional.layer_norm(x, x.shape[-1:], weight[0], bias[0], eps=self.eps)
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        y = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        return torch.addcmul(bias.view(shape), y, weight.view(shape))  # y·weight[m] + bias[m]

    def init_model(self, m: int, gen: torch.Generator, scheme: str) -> None:
        with torch.no_grad():
            self.weight[m].fill_(1.0)
            self.bias[m].zero_()
