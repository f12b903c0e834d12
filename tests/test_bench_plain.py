"""The plain-PyTorch baseline of `limitlab bench` does the same work as one model of the stack."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from limitlab.bench import shape_specs
from limitlab.bench_plain import PlainGPT, PlainLoop
from limitlab.bench_vmap import VmapEnsemble
from limitlab.train.trainer import StackTrainer, TrainOptions


def _flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("d, m, layers, heads", [(8, 3, 2, 4), (16, 10, 2, 4), (32, 5, 3, 2), (32, 10, 2, 4)])
def test_plain_model_has_the_stacks_parameters_and_flops(d, m, layers, heads):
    """Equal parameters, and equal FLOPs as PyTorch's counter sees them: it counts matmuls, not CPU SDPA (the
    stack's attention has the plain model's shapes; at d = 32, 4 heads it runs on heads padded to 16 dims)."""
    specs = shape_specs(d, m, 3, 4, layers, heads)
    stack = StackTrainer(specs, None, TrainOptions(chunk_models=3))
    plain = PlainLoop(specs)
    per_model = sum(p.numel() for p in stack.model.parameters()) // len(specs)
    assert PlainGPT(specs[0]).n_params() == per_model == plain.models[0].n_params()
    stack_flops = _flops(stack.train_step) / len(specs)  # forward + backward of one stacked step, per model
    plain_flops = _flops(plain.step) / len(specs)
    assert stack_flops == pytest.approx(plain_flops, rel=1e-9) and stack_flops > 0


def test_plain_loop_learns():
    """Deterministic (weights from the spec's seed, the global RNG untouched), and its loss falls."""
    (spec,) = shape_specs(8, 3, 1, 32)
    state = torch.random.get_rng_state()
    plain = PlainLoop([spec])
    assert torch.equal(torch.random.get_rng_state(), state)
    again = PlainLoop([spec]).models[0].state_dict()
    assert all(torch.equal(w, again[k]) for k, w in plain.models[0].state_dict().items())
    first = plain.loss(0, plain.batch(0)).item()
    for _ in range(200):
        plain.step()
    assert plain.loss(0, plain.batch(0)).item() < first - 0.2  # measured: 3.79 -> 3.30


def test_vmap_ensemble_trains_like_the_plain_loop():
    """torch.func's ensemble of the same models, on the same batches: the loop's gradients, then the loop's losses.

    (Parameters are not compared after Adam steps: Adam turns rounding-level gradient differences on ~0 entries
    into steps of ±lr.)"""
    specs = shape_specs(8, 3, 3, 4)
    loop = PlainLoop(specs)
    ensemble = VmapEnsemble(specs, models=loop.models)  # copies the weights: the loop's models stay its own
    ensemble.losses(ensemble.batch()).sum().backward()
    for i, model in enumerate(loop.models):
        loop.loss(i, loop.batch(i)).backward()
        for name, stacked in ensemble.params.items():
            torch.testing.assert_close(stacked.grad[i], model.get_parameter(name).grad, rtol=1e-4, atol=1e-6)
    for _ in range(3):
        loop.step()
        ensemble.step()
    theirs = torch.stack([loop.loss(i, loop.batch(i)) for i in range(3)])
    torch.testing.assert_close(ensemble.losses(ensemble.batch()), theirs.detach(), rtol=1e-3, atol=0)
    assert ensemble.steps == loop.steps == 3
