"""Train a stack of runs in one loop: one forward/backward/update step trains every model of the stack.

Runs in a stack share the model shape, batch size and task kind; they may differ in task parameters
(vocabulary, length — padded), seed, optimizer settings and step budget. Each model keeps its own step
counter, data stream and learning-rate schedule, so its result does not depend on its stack mates: every
number stored for a run (losses, metrics, its final training loss) is taken at its own steps.

The trainer writes nothing itself: :meth:`StackTrainer.events` yields :class:`~limitlab.train.events.Event` s
(log, eval, checkpoint, finish, fail, heartbeat) for a sink to record. Checkpoints are per run (that model's
slice of the weights and optimizer state plus its step), so a killed sweep resumes exactly, even if the runs
are regrouped into different stacks.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

import torch

from limitlab import provenance
from limitlab.nn.model import StackedTransformer
from limitlab.rng import TRAIN, StackRNG
from limitlab.spec import RunSpec
from limitlab.tasks.base import Batch, TaskStack
from limitlab.train import chunking, fast
from limitlab.train.events import Event, StoreSink
from limitlab.train.metrics import Result, evaluate
from limitlab.train.optim import StackedAdam
from limitlab.train.resume import load_model_state, misfit

CheckpointSource = Callable[[str], "dict | None"]  # run_id -> saved state, or None


@dataclass(frozen=True)
class TrainOptions:
    """How to train (never what): none of these change a run's results beyond float rounding."""

    device: str = "cpu"
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False  # torch.compile the model's forward (once per stack shape; see train/fast.py)
    cuda_graphs: bool = False  # CUDA: capture the whole step (data, forward, backward, optimizer) in a CUDA graph
    chunk_models: int = 0  # models per forward/backward/update chunk; 0 = auto (CPU eager: measured, train/chunking.py)
    log_every: int = 100  # read losses back to the host every N steps (the only sync in the loop)
    eval_batch_size: int = 256  # sequences per evaluation batch at the training length (fewer for longer splits)
    heartbeat_seconds: float = 30.0
    checkpoint_seconds: float = 0.0  # also checkpoint when this much wall time passed since the last (0: off)
    save_weights: bool = False  # keep each finished run's weights (weights.safetensors in its folder)
    float64: bool = False  # train in float64 (no autocast): stacked equals alone to float64 rounding, for tests


def check_stackable(specs: Sequence[RunSpec]) -> TaskStack:
    """Refuse a stack whose runs cannot share one model and one batch shape; returns the validated tasks."""
    first = specs[0]
    for spec in specs[1:]:
        if spec.model != first.model:
            raise ValueError(f"runs {first.run_id} and {spec.run_id} differ in model; they cannot share a stack")
        for field in ("batch_size", "eval_every", "eval_size", "checkpoint_every"):
            if getattr(spec.train, field) != getattr(first.train, field):
                raise ValueError(f"runs {first.run_id} and {spec.run_id} differ in train.{field}")
    return TaskStack([s.task for s in specs])


def build_model(specs: Sequence[RunSpec], device: str | torch.device = "cpu",
                stack: TaskStack | None = None) -> StackedTransformer:
    """A freshly initialised stack for ``specs`` (vocabulary and outputs padded to the largest).

    ``stack``: the tasks already validated by :func:`check_stackable` (checked here when not given)."""
    stack = stack if stack is not None else check_stackable(specs)
    vocab, outputs = stack.values("vocab_size"), stack.values("n_outputs")
    model = StackedTransformer(specs[0].model, len(specs), max(vocab), max(outputs), stack.shared.input_dim())
    model.reset_parameters([s.seed for s in specs], vocab if max(vocab) else None, outputs)
    return model.to(device)


class StackTrainer:
    """Holds a stack's model, optimizer and per-model counters; ``events()`` trains to every budget.

    ``resume_from`` gives each run's last checkpoint (a callable run_id -> state or None, or an object with a
    ``load_checkpoint`` method such as a RunStore); None starts every run from step 0.

    ``train``: the run ids to train (default: all). The other models of the stack *ride along*: they are built,
    sampled and computed like the rest but never updated, checkpointed or reported. A stack resumed after some
    of its runs finished (or while another process trains them) thus keeps its composition, its padded shapes
    and its chunking, and its runs round exactly as they did in the uninterrupted stack: no model's numbers
    depend on another model's values, only on the shapes they share.

    >>> trainer = StackTrainer(specs, store, train={specs[1].run_id})   # doctest: +SKIP
    """

    def __init__(self, specs: Sequence[RunSpec], resume_from: CheckpointSource | object | None = None,
                 options: TrainOptions | None = None, train: Collection[str] | None = None) -> None:
        self.specs = list(specs)
        self.options = options or TrainOptions()
        self.device = torch.device(self.options.device)
        tasks = check_stackable(specs)
        self.stack = tasks.to(self.device)
        self.task_cls = self.stack.cls
        self.model = build_model(specs, self.device, tasks)
        if self.options.float64:
            self.model = self.model.double()
        self.forward = fast.compile_model(self.model, self._shape_key()) if self.options.compile else self.model
        self.totals = [s.train.steps for s in specs]
        self.optim = StackedAdam(list(self.model.parameters()), [s.optim for s in specs], self.totals)
        self.rng = StackRNG([s.seed for s in specs], stream=TRAIN).to(self.device)
        self.step = torch.zeros(len(specs), dtype=torch.int64, device=self.device)
        self.alive = torch.ones(len(specs), dtype=torch.bool, device=self.device)
        self.total_t = torch.tensor(self.totals, device=self.device)
        self.final_loss = torch.full((len(specs),), math.nan, dtype=torch.float64, device=self.device)  # last step
        self.failed: dict[int, str] = {}
        self._reported = [-1] * len(specs)  # the step of each run's last log record
        training = None if train is None else set(train)
        self.riders = {m for m, s in enumerate(self.specs) if training is not None and s.run_id not in training}
        for m in self.riders:  # at its budget from the start: never active, never due, never reported
            self.step[m] = self.totals[m]
            self._reported[m] = self.totals[m]
        self._chunk: chunking.ChunkChoice | None = None  # chosen when first needed (after any resume)
        self._graph: fast.StepGraph | None = None
        self._side_stream: torch.cuda.Stream | None = None
        self._graph_warmup = (fast.GRAPH_WARMUP_STEPS
                              if self.options.cuda_graphs and self.device.type == "cuda" else None)
        load = getattr(resume_from, "load_checkpoint", resume_from)
        if load is not None:  # a StoreSink also sets aside a checkpoint that does not fit
            self._resume(load, getattr(resume_from, "reject_checkpoint", None))

    # --- checkpoints -------------------------------------------------------------------------------------
    def _resume(self, load: CheckpointSource, reject: Callable[[str, str], None] | None = None) -> None:
        for m, spec in enumerate(self.specs):
            state = load(spec.run_id) if m not in self.riders else None
            if state is None:
                continue
            problem = misfit(state, self.model, self.optim, m, self.totals[m])
            if problem is not None:
                if reject is not None:
                    reject(spec.run_id, f"does not match the model: {problem}")
                else:
                    warnings.warn(f"run {spec.run_id}: checkpoint does not match the model ({problem}); the run "
                                  "restarts from step 0", RuntimeWarning, stacklevel=2)
                continue
            load_model_state(self.model, self.optim, m, state)
            self.step[m] = state["step"]
            self.alive[m] = state["alive"]
            self.final_loss[m] = state.get("final_loss", math.nan)
            self._reported[m] = state["step"]

    def weights_of(self, m: int) -> dict[str, torch.Tensor]:
        """Model m's parameters (its slice of every stacked tensor), on the CPU."""
        return {name: p[m].detach().cpu().clone() for name, p in self.model.named_parameters()}

    def _checkpoints(self) -> Iterator[Event]:
        steps, alive, final = self.step.tolist(), self.alive.tolist(), self.final_loss.tolist()
        for m, spec in enumerate(self.specs):
            if steps[m] >= self.totals[m]:  # at its budget (its stack mates train on): its last records come with
                continue  # _finish, after any checkpoint, so a resume must start before them to write them once
            state = {"step": steps[m], "alive": alive[m], "final_loss": final[m], "params": self.weights_of(m),
                     "optim": self.optim.state_of(m)}
            yield Event("checkpoint", spec.run_id, {"state": state})

    # --- the step ----------------------------------------------------------------------------------------
    def train_step(self) -> torch.Tensor:
        """One update of every active model; returns the per-model losses (M,) without syncing.

        The fast path (CUDA graph replay, CPU model chunks) computes the same numbers as the plain step.
        """
        if self._graph is not None:
            return self._graph.replay()
        if self._graph_warmup is not None:
            return self._graph_step()
        return self._step(None, self.chunk)

    @property
    def warming_up(self) -> bool:
        """True while the fast path still changes how steps run (CUDA graph warm-up and capture)."""
        return self._graph_warmup is not None

    @property
    def chunk_choice(self) -> chunking.ChunkChoice:
        """How many models each forward/backward/update chunk runs, and how that was chosen (train/chunking.py)."""
        if self._chunk is None:
            self._chunk = self._initial_chunk()
        return self._chunk

    @property
    def chunk(self) -> int:
        """Models per forward/backward/update chunk (the stack size unless CPU chunking applies)."""
        return self.chunk_choice.chunk

    @property
    def chunk_how(self) -> str:
        """How :attr:`chunk` was chosen: ``measured``, ``cached``, ``option`` or ``whole stack``."""
        return self.chunk_choice.how

    def _sample(self) -> Batch:
        return self.stack.sample(self.rng, self.specs[0].train.batch_size, self.step)

    def _step(self, batch: Batch | None, chunk: int, capturing: bool = False) -> torch.Tensor:
        active = (self.step < self.total_t) & self.alive
        batch = batch if batch is not None else self._sample()
        loss = fast.train_step(self.model, self.forward, self.optim, batch, self.task_cls.loss, active, self.alive,
                               self.step, chunk,
                               lambda: fast.autocast_for(self.device, self.options.amp and not self.options.float64,
                                                         cache=not capturing))
        active &= self.alive
        self.final_loss = torch.where(active, loss.double(), self.final_loss)
        self.step += active.long()
        return loss

    def _graph_step(self) -> torch.Tensor:
        """Warm-up steps on a side stream, then capture (the captured step runs at once, by replay)."""
        n = len(self.specs)
        if self._graph_warmup > 0:
            self._graph_warmup -= 1
            side = self._side_stream = self._side_stream or torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                loss = self._step(None, n)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return loss
        self._graph_warmup = None
        self._graph = fast.StepGraph.capture(lambda batch: self._step(batch, n, capturing=True), self._sample,
                                             list(self.model.parameters()))
        return self.train_step()

    def _shape_key(self) -> tuple:
        first = self.specs[0]
        return (self.device.type, len(self.specs), first.model.model_dump_json(), first.train.batch_size,
                self.stack.max("seq_len"), self.stack.max("vocab_size"), self.stack.max("n_outputs"),
                self.options.amp)

    def _initial_chunk(self) -> chunking.ChunkChoice:
        """The option; else the whole stack where there is nothing to choose (one model, off-CPU, compiled); else
        this machine's measurement for the stack's shape, cached or new (or the whole stack if the steps left are
        too few to pay for one). A measurement times a throwaway copy, so training is the same with or without."""
        n = len(self.specs)
        if self.options.chunk_models > 0:
            return chunking.ChunkChoice(min(self.options.chunk_models, n), "option")
        if n == 1 or self.device.type != "cpu" or self.options.compile:
            return chunking.ChunkChoice(n, "whole stack")
        first = self.specs[0]
        shape = {"task": first.task.name, "model": first.model.model_dump(mode="json"),
                 "batch": first.train.batch_size, "seq_len": self.stack.max("seq_len"),
                 "vocab": self.stack.max("vocab_size"), "outputs": self.stack.max("n_outputs"),
                 "input_dim": self.stack.shared.input_dim(), "dtype": str(self.optim.flat.dtype)}
        iterations = max(t - s for t, s in zip(self.totals, self.step.tolist()))

        def measure(chunks: list[int]) -> dict[int, float]:
            step = chunking.throwaway_step(self.model, [s.optim for s in self.specs], self.totals, self._sample(),
                                           self.task_cls.loss, self.step, self.alive)
            return chunking.time_chunks(step, chunks)

        return chunking.choose(shape, n, iterations, measure)

    def evaluate(self) -> Result:
        first = self.specs[0].train
        return evaluate(self.model, self.stack.tasks, [s.seed for s in self.specs], first.eval_size,
                        min(self.options.eval_batch_size, first.eval_size))

    # --- the loop ----------------------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        """Train every model to its budget, evaluate, and report it all as events (see train/events.py)."""
        train, opts = self.specs[0].train, self.options
        start = self.step.tolist()
        iters = max(max(t - s for t, s in zip(self.totals, start)), 0)
        ids = [s.run_id for s in self.specs]
        last_beat = last_checkpoint = time.monotonic()
        resumed = sum(min(s, t) for m, (s, t) in enumerate(zip(start, self.totals)) if m not in self.riders)
        yield Event("start", data={"chunk": self.chunk})  # how the stack runs, recorded before its first step
        if resumed:  # steps done before a resume count as done
            yield Event("progress", data={"model_steps": resumed})
        for k in range(1, iters + 1):
            loss = self.train_step()
            yield Event("progress", data={"model_steps": sum(1 for t, s in zip(self.totals, start) if s + k <= t)})
            last = [s + k == t for s, t in zip(start, self.totals)]
            log = [a or b for a, b in zip(self._landed(start, k, opts.log_every), last)]
            if any(log):
                yield from self._log(loss, log)
            evals = [a and not b for a, b in zip(self._landed(start, k, train.eval_every), last)]
            if any(evals):  # a run's last step is evaluated by _finish
                yield from self._eval_events(self.evaluate(), evals)
            now = time.monotonic()
            due = any(self._landed(start, k, train.checkpoint_every))
            if k < iters and (due or (opts.checkpoint_seconds and now - last_checkpoint > opts.checkpoint_seconds)):
                yield from self._checkpoints()
                last_checkpoint = now
            if now - last_beat > opts.heartbeat_seconds:
                yield Event("heartbeat", data={"run_ids": ids})
                last_beat = now
        yield from self._finish(self.evaluate())

    def run(self, sink: Callable[[Event], None] | None = None,
            progress: Callable[[int], None] | None = None) -> dict[str, dict]:
        """Consume :meth:`events`: each goes to ``sink``; ``progress(model_steps)`` after every step.
        Returns {run_id: result} of the runs that finished."""
        results = {}
        for event in self.events():
            if event.kind == "progress":
                if progress is not None:
                    progress(event.data["model_steps"])
                continue
            if event.kind == "finish":
                results[event.run_id] = event.data["result"]
            if sink is not None:
                sink(event)
        return results

    def _refresh_failed(self) -> list[bool]:
        alive, steps = self.alive.tolist(), self.step.tolist()
        for m in range(len(self.specs)):
            if not alive[m] and m not in self.failed:
                self.failed[m] = f"loss became non-finite at step {steps[m] + 1} or earlier; model frozen"
        return alive

    def _landed(self, start: list[int], k: int, every: int) -> list[bool]:
        """Which models took a step at iteration k of this attempt that is a multiple of ``every`` (0: none).

        Logs, evaluations and checkpoints fall on a run's own step numbers, not on this attempt's iteration count,
        so a run resumed from any step (or stacked with runs at other steps) records the same steps as one that
        was never interrupted."""
        return [bool(every) and s + k <= t and (s + k) % every == 0 for s, t in zip(start, self.totals)]

    def _log(self, loss: torch.Tensor, due: list[bool]) -> Iterator[Event]:
        """A train_loss record for every due run that stepped since its last record (the loss of its own last step)."""
        self._refresh_failed()
        final, steps = self.final_loss.tolist(), self.step.tolist()
        for m, spec in enumerate(self.specs):
            if due[m] and m not in self.failed and steps[m] > self._reported[m]:
                self._reported[m] = steps[m]
                yield Event("log", spec.run_id, {"step": steps[m], "train_loss": final[m]})

    def weight_norms(self) -> list[float]:
        """Each model's L2 norm of all its parameters, sqrt(sum of squares over its slice of every tensor).

        Recorded with every evaluation as ``weight_norm`` (not in the run's result): the progress measure of
        grokking, where weight decay shrinks the memorising weights before held-out accuracy rises."""
        with torch.no_grad():
            squares = sum(p.detach().double().pow(2).flatten(1).sum(1) for p in self.model.parameters())
        return squares.sqrt().tolist()

    def _eval_events(self, metrics: Result, due: list[bool]) -> Iterator[Event]:
        steps, norms = self.step.tolist(), self.weight_norms()
        for m, spec in enumerate(self.specs):
            if due[m] and m not in self.failed:
                yield Event("eval", spec.run_id, {"step": steps[m], **_flat(metrics, m), "weight_norm": norms[m]})

    def _finish(self, metrics: Result) -> Iterator[Event]:
        made = provenance.record(str(self.device))  # where these numbers come from (computed where they trained)
        self._refresh_failed()
        steps, final, norms = self.step.tolist(), self.final_loss.tolist(), self.weight_norms()
        for m, spec in enumerate(self.specs):
            if m in self.riders:
                continue
            if m in self.failed:
                yield Event("fail", spec.run_id, {"reason": self.failed[m]})
                continue
            flat = _flat(metrics, m)
            yield Event("eval", spec.run_id, {"step": steps[m], **flat, "weight_norm": norms[m]})
            weights = self.weights_of(m) if self.options.save_weights else None
            result = {"step": steps[m], "train_loss": final[m], **flat}
            yield Event("finish", spec.run_id, {"result": result, "weights": weights, "provenance": made})


def _flat(metrics: Result, m: int) -> dict:
    """Model m's metrics as {"split/metric": value} (a float, or a list for a vector metric)."""
    return {f"{split}/{k}": v[m] for split, d in metrics.items() for k, v in d.items()}


def train_runs(specs: Sequence[RunSpec], store=None, options: TrainOptions | None = None,
               progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """Train one stack of runs (resuming from and recording to ``store`` when given); returns {run_id: result}."""
    sink = StoreSink(store) if store is not None else None
    return StackTrainer(specs, sink, options).run(sink, progress)
