"""Hand-wired counting constructions: exact where the theory says so, broken where it says so (via evaluate())."""

from __future__ import annotations

import pytest
import torch

from limitlab.studies.counting.constructions import (
    coherence,
    construction_grid,
    count_attend_model,
    count_sweep,
    histogram_capacity,
    histogram_model,
    inverse_pieces,
    max_exact_count,
    mlp_width_needed,
    unit_codes,
)
from limitlab.train.metrics import evaluate


def _acc(model, task, n_sequences: int = 400) -> dict[str, float]:
    return {k: v["accuracy"][0] for k, v in evaluate(model, [task], [0], n_sequences, 256).items()}


def _bad_counts(model, task, counts=None) -> list[int]:
    return [c for c, a in count_sweep(model, task, counts=counts, per_count=1).items() if a < 1.0]


@pytest.mark.parametrize("d", [8, 16, 32])
def test_histogram_exact_up_to_capacity(d):
    cap = histogram_capacity(d)
    assert cap == d - 1
    rows = construction_grid([d], [2, 5, cap], kind="histogram", n_sequences=400)
    for row in rows:
        assert row["n"] == 10 * row["m"] and row["exact_regime"]
        assert row["accuracy"] == 1.0 and row["test_accuracy"] == 1.0, row
        assert row["ood_long_accuracy"] == 1.0, row


def test_histogram_decodes_every_count_and_example():
    model, task = histogram_model(8, 7, 70)
    assert _bad_counts(model, task) == []
    # the docstring example: BOS a c a b c a -> 3
    model, task = histogram_model(8, 3, 6)
    x = torch.tensor([[[1, 3, 5, 3, 4, 5, 3]]])
    assert model(x, torch.tensor([[[6]]])).argmax(-1).item() == 3


def test_histogram_breaks_above_capacity():
    cyclic = construction_grid([8], [40], kind="histogram", n_sequences=400)[0]
    assert not cyclic["exact_regime"] and cyclic["accuracy"] < 0.5  # symbols collide -> counts merge
    random = construction_grid([8], [40], kind="histogram", n_sequences=400, overflow="random")[0]
    assert random["accuracy"] < 1.0  # non-orthogonal codes leak attention mass at the fixed β
    just_over = construction_grid([8], [8], kind="histogram", n_sequences=400)[0]
    assert just_over["accuracy"] < 0.95


def test_histogram_multi_head_capacity_and_variants():
    assert histogram_capacity(16, 2) == 14
    model, task = histogram_model(16, 14, 140, n_heads=2, n_layers=2)
    assert _acc(model, task) == {"test": 1.0, "ood_long": 1.0}
    model, task = histogram_model(16, 15, 150, n_heads=2)
    assert _acc(model, task)["test"] < 1.0
    model, task = histogram_model(8, 7, 70, query="appended")
    assert _acc(model, task)["test"] == 1.0
    assert _bad_counts(model, task) == []  # includes count 0


@pytest.mark.parametrize("d,m,codes", [(16, 40, "random"), (8, 40, "random"), (8, 40, "optimized")])
def test_count_attend_exact_below_m(d, m, codes):
    model, task = count_attend_model(d, m, 10 * m, codes=codes)
    assert d < m and model.construction_info["mlp_width"] == mlp_width_needed(400)
    assert _acc(model, task) == {"test": 1.0, "ood_long": 1.0}
    assert _bad_counts(model, task, range(1, 401, 3)) == []


def test_count_attend_grid_and_double():
    rows = construction_grid([16], [40], kind="count_attend", n_sequences=200, splits=["test"])
    assert rows[0]["accuracy"] == 1.0 and rows[0]["exact_regime"] and rows[0]["extra_dims"] == 1
    model, task = count_attend_model(16, 40, 400)
    assert _acc(model.double(), task, 200) == {"test": 1.0, "ood_long": 1.0}


def test_count_attend_fails_when_too_narrow():
    model, task = count_attend_model(16, 40, 400, mlp_width=2)
    assert max_exact_count(2) < 10  # typical counts are n/m = 10
    acc = _acc(model, task)
    assert acc["test"] < 0.5 and acc["ood_long"] < 0.1


@pytest.mark.parametrize("activation,query", [("gelu", "last"), ("relu", "appended")])
def test_count_attend_variants(activation, query):
    model, task = count_attend_model(16, 40, 200, activation=activation, query=query)
    assert _acc(model, task, 200)["test"] == 1.0
    assert _bad_counts(model, task) == []


def test_mlp_width_needed_grows_and_is_tight():
    ns = [10, 50, 100, 200, 500, 1000, 1500]
    widths = [mlp_width_needed(n) for n in ns]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    assert all(mlp_width_needed(n, margin=1e-6) <= w for n, w in zip(ns, widths))
    for n, w in zip(ns, widths):
        assert max_exact_count(w) >= n > max_exact_count(w - 1)
    for n in (100, 400):
        w = mlp_width_needed(n)
        model, task = count_attend_model(16, 40, n, mlp_width=w)
        assert _bad_counts(model, task) == []
        model, task = count_attend_model(16, 40, n, mlp_width=w - 1)
        bad = _bad_counts(model, task)
        assert bad and min(bad) > max_exact_count(w - 1)  # only counts past the narrower reach fail


def test_codes():
    u = unit_codes(40, 7, "optimized")
    assert torch.allclose(u.norm(dim=1), torch.ones(40, dtype=u.dtype))
    assert coherence(u) < coherence(unit_codes(40, 7, "random"))
    assert coherence(unit_codes(5, 5, "onehot")) == 0.0
    with pytest.raises(ValueError):
        unit_codes(6, 5, "onehot")


def test_mfc_exact_up_to_d_minus_2_and_breaks_above():
    for d in (8, 16):
        for row in construction_grid([d], [2, 5, d - 2], kind="mfc", n_sequences=400):
            assert row["exact_regime"] and row["accuracy"] == 1.0 and row["ood_long_accuracy"] == 1.0, row
    over = construction_grid([8], [7, 40], kind="mfc", n_sequences=400, splits=["test"])
    assert all(not r["exact_regime"] and r["accuracy"] < 0.5 for r in over)


def test_inverse_pieces_band():
    for half in (0.4, 0.5):
        p = inverse_pieces(1001, half)
        t = torch.arange(2, p.t_reach + 1)
        err = p(t) - t  # chord overshoot, in [0, 2·half] inside the reach
        assert err.min() >= -1e-9 and err.max() <= 2 * half + 1e-9
        assert (p(torch.tensor([p.t_reach + 3.0])) - (p.t_reach + 3)).item() < 0  # extrapolation undershoots
    assert mlp_width_needed(1) == 1 and max_exact_count(1) >= 1
