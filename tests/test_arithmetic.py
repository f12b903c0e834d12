"""The arithmetic task: digit arithmetic, every format against a plain-Python reference, distributions, truncated
target, 1/p′, padding, metrics and bad input."""

from __future__ import annotations

import math
import random

import pytest
import torch

from limitlab.rng import StackRNG
from limitlab.tasks import TASKS
from limitlab.tasks import arithmetic_digits as D
from limitlab.tasks.arithmetic import ArithmeticTask, predicted_accuracy
from limitlab.tasks.base import TaskStack

CASES = [
    dict(format="fixed", width=12), dict(format="fixed", width=12, op="mul"),
    dict(format="fixed", width=12, modulus=101), dict(format="fixed", width=12, op="mul", modulus=50),
    dict(format="reversed"), dict(format="reversed", op="mul"), dict(format="reversed", modulus=7),
    dict(format="scratchpad"), dict(format="scratchpad", op="mul"),
    dict(format="remainder", modulus=101), dict(format="remainder", modulus=13, op="mul"),
    dict(format="plain", width=12), dict(format="plain", width=12, op="mul"), dict(format="plain", width=12, modulus=7),
    dict(format="detailed", width=6),
    dict(format="aligned", width=12), dict(format="aligned", width=12, op="mul"),
    dict(format="aligned", width=12, modulus=101),
]


def reference(task: ArithmeticTask, a: int, b: int) -> str:
    """The sequence as text, written from Python ints and strings only (independent of the tensor code)."""
    k, p = task.truncation, task.modulus
    x, y = (a % 10**k, b % 10**k) if task.target == "truncated" else (a, b)
    res = x + y if task.op == "add" else x * y
    sym = "+" if task.op == "add" else "*"
    w = len(str(p - 1)) if p else 0
    if p:
        res %= p
    if task.format in ("fixed", "plain", "aligned"):
        wc = w if p else task.width + 1
        answer = f"{res:0{wc}d}"
        if task.format == "aligned":  # every number least significant digit first, zero-padded
            ra, rb = f"{a:0{task.width}d}"[::-1], f"{b:0{task.width}d}"[::-1]
            return f"^{ra}{sym}{rb}={answer[::-1]};"
        return f"^{a:0{task.width}d}{sym}{b:0{task.width}d}={answer[::-1] if task.format == 'fixed' else answer};"
    if task.format == "detailed":
        carry, steps = 0, ""
        for i in range(task.width):
            da, db = a // 10**i % 10, b // 10**i % 10
            steps += f"{da}{db}{carry}{(da + db + carry) % 10}"
            carry = (da + db + carry) // 10
        return f"^{a:0{task.width}d}+{b:0{task.width}d}={steps}{carry}|{res:0{task.width + 1}d};"
    ra, rb = str(a)[::-1], str(b)[::-1]
    if task.format == "reversed":
        return f"^{ra}{sym}{rb}={(f'{res:0{w}d}' if p else str(res))[::-1]};"
    if task.format == "scratchpad" and task.op == "add":
        carry, out = 0, ""
        for i in range(max(len(ra), len(rb))):
            carry = (a // 10**i % 10 + b // 10**i % 10 + carry) // 10
            out += str(carry)
        return f"^{ra}{sym}{rb}={out}|{str(res)[::-1]};"
    if task.format == "scratchpad":
        width = len(str(a)) + len(str(b))
        blocks = [f"{a * (b % 10**(j + 1)):0{width}d}"[::-1] for j in range(len(str(b)))]
        return f"^{ra}{sym}{rb}={'|'.join(blocks)};"

    def steps(v: int) -> str:
        s = str(v)
        return "".join(ch + f"{int(s[:i + 1]) % p:0{w}d}" for i, ch in enumerate(s))

    return f"^{steps(a)}{sym}{steps(b)}={res:0{w}d};"


def operands(task: ArithmeticTask, text: str) -> tuple[int, int]:
    """Parse a and b back out of a rendered sequence."""
    body = text[1:text.index("=")]
    sa, sb = body.split("+" if task.op == "add" else "*")
    if task.format in ("fixed", "plain", "detailed"):
        return int(sa), int(sb)
    if task.format == "aligned":
        return int(sa[::-1]), int(sb[::-1])
    if task.format == "remainder":
        step = 1 + len(str(task.modulus - 1))
        return int(sa[::step]), int(sb[::step])
    return int(sa[::-1]), int(sb[::-1])


def batch_of(tasks, n=64, step=0, seeds=None):
    stack = TaskStack(tasks)
    return stack.sample(StackRNG(seeds or list(range(len(tasks)))), n, step)


def test_digit_arithmetic_matches_python_ints():
    rnd = random.Random(0)
    xs = [rnd.randrange(10**rnd.randint(1, 40)) for _ in range(50)]
    ys = [rnd.randrange(10**rnd.randint(1, 40)) for _ in range(50)]
    a, b = D.to_digits(xs, 40), D.to_digits(ys, 40)
    assert D.from_digits(a) == xs
    assert D.from_digits(D.add_digits(a, b)) == [x + y for x, y in zip(xs, ys)]
    assert D.from_digits(D.mul_digits(a, b)) == [x * y for x, y in zip(xs, ys)]
    for p in (2, 7, 100, 101, 201):
        r = D.remainders(a, p)
        assert r[:, 0].tolist() == [x % p for x in xs]
        assert r[:, 5].tolist() == [(x // 10**5) % p for x in xs]
    assert D.n_digits(a).tolist() == [len(str(x)) for x in xs]
    assert D.from_digits(D.truncate(a, 4)) == [x % 10**4 for x in xs]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_every_sample_matches_the_reference_and_round_trips(case):
    # two models with different training digit counts share a stack (sequences pad to the longer)
    tasks = [ArithmeticTask(train_digits=[1, 2, 3], test_digits=[6], **case),
             ArithmeticTask(train_digits=[4, 5], test_digits=[6], **case)]
    batch = batch_of(tasks, n=48)
    assert batch.inputs.shape[-1] == max(t.seq_len() for t in tasks)
    for m, task in enumerate(tasks):
        for i in range(batch.inputs.shape[1]):
            text = D.render(batch.inputs[m, i])
            a, b = operands(task, text)
            assert text == reference(task, a, b)
            assert D.render(task.encode(a, b)) == text  # encode and parse round-trip
            n = int(batch.groups["length"][m, i])
            assert n in task.train_digits and max(len(str(a)), len(str(b))) == n
            # scored tokens: everything the model writes (after '=' except the given digits of 'remainder')
            written = D.render(batch.targets[m, i][batch.mask[m, i]])
            if task.format == "remainder":
                step = 1 + len(str(task.modulus - 1))
                expect = "".join(text[j + 1:j + step] for j in range(1, text.index("+" if task.op == "add"
                                                                              else "*"), step))
                expect += "".join(text[j + 1:j + step] for j in range(text.index("+" if task.op == "add" else "*")
                                                                       + 1, text.index("="), step))
                assert written == expect + text[text.index("=") + 1:]
            else:
                assert written == text[text.index("=") + 1:]
            # read-out k predicts target k from the position before it
            pos = batch.positions[m, i][batch.mask[m, i]]
            assert torch.equal(batch.inputs[m, i][pos + 1], batch.targets[m, i][batch.mask[m, i]])


def test_padding_is_invalid_and_never_scored():
    tasks = [ArithmeticTask(format="reversed", train_digits=[1, 2]), ArithmeticTask(format="reversed",
                                                                                      train_digits=[6])]
    batch = batch_of(tasks, n=32)
    pad = batch.inputs == D.PAD
    assert pad.any()
    assert torch.equal(batch.valid, ~pad)
    scored_tokens = batch.inputs.gather(-1, (batch.positions + 1).clamp(max=batch.inputs.shape[-1] - 1))
    assert not (scored_tokens[batch.mask] == D.PAD).any()
    # padding comes after END only
    end = (batch.inputs == D.END).float().argmax(-1, keepdim=True)
    assert torch.equal(pad, torch.arange(batch.inputs.shape[-1]) > end)
    assert ArithmeticTask(format="fixed").splits()["test"] is not None
    assert batch_of([ArithmeticTask(format="fixed")]).valid is None  # fixed width: no padding


def test_training_distributions():
    d_n = batch_of([ArithmeticTask(format="reversed", train_digits=[5])], n=256)
    d_ab = batch_of([ArithmeticTask(format="reversed", train_digits=[5], both_exact=True)], n=256)
    task = ArithmeticTask(format="reversed", train_digits=[5])
    pairs = [operands(task, D.render(row)) for row in d_n.inputs[0]]
    assert all(max(len(str(a)), len(str(b))) == 5 and a < 10**5 and b < 10**5 for a, b in pairs)
    assert any(len(str(a)) < 5 for a, _ in pairs) and any(len(str(b)) < 5 for _, b in pairs)  # either operand
    assert all(len(str(a)) == 5 and len(str(b)) == 5
               for a, b in (operands(task, D.render(row)) for row in d_ab.inputs[0]))
    union = batch_of([ArithmeticTask(format="reversed", train_digits=[1, 2, 3, 4])], n=1024)
    counts = torch.bincount(union.groups["length"][0], minlength=5)[1:]
    assert counts.min() > 200  # uniform over n (256 expected each)


def test_truncated_target_and_agreement_on_hand_checked_cases():
    t = ArithmeticTask(format="fixed", width=8, train_digits=[1, 2, 3], test_digits=[5], target="truncated")
    assert D.render(t.encode(1234, 5678)) == "^00001234+00005678=219000000;"  # 234 + 678 = 912, reversed
    t = ArithmeticTask(format="fixed", width=8, op="mul", train_digits=[1, 2], test_digits=[4], target="truncated")
    assert D.render(t.encode(1234, 5678)) == "^00001234*00005678=256200000;"  # 34 · 78 = 2652, reversed
    t = ArithmeticTask(format="fixed", width=8, modulus=100, train_digits=[1, 2], test_digits=[4],
                       target="truncated")
    assert D.render(t.encode(1234, 5678)) == "^00001234+00005678=21;"  # (34 + 78) mod 100 = 12 = true answer
    # mod 100 with k = 4: the truncated target always equals the truth; mod 101 (k = 4) almost never beyond 4
    for p, lo, hi in ((100, 1.0, 1.0), (101, 0.0, 0.05)):
        task = ArithmeticTask(format="fixed", width=12, modulus=p, train_digits=[4], test_digits=[6, 8])
        split = TaskStack([task]).split("lengths")
        batch = split.sample(StackRNG([0]), 512, 0)
        agree = task.metrics(torch.zeros(*batch.targets.shape, D.VOCAB), batch)["truncation_agreement"]
        assert lo <= float(agree[0] / agree[1]) <= hi
    # the agreement flag is exact: recompute it from the decoded operands
    task = ArithmeticTask(format="reversed", modulus=11, train_digits=[2], test_digits=[3, 4])
    lengths = task.splits()["lengths"]
    batch = batch_of([lengths], n=128)
    for i in range(128):
        a, b = operands(lengths, D.render(batch.inputs[0, i]))
        assert bool(batch.extras["trunc_agrees"][0, i]) == ((a % 100 + b % 100) % 11 == (a + b) % 11)


def test_predicted_accuracy_is_one_over_p_prime():
    assert predicted_accuracy(100, 4) == 1.0 and predicted_accuracy(50, 3) == 1.0 and predicted_accuracy(200, 3) == 1
    assert predicted_accuracy(101, 4) == pytest.approx(1 / 101)
    assert predicted_accuracy(150, 4) == pytest.approx(1 / 3)  # gcd(150, 10^4) = 50
    assert predicted_accuracy(201, 4) == pytest.approx(1 / 201)
    assert predicted_accuracy(51, 3) == pytest.approx(1 / 51)
    assert predicted_accuracy(200, 2) == pytest.approx(math.gcd(200, 100) / 200)  # 1/2: p' = 2


def test_truncated_split_has_the_same_operands():
    task = ArithmeticTask(format="fixed", width=10, train_digits=[1, 2, 3])
    stack = TaskStack([task])
    full, short = (stack.split(s).sample(StackRNG([3]), 64, 0) for s in ("lengths", "lengths_truncated"))
    eq = full.inputs[..., :23] == short.inputs[..., :23]  # everything up to and including '='
    assert eq.all()
    assert not torch.equal(full.targets, short.targets)
    assert sorted(task.splits()) == ["lengths", "lengths_truncated", "test"]
    assert sorted(ArithmeticTask(format="remainder", modulus=7).splits()) == ["lengths", "test"]


def test_metrics_per_digit_and_per_length():
    task = ArithmeticTask(format="reversed", train_digits=[1, 2, 3])
    batch = batch_of([task], n=200)
    perfect = torch.nn.functional.one_hot(batch.targets, D.VOCAB).float() * 10
    met = task.metrics(perfect, batch)
    acc = met["accuracy"][0] / met["accuracy"][1]
    assert acc.item() == 1.0
    wrong = perfect.clone()
    wrong[:, :, 0] = torch.roll(wrong[:, :, 0], 1, -1)  # every first answer digit wrong
    met = task.metrics(wrong, batch)
    digit = met["digit_accuracy"][0] / met["digit_accuracy"][1].clamp(min=1)
    assert digit[0, 0] == 0 and (digit[0, 1:][met["digit_accuracy"][1][0, 1:] > 0] == 1).all()
    assert met["accuracy"][0].item() == 0
    by_len, counts = met["digit_accuracy_by_length"]
    k = batch.targets.shape[-1]
    assert by_len.shape[1] == 4 * k
    assert counts[0].view(4, k)[1:, 0].tolist() == torch.bincount(batch.groups["length"][0], minlength=4)[1:].tolist()
    assert met["accuracy_by_length"][1][0, 1:].sum() == 200
    # the loss is on answer tokens only: logits at unscored read-out slots change nothing
    assert (~batch.mask).any()
    noisy = wrong + torch.randn_like(wrong) * 5 * (~batch.mask).unsqueeze(-1)
    assert not torch.equal(noisy, wrong)
    assert torch.equal(task.loss(noisy, batch), task.loss(wrong, batch))


def test_uniform_operands_and_no_length_splits():
    task = ArithmeticTask(format="plain", width=3, train_digits=[3], test_digits=[], uniform=True)
    assert list(task.splits()) == ["test"]
    batch = batch_of([task, task.model_copy(update={"uniform": False})], n=4000)  # one stack, per-model schemes
    for m, uniform in enumerate((True, False)):
        pairs = [operands(task, D.render(row)) for row in batch.inputs[m]]
        assert all(a < 1000 and b < 1000 for a, b in pairs)
        short_a = sum(a < 100 for a, _ in pairs) / len(pairs)  # uniform: 10%; D_3: 5%
        both_short = sum(a < 100 and b < 100 for a, b in pairs)  # uniform: 1%; D_3: never
        assert (0.08 < short_a < 0.12 and both_short > 10) if uniform else (0.03 < short_a < 0.07 and not both_short)


def test_edit_distance_matches_a_reference():
    def ref(a, b):
        d = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, d[0] = d[0], i
            for j, y in enumerate(b, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
        return d[-1]

    g = torch.Generator().manual_seed(0)
    for lp, lt in ((6, 6), (4, 7), (7, 3), (1, 5)):
        a, b = torch.randint(0, 3, (80, lp), generator=g), torch.randint(0, 3, (80, lt), generator=g)
        assert D.edit_distance(a, b).tolist() == [float(ref(x.tolist(), y.tolist())) for x, y in zip(a, b)]


def test_edit_distance_metric_counts_written_tokens_only():
    task = ArithmeticTask(format="reversed", train_digits=[1, 2, 3])
    batch = batch_of([task], n=64)
    perfect = torch.nn.functional.one_hot(batch.targets, D.VOCAB).float() * 10
    assert task.metrics(perfect, batch)["edit_distance"][0].item() == 0
    wrong = perfect.clone()
    wrong[:, :, 0] = torch.roll(wrong[:, :, 0], 1, -1)  # the first written token of every sequence wrong
    wrong = wrong + 50 * (~batch.mask).unsqueeze(-1) * torch.nn.functional.one_hot(torch.tensor(3), D.VOCAB)
    assert task.metrics(wrong, batch)["edit_distance"][0].item() == 64  # one substitution each; padding free


def test_bad_input_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="excludes both_exact"):
        ArithmeticTask(uniform=True, both_exact=True)
    with pytest.raises(ValueError, match="detailed.*addition only"):
        ArithmeticTask(format="detailed", op="mul")
    with pytest.raises(ValueError, match="needs a modulus"):
        ArithmeticTask(format="remainder")
    with pytest.raises(ValueError, match="scratchpad.*remainder"):
        ArithmeticTask(format="scratchpad", modulus=7)
    with pytest.raises(ValueError, match="do not fit width"):
        ArithmeticTask(format="fixed", width=5)
    with pytest.raises(ValueError, match="product does not fit"):
        ArithmeticTask(format="fixed", width=12, op="mul")
    with pytest.raises(ValueError, match="distinct digit counts"):
        ArithmeticTask(train_digits=[])
    with pytest.raises(ValueError):
        ArithmeticTask(modulus=1)
    with pytest.raises(ValueError, match="truncated"):
        ArithmeticTask(format="scratchpad", target="truncated")
    assert TASKS["arithmetic"] is ArithmeticTask
