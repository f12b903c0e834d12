"""Export a finished run to TransformerLens: a ``HookedTransformer`` with the same logits at every position.

A limitlab model is TransformerLens's standard block: pre-LayerNorm (or none), attention with q·k/√hd, an MLP of
``d_mlp`` with GELU (exact erf, TL's ``"gelu"``) or ReLU, and a final LayerNorm. Our read-out head over the task's
output classes becomes TL's unembed (``d_vocab_out`` = classes, with its bias). The weights only change layout:

    ours                                   TransformerLens
    embed.weight (V, d)                    embed.W_E (V, d)
    input_positions.0.table (L, d)         pos_embed.W_pos (n_ctx = max_len, d)
    attn.qkv.weight (d, 3d), q|k|v         attn.W_Q / W_K / W_V (H, d, hd): column h·hd + j -> [h, :, j]
    attn.out.weight (d, d)                 attn.W_O (H, hd, d): row h·hd + j -> [h, j, :]
    mlp.up / mlp.down, ln1 / ln2 / ln_f    mlp.W_in / W_out, ln1 / ln2 / ln_final (w, b)
    head.weight (d, C), head.bias          unembed.W_U (d, C), unembed.b_U

Positions: ``learned`` -> "standard"; ``sinusoidal`` -> "standard" with our fixed table written into W_pos;
``none`` -> "standard" with W_pos = 0 (exactly NoPE); ``rope`` -> "rotary" over the whole head with TL's
GPT-NeoX pairing (channel c with c + hd/2, ``rotary_adjacent_pairs=False``) and frequencies base^(-2c/hd), which is
our convention; ``alibi`` -> "alibi" for causal models (same slopes 2^(-8h/H) for every H; TL's bias is 0 towards
later keys, which a causal mask hides but a bidirectional model would see). A run without biases gets zero biases.
No weight processing (fold_ln, center_writing_weights, ...) is applied: the exported model computes our function
as it is, and a user may process it afterwards. The state file holds parameters only; TL rebuilds its buffers
(masks, rotary tables) from the config. TL refuses sequences longer than ``n_ctx`` = our ``model.max_len``, for
every encoding (ours limits only encodings with a table sized by ``max_len``: learned, sinusoidal).

Needs TransformerLens 3.x (``pip install 'limitlab[lens]'``): 4.0 removed ``HookedTransformer``.

>>> export_transformer_lens(RunStore("limitlab-store"), "3f2a9c0d1e4b5a67", "exported/run")   # doctest: +SKIP
PosixPath('exported/run')
>>> model = load_transformer_lens("exported/run")                                             # doctest: +SKIP
>>> logits, cache = model.run_with_cache(tokens)      # tokens (B, T) -> logits (B, T, classes)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from limitlab.export.weights import run_weights
from limitlab.nn.positions import parse_positions
from limitlab.nn.positions.absolute import Sinusoidal
from limitlab.spec import RunSpec

POSITIONS = {"learned": "standard", "sinusoidal": "standard", "none": "standard", "rope": "rotary", "alibi": "alibi"}
CONFIG_FILE, STATE_FILE = "config.json", "model.pt"


def check_lens_exportable(spec: RunSpec) -> None:
    """Raise a one-line ValueError naming what TransformerLens has no counterpart for."""
    m = spec.model
    names = [enc.name for enc in parse_positions(m.position)]
    if len(names) != 1 or names[0] not in POSITIONS:
        raise ValueError(f"position encoding {m.position!r} has no TransformerLens counterpart; "
                         f"allowed: {', '.join(POSITIONS)} (one encoding, not combined)")
    if names[0] == "alibi" and not m.causal:
        raise ValueError("position encoding 'alibi' exports only for causal models (model.causal=True): "
                         "TransformerLens's ALiBi bias is 0 towards later keys, ours is -slope·|i - j|")
    if m.norm == "post":
        raise ValueError("model.norm='post' has no TransformerLens counterpart; allowed: 'pre', 'none'")
    if spec.task.input_dim():
        raise ValueError(f"task {spec.task.name!r} has vector inputs (input_dim={spec.task.input_dim()}); "
                         "TransformerLens models read token ids")


def lens_state(spec: RunSpec, weights: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(HookedTransformerConfig keyword arguments, HookedTransformer parameters) for one run's weights.

    Pure tensors: needs no TransformerLens. ``dtype`` in the config is a string ('float32'), JSON-friendly.
    """
    check_lens_exportable(spec)
    m, vocab, classes = spec.model, spec.task.vocab_size(), spec.task.n_outputs()
    name = parse_positions(m.position)[0].name
    d, heads, hd = m.d_model, m.n_heads, m.d_model // m.n_heads
    w = weights
    dtype = w["embed.weight"].dtype
    config: dict[str, Any] = dict(
        model_name=f"limitlab-{spec.run_id}", n_layers=m.n_layers, d_model=d, n_heads=heads, d_head=hd,
        d_mlp=m.mlp_width, d_vocab=vocab, d_vocab_out=classes, n_ctx=m.max_len, act_fn=m.activation,
        normalization_type="LN" if m.norm == "pre" else None, eps=1e-5,
        attention_dir="causal" if m.causal else "bidirectional", positional_embedding_type=POSITIONS[name],
        use_attn_scale=True, default_prepend_bos=False, init_weights=False, dtype=str(dtype).removeprefix("torch."),
    )
    if name == "rope":
        rope_options = m.encoding_options()[0][1]
        config.update(rotary_dim=hd, rotary_adjacent_pairs=False, rotary_base=rope_options.rope_base)

    def bias(key: str, size: int) -> torch.Tensor:  # (size,): ours, or zeros for a model without biases
        return w[key][0] if key in w else torch.zeros(size, dtype=dtype)

    state = {"embed.W_E": w["embed.weight"][:vocab], "unembed.W_U": w["head.weight"][:, :classes],
             "unembed.b_U": bias("head.bias", w["head.weight"].shape[1])[:classes]}
    if name != "rope":  # TL keeps a W_pos for alibi too (unused there); zero it
        if name == "learned":
            table = w["input_positions.0.table"]
        elif name == "sinusoidal":
            table = Sinusoidal(m.geometry(1), Sinusoidal.Options()).table.to(dtype)
        else:
            table = torch.zeros(m.max_len, d, dtype=dtype)
        state["pos_embed.W_pos"] = table  # (max_len, d)
    if m.norm == "pre":
        state |= {"ln_final.w": w["ln_f.weight"], "ln_final.b": w["ln_f.bias"]}
    for i in range(m.n_layers):
        b = f"blocks.{i}."  # the same prefix on both sides
        qkv, qkv_b = w[f"{b}attn.qkv.weight"], bias(f"{b}attn.qkv.bias", 3 * d)  # (d, 3d), (3d,)
        for j, x in enumerate("QKV"):
            state[f"{b}attn.W_{x}"] = qkv[:, j * d:(j + 1) * d].reshape(d, heads, hd).permute(1, 0, 2)  # (H, d, hd)
            state[f"{b}attn.b_{x}"] = qkv_b[j * d:(j + 1) * d].reshape(heads, hd)
        state[f"{b}attn.W_O"] = w[f"{b}attn.out.weight"].reshape(heads, hd, d)
        state[f"{b}attn.b_O"] = bias(f"{b}attn.out.bias", d)
        state[f"{b}mlp.W_in"], state[f"{b}mlp.W_out"] = w[f"{b}mlp.up.weight"], w[f"{b}mlp.down.weight"]
        state[f"{b}mlp.b_in"] = bias(f"{b}mlp.up.bias", m.mlp_width)
        state[f"{b}mlp.b_out"] = bias(f"{b}mlp.down.bias", d)
        if m.norm == "pre":
            for ln in ("ln1", "ln2"):
                state[f"{b}{ln}.w"], state[f"{b}{ln}.b"] = w[f"{b}{ln}.weight"], w[f"{b}{ln}.bias"]
    return config, {k: v.contiguous() for k, v in state.items()}


def _lens() -> tuple[Any, Any]:
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError as exc:
        raise ValueError("export --to transformer-lens needs TransformerLens 3.x (4.0 removed HookedTransformer): "
                         "pip install 'limitlab[lens]'") from exc
    return HookedTransformer, HookedTransformerConfig


def build_hooked_transformer(config: dict[str, Any], state: dict[str, torch.Tensor],
                             device: str | torch.device = "cpu") -> Any:
    """A HookedTransformer (eval mode) from ``lens_state``'s output; every parameter must be given, nothing else."""
    import warnings

    hooked, hooked_config = _lens()
    kwargs = dict(config, dtype=getattr(torch, config["dtype"]), device=str(device))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
        model = hooked(hooked_config(**kwargs))
    params = dict(model.named_parameters())
    missing, unexpected = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
    if missing or unexpected:
        raise ValueError(f"transformer-lens mapping incomplete: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for key, value in state.items():
            if params[key].shape != value.shape:
                raise ValueError(f"transformer-lens mapping: {key} has shape {tuple(value.shape)}, "
                                 f"HookedTransformer wants {tuple(params[key].shape)}")
            params[key].copy_(value)
    return model.eval()


def export_transformer_lens(store: Any, run_id: str, out: str | Path) -> Path:
    """Write the run's model to directory ``out`` (config.json + model.pt); returns the path."""
    spec = store.spec(run_id)
    check_lens_exportable(spec)
    _lens()
    weights = run_weights(store, run_id)
    config, state = lens_state(spec, weights)
    model = build_hooked_transformer(config, state)  # proves the files load before writing them
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
    torch.save({k: p.detach().clone() for k, p in model.named_parameters()}, out / STATE_FILE)
    return out


def load_transformer_lens(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """The exported run as a ``HookedTransformer`` in eval mode: ``model(tokens)`` (B, T) -> logits (B, T, C).

    Without limitlab the same is: ``cfg = json.load(open(path/'config.json'))``, ``cfg['dtype'] =
    getattr(torch, cfg['dtype'])``, ``model = HookedTransformer(HookedTransformerConfig(**cfg))``,
    ``model.load_state_dict(torch.load(path/'model.pt'), strict=False)`` (the file holds parameters only).
    """
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / STATE_FILE).is_file():
        raise ValueError(f"{str(path)!r} is not a transformer-lens export (needs {CONFIG_FILE} and {STATE_FILE})")
    config = json.loads((path / CONFIG_FILE).read_text())
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    return build_hooked_transformer(config, state, device)
