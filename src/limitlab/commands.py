"""The commands behind ``limitlab``: each ``cmd_*`` takes the parsed arguments (see :mod:`limitlab.cli`).

A command raises :class:`~limitlab.cli.CliError` (or a ValueError) for bad input, which the command line prints as
one line; ``cmd_run`` returns its exit status (1 when a run of the sweep failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from limitlab.cli import CliError, _device, _open_store, _study, parse_sets

LONG_RUN_SECONDS = 3600.0  # a run estimated longer asks first (--yes: don't)


def cmd_studies(args: argparse.Namespace) -> None:
    from limitlab.studies import STUDIES

    for study in STUDIES.values():
        print(f"{study.name:<11} {study.question}")
        print(f"{'':<11} reproduces: {study.reproduces}")
        for preset in study.presets:
            note = study.preset_notes.get(preset, "")
            print(f"{'':<11}   --preset {preset:<6} {note}")


def cmd_run(args: argparse.Namespace) -> int:
    from limitlab.progress import SweepProgress
    from limitlab.sweep import prepare
    from limitlab.train.trainer import TrainOptions

    study = _study(args.study)
    specs = study.specs(args.preset, parse_sets(args.set or []))  # bad input is refused before the store is touched
    device = _device(args.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    store = _open_store(args.store)
    redo = _made_by_other_code(store, specs) if args.rerun_other_code else []
    plan = prepare(specs, store, max_models=args.max_stack, device=device, retry_failed=args.retry_failed,
                   write=False, redo=redo)
    todo, specs = plan.todo, plan.specs
    estimate = sum(st.estimate.cost_s for st in plan.stacks)
    print(f"{study.name}/{args.preset}: {len(specs)} runs, {plan.done} already done, {len(todo)} to train in "
          f"{len(plan.stacks)} stack(s) on {device} (roughly {_duration(estimate)}); store {args.store}")
    if estimate > LONG_RUN_SECONDS and not args.yes:
        question = (f"estimated {_duration(estimate)} of training on {device} (a rough model; `limitlab plan` "
                    "shows the stacks)")
        if not (sys.stdin.isatty() and input(f"{question}; start it? [y/N] ").strip().lower() in ("y", "yes")):
            raise CliError(f"{question}: not started; add --yes to start it, or shrink the sweep")
    if redo:  # only once the sweep is accepted: then their results are set aside and they train again
        from limitlab.provenance import code_version

        store.reopen(redo, f"rerun on request: made by other code than {code_version()['source']}")
        print(f"{len(redo)} finished run(s) made by other code will train again (their files kept as *.reopened)")
    plan.keep(store)
    if plan.failed and not args.retry_failed:
        print(f"{plan.failed} run(s) failed earlier and are not retried (add --retry-failed; `limitlab status --runs` "
              "shows why)")
    options = TrainOptions(device=device, compile=args.compile, amp=not args.no_amp, cuda_graphs=args.cuda_graphs,
                           chunk_models=args.chunk_models,
                           save_weights=args.save_weights or study.save_weights,
                           checkpoint_seconds=60.0 * args.checkpoint_minutes)
    watchers = _watchers(args, {s.run_id: s for st in plan.stacks for s in st.specs})
    progress = SweepProgress(sum(s.train.steps for s in todo), len(specs), len(specs) - len(todo),
                             interval=args.log_seconds, quiet=args.quiet, total_work=estimate)
    start = time.monotonic()
    if args.executor == "ray":
        try:
            import ray
        except ImportError:
            raise CliError("--executor ray needs Ray: pip install 'limitlab[ray]'") from None
        from limitlab.ray_executor import connect, run_ray

        if plan.stacks:
            print(connect(ray, args.ray_address))
        summary = run_ray(plan, store, options, progress=progress.update, retry_failed=args.retry_failed,
                          watchers=watchers)
        print(f"ray: trained on {summary['nodes']} node(s); {summary['workers_lost']} worker(s) lost and retried")
    else:
        from limitlab.executors import run_local

        summary = run_local(plan, store, options, progress=progress.update, retry_failed=args.retry_failed,
                            watchers=watchers)
    progress.close()
    for watch in watchers:
        watch.close()
    counts = store.counts(study.name).get(study.name, {})
    failed = sum(1 for v in store.status_of([s.run_id for s in specs]).values() if v == "failed")
    print(f"trained {summary['trained']} run(s), skipped {summary['skipped']} (claimed elsewhere), "
          f"failed {summary['failed']} in {time.monotonic() - start:.1f}s; study {study.name}: "
          + ", ".join(f"{k} {v}" for k, v in counts.items())
          + (f"; {failed} run(s) of this sweep failed: `limitlab status --runs` shows why, --retry-failed trains "
             "them again" if failed else ""))
    return 1 if failed else 0  # exit status 1: scripts and CI notice a sweep with failed runs


def _made_by_other_code(store, specs) -> list[str]:
    """The command's finished runs that other code made (or whose code is unknown)."""
    from limitlab.provenance import other_code, read_provenance

    status = store.status_of([s.run_id for s in specs])
    return other_code({run_id: read_provenance(store, run_id) for run_id, st in status.items() if st == "done"})


def _watchers(args: argparse.Namespace, specs: dict) -> list:
    """The live-curve sinks asked for (--tensorboard DIR, --wandb PROJECT)."""
    from limitlab.train.curves import TensorBoardSink, WandbSink

    out: list = []
    if args.tensorboard:
        out.append(TensorBoardSink(args.tensorboard, specs))
    if args.wandb:
        out.append(WandbSink(args.wandb, specs))
    return out


def cmd_plan(args: argparse.Namespace) -> None:
    """What ``limitlab run`` with the same arguments would train, and an estimate of its cost; trains nothing."""
    device = _device(args.device)
    from limitlab.store_readonly import NoStoreError

    try:
        store = _open_store(args.store, readonly=True)
    except NoStoreError:
        store = None
    study = _study(args.study)
    specs = study.specs(args.preset, parse_sets(args.set or []))
    from limitlab.sweep import prepare

    plan = prepare(specs, store, max_models=args.max_stack, device=device, retry_failed=args.retry_failed,
                   write=False)
    if args.json:
        print(json.dumps({"study": study.name, "preset": args.preset, "device": device,
                          "stacks": [{"runs": st.ids, "train": sorted(st.train), "chunk": st.chunk,
                                      "seq_len": st.estimate.seq_len, "steps": st.estimate.steps,
                                      "memory_bytes": st.estimate.memory, "seconds": st.estimate.cost_s}
                                     for st in plan.stacks],
                          "runs": plan.to_json()}, indent=1))
        return
    seeds = len({s.seed for s in specs})
    print(f"{study.name}/{args.preset}: {len(specs)} runs ({seeds} seed(s)), {plan.done} already done, "
          f"{len(plan.todo)} to train in {len(plan.stacks)} stack(s) on {device}"
          + ("" if store is not None else f" (no store at {args.store!r} yet)"))
    print(f"{'stack':>5} {'models':>6} {'train':>5} {'T':>6} {'steps':>8} {'memory':>9} {'estimate':>9}")
    for i, st in enumerate(plan.stacks):
        e = st.estimate
        print(f"{i:>5} {len(st.specs):>6} {len(st.train):>5} {e.seq_len:>6} {e.steps:>8} "
              f"{_size(e.memory):>9} {_duration(e.cost_s):>9}")
    total = sum(st.estimate.cost_s for st in plan.stacks)
    peak = max((st.estimate.memory for st in plan.stacks), default=0.0)
    print(f"estimated: {_duration(total)} of training, peak memory {_size(peak)} "
          f"(budget {_size(plan.profile.memory_bytes)}); a rough model of {plan.profile.name}, not a measurement")


def _size(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def cmd_status(args: argparse.Namespace) -> None:
    from limitlab.provenance import code_version, other_code, read_provenance

    store = _open_store(args.store, readonly=True)
    counts = store.counts()
    if not counts:
        print(f"store {args.store}: no runs")
        return
    keys = ["done", "running", "pending", "failed", "damaged", "stale"]
    print(f"{'study':<12}" + "".join(f"{k:>9}" for k in keys) + f"{'progress':>10}")
    for study, c in sorted(counts.items()):
        share = c.get("done", 0) / max(sum(c.values()), 1)
        print(f"{study:<12}" + "".join(f"{c.get(k, 0):>9}" for k in keys) + f"{share:>10.0%}")
    frame = store.to_dataframe()
    done = frame.loc[frame["status"] == "done", "run_id"].tolist()
    older = other_code({run_id: read_provenance(store, run_id) for run_id in done})
    if older:
        print(f"{len(older)} of {len(done)} finished run(s) were made by other code than this limitlab "
              f"({code_version()['source']}) or before runs kept their provenance; runs/<id>/provenance.json says "
              f"which, e.g. {', '.join(older[:3])}; `limitlab run ... --rerun-other-code` trains them again")
    problems = frame[frame["status"].isin(["failed", "damaged"])]
    for _, row in problems.iterrows():
        print(f"{row['status']} {row['run_id']} ({row['study']}): {row['error']}")
    if args.runs:
        columns = ["run_id", "study", "status"] + sorted(c for c in frame.columns if c.startswith("tags."))
        print(frame[columns].to_string(index=False))


def cmd_report(args: argparse.Namespace) -> None:
    import limitlab

    if args.all:
        _report_all(args)
        return
    if args.study is None:
        raise CliError("report needs a study name (limitlab studies lists them) or --all")
    study = _study(args.study)
    if study.report is None:
        raise CliError(f"study {study.name!r} has no report yet")
    sets = parse_sets(args.set or [])  # checked by write_report before it writes anything
    store = _open_store(args.store, readonly=True)
    if not sum(store.counts(study.name).get(study.name, {}).values()):
        raise CliError(f"no runs of study {study.name!r} in the store {args.store!r}; train them first: "
                       f"`limitlab run {study.name} --store {args.store}`")
    damaged = store.damaged(study.name)
    if damaged:
        print(f"limitlab: warning: {len(damaged)} run(s) with damaged results are left out of the report and will "
              f"train again on the next `limitlab run`: {', '.join(sorted(damaged))}", file=sys.stderr)
    if args.where:
        from limitlab.store_view import StoreView

        store = StoreView(store, parse_sets(args.where))
        if store.to_dataframe(study.name).empty:
            raise CliError(f"no runs of study {study.name!r} match --where {' '.join(args.where)}")
    index = limitlab.write_report(study.name, store, Path(args.out or Path("reports") / study.name), args.force, **sets)
    print(f"report written: {index}")


def _report_all(args: argparse.Namespace) -> None:
    from limitlab.report.all_claims import write_all

    if args.study is not None or args.where or args.set:
        raise CliError("--all writes every study's report with its default options; give no study, --where or --set")
    store = _open_store(args.store, readonly=True)
    print(f"report written: {write_all(store, Path(args.out or Path('reports') / 'all'), args.force)}")


def cmd_runs(args: argparse.Namespace) -> None:
    from limitlab.runs_table import TableError, write_table

    store = _open_store(args.store, readonly=True)
    frame = store.to_dataframe(args.study)
    if args.study is not None and frame.empty:
        held = sorted(store.counts())
        raise CliError(f"no runs of study {args.study!r} in the store {args.store!r}; it holds "
                       f"{', '.join(held) if held else 'no runs'}")
    if not args.out:
        if args.format == "parquet":
            raise CliError("--format parquet needs --out FILE")
        if args.format == "csv":
            frame.to_csv(sys.stdout, index=False)
        else:
            print(frame.to_json(orient="records", indent=1))
        return
    try:
        written = write_table(frame, args.format, args.out, force=args.force)
    except TableError as exc:
        raise CliError(str(exc)) from None
    print(f"{len(frame)} run(s) written to {written}")


def cmd_export(args: argparse.Namespace) -> None:
    from limitlab.export import export_run

    store = _open_store(args.store, readonly=True)
    print(f"exported: {export_run(store, args.run, args.to, args.out or Path('exported') / args.run, args.force)}")


def cmd_bench(args: argparse.Namespace) -> None:
    from limitlab.bench import main as bench_main

    bench_main(args)
