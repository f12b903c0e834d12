"""Every command the README shows works.

`make demo` / `make test` are checked as Makefile targets that exist and expand to the commands below (running
them here would recurse into this suite). Each `limitlab ...` line of the README's code blocks is run for real,
made small: runs use the `smoke` preset with few steps in a temporary store, and `bench` runs on tiny shapes.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from limitlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands(prefix: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(prefix)]


def shrink(args: list[str], store: Path, out: Path) -> list[str]:
    """Make a README command cheap without changing which code path it takes."""
    args = [("smoke" if a in ("quick", "paper") and i and args[i - 1] == "--preset" else a) for i, a in enumerate(args)]
    if args[0] == "run" and args[1] == "tasks":  # the generic study: its one option is study.seeds
        args += ["--set", "train.steps=10", "--set", "train.eval_size=64", "--quiet"]
    elif args[0] == "run":
        args += ["--set", "study.steps=10", "--set", "study.ms=[3]", "--quiet"]
    if args[0] == "bench":
        args += ["--d", "8", "--m", "3", "--models", "2", "--seconds", "0.05", "--repeat", "1", "--loop-models", "1"]
    if args[0] == "report":
        args += ["--out", str(out)]
    if args[0] in ("run", "status", "report", "runs", "plan"):
        args += ["--store", str(store)]
    return args


def test_readme_has_the_two_setup_commands():
    assert "make demo" in README and "make test" in README
    for target in ("demo", "test"):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
    demo = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "limitlab run counting --preset quick" in demo and "limitlab report counting" in demo
    assert "pytest" in subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_limitlab_commands():
    subcommands = {shlex.split(c)[1] for c in readme_commands("limitlab ")}
    assert {"studies", "run", "status", "report", "bench"} <= subcommands


@pytest.mark.parametrize("command", readme_commands("limitlab "))
def test_readme_command_runs(command, tmp_path, capsys):
    args = shrink(shlex.split(command)[1:], tmp_path / "store", tmp_path / "report")
    if args[0] in ("status", "report", "runs"):  # they read a store: fill it first the way the README does
        fill = ["run", "tasks", "--preset", "counting"] if args[:2] == ["report", "tasks"] else \
            ["run", "counting", "--preset", "smoke"]  # a report needs runs of its own study
        assert main(shrink(fill, tmp_path / "store", tmp_path)) == 0
    assert main(args) == 0, capsys.readouterr().err
    if args[0] == "report":
        assert (tmp_path / "report" / "index.html").exists()
