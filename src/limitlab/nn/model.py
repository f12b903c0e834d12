"""A stack of M independent transformers of one shape, trained in one forward/backward.

Parameters carry a leading model dim M (M = 1 is an ordinary model). Attention has no parameters, so M folds
into the batch for ``scaled_dot_product_attention``; encodings that must see the logits (relative, CoPE) or a
request for attention weights switch to an explicit softmax path with the same maths.

>>> cfg = ModelConfig(d_model=16, n_heads=2, n_layers=2, position="rope")
>>> model = StackedTransformer(cfg, n_models=3, vocab_size=13, n_outputs=11)
>>> model.reset_parameters(seeds=[0, 1, 2])
>>> model(torch.randint(0, 13, (3, 8, 20))).shape      # (M, B, T) -> (M, B, T, classes)
torch.Size([3, 8, 20, 11])
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from limitlab.nn.attention import StackedAttention
from limitlab.nn.layers import StackedEmbedding, StackedLayerNorm, StackedLinear
from limitlab.nn.positions import Geometry, PositionEncoding, parse_positions


class ModelConfig(BaseModel):
    """Shape and options of one transformer (every model of a stack shares them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    n_layers: int = Field(2, ge=1, le=64, description="number of blocks")
    n_heads: int = Field(4, ge=1, le=128, description="attention heads per block")
    d_model: int = Field(64, ge=1, le=16384, description="embedding (residual) width")
    d_mlp: int | None = Field(None, ge=1, description="MLP hidden width; default 4·d_model")
    activation: Literal["gelu", "relu"] = "gelu"
    norm: Literal["pre", "post", "none"] = Field("pre", description="LayerNorm placement, or no LayerNorm")
    causal: bool = Field(True, description="causal decoder; False = bidirectional")
    position: str = Field("learned", description="position encoding(s), '+'-joined, e.g. 'cope+rope'")
    position_options: dict[str, Any] = Field(default_factory=dict, description="options of the encodings")
    max_len: int = Field(512, ge=1, description="longest sequence for tables indexed by absolute position")
    init: Literal["torch", "gpt2"] = Field("torch", description="'torch' = nn.Linear/nn.Embedding defaults")
    bias: bool = True

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        encodings = parse_positions(self.position)
        allowed: set[str] = set()
        for enc in encodings:
            allowed |= set(enc.Options.model_fields)
        unknown = set(self.position_options) - allowed
        if unknown:
            raise ValueError(f"position_options {sorted(unknown)} do not apply to {self.position!r}; "
                             f"allowed: {sorted(allowed) or 'none'}")
        geo = self.geometry(1)
        for enc, options in self.encoding_options():
            enc.check(geo, options)
        return self

    @property
    def mlp_width(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    def geometry(self, n_models: int) -> Geometry:
        return Geometry(n_models, self.d_model, self.n_heads, self.causal, self.max_len)

    def encoding_options(self) -> list[tuple[type[PositionEncoding], BaseModel]]:
        out = []
        for enc in parse_positions(self.position):
            mine = {k: v for k, v in self.position_options.items() if k in enc.Options.model_fields}
            out.append((enc, enc.Options(**mine)))
        return out


class StackedMLP(nn.Module):
    def __init__(self, n_models: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.up = StackedLinear(n_models, cfg.d_model, cfg.mlp_width, cfg.bias)
        self.down = StackedLinear(n_models, cfg.mlp_width, cfg.d_model, cfg.bias)
        self.act = nn.GELU() if cfg.activation == "gelu" else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    def __init__(self, n_models: int, cfg: ModelConfig) -> None:
        super().__init__()
        geo = cfg.geometry(n_models)
        encs = [enc(geo, opt) for enc, opt in cfg.encoding_options() if enc.scope == "attention"]
        self.attn = StackedAttention(n_models, cfg.d_model, cfg.n_heads, cfg.causal, encs, cfg.bias)
        self.mlp = StackedMLP(n_models, cfg)
        self.norm = cfg.norm
        if cfg.norm != "none":
            self.ln1, self.ln2 = StackedLayerNorm(n_models, cfg.d_model), StackedLayerNorm(n_models, cfg.d_model)

    def forward(self, x: torch.Tensor, query_index: torch.Tensor | None, keep_weights: bool,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        """x: (M, B, T, d) -> (M, B, T or K, d); with ``query_index`` (M, B, K) only those rows come out."""
        resid = x if query_index is None else _gather_rows(x, query_index)
        if self.norm == "pre":
            x = resid + self.attn(self.ln1(x), query_index, keep_weights, valid)
            return x + self.mlp(self.ln2(x))
        if self.norm == "post":
            x = self.ln1(resid + self.attn(x, query_index, keep_weights, valid))
            return self.ln2(x + self.mlp(x))
        x = resid + self.attn(x, query_index, keep_weights, valid)
        return x + self.mlp(x)


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x: (M, B, T, d), index: (M, B, K) -> (M, B, K, d)."""
    return x.gather(2, index.unsqueeze(-1).expand(*index.shape, x.shape[-1]))


class StackedTransformer(nn.Module):
    """M transformers of one shape. Inputs are token ids (M, B, T) or vectors (M, B, T, input_dim)."""

    def __init__(
        self, cfg: ModelConfig, n_models: int, vocab_size: int, n_outputs: int, input_dim: int = 0
    ) -> None:
        super().__init__()
        if n_models < 1:
            raise ValueError(f"n_models must be >= 1, got {n_models}")
        if (vocab_size > 0) == (input_dim > 0):
            raise ValueError(f"give exactly one of vocab_size ({vocab_size}) or input_dim ({input_dim})")
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
        self.cfg, self.n_models = cfg, n_models
        self.vocab_size, self.n_outputs, self.input_dim = vocab_size, n_outputs, input_dim
        geo = cfg.geometry(n_models)
        if vocab_size:
            self.embed: nn.Module = StackedEmbedding(n_models, vocab_size, cfg.d_model)
        else:
            self.embed = StackedLinear(n_models, input_dim, cfg.d_model, cfg.bias)
        self.input_positions = nn.ModuleList(
            [enc(geo, opt) for enc, opt in cfg.encoding_options() if enc.scope == "input"]
        )
        self.blocks = nn.ModuleList([Block(n_models, cfg) for _ in range(cfg.n_layers)])
        self.ln_f = StackedLayerNorm(n_models, cfg.d_model) if cfg.norm == "pre" else None
        self.head = StackedLinear(n_models, cfg.d_model, n_outputs, cfg.bias)
        self.register_buffer("output_mask", torch.ones(n_models, n_outputs, dtype=torch.bool))
        self.padded_outputs = False  # set by reset_parameters; avoids a device sync per forward

    def reset_parameters(
        self, seeds: list[int], vocab_sizes: list[int] | None = None, output_sizes: list[int] | None = None
    ) -> None:
        """Initialise model m from ``seeds[m]`` alone (same seed and sizes -> same weights in any stack).

        ``vocab_sizes``/``output_sizes`` give each model's real sizes when the stack is padded: padded
        embedding rows and head columns are zero and padded classes are masked out of the logits.
        """
        if len(seeds) != self.n_models:
            raise ValueError(f"{len(seeds)} seeds for a stack of {self.n_models} models")
        vocab_sizes = vocab_sizes or [self.vocab_size] * self.n_models
        output_sizes = output_sizes or [self.n_outputs] * self.n_models
        scheme = self.cfg.init
        residual_scale = 1.0 / math.sqrt(2 * self.cfg.n_layers)
        for m, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            if isinstance(self.embed, StackedEmbedding):
                self.embed.init_model(m, gen, scheme, vocab_sizes[m])
            else:
                self.embed.init_model(m, gen, scheme)
            for enc in self.input_positions:
                enc.init_model(m, gen, scheme)
            for block in self.blocks:
                block.attn.qkv.init_model(m, gen, scheme)
                block.attn.out.init_model(m, gen, scheme, residual_scale)
                for enc in block.attn.encodings:
                    enc.init_model(m, gen, scheme)
                block.mlp.up.init_model(m, gen, scheme)
                block.mlp.down.init_model(m, gen, scheme, residual_scale)
                for ln in (getattr(block, "ln1", None), getattr(block, "ln2", None)):
                    if ln is not None:
                        ln.init_model(m, gen, scheme)
            if self.ln_f is not None:
                self.ln_f.init_model(m, gen, scheme)
            self.head.init_rows(m, gen, scheme, output_sizes[m])
            self.output_mask[m] = torch.arange(self.n_outputs) < output_sizes[m]
        self.padded_outputs = any(size < self.n_outputs for size in output_sizes)

    def forward(
        self, inputs: torch.Tensor, readout: torch.Tensor | None = None, keep_attention: bool = False,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (M, B, K, n_outputs) at the ``readout`` positions (M, B, K), or at every position.

        With a readout, the last block computes attention and MLP for those rows only (exact: nothing else
        reaches the output). ``keep_attention`` stores each block's weights in ``block.attn.weights``.
        ``valid`` (M, B, T) bool marks real tokens: padding (False) is never attended to, so its token ids
        change no output at a real position, for every position encoding.
        """
        h = self.embed(inputs)  # (M, B, T, d)
        for enc in self.input_positions:
            h = enc.on_input(h, inputs)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            h = block(h, readout if i == last else None, keep_attention, valid)
        if self.ln_f is not None:
            h = self.ln_f(h)
        logits = self.head(h)  # (M, B, K, C)
        if self.padded_outputs:
            logits = logits.masked_fill(~self.output_mask[:, None, None, :], float("-inf"))
        return logits

    def n_params(self, embedding: bool = False) -> int:
        """Parameters of one model (not the stack); token embedding excluded unless ``embedding``."""
        total = sum(p.numel() for p in self.parameters()) // self.n_models
        if not embedding and isinstance(self.embed, StackedEmbedding):
            total -= self.embed.weight[0].numel()
        return total
