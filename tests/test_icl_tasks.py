"""Invariants of the in-context regression tasks (icl_linear, icl_relu, icl_tree, icl_sine, icl_mixture)."""

from __future__ import annotations

import math

import pytest
import torch

from limitlab.rng import StackRNG
from limitlab.spec import RunSpec
from limitlab.tasks import TASKS
from limitlab.tasks.base import TaskStack
from limitlab.tasks.icl_common import Curriculum, draw_prompts, tokens
from limitlab.tasks.icl_linear import ICLLinear
from limitlab.tasks.icl_mixture import ICLMixture
from limitlab.tasks.icl_relu import ICLReLU
from limitlab.tasks.icl_sine import ICLSine
from limitlab.tasks.icl_tree import ICLTree


def prompts(task, batch=256, step=0, seeds=(0,)):
    stack = TaskStack([task] * len(seeds))
    return draw_prompts(type(task), stack, StackRNG(list(seeds)), batch, step)


@pytest.mark.parametrize("task", [ICLLinear(d=4, n_points=6), ICLLinear(d=6, n_points=5, sparsity=2),
                                  ICLReLU(d=4, n_points=6, hidden=50), ICLTree(d=4, n_points=6),
                                  ICLSine(d=4, n_points=6), ICLSine(d=4, n_points=6, alpha=0.3),
                                  ICLMixture(d=4, n_points=6, families=("dense", "tree"), weights=(0.3, 0.7))])
def test_shapes_and_variance_match_the_normaliser(task):
    batch = TaskStack([task, task]).sample(StackRNG([0, 1]), 3000, 0)
    width = task.d if task.fmt == "garg" else task.d + 1
    assert batch.inputs.shape == (2, 3000, 2 * task.n_points, width)
    assert batch.targets.shape == batch.mask.shape == batch.positions.shape == (2, 3000, task.n_points)
    assert batch.positions[0, 0].tolist() == list(range(0, 2 * task.n_points, 2))
    assert task.input_dim() == width and task.vocab_size() == 0 and task.n_outputs() == 1
    ratio = batch.targets.var().item() / task.normaliser()
    assert 0.85 < ratio < 1.15, ratio  # the zero predictor scores ≈ 1 after Garg's normalisation
    again = TaskStack([task, task]).sample(StackRNG([0, 1]), 3000, 0)
    assert torch.equal(batch.inputs, again.inputs)  # counter-based: same seed and step, same batch


def test_linear_targets_are_exactly_linear_and_sparse_weights_have_k_nonzeros():
    p = prompts(ICLLinear(d=5, n_points=12, sparsity=2))
    xs, ys = p.xs[0].double(), p.ys[0].double()  # (P, n, d), (P, n)
    w = torch.linalg.lstsq(xs, ys[..., None]).solution[..., 0]  # (P, d)
    assert torch.allclose(xs @ w[..., None], ys[..., None], atol=1e-4)
    assert ((w.abs() > 1e-4).sum(-1) == 2).all()


def test_token_formats():
    xs = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, n=2, d=2)
    ys = torch.tensor([[[5.0, 6.0]]])
    garg = tokens(xs, ys, "garg")[0, 0]
    assert garg.tolist() == [[1, 2], [5, 0], [3, 4], [6, 0]]
    channel = tokens(xs, ys, "channel")[0, 0]
    assert channel.tolist() == [[0, 1, 2], [5, 0, 0], [0, 3, 4], [6, 0, 0]]


def test_curriculum_zeroes_dims_and_masks_points_without_changing_shapes():
    cur = Curriculum(dims_start=2, dims_inc=1, points_start=3, points_inc=2, interval=10)
    task = ICLLinear(d=5, n_points=9, curriculum=cur)
    stack = TaskStack([task, task])
    batch = stack.sample(StackRNG([0, 1]), 8, torch.tensor([0, 25]))  # model 0: dims 2, points 3; model 1: 4, 7
    assert batch.inputs.shape == (2, 8, 18, 5)
    x_tokens = batch.inputs[:, :, 0::2]
    assert (x_tokens[0, ..., 2:] == 0).all() and (x_tokens[0, ..., :2] != 0).any()
    assert (x_tokens[1, ..., 4:] == 0).all() and (x_tokens[1, ..., 3] != 0).any()
    assert batch.mask[0].sum(-1).unique().tolist() == [3] and batch.mask[1].sum(-1).unique().tolist() == [7]
    assert batch.valid[0].sum(-1).unique().tolist() == [6] and batch.valid[1].sum(-1).unique().tolist() == [14]
    final = stack.sample(StackRNG([0, 1]), 8, 3)  # evaluation (an int step): the curriculum's end
    assert final.mask.all() and final.valid is None and (final.inputs[:, :, 0::2] != 0).all()


def test_sparse_support_stays_inside_the_active_dims():
    task = ICLLinear(d=6, n_points=8, sparsity=2, curriculum=Curriculum(dims_start=3, points_start=8, interval=100))
    stack = TaskStack([task])
    batch = stack.sample(StackRNG([0]), 64, torch.tensor([0]))
    assert (batch.inputs[0, :, 0::2, 3:] == 0).all()
    assert batch.targets.abs().sum() > 0


def test_query_prompt_sets():
    d, n = 4, 8
    quad = prompts(ICLLinear(d=d, n_points=n, prompt_set="random_quadrants"))
    signs = torch.sign(quad.xs[0])  # (P, n, d): one orthant per prompt
    assert (signs == signs[:, :1]).all()
    assert (torch.sign(quad.qx[0]) != signs).any()  # queries are unrestricted
    ortho = prompts(ICLLinear(d=d, n_points=n, prompt_set="orthogonal_query"))
    xs, q = ortho.xs[0].double(), ortho.qx[0].double()
    for i in range(1, d):
        dots = (xs[:, :i] * q[:, i : i + 1]).sum(-1)  # (P, i)
        assert dots.abs().max() < 1e-3
    assert ortho.scored[0, :, :d].all() and not ortho.scored[0, :, d:].any()
    over = prompts(ICLLinear(d=d, n_points=n, prompt_set="overlapping_query"))
    for i in range(1, n):
        same = (over.xs[0, :, :i] == over.qx[0, :, i : i + 1]).all(-1).any(-1)  # (P,)
        assert same.all()
    w_fit = torch.linalg.lstsq(over.xs[0].double(), over.ys[0].double()[..., None]).solution
    assert torch.allclose(over.qx[0].double() @ w_fit, over.qy[0].double()[..., None], atol=1e-3)


def test_query_sets_score_one_index_per_sequence():
    task = ICLLinear(d=3, n_points=6, prompt_set="overlapping_query")
    batch = TaskStack([task]).sample(StackRNG([0]), 200, 0)
    assert (batch.mask.sum(-1) <= 1).all() and batch.mask.sum() > 150
    at = batch.mask.float().argmax(-1)  # (M, B)
    assert torch.equal(batch.valid.sum(-1), 2 * at + 1)


def test_covariance_prompt_sets():
    half = prompts(ICLLinear(d=6, n_points=10, prompt_set="half_subspace"))
    assert (torch.linalg.matrix_rank(half.xs[0].double(), atol=1e-4) == 3).all()
    skew = prompts(ICLLinear(d=6, n_points=10, prompt_set="skewed"), batch=2000)
    assert 5.0 < (skew.xs[0] ** 2).sum(-1).mean().item() < 7.0  # E|x|² = d


def test_scale_and_noise_splits():
    splits = ICLLinear(d=4, n_points=6).splits()
    assert {"test", "random_quadrants", "orthogonal_query", "overlapping_query", "half_subspace", "skewed",
            "scale_x_2", "scale_y_0.333", "noisy_y"} <= set(splits)
    assert splits["scale_x_2"].normaliser() == pytest.approx(16.0)
    assert splits["scale_y_3"].normaliser() == pytest.approx(36.0)
    noisy = prompts(splits["noisy_y"], batch=4000)
    assert 0.85 < noisy.ys.var().item() / 4.0 < 1.15  # renormalised to Var y = d


def test_tree_targets_are_leaf_values():
    task = ICLTree(d=3, n_points=40, depth=2)
    p = prompts(task, batch=64)
    distinct = [len(torch.unique(row)) for row in p.ys[0]]
    assert max(distinct) <= 4  # at most 2^depth leaves
    # a point's value only depends on the signs of its coordinates
    ys = p.ys[0]
    flipped = prompts(task.model_copy(update={"x_scale": 3.0}), batch=64)
    assert torch.allclose(flipped.ys[0], ys)


def test_sine_targets_lie_in_the_span_of_their_frequency_features():
    task = ICLSine(d=2, n_points=12, freq_min=1.5, freq_max=1.5, n_freqs=1)
    p = prompts(task, batch=32)
    xs, ys = p.xs[0].double(), p.ys[0].double()
    feats = torch.cat([torch.sin(1.5 * xs), torch.cos(1.5 * xs)], dim=-1)  # (P, n, 4)
    coef = torch.linalg.lstsq(feats, ys[..., None]).solution
    assert torch.allclose(feats @ coef, ys[..., None], atol=1e-4)
    assert ICLSine(n_freqs=3, freq_min=1, freq_max=2).frequencies() == [1.0, 1.5, 2.0]


def test_mixture_draws_the_family_per_sequence_with_its_weights():
    task = ICLMixture(d=3, n_points=8, families=("dense", "sine"), weights=(0.25, 0.75))
    stack = TaskStack([task])
    batch = stack.sample(StackRNG([0]), 4000, 0)
    fam = batch.groups["family"][0]
    assert abs(fam.float().mean().item() - 0.75) < 0.03
    # the dense sequences are exactly linear; the sine ones are not
    p = prompts(task, batch=400)
    xs, ys = p.xs[0].double(), p.ys[0].double()
    resid = (xs @ torch.linalg.lstsq(xs, ys[..., None]).solution)[..., 0] - ys
    linear = resid.abs().amax(-1) < 1e-4
    assert torch.equal(linear, p.family[0] == 0)
    out = torch.zeros(1, 4000, 8, 1)
    metrics = ICLMixture.metrics(out, batch)
    sums, counts = metrics["normalized_by_family"]
    assert sums.shape == (1, 2) and torch.allclose(sums / counts, torch.ones(1, 2), atol=0.1)
    assert metrics["error_by_index"][0].shape == (1, 8)


@pytest.mark.parametrize("bad, message", [
    (lambda: ICLLinear(d=3, sparsity=4), "sparsity=4 exceeds d=3"),
    (lambda: ICLMixture(families=("dense", "sine"), weights=(0.5, 0.6)), "sum to 1"),
    (lambda: ICLMixture(families=("dense", "wave"), weights=(0.5, 0.5)), "unknown families"),
    (lambda: ICLSine(freq_min=2.0, freq_max=1.0), "freq_max=1.0 is below freq_min=2.0"),
    (lambda: ICLLinear(d=4, n_points=5, curriculum=Curriculum(dims_start=5)), "curriculum starts"),
])
def test_bad_settings_are_refused_with_one_line(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()


def test_registry_and_runspec_round_trip():
    for name in ("icl_linear", "icl_relu", "icl_tree", "icl_sine", "icl_mixture"):
        assert TASKS[name].name == name
    spec = RunSpec(task={"name": "icl_mixture", "d": 3, "n_points": 5, "families": ["dense", "sparse"],
                         "weights": [0.5, 0.5], "sparsity": 2, "curriculum": {"dims_start": 2, "points_start": 3}},
                   model={"max_len": 10})
    again = RunSpec.model_validate_json(spec.model_dump_json())
    assert again.run_id == spec.run_id and again.task.curriculum.dims_start == 2
    assert math.isclose(spec.task.scale(), 0.5 * 3 + 0.5 * 2)


def test_a_fixed_length_curriculum_trains_on_the_prefix_with_the_same_loss():
    from limitlab.nn.model import ModelConfig, StackedTransformer
    from limitlab.tasks.icl_common import active_sizes, to_batch

    cur = Curriculum(dims_start=2, dims_inc=1, points_start=3, points_inc=0, interval=10)
    task = ICLLinear(d=4, n_points=6, curriculum=cur)
    stack, rng, step = TaskStack([task, task]), StackRNG([0, 1]), torch.tensor([0, 25])
    short = stack.sample(rng, 8, step)
    assert short.inputs.shape == (2, 8, 6, 4) and short.valid is None and short.mask.all()
    dims, points = active_sizes(stack, step, rng.device)
    full = to_batch(stack, draw_prompts(ICLLinear, stack, rng, 8, step, dims), points, rng, step)
    assert full.inputs.shape == (2, 8, 12, 4) and full.valid[..., 6:].logical_not().all()
    assert torch.equal(full.inputs[:, :, :6], short.inputs) and torch.equal(full.targets[..., :3], short.targets)
    for causal in (True, False):  # invalid tokens are masked as keys, so even a bidirectional model agrees
        cfg = ModelConfig(n_layers=2, n_heads=2, d_model=16, max_len=12, causal=causal)
        model = StackedTransformer(cfg, n_models=2, vocab_size=0, n_outputs=1, input_dim=4)
        model.reset_parameters(seeds=[0, 1])
        sums = [ICLLinear.metrics(model(b.inputs, b.positions, valid=b.valid), b)["loss"] for b in (full, short)]
        assert torch.equal(sums[0][1], sums[1][1])  # the same scored tokens
        assert torch.allclose(sums[0][0], sums[1][0], rtol=1e-5)  # the same loss
