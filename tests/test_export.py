"""Results as a table (`limitlab runs`) and a run exported to Hugging Face and TransformerLens with the same logits."""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch

from limitlab.cli import main
from limitlab.export import check_lens_exportable, load_transformer_lens
from limitlab.nn.model import StackedTransformer
from limitlab.rng import TEST, StackRNG
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.tasks.base import TaskStack
from limitlab.train.trainer import TrainOptions, train_runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import counting_spec

    store = RunStore(tmp_path_factory.mktemp("export") / "store")
    specs = [counting_spec(m=3, d=8, seed=0, steps=20, model={"norm": "pre"}),
             counting_spec(m=5, d=8, seed=1, steps=20, model={"norm": "pre"})]  # padded vocab and classes
    store.add(specs)
    train_runs(specs, store, TrainOptions(save_weights=True))
    return store, specs


def test_runs_table_as_csv_and_json(trained, tmp_path, capsys):
    store, specs = trained
    assert main(["runs", "--store", str(store.root)]) == 0
    csv = capsys.readouterr().out
    assert csv.splitlines()[0].startswith("run_id,") and "result.test/accuracy" in csv and len(csv.splitlines()) == 3
    out = tmp_path / "runs.json"
    assert main(["runs", "--store", str(store.root), "--format", "json", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert sorted(r["run_id"] for r in rows) == sorted(s.run_id for s in specs)


def test_export_to_hf_gives_the_same_logits(trained, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    store, specs = trained
    spec = specs[0]  # the smaller run of a padded stack: exported at its own sizes
    out = tmp_path / "hf"
    assert main(["export", spec.run_id, "--to", "hf", "--out", str(out), "--store", str(store.root)]) == 0
    hf = transformers.GPT2ForTokenClassification.from_pretrained(out).eval()
    assert hf.config.bos_token_id is None and hf.config.eos_token_id is None  # none in a task's small vocabulary
    assert hf.config.limitlab == {"run_id": spec.run_id, "task": spec.model_dump(mode="json")["task"]}
    ours = _our_model(store, spec)
    tokens = torch.randint(0, spec.task.vocab_size(), (4, spec.task.seq_len()))
    with torch.no_grad():
        expected = ours(tokens[None])[0][..., : spec.task.n_outputs()]
        got = hf(input_ids=tokens).logits
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-4)


def test_export_refuses_what_gpt2_cannot_hold(tmp_path, capsys):
    from tests.conftest import counting_spec

    store = RunStore(tmp_path / "s")
    spec = counting_spec(m=3, d=8, steps=2)  # norm 'none': not a GPT-2
    store.add([spec])
    train_runs([spec], store, TrainOptions(save_weights=True))
    assert main(["export", spec.run_id, "--store", str(store.root), "--out", str(tmp_path / "x")]) == 2
    assert "model.norm='none'" in capsys.readouterr().err
    assert main(["export", "0000000000000000", "--store", str(store.root)]) == 2


# TransformerLens: one tiny run per mapped encoding (the learned one is the padded run of `trained`), spread over
# the options the export maps: LayerNorm or none, GELU or ReLU, bias or none, causal or bidirectional, a RoPE base.
LENS_RUNS = {
    "sinusoidal": {"position": "sinusoidal", "norm": "none", "activation": "relu"},
    "none": {"position": "none", "norm": "pre", "bias": False},
    "rope": {"position": "rope", "norm": "pre", "causal": False, "position_options": {"rope_base": 500.0}},
    "alibi": {"position": "alibi", "norm": "pre", "n_heads": 4},
}


@pytest.fixture(scope="module")
def lens_trained(trained):
    from tests.conftest import counting_spec

    store, specs = trained
    runs = {"learned": specs[0]}
    for name, model in LENS_RUNS.items():
        runs[name] = counting_spec(m=3, d=16, seed=2, steps=20, model=model)
        store.add([runs[name]])
        train_runs([runs[name]], store, TrainOptions(save_weights=True))
    return store, runs


def _our_model(store: RunStore, spec: RunSpec) -> StackedTransformer:
    """The run's own model (M = 1) from its saved weights, padded classes masked as in training."""
    weights = store.load_weights(spec.run_id)
    ours = StackedTransformer(spec.model, 1, weights["embed.weight"].shape[0], weights["head.weight"].shape[-1])
    ours.load_state_dict({k: v[None] for k, v in weights.items()} | {"output_mask": ours.output_mask}, strict=True)
    ours.output_mask[0] = torch.arange(ours.n_outputs) < spec.task.n_outputs()
    ours.padded_outputs = True
    return ours.eval()


@pytest.mark.parametrize("encoding", ["learned", *LENS_RUNS])
def test_export_to_transformer_lens_gives_the_same_logits(lens_trained, encoding, tmp_path, capsys):
    pytest.importorskip("transformer_lens")
    store, runs = lens_trained
    spec = runs[encoding]
    assert spec.model.position == encoding
    out = tmp_path / "tl"
    assert main(["export", spec.run_id, "--to", "transformer-lens", "--out", str(out), "--store", str(store.root)]) == 0
    assert str(out) in capsys.readouterr().out
    lens = load_transformer_lens(out)
    assert type(lens).__name__ == "HookedTransformer" and not lens.training
    tokens = TaskStack([spec.task]).sample(StackRNG([spec.seed], stream=TEST), 8, 0).inputs[0]  # (B, T): task inputs
    with torch.no_grad():
        expected = _our_model(store, spec)(tokens[None])[0][..., : spec.task.n_outputs()]  # (B, T, classes)
        got, cache = lens.run_with_cache(tokens)
    torch.testing.assert_close(got, expected)  # float32 tolerance, every position and class
    assert got.shape == (*tokens.shape, spec.task.n_outputs())
    assert "blocks.0.attn.hook_pattern" in cache  # a real HookedTransformer: activations are hooked
    assert ("hook_pos_embed" in cache) == (encoding not in ("rope", "alibi"))  # those two add nothing to the input


def test_transformer_lens_export_refuses_what_it_cannot_hold(tmp_path, capsys):
    from tests.conftest import counting_spec

    store = RunStore(tmp_path / "s")
    cope = counting_spec(m=3, d=8, model={"norm": "pre", "position": "cope"})
    store.add([cope])
    assert main(["export", cope.run_id, "--to", "transformer-lens", "--store", str(store.root),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "position encoding 'cope'" in err and "allowed: learned, sinusoidal, none, rope, alibi" in err
    assert not (tmp_path / "x").exists()
    for model, words in [({"position": "learned+rope"}, "'learned+rope'"), ({"position": "t5"}, "'t5'"),
                         ({"position": "alibi", "causal": False}, "only for causal"), ({"norm": "post"}, "'post'")]:
        with pytest.raises(ValueError, match=re.escape(words)):
            check_lens_exportable(counting_spec(m=3, d=8, model=model))
    icl = RunSpec.model_validate({"study": "t", "task": {"name": "icl_linear"}, "model": {"d_model": 8, "n_heads": 2}})
    with pytest.raises(ValueError, match="vector inputs"):
        check_lens_exportable(icl)
    with pytest.raises(ValueError, match="not a transformer-lens export"):
        load_transformer_lens(tmp_path)


def test_transformer_lens_export_without_transformer_lens(trained, tmp_path, capsys, monkeypatch):
    store, specs = trained
    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # import fails, as when it is not installed
    assert main(["export", specs[0].run_id, "--to", "transformer-lens", "--store", str(store.root),
                 "--out", str(tmp_path / "x")]) == 2
    assert "pip install 'limitlab[lens]'" in capsys.readouterr().err


@pytest.mark.parametrize("to", ["hf", "transformer-lens"])
def test_export_refuses_a_file_for_out_and_a_run_that_is_not_done(trained, tmp_path, capsys, to):
    store, specs = trained
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    assert main(["export", specs[0].run_id, "--to", to, "--store", str(store.root), "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err and blocker.read_text() == "keep me"
    other = RunStore(tmp_path / "s")
    other.add([specs[0]])
    other.save_weights(specs[0].run_id, store.load_weights(specs[0].run_id))  # weights, but the run is not done
    for status in ("pending", "failed"):
        if status == "failed":
            other.fail(specs[0].run_id, "diverged")
        code = main(["export", specs[0].run_id, "--to", to, "--store", str(other.root), "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and f"is {status}, not done" in err
    assert not (tmp_path / "x").exists()


def test_export_writes_into_a_foreign_folder_only_with_force(trained, tmp_path, capsys):
    pytest.importorskip("transformers")
    store, specs = trained
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["export", specs[0].run_id, "--store", str(store.root), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main([*argv, "--force"]) == 0 and (out / "config.json").exists() and (out / "notes.txt").exists()
    assert main(argv) == 0  # a folder an export wrote is written again without --force
