"""The blocked CoPE kernel equals the reference explicit path: outputs and every gradient, in float64."""

from __future__ import annotations

import math

import pytest
import torch

import limitlab.nn.cope_kernels as kernels
from limitlab.nn.cope_kernels import cope_attention, query_block
from limitlab.nn.model import ModelConfig, StackedTransformer
from limitlab.nn.positions import AttnPositions

VOCAB, OUT = 11, 5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pair(position: str = "cope", n_layers: int = 2, **options) -> tuple[StackedTransformer, StackedTransformer]:
    """The same float64 stack of 2 models twice: CoPE by the reference path, and by the blocked kernel."""
    models = []
    for impl in ("reference", "blocked"):
        cfg = ModelConfig(d_model=16, n_heads=2, n_layers=n_layers, position=position,
                          position_options={**options, "impl": impl})
        model = StackedTransformer(cfg, 2, VOCAB, OUT)
        model.reset_parameters([0, 1])
        for i, block in enumerate(model.blocks):
            with torch.no_grad():
                block.attn.encodings[0].table.normal_(generator=_gen(10 + i))  # zero at init: make it count
        models.append(model.double())
    return models[0], models[1]


def _grads(model: StackedTransformer) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _check_equal(ref: StackedTransformer, fast: StackedTransformer, x, readout=None, valid=None) -> None:
    weights = torch.randn(2, *x.shape[1:2], readout.shape[-1] if readout is not None else x.shape[-1], OUT,
                          generator=_gen(7), dtype=torch.float64)
    outs, grads = [], []
    for model in (ref, fast):
        y = model(x, readout, valid=valid)  # (M, B, K, C)
        (y * weights).sum().backward()
        outs.append(y)
        grads.append(_grads(model))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-11)
    assert grads[0].keys() == grads[1].keys()
    tables = [name for name in grads[0] if name.endswith("table")]
    assert tables and all(grads[0][name].abs().max() > 1e-6 for name in tables)  # the test sees the table
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-9, atol=1e-10, msg=name)


def _tokens(t: int, seed: int = 0, b: int = 3) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, b, t), generator=_gen(seed))


@pytest.mark.parametrize("options", [
    {"p_max": 2},  # small p_max: most positions clamp
    {"p_max": 40},  # no clamping
    {"p_max": 3, "cope_sep_key": True},
    {"p_max": 3, "scale_position_logits": True},
])
def test_blocked_equals_reference_causal(monkeypatch, options):
    monkeypatch.setattr(kernels, "BLOCK_ROWS", 4)  # several uneven blocks (T = 13)
    ref, fast = _pair(**options)
    _check_equal(ref, fast, _tokens(13))


@pytest.mark.parametrize("pack", [True, False])  # the CPU's complex scatter, and the two real ones (CUDA's)
def test_blocked_equals_reference_one_block(monkeypatch, pack):
    monkeypatch.setattr(kernels, "PACK_SCATTER", pack)
    ref, fast = _pair(p_max=3)
    _check_equal(ref, fast, _tokens(13, seed=5))


def test_blocked_equals_reference_with_padding_and_readout(monkeypatch):
    monkeypatch.setattr(kernels, "BLOCK_ROWS", 4)
    ref, fast = _pair(p_max=3, cope_sep_key=True)
    x = _tokens(14, seed=1)
    valid = torch.ones(2, 3, 14, dtype=torch.bool)
    valid[0, 1, 9:] = False  # right padding
    valid[1, 2, :4] = False  # left padding
    valid[1, 0, 5:7] = False  # a hole
    readout = torch.randint(0, 14, (2, 3, 3), generator=_gen(2))  # the last layer computes these rows only
    _check_equal(ref, fast, x, valid=valid)
    for model in (ref, fast):
        model.zero_grad(set_to_none=True)
    _check_equal(ref, fast, x, readout=readout, valid=valid)


def test_blocked_equals_reference_with_rope(monkeypatch):
    monkeypatch.setattr(kernels, "BLOCK_ROWS", 5)
    ref, fast = _pair("cope+rope", p_max=4)
    _check_equal(ref, fast, _tokens(12, seed=3))


def test_routing_blocked_only_where_it_is_exact():
    """cope+relative (two logit rewriters) and kept weights go the reference way; cope alone goes blocked."""
    _, fast = _pair(p_max=4)
    assert all(block.attn.fused == 0 for block in fast.blocks)
    cfg = ModelConfig(d_model=16, n_heads=2, n_layers=1, position="cope+relative", position_options={"impl": "blocked"})
    assert StackedTransformer(cfg, 1, VOCAB, OUT).blocks[0].attn.fused is None
    ref, fast = _pair(p_max=4, n_layers=1)
    x = _tokens(9, seed=4)
    ref(x, keep_attention=True)
    fast(x, keep_attention=True)  # the weights come from the explicit path, the same for both
    torch.testing.assert_close(fast.blocks[0].attn.weights, ref.blocks[0].attn.weights, rtol=0, atol=0)


def test_auto_takes_the_kernel_from_auto_min_keys_on(monkeypatch):
    import limitlab.nn.positions.cope as cope

    calls = []
    monkeypatch.setattr(cope, "cope_attention", lambda *a, **kw: calls.append(a[0].shape[3]) or kernels.cope_attention(
        *a, **kw))
    monkeypatch.setattr(cope, "AUTO_MIN_KEYS", 10)
    cfg = ModelConfig(d_model=16, n_heads=2, n_layers=1, position="cope", position_options={"impl": "auto"})
    model = StackedTransformer(cfg, 1, VOCAB, OUT)
    model.reset_parameters([0])
    model(torch.zeros(1, 1, 9, dtype=torch.long))
    assert calls == []  # 9 keys: the reference path
    model(torch.zeros(1, 1, 10, dtype=torch.long))
    assert calls == [10]
    model = StackedTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1, position="cope"), 1, VOCAB, OUT)
    model.reset_parameters([0])
    model(torch.zeros(1, 1, 12, dtype=torch.long))
    assert calls == [10]  # the default is the reference path


def _clamp_fraction(q, k, p_max: int) -> float:
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    logits = logits.masked_fill(~AttnPositions.full(q.shape[3], q.device).causal_mask(), float("-inf"))
    c = torch.sigmoid(logits).flip(-1).cumsum(-1).flip(-1)
    return (c > p_max).double().mean().item()


def _reference_attention(q, k, v, table, allowed, p_max: int, gate_k=None) -> torch.Tensor:
    """The appendix maths written out once more, independently of both code paths."""
    logits = ((q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
    if gate_k is not None:
        gate_logits = ((q @ gate_k.transpose(-1, -2)) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
    else:
        gate_logits = logits
    p = torch.sigmoid(gate_logits).flip(-1).cumsum(-1).flip(-1).clamp(max=p_max)
    z = torch.einsum("mbhqd,mdp->mbhqp", q, table)
    lo, hi = p.detach().floor().long(), p.detach().ceil().long()
    w = p - lo.to(p.dtype)
    logits = logits + (1 - w) * z.gather(-1, lo) + w * z.gather(-1, hi)
    return torch.softmax(logits, -1) @ v


def test_kernel_matches_written_out_maths_and_gradcheck():
    m, b, h, t, hd, p_max = 2, 2, 2, 10, 4, 2
    q, k, v = (torch.randn(m, b, h, t, hd, generator=_gen(i), dtype=torch.float64, requires_grad=True)
               for i in range(3))
    table = torch.randn(m, hd, p_max + 1, generator=_gen(5), dtype=torch.float64, requires_grad=True)
    allowed = AttnPositions.full(t, q.device).causal_mask()
    assert _clamp_fraction(q, k, p_max) > 0.2  # the clamp is exercised
    for full in (True, False):
        for block in (1, 3, t):
            got = cope_attention(q, k, v, table, allowed, p_max, causal_full=full, block=block)
            torch.testing.assert_close(got, _reference_attention(q, k, v, table, allowed, p_max),
                                       rtol=1e-12, atol=1e-12)
    small = [z[:1, :1, :1, :5, :2].detach().clone().requires_grad_() for z in (q, k, v)]
    small_table = table[:1, :2].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: cope_attention(*a, allowed[..., :5, :5], p_max, causal_full=True,
                                                              block=2), (*small, small_table))


def test_integer_positions_pass_no_gradient_like_the_reference():
    """Gate keys of zero give gates of exactly 0.5, so every other position is an integer, where the reference's
    d/dp = z[⌈p⌉] − z[⌊p⌋] is 0 (not the slope to the next slot)."""
    m, b, h, t, hd, p_max = 1, 1, 1, 7, 4, 8
    q, k, v = (torch.randn(m, b, h, t, hd, generator=_gen(i), dtype=torch.float64, requires_grad=True)
               for i in range(3))
    table = torch.randn(m, hd, p_max + 1, generator=_gen(3), dtype=torch.float64, requires_grad=True)
    gate_k = torch.zeros(m, b, h, t, hd, dtype=torch.float64, requires_grad=True)
    allowed = AttnPositions.full(t, q.device).causal_mask()
    grads = []
    for fn in (_reference_attention, lambda *a, gate_k: cope_attention(*a, gate_k=gate_k, causal_full=True, block=2)):
        out = fn(q, k, v, table, allowed, p_max, gate_k=gate_k)
        grads.append(torch.autograd.grad(out.square().sum(), (q, k, v, table, gate_k)))
    assert grads[0][4].abs().max() > 1e-6  # the gates still get a gradient at the fractional positions
    for got, want in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_query_block_bounds_and_bad_block():
    assert query_block(16, 1024, 1024) == kernels.BLOCK_ROWS
    assert query_block(10**6, 1024, 1024) == 16  # never fewer than 16 rows unless the sequence is shorter
    assert query_block(4, 5, 5) == 5
    q = torch.zeros(1, 1, 1, 3, 2)
    with pytest.raises(ValueError, match="block=0"):
        cope_attention(q, q, q, torch.zeros(1, 2, 3), torch.ones(3, 3, dtype=torch.bool), 2, block=0)


def test_bench_attention_mode_measures_every_kind():
    from limitlab.bench_attention import measure_attention, parse_kinds, render_attention

    assert parse_kinds("cope,sdpa") == ["cope-reference", "cope-blocked", "sdpa"]
    with pytest.raises(ValueError, match="unknown --attention kind 'flash'"):
        parse_kinds("flash")
    rows = measure_attention(["sdpa", "cope-reference", "cope-blocked"], [64], 1, 2, 16, 2, 8, 1, "cpu")
    saved = {r["kind"]: r["saved_bytes"] for r in rows}
    assert saved["cope-blocked"] < saved["cope-reference"] / 4  # no (Tq, Tk) tensor kept for backward
    assert all(r["median_s"] > 0 and r["cuda_peak_bytes"] is None for r in rows)
    text = render_attention({"info": {"name": "cpu", "device": "cpu", "torch": "x", "threads": 1, "load_avg": None},
                             "attention": rows})
    assert "cope-blocked" in text and "vs cope-ref" in text
