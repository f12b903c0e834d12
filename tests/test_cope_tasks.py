"""Generator invariants of the CoPE study's tasks, each checked against a plain-Python reference."""

from __future__ import annotations

import pytest
import torch

from limitlab.rng import TEST, StackRNG
from limitlab.tasks import TASKS
from limitlab.tasks.base import TaskStack
from limitlab.tasks.flip_flop import FlipFlopTask, decode
from limitlab.tasks.selective_copy import BLANK, MARK, SelectiveCopyTask
from limitlab.tasks.text_lm import TextLMTask, corpus_files
from limitlab.tasks.variable_counting import VariableCountingTask, run_program
from limitlab.tasks.variable_counting import decode as decode_program


def draw(task, batch=64, seeds=(0, 1), step=0):
    return TaskStack([task] * len(seeds)).sample(StackRNG(list(seeds)), batch, step)


# ---- flip-flop ---------------------------------------------------------------------------------------------------

def test_flip_flop_answers_are_the_last_written_bit():
    task = FlipFlopTask(length=40, p_i=0.5)
    b = draw(task)
    for m in range(2):
        for r in range(b.inputs.shape[1]):
            text = decode(b.inputs[m, r])
            assert text[0] == "w" and text[-2] == "r" and len(text) == 40
            memory, reads = None, []
            for k in range(0, 40, 2):
                op, bit = text[k], text[k + 1]
                if op == "w":
                    memory = bit
                elif op == "r":
                    assert bit == memory  # the read bit in the stream is the last written one
                    reads.append(k // 2)
            assert b.mask[m, r].nonzero().flatten().tolist() == reads  # scored only after r
            targets = "".join("01"[t - 3] for t in b.targets[m, r].tolist())
            assert targets == text[1::2]  # read-out at each instruction predicts the next (bit) token
            assert b.positions[m, r].tolist() == list(range(0, 40, 2))


def test_flip_flop_instruction_mix_and_splits():
    task = FlipFlopTask(length=512)
    splits = task.splits()
    assert {k: v.p_i for k, v in splits.items()} == {"test": 0.8, "sparse": 0.98, "dense": 0.1}
    for name, p in (("test", 0.8), ("dense", 0.1)):
        b = draw(splits[name], batch=32)
        instr = b.inputs[..., 2:-2:2]  # the freely drawn instructions
        frac_i = (instr == 2).float().mean().item()
        assert abs(frac_i - p) < 0.02, (name, frac_i)
        assert abs((instr == 0).float().mean().item() - (1 - p) / 2) < 0.02
    with pytest.raises(ValueError):
        FlipFlopTask(length=31)


# ---- selective copy ----------------------------------------------------------------------------------------------

def test_selective_copy_targets_are_the_data_tokens_in_order():
    task = SelectiveCopyTask(vocab=5, n_tokens=6, blanks=20)
    b = draw(task)
    assert b.inputs.shape[-1] == task.seq_len() == 32
    for m in range(2):
        for r in range(b.inputs.shape[1]):
            seq = b.inputs[m, r].tolist()
            body, marks = seq[:26], seq[26:]
            assert marks == [MARK] * 6
            data = [t for t in body if t != BLANK]
            assert len(data) == 6 and all(2 <= t < 7 for t in data)
            assert b.targets[m, r].tolist() == data
            assert b.positions[m, r].tolist() == list(range(26, 32))
    # the data slots are spread over the whole body, not clustered: every slot is used in some sequence
    used = (b.inputs[..., :26] != BLANK).any(0).any(0)
    assert used.all()


def test_selective_copy_splits_change_only_the_blanks():
    task = SelectiveCopyTask()
    lengths = {k: v.seq_len() for k, v in task.splits().items()}
    assert lengths == {"test": 32 + 256, "dense": 32 + 128, "sparse": 32 + 512}


# ---- variable counting -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_vars", [1, 3, 5])
def test_counting_answers_are_right_and_no_statement_is_dropped(n_vars):
    task = VariableCountingTask(n_vars=n_vars, max_statements=60, op_weights=(1, 20, 10), max_value=4)
    b = draw(task, batch=48)
    assert b.inputs.shape[-1] == task.seq_len() == 3 * 60 + 2
    answers = []
    for m in range(2):
        for r in range(b.inputs.shape[1]):
            text = decode_program(b.inputs[m, r], n_vars)
            n_stmt = text.count(";")
            assert n_stmt == b.extras["n_statements"][m, r].item()  # every statement drawn is in the input
            assert text.startswith(tuple(f"{chr(97 + v)} = 0;" for v in range(n_vars)))
            value = run_program(text)
            assert value == b.targets[m, r, 0].item() <= 4
            answers.append(value)
            n_valid = int(b.valid[m, r].sum())
            assert b.positions[m, r, 0].item() == n_valid - 1  # read-out at the last question token
            assert (b.inputs[m, r, n_valid:] == 0).all() and (b.inputs[m, r, :n_valid] != 0).all()
    assert len(set(answers)) > 2  # increments do happen, and the cap holds (checked above)


def test_counting_longest_program_fits_exactly():
    task = VariableCountingTask(n_vars=2, min_statements=7, max_statements=7, op_weights=(1, 0, 0))
    b = draw(task, batch=8)
    assert b.valid.all()  # seven 3-token sets + 'print x' fill the sequence exactly
    assert all(run_program(decode_program(x, 2)) == 0 for x in b.inputs[0])


def test_counting_statement_mix_follows_the_weights():
    task = VariableCountingTask(n_vars=1, min_statements=200, max_statements=200, max_value=1000)  # no cap hit
    b = draw(task, batch=32, seeds=(3,))
    ops = [op.strip() for op in " ".join(decode_program(x, 1) for x in b.inputs[0]).split(";")[1:-1]]
    assert abs(sum(op == "pass" for op in ops) / len(ops) - 50 / 58) < 0.02
    assert abs(sum(op.endswith("++") for op in ops) / len(ops) - 7 / 58) < 0.02


def test_counting_bad_input():
    with pytest.raises(ValueError, match="min_statements"):
        VariableCountingTask(min_statements=10, max_statements=5)
    with pytest.raises(ValueError, match="max_tokens=99 exceeds"):
        VariableCountingTask(max_statements=10, max_tokens=99)


def test_counting_long_split_holds_only_programs_longer_than_training():
    task = VariableCountingTask(n_vars=2, max_statements=10, max_tokens=25, long_statements=20)
    assert list(task.splits()) == ["test", "long"]
    long = task.splits()["long"]
    assert long.seq_len() == 3 * 20 + 2 and long.splits() == {"test": long}
    b = draw(long, batch=64)
    lengths = b.extras["n_statements"]
    assert lengths.min() >= 11 and lengths.max() <= 20 and len(lengths.unique()) > 5
    assert all(run_program(decode_program(x, 2)) == t.item() for x, t in zip(b.inputs[0], b.targets[0, :, 0]))
    with pytest.raises(ValueError, match="long_statements=10 must exceed max_statements=10"):
        VariableCountingTask(max_statements=10, long_statements=10)


def test_counting_without_a_long_split_keeps_its_run_id():
    """The field came after runs were stored: unset, it stays out of the spec (and the run id)."""
    from limitlab.studies.cope.study import quick

    assert "long_statements" not in VariableCountingTask().model_dump()
    assert VariableCountingTask(long_statements=600).model_dump()["long_statements"] == 600
    first = next(s for s in quick() if s.task.name == "variable_counting")
    assert first.run_id == "1618c047748e9139"  # its id in stores trained before the field existed


def test_counting_shorter_length_refuses_a_program_that_does_not_fit():
    roomy = VariableCountingTask(max_statements=40, max_tokens=100)
    b = draw(roomy, batch=16)
    assert b.inputs.shape[-1] == 100 and all(run_program(decode_program(x, 3)) == t.item()
                                             for x, t in zip(b.inputs[0], b.targets[0, :, 0]))
    tight = VariableCountingTask(min_statements=40, max_statements=40, max_tokens=30)
    with pytest.raises(ValueError, match="does not fit max_tokens=30"):
        draw(tight, batch=4)


# ---- text LM -----------------------------------------------------------------------------------------------------

@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(10):
        (root / f"f{i:02d}.txt").write_bytes(bytes(range(65 + i, 65 + i + 1)) * 300)
    return root


def test_text_lm_windows_come_from_the_right_part(corpus):
    task = TextLMTask(corpus=str(corpus), length=32, heldout_every=5)
    test_files = [p.name for p in corpus_files(str(corpus), "test", 5)]
    assert test_files == ["f00.txt", "f05.txt"]
    b = draw(task, batch=16)
    assert (b.inputs[..., 1:] == b.targets[..., :-1]).all()
    train_bytes = {65 + i for i in range(10) if i % 5} | {10}
    assert set(b.inputs.unique().tolist()) <= train_bytes
    test = task.splits()["test"]
    bt = draw(test, batch=16)
    assert set(bt.inputs.unique().tolist()) <= {65, 70, 10}
    assert {k: v.seq_len() for k, v in task.splits().items()} == {"test": 32, "ctx1.5x": 48, "ctx2x": 64,
                                                                  "ctx2.5x": 80}


def test_text_lm_loss_by_position_is_a_vector(corpus):
    task = TextLMTask(corpus=str(corpus), length=8)
    b = draw(task, batch=4)
    out = torch.zeros(*b.targets.shape, 256)
    metrics = TextLMTask.metrics(out, b)
    s, c = metrics["loss_by_position"]
    assert s.shape == c.shape == (2, 8)
    assert torch.allclose(s / c, torch.full((2, 8), torch.log(torch.tensor(256.0)).item()))


def test_text_lm_skip_dirs_leaves_their_files_out(corpus):
    (corpus / "tests").mkdir()
    (corpus / "tests" / "t.txt").write_bytes(b"Z" * 300)
    names = [p.name for part in ("train", "test") for p in corpus_files(str(corpus), part, 5)]
    kept = [p.name for part in ("train", "test") for p in corpus_files(str(corpus), part, 5, ("tests",))]
    assert "t.txt" in names and "t.txt" not in kept and len(kept) == 10
    task = TextLMTask(corpus=str(corpus), length=8, heldout_every=5, skip_dirs=["tests"], extrapolation=[])
    assert list(task.splits()) == ["test"] and task.scored_tokens == 8
    for part in (task, task.splits()["test"]):
        assert ord("Z") not in draw(part, batch=64).inputs.unique().tolist()


def test_text_lm_stdlib_split_is_by_file_and_deterministic():
    train, test = corpus_files("stdlib", "train"), corpus_files("stdlib", "test")
    assert len(test) > 20 and len(train) > 8 * len(test) - 10
    assert not set(train) & set(test)
    assert corpus_files("stdlib", "test") == test


def test_text_lm_bad_corpus():
    with pytest.raises(ValueError, match="neither 'stdlib'"):
        TextLMTask(corpus="/no/such/corpus")


# ---- every task: evaluation does not depend on its batch size ----------------------------------------------------

@pytest.mark.parametrize("name,fields", [
    ("flip_flop", {"length": 16}),
    ("selective_copy", {"vocab": 4, "n_tokens": 3, "blanks": 5}),
    ("variable_counting", {"max_statements": 9}),
])
def test_rows_do_not_depend_on_batch_size(name, fields):
    stack = TaskStack([TASKS[name](**fields)] * 2)
    rng = StackRNG([5, 6], stream=TEST)
    whole = stack.sample(rng, 8, 3)
    part = stack.sample(rng.rows_from(4), 4, 3)
    assert torch.equal(whole.inputs[:, 4:], part.inputs)
    assert torch.equal(whole.targets[:, 4:], part.targets)
