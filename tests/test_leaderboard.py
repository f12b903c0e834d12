"""The leaderboard study: presets from the registry, exclusions by rule, ranks with intervals, the papers' orders,
and the smoke preset trained and reported end to end (with a toy encoding added by a registry line only)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from limitlab import train_sweep
from limitlab.nn.positions import POSITIONS, PositionEncoding
from limitlab.store import RunStore
from limitlab.studies import STUDIES
from limitlab.studies.leaderboard import papers as P
from limitlab.studies.leaderboard.presets import excluded
from limitlab.studies.leaderboard.ranking import overall, rank_table, seed_ranks
from limitlab.train.trainer import TrainOptions

BOARD = STUDIES["leaderboard"]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: tiny models gain nothing from two, and a shared machine makes two spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Toy(PositionEncoding):
    """A trivial encoding: adds a constant 0.01 to every residual vector (position-free, like NoPE)."""

    name = "toy"
    scope = "input"

    def on_input(self, h: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        return h + 0.01


def _train_and_report(tmp_path, overrides):
    specs = BOARD.specs("smoke", overrides)
    store = RunStore(tmp_path / "store")
    summary = train_sweep(specs, store, TrainOptions(log_every=10**9))
    assert summary["failed"] == 0
    out = tmp_path / "report"
    BOARD.report(store, out)
    return specs, json.loads((out / "results.json").read_text()), (out / "index.html").read_text()


def test_smoke_trains_and_reports(tmp_path):
    specs, res, html = _train_and_report(tmp_path, {"study.encodings": ["learned", "cope"]})
    assert len(specs) == 8 and {s.tags["task"] for s in specs} == {"counting", "flip_flop"}
    assert res["runs"]["done"] == 8 and res["schema"] == "limitlab.leaderboard.report/3"
    tasks = res["sections"]["board"]["results"]["tasks"]
    for task in ("counting", "flip_flop"):
        assert {r["encoding"] for r in tasks[task]["id_ranks"]} == {"learned", "cope"}
        assert sorted(r["mean_rank"] for r in tasks[task]["ood_ranks"]) in ([1.0, 2.0], [1.5, 1.5])
        assert "digit" in tasks[task]["left_out"]["abacus"]  # a stated reason, by rule
    assert tasks["arithmetic"]["left_out"] == {}  # no runs of it here: nothing to list
    assert {r["encoding"] for r in res["sections"]["board"]["results"]["overall"]["ood"]} == {"learned", "cope"}
    pairs = res["sections"]["papers"]["results"]["pairs"]
    ff = [p for p in pairs if p["task"] == "flip_flop" and p["paper says"] == "cope ahead of learned"]
    assert len(ff) == 2 and all(p["verdict"] in ("agree", "disagree", "inconclusive") for p in ff)
    assert "Step time: not measured here" in html and "abacus left out" in html


def test_a_new_encoding_file_is_on_the_board(tmp_path, monkeypatch):
    monkeypatch.setitem(POSITIONS, "toy", Toy)  # the registry line; nothing else changes
    on_board = {(s.tags["task"], s.tags["encoding"]) for s in BOARD.specs("smoke")}
    assert ("counting", "toy") in on_board and ("flip_flop", "toy") in on_board
    assert len(on_board) == 2 * (len(POSITIONS) - 1 + 2)  # every encoding but abacus, plus two combinations
    specs, res, html = _train_and_report(tmp_path, {"study.encodings": ["learned", "toy"], "study.seeds": 1})
    assert {s.model.position for s in specs} == {"learned", "toy"}
    assert "toy" in {r["encoding"] for r in res["sections"]["board"]["results"]["tasks"]["counting"]["id_ranks"]}
    assert "toy" in html


def test_exclusion_by_the_engine(monkeypatch):
    class TokensOnly(Toy):
        name = "tokens_only"

        def on_input(self, h, inputs=None):
            if inputs is None or inputs.is_floating_point():
                raise ValueError("tokens_only needs token ids")
            return h

    monkeypatch.setitem(POSITIONS, "tokens_only", TokensOnly)
    assert excluded("counting", "tokens_only") is None
    why = excluded("icl", "tokens_only")
    assert why is not None and "tokens_only needs token ids" in why
    assert "digit" in excluded("icl", "abacus") and excluded("arithmetic", "abacus") is None


def test_bad_names_get_one_line():
    for key, bad, allowed in (("study.tasks", ["counting", "parity"], "counting, arithmetic, flip_flop"),
                              ("study.encodings", ["rope", "fire"], "none, learned, sinusoidal")):
        with pytest.raises(ValueError) as info:
            BOARD.specs("smoke", {key: bad})
        text = str(info.value)
        assert "\n" not in text and repr(bad[1]) in text and allowed in text


def test_seed_ranks_ties_and_failures():
    frame = pd.DataFrame({"encoding": ["a", "b", "c", "d"] * 2, "seed": [0] * 4 + [1] * 4,
                          "score": [0.9, 0.9, 0.2, 0.99, 0.5, 0.7, 0.6, float("nan")],
                          "ok": [True, True, True, False, True, True, True, True]})
    ranks = seed_ranks(frame, higher_better=True).set_index(["seed", "encoding"])["rank"]
    # seed 0: a, b tie for 1-2; c 3rd; d missed the ID criterion: last despite the best score
    assert ranks[0].to_dict() == {"a": 1.5, "b": 1.5, "c": 3.0, "d": 4.0}
    assert ranks[1].to_dict() == {"a": 3.0, "b": 1.0, "c": 2.0, "d": 4.0}  # NaN ranks last
    id_ranks = seed_ranks(frame, higher_better=True, use_ok=False).set_index(["seed", "encoding"])["rank"]
    assert id_ranks[0]["d"] == 1.0  # the ID ranking ignores the criterion
    lower = seed_ranks(frame.assign(ok=True), higher_better=False).set_index(["seed", "encoding"])["rank"]
    assert lower[0].to_dict() == {"a": 2.5, "b": 2.5, "c": 1.0, "d": 4.0}
    table = rank_table(seed_ranks(frame, True)).set_index("encoding")
    assert table.loc["b", "mean_rank"] == 1.25 and table.loc["d", "mean_rank"] == 4.0
    assert table.loc["d", "low"] == table.loc["d", "high"] == 4.0  # the same rank on every seed: no spread
    assert table.loc["a", "low"] == 1.5 and table.loc["a", "high"] == 3.0


def test_overall_mean_of_task_ranks_with_interval():
    def task(ranks_a, ranks_b):
        return pd.DataFrame({"encoding": ["a", "b"] * len(ranks_a), "seed": [s for s in range(len(ranks_a))
                                                                             for _ in range(2)],
                             "rank": [r for pair in zip(ranks_a, ranks_b) for r in pair]})
    table = overall({"x": task([1, 1, 2], [2, 2, 1]), "y": task([1, 1, 1], [2, 2, 2]),
                     "z": pd.DataFrame({"encoding": ["c"], "seed": [0], "rank": [1.0]})}).set_index("encoding")
    assert table.loc["a", "mean_rank"] == pytest.approx((4 / 3 + 1) / 2) and table.loc["a", "tasks"] == 2
    assert table.loc["a", "low"] == pytest.approx(1.0) and table.loc["a", "high"] == pytest.approx(1.5)
    assert table.loc["c", "tasks"] == 1 and table.loc["c", "mean_rank"] == 1.0


def test_paper_pairs_agree_disagree_inconclusive():
    order = P.PaperOrder("Toy 2024", "Table 1", "flip_flop", "ood", (("a",), ("b",), ("c",)), "")
    scores = pd.DataFrame({"encoding": ["a", "b", "c"] * 3, "seed": [0, 0, 0, 1, 1, 1, 2, 2, 2],
                           "ood": [0.9, 0.5, 0.6, 0.95, 0.5, 0.4, 0.92, 0.55, 0.9], "ok": True})
    rows = P.task_pairs(order, scores, higher_better=True)
    verdicts = {r["paper says"]: r["verdict"] for r in rows}
    assert rows[0]["ours"] == pytest.approx((0.4 + 0.45 + 0.37) / 3)  # a − b, the mean over seeds
    assert rows[0]["low"] < rows[0]["ours"] < rows[0]["high"]
    assert verdicts == {"a ahead of b": "agree", "a ahead of c": "inconclusive", "b ahead of c": "inconclusive"}
    flipped = {r["paper says"]: r["verdict"] for r in P.task_pairs(order, scores, higher_better=False)}
    assert flipped["a ahead of b"] == "disagree"
    tau, n = P.kendall(order, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert tau == pytest.approx(1.0) and n == 3
    tau, _ = P.kendall(order, {"a": 3.0, "b": 2.0, "c": 1.0})
    assert tau == pytest.approx(-1.0) and math.isnan(P.kendall(order, {"a": 1.0})[0])


def test_cost_reads_the_bench(tmp_path, capsys):
    from limitlab.cli import main

    assert main(["bench", "--preset", "leaderboard/smoke", "--preset-stacks", "1", "--seconds", "0.05",
                 "--repeat", "1", "--no-loop", "--threads", "1", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    labels = bench["rows"][0]["labels"]
    assert labels["task"] in ("counting", "flip_flop") and labels["tags"]["encoding"] == labels["position"]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench))
    specs = [s for s in BOARD.specs("smoke", {"study.seeds": 1}) if s.tags["encoding"] in ("learned",
                                                                                          labels["position"])]
    store = RunStore(tmp_path / "store")
    train_sweep(specs, store, TrainOptions(log_every=10**9))
    out = tmp_path / "report"
    BOARD.report(store, out, BOARD.report_options(bench=str(path)))
    cost = json.loads((out / "results.json").read_text())["sections"]["cost"]["results"]
    timed = [r for r in cost["cost"] if r["ms_per_step"] is not None and not math.isnan(r["ms_per_step"])]
    assert [(r["task"], r["encoding"]) for r in timed] == [(labels["task"], labels["position"])]
    assert timed[0]["ms_per_step"] > 0 and "CPU" in cost["bench_device"]


def test_quick_tests_every_task_out_of_distribution():
    from limitlab.studies.leaderboard.presets import board
    from limitlab.studies.leaderboard.tasks import FAMILIES

    assert all(family.ood_score is not None for family in FAMILIES.values())
    specs = {s.tags["task"]: s for s in board("quick", [0], ["variable_counting", "arithmetic", "icl"], ["learned"])}
    program = specs["variable_counting"].task
    assert set(program.splits()) == {"test", "long"} and program.splits()["long"].min_statements == 33
    assert specs["variable_counting"].model.max_len >= program.splits()["long"].seq_len()
    digits = specs["arithmetic"].task
    assert max(digits.train_digits) == 4 and list(digits.test_digits) == list(range(1, 8))
    icl = specs["icl"].task
    assert icl.curriculum.points_inc == 0 and 2 * icl.curriculum.points_start == icl.n_points
