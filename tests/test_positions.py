"""Defining properties of each position encoding, on random weights (float64 where tolerance matters)."""

from __future__ import annotations

import math

import pytest
import torch

from limitlab.nn.model import ModelConfig, StackedTransformer
from limitlab.nn.positions import POSITIONS, AttnPositions, Geometry
from limitlab.nn.positions.bias import ALiBi, T5Bias
from limitlab.nn.positions.cope import CoPE
from limitlab.nn.positions.relative import Relative
from limitlab.nn.positions.rope import RoPE

DT = torch.float64
NEG_INF = float("-inf")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=DT)


def _geo(n_models: int = 2, d_model: int = 16, n_heads: int = 2, causal: bool = True, max_len: int = 64) -> Geometry:
    return Geometry(n_models, d_model, n_heads, causal, max_len)


def _scaled_logits(q: torch.Tensor, k: torch.Tensor, pos: AttnPositions) -> torch.Tensor:
    """Causal attention logits as the layer computes them: q·k/√hd, -inf above the diagonal."""
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return logits.masked_fill(~pos.causal_mask(), NEG_INF)


def _offsets(t: int) -> torch.Tensor:
    i = torch.arange(t)
    return i[:, None] - i[None, :]  # (T, T): i - j


# ----------------------------------------------------------------------------------------------- RoPE


def _rope(head_dim: int = 8, base: float = 10000.0) -> RoPE:
    return RoPE(_geo(d_model=2 * head_dim), RoPE.Options(rope_base=base))


def _rope_logits(rope: RoPE, q: torch.Tensor, k: torch.Tensor, pos: AttnPositions) -> torch.Tensor:
    q2, k2 = rope.on_qk(q, k, pos)
    return q2 @ k2.transpose(-1, -2)


def test_rope_logits_invariant_to_shifting_all_positions():
    rope, t = _rope(), 12
    q, k = _randn(2, 3, 2, t, 8, seed=1), _randn(2, 3, 2, t, 8, seed=2)
    pos = AttnPositions.full(t, torch.device("cpu"))
    base = _rope_logits(rope, q, k, pos)
    for shift in (1, 5, 300):
        shifted = AttnPositions(pos.query + shift, pos.key + shift)
        torch.testing.assert_close(_rope_logits(rope, q, k, shifted), base, rtol=0, atol=1e-10)
    # shifting the queries alone changes the logits: the encoding does carry position
    only_q = AttnPositions(pos.query + 3, pos.key)
    assert (_rope_logits(rope, q, k, only_q) - base).abs().max() > 1e-2


def test_rope_dot_product_depends_only_on_offset():
    rope = _rope(head_dim=6, base=100.0)
    a, b = _randn(1, 1, 1, 1, 6, seed=3), _randn(1, 1, 1, 1, 6, seed=4)

    def dot(i: int, j: int) -> float:
        pos = AttnPositions(torch.tensor([i]).view(1, 1, 1, 1), torch.tensor([j]))
        return _rope_logits(rope, a, b, pos).item()

    for i, j in [(0, 0), (5, 2), (2, 5), (17, 0), (3, 11)]:
        for s in (1, 4, 50):
            assert dot(i + s, j + s) == pytest.approx(dot(i, j), abs=1e-10)
    assert dot(0, 0) == pytest.approx((a * b).sum().item(), abs=1e-12)  # position 0 is the identity
    assert abs(dot(5, 2) - dot(5, 3)) > 1e-3  # different offsets give different logits


def test_rope_rotates_channel_pairs_by_position_times_frequency():
    rope, hd = _rope(head_dim=4, base=10000.0), 4
    x = _randn(1, 1, 1, 1, hd, seed=5)
    p = 7
    got = rope._rotate(x, torch.tensor([p]))[0, 0, 0, 0]
    x = x[0, 0, 0, 0]
    want = torch.empty(hd, dtype=DT)
    for c in range(hd // 2):  # pair (c, c + hd/2), angle p · base^(-2c/hd)
        ang = p * 10000.0 ** (-2 * c / hd)
        want[c] = x[c] * math.cos(ang) - x[c + 2] * math.sin(ang)
        want[c + 2] = x[c] * math.sin(ang) + x[c + 2] * math.cos(ang)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_rope_refuses_odd_head_dim():
    with pytest.raises(ValueError, match=r"even head dimension.*= 3"):
        ModelConfig(d_model=6, n_heads=2, position="rope")
    ModelConfig(d_model=8, n_heads=2, position="rope")  # head dim 4 is fine


# ---------------------------------------------------------------------------------------------- ALiBi


@pytest.mark.parametrize("n_heads", [1, 2, 4, 8])
def test_alibi_bias_is_minus_slope_times_distance(n_heads):
    t = 9
    enc = ALiBi(_geo(d_model=4 * n_heads, n_heads=n_heads), ALiBi.Options())
    bias = enc.bias(AttnPositions.full(t, torch.device("cpu")))
    assert bias.shape == (1, 1, n_heads, t, t)
    dist = _offsets(t).abs().to(DT)
    for h in range(1, n_heads + 1):
        slope = 2.0 ** (-8.0 * h / n_heads)
        torch.testing.assert_close(bias[0, 0, h - 1].to(DT), -slope * dist, rtol=1e-6, atol=0)


def test_alibi_bias_reaches_attention_weights():
    """log softmax with ALiBi minus log softmax without = -slope·|i-j| + a per-row constant (layer 0)."""
    t = 8
    x = torch.randint(0, 11, (1, 2, t), generator=_gen(1))
    weights = {}
    for position in ("alibi", "none"):
        cfg = ModelConfig(d_model=16, n_heads=4, n_layers=1, position=position)
        model = StackedTransformer(cfg, 1, 11, 5)
        model.reset_parameters([3])
        model.double()(x, keep_attention=True)
        weights[position] = model.blocks[0].attn.weights
    diff = weights["alibi"].log() - weights["none"].log()  # (1, B, H, T, T)
    diff = diff - diff.diagonal(dim1=-2, dim2=-1).unsqueeze(-1)  # remove the row constant (j = i)
    mask = _offsets(t) >= 0
    for h in range(4):
        want = -(2.0 ** (-8.0 * (h + 1) / 4)) * _offsets(t).to(DT)
        torch.testing.assert_close(diff[0, :, h][:, mask], want[mask].expand(2, -1), rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------------------------- T5


def _t5_reference(rel: int, bidirectional: bool, n: int, max_d: int) -> int:
    """HF/Mesh-TF ``_relative_position_bucket`` with rel = query - key (= i - j)."""
    bucket = 0
    if bidirectional:
        n //= 2
        if rel < 0:
            bucket += n
        rel = abs(rel)
    else:
        rel = max(rel, 0)
    exact = n // 2
    if rel < exact:
        return bucket + rel
    large = exact + int(math.log(rel / exact) / math.log(max_d / exact) * (n - exact))
    return bucket + min(large, n - 1)


def _t5(causal: bool, buckets: int = 32, max_d: int = 128, n_models: int = 2, n_heads: int = 3) -> T5Bias:
    enc = T5Bias(_geo(n_models, 4 * n_heads, n_heads, causal), T5Bias.Options(t5_buckets=buckets,
                                                                               t5_max_distance=max_d))
    with torch.no_grad():
        enc.table.normal_(generator=_gen(7))  # starts at zero; random so that buckets are distinguishable
    return enc


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("buckets", "max_d"), [(32, 128), (16, 40), (8, 20)])
def test_t5_buckets_match_reference(causal, buckets, max_d):
    enc = _t5(causal, buckets, max_d)
    offsets = torch.arange(-300, 301)
    got = enc.buckets(offsets).tolist()
    want = [_t5_reference(r, not causal, buckets, max_d) for r in offsets.tolist()]
    assert got == want


def test_t5_causal_exact_small_offsets_and_shared_last_bucket():
    n, max_d = 32, 64
    enc = _t5(True, n, max_d)
    exact = torch.arange(n // 2)
    assert enc.buckets(exact).tolist() == exact.tolist()  # one bucket per small offset
    far = torch.arange(max_d, 5 * max_d)
    assert enc.buckets(far).unique().tolist() == [n - 1]  # offsets >= max_distance share the last bucket
    b = enc.buckets(torch.arange(0, 400))
    assert (b.diff() >= 0).all()  # monotone in the distance


def test_t5_bidirectional_splits_directions():
    n, max_d = 32, 64
    enc = _t5(False, n, max_d)
    d = torch.arange(1, 200)
    pos, neg = enc.buckets(d), enc.buckets(-d)
    assert (pos < n // 2).all() and (neg >= n // 2).all()  # different buckets for ±offsets
    small = torch.arange(n // 4)
    assert enc.buckets(small).tolist() == small.tolist()
    assert enc.buckets(-small[1:]).tolist() == (n // 2 + small[1:]).tolist()
    assert enc.buckets(torch.arange(max_d, 300)).unique().tolist() == [n // 2 - 1]
    assert enc.buckets(-torch.arange(max_d, 300)).unique().tolist() == [n - 1]


@pytest.mark.parametrize("causal", [True, False])
def test_t5_bias_depends_only_on_offset(causal):
    t = 40
    enc = _t5(causal, 16, 24)
    bias = enc.bias(AttnPositions.full(t, torch.device("cpu")))  # (M, 1, H, T, T)
    assert bias.shape == (2, 1, 3, t, t)
    torch.testing.assert_close(bias[..., 1:, 1:], bias[..., :-1, :-1], rtol=0, atol=0)  # Toeplitz
    idx = enc.buckets(_offsets(t))
    want = enc.table[:, :, idx]  # (M, H, T, T): table[m, h, bucket(i - j)]
    torch.testing.assert_close(bias[:, 0], want, rtol=0, atol=0)
    # per-model query positions (read-out rows) index the same table
    q = torch.tensor([[3, 39], [0, 17]]).view(2, 1, 1, 2)
    sub = enc.bias(AttnPositions(q, torch.arange(t)))  # (M, 1, H, 2, T)
    for m in range(2):
        torch.testing.assert_close(sub[m, 0], bias[m, 0][:, q[m, 0, 0]], rtol=0, atol=0)


def test_t5_refuses_options_that_break_bucketing():
    with pytest.raises(ValueError, match="t5_max_distance=16"):
        ModelConfig(position="t5", position_options={"t5_buckets": 32, "t5_max_distance": 16})
    with pytest.raises(ValueError, match="t5_buckets=3"):
        ModelConfig(position="t5", causal=False, position_options={"t5_buckets": 3})
    ModelConfig(position="t5", position_options={"t5_buckets": 32, "t5_max_distance": 17})


# ----------------------------------------------------------------------------------------------- CoPE


def _cope(p_max: int = 4, seed: int = 0, **options) -> CoPE:
    enc = CoPE(_geo(), CoPE.Options(p_max=p_max, **options)).double()
    with torch.no_grad():
        enc.table.copy_(_randn(*enc.table.shape, seed=seed))  # starts at zero; random so positions matter
    return enc


def _qkl(t: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, AttnPositions]:
    q, k = _randn(2, 3, 2, t, 8, seed=seed), _randn(2, 3, 2, t, 8, seed=seed + 1)
    pos = AttnPositions.full(t, torch.device("cpu"))
    return q, _scaled_logits(q, k, pos), pos


def _spy_positions(monkeypatch, enc: CoPE) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    original = enc.positions

    def spy(gates):
        p = original(gates)
        seen.append(p.detach())
        return p

    monkeypatch.setattr(enc, "positions", spy)
    return seen


def test_cope_with_unit_gates_is_relative_with_shifted_table(monkeypatch):
    p_max, t = 4, 9  # t > p_max + 1: the clamp is exercised
    cope = _cope(p_max)
    monkeypatch.setattr(cope, "gates", lambda g: (g > NEG_INF).to(g.dtype))
    seen = _spy_positions(monkeypatch, cope)
    q, logits, pos = _qkl(t)
    out = cope.on_logits(q, logits, pos)

    causal = _offsets(t) >= 0
    want_p = torch.where(causal, (_offsets(t) + 1).clamp(max=p_max), 0).to(DT)
    torch.testing.assert_close(seen[0], want_p.expand_as(seen[0]), rtol=0, atol=0)  # p_ij = i - j + 1

    # relative encoding with r[d] = e[d + 1]; capping at p_max - 1 matches CoPE's clamp at p_max
    rel = Relative(_geo(), Relative.Options(rel_max_distance=p_max - 1)).double()
    with torch.no_grad():
        rel.table.copy_(cope.table[..., 1:])
    torch.testing.assert_close(out, rel.on_logits(q, logits, pos), rtol=0, atol=1e-12)
    # an unshifted table r[d] = e[d] does not match
    with torch.no_grad():
        rel.table.copy_(cope.table[..., :p_max])
    assert (out - rel.on_logits(q, logits, pos))[..., causal].abs().max() > 1e-3


def test_cope_positions_are_clamped_reverse_cumsum_including_query():
    p_max, t = 3, 8
    cope = _cope(p_max)
    _, logits, _ = _qkl(t, seed=3)
    g = cope.gates(logits)
    assert (g[..., ~(_offsets(t) >= 0)] == 0).all()  # masked keys have gate exactly 0
    p = cope.positions(g)
    for i in range(t):
        for j in range(i + 1):
            want = g[..., i, j : i + 1].sum(-1).clamp(max=p_max)  # sum over t = j..i
            torch.testing.assert_close(p[..., i, j], want, rtol=0, atol=1e-12)
    assert p.max() == p_max  # long enough that some positions hit the clamp
    unit = cope.positions(torch.ones(t))  # every gate 1: p_j = t - j, clamped
    torch.testing.assert_close(unit, (t - torch.arange(t)).clamp(max=p_max).float(), rtol=0, atol=0)


def test_cope_interpolates_linearly_between_integer_positions(monkeypatch):
    p_max, t, c = 4, 6, 0.3  # constant gate c: p_ij = c·(i - j + 1), fractional
    cope = _cope(p_max, seed=2)
    monkeypatch.setattr(cope, "gates", lambda g: (g > NEG_INF).to(g.dtype) * c)
    q, logits, pos = _qkl(t, seed=5)
    out = cope.on_logits(q, logits, pos)
    e = cope.table  # (M, hd, p_max + 1)
    for m, b, h in [(0, 0, 0), (1, 2, 1), (1, 0, 1)]:
        for i in range(t):
            for j in range(i + 1):
                p = c * (i - j + 1)
                lo, hi = math.floor(p), math.ceil(p)
                z_lo, z_hi = (q[m, b, h, i] @ e[m, :, lo]).item(), (q[m, b, h, i] @ e[m, :, hi]).item()
                want = logits[m, b, h, i, j].item() + z_lo + (p - lo) * (z_hi - z_lo)
                assert out[m, b, h, i, j].item() == pytest.approx(want, abs=1e-12)


def test_cope_gradient_reaches_the_gates():
    t = 7
    cope = _cope(4, seed=4)
    q, logits, pos = _qkl(t, seed=7)
    causal = _offsets(t) >= 0
    weight = _randn(*logits.shape, seed=9)

    def position_term(lg: torch.Tensor) -> torch.Tensor:
        extra = cope.on_logits(q, lg, pos) - lg  # gradient flows through the gates only
        return (torch.where(causal, extra, 0.0) * weight).sum()

    lg = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(position_term(lg), lg)
    assert grad[..., causal].abs().max() > 1e-3
    assert (grad[..., ~causal] == 0).all()
    # matches a central finite difference at a few entries (p is fractional, so the blend is smooth there)
    for index in [(0, 0, 0, 5, 2), (1, 2, 1, 6, 6), (1, 1, 0, 3, 0)]:
        eps = 1e-6
        up, down = logits.clone(), logits.clone()
        up[index] += eps
        down[index] -= eps
        fd = (position_term(up) - position_term(down)).item() / (2 * eps)
        assert grad[index].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_cope_refuses_bad_p_max_and_bidirectional():
    with pytest.raises(ValueError, match="p_max=0"):
        ModelConfig(position="cope", position_options={"p_max": 0})
    with pytest.raises(ValueError, match="cope needs a causal model"):
        ModelConfig(position="cope", causal=False)
    with pytest.raises(ValueError, match="cope needs a causal model"):
        ModelConfig(position="cope+rope", causal=False)


def test_cope_scale_position_logits_divides_by_sqrt_head_dim():
    t = 7
    plain, scaled = _cope(5, seed=1), _cope(5, seed=1, scale_position_logits=True)
    q, logits, pos = _qkl(t, seed=11)
    causal = _offsets(t) >= 0
    extra_plain = (plain.on_logits(q, logits, pos) - logits)[..., causal]
    extra_scaled = (scaled.on_logits(q, logits, pos) - logits)[..., causal]
    assert extra_plain.abs().max() > 1e-2
    torch.testing.assert_close(extra_scaled * math.sqrt(8), extra_plain, rtol=0, atol=1e-12)


def _one_layer_cope(sep_key: bool) -> StackedTransformer:
    cfg = ModelConfig(d_model=16, n_heads=2, n_layers=1, position="cope",
                      position_options={"p_max": 5, "cope_sep_key": sep_key})
    model = StackedTransformer(cfg, 2, 11, 5)
    model.reset_parameters([0, 1])
    enc = model.blocks[0].attn.encodings[0]
    with torch.no_grad():
        enc.table.normal_(generator=_gen(3))
    return model.double()


def _positions_and_weights(monkeypatch, model: StackedTransformer, x: torch.Tensor):
    attn = model.blocks[0].attn
    seen = _spy_positions(monkeypatch, attn.encodings[0])
    model(x, keep_attention=True)
    monkeypatch.undo()
    return seen[0], attn.weights


def test_cope_sep_key_gates_use_their_own_key(monkeypatch):
    x = torch.randint(0, 11, (2, 3, 9), generator=_gen(2))
    d = 16
    for sep_key in (True, False):
        model = _one_layer_cope(sep_key)
        p0, w0 = _positions_and_weights(monkeypatch, model, x)
        with torch.no_grad():
            model.blocks[0].attn.qkv.weight[:, :, d : 2 * d].mul_(-1.5)  # change the attention keys only
        p1, w1 = _positions_and_weights(monkeypatch, model, x)
        assert (w1 - w0).abs().max() > 1e-3  # attention changed
        if sep_key:
            torch.testing.assert_close(p1, p0, rtol=0, atol=0)  # gates do not see the attention keys
            with torch.no_grad():
                model.blocks[0].attn.encodings[0].gate_key.weight.mul_(-1.5)
            p2, _ = _positions_and_weights(monkeypatch, model, x)
            assert (p2 - p0).abs().max() > 1e-3  # ... but do see the gate keys
        else:
            assert (p1 - p0).abs().max() > 1e-3  # shared keys: gates follow the attention keys


def test_cope_sep_key_gradient_reaches_gate_key():
    """The separate gate key reaches the output only through the gates: a non-zero gradient proves they train."""
    model = _one_layer_cope(True)
    x = torch.randint(0, 11, (2, 3, 9), generator=_gen(4))
    model(x).square().sum().backward()
    grad = model.blocks[0].attn.encodings[0].gate_key.weight.grad
    assert grad is not None
    assert grad[0].abs().max() > 1e-6 and grad[1].abs().max() > 1e-6  # both models of the stack


# ------------------------------------------------------------------------------ absolute encodings


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_absolute_encodings_refuse_sequences_longer_than_max_len(position):
    cfg = ModelConfig(d_model=8, n_heads=2, n_layers=1, position=position, max_len=8)
    model = StackedTransformer(cfg, 2, 5, 3)
    model.reset_parameters([0, 1])
    assert model(torch.zeros(2, 1, 8, dtype=torch.long)).shape == (2, 1, 8, 3)
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.zeros(2, 1, 9, dtype=torch.long))


def test_sinusoidal_table_is_vaswani():
    cfg = ModelConfig(d_model=6, n_heads=2, n_layers=1, position="sinusoidal", max_len=20)
    table = StackedTransformer(cfg, 1, 5, 3).input_positions[0].table
    for t in (0, 3, 19):
        for i in range(3):
            ang = t / 10000 ** (2 * i / 6)
            assert table[t, 2 * i].item() == pytest.approx(math.sin(ang), abs=1e-6)
            assert table[t, 2 * i + 1].item() == pytest.approx(math.cos(ang), abs=1e-6)


def test_registry_names_match_classes():
    for name, cls in POSITIONS.items():
        assert cls.name == name
