"""Counter-based per-model random numbers (limitlab.rng)."""

from __future__ import annotations

import torch

from limitlab.rng import TEST, TRAIN, StackRNG, mix64

MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """Reference splitmix64 (Steele et al.) on Python ints, modulo 2^64."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def test_mix64_matches_reference_splitmix64():
    values = [0, 1, 2, 42, 12345678901234, (1 << 63) - 1, -1, -(1 << 63), -987654321]
    got = mix64(torch.tensor(values, dtype=torch.int64)).tolist()
    assert [g & MASK for g in got] == [_splitmix64(v & MASK) for v in values]
    assert _splitmix64(0) == 0xE220A8397B1DCDAF  # first output of splitmix64 seeded with 0


def test_draws_are_deterministic_and_keyed_by_step_salt_stream():
    a, b = StackRNG([3, 4]), StackRNG([3, 4])
    assert torch.equal(a.bits((5, 7), step=2, salt=1), b.bits((5, 7), step=2, salt=1))
    base = a.bits((64,), step=2)
    assert base.shape == (2, 64)
    for other in (a.bits((64,), step=3), a.bits((64,), step=2, salt=1), StackRNG([3, 4], TEST).bits((64,), 2)):
        assert (other != base).float().mean() > 0.99
    assert StackRNG([3, 4], TRAIN).stream == TRAIN
    assert (base[0] != base[1]).all()  # different seeds, different streams


def test_a_model_draws_the_same_numbers_in_any_stack():
    alone = StackRNG([11])
    stack = StackRNG([5, 11, 7, 11])
    for draw in (
        lambda r: r.bits((3, 4), step=9, salt=2),
        lambda r: r.random((10,), step=1),
        lambda r: r.normal((10,), step=1),
        lambda r: r.randint((10,), high=13, step=4),
    ):
        mine, theirs = draw(alone), draw(stack)
        assert torch.equal(theirs[1], mine[0]) and torch.equal(theirs[3], mine[0])
        assert not torch.equal(theirs[0], mine[0])
    # per-model highs: a model's draw does not depend on its neighbours' highs either
    mine = alone.randint((50,), high=torch.tensor([9]), step=0)
    theirs = stack.randint((50,), high=torch.tensor([2, 9, 100, 9]), step=0)
    assert torch.equal(theirs[1], mine[0])


def test_per_model_steps():
    rng = StackRNG([1, 2, 3])
    mixed = rng.bits((8,), step=torch.tensor([0, 5, 7]))
    for m, step in enumerate((0, 5, 7)):
        assert torch.equal(mixed[m], rng.bits((8,), step=step)[m])


def test_randint_range_with_per_model_highs():
    rng = StackRNG([0, 1, 2])
    high = torch.tensor([2, 7, 1000])
    x = rng.randint((20_000,), high=high, step=3)
    assert x.dtype == torch.int64 and x.shape == (3, 20_000)
    for m, h in enumerate(high.tolist()):
        assert x[m].min() == 0 and x[m].max() == h - 1
    assert set(x[1].tolist()) == set(range(7))
    counts = torch.bincount(x[1], minlength=7).float()
    assert (counts / counts.mean() - 1).abs().max() < 0.1  # roughly uniform
    y = rng.randint((1000,), high=10, step=3, low=5)
    assert y.min() == 5 and y.max() == 9


def test_random_is_in_unit_interval():
    u = StackRNG([0, 9]).random((50_000,), step=0)
    assert u.dtype == torch.float32
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.005


def test_normal_is_standard():
    z = StackRNG([0, 9]).normal((100_000,), step=0)
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    for m in range(2):
        assert abs(z[m].mean().item()) < 0.02 and abs(z[m].std().item() - 1) < 0.02
        assert abs((z[m].abs() < 1).float().mean().item() - 0.6827) < 0.01


def test_permutation_keys_give_uniform_permutations():
    keys = StackRNG([4]).permutation_keys((4000, 3), step=0)
    perms = keys.argsort(-1)[0]  # (4000, 3)
    assert (perms.sort(-1).values == torch.arange(3)).all()
    codes = perms[:, 0] * 9 + perms[:, 1] * 3 + perms[:, 2]
    counts = torch.bincount(codes).float()
    counts = counts[counts > 0]
    assert len(counts) == 6 and (counts / counts.mean() - 1).abs().max() < 0.15


def test_draws_do_not_depend_on_the_padded_extent():
    """Element (b, t) is the same number whether the draw is (4, 10) or padded to (6, 37)."""
    rng = StackRNG(torch.tensor([3, 11]))
    small = rng.randint((4, 10), high=torch.tensor([7, 9]), step=5)
    padded = rng.randint((6, 37), high=torch.tensor([7, 9]), step=5)
    assert torch.equal(padded[:, :4, :10], small)
