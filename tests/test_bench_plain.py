"""The plain-PyTorch baseline of `limitlab bench` does the same work as one model of the stack."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from limitlab.bench import shape_specs
from limitlab.bench_plain import PlainGPT, PlainLoop
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
    (spec,) = shape_specs(8, 3, 1, 32)
    plain = PlainLoop([spec])
    first = plain.loss(0, plain.batch(0)).item()
    for _ in range(60):
        plain.step()
    assert plain.loss(0, plain.batch(0)).item() < first
    assert torch.isfinite(torch.tensor(first))
