"""The counting probe: prompt construction, the limitlab back-end on hand-wired and briefly trained models, and
the Hugging Face back-end on a tiny random GPT-2 built in the test (skipped without transformers)."""

from __future__ import annotations

import doctest
import importlib.util
import math
import sys

import pytest
import torch
from matplotlib.image import imread

from limitlab.studies.counting import probe as P
from limitlab.studies.counting.constructions import histogram_model
from limitlab.tasks.counting import CountingTask
from limitlab.train.trainer import StackTrainer


def test_items_pair_a_vocab_draw_with_its_binary_baseline():
    items = P.probe_items([2, 5, 9], n=30, n_prompts=6, seed=3)
    assert len(items) == 3 * 6 * 2
    assert items == P.probe_items([2, 5, 9], n=30, n_prompts=6, seed=3)  # deterministic
    for vocab, binary in zip(items[::2], items[1::2]):
        assert (vocab.condition, binary.condition) == ("vocab", "binary")
        assert len(vocab.symbols) == len(binary.symbols) == 30 and vocab.vocab == binary.vocab
        assert vocab.query == binary.query == vocab.symbols[-1]
        assert vocab.target == binary.target == vocab.symbols.count(vocab.query) == binary.symbols.count(binary.query)
        hits = [i for i, s in enumerate(vocab.symbols) if s == vocab.query]
        assert hits == [i for i, s in enumerate(binary.symbols) if s == binary.query]  # same positions
        assert len(set(binary.symbols)) <= 2 and max(vocab.symbols) < vocab.vocab
    with pytest.raises(ValueError, match=">= 2"):
        P.probe_items([1], n=5)


def test_prompt_and_answer_parsing():
    item = P.ProbeItem((0, 1, 0), 0, 2, 2, "vocab")
    assert P.build_prompt(["a", "b", "a"], "a") == 'a b a\nHow many times does "a" appear? Answer:'
    assert P.parse_count(" 7\n") == 7 and P.parse_count("about 12 or 13") == 12 and P.parse_count("no") is None
    assert P.default_words(3) == ["a", "b", "c"] and len(set(P.default_words(200))) == 200
    assert item.symbols.count(item.query) == item.target


def test_histogram_model_is_exact_until_its_directions_collide():
    # d = 4: capacity 3 symbol directions; symbol s shares a direction with s + 3 ("cyclic" overflow)
    model, task = histogram_model(d_model=4, m=6, n=24)
    df = P.run_probe(P.LimitlabCounter(model, task), vocab_sizes=[2, 3, 6], n=24, n_prompts=20)
    mae = df.set_index(["m", "condition"])["mae"]
    assert mae[(2, "vocab")] == 0 and mae[(3, "vocab")] == 0  # no collisions: exact
    assert mae[(6, "vocab")] > 0.5  # colliding symbols are counted together
    assert all(mae[(m, "binary")] == 0 for m in (2, 3, 6))  # q and q+1 never collide
    assert (df["unparsed"] == 0).all() and (df["prompts"] == 20).all()
    table = P.probe_table(df).set_index("m")
    assert table.loc[6, "gap"] == pytest.approx(mae[(6, "vocab")])


def test_probe_of_a_briefly_trained_model(make_spec, tmp_path):
    spec = make_spec(m=4, d=16, steps=30)
    trainer = StackTrainer([spec])
    trainer.run()
    counter = P.LimitlabCounter(trainer.model, spec.task)
    df = P.run_probe(counter, vocab_sizes=[2, 4], n=spec.task.length, n_prompts=16)
    assert len(df) == 4 and df["mae"].notna().all() and (df["mae"] >= 0).all()
    assert (df["unparsed"] == 0).all() and df["exact"].between(0, 1).all()
    with pytest.raises(ValueError, match="larger than the model's m=4"):
        P.run_probe(counter, vocab_sizes=[5], n=spec.task.length, n_prompts=1)
    path = P.plot_probe(df, tmp_path / "probe.png")
    assert imread(path).ndim == 3


def test_limitlab_counter_needs_a_qc_task():
    model, _ = histogram_model(d_model=8, m=4, n=12)
    with pytest.raises(ValueError, match="QC"):
        P.LimitlabCounter(model, CountingTask(kind="mfc", m=4, n=12))


def test_hf_counter_without_transformers_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` raise ImportError
    with pytest.raises(ImportError) as err:
        P.HFCounter(tmp_path)
    assert "transformers" in str(err.value) and "\n" not in str(err.value)
    assert P.main([str(tmp_path), "--n", "5"]) == 2  # the command line prints one line, no traceback


def test_docstring_examples():
    result = doctest.testmod(P, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def _tiny_gpt2(path) -> None:
    """A randomly initialised 1-layer GPT-2 and a word-level tokenizer, saved to ``path``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]", "[EOS]", *P.default_words(8), *map(str, range(40)),
             "How", "many", "times", "does", '"', "appear", "?", "Answer", ":"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(words), n_positions=128, n_embd=32, n_layer=1, n_head=2,
                     bos_token_id=2, eos_token_id=2, pad_token_id=1)
    GPT2LMHeadModel(cfg).save_pretrained(path)


def test_hf_probe_end_to_end(tmp_path):
    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("tokenizers") is None:
        pytest.skip("transformers not installed")
    _tiny_gpt2(tmp_path / "lm")
    counter = P.HFCounter(tmp_path / "lm", max_new_tokens=3)
    item = P.probe_items([3], n=5, n_prompts=1)[0]
    prompt = counter.prompt(item)
    assert prompt.endswith('appear? Answer:') and prompt.split("\n")[0].split() == [
        P.default_words(3)[s] for s in item.symbols]
    df = P.run_probe(counter, vocab_sizes=[2, 8], n=12, n_prompts=3)
    assert sorted(zip(df["m"], df["condition"])) == [(2, "binary"), (2, "vocab"), (8, "binary"), (8, "vocab")]
    assert df["unparsed"].between(0, 1).all() and (df["prompts"] == 3).all()
    assert all(math.isnan(v) or v >= 0 for v in df["mae"])
    with pytest.raises(FileNotFoundError, match="never downloads"):
        P.HFCounter(tmp_path / "missing")
