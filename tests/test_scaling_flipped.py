"""Scaling study, flipped-label ICL: the task's invariants (distinct exemplars, exact flip counts, consistent
queries, a fixed balanced prior, unrelated labels), its metrics on oracle models, the four claims on synthetic
results (agree, disagree, inconclusive), the smoke preset trained into a section, and the Hugging Face probe on a
tiny random GPT-2 built in the test (skipped without transformers)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from limitlab.rng import StackRNG
from limitlab.studies.scaling import flipped as F
from limitlab.tasks.base import TaskStack
from limitlab.tasks.flipped_icl import FlippedICLTask, prior_labels
from tests.scaling_contexts import figures_on_page, memory_context, trained_context

TASK = FlippedICLTask(n_symbols=20, n_labels=2, k=8, n_queries=4)


def _batch(split: str, b: int = 200):
    return TaskStack([TASK.splits()[split]]).sample(StackRNG([3]), b, step=0)


def _parts(batch):
    x, y = batch.inputs[0, :, 0::2], batch.inputs[0, :, 1::2]  # symbols (B, k+Q), shown labels (B, k+Q-1)
    return x, y


def test_prior_is_fixed_and_balanced():
    g = prior_labels(20, 2)
    assert torch.equal(g, prior_labels(20, 2)) and g.sum().item() == 10
    assert torch.bincount(prior_labels(30, 3)).tolist() == [10, 10, 10]


@pytest.mark.parametrize("split,flip", [("flip0", 0.0), ("flip25", 0.25), ("flip50", 0.5), ("flip100", 1.0)])
def test_flip_splits(split, flip):
    batch = _batch(split)
    x, y = _parts(batch)
    k, S = TASK.k, TASK.n_symbols
    g = prior_labels(S, 2)
    ex_x, ex_y = x[:, :k], y[:, :k] - S
    assert all(len(set(row.tolist())) == k for row in ex_x)  # distinct exemplar symbols
    assert ((ex_y != g[ex_x]).sum(1) == round(flip * k)).all()  # exactly round(p·k) flipped
    context = {}
    for b in range(x.shape[0]):
        context = dict(zip(ex_x[b].tolist(), ex_y[b].tolist()))
        for j in range(TASK.n_queries):
            q = x[b, k + j].item()
            assert batch.targets[0, b, k + j].item() - S == context[q]  # target = in-context label
            assert batch.extras["prior"][0, b, j].item() - S == g[q].item()
            assert batch.extras["flipped"][0, b, j].item() == (context[q] != g[q].item())


def test_sul_and_train_mixture():
    S, L = TASK.n_symbols, TASK.n_labels
    sul = _batch("sul")
    assert ((sul.targets >= S + L) & (sul.targets < S + 2 * L)).all()
    train = _batch("test", 2000)
    x, _ = _parts(train)
    shown = train.targets[0]  # (B, k+Q)
    prior_seq = (shown - S == prior_labels(S, L)[x]).all(1) & (shown < S + L).all(1)
    alt = (shown >= S + L).all(1)
    assert 0.4 < prior_seq.float().mean() < 0.7  # prior share 0.5 plus random maps that happen to agree
    assert 0.2 < alt.float().mean() < 0.3  # half of the per-sequence half


def _oracle(batch, follow: bool, vocab: int) -> torch.Tensor:
    """Logits that answer every read-out with the in-context label (follow) or with the prior."""
    tgt = batch.targets.clone()
    if not follow:
        tgt[..., -TASK.n_queries:] = batch.extras["prior"]
    return torch.nn.functional.one_hot(tgt, vocab).float() * 10


def test_metrics_on_oracles():
    V = TASK.vocab_size()
    batch = _batch("flip50")
    m = TASK.metrics(_oracle(batch, True, V), batch)
    share_flipped = batch.extras["flipped"].float().mean().item()
    ratio = {k: (s / c).item() for k, (s, c) in m.items()}
    assert ratio["context_accuracy"] == 1 and ratio["flip_follow"] == 1 and ratio["invalid_rate"] == 0
    assert ratio["prior_accuracy"] == pytest.approx(1 - share_flipped)
    m = TASK.metrics(_oracle(batch, False, V), batch)
    ratio = {k: (s / c).item() for k, (s, c) in m.items()}
    assert ratio["prior_accuracy"] == 1 and ratio["flip_follow"] == 0
    symbols = torch.nn.functional.one_hot(torch.zeros_like(batch.targets), V).float() * 10  # always symbol 0
    assert (TASK.metrics(symbols, batch)["invalid_rate"][0] == 4 * 200).all()


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="k=30"):
        FlippedICLTask(n_symbols=20, k=30)
    with pytest.raises(ValueError, match="flip=0.5"):
        FlippedICLTask(mode="train", flip=0.5)
    with pytest.raises(ValueError, match="flip=2"):
        F.flip_prompts(flip=2)


def _results(flip100: dict[int, list[float]], sul: dict[int, list[float]]) -> tuple[list, dict]:
    """Final results per run: accuracy vs the prior falling linearly to ``flip100`` at 100% flipped (1 at 0%),
    SUL accuracy ``sul``; per width, one value per seed."""
    specs = F.flipped_specs(sorted(flip100), seeds=len(next(iter(flip100.values()))))
    results = {}
    for s in specs:
        end, sul_acc = flip100[s.model.d_model][s.seed], sul[s.model.d_model][s.seed]
        res = {f"{split}/prior_accuracy": 1 - (1 - end) * int(split[4:]) / 100 for split in F.SPLITS}
        res |= {f"{split}/{m}": 0.0 for split in F.SPLITS for m in ("invalid_rate", "context_accuracy")}
        res |= {"flip100/flip_follow": 1 - end, "sul/prior_accuracy": 0.5, "sul/context_accuracy": sul_acc,
                "sul/invalid_rate": 0.0}
        results[s.run_id] = res
    return specs, results


def _verdicts(flip100, sul) -> dict[str, str]:
    specs, results = _results(flip100, sul)
    section = F.EXPERIMENT.run(memory_context(specs, results=results))
    assert figures_on_page(section)
    return {r.claim.id.rsplit(".", 1)[1]: r.verdict for r in section.claims}


def test_claims_on_synthetic_results():
    wei = _verdicts({8: [0.7, 0.75, 0.8], 64: [0.1, 0.05, 0.08]}, {8: [0.6, 0.65, 0.6], 64: [0.95, 0.97, 0.98]})
    assert wei == {"override": "agree", "small_keeps_prior": "agree", "by_size": "agree", "sul": "agree"}
    flat = _verdicts({8: [0.9, 0.92, 0.95], 64: [0.8, 0.85, 0.9]}, {8: [0.99, 0.98, 0.99], 64: [0.9, 0.92, 0.91]})
    assert flat == {"override": "disagree", "small_keeps_prior": "agree", "by_size": "agree", "sul": "disagree"}
    mixed = _verdicts({8: [0.2, 0.9, 0.5], 64: [0.1, 0.9, 0.4]}, {8: [0.6, 0.9, 0.7], 64: [0.7, 0.8, 0.7]})
    assert mixed["override"] == mixed["small_keeps_prior"] == "inconclusive"
    two = _verdicts({8: [0.7, 0.75], 64: [0.1, 0.05]}, {8: [0.6, 0.65], 64: [0.95, 0.97]})
    assert set(two.values()) == {"inconclusive"}  # two seeds: fewer than the claims need
    one = _verdicts({8: [0.7, 0.75, 0.8]}, {8: [0.6, 0.65, 0.6]})
    assert set(one.values()) == {"not measured"}  # one width: nothing to compare


def test_runs_of_two_budgets_in_one_store():
    specs, results = _results({8: [0.7, 0.75, 0.8], 64: [0.1, 0.05, 0.08]}, {8: [0.6] * 3, 64: [0.95] * 3})
    smoke = F.smoke()  # d = 8 and 16, seeds 0-2: the same (width, seed) keys at another budget
    results |= {s.run_id: {"flip100/prior_accuracy": 0.2, "sul/context_accuracy": 0.5} for s in smoke}
    section = F.EXPERIMENT.run(memory_context(specs + smoke, results=results))
    assert section.claims[0].verdict == "agree" and len(section.results["per_seed"]) == 6


def test_smoke_preset_trains_into_a_section(tmp_path):
    specs = F.smoke()
    section = F.EXPERIMENT.run(trained_context(specs, tmp_path / "store"))
    seeds = section.results["per_seed"]
    assert sorted({(r["d"], r["seed"]) for r in seeds}) == [(d, s) for d in (8, 16) for s in range(3)]
    for r in seeds:
        assert all(0 <= r[f"prior_acc_{s}"] <= 1 for s in F.SPLITS) and 0 <= r["invalid_rate"] <= 1
    assert max(r["test_accuracy"] for r in seeds) > 0.55  # past chance (0.5) on the pretraining mixture
    assert figures_on_page(section) and set(section.figures) == {"flipped_accuracy.png"}
    assert [r.claim for r in section.claims] == list(F.CLAIMS)


def test_flip_prompts():
    items = F.flip_prompts(k=4, flip=1.0, n_prompts=10)
    for it in items:
        lines = it["prompt"].split("\n")
        assert len(lines) == 10 and lines[-1] == "Output:"
        query = lines[-2].split(": ")[1]
        exemplars = [lines[2 * i].split(": ")[1] for i in range(4)]
        assert query not in exemplars
        for i, w in enumerate(exemplars):  # every label flipped
            truth = 0 if w in F.POSITIVE else 1
            assert lines[2 * i + 1] == f"Output: {('positive', 'negative')[1 - truth]}"
    assert F.flip_prompts(k=4, n_prompts=3, seed=1) == F.flip_prompts(k=4, n_prompts=3, seed=1)


def test_hf_probe_without_transformers_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match="transformers"):
        F.HFFlipProbe(tmp_path)
    assert F.main([str(tmp_path / "missing")]) == 2


def test_hf_probe_on_a_tiny_random_gpt2(tmp_path):
    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("tokenizers") is None:
        pytest.skip("transformers not installed")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]", "Input", "Output", ":", "positive", "negative", "foo", "bar", *F.POSITIVE, *F.NEGATIVE]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(tmp_path)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_positions=128, n_embd=16, n_layer=1, n_head=2)
                    ).save_pretrained(tmp_path)
    probe = F.HFFlipProbe(tmp_path)
    df = F.run_hf_probe(probe, k=4, n_prompts=6, flips=(0.0, 1.0))
    assert sorted(zip(df["labels"], df["flip"])) == [("semantic", 0.0), ("semantic", 1.0), ("sul", 0.0), ("sul", 1.0)]
    assert df["accuracy"].between(0, 1).all() and df["invalid_rate"].between(0, 1).all()
    pred, invalid = probe.score(F.flip_prompts(k=4, n_prompts=1)[0])
    assert pred in (0, 1) and isinstance(invalid, bool)
