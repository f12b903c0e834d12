"""Scaling study, emergence and grokking: the addition task's formats and metrics, the modular-addition split,
the analysis helpers, and the smoke presets trained end to end into a report section."""

from __future__ import annotations

import doctest
import json

import pandas as pd
import pytest
import torch

from limitlab.report.html import Page
from limitlab.rng import TEST, StackRNG
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.studies.scaling import emergence as E
from limitlab.studies.scaling import grokking as G
from limitlab.studies.scaling import scratchpad as S
from limitlab.studies.scaling.report import runs_by_experiment, write_report
from limitlab.tasks import arithmetic_digits as D
from limitlab.tasks.arithmetic import ArithmeticTask
from limitlab.tasks.base import TaskStack
from limitlab.tasks.modular_addition import ModularAdditionTask, split_order
from limitlab.train.trainer import train_runs


def _task(digits: int, fmt: str = "reverse") -> ArithmeticTask:
    cfg = E.addition_task(digits, fmt)
    return ArithmeticTask.model_validate({k: v for k, v in cfg.items() if k != "name"})


def _expected(a: int, b: int, n: int, fmt: str) -> str:
    """The written answer from Python ints: plain / reversed sum of n + 1 digits, or the detailed scratchpad."""
    total = f"{a + b:0{n + 1}d}"
    if fmt == "plain":
        return total + ";"
    if fmt == "reverse":
        return total[::-1] + ";"
    carry, steps = 0, ""
    for i in range(n):  # units first: a_i b_i carry_in s_i
        ai, bi = a // 10**i % 10, b // 10**i % 10
        steps += f"{ai}{bi}{carry}{(ai + bi + carry) % 10}"
        carry = (ai + bi + carry) // 10
    return f"{steps}{carry}|{total};"


@pytest.mark.parametrize("fmt", S.FORMATS)
def test_addition_formats_are_teacher_forced_and_match_integer_addition(fmt):
    task = _task(3, fmt)
    assert list(task.splits()) == ["test"]
    batch = TaskStack([task, task]).sample(StackRNG([0, 1]), 64, step=0)
    assert batch.inputs.shape == (2, 64, task.seq_len()) and batch.targets.shape == (2, 64, task.slots())
    nxt = batch.positions + 1  # the target at read-out k is the input token after it
    assert torch.equal(batch.inputs.gather(2, nxt), batch.targets)
    assert (batch.inputs[0, :, batch.positions[0, 0, 0]] == D.EQ).all()  # the first read-out is '='
    assert not torch.equal(batch.inputs[0], batch.inputs[1])  # per-model streams
    for row, target in zip(batch.inputs[0], batch.targets[0]):
        text = D.render(row)
        a, b = int(text[1:4]), int(text[5:8])
        assert text[:9] == f"^{a:03d}+{b:03d}=" and D.render(target) == _expected(a, b, 3, fmt)


def test_addition_metrics_on_perfect_and_one_wrong_outputs():
    task = _task(2)
    batch = TaskStack([task]).sample(StackRNG([0]), 16, step=0)
    logits = torch.nn.functional.one_hot(batch.targets, D.VOCAB).float() * 20  # (1, 16, 4, 17): 3 digits + END
    m = task.metrics(logits, batch)
    assert m["accuracy"][0].item() == 16 and m["edit_distance"][0].item() == 0
    wrong = logits.clone()
    digit = batch.targets[:, :, 1] - D.DIGIT0
    wrong[:, :, 1] = torch.nn.functional.one_hot((digit + 1) % 10 + D.DIGIT0, D.VOCAB).float() * 20
    m = task.metrics(wrong, batch)
    assert m["accuracy"][0].item() == 0 and m["edit_distance"][0].item() == 16  # one substitution each
    assert m["token_accuracy"][0].item() == 48
    assert m["digit_accuracy"][0].tolist() == [[16.0, 0.0, 16.0, 16.0]]


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
