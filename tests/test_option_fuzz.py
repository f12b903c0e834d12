"""Property-based fuzzing of every option of every preset of every study (and of spec overrides): each value is
either expanded into runs or refused with one short line — never a traceback, a hang or a lax reading.

Values are drawn from all of JSON (nulls, booleans, huge and non-finite numbers, strings, nested lists and
objects), which is what ``--set study.KEY=VALUE`` can carry. Nothing is trained: a refused value must fail while
the preset is expanded, before any store is touched.
"""

from __future__ import annotations

import inspect
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from limitlab.cli import MAX_LINE, _one_line, main
from limitlab.studies import STUDIES

EXAMPLES = 1000  # values per CI run, over all options together
SCALARS = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.sampled_from([0, 1, 2, 3, 8, -1])
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["qc", "mfc", "base", "rope", "dense", "5", "[8]", "", "inf"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5),
                                                                                          inner, max_size=3),
                      max_leaves=8)
OPTIONS = sorted((study, preset, name) for study, s in STUDIES.items() for preset, fn in s.presets.items()
                 for name in inspect.signature(fn).parameters)
SPEC_FIELDS = ["task.m", "task.n", "task.bos", "model.d_model", "model.n_heads", "model.causal", "model.position",
               "optim.lr", "optim.eps", "optim.grad_clip", "train.steps", "train.batch_size", "seed"]


def _refused_in_one_line(exc: BaseException) -> None:
    assert isinstance(exc, (ValueError, ValidationError)), f"{type(exc).__name__}: {exc}"
    line = _one_line(exc)
    assert line and "\n" not in line and len(line) <= MAX_LINE


def test_options_cover_every_preset():
    assert len(OPTIONS) >= 50 and {s for s, _, _ in OPTIONS} == set(STUDIES)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(option=st.sampled_from(OPTIONS), value=VALUES)
def test_every_preset_option_expands_or_is_refused_in_one_line(option, value):
    study, preset, name = option
    try:
        specs = STUDIES[study].specs(preset, {f"study.{name}": value})
    except Exception as exc:  # noqa: BLE001 - the property: only a one-line refusal may come out
        _refused_in_one_line(exc)
        return
    assert specs  # accepted: a real sweep; a float option must have been finite
    if isinstance(value, float):
        assert math.isfinite(value)


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(SPEC_FIELDS), value=VALUES)
def test_every_spec_override_is_read_as_given_or_refused(field, value):
    try:
        specs = STUDIES["counting"].specs("smoke", {field: value, "study.ds": [8], "study.ms": [3]})
    except Exception as exc:  # noqa: BLE001
        _refused_in_one_line(exc)
        return
    held = specs[0].model_dump(mode="json")
    for key in field.split("."):
        held = held[key]
    assert held == value or (not isinstance(value, bool) and isinstance(value, (int, float))
                             and float(held) == float(value))


@pytest.mark.parametrize("value", ['"5"', "true", '{"qc":1}', "10000000", "[1e9]", "[1e400]", "[null]",
                                   "[" * 50 + "]" * 50, '"' + "x" * 100_000 + '"'])
def test_the_reported_bad_values_are_one_short_line_and_write_nothing(tmp_path, capsys, value):
    store = tmp_path / "store"
    key = {'{"qc":1}': "study.tasks", "[null]": "study.tasks", "10000000": "study.seeds"}.get(value, "study.steps")
    assert main(["run", "counting", "--preset", "smoke", "--set", f"{key}={value}", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and len(err) <= MAX_LINE + 20 and not store.exists()
    json.dumps(value)  # the value itself is any JSON text
