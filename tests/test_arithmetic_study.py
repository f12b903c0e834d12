"""The arithmetic study: presets, the exact truncated-function rate, every claim's criterion on synthetic runs
(agree, disagree, inconclusive), and the smoke preset trained and reported end to end through the CLI."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from limitlab.cli import main
from limitlab.report.sections import ReportContext
from limitlab.studies import STUDIES
from limitlab.studies.arithmetic import claims as C
from limitlab.studies.arithmetic.study import PAPER_MODULI, PAPER_POSITIONS, train_name
from limitlab.studies.arithmetic.theory import p_prime, truncation_agreement

STUDY = STUDIES["arithmetic"]


def test_presets_expand_to_valid_specs():
    assert set(STUDY.presets) == {"smoke", "quick", "repro", "paper", "beyond"}
    paper = STUDY.specs("paper")
    assert {s.model.position for s in paper} == set(PAPER_POSITIONS)
    assert {(s.model.n_layers, s.model.n_heads, s.model.d_model) for s in paper} == {(6, 6, 384)}
    assert {s.task.modulus for s in paper} == {None, *PAPER_MODULI}
    assert {s.seed for s in paper} == {0, 1, 2} and len(paper) == len({s.run_id for s in paper})
    assert {s.train.batch_size for s in paper} == {64} and {s.optim.optimizer for s in paper} == {"adamw"}
    assert {s.task.width for s in paper} == {20}
    assert {s.task.seq_len() for s in paper if s.task.modulus is None} == {65}  # the paper: ~65 tokens
    quick = STUDY.specs("quick")
    assert {s.seed for s in quick} == set(range(5)) and len(quick) == 15  # ≥ 3 seeds of every run
    assert {s.tags["experiment"] for s in quick} == {"add/D≤4", "modadd100/D12", "modadd101/D12"}
    assert {s.train.eval_size for s in quick if s.task.modulus} == {9000}  # ~1,000 sequences per digit count
    more = STUDY.specs("quick", {"study.encodings": ["abacus", "rope"], "study.remainder_modulus": 11})
    assert {s.tags["experiment"] for s in more} - {s.tags["experiment"] for s in quick} == {
        "add/D≤4/reversed", "modadd11/D≤4/remainder"}
    repro = STUDY.specs("repro")
    assert {s.seed for s in repro} == {0, 1, 2} and len(repro) == len({s.run_id for s in repro})
    assert {s.task.format for s in repro} == {"aligned"}
    assert {s.model.position for s in repro} == {"learned", "rope", "t5", "none", "abacus"}
    assert {s.tags["experiment"] for s in repro} == {
        "add/D≤4/aligned", "add/D_ab4/aligned", "modadd100/D12/aligned", "modadd101/D12/aligned"}
    assert len(repro) == 33 and {s.task.op for s in STUDY.specs("repro", {"study.mul_steps": 10})} == {"add", "mul"}
    assert {s.model.position for s in repro if s.task.both_exact} == {"learned", "rope"}
    beyond = STUDY.specs("beyond")
    abacus = [s for s in beyond if s.model.position == "abacus"]
    assert abacus and max(abacus[0].task.test_digits) == 100 and max(abacus[0].task.train_digits) == 20
    assert train_name([4], True) == "D_ab4" and train_name([1, 2, 3, 4], False) == "D≤4"
    assert train_name([4, 5], False) == "D45"


def _brute(op: str, p: int | None, k: int, n: int) -> float:
    """The truncated function's rate on the n-digit test distribution, by enumerating every operand pair."""
    f = (lambda x, y: x + y) if op == "add" else (lambda x, y: x * y)
    hits = total = 0
    for a in range(10 ** (n - 1) if n > 1 else 0, 10**n):  # the exact-n operand (the op is symmetric)
        for b in range(10**n):
            true, short = f(a, b), f(a % 10**k, b % 10**k)
            hits += (true % p == short % p) if p else (true == short)
            total += 1
    return hits / total


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("p", [None, 7, 8, 12, 40, 51, 101])
def test_truncation_rate_is_exact(op, p):
    for k in (1, 2):
        for n in (1, 2, 3):
            assert truncation_agreement(op, p, k, n) == pytest.approx(_brute(op, p, k, n), abs=1e-12)


def test_truncation_rate_tends_to_one_over_p_prime():
    assert [truncation_agreement("add", 101, 2, n) for n in (3, 4)] == [0.0, 0.01]  # exact, not sampled
    assert truncation_agreement("add", 101, 2, 9) == pytest.approx(1 / 101, rel=1e-6)
    assert truncation_agreement("add", 100, 2, 9) == 1.0 and p_prime(100, 2) == 1 and p_prime(150, 4) == 3
    # the authors' count_valid_pairs (reference §2.6): p = 201, k = 4, 7 digits: 0.50%; mul p = 51, k = 3, 4 digits:
    # 2.40% (their test sets may draw operands slightly differently)
    assert truncation_agreement("add", 201, 4, 7) == pytest.approx(0.0050, abs=5e-5)
    assert truncation_agreement("mul", 51, 3, 4) == pytest.approx(0.0240, abs=1e-3)


# ---- every claim's criterion on synthetic runs of the quick preset's specs ---------------------------------------

def _context(results, preset: str = "quick") -> ReportContext:
    """A report context holding the preset's runs (3 seeds) with ``results(experiment, seed) -> (exact,
    truncated)`` (accuracy per test digit count n = 1..max; ``truncated`` None: same as exact); for the repro
    preset ``results(experiment, seed, position)``."""
    rows = []
    sets = {"study.seeds": 3, **({"study.mul_steps": 10} if preset == "repro" else {})}
    for spec in STUDY.specs(preset, sets):
        args = (spec.tags["experiment"], spec.seed) + ((spec.model.position,) if preset == "repro" else ())
        exact, trunc = results(*args)
        trunc = exact if trunc is None else trunc
        rows.append({**spec.flat(), "run_id": spec.run_id, "status": "done",
                     "result.test/accuracy": 1.0,
                     "result.lengths/accuracy_by_length": [None, *exact],
                     "result.lengths_truncated/accuracy_by_length": [None, *trunc],
                     "result.lengths/digit_accuracy_by_length": None})
    runs = pd.DataFrame(rows)
    return ReportContext(STUDY, None, runs, runs)


def _verdicts(results, preset: str = "quick") -> dict[str, str]:
    ctx = _context(results, preset)
    return {r.claim.id: r.verdict for e in STUDY.experiments for r in e.run(ctx).claims}


MOD101 = [1.0, 1.0, *(truncation_agreement("add", 101, 2, n) for n in range(3, 10))]  # the truncated function


def _ideal(exp, seed):
    """The paper's picture: APE exact 0 beyond 4 digits and 100% vs truncated; mod 100 right everywhere; mod 101
    at the truncated function's exact rate."""
    if exp == "add/D≤4":
        return [1.0] * 4 + [0.0] * 5, [1.0] * 9
    return ([1.0] * 9 if exp == "modadd100/D12" else MOD101), None


def test_claims_agree_on_the_papers_picture():
    v = _verdicts(_ideal)
    for claim in (C.APE_ZERO, C.APE_TRUNCATED, C.APE_TRUNC_VS_TRUE, C.MOD100, C.MOD100_VS_101, C.MOD_RATE):
        assert v[claim.id] == "agree", claim.id
    for claim in (C.INWARD_HOLE, C.REL_ADD, C.MUL_NOT, C.ADD_VS_MUL, C.ABACUS, C.REMAINDER):
        assert v[claim.id] == "not measured", claim.id  # the quick preset has no runs for them


def test_claims_disagree_when_the_opposite_happens():
    def opposite(exp, seed):
        if exp == "add/D≤4":  # generalizes (exact 60% beyond), truncated target worse than the true one
            return [1.0] * 4 + [0.6] * 5, [1.0] * 4 + [0.1 + 0.01 * seed] * 5
        if exp == "modadd100/D12":  # mod 100 collapses; mod 101 generalizes
            return [1.0, 1.0] + [0.05 + 0.01 * seed] * 7, None
        return [1.0, 1.0] + [0.8 + 0.01 * seed] * 7, None

    v = _verdicts(opposite)
    for claim in (C.APE_ZERO, C.APE_TRUNCATED, C.APE_TRUNC_VS_TRUE, C.MOD100, C.MOD100_VS_101, C.MOD_RATE):
        assert v[claim.id] == "disagree", claim.id


def test_a_model_that_is_never_right_does_not_match_the_truncated_rate():
    v = _verdicts(lambda exp, seed: ([1.0, 1.0] + [0.0] * 7, None) if exp == "modadd101/D12" else _ideal(exp, seed))
    assert v[C.MOD_RATE.id] == "disagree"  # 0 vs ~0.0085: −0.86 units of 1/p′, outside ±0.5


def test_claims_are_inconclusive_when_seeds_straddle_or_are_too_few():
    def spread(exp, seed):
        if exp == "add/D≤4":
            return [1.0] * 4 + [(0.0, 0.0, 0.03)[seed]] * 5, [1.0] * 4 + [(1.0, 0.95, 0.7)[seed]] * 5
        if exp == "modadd100/D12":
            return [1.0, 1.0] + [(0.99, 0.95, 0.8)[seed]] * 7, None
        return [1.0, 1.0, *(x + (0.0, 0.01, 0.0)[seed] for x in MOD101[2:])], None

    v = _verdicts(spread)
    for claim in (C.APE_ZERO, C.APE_TRUNCATED, C.MOD100, C.MOD_RATE):
        assert v[claim.id] == "inconclusive", claim.id

    def unlearned(exp, seed):  # seed 2's mod-101 run did not learn its training distribution
        exact, trunc = _ideal(exp, seed)
        return ([0.5, 0.5] + exact[2:], trunc) if (exp, seed) == ("modadd101/D12", 2) else (exact, trunc)

    v = _verdicts(unlearned)
    assert v[C.MOD_RATE.id] == v[C.MOD100_VS_101.id] == "inconclusive"  # 2 seeds left, 3 needed
    assert v[C.MOD100.id] == "agree"


def _repro_picture(exp, seed, position):
    """Xu et al.'s claim (1): a relative encoding generalizes addition outward (RoPE), multiplication fails with
    every encoding, learned positions have the D_ab4 inward hole; NoPE never learns (left out)."""
    if position == "none":
        return [0.05] * (4 if exp.startswith("mul") else 9), None
    if exp.startswith("mul"):
        return [1.0, 0.95, 0.0, 0.01 * seed], None
    if exp.startswith("modadd"):
        return ([1.0] * 9 if "100" in exp else [1.0, 1.0, *(truncation_agreement("add", 101, 2, n)
                                                                 for n in range(3, 10))]), None
    if "D_ab" in exp:
        return ([0.5 + 0.1 * seed] * 3 if position == "learned" else [1.0] * 3) + [1.0] * 6, None
    return [1.0] * 4 + [1.0 if position == "rope" else 0.1 * seed] * 5, None


def test_repro_claims_judge_encodings_and_multiplication():
    v = _verdicts(_repro_picture, "repro")
    for claim in (C.REL_ADD, C.MUL_NOT, C.ADD_VS_MUL, C.INWARD_HOLE, C.MOD100, C.MOD100_VS_101, C.MOD_RATE):
        assert v[claim.id] == "agree", claim.id
    ctx = _context(_repro_picture, "repro")
    section = next(e for e in STUDY.experiments if e.key == "encodings").run(ctx)
    rows = {(r["experiment"], r["position"]): r for r in section.results["summary"]}
    assert rows[("add/D≤4/aligned", "none")]["learned (≥ 90% in distribution)"] == "0 of 3"
    assert rows[("add/D≤4/aligned", "none")]["outward"] == "—"  # not learned: not counted
    assert rows[("add/D≤4/aligned", "rope")]["outward"].startswith("100.0%")
    assert rows[("add/D_ab4/aligned", "learned")]["inward"].startswith("60.0%")

    def rope_fails(exp, seed, position):  # no encoding generalizes addition: claim (1) disagrees
        exact, trunc = _repro_picture(exp, seed, position)
        return (exact[:4] + [0.0] * 5, trunc) if exp == "add/D≤4/aligned" else (exact, trunc)

    assert _verdicts(rope_fails, "repro")[C.REL_ADD.id] == "disagree"


def test_claims_name_their_numbers_and_what_they_leave_out():
    for claim in STUDY.claims:
        assert claim.id.startswith("arithmetic.") and claim.untested and claim.min_seeds >= 3
        assert any(ch.isdigit() for ch in claim.criterion)
    assert "[-0.5, 0.5]" in C.MOD_RATE.criterion


# ---- end to end --------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_smoke_trains_and_reports(tmp_path):
    store, out = tmp_path / "store", tmp_path / "report"
    assert main(["run", "arithmetic", "--preset", "smoke", "--store", str(store), "--quiet"]) == 0
    assert main(["report", "arithmetic", "--store", str(store), "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["schema"] == "limitlab.arithmetic.report/3" and r["runs"]["done"] == r["runs"]["used"] == 4
    assert (out / "index.html").exists() and all((out / f).exists() for f in r["figures"].values())
    html = (out / "index.html").read_text()
    assert all(name in html for name in r["figures"])  # every figure written is on the page
    assert [c["id"] for c in r["claims"]] == [c.id for c in STUDY.claims]
    assert {c["verdict"] for c in r["claims"]} <= {"inconclusive", "not measured"}  # one seed: never decided
    lengths = r["sections"]["absolute"]["results"]["lengths"] + r["sections"]["modulus"]["results"]["lengths"]
    assert {c["experiment"] for c in lengths} == {"add/D≤3", "modadd100/D≤3", "modadd101/D≤3"}
    assert all(0 <= c["mean"] <= 1 for c in lengths)
    pred = {(c["experiment"], c["digits"]): c["predicted"] for c in lengths}
    assert pred[("modadd100/D≤3", 6)] == 1.0 and pred[("modadd101/D≤3", 4)] == 0.0  # 10³·h ≢ 0 mod 101 for h < 10
    assert math.isclose(pred[("modadd101/D≤3", 6)], truncation_agreement("add", 101, 3, 6))
    digits = {d["experiment"]: d for d in r["sections"]["absolute"]["results"]["digits"]}
    assert len(digits["add/D≤3"]["accuracy"]) == 6 and len(digits["add/D≤3"]["accuracy"][0]) == 8  # n × slots
    from limitlab.store import RunStore

    runs = RunStore(store).to_dataframe("arithmetic")
    assert (runs["result.test/token_accuracy"] > 0.3).all()  # past chance (1/17) after 40 steps


def test_a_d_ab_run_is_judged_on_its_own_training_distribution():
    from limitlab.studies.arithmetic.analysis import _in_distribution
    from limitlab.tasks.arithmetic import ArithmeticTask

    exact = [None, 0.0, 0.0, 0.0, 0.95]  # the 4-digit length split lets the other operand be shorter
    dab = ArithmeticTask(format="aligned", width=10, train_digits=[4], both_exact=True, test_digits=[1, 2, 3, 4])
    assert _in_distribution(exact, dab, 0.02) == 0.02  # never learned D_ab4 itself: not counted as learned
    d4 = dab.model_copy(update={"both_exact": False})
    assert _in_distribution(exact, d4, 0.02) == 0.95
