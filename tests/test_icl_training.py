"""The error-against-steps trend: least squares' closed form on many prompts, and the trend read from a store."""

from __future__ import annotations

import numpy as np
import pandas as pd

from limitlab.report.sections import ReportContext
from limitlab.studies import STUDIES
from limitlab.studies.icl.baselines import LeastSquares
from limitlab.studies.icl.evaluate import draw, squared_errors
from limitlab.studies.icl.study import icl_specs
from limitlab.studies.icl.training import analyze, least_squares_error, trend
from limitlab.tasks.icl_linear import ICLLinear


def test_least_squares_matches_its_closed_form_on_20000_prompts():
    """max(0, d − k)/d, to within 4 standard errors at every k (the per-prompt error has a long tail)."""
    task = ICLLinear(d=5, n_points=11)
    prompts = draw(task, 20_000)
    err = squared_errors(LeastSquares()(prompts.xs.double(), prompts.ys.double()), prompts, task.normaliser())
    mean, se = err.mean(0), err.std(0) / np.sqrt(len(err))
    want = least_squares_error(5, 11)
    assert np.all(np.abs(mean - want) <= 4 * se + 1e-9)
    assert err[:, 5:].mean() < 1e-6  # exact from k = d on, up to the float32 prompts' rounding


class _Store:
    """A store whose runs logged error_by_index at three evaluations: the gap to LS halves each time."""

    def __init__(self, specs):
        self.specs = {s.run_id: s for s in specs}

    def metrics(self, run_id):
        spec = self.specs[run_id]
        d, n = spec.task.d, spec.task.n_points
        ls = least_squares_error(d, n) * spec.task.normaliser()
        return [{"step": 10, "train_loss": 1.0}] + [
            {"step": step, "test/error_by_index": (ls + gap * spec.task.normaliser()).tolist()}
            for step, gap in ((100, 0.4), (200, 0.2), (400, 0.1 + 0.01 * spec.seed))]

    def spec(self, run_id):
        return self.specs[run_id]


def _specs():
    return icl_specs(["dense"], 3, d=5, n_linear=11, n_nonlinear=11, model={"n_layers": 1, "n_heads": 1,
                     "d_model": 8}, lr=1e-3, steps=400, batch_size=4, curriculum=False, eval_every=100)


def test_trend_is_the_largest_gap_to_least_squares_per_evaluation():
    specs = _specs()
    t = trend(_Store(specs), specs[1])
    assert t["step"].tolist() == [100, 200, 400]
    assert np.allclose(t["value"], [0.4, 0.2, 0.11])


def test_training_section_draws_the_trend_with_the_threshold():
    specs = _specs()
    runs = pd.DataFrame({"run_id": [s.run_id for s in specs]})
    ctx = ReportContext(STUDIES["icl"], _Store(specs), runs, runs, None, {})
    sec = analyze(ctx)
    curve = sec.results["curves"]["dense"]
    assert curve["step"] == [100, 200, 400] and np.allclose(curve["mean"], [0.4, 0.2, 0.11])
    assert np.allclose(curve["max"][-1], 0.12) and len(sec.figures) == 1


def test_two_protocols_on_one_pretraining_name_are_named_in_a_warning():
    """quick and repro runs in one store: both are grouped ('dense', 'dense#2') and the report says which decides."""
    from limitlab.studies.icl.results import evaluate

    one = _specs()
    two = icl_specs(["dense"], 3, d=5, n_linear=11, n_nonlinear=11, model={"n_layers": 2, "n_heads": 1,
                    "d_model": 8}, lr=1e-3, steps=400, batch_size=4, curriculum=False)
    specs = one + two
    runs = pd.DataFrame({"run_id": [s.run_id for s in specs]})

    ctx = ReportContext(STUDIES["icl"], _Store(specs), runs, runs, None, {})

    def no_weights(run_id):
        raise ValueError("no stored weights")

    ctx.load_model = no_weights  # the warning comes from the grouping, before any model is loaded
    ev = evaluate(ctx)
    assert any("more than one protocol pretrained on dense (groups dense, dense#2)" in w for w in ev.warnings)
