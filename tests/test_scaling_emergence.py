"""Scaling study, emergence vs metric: the addition task's formats and metrics, the four claims on synthetic
evaluation ladders (agree, disagree, inconclusive, not measured), and the smoke preset trained into a section."""

from __future__ import annotations

import doctest

import pytest
import torch

from limitlab.rng import StackRNG
from limitlab.studies.scaling import emergence as E
from limitlab.studies.scaling import scratchpad as S
from limitlab.tasks import arithmetic_digits as D
from limitlab.tasks.arithmetic import ArithmeticTask
from limitlab.tasks.base import TaskStack
from tests.scaling_contexts import figures_on_page, memory_context, trained_context


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


def _records(p: float, em: float, length: int, steps: int = 2000) -> list[dict]:
    """A run's evaluations every 100 steps, ending at per-token accuracy p and exact match em (CE = −log p)."""
    return [{"step": s, "test/accuracy": em * s / steps, "test/token_accuracy": p * s / steps,
             "test/loss": -float(torch.tensor(max(p * s / steps, 1e-6)).log()),
             "test/edit_distance": (1 - p * s / steps) * length} for s in range(100, steps + 1, 100)]


def _verdicts(token_acc: list[float], length: int = 5, seeds: int = 3, em=None) -> dict[str, str]:
    """The four verdicts for a width ladder whose final per-token accuracy is ``token_acc`` (one per width) and
    exact match p^L (or ``em``)."""
    widths = [8 * (i + 1) for i in range(len(token_acc))]
    em = em if em is not None else [p ** length for p in token_acc]
    specs = E.emergence_specs(widths, digits=length - 2, seeds=seeds, steps=2000, eval_every=100)
    assert all(E.answer_len(s) == length for s in specs)
    final = {d: (p, e) for d, p, e in zip(widths, token_acc, em)}
    records = {}
    for s in specs:
        p, e = final[s.model.d_model]
        records[s.run_id] = _records(min(1.0, p + 0.002 * s.seed), e, length)
    section = E.EXPERIMENT.run(memory_context(specs, records))
    assert figures_on_page(section)
    return {r.claim.id.rsplit(".", 1)[1]: r.verdict for r in section.claims}


def test_claims_on_synthetic_ladders():
    assert doctest.testmod(E).failed == 0
    linear = [0.05 * i for i in range(21)][1:]  # p rises by 0.05 a width: smooth; EM = p^L
    v = _verdicts(linear, length=20)  # a long answer: p^20 covers most of its range in the last rungs
    assert v == {"em_jumps": "agree", "token_smooth": "agree", "sharper": "agree", "p_power_l": "agree"}
    v = _verdicts(linear, length=5)  # p^5 of a smooth p is not sharp enough on 20 rungs to jump
    assert v["em_jumps"] == "disagree" and v["token_smooth"] == "agree" and v["sharper"] == "agree"
    step = [0.33] * 10 + [1.0] * 10  # per-token accuracy jumps too: nothing is smooth
    v = _verdicts(step)
    assert v["token_smooth"] == "disagree" and v["em_jumps"] == "agree"
    v = _verdicts(linear, length=5, em=linear)  # exact match = p, far from p^5
    assert v["p_power_l"] == "disagree"
    assert set(_verdicts(linear, length=20, seeds=2).values()) == {"inconclusive"}  # two seeds
    assert set(_verdicts([0.3 + 0.001 * i for i in range(20)]).values()) == {"not measured"}  # EM never rises
    assert set(_verdicts(linear[-9:], length=5).values()) == {"not measured"}  # 9 widths: too few rungs


def test_spec_checks():
    with pytest.raises(ValueError, match="widths"):
        E.emergence_specs([])
    with pytest.raises(ValueError, match="10 evaluations"):
        E.emergence_specs([8], steps=500, eval_every=100)


def test_smoke_preset_trains_into_a_section(tmp_path):
    specs = E.smoke()
    assert {s.tags["task"] for s in specs} == {"addition", "sparse_parity"} and len({s.seed for s in specs}) == 3
    section = E.EXPERIMENT.run(trained_context(specs, tmp_path / "store"))
    ladders, runs = section.results["ladders"], section.results["runs"]
    assert len(ladders) == 6 and not any(r["counted"] for r in ladders)  # 2 widths (parity: 1): too few
    assert len(runs) == 9 and all(r["evaluations"] == 10 for r in runs)
    assert figures_on_page(section) and set(section.figures) == {"emergence_metrics.png", "emergence_ladder.png"}
    assert [r.claim for r in section.claims] == list(E.CLAIMS)
