"""The fault campaign: a multi-stack sweep is SIGKILLed 20 times and resumed after each; the end equals a sweep
that was never interrupted (bit for bit where a run kept its stack mate; see below).

The sweep: counting QC, d ∈ {4, 8, 16} (three model shapes, so three stacks) × seeds {0, 1} (two models per
stack), 60 steps, a checkpoint every 10 steps and an evaluation every 7 (not a divisor of 10: a run resumed
from step 10 must still evaluate at steps 14, 21, …). It runs in a child process, killed with SIGKILL at 20 instants:

================  ============================================================================================
kind              where the child is when it dies
================  ============================================================================================
steps             a seeded random delay after the start, or at the latest before training step n+1 of this
                  attempt (10 <= n < 20, two checkpoint intervals). The delay is drawn from 0.02 s to 0.1 s +
                  1.5 n steps' time (timed on the uninterrupted sweep), so about half of these kills come
                  before the step limit, on a slow machine or a fast one: anywhere in starting up, opening
                  the store, claiming, training, evaluating, writing a checkpoint or metrics
ckpt_first        about to write a run's first checkpoint (all the attempt's training is lost)
ckpt_torn         half of a checkpoint written to its temporary file (n=2: after one model of the stack saved
                  its checkpoint and before its stack mate did, so the stack resumes with its models at
                  different steps)
metrics_torn      half of a metrics.jsonl line appended
claim_open        inside the index transaction that claims a stack, before COMMIT (holding SQLite's write lock)
result_torn       half of a result.json written to its temporary file
result_unindexed  result.json in place, the index row not yet 'done'
================  ============================================================================================

The first attempt is ``ckpt_first``; the result kinds are used when a run's next step is its last checkpoint
interval (or when attempts run out); the rest come in a seeded shuffled order. No attempt but a result kind
advances a run by more than one checkpoint interval, and 11 ``steps`` attempts cannot cover the sweep's 18
intervals, so the sweep is still unfinished after the 20th kill however fast the machine is. The child
freezes itself (SIGSTOP) at a hooked instant and the test kills it there; the hooks only choose *when* to die,
the code that runs is the engine's. After every kill the store is checked: every checkpoint.safetensors loads and every
result.json is a complete result (files are replaced atomically), and a result.json once written is never
written again (a finished run is never trained twice). A real ``python -m limitlab.cli run`` then finishes the
sweep: every run's result.json, metrics.jsonl and final weights (``--save-weights``) are compared with the
uninterrupted sweep's, no checkpoint or temporary file may be left, and ``limitlab status`` must show every run
done, none running, stale, failed or damaged.

Bit-identical (result.json, every metrics.jsonl record, every weight tensor), every run: resumed any number of
times, from any checkpoint, with the two models of a stack at different steps, or after its stack mate finished
first (a kill between the two runs' result writes, which the result kinds cause on purpose). A resumed stack
keeps its composition and chunking (``limitlab.sweep``): a finished mate rides along, computed but not trained,
so PyTorch's kernels see the shapes they saw before the kill.

Start-up cost: importing torch and limitlab takes 1.5-3 s, so every attempt would pay it 20 times. Instead a
"zygote" process imports everything once (and runs no torch op, so its thread pools are not started) and forks a
child per attempt.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from limitlab.cli import main
from limitlab.store import RunStore
from limitlab.store_codec import decode_checkpoint
from limitlab.train.trainer import StackTrainer, TrainOptions

forking_linux = pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc/self/stat").exists(),
                                   reason="needs os.fork and /proc (Linux)")

STEPS, CKPT, EVAL = 60, 10, 7
KILLS = 20
SEED = 12
ARGS = ["run", "counting", "--preset", "smoke", "--set", "study.ds=[4,8,16]", "--set", "study.ms=[3]",
        "--set", 'study.tasks=["qc"]', "--set", "study.seeds=[0,1]", "--set", f"study.steps={STEPS}",
        "--set", f"train.checkpoint_every={CKPT}", "--set", f"train.eval_every={EVAL}", "--set", "train.eval_size=32",
        "--checkpoint-minutes", "0", "--save-weights", "--quiet"]

ZYGOTE = r'''
import contextlib, io, json, os, signal, sys, traceback

import torch
import limitlab.cli as cli
import limitlab.executors, limitlab.planner, limitlab.progress, limitlab.studies  # noqa: F401 - imported once
from limitlab import store as store_mod, store_files
from limitlab.store import RunStore
from limitlab.store_files import RunFiles
from limitlab.train.trainer import StackTrainer


def stop():
    """Freeze here; the test sees the state T and sends SIGKILL."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGSTOP)


def half(blob):
    def write(f):
        f.write(blob[: len(blob) // 2])
        f.flush()
        os.fsync(f.fileno())
        stop()
    return write


def arm(kind, n):
    count = [0]

    def nth():
        count[0] += 1
        return count[0] == n

    if kind == "steps":
        step = StackTrainer.train_step
        def train_step(self):
            count[0] += 1
            if count[0] > n:
                stop()
            return step(self)
        StackTrainer.train_step = train_step
    elif kind in ("ckpt_first", "ckpt_torn"):
        save = RunFiles.save_checkpoint
        def save_checkpoint(self, run_id, state):
            if kind == "ckpt_first" and not (self._dir(run_id) / "checkpoint.safetensors").exists():
                stop()
            if kind == "ckpt_torn" and nth():
                store_files._atomic_write(self._dir(run_id) / "checkpoint.safetensors",
                                          half(store_files.encode_checkpoint(state)))
            return save(self, run_id, state)
        RunFiles.save_checkpoint = save_checkpoint
    elif kind in ("result_torn", "result_unindexed"):
        write = store_mod._atomic_write
        def atomic_write(path, data):
            if path.name == "result.json" and kind == "result_torn":
                write(path, half(data))
            write(path, data)
            if path.name == "result.json":
                stop()
        store_mod._atomic_write = atomic_write
    elif kind == "metrics_torn":
        append = RunFiles.append_metrics
        def append_metrics(self, run_id, records):
            if nth():
                blob = "".join(json.dumps(r) + "\n" for r in records).encode()
                with open(self._dir(run_id) / "metrics.jsonl", "ab") as f:
                    half(blob)(f)
            return append(self, run_id, records)
        RunFiles.append_metrics = append_metrics
    elif kind == "claim_open":
        claim, transaction = RunStore.claim, RunStore._transaction
        inside = [False]
        def claiming(self, *args, **kwargs):
            inside[0] = True
            try:
                return claim(self, *args, **kwargs)
            finally:
                inside[0] = False
        @contextlib.contextmanager
        def txn(self):
            with transaction(self) as db:
                yield db
                if inside[0]:
                    stop()
        RunStore.claim, RunStore._transaction = claiming, txn
    elif kind:
        raise ValueError(kind)


while True:
    line = sys.stdin.readline()
    if not line:
        break
    cmd = json.loads(line)
    pid = os.fork()
    if pid == 0:
        fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        try:
            arm(cmd["kind"], cmd["n"])
            code = cli.main(cmd["argv"])
        except BaseException:
            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
    sys.stdin.readline()  # the test has seen the child exit, or killed it
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
'''


class Zygote:
    """A process that imported torch and limitlab once and forks one child per attempt."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.errors = workdir / "zygote.err"
        with open(self.errors, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)

    def _ask(self, line: str) -> int:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer.strip(), f"the zygote died: {self.errors.read_text()}"
        return int(answer)

    def start(self, argv: list[str], log: Path, kind: str | None = None, n: int = 0) -> int:
        return self._ask(json.dumps({"argv": argv, "log": str(log), "kind": kind, "n": n}))

    def reap(self) -> int:
        return self._ask("reap")

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _kill_when(pid: int, delay: float | None, limit: float = 240.0) -> str:
    """SIGKILL the child once it froze itself (a hook) or ``delay`` seconds passed; 'exited' if it ended first."""
    start = time.monotonic()
    while True:
        state = _state(pid)
        if state == "Z":
            return "exited"
        if state in "Tt":
            os.kill(pid, signal.SIGKILL)
            return "hook"
        waited = time.monotonic() - start
        if (delay is not None and waited >= delay) or waited > limit:
            os.kill(pid, signal.SIGKILL)
            return "timer" if waited <= limit else "hung"
        time.sleep(0.003)


def _inspect(store: Path) -> dict[str, dict]:
    """Per run: done (a complete result.json), the checkpoint's step, the temporary files; fails on a torn file."""
    out = {}
    for folder in sorted((store / "runs").iterdir()):
        info = {"done": False, "ckpt": None, "tmp": sorted(p.name.split(".")[1] for p in folder.glob(".*.tmp"))}
        if (folder / "result.json").exists():
            result = json.loads((folder / "result.json").read_bytes())  # a torn result.json raises here
            assert isinstance(result, dict) and result, f"{folder.name}: result.json is {result!r}"
            info["done"] = True
            stat = (folder / "result.json").stat()
            info["identity"] = (stat.st_ino, stat.st_mtime_ns)
        if (folder / "checkpoint.safetensors").exists():
            state = decode_checkpoint((folder / "checkpoint.safetensors").read_bytes())  # a torn one raises here
            info["ckpt"] = state["step"]
        assert not (folder / "checkpoint.safetensors.corrupt").exists(), f"{folder.name}: a checkpoint was torn"
        out[folder.name] = info
    return out


def _schedule_next(rng: random.Random, attempt: int, runs: dict[str, dict], results_left: list[str],
                   bag: list[tuple[str, int]]) -> tuple[str, int]:
    if attempt == 0:
        return "ckpt_first", 0
    near_end = any(not r["done"] and (r["ckpt"] or 0) >= STEPS - CKPT for r in runs.values())
    if results_left and ((near_end and rng.random() < 0.6) or KILLS - attempt <= len(results_left)):
        return results_left.pop(0), 0
    return bag.pop(0)


def _compare(got: dict, want: dict, where: str, differ: list[str]) -> None:
    """Every value equal, bit for bit (floats compared as Python floats: equal only when identical)."""
    if got.keys() != want.keys():
        differ.append(f"{where}: keys {sorted(got)} != {sorted(want)}")
        return
    differ.extend(f"{where} {key}: {got[key]!r} != {value!r}" for key, value in want.items() if got[key] != value)


def _records(store: Path) -> tuple[dict, dict]:
    runs = sorted((store / "runs").iterdir())
    results = {p.name: json.loads((p / "result.json").read_bytes()) for p in runs}
    metrics = {p.name: [json.loads(line) for line in (p / "metrics.jsonl").read_bytes().splitlines()] for p in runs}
    return results, metrics


def _campaign(zygote: Zygote, store: Path, step_seconds: float, log: list[str]) -> tuple[dict, dict, set]:
    """The 20 kills; returns the store's runs after the last, the identity of each result.json when first seen,
    and the runs that trained on after their stack mate had finished (riding along in their first stack)."""
    rng = random.Random(SEED)
    hooks = [("ckpt_torn", 1), ("ckpt_torn", 2), ("metrics_torn", 2), ("claim_open", 0)]
    steps = [("steps", rng.randint(CKPT, 2 * CKPT - 1)) for _ in range(KILLS - 1 - 4 - len(hooks))]
    bag = hooks + steps[:6]
    rng.shuffle(bag)
    bag += steps[6:]
    results_left = ["result_torn", "result_unindexed", "result_torn", "result_unindexed"]
    runs: dict[str, dict] = {}
    seen: dict[str, tuple] = {}
    kinds: dict[str, int] = {}
    regrouped: set[str] = set()
    for attempt in range(KILLS):
        kind, n = _schedule_next(rng, attempt, runs, results_left, bag)
        delay = rng.uniform(0.02, 0.1 + 1.5 * n * step_seconds) if kind == "steps" else None
        t0 = time.monotonic()
        child_log = store.parent / f"attempt{attempt}.log"
        how = _kill_when(zygote.start([*ARGS, "--store", str(store)], child_log, kind, n), delay)
        code = zygote.reap()
        runs = _inspect(store)
        for run_id, info in runs.items():
            if info["done"]:
                assert seen.setdefault(run_id, info["identity"]) == info["identity"], f"{run_id} finished twice"
        mates = _mates(store)
        regrouped |= {r for r, info in runs.items() if not info["done"] and runs[mates[r]]["done"]}
        tmp = sorted({t for r in runs.values() for t in r["tmp"]})
        log.append(f"{attempt:>2} {kind:<16} n={n:<2} delay={delay or 0:4.2f} {how:<6} {time.monotonic() - t0:4.1f}s "
                   f"done={sum(r['done'] for r in runs.values())} ckpt={[r['ckpt'] for r in runs.values()]} tmp={tmp}")
        assert how in ("hook", "timer") and code == -signal.SIGKILL, \
            "\n".join(log) + f"\n{how}, exit {code}: {child_log.read_text()}"
        kinds[kind] = kinds.get(kind, 0) + 1
    assert not results_left and kinds["steps"] >= 8, kinds
    return runs, seen, regrouped


def _mates(store: Path) -> dict[str, str]:
    """run_id -> the run_id of its stack mate (same d, the other seed)."""
    by_d: dict[int, list[str]] = {}
    for folder in sorted((store / "runs").iterdir()):
        by_d.setdefault(json.loads((folder / "spec.json").read_bytes())["tags"]["d"], []).append(folder.name)
    return {a: b for pair in by_d.values() for a, b in (pair, pair[::-1])}


@pytest.mark.slow
@forking_linux
def test_twenty_sigkills_then_resume_equal_an_uninterrupted_sweep(tmp_path):
    began = time.monotonic()
    zygote = Zygote(tmp_path)
    log: list[str] = []
    reference, store = tmp_path / "reference", tmp_path / "store"
    try:
        pid = zygote.start([*ARGS, "--store", str(reference)], tmp_path / "reference.log")
        assert _kill_when(pid, None) == "exited" and zygote.reap() == 0, (tmp_path / "reference.log").read_text()
        seconds = time.monotonic() - began
        log.append(f"reference sweep: {seconds:.1f}s")
        runs, seen, regrouped = _campaign(zygote, store, seconds / (3 * STEPS), log)  # seconds per stack step
    finally:
        zygote.close()
        print("\n".join(log))
    assert sum(r["done"] for r in runs.values()) < len(runs), "the sweep ended before the last kill"

    final = subprocess.run([sys.executable, "-m", "limitlab.cli", *ARGS, "--store", str(store)],
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0 and "Traceback" not in final.stderr, final.stderr
    print(f"reference + 20 kills + final resume: {time.monotonic() - began:.1f}s")

    got, want = _records(store), _records(reference)
    assert sorted(got[0]) == sorted(want[0]) and len(want[0]) == 6  # the same runs, none lost, none extra
    differ: list[str] = []
    assert regrouped, "no kill left a run to finish after its stack mate"
    for run_id in want[0]:  # every run, those whose mate finished first included
        _compare(got[0][run_id], want[0][run_id], f"{run_id} result", differ)
        steps = [(r["step"], sorted(r)) for r in want[1][run_id]]
        assert [(r["step"], sorted(r)) for r in got[1][run_id]] == steps, run_id  # no duplicated or missing record
        for i, (g, w) in enumerate(zip(got[1][run_id], want[1][run_id])):
            _compare(g, w, f"{run_id} metrics record {i}", differ)
        mine, theirs = (RunStore(s).load_weights(run_id) for s in (store, reference))
        assert mine.keys() == theirs.keys(), run_id
        differ.extend(f"{run_id} weights {name}" for name in theirs if not torch.equal(mine[name], theirs[name]))
    print(f"{len(want[0])} runs bit-identical, {len(regrouped)} of them resumed after their stack mate finished")
    assert not differ, differ
    for run_id, info in _inspect(store).items():  # done once; no checkpoint or temporary file left
        assert info["done"] and info["ckpt"] is None and not info["tmp"], (run_id, info)
        assert seen.get(run_id, info["identity"]) == info["identity"], f"{run_id} finished twice"

    with contextlib.redirect_stdout(io.StringIO()) as status:
        assert main(["status", "--store", str(store)]) == 0
    out = status.getvalue()
    assert RunStore(store).counts() == {"counting": {"pending": 0, "running": 0, "done": 6, "failed": 0,
                                                     "damaged": 0, "stale": 0}}
    assert out.splitlines()[1].split() == ["counting", "6", "0", "0", "0", "0", "0", "100%"], out
    assert not any(line.startswith(("damaged ", "failed ")) for line in out.splitlines()), out


def test_records_fall_on_each_runs_own_steps_resumed_or_not(make_spec):
    """Unit (what the campaign found): a run's log, eval and checkpoint steps are multiples of its own step count,
    never repeated, whether it resumes from step 15 or shares its stack with a longer run; the resumed records
    equal the uninterrupted ones."""
    train = {"eval_every": 10, "checkpoint_every": 10, "eval_size": 16}
    specs = [make_spec(m=3, d=8, seed=0, steps=20, train=train), make_spec(m=3, d=8, seed=1, steps=35, train=train)]
    a, b = (s.run_id for s in specs)
    options = TrainOptions(log_every=10)

    def records(trainer: StackTrainer) -> dict[tuple[str, str], list]:
        """{(kind, run_id): [the event's data, or for a checkpoint its step]}."""
        out: dict[tuple[str, str], list] = {}
        for e in trainer.events():
            if e.kind in ("log", "eval", "checkpoint"):
                out.setdefault((e.kind, e.run_id), []).append(e.data["state"]["step"] if e.kind == "checkpoint"
                                                              else e.data)
        return out

    whole = records(StackTrainer(specs, options=options))
    steps = {key: [r if isinstance(r, int) else r["step"] for r in v] for key, v in whole.items()}
    assert steps[("eval", a)] == [10, 20] and steps[("eval", b)] == [10, 20, 30, 35]  # the last: from the finish
    assert steps[("log", a)] == [10, 20] and steps[("log", b)] == [10, 20, 30, 35]
    assert steps[("checkpoint", a)] == [10] and steps[("checkpoint", b)] == [10, 20, 30]  # none at a run's last step

    cut = StackTrainer(specs, options=options)
    for _ in range(15):
        cut.train_step()
    saved = {event.run_id: event.data["state"] for event in cut._checkpoints()}
    resumed = records(StackTrainer(specs, saved.get, options))
    for (kind, run_id), values in resumed.items():
        if kind != "checkpoint":
            assert values == [r for r in whole[(kind, run_id)] if r["step"] > 15], (kind, run_id)
    assert ("checkpoint", a) not in resumed and resumed[("checkpoint", b)] == [20, 30]
