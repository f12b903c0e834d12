"""StackedTransformer: causality, the read-out path, stacking, initialisation and config validation."""

from __future__ import annotations

import pytest
import torch

from limitlab.nn.model import ModelConfig, StackedTransformer
from limitlab.nn.positions import POSITIONS
from limitlab.nn.positions.bias import T5Bias
from limitlab.nn.positions.cope import CoPE

ALL_POSITIONS = [*POSITIONS, "cope+rope", "cope+relative"]
BIDIRECTIONAL = [p for p in ALL_POSITIONS if "cope" not in p]  # cope is causal only
VOCAB, CLASSES = 11, 7


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _build(position: str, n_models: int = 2, causal: bool = True, norm: str = "pre", n_layers: int = 2,
           seeds: list[int] | None = None, **options) -> StackedTransformer:
    """A float64 model with every zero-initialised table (CoPE, T5) set to random values."""
    if "cope" in position:
        options.setdefault("p_max", 6)  # sequences below are longer: the clamp is active
    cfg = ModelConfig(d_model=16, n_heads=2, n_layers=n_layers, norm=norm, causal=causal, position=position,
                      position_options=options, max_len=32)
    model = StackedTransformer(cfg, n_models, VOCAB, CLASSES)
    model.reset_parameters(seeds if seeds is not None else list(range(n_models)))
    gen = _gen(123)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (CoPE, T5Bias)):
                module.table.normal_(0.0, 0.5, generator=gen)
    return model.double()


def _tokens(n_models: int, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n_models, batch, length), generator=_gen(seed))


# ------------------------------------------------------------------------------------------ causality


@pytest.mark.parametrize("position", ALL_POSITIONS)
def test_causal_outputs_ignore_future_tokens(position):
    model = _build(position)
    x, t = _tokens(2, 3, 10), 5
    y = x.clone()
    y[:, :, t + 1] = (y[:, :, t + 1] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :, : t + 1], b[:, :, : t + 1], rtol=0, atol=1e-12)
    assert (a[:, :, t + 1] - b[:, :, t + 1]).abs().max() > 1e-6  # the changed position itself does move


@pytest.mark.parametrize("position", BIDIRECTIONAL)
def test_bidirectional_outputs_see_future_tokens(position):
    model = _build(position, causal=False)
    x, t = _tokens(2, 3, 10), 5
    y = x.clone()
    y[:, :, t + 1] = (y[:, :, t + 1] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(x), model(y)
    change = (a - b).abs().amax(dim=(0, 1, 3))  # (T,)
    assert (change[: t + 1] > 1e-8).all()


# ------------------------------------------------------------------------------------------- read-out


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
@pytest.mark.parametrize(
    ("position", "causal"), [(p, True) for p in ALL_POSITIONS] + [(p, False) for p in BIDIRECTIONAL]
)
def test_readout_equals_gathered_full_output(position, causal, norm):
    model = _build(position, n_models=3, causal=causal, norm=norm)
    x = _tokens(3, 2, 10, seed=1)
    readout = torch.randint(0, 10, (3, 2, 4), generator=_gen(2))  # different positions per model and row
    readout[:, :, 0] = 9  # the last position, and a repeated one
    readout[:, :, 1] = 9
    with torch.no_grad():
        full = model(x)
        part = model(x, readout=readout)
    want = full.gather(2, readout[..., None].expand(*readout.shape, CLASSES))
    assert part.shape == (3, 2, 4, CLASSES)
    torch.testing.assert_close(part, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("position", ["rope", "cope"])
def test_keep_attention_matches_fast_path_and_rows_sum_to_one(position):
    model = _build(position)
    x = _tokens(2, 3, 8, seed=3)
    with torch.no_grad():
        fast = model(x)
        kept = model(x, keep_attention=True)
    torch.testing.assert_close(kept, fast, rtol=0, atol=1e-10)
    w = model.blocks[0].attn.weights
    assert w.shape == (2, 3, 2, 8, 8)
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)), rtol=0, atol=1e-10)
    assert (w.triu(1) == 0).all()


# ------------------------------------------------------------------------------------------- stacking


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
@pytest.mark.parametrize("position", ["learned", "rope", "t5", "cope", "alibi", "relative"])
def test_stack_equals_separate_models(position, norm):
    n_models = 3
    stack = _build(position, n_models=n_models, norm=norm, seeds=[5, 6, 7])
    x = _tokens(n_models, 2, 9, seed=4)
    weight = torch.randn(n_models, 2, 9, CLASSES, generator=_gen(5), dtype=torch.float64)
    out = stack(x)
    (out * weight).sum().backward()
    stacked_state, stacked_params = stack.state_dict(), dict(stack.named_parameters())
    for m in range(n_models):
        single = _build(position, n_models=1, norm=norm, seeds=[99])
        single.load_state_dict({k: v[m : m + 1] for k, v in stacked_state.items()})
        out_m = single(x[m : m + 1])
        torch.testing.assert_close(out_m, out[m : m + 1], rtol=0, atol=1e-10)
        (out_m * weight[m : m + 1]).sum().backward()
        for name, param in single.named_parameters():
            assert param.grad is not None, name
            torch.testing.assert_close(param.grad, stacked_params[name].grad[m : m + 1], rtol=0, atol=1e-10,
                                       msg=lambda s, n=name: f"{n}: {s}")


# ------------------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize("init", ["torch", "gpt2"])
@pytest.mark.parametrize("position", ["learned", "relative", "cope", "t5"])
def test_weights_depend_only_on_own_seed(position, init):
    options = {"cope_sep_key": True} if position == "cope" else {}  # gate_key draws from the generator too
    cfg = ModelConfig(d_model=16, n_heads=2, n_layers=2, position=position, init=init, position_options=options)
    alone = StackedTransformer(cfg, 1, VOCAB, CLASSES)
    alone.reset_parameters([42])
    stack = StackedTransformer(cfg, 3, VOCAB, CLASSES)
    stack.reset_parameters([7, 8, 42])
    twice = StackedTransformer(cfg, 2, VOCAB, CLASSES)
    twice.reset_parameters([42, 42])
    big = dict(stack.named_parameters())
    for name, p in alone.named_parameters():
        torch.testing.assert_close(big[name][2], p[0], rtol=0, atol=0, msg=name)
        torch.testing.assert_close(dict(twice.named_parameters())[name][1], p[0], rtol=0, atol=0, msg=name)
    assert not torch.equal(stack.embed.weight[0], stack.embed.weight[1])  # different seeds, different weights
    assert not torch.equal(stack.blocks[1].attn.qkv.weight[0], stack.blocks[1].attn.qkv.weight[2])


def test_padded_vocab_and_outputs():
    cfg = ModelConfig(d_model=16, n_heads=2, n_layers=2, position="rope")
    vocab_sizes, output_sizes, seeds = [5, 11, 8], [3, 7, 4], [1, 2, 3]
    stack = StackedTransformer(cfg, 3, 11, 7)
    stack.reset_parameters(seeds, vocab_sizes=vocab_sizes, output_sizes=output_sizes)
    x = torch.stack([torch.randint(0, v, (2, 6), generator=_gen(v)) for v in vocab_sizes])
    logits = stack(x)
    for m, (v, c) in enumerate(zip(vocab_sizes, output_sizes)):
        assert (stack.embed.weight[m, v:] == 0).all() and (stack.embed.weight[m, :v].abs().sum(-1) > 0).all()
        assert (stack.head.weight[m, :, c:] == 0).all() and (stack.head.bias[m, :, c:] == 0).all()
        assert torch.isneginf(logits[m, ..., c:]).all() and torch.isfinite(logits[m, ..., :c]).all()
        assert torch.softmax(logits[m], -1)[..., c:].sum() == 0
        # the padded model is the model it would be alone, with its own sizes
        alone = StackedTransformer(cfg, 1, v, c)
        alone.reset_parameters([seeds[m]])
        torch.testing.assert_close(stack.embed.weight[m, :v], alone.embed.weight[0], rtol=0, atol=0)
        torch.testing.assert_close(stack.head.weight[m, :, :c], alone.head.weight[0], rtol=0, atol=0)
        torch.testing.assert_close(logits[m, ..., :c], alone(x[m : m + 1])[0], rtol=1e-5, atol=1e-6)
    # without padding nothing is masked
    plain = StackedTransformer(cfg, 3, 11, 7)
    plain.reset_parameters(seeds)
    assert torch.isfinite(plain(x)).all()


def test_reset_parameters_checks_seed_count():
    model = StackedTransformer(ModelConfig(d_model=8, n_heads=2, n_layers=1), 2, VOCAB, CLASSES)
    with pytest.raises(ValueError, match="1 seeds for a stack of 2"):
        model.reset_parameters([0])


# ------------------------------------------------------------------------------------- config checks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"position": "rop"}, r"unknown position encoding 'rop'.*allowed: none, learned"),
        ({"position": "rope+alibi+rope"}, r"'rope\+alibi\+rope' names one encoding twice"),
        ({"position": "none+rope"}, r"combines 'none'"),
        ({"d_model": 10, "n_heads": 3}, r"d_model=10 is not divisible by n_heads=3"),
        ({"position": "rope", "position_options": {"p_max": 3}}, r"\['p_max'\] do not apply to 'rope'"),
        ({"position": "cope+rope", "position_options": {"t5_buckets": 3}}, r"t5_buckets.*allowed: \['cope_sep_key'"),
        ({"position": "learned", "position_options": {"rope_base": 2.0}}, r"\['rope_base'\].*allowed: none"),
    ],
)
def test_invalid_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_valid_combinations_and_options_are_accepted():
    cfg = ModelConfig(position="cope+rope", position_options={"p_max": 8, "rope_base": 500.0})
    (cope, cope_opts), (rope, rope_opts) = cfg.encoding_options()
    assert (cope, rope) == (CoPE, POSITIONS["rope"])
    assert cope_opts.p_max == 8 and rope_opts.rope_base == 500.0


def test_model_constructor_checks():
    cfg = ModelConfig(d_model=8, n_heads=2, n_layers=1)
    with pytest.raises(ValueError, match="n_models must be >= 1, got 0"):
        StackedTransformer(cfg, 0, VOCAB, CLASSES)
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        StackedTransformer(cfg, 1, VOCAB, CLASSES, input_dim=3)
    with pytest.raises(ValueError, match="n_outputs must be >= 1, got 0"):
        StackedTransformer(cfg, 1, VOCAB, 0)


def test_vector_inputs():
    cfg = ModelConfig(d_model=8, n_heads=2, n_layers=1, position="alibi")
    model = StackedTransformer(cfg, 2, 0, 3, input_dim=5)
    model.reset_parameters([0, 1])
    assert model(torch.randn(2, 4, 6, 5)).shape == (2, 4, 6, 3)


def test_cpu_head_pad_rule():
    """Narrow heads are padded to 16 on a CPU only where that was measured faster."""
    from limitlab.nn.attention import cpu_head_pad

    assert [cpu_head_pad(hd, 500) for hd in (1, 2, 4, 8, 12, 16, 32)] == [0, 14, 12, 8, 4, 0, 0]
    assert [cpu_head_pad(hd, 100) for hd in (2, 4, 8)] == [0, 0, 8]  # short: hd < 8 lost to the padding
    assert [cpu_head_pad(8, t) for t in (30, 63, 64)] == [0, 0, 8]  # shorter still: every width lost


@pytest.mark.parametrize("hd", [2, 4, 8, 12])
@pytest.mark.parametrize("masked", [False, True])
def test_padded_heads_give_the_same_attention_and_gradients(hd, masked):
    """Zero columns change no logit and no kept output: outputs and q/k/v gradients equal the unpadded kernel's."""
    from torch.nn import functional as F

    from limitlab.nn.attention import cpu_head_pad, sdpa

    gen, t = _gen(hd), 210
    assert cpu_head_pad(hd, t) > 0
    q, k, v = (torch.randn(3, 2, t, hd, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.rand(3, 1, t, t, generator=gen) < 0.7 if masked else None
    if mask is not None:
        mask |= torch.eye(t, dtype=torch.bool)  # every query keeps a key
    grad = torch.randn(3, 2, t, hd, generator=gen, dtype=torch.float64)
    results = []
    for attend in (sdpa, F.scaled_dot_product_attention):
        out = attend(q, k, v, attn_mask=mask, is_causal=not masked)
        results.append((out, *torch.autograd.grad(out, (q, k, v), grad)))
    for ours, reference in zip(*results):
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
