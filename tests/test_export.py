"""Results as a table (`limitlab runs`) and a run exported to Hugging Face with the same logits."""

from __future__ import annotations

import json

import pytest
import torch

from limitlab.cli import main
from limitlab.nn.model import StackedTransformer
from limitlab.store import RunStore
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
    weights = store.load_weights(spec.run_id)
    ours = StackedTransformer(spec.model, 1, weights["embed.weight"].shape[0], weights["head.weight"].shape[-1])
    ours.load_state_dict({k: v[None] for k, v in weights.items()} | {"output_mask": ours.output_mask}, strict=True)
    ours.output_mask[0] = torch.arange(ours.n_outputs) < spec.task.n_outputs()
    ours.padded_outputs = True
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
