"""The scaling-law fitter against synthetic surfaces with known parameters (studies/scaling/fit.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from limitlab.studies.scaling.fit import compute_optimal, fit_chinchilla, fit_power_law, huber

CHINCHILLA = {"E": 1.6934, "A": 406.4, "B": 410.7, "alpha": 0.3392, "beta": 0.2849}  # Hoffmann's unrounded values


def _surface(p: dict, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def _grid(n_sizes: int = 8, n_budgets: int = 4) -> tuple[np.ndarray, np.ndarray]:
    N, D = np.meshgrid(np.geomspace(1e6, 3e9, n_sizes), np.geomspace(1e8, 1e11, n_budgets))
    return N.ravel(), D.ravel()


def test_recovers_chinchilla_surface_without_noise():
    N, D = _grid()
    fit = fit_chinchilla(N, D, _surface(CHINCHILLA, N, D))
    for key, true in CHINCHILLA.items():
        assert fit.params[key] == pytest.approx(true, rel=1e-3), key
    assert fit.predict(1e10, 1e12)[0] == pytest.approx(_surface(CHINCHILLA, 1e10, 1e12), rel=1e-4)


def test_recovers_small_scale_surface_with_noise_and_bootstrap_covers_truth():
    true = {"E": 1.1, "A": 60.0, "B": 300.0, "alpha": 0.45, "beta": 0.35}  # our sizes: 1e3..3e5 params
    N, D = np.meshgrid(np.geomspace(1e3, 3e5, 8), np.geomspace(1e5, 1e7, 3))
    N, D = N.ravel(), D.ravel()
    rng = np.random.default_rng(1)
    L = _surface(true, N, D) * np.exp(rng.normal(0, 0.005, N.shape))  # 0.5% noise
    fit = fit_chinchilla(N, D, L, n_boot=40, seed=0)
    assert fit.params["alpha"] == pytest.approx(true["alpha"], abs=0.05)
    assert fit.params["beta"] == pytest.approx(true["beta"], abs=0.05)
    assert fit.params["E"] == pytest.approx(true["E"], abs=0.1)
    for key in ("alpha", "beta"):
        lo, hi = fit.ci[key]
        assert lo <= fit.params[key] <= hi and hi - lo < 0.2, (key, lo, hi)
    lo, hi = fit.predict_interval(3e6, 1e8)
    measured = _surface(true, 3e6, 1e8)  # 10× beyond the largest N and D fitted
    assert abs(fit.predict(3e6, 1e8)[0] - measured) / measured < 0.03


def test_power_law_in_compute_recovers_irreducible_term():
    C = np.geomspace(1e10, 1e15, 9)
    L = 0.9 + 250.0 * C ** -0.21
    fit = fit_power_law(C, L)
    assert fit.params["E"] == pytest.approx(0.9, rel=1e-3)
    assert fit.params["A"] == pytest.approx(250.0, rel=1e-2)
    assert fit.params["alpha"] == pytest.approx(0.21, rel=1e-3)


def test_compute_optimal_matches_brute_force_minimum():
    N, D = _grid()
    fit = fit_chinchilla(N, D, _surface(CHINCHILLA, N, D))
    for C in (1e18, 1e21, 1e24):
        n_opt, d_opt = compute_optimal(fit, C)
        res = optimize.minimize_scalar(lambda logn, c=C: _surface(CHINCHILLA, np.exp(logn), c / (6 * np.exp(logn))),
                                       bounds=(np.log(1e3), np.log(C / 6 / 1e3)), method="bounded",
                                       options={"xatol": 1e-10})
        assert np.log(n_opt) == pytest.approx(res.x, abs=1e-3)
        assert 6 * n_opt * d_opt == pytest.approx(C)
    # Hoffmann's exponent a = β/(α+β) ≈ 0.46 for these parameters
    assert fit.params["a_opt"] == pytest.approx(0.2849 / (0.3392 + 0.2849), rel=1e-3)


def test_huber_is_quadratic_then_linear_and_fits_refuse_bad_input():
    r = np.array([0.0, 5e-4, -1e-3, 1e-2])
    assert huber(r).tolist() == pytest.approx([0.0, 0.5 * 25e-8, 0.5e-6, 1e-3 * (1e-2 - 5e-4)])
    with pytest.raises(ValueError, match="cannot determine"):
        fit_chinchilla([1e3, 1e4], [1e5, 1e6], [2.0, 1.5])
    with pytest.raises(ValueError, match="finite and positive"):
        fit_power_law([1e3, 0.0, 1e5, 1e6], [2.0, 1.9, 1.8, 1.7])
    with pytest.raises(ValueError, match="one loss per point"):
        fit_power_law([1e3, 1e4, 1e5], [2.0, 1.9])
