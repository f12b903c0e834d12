"""Scaling study, emergence and grokking: the addition task's formats and metrics, the modular-addition split,
the analysis helpers, and the smoke presets trained end to end into a report section."""

from __future__ import annotations

import doctest
import json
import random

import pandas as pd
import pytest
import torch

from limitlab.report.html import Page
from limitlab.rng import TEST, StackRNG
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.studies.scaling import emergence as E
from limitlab.studies.scaling import grokking as G
from limitlab.studies.scaling.report import runs_by_experiment, write_report
from limitlab.tasks.addition_lm import ARROW, FORMATS, AdditionLMTask, edit_distance, render
from limitlab.tasks.base import TaskStack
from limitlab.tasks.modular_addition import ModularAdditionTask, split_order
from limitlab.train.trainer import train_runs


def _digits(x: int, n: int) -> list[int]:
    return [int(c) for c in str(x).zfill(n)]


def test_render_matches_integer_addition():
    rng = random.Random(0)
    for n in (1, 3, 5):
        for _ in range(20):
            a, b = rng.randrange(10 ** n), rng.randrange(10 ** n)
            ta, tb = torch.tensor([_digits(a, n)]), torch.tensor([_digits(b, n)])
            total = _digits(a + b, n + 1)
            prompt, plain = render(ta, tb, "plain")
            assert prompt[0].tolist() == [*_digits(a, n), 10, *_digits(b, n), 11]
            assert plain[0].tolist() == total
            assert render(ta, tb, "reverse")[1][0].tolist() == total[::-1]
            scratch = render(ta, tb, "scratchpad")[1][0].tolist()
            assert scratch[-(n + 2):] == [ARROW, *total]
            carry = 0
            for i in range(n):  # units first: a_i b_i carry_in s_i
                ai, bi = _digits(a, n)[n - 1 - i], _digits(b, n)[n - 1 - i]
                assert scratch[4 * i: 4 * i + 4] == [ai, bi, carry, (ai + bi + carry) % 10]
                carry = (ai + bi + carry) // 10
            assert scratch[4 * n] == carry


@pytest.mark.parametrize("fmt", FORMATS)
def test_addition_batch_is_teacher_forced(fmt):
    task = AdditionLMTask(digits=3, format=fmt)
    batch = TaskStack([task, task]).sample(StackRNG([0, 1]), 8, step=0)
    assert batch.inputs.shape == (2, 8, task.seq_len())
    assert batch.targets.shape == (2, 8, task.out_len)
    nxt = batch.positions[..., :-1] + 1  # the target at read-out k is the input token after it
    assert torch.equal(batch.inputs.gather(2, nxt), batch.targets[..., :-1])
    assert batch.inputs[0, 0, batch.positions[0, 0, 0]] == 11  # the first read-out is '='
    assert not torch.equal(batch.inputs[0], batch.inputs[1])  # per-model streams


def test_edit_distance_matches_a_reference():
    def ref(a, b):
        d = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, d[0] = d[0], i
            for j, y in enumerate(b, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
        return d[-1]

    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 3, (50, 6), generator=g), torch.randint(0, 3, (50, 6), generator=g)
    assert edit_distance(a, b).tolist() == [float(ref(x.tolist(), y.tolist())) for x, y in zip(a, b)]


def test_addition_metrics_on_perfect_and_one_wrong_outputs():
    task = AdditionLMTask(digits=2)
    batch = TaskStack([task]).sample(StackRNG([0]), 16, step=0)
    logits = torch.nn.functional.one_hot(batch.targets, 13).float() * 20  # (1, 16, 3, 13)
    m = task.metrics(logits, batch)
    assert m["accuracy"][0].item() == 16 and m["edit_distance"][0].item() == 0
    wrong = logits.clone()
    wrong[:, :, 1] = torch.nn.functional.one_hot((batch.targets[:, :, 1] + 1) % 10, 13).float() * 20
    m = task.metrics(wrong, batch)
    assert m["accuracy"][0].item() == 0 and m["edit_distance"][0].item() == 16  # one substitution each
    assert m["token_accuracy"][0].item() == 32
    assert m["token_accuracy_by_position"][0].tolist() == [[16.0, 0.0, 16.0]]


def test_modular_addition_split_is_fixed_and_disjoint():
    task = ModularAdditionTask(p=11, train_fraction=0.3)
    order = split_order(torch.tensor([5, 6]), 11)
    assert sorted(order[0].tolist()) == list(range(121)) and not torch.equal(order[0], order[1])
    train_ids = set(order[0, : task.n_train].tolist())
    assert task.n_train == 36
    stack = TaskStack([task])
    seen_train, seen_test = set(), set()
    for step in range(30):
        for rng, split, seen in ((StackRNG([5]), "train", seen_train), (StackRNG([5], TEST), "test", seen_test)):
            b = stack.split(split).sample(rng, 64, step)
            a, c = b.inputs[0, :, 0], b.inputs[0, :, 1]
            assert torch.equal(b.targets[0, :, 0], (a + c) % 11) and (b.inputs[0, :, 2] == 11).all()
            seen |= set((a * 11 + c).tolist())
    assert seen_train == train_ids  # the training split is exactly the trained-on set, whatever the stream
    assert not seen_test & train_ids and len(seen_test) > 60
    assert set(task.splits()) == {"test", "train"}


def test_analysis_helpers():
    assert doctest.testmod(E).failed == 0 and doctest.testmod(G).failed == 0
    runs = [{"p": 59, "lr": 3e-3, "seed": 0, "steps": 4000, "step_train": 200, "step_test": 2000, "censored": False,
             "delay_ratio": 10.0, "final_test_acc": 1.0}]
    assert G.claim(runs)["verdict"] == "agree"
    runs[0].update(step_test=None, censored=True, delay_ratio=None, final_test_acc=0.02)
    assert G.claim(runs)["verdict"] == "not measured"
    assert G.claim([])["verdict"] == "not measured"
    with pytest.raises(ValueError, match="widths"):
        E.emergence_specs([])


def _ladder(token_acc: list[float], length: int = 5) -> pd.DataFrame:
    rows = []
    for i, p in enumerate(token_acc):
        rows.append({"task": "addition", "d": 8 * (i + 1), "seed": 0, "N": 1000 * 4 ** i, "C": 1e9 * 4 ** i,
                     "answer_len": length, "exact_match": p ** length, "token_accuracy": p,
                     "token_probability": p * 0.9, "edit_score": p})
    return pd.DataFrame(rows)


def test_emergence_claim_on_synthetic_ladders():
    smooth = E.analyze(_ladder([0.2, 0.35, 0.5, 0.65, 0.8, 0.95]))  # per-token linear: EM = p^5 is sharp
    a = smooth["addition"]
    assert a["exact_match_sharper"] and a["continuous_smooth"] and a["pL_mean_abs_error"] < 1e-9
    assert E.claim(smooth)[0]["verdict"] == "agree"
    both = E.analyze(_ladder([0.3, 0.3, 0.3, 0.3, 0.95, 1.0]))  # the per-token metric jumps too
    assert not both["addition"]["continuous_smooth"] and E.claim(both)[0]["verdict"] == "disagree"
    flat = E.analyze(_ladder([0.1, 0.12, 0.14]))  # exact match never moves: the ladder cannot decide
    assert E.claim(flat)[0]["verdict"] == "not measured"


def _train(specs: list[RunSpec], store: RunStore) -> None:
    store.add(specs)
    groups: dict[tuple, list[RunSpec]] = {}
    for s in specs:
        groups.setdefault((s.task.stack_key(), s.model.model_dump_json()), []).append(s)
    for stack in groups.values():
        train_runs(stack, store)


def test_smoke_presets_train_and_report(tmp_path):
    specs = E.smoke() + G.smoke()
    assert all(s.tags["experiment"] in ("emergence", "grokking") for s in specs)
    store = RunStore(tmp_path / "store")
    _train(specs, store)
    groups = runs_by_experiment(store)
    page = Page("scaling")
    em, em_figs, em_claims, em_render = E.report_section(groups["emergence"], tmp_path / "out")
    gr, gr_figs, gr_claims, gr_render = G.report_section(groups["grokking"], tmp_path / "out")
    em_render(page)
    gr_render(page)
    ladder = em["analysis"]["addition"]["ladder"]
    assert [r["d"] for r in ladder] == [8, 16] and all(0 <= r["exact_match"] <= r["token_accuracy"] for r in ladder)
    assert all((tmp_path / "out" / f).exists() for f in [*em_figs.values(), *gr_figs.values()])
    assert set(em_figs) == {"metrics"} and set(gr_figs) == {"curves"}
    run = gr["runs"][0]
    assert run["steps"] == 120 and run["final_train_acc"] > run["chance"]  # p = 7: memorises past chance
    assert "exact match" in page.render() and "held-out" in page.render()
    assert set(em["analysis"]) == {"addition", "sparse_parity"} and len(em_claims) == 2
    parity = em["analysis"]["sparse_parity"]["ladder"]
    assert all(r["answer_len"] == 1 and r["exact_match"] == r["token_accuracy"] for r in parity)
    assert {c["verdict"] for c in em_claims} <= {"agree", "disagree", "not measured"} and gr_claims[0]["intuition"]
    index = write_report(store, tmp_path / "report")  # the study's frame calls the same sections
    results = json.loads((index.parent / "results.json").read_text())
    assert results["errors"] == {} and set(results["experiments"]) == {"emergence", "grokking"}
