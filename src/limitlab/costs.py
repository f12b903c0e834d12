"""What one model of a run costs: parameters, training FLOPs and device memory — counted from the code.

**Parameters** are counted on the real :class:`~limitlab.nn.model.StackedTransformer`, built with M = 1 on the
``meta`` device (no memory; cached per shape), so a new layer or position encoding is counted as written, never
from a formula beside it. :class:`ParamCounts` splits them by role:

* ``token_embedding`` — the (V, d) lookup (no matmul); 0 with a linear read-in;
* ``position_tables`` — position-encoding parameters outside linear layers (learned and Abacus tables, T5 and
  relative tables, CoPE's e); linear layers inside an encoding (CoPE's separate gate keys) are matmuls;
* ``nonembedding`` — Kaplan et al.'s N: everything else (blocks, final LayerNorm, output head, a linear read-in).
  The head stays in N: it is a real matmul here (embeddings are untied).

**FLOPs**, one convention for the planner, ``limitlab bench`` (MFU) and the scaling study (Kaplan et al. 2020;
PaLM appendix B): training FLOPs per token = 6·N + 12·L·T·d. 6·N covers every weight matmul (multiply-add =
2 FLOPs; forward 2, backward 4); 12·L·T·d is attention's QKᵀ and AV over a context of T, without a discount
for the causal mask.

**Memory** is estimated before anything is allocated, from the encodings' declarations
(:func:`limitlab.nn.positions.declaration`): an encoding whose attention materialises the logits, or adds a
dense (M·B, H, Tq, Tk) bias, is charged for them; what its own hooks keep is its ``saved_values_per_query``.

>>> from limitlab.spec import RunSpec
>>> spec = RunSpec(task={"name": "counting", "m": 5}, model={"d_model": 16, "n_heads": 2, "n_layers": 1})
>>> n = counts(spec)
>>> n.total == n.token_embedding + n.position_tables + n.nonembedding, n.position_tables == 512 * 16
(True, True)
>>> train_flops_per_token(spec) == 6 * n.nonembedding + 12 * 1 * spec.task.seq_len() * 16
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from limitlab.nn.layers import StackedEmbedding, StackedLinear
from limitlab.nn.model import ModelConfig, StackedTransformer
from limitlab.nn.positions import declaration

if TYPE_CHECKING:
    from limitlab.spec import RunSpec

FP32 = 4  # bytes; estimates assume fp32 everywhere (bf16 autocast only makes the truth smaller)


# ---- parameters --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParamCounts:
    """Parameters of one model by role (see the module doc); ``layer`` and ``kv`` describe one block."""

    total: int  # everything the optimizer holds
    token_embedding: int
    position_tables: int
    read_in: int  # a linear read-in of vector inputs (a matmul); 0 with a token embedding
    head: int  # final LayerNorm + output head
    layer: int  # one block, its position tables excluded
    kv: int  # of ``layer``: what runs at every key position (key and value projections, encodings' linears)

    @property
    def nonembedding(self) -> int:
        """Kaplan's N: all but the token embedding and the position tables."""
        return self.total - self.token_embedding - self.position_tables


def param_counts(model: ModelConfig, vocab: int, n_outputs: int, input_dim: int = 0) -> ParamCounts:
    """:class:`ParamCounts` of one model of this shape (``vocab`` = 0 with ``input_dim`` vector inputs)."""
    return _param_counts(model.model_dump_json(), vocab, n_outputs, input_dim)


@functools.lru_cache(maxsize=1024)
def _param_counts(model_json: str, vocab: int, n_outputs: int, input_dim: int) -> ParamCounts:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        net = StackedTransformer(ModelConfig.model_validate_json(model_json), 1, vocab, n_outputs, input_dim)
    block = net.blocks[0]
    embed = _numel(net.embed)
    input_tables = sum(_tables(enc) for enc in net.input_positions)
    block_tables = sum(_tables(enc) for enc in block.attn.encodings)
    encoder_linears = sum(_numel(enc) - _tables(enc) for enc in block.attn.encodings)
    qkv = block.attn.qkv
    kv = (qkv.weight.numel() + (qkv.bias.numel() if qkv.bias is not None else 0)) * 2 // 3  # q | k | v columns
    return ParamCounts(
        total=_numel(net), token_embedding=embed if isinstance(net.embed, StackedEmbedding) else 0,
        position_tables=input_tables + len(net.blocks) * block_tables,
        read_in=embed if isinstance(net.embed, StackedLinear) else 0,
        head=_numel(net.head) + (_numel(net.ln_f) if net.ln_f is not None else 0),
        layer=_numel(block) - block_tables, kv=kv + encoder_linears)


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tables(encoding: torch.nn.Module) -> int:
    """An encoding's parameters outside its linear layers."""
    linear = sum(_numel(m) for m in encoding.modules() if isinstance(m, StackedLinear))
    return _numel(encoding) - linear


def counts(spec: RunSpec, vocab: int | None = None, n_outputs: int | None = None) -> ParamCounts:
    """:class:`ParamCounts` of one model of ``spec`` (``vocab`` / ``n_outputs``: padded sizes of a stack)."""
    task = spec.task
    return param_counts(spec.model, task.vocab_size() if vocab is None else vocab,
                        task.n_outputs() if n_outputs is None else n_outputs, task.input_dim())


def total_params(spec: RunSpec, vocab: int | None = None, n_outputs: int | None = None) -> int:
    """All parameters of one model, embeddings and position tables included (what the optimizer holds)."""
    return counts(spec, vocab, n_outputs).total


def nonembedding_params(spec: RunSpec, n_outputs: int | None = None) -> int:
    """N of one model (Kaplan et al.): all but the token embedding and position tables; see the module doc."""
    return counts(spec, n_outputs=n_outputs).nonembedding


# ---- FLOPs -------------------------------------------------------------------------------------------------------

def train_flops_per_token(spec: RunSpec, seq_len: int | None = None, n_outputs: int | None = None) -> float:
    """Training FLOPs per token of one model: 6·N + 12·L·T·d (forward + backward, multiply-add = 2 FLOPs).

    6·N covers every weight matmul (2 forward, 4 backward); 12·L·T·d is attention's QKᵀ and AV over a context of
    T (PaLM's convention: no discount for the causal mask).
    """
    t = seq_len if seq_len is not None else spec.task.seq_len()
    return 6.0 * nonembedding_params(spec, n_outputs) + 12.0 * spec.model.n_layers * t * spec.model.d_model


def train_flops_per_step(spec: RunSpec, seq_len: int | None = None, n_outputs: int | None = None,
                         readouts: int | None = None) -> float:
    """FLOPs of one training step of one model, by the same 6·N + 12·L·T·d convention.

    Without ``readouts``: batch · T × :func:`train_flops_per_token` (every layer at every position). With
    ``readouts`` = K read-out positions per sequence, the convention is applied to the rows the output needs,
    which is what the model computes: layers 1..L-1 at all T positions; the last layer's key/value projections
    at all T, its queries, attention (K × T), output projection, MLP and the head at the K read-outs only.
    """
    t = seq_len if seq_len is not None else spec.task.seq_len()
    if readouts is None or readouts >= t:
        return spec.train.batch_size * t * train_flops_per_token(spec, t, n_outputs)
    d, n_layers = spec.model.d_model, spec.model.n_layers
    n = counts(spec, n_outputs=n_outputs)
    k = readouts
    full = (n_layers - 1) * t * (6.0 * n.layer + 12.0 * t * d) + t * 6.0 * n.read_in
    last = t * 6.0 * n.kv + k * (6.0 * (n.layer - n.kv) + 12.0 * t * d) + k * 6.0 * n.head
    return spec.train.batch_size * (full + last)


# ---- memory ------------------------------------------------------------------------------------------------------

def attention_values(model: ModelConfig, n_keys: int, training: bool = True) -> int:
    """Values one attention layer keeps per query beyond q, k, v, from the encodings' declarations.

    Materialised logits cost 3·H·Tk in training (logits, softmax weights, their gradient), 2·H·Tk without
    gradients; a dense bias H·Tk more. A bias on the fused path counts the logits too: PyTorch's kernels that
    take a dense mask may fall back to the math kernel, which materialises them. The encodings' own hooks add
    their ``saved_values_per_query``: all of them in training (autograd keeps each one's), the largest without
    gradients (one hook's temporaries are freed before the next runs).
    """
    decl, h = declaration(model.position), model.n_heads
    values = (3 if training else 2) * h * n_keys if decl.attention != "fused" else 0
    values += h * n_keys if decl.bias else 0
    geo = model.geometry(1)
    hooks = [enc.saved_values_per_query(geo, opt, n_keys) for enc, opt in model.encoding_options()]
    return values + (sum(hooks) if training else max(hooks))


def activation_bytes(spec: RunSpec, seq_len: int | None = None) -> int:
    """Saved activations of one training step of one model (fp32), generous constants.

    Per layer and token: LayerNorm inputs/outputs, q/k/v, the attention output, the MLP's pre- and
    post-activation (about 20·d + 2·d_mlp values), plus :func:`attention_values`.
    """
    m, t = spec.model, seq_len or spec.task.seq_len()
    tokens = spec.train.batch_size * t
    per_token = m.n_layers * (20 * m.d_model + 2 * m.mlp_width + attention_values(m, t)) + 4 * m.d_model
    return FP32 * tokens * per_token


def eval_bytes(spec: RunSpec, eval_batch_size: int, eval_len: int | None = None) -> int:
    """Peak of one no-grad evaluation batch: a layer's live tensors (about 12·d + 2·d_mlp per token, plus
    :func:`attention_values` without gradients).

    Evaluation batches hold about ``eval_batch_size`` sequences of the training length in tokens, whatever the
    split's length (``train.metrics.eval_batch_for``), so a long out-of-distribution split costs no more memory.
    """
    from limitlab.train.metrics import eval_batch_for

    m = spec.model
    t = eval_len or max(s.seq_len() for s in spec.task.splits().values())
    b = eval_batch_for(min(eval_batch_size, spec.train.eval_size), spec.task.seq_len(), t)
    per_token = 12 * m.d_model + 2 * m.mlp_width + attention_values(m, t, training=False)
    return FP32 * b * t * per_token


def model_bytes(spec: RunSpec, seq_len: int | None = None, eval_len: int | None = None, vocab: int | None = None,
                n_outputs: int | None = None, eval_batch_size: int = 256) -> int:
    """Estimated device memory one model of a stack needs: state + max(training step, evaluation batch).

    State: weights, gradients, two Adam moments and the optimizer's temporaries (about 7 copies of the weights).
    """
    state = 7 * FP32 * total_params(spec, vocab, n_outputs)
    return state + max(activation_bytes(spec, seq_len), eval_bytes(spec, eval_batch_size, eval_len))
