"""The example notebook runs top to bottom, as a reader would run it (its code cells in order, in one namespace)."""

from __future__ import annotations

import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_the_example_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # its store and report land here
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    assert len(cells) >= 5
    namespace: dict = {}
    for i, cell in enumerate(cells):
        exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}[{i}]", "exec"), namespace)  # noqa: S102
    assert namespace["summary"]["trained"] == 2
    assert namespace["logits"].shape[:2] == (1, 64)
    assert (tmp_path / "notebook-report" / "index.html").exists() and Path(namespace["index"]).exists()
    assert len(namespace["frame"]) == 2 and namespace["frame"]["result.test/accuracy"].notna().all()


STUDY_FILE = '''
from limitlab.spec import RunSpec
from limitlab.studies.base import Study


def tiny(seeds: int = 2) -> list[RunSpec]:
    return [RunSpec(study="mine", task={"name": "counting", "m": 3, "n": 12}, seed=s,
                    model={"d_model": 8, "n_heads": 2, "n_layers": 1, "max_len": 64},
                    train={"steps": 10, "batch_size": 8, "eval_size": 32}, tags={"seed": s}) for s in range(seeds)]


STUDY = Study("mine", "a study of my own", "nothing", {"tiny": tiny})
'''


def test_a_study_outside_the_package_runs_from_the_command_line(tmp_path, capsys):
    from limitlab.cli import main
    from limitlab.studies import STUDIES

    path = tmp_path / "my_study.py"
    path.write_text(STUDY_FILE)
    try:
        assert main(["run", str(path), "--preset", "tiny", "--store", str(tmp_path / "s"), "--quiet"]) == 0
        assert "mine/tiny: 2 runs" in capsys.readouterr().out
        assert main(["run", str(tmp_path / "missing.py"), "--store", str(tmp_path / "s")]) == 2
        assert "does not exist" in capsys.readouterr().err
    finally:
        STUDIES.pop("mine", None)
