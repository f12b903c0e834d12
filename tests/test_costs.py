"""Costs counted from the code: parameters equal the real model's, encodings declare what the planner needs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from limitlab.costs import (
    activation_bytes,
    attention_values,
    counts,
    nonembedding_params,
    total_params,
    train_flops_per_token,
)
from limitlab.nn.model import ModelConfig, StackedTransformer
from limitlab.nn.positions import POSITIONS, PositionEncoding, declaration
from limitlab.planner import DeviceProfile, plan_stacks
from limitlab.rng import StackRNG
from limitlab.spec import RunSpec
from limitlab.studies.counting.probe import LimitlabCounter, probe_items
from limitlab.tasks.base import TaskStack
from limitlab.tasks.counting import CountingTask
from limitlab.train.trainer import build_model

CPU = DeviceProfile("cpu", memory_bytes=8e9, step_overhead_s=5e-3, flops_per_s=2e10, bytes_per_s=1e10)


class ToyBias(PositionEncoding):
    """A dense-bias encoding: logit -= slope_h · |i - j| with a learned slope per model and head."""

    name = "toy_bias"

    def __init__(self, geo, options) -> None:
        super().__init__(geo, options)
        self.slope = nn.Parameter(torch.zeros(geo.n_models, geo.n_heads))

    def bias(self, pos):
        distance = pos.offsets().abs().to(self.slope.dtype)  # (Mq, Bq, 1, Tq, Tk)
        return -self.slope[:, None, :, None, None] * distance  # (M, Bq, H, Tq, Tk)

    def init_model(self, m, gen, scheme) -> None:
        with torch.no_grad():
            self.slope[m].fill_(0.1)


class ToyTable(PositionEncoding):
    """A length-limited encoding that declares nothing: one learned scalar per position, (M, max_len)."""

    name = "toy_table"
    scope = "input"

    def __init__(self, geo, options) -> None:
        super().__init__(geo, options)
        self.table = nn.Parameter(torch.zeros(geo.n_models, geo.max_len))

    def on_input(self, h, inputs=None):
        return h + self.table[:, None, : h.shape[2], None]  # (M, 1, T, 1)


@pytest.fixture
def toys(monkeypatch):
    monkeypatch.setitem(POSITIONS, "toy_bias", ToyBias)
    monkeypatch.setitem(POSITIONS, "toy_table", ToyTable)


def _real_per_model(specs: list[RunSpec]) -> int:
    model = build_model(specs)
    return sum(p.numel() for p in model.parameters()) // len(specs)


# --- parameters --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("position", [*POSITIONS, "cope+rope", "abacus+alibi", "learned+relative"])
@pytest.mark.parametrize("norm,bias", [("pre", True), ("post", False), ("none", True), ("pre", False)])
def test_counted_parameters_equal_the_real_model(make_spec, position, norm, bias):
    model = {"position": position, "norm": norm, "bias": bias, "d_model": 16, "n_heads": 2}
    specs = [make_spec(seed=s, model=model) for s in range(2)]
    n = counts(specs[0])
    assert total_params(specs[0]) == _real_per_model(specs)
    assert n.total == n.token_embedding + n.position_tables + n.read_in + 2 * n.layer + n.head
    real = build_model(specs[:1])
    tables = sum(p.numel() for name, p in real.named_parameters()
                 if ".encodings." in name or name.startswith("input_positions."))
    assert nonembedding_params(specs[0]) == real.n_params() - tables  # n_params excludes the token embedding


@pytest.mark.parametrize("model", [{"position": "cope", "position_options": {"cope_sep_key": True}},
                                   {"position": "relative", "causal": False},
                                   {"position": "t5", "causal": False, "d_mlp": 24, "activation": "relu"}])
def test_counted_parameters_follow_options(make_spec, model):
    specs = [make_spec(seed=s, model=model) for s in range(2)]
    assert total_params(specs[0]) == _real_per_model(specs)


def test_cope_separate_gate_keys_are_matmuls_not_tables(make_spec):
    plain = counts(make_spec(model={"position": "cope"}))
    sep = counts(make_spec(model={"position": "cope", "position_options": {"cope_sep_key": True}}))
    d = 16
    assert sep.position_tables == plain.position_tables
    assert sep.nonembedding - plain.nonembedding == 2 * (d * d + d)  # one d×d key projection with bias per layer
    assert sep.kv - plain.kv == d * d + d  # computed at every key position


def test_linear_read_in_is_counted(make_spec):
    spec = RunSpec(task={"name": "icl_linear", "d": 4, "n_points": 6}, model={"d_model": 16, "n_heads": 2,
                                                                               "position": "none"})
    n = counts(spec)
    assert n.token_embedding == 0 and n.read_in == spec.task.input_dim() * 16 + 16
    assert n.total == _real_per_model([spec])


def test_padded_sizes_are_counted(make_spec):
    spec = make_spec()
    real = StackedTransformer(spec.model, 1, 40, 50)
    assert total_params(spec, vocab=40, n_outputs=50) == sum(p.numel() for p in real.parameters())


def test_flops_convention(make_spec):
    spec = make_spec(d=16, m=4)  # 2 layers, MLP 64, bias, no LayerNorm, 17 classes
    per_layer = 16 * 48 + 48 + 16 * 16 + 16 + 16 * 64 + 64 + 64 * 16 + 16
    assert nonembedding_params(spec) == 2 * per_layer + 16 * 17 + 17
    model = build_model([spec])
    table = model.input_positions[0].table.numel()
    assert nonembedding_params(spec) == model.n_params() - table  # n_params excludes the token embedding
    assert train_flops_per_token(spec) == 6 * nonembedding_params(spec) + 12 * 2 * 16 * 16


# --- declarations ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("position", list(POSITIONS))
def test_declarations_match_what_the_model_does(position):
    """Logits: the layer takes the explicit path; length limit: a sequence of max_len + 1 is refused."""
    decl = declaration(position)
    cfg = ModelConfig(d_model=8, n_heads=2, n_layers=1, position=position, max_len=8)
    model = StackedTransformer(cfg, 1, 14, 3)
    model.reset_parameters([0])
    assert model.blocks[0].attn.explicit == decl.logits
    too_long = torch.randint(0, 14, (1, 2, 9))
    if decl.length_limited:
        with pytest.raises(ValueError, match="max_len"):
            model(too_long)
    else:
        assert model(too_long).shape == (1, 2, 9, 3)


def test_combinations_combine_declarations():
    assert declaration("cope+rope").attention == "logits"
    assert declaration("learned+alibi") == declaration("learned") + declaration("alibi")
    assert (declaration("learned+alibi").bias, declaration("learned+alibi").length_limited) == (True, True)


def test_needs_logits_is_derived_and_cannot_be_denied():
    class Rewrites(PositionEncoding):
        name = "rewrites"

        def on_logits(self, q, logits, pos, x=None):
            return logits

    assert Rewrites.needs_logits and Rewrites.declaration().attention == "logits"
    with pytest.raises(TypeError, match="needs_logits = False"):
        class Lies(PositionEncoding):  # defining it is the test
            name = "lies"
            needs_logits = False

            def on_logits(self, q, logits, pos, x=None):
                return logits


def test_toy_dense_bias_is_planned_with_its_bias_and_parameters(make_spec, toys):
    assert declaration("toy_bias").attention == "bias"
    toy = [make_spec(seed=s, m=20, model={"position": "toy_bias"}) for s in range(3)]
    none = [make_spec(seed=s, m=20, model={"position": "none"}) for s in range(3)]
    assert activation_bytes(toy[0]) > activation_bytes(none[0])
    assert plan_stacks(toy, profile=CPU)[0].memory > plan_stacks(none, profile=CPU)[0].memory
    assert total_params(toy[0]) == total_params(none[0]) + 2 * 2 == _real_per_model(toy)  # 2 layers × 2 heads


def test_toy_table_sized_by_max_len_triggers_the_length_check(make_spec, toys):
    assert declaration("toy_table").length_limited  # derived: ToyTable declares nothing
    with pytest.raises(ValueError, match="model.max_len=39 is shorter"):
        make_spec(m=5, model={"position": "toy_table", "max_len": 39})  # its longest split has 40 tokens
    assert make_spec(m=5, model={"position": "toy_table", "max_len": 40}).model.max_len == 40
    make_spec(m=5, model={"position": "none", "max_len": 20})  # no table, no limit


@pytest.mark.parametrize("position,refused", [("toy_table", True), ("none", False)])
def test_probe_refuses_long_items_only_for_length_limited_encodings(toys, position, refused):
    task = CountingTask(m=5, n=20)
    model = StackedTransformer(ModelConfig(d_model=8, n_heads=2, n_layers=1, position=position, max_len=21),
                               1, task.vocab_size(), task.n_outputs())
    model.reset_parameters([0])
    items = probe_items([5], n=22, n_prompts=1)  # 22 tokens (query = last symbol, no BOS): longer than max_len
    if refused:
        with pytest.raises(ValueError, match="max_len=21"):
            LimitlabCounter(model, task).count(items)
    else:
        assert len(LimitlabCounter(model, task).count(items)) == len(items)


# --- memory ------------------------------------------------------------------------------------------------------

def test_hook_temporaries_add_up_in_training_but_not_in_evaluation():
    """Autograd keeps every hook's tensors; without gradients one hook's are freed before the next runs."""
    options = {"p_max": 8, "rel_max_distance": 64}
    both = ModelConfig(position="cope+relative", position_options=options)
    cope = ModelConfig(position="cope", position_options={"p_max": 8})
    relative = ModelConfig(position="relative", position_options={"rel_max_distance": 64})
    extra = [attention_values(c, 100) - attention_values(ModelConfig(position="none"), 100) for c in (cope, relative)]
    assert attention_values(both, 100) == extra[0] + extra[1] - 3 * 4 * 100  # the logits are counted once
    assert attention_values(both, 100, training=False) == max(attention_values(cope, 100, training=False),
                                                              attention_values(relative, 100, training=False))


@pytest.mark.parametrize("position, d, m", [*((p, 16, 10) for p in [*POSITIONS, "cope+alibi", "toy_bias"]),
                                             ("learned", 16, 4), ("learned", 32, 8)])
def test_activation_estimate_bounds_saved_tensors_for_every_encoding(make_spec, toys, position, d, m):
    """The estimate covers every tensor autograd saves in a real forward, and is not absurdly loose."""
    specs = [make_spec(seed=s, m=m, d=d, model={"norm": "pre", "position": position}) for s in range(2)]
    model = build_model(specs)
    batch = TaskStack([s.task for s in specs]).sample(StackRNG([s.seed for s in specs]), 16, 0)
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(batch.inputs)  # every position: the last layer computes all rows too
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = sum(n for ptr, n in storages.items() if ptr not in params)
    estimate = sum(activation_bytes(s) for s in specs)
    assert saved <= estimate < 10 * saved
