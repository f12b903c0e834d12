"""Abacus embeddings: equal digit index -> equal embedding wherever the number sits; the offset only in training."""

from __future__ import annotations

import pytest
import torch

from limitlab.nn.model import ModelConfig, StackedTransformer
from limitlab.nn.positions import POSITIONS
from limitlab.nn.positions.abacus import Abacus, digit_index, row_offsets
from limitlab.tasks import arithmetic_digits as D


def tokens(text: str) -> torch.Tensor:
    ids = {"^": D.BOS, "+": D.PLUS, "=": D.EQ, ";": D.END, "_": D.PAD}
    return torch.tensor([D.DIGIT0 + int(c) if c.isdigit() else ids[c] for c in text])


def encoding(max_offset=100, d=8, m=1):
    model = StackedTransformer(ModelConfig(d_model=d, n_heads=2, n_layers=1, position="abacus",
                                           position_options={"abacus_max_offset": max_offset,
                                                             "abacus_max_index": 200}), m, D.VOCAB, D.VOCAB)
    model.reset_parameters(list(range(m)))
    return model, model.input_positions[0]


def test_digit_index_counts_within_each_number():
    x = tokens("^4321+8765=2196;")
    assert digit_index(x, D.DIGIT0, 10).tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0]
    x = tokens("^7+12345=0;__")
    assert digit_index(x, D.DIGIT0, 10).tolist() == [0, 1, 0, 1, 2, 3, 4, 5, 0, 1, 0, 0, 0]


def test_equal_digit_index_gives_equal_embedding_whatever_the_absolute_position():
    model, enc = encoding()
    model.eval()
    short, long = tokens("^12+34=64;______"), tokens("^98765+12=08765;")
    x = torch.stack([short, long]).unsqueeze(0)  # (1, 2, 16)
    h = enc.on_input(torch.zeros(1, 2, 16, 8), x)
    # the first digit of the second operand: position 4 in one sequence, 7 in the other -> the same vector
    assert torch.equal(h[0, 0, 4], h[0, 1, 7])
    assert torch.equal(h[0, 0, 1], h[0, 1, 10])  # index 1 of the first operand and of the answer
    assert not torch.equal(h[0, 0, 1], h[0, 0, 2])  # indices 1 and 2 differ
    assert torch.equal(h[0, 0, 0], h[0, 0, 3])  # every non-digit shares row 0


def test_offset_only_in_training_and_deterministic():
    model, enc = encoding()
    x = torch.stack([tokens("^12+34=64;" + "_" * 6), tokens("^98765+12=08765;")]).unsqueeze(0)
    model.train()
    idx_train = enc.indices(x)
    assert torch.equal(idx_train, enc.indices(x))  # deterministic
    shift = row_offsets(2, 100)
    assert (shift >= 0).all() and (shift <= 100).all()
    digits = digit_index(x, D.DIGIT0, 10)
    assert torch.equal(idx_train, torch.where(digits > 0, digits + shift.view(1, -1, 1), 0))
    model.eval()
    assert torch.equal(enc.indices(x), digits)
    # the offset ignores the tokens (a causal model must not see the future through it); rows get many offsets
    padded = torch.cat([x, torch.full((1, 2, 5), D.PAD)], -1)
    model.train()
    assert torch.equal(enc.indices(padded)[..., : x.shape[-1]], idx_train)
    assert len(set(row_offsets(200, 100).tolist())) > 50


def test_abacus_model_runs_and_refuses_bad_options():
    model, _ = encoding(m=2)
    x = tokens("^4321+8765=2196;").expand(2, 3, -1)
    assert model(x).shape == (2, 3, 16, D.VOCAB)
    assert POSITIONS["abacus"] is Abacus
    with pytest.raises(ValueError, match="abacus_max_index"):
        ModelConfig(d_model=8, n_heads=2, position="abacus", position_options={"abacus_max_index": 10})
    with pytest.raises(ValueError, match="token ids"):
        Abacus.on_input(model.input_positions[0], torch.zeros(2, 3, 4, 8), torch.zeros(2, 3, 4, 5))


def test_abacus_trains_in_a_stack_and_evaluates_without_offset():
    from limitlab.studies.arithmetic.study import arithmetic_spec
    from limitlab.train.trainer import train_runs

    specs = [arithmetic_spec("add", [1, 2, 3], fmt="reversed", position=pos, seed=s, test_digits=[2, 5], n_layers=1,
                             n_heads=2, d_model=16, steps=3, eval_size=32) for pos in ("abacus", "abacus+rope")
             for s in (0, 1)]
    for pair in (specs[:2], specs[2:]):
        results = train_runs(pair)
        assert len(results) == 2
        for r in results.values():
            assert 0.0 <= r["lengths/accuracy"] <= 1.0 and len(r["lengths/digit_accuracy"]) == 7
