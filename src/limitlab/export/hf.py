"""Export a finished run's weights to a Hugging Face ``transformers`` model directory.

A limitlab model with learned absolute positions, pre-LayerNorm, a causal mask and token inputs is a GPT-2 with a
token-classification head: the same blocks (``c_attn`` is our fused q/k/v projection, stored (in, out) like ours),
the same final LayerNorm, and a linear ``classifier`` over the run's output classes at every position. The exported
directory loads with ``GPT2ForTokenClassification.from_pretrained(path)`` and gives the same logits (tested).
Needs the run's weights (``limitlab run --save-weights``) and the optional ``probe`` extra (``transformers``).

>>> export_hf(RunStore("limitlab-store"), "3f2a9c0d1e4b5a67", "exported/run")   # doctest: +SKIP
PosixPath('exported/run')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from limitlab.export.weights import run_weights
from limitlab.spec import RunSpec


def check_exportable(spec: RunSpec) -> None:
    m = spec.model
    problems = [f"{name}={value!r} (needs {need})" for name, value, need, ok in [
        ("model.position", m.position, "'learned'", m.position == "learned"),
        ("model.norm", m.norm, "'pre'", m.norm == "pre"),
        ("model.causal", m.causal, "True", m.causal),
        ("model.bias", m.bias, "True", m.bias),
        ("task input", "vectors" if spec.task.input_dim() else "tokens", "tokens", spec.task.input_dim() == 0),
    ] if not ok]
    if problems:
        raise ValueError("only GPT-2-shaped runs export to Hugging Face; this run has " + ", ".join(problems))


def gpt2_state(spec: RunSpec, weights: dict[str, torch.Tensor]) -> tuple[Any, dict[str, torch.Tensor]]:
    """(GPT2Config, state dict of GPT2ForTokenClassification) for one run's weights (its own, unpadded sizes)."""
    from transformers import GPT2Config

    check_exportable(spec)
    m, vocab, classes = spec.model, spec.task.vocab_size(), spec.task.n_outputs()
    config = GPT2Config(vocab_size=vocab, n_positions=m.max_len, n_embd=m.d_model, n_layer=m.n_layers,
                        n_head=m.n_heads, n_inner=m.mlp_width, activation_function=m.activation,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                        num_labels=classes, classifier_dropout=0.0, scale_attn_weights=True,
                        bos_token_id=None, eos_token_id=None, pad_token_id=None)  # not GPT-2's 50256: the
    # task's vocabulary has no such ids; the run and its task (its token layout) travel in the config instead
    config.limitlab = {"run_id": spec.run_id, "task": spec.model_dump(mode="json")["task"]}
    w = weights
    state = {"transformer.wte.weight": w["embed.weight"][:vocab],
             "transformer.wpe.weight": w["input_positions.0.table"],
             "transformer.ln_f.weight": w["ln_f.weight"], "transformer.ln_f.bias": w["ln_f.bias"],
             "classifier.weight": w["head.weight"][:, :classes].T, "classifier.bias": w["head.bias"][0, :classes]}
    for i in range(m.n_layers):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b in [("ln1", "ln_1"), ("ln2", "ln_2")]:
            state[f"{theirs}{b}.weight"], state[f"{theirs}{b}.bias"] = w[f"{ours}{a}.weight"], w[f"{ours}{a}.bias"]
        for a, b in [("attn.qkv", "attn.c_attn"), ("attn.out", "attn.c_proj"), ("mlp.up", "mlp.c_fc"),
                     ("mlp.down", "mlp.c_proj")]:
            state[f"{theirs}{b}.weight"] = w[f"{ours}{a}.weight"]
            state[f"{theirs}{b}.bias"] = w[f"{ours}{a}.bias"][0]
    return config, {k: v.contiguous() for k, v in state.items()}


def export_hf(store: Any, run_id: str, out: str | Path) -> Path:
    """Write the run's model to ``out`` as a ``GPT2ForTokenClassification`` directory; returns the path."""
    try:
        from transformers import GPT2ForTokenClassification
    except ImportError as exc:
        raise ValueError("export --to hf needs transformers: pip install 'limitlab[probe]'") from exc
    spec = store.spec(run_id)
    weights = run_weights(store, run_id)
    config, state = gpt2_state(spec, weights)
    model = GPT2ForTokenClassification(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")]
    if missing or unexpected:
        raise ValueError(f"export mapping incomplete: missing {missing}, unexpected {unexpected}")
    out = Path(out)
    model.save_pretrained(out)
    return out
