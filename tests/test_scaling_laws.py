"""Scaling study part A: the frame (experiment contract, presets), the generators (markov_lm, text_lm on the stdlib,
sparse_parity), the laws analysis on a known surface, and the smoke presets trained end to end."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from limitlab.rng import StackRNG
from limitlab.studies.scaling import laws as L
from limitlab.tasks.base import TaskStack
from limitlab.tasks.markov_lm import MarkovLMTask, oracle_loss
from limitlab.tasks.sparse_parity import SparseParityTask
from limitlab.tasks.text_lm import TextLMTask, corpus_bytes, corpus_files

# ---- markov_lm ------------------------------------------------------------------------------------------------

def test_markov_entropy_rate_is_the_bayes_optimal_loss():
    task = MarkovLMTask(symbols=8, order=2, branching=3, concentration=0.7, length=48, language_seed=3)
    ch = task.chain()
    # π is stationary: π P = π
    nxt = (np.arange(ch.n_contexts)[:, None] * task.symbols + ch.succ) % ch.n_contexts
    moved = np.bincount(nxt.ravel(), weights=(ch.pi[:, None] * ch.probs).ravel(), minlength=ch.n_contexts)
    assert np.abs(moved - ch.pi).max() < 1e-10
    batch = TaskStack([task]).sample(StackRNG([5]), 400, step=0)
    # the true chain's loss on sampled text matches the closed-form entropy rate (sampling error ~0.01)
    assert oracle_loss(task, batch.inputs[0], batch.targets[0], batch.mask[0]) == pytest.approx(task.entropy_rate(),
                                                                                               abs=0.03)
    assert 0 < task.entropy_rate() < np.log(3)  # at most log(branching)


def test_markov_sequences_follow_the_chain_and_mask_the_first_targets():
    task = MarkovLMTask(symbols=6, order=1, branching=2, length=20)
    batch = TaskStack([task, task]).sample(StackRNG([0, 1]), 16, step=4)
    assert batch.inputs.shape == (2, 16, 20) and batch.targets.shape == (2, 16, 20)
    assert torch.equal(batch.inputs[..., 1:], batch.targets[..., :-1])  # next-token targets
    allowed = {(c, int(s)) for c in range(6) for s in task.chain().succ[c]}
    seq = torch.cat([batch.inputs, batch.targets[..., -1:]], -1)
    pairs = {(int(a), int(b)) for a, b in zip(seq[..., :-1].flatten(), seq[..., 1:].flatten())}
    assert pairs <= allowed
    assert batch.mask.all()  # order 1: every target has its full context
    task2 = MarkovLMTask(symbols=6, order=2, branching=2, length=20)
    assert not TaskStack([task2]).sample(StackRNG([0]), 4, step=0).mask[..., 0].any()
    again = TaskStack([task, task]).sample(StackRNG([0, 1]), 16, step=4)
    assert torch.equal(again.inputs, batch.inputs)  # counter-based: same step, same batch
    assert not torch.equal(batch.inputs[0], batch.inputs[1])  # different run seeds, different text


def test_markov_language_depends_on_language_seed_only_and_refuses_bad_settings():
    a, b = MarkovLMTask(language_seed=0), MarkovLMTask(language_seed=1)
    assert not np.array_equal(a.chain().succ, b.chain().succ)
    assert MarkovLMTask(language_seed=0).entropy_rate() == a.entropy_rate()
    with pytest.raises(ValueError, match="branching"):
        MarkovLMTask(symbols=4, branching=5)
    with pytest.raises(ValueError, match="order"):
        MarkovLMTask(order=3, length=3)


# ---- the stdlib corpus of the laws experiment (text_lm) ----------------------------------------------------------

def test_stdlib_windows_are_contiguous_bytes_of_their_part():
    task = TextLMTask(length=24, **L.STDLIB)
    assert list(task.splits()) == ["test"] and task.scored_tokens == 24
    batch = TaskStack([task]).sample(StackRNG([2]), 8, step=1)
    assert torch.equal(batch.inputs[..., 1:], batch.targets[..., :-1])
    skip = tuple(L.STDLIB["skip_dirs"])
    files = corpus_files("stdlib", "train", 20, skip) + corpus_files("stdlib", "test", 20, skip)
    root = Path(sysconfig.get_paths()["stdlib"])
    assert files and not any({"test", "tests", "idle_test"} & set(p.relative_to(root).parts) for p in files)
    train, test = (corpus_bytes("stdlib", part, 20, "cpu", skip).numpy().tobytes() for part in ("train", "test"))
    assert len(train) > 1_000_000 and len(test) > 10_000
    for row in batch.inputs[0]:
        assert bytes(row.tolist()) in train
    held = TaskStack([task.splits()["test"]]).sample(StackRNG([2]), 4, step=0)
    for row in held.inputs[0]:
        assert bytes(row.tolist()) in test


# ---- sparse_parity --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("control", ["onehot", "token"])
def test_sparse_parity_targets_prefix_and_frequencies(control):
    task = SparseParityTask(n_bits=10, k=3, subtasks=5, zipf=1.4, control=control)
    batch = TaskStack([task]).sample(StackRNG([0]), 4000, step=0)
    sub = batch.groups["subtask"][0]
    bits = batch.inputs[0, :, -10:]
    subsets = torch.tensor(task.subsets())
    expect = bits.gather(1, subsets[sub]).sum(1) % 2
    assert torch.equal(batch.targets[0, :, 0], expect)
    if control == "onehot":
        assert torch.equal(batch.inputs[0, :, :5].argmax(1), sub) and batch.inputs[0, :, :5].sum(1).eq(1).all()
    else:
        assert torch.equal(batch.inputs[0, :, 0], sub + 2)
    freq = torch.bincount(sub, minlength=5).double() / len(sub)
    assert np.allclose(freq.numpy(), task.frequencies(), atol=0.03)
    assert len({tuple(s) for s in task.subsets().tolist()}) == 5
    uniform = TaskStack([task.splits()["uniform"]]).sample(StackRNG([0]), 4000, step=0).groups["subtask"][0]
    assert np.allclose(torch.bincount(uniform, minlength=5).numpy() / 4000, 0.2, atol=0.03)


def test_sparse_parity_metrics_per_subtask():
    task = SparseParityTask(n_bits=6, k=2, subtasks=3)
    batch = TaskStack([task]).sample(StackRNG([1]), 300, step=0)
    perfect = torch.nn.functional.one_hot(batch.targets, 2).float() * 20  # (1, B, 1, 2) logits
    m = SparseParityTask.metrics(perfect, batch)
    sums, counts = m["accuracy_by_subtask"]
    assert torch.equal(sums, counts) and counts.sum() == 300
    assert m["loss_by_subtask"][0].max() < 1e-6
    with pytest.raises(ValueError, match="distinct"):
        SparseParityTask(n_bits=4, k=2, subtasks=7)


# ---- frame ----------------------------------------------------------------------------------------------------

def test_frame_presets_and_contract():
    from limitlab.studies import STUDIES
    from limitlab.studies import scaling as S

    study = STUDIES["scaling"]
    for exp in S.EXPERIMENTS:
        for level in S.LEVELS:
            assert f"{exp}-{level}" in study.presets
    specs = study.specs("laws-smoke")
    assert specs and all(s.study == "scaling" and s.tags["experiment"] == "laws" for s in specs)
    assert {s.tags["experiment"] for s in study.specs("smoke")} >= {"laws", "multitask"}
    with pytest.raises(ValueError, match="tags.experiment"):
        S.check_specs("multitask", specs)
    with pytest.raises(ValueError, match="study.nope"):
        study.specs("laws-quick", {"study.nope": 1})
    assert len(study.specs("laws-quick", {"study.corpora": ["markov"]})) == 32  # 8 sizes × 4 budgets


def test_every_listed_experiment_exists_and_meets_the_contract():
    from limitlab.studies import scaling as S

    missing = [e for e in S.EXPERIMENTS if not S.is_present(e)]
    assert not missing, f"scaling experiments without a module: {missing}"
    for exp in S.EXPERIMENTS:
        module = S.load(exp)
        for level in S.LEVELS:
            S.check_specs(exp, module.PRESETS[level]())


# ---- laws analysis on a known surface -------------------------------------------------------------------------

def test_laws_analysis_predicts_a_known_surface(tmp_path, monkeypatch):
    from limitlab.studies.scaling import laws_report as LR
    from limitlab.studies.scaling.laws import quick

    monkeypatch.setattr(LR, "N_BOOT", 8)
    specs = quick(corpora=("markov",))  # the quick ladder's (N, D, C) with a known noise-free surface
    floor = specs[0].tags["entropy_floor"]
    rows = [{"run_id": s.run_id, "status": "done", **{f"tags.{k}": v for k, v in s.tags.items()},
             "result.test/loss": floor + 30 / s.tags["n_params"] ** 0.5 + 200 / s.tags["tokens"] ** 0.4}
            for s in specs]
    results, figures, claims, render = LR.report_section(pd.DataFrame(rows), tmp_path)
    r = results["corpora"]["markov-order1"]
    assert r["holdout"]["compute_ratio"] >= 100
    assert r["holdout"]["L_ND"]["relative_error"] == pytest.approx(0, abs=1e-3)
    assert r["E_vs_floor"]["relative_error"] == pytest.approx(0, abs=1e-3)
    assert all((tmp_path / f).exists() for f in figures.values())
    verdicts = {c["claim"].split("] ")[1][:30]: c["verdict"] for c in claims}
    assert "agree" in verdicts.values() and len(claims) == 5


# ---- end to end -----------------------------------------------------------------------------------------------

def test_smoke_presets_train_and_report(tmp_path, monkeypatch):
    from limitlab.cli import main
    from limitlab.store import RunStore
    from limitlab.studies.scaling import laws_report as LR
    from limitlab.studies.scaling.report import write_report

    monkeypatch.setattr(LR, "N_BOOT", 2)
    store = str(tmp_path / "store")
    assert main(["run", "scaling", "--preset", "laws-smoke", "--store", store, "--quiet",
                 "--set", "study.steps=[10,30]"]) == 0
    assert main(["run", "scaling", "--preset", "multitask-smoke", "--store", store, "--quiet",
                 "--set", "study.steps=40"]) == 0
    index = write_report(RunStore(store), tmp_path / "report")
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results["errors"] == {}
    assert set(results["experiments"]) == {"laws", "multitask"}
    laws = results["experiments"]["laws"]["corpora"]
    assert set(laws) == {"markov-order1", "stdlib"}
    m = laws["markov-order1"]
    assert m["n_cells"] == 6 and all(c["loss"] < np.log(64) + 0.2 for c in m["cells"])  # near or below uniform
    mt = results["experiments"]["multitask"]
    assert len(mt["runs"]) == 2 and len(mt["runs"][0]["subtasks"]) == 3
    html = index.read_text()
    assert "Scaling laws that predict" in html and "multitask_curves.png" in html
