"""CPU model chunks are measured on the machine at hand, once per stack shape, and never change a training number."""

from __future__ import annotations

import doctest
import json

import pytest
import torch

from limitlab.train import chunking
from limitlab.train.trainer import StackTrainer, TrainOptions

LONG = 100_000  # steps: enough that a measurement is worth it (chunking.worth_measuring)


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    """Measurements count as taken on an idle machine (the suite's own load must not decide what is cached)."""
    monkeypatch.setattr(chunking, "_load_average", lambda: [0.0, 0.0, 0.0])


def _specs(make_spec, n: int = 3, steps: int = LONG, **over) -> list:
    return [make_spec(seed=s, steps=steps, **over) for s in range(n)]


@pytest.fixture
def timings(monkeypatch):
    """Counts measurements; ``timings.prefer = c`` makes c the fastest (after the real throwaway steps ran)."""
    real = chunking.time_chunks

    class Timings:
        calls: list[list[int]] = []
        prefer: int | None = None

    def time_chunks(step, chunks, rounds=chunking.MEASURE_ROUNDS):
        Timings.calls.append(list(chunks))
        seconds = real(step, chunks, rounds)
        if Timings.prefer is not None:
            seconds = {c: (0.001 if c == Timings.prefer else 1.0) for c in chunks}
        return seconds

    monkeypatch.setattr(chunking, "time_chunks", time_chunks)
    return Timings


def test_doctests():
    assert doctest.testmod(chunking).failed == 0


def test_candidates_and_what_a_measurement_costs():
    assert chunking.candidates(2) == [1, 2] and chunking.candidates(50) == [1, 2, 4, 8, 16, 32, 50]
    assert chunking.measure_steps(32) == chunking.MEASURE_ROUNDS * 6
    assert not chunking.worth_measuring(1, 10**9)  # one model: nothing to choose
    need = chunking.measure_steps(8) / chunking.MEASURE_SHARE
    assert not chunking.worth_measuring(8, int(need) - 1) and chunking.worth_measuring(8, int(need) + 1)


def test_measured_once_then_cached_per_shape(make_spec, timings, chunk_cache):
    first = StackTrainer(_specs(make_spec))
    assert first.chunk_how == "measured" and first.chunk in (1, 2, 3) and timings.calls == [[1, 2, 3]]
    assert set(first.chunk_choice.seconds) == {1, 2, 3}
    again = StackTrainer(_specs(make_spec))  # same shape, same machine: nothing measured
    assert (again.chunk, again.chunk_how) == (first.chunk, "cached") and len(timings.calls) == 1
    short = StackTrainer(_specs(make_spec, steps=10))  # too short to measure, but the cache is free
    assert (short.chunk, short.chunk_how) == (first.chunk, "cached")
    other = StackTrainer(_specs(make_spec, n=2))  # another shape (M = 2) measures again
    assert other.chunk_how == "measured" and len(timings.calls) == 2
    (entry, *more) = (e for e in json.loads((chunk_cache / "chunks.json").read_text())["entries"].values()
                      if e["shape"]["models"] == 3)
    assert not more and entry["chunk"] == first.chunk and entry["machine"] == chunking.machine_key()
    assert "load_avg" in entry and "measured_at" in entry
    assert entry["machine"]["threads"] == torch.get_num_threads() and entry["shape"]["model"]["d_model"] == 16


def test_no_measurement_where_nothing_to_choose_or_too_short(make_spec, timings, chunk_cache):
    cases = [(_specs(make_spec, n=1), TrainOptions(), 1, "whole stack"),
             (_specs(make_spec), TrainOptions(chunk_models=2), 2, "option"),
             (_specs(make_spec), TrainOptions(chunk_models=9), 3, "option"),
             (_specs(make_spec), TrainOptions(compile=True), 3, "whole stack"),
             (_specs(make_spec, steps=60), TrainOptions(), 3, "whole stack")]
    for specs, options, chunk, how in cases:
        trainer = StackTrainer(specs, None, options)
        assert (trainer.chunk, trainer.chunk_how) == (chunk, how)
    assert timings.calls == [] and not (chunk_cache / "chunks.json").exists()  # a skipped measurement is not cached


def _state(trainer: StackTrainer) -> list[torch.Tensor]:
    optim = trainer.optim
    return [t.clone() for t in (optim.flat, optim.exp_avg_flat, optim.exp_avg_sq_flat, optim.t, trainer.step,
                                trainer.alive)]


@pytest.mark.parametrize("prefer", [2, 3])
def test_measuring_changes_no_training_number(make_spec, timings, prefer):
    """The measured chunk trains bitwise as that chunk given as an option; the measurement itself (on a
    throwaway copy) leaves the weights, moments, counters and torch's random state as they were."""
    timings.prefer = prefer
    specs = [make_spec(seed=s, m=3 + s, steps=LONG) for s in range(3)]  # a padded stack
    measured, given = StackTrainer(specs), StackTrainer(specs, None, TrainOptions(chunk_models=prefer))
    before, rng = _state(measured), torch.get_rng_state()
    assert (measured.chunk, measured.chunk_how) == (prefer, "measured") and timings.calls
    assert all(torch.equal(a, b) for a, b in zip(before, _state(measured)))
    assert torch.equal(rng, torch.get_rng_state())
    for _ in range(4):
        assert torch.equal(measured.train_step(), given.train_step())
    assert all(torch.equal(a, b) for a, b in zip(_state(measured), _state(given)))


def test_corrupt_or_unwritable_cache_is_ignored(make_spec, timings, chunk_cache, tmp_path, monkeypatch):
    path = chunk_cache / "chunks.json"
    for junk in ("{not json", "[1, 2]", '{"version": 1, "entries": {"x": {"chunk": 99}}}', "\x00\xff", "7"):
        path.write_text(junk)
        trainer = StackTrainer(_specs(make_spec))
        assert trainer.chunk_how == "measured"
        assert json.loads(path.read_text())["version"] == chunking.CACHE_VERSION  # replaced by a valid file
    data = json.loads(path.read_text())
    (entry,) = data["entries"].values()
    entry["seconds"] = {"one": "fast"}  # a damaged entry under the right key
    path.write_text(json.dumps(data))
    assert StackTrainer(_specs(make_spec)).chunk_how == "measured"
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("LIMITLAB_CACHE_DIR", str(blocked))  # a folder that cannot be created
    trainer = StackTrainer(_specs(make_spec))
    assert trainer.chunk_how == "measured" and trainer.chunk in (1, 2, 3)
    assert chunking.save_cache({}) is False and chunking.load_cache() == {}


def test_cache_folder_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("LIMITLAB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert chunking.cache_file() == tmp_path / "limitlab" / "chunks.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert chunking.cache_file().parent.parent.name == ".cache"


def test_machine_names_cpu_and_caches():
    key = chunking.machine_key()
    assert set(key) == {"cpu", "caches", "threads", "torch"} and key["cpu"]
    assert key["caches"] == "unknown" or key["caches"].startswith("L1")


def test_a_measurement_on_a_busy_machine_is_used_but_not_cached(make_spec, timings, chunk_cache, monkeypatch):
    monkeypatch.setattr(chunking, "_load_average", lambda: [99.0, 99.0, 99.0])
    first = StackTrainer(_specs(make_spec), None, TrainOptions())
    assert first.chunk_how == "measured (busy, not cached)"
    assert StackTrainer(_specs(make_spec), None, TrainOptions()).chunk_how == "measured (busy, not cached)"
