"""The ``limitlab`` command line: the parser, the one-line errors and the exit codes (commands: :mod:`.commands`).

Bad input exits with status 2 and one line ``limitlab: error: ...`` naming the bad value and what is allowed.
A full disk exits with status 1 and one line naming the file that could not be written (finished runs are kept).
A path that cannot be used (an unwritable run folder, a name longer than the filesystem allows) exits with status 2
and one line naming it. ``status``, ``runs``, ``plan``, ``report`` and ``export`` open the store read-only: they
never create or change anything in it.
``limitlab run`` exits with status 1 when a run of its sweep failed (its summary line says how many and how to see
why).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
import warnings
from typing import Any

DEFAULT_STORE = os.environ.get("LIMITLAB_STORE", "limitlab-store")


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``['model.d_model=32', 'study.seeds=[0,1]']`` -> dict; values are JSON when they parse, else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--set expects key=value, got {pair!r}")
        try:
            out[key] = json.loads(raw)
            if _depth(out[key]) > MAX_DEPTH:
                raise CliError(f"--set {key}=...: nested deeper than {MAX_DEPTH} levels")
        except RecursionError:
            raise CliError(f"--set {key}=...: nested deeper than {MAX_DEPTH} levels") from None
        except json.JSONDecodeError:
            if raw.strip()[:1] in ("[", "{", '"'):
                raise CliError(f"--set {key}={raw}: not valid JSON (a list looks like [8,16])") from None
            out[key] = raw
    return out


MAX_DEPTH = 8  # JSON nesting a --set value may have (no spec field nests deeper)
MAX_LINE = 300  # characters of an error line


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CliError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if not (name == "cpu" or name.startswith("cuda")):
        raise CliError(f"--device {name!r} is not supported; allowed: auto, cpu, cuda, cuda:N")
    return name


def _study(name: str):
    from limitlab.studies import find_study

    return find_study(name)


def _open_store(path: str, readonly: bool = False):
    """The store at ``path``; ``readonly`` (the read commands) creates and changes nothing, and refuses a path
    that holds no store with one line."""
    from limitlab.store import RunStore

    return RunStore(path, readonly=readonly)


class _Help(argparse.HelpFormatter):
    """--help shows each option's default (unless it is off or empty, or the text already says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), exit status 2, and the defaults shown in --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"limitlab: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from limitlab import commands as c

    parser = _Parser(prog="limitlab", description="Where does a small transformer stop generalizing?")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("studies", help="list studies and presets").set_defaults(fn=c.cmd_studies)

    run = sub.add_parser("run", help="train a study's preset (finished runs are skipped)")
    run.add_argument("study")
    run.add_argument("--preset", default="quick", help="smoke, quick, repro or paper (`limitlab studies`)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a spec field (model.d_model=32) or a preset option (study.seeds=3)")
    run.add_argument("--store", default=DEFAULT_STORE, help="the run store folder ($LIMITLAB_STORE)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--executor", choices=["local", "ray"], default="local", help="where stacks train")
    run.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                     help="the Ray cluster to train on (default: $RAY_ADDRESS, else a local Ray for this command)")
    run.add_argument("--max-stack", type=int, default=256, help="most models per stack")
    run.add_argument("--compile", action="store_true", help="torch.compile each stack")
    run.add_argument("--cuda-graphs", action="store_true", help="CUDA: capture each whole step in a CUDA graph")
    run.add_argument("--no-amp", action="store_true", help="CUDA: train in fp32 instead of bf16 autocast")
    run.add_argument("--chunk-models", type=int, default=0, metavar="N",
                     help="forward/backward N models at a time (0: automatic; CPU only chooses < stack size)")
    run.add_argument("--save-weights", action="store_true",
                     help="keep each finished run's weights (runs/<id>/weights.safetensors), for probes and export")
    run.add_argument("--retry-failed", action="store_true", help="train runs that failed earlier again")
    run.add_argument("--rerun-other-code", action="store_true",
                     help="train again the finished runs that another limitlab version made (see `limitlab status`)")
    run.add_argument("--checkpoint-minutes", type=float, default=5.0, metavar="MIN",
                     help="also checkpoint every MIN minutes of wall time (0: only train.checkpoint_every)")
    run.add_argument("--log-seconds", type=float, default=30.0, metavar="S",
                     help="without a terminal, print a progress line every S seconds")
    run.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    run.add_argument("--threads", type=int, default=0, metavar="N",
                     help="torch CPU threads (0: torch's default, one per core; on a busy machine 1 is often faster)")
    run.add_argument("--tensorboard", default=None, metavar="DIR",
                     help="also write live curves (train loss, eval metrics) as TensorBoard runs under DIR")
    run.add_argument("--wandb", default=None, metavar="PROJECT", help="also log live curves to this W&B project")
    run.add_argument("--yes", action="store_true",
                     help="start a sweep estimated at over an hour without asking (a batch job)")
    run.set_defaults(fn=c.cmd_run)

    plan = sub.add_parser("plan", help="runs, stacks, estimated time and memory of a `run`; trains nothing")
    plan.add_argument("study")
    plan.add_argument("--preset", default="quick", help="as for run")
    plan.add_argument("--set", action="append", metavar="KEY=VALUE", help="as for run")
    plan.add_argument("--store", default=DEFAULT_STORE, help="runs already done there are left out (read only)")
    plan.add_argument("--device", default="auto", help="the device to estimate for")
    plan.add_argument("--max-stack", type=int, default=256, help="most models per stack")
    plan.add_argument("--retry-failed", action="store_true", help="count failed runs as to train")
    plan.add_argument("--json", action="store_true",
                      help="one JSON object: the stacks, and every run with its id, status, stack and full spec")
    plan.set_defaults(fn=c.cmd_plan)

    status = sub.add_parser("status", help="runs done / running / failed per study")
    status.add_argument("--store", default=DEFAULT_STORE, help="the run store folder")
    status.add_argument("--runs", action="store_true", help="also list every run with its status and tags")
    status.set_defaults(fn=c.cmd_status)

    report = sub.add_parser("report", help="figures, results.json and index.html for a study (or --all)")
    report.add_argument("study", nargs="?", default=None)
    report.add_argument("--all", action="store_true",
                        help="every study's report and one page of every claim of every paper (default --out "
                        "reports/all)")
    report.add_argument("--store", default=DEFAULT_STORE, help="the run store folder")
    report.add_argument("--out", default=None, help="folder to write (default: reports/STUDY); replaced whole")
    report.add_argument("--force", action="store_true", help="replace --out even if no limitlab report wrote it")
    report.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                        help="report only the runs whose column (model.d_model, tags.variant, seed, ...) has this "
                        "value; repeatable")
    report.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="a report option (icl: eval_prompts=N, eval_full=true)")
    report.set_defaults(fn=c.cmd_report)

    runs = sub.add_parser("runs", help="one row per run (flattened spec, tags, final metrics) as a table")
    runs.add_argument("study", nargs="?", default=None)
    runs.add_argument("--format", choices=["csv", "json", "parquet"], default="csv")
    runs.add_argument("--out", default=None, help="file to write (default: standard output)")
    runs.add_argument("--force", action="store_true", help="replace --out if it exists")
    runs.add_argument("--store", default=DEFAULT_STORE, help="the run store folder")
    runs.set_defaults(fn=c.cmd_runs)

    export = sub.add_parser("export", help="a finished run's model as a Hugging Face or TransformerLens directory")
    export.add_argument("run", help="run id (see `limitlab status --runs`)")
    export.add_argument("--to", choices=["hf", "transformer-lens"], default="hf",
                        help="hf: GPT2ForTokenClassification; transformer-lens: HookedTransformer "
                        "(limitlab.export.load_transformer_lens)")
    export.add_argument("--out", default=None, help="directory to write (default: exported/RUN)")
    export.add_argument("--force", action="store_true", help="write into --out even if no limitlab export wrote it")
    export.add_argument("--store", default=DEFAULT_STORE, help="the run store folder")
    export.set_defaults(fn=c.cmd_export)

    bench = sub.add_parser("bench", help="throughput: stacked vs one model at a time")
    from limitlab.bench_args import add_arguments

    add_arguments(bench)
    bench.set_defaults(fn=c.cmd_bench)
    return parser


def _one_line(exc: BaseException) -> str:
    """The first line of an error, at most :data:`MAX_LINE` characters."""
    text = _first_line(exc)
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 1] + "…"


def _first_line(exc: BaseException) -> str:
    from pydantic import ValidationError

    from limitlab.studies.options import shown

    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "value"
            got = f" (got {shown(err['input'])})" if "input" in err and not isinstance(err["input"], dict) else ""
            parts.append(f"{loc}: {err['msg']}{got}")
        return "invalid setting: " + "; ".join(parts)
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # --help and usage errors end here, before torch is imported
    from pydantic import ValidationError

    from limitlab.store import StoreError

    checks = [("max_stack", 1), ("chunk_models", 0), ("checkpoint_minutes", 0), ("log_seconds", 0)]
    for flag, least in checks + ([("threads", 0)] if args.command == "run" else []):  # bench checks its own
        value = getattr(args, flag, least)
        if not value >= least:  # also refuses NaN
            parser.error(f"--{flag.replace('_', '-')} must be >= {least}, got {value}")
    warnings.showwarning = _warning_line
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        code = args.fn(args)  # cmd_run: 1 when a run of the sweep failed; the others return None (0)
    except (CliError, StoreError, ValidationError, ValueError) as exc:  # FolderError, TableError: ValueErrors
        print(f"limitlab: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        full = _disk_full(exc)
        if full is None and exc.errno in _PATH_ERRORS:  # a path that cannot be used: unwritable, too long, ...
            print(f"limitlab: error: {_one_line(OSError(f'{exc.strerror}: {exc.filename}'))}", file=sys.stderr)
            return 2
        if full is None:
            raise
        print(f"limitlab: error: disk full: {full.strerror} writing {full.filename}; finished runs are kept, free "
              "space and run the same command again to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"limitlab: {'terminated' if isinstance(exc, Terminated) else 'interrupted'}; finished runs are kept, "
              "the rest resume on the next run", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code or 0


_PATH_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                errno.ELOOP)


def _disk_full(exc: BaseException | None) -> OSError | None:
    """The disk-full error (ENOSPC, EDQUOT) that started ``exc``'s chain, preferring one that names its file
    (a write that failed while handing runs back is chained to the write that found the disk full)."""
    found, seen = None, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            if exc.filename is not None or found is None or found.filename is None:
                found = exc
        exc = exc.__context__
    return found


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``kill`` send), handled like Ctrl-C: runs handed back, exit 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"limitlab: warning: {message}", file=sys.stderr)


if __name__ == "__main__":  # python -m limitlab.cli: run the imported module's main, so that its CliError is the
    from limitlab.cli import main as imported_main  # class the commands raise (here it would be __main__.CliError)

    sys.exit(imported_main())
