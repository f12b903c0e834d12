"""The shared analysis layer of the studies' reports: pure functions on pandas DataFrames.

A report starts from ``RunStore.to_dataframe(study)`` (one row per run; ``tags.<name>``, spec and
``result.<split>/<metric>`` columns) and uses:

* :mod:`.frames` — :func:`tidy` (short column names, finished runs only), :func:`groups`, :func:`distinct`,
  :func:`long_frame` (a vector metric as one row per (run, index));
* :mod:`.intervals` — :func:`mean_ci` / :func:`aggregate`: mean, std, n and a Student-t interval over seeds that is
  clipped to the metric's range (``PROPORTION``, ``NONNEGATIVE``) and flagged when clipped; :func:`wilson`;
* :mod:`.bootstrap` — percentile bootstrap over many units: :func:`bootstrap_ci`, :func:`bootstrap_band` (a band
  for an error curve, resampling prompts); :func:`two_level_band`, :func:`two_level_ci` (seeds × prompts: both
  levels bootstrapped, a t-interval with Welch–Satterthwaite degrees of freedom);
* :mod:`.thresholds` — censored threshold crossings: :func:`first_crossing`, :func:`crossings`,
  :func:`summarize_crossings`;
* :mod:`.fits` — :func:`linear_fit` / :func:`linear_fits` (slope t-interval), :func:`power_law_fit`,
  :func:`curve_fit` (any ``f`` with bootstrap intervals).

>>> import pandas as pd
>>> df = pd.DataFrame({"d": [8, 8, 16, 16], "seed": [0, 1, 0, 1], "acc": [0.91, 0.95, 0.97, 0.99]})
>>> aggregate(df, ["d"], "acc", bounds=PROPORTION)[["d", "n", "mean", "ci_high", "clipped"]].round(3).to_dict(
...     "records")
[{'d': 8, 'n': 2, 'mean': 0.93, 'ci_high': 1.0, 'clipped': True}, {'d': 16, 'n': 2, 'mean': 0.98, 'ci_high': 1.0, \
'clipped': True}]
"""

from limitlab.analysis.bootstrap import (
    bootstrap_band,
    bootstrap_band_frame,
    bootstrap_ci,
    two_level_band,
    two_level_ci,
    two_level_replays,
)
from limitlab.analysis.fits import CurveFit, LinearFit, curve_fit, linear_fit, linear_fits, power_law_fit
from limitlab.analysis.frames import column, distinct, done, groups, long_frame, result_columns, tag_columns, tidy
from limitlab.analysis.intervals import (
    NONNEGATIVE,
    PROPORTION,
    UNBOUNDED,
    Interval,
    aggregate,
    mean_ci,
    t_interval,
    wilson,
)
from limitlab.analysis.thresholds import Crossing, crossings, first_crossing, summarize_crossings, summary_label

__all__ = [
    "NONNEGATIVE",
    "PROPORTION",
    "UNBOUNDED",
    "Crossing",
    "CurveFit",
    "Interval",
    "LinearFit",
    "aggregate",
    "bootstrap_band",
    "bootstrap_band_frame",
    "bootstrap_ci",
    "column",
    "crossings",
    "curve_fit",
    "distinct",
    "done",
    "first_crossing",
    "groups",
    "linear_fit",
    "linear_fits",
    "long_frame",
    "mean_ci",
    "power_law_fit",
    "result_columns",
    "summarize_crossings",
    "summary_label",
    "t_interval",
    "tag_columns",
    "tidy",
    "two_level_band",
    "two_level_ci",
    "two_level_replays",
    "wilson",
]
