"""Train a stack of runs in one loop: one forward/backward/update step trains every model of the stack.

Runs in a stack share the model shape, batch size and task kind; they may differ in task parameters
(vocabulary, length — padded), seed, optimizer settings and step budget. Each model keeps its own step
counter, data stream and learning-rate schedule, so its result does not depend on its stack mates.

Checkpoints are per run (that model's slice of the weights and optimizer state plus its step), so a killed
sweep resumes exactly, even if the runs are regrouped into different stacks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from limitlab.nn.model import StackedTransformer
from limitlab.rng import TRAIN, StackRNG
from limitlab.spec import RunSpec
from limitlab.store import RunStore
from limitlab.tasks.base import Batch, check_stack
from limitlab.train import fast
from limitlab.train.metrics import evaluate, per_model_loss
from limitlab.train.optim import StackedAdam


@dataclass(frozen=True)
class TrainOptions:
    """How to train (never what): none of these change a run's results beyond float rounding."""

    device: str = "cpu"
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False  # torch.compile the model's forward (once per stack shape; see train/fast.py)
    cuda_graphs: bool = False  # CUDA: capture the whole step (data, forward, backward, optimizer) in a CUDA graph
    foreach: bool = True  # multi-tensor (torch._foreach_*) optimizer instead of a Python loop per parameter
    chunk_models: int = 0  # models per forward/backward/update chunk; 0 = auto (CPU eager: by shape, fast.cpu_chunk)
    log_every: int = 100  # read losses back to the host every N steps (the only sync in the loop)
    eval_batch_size: int = 256
    heartbeat_seconds: float = 30.0


def check_stackable(specs: Sequence[RunSpec]) -> None:
    """Refuse a stack whose runs cannot share one model and one batch shape."""
    first = specs[0]
    for spec in specs[1:]:
        if spec.model != first.model:
            raise ValueError(f"runs {first.run_id} and {spec.run_id} differ in model; they cannot share a stack")
        for field in ("batch_size", "eval_every", "eval_size", "checkpoint_every"):
            if getattr(spec.train, field) != getattr(first.train, field):
                raise ValueError(f"runs {first.run_id} and {spec.run_id} differ in train.{field}")
    check_stack([s.task for s in specs])


def build_model(specs: Sequence[RunSpec], device: str | torch.device = "cpu") -> StackedTransformer:
    """A freshly initialised stack for ``specs`` (vocabulary and outputs padded to the largest)."""
    tasks = [s.task for s in specs]
    vocab = [t.vocab_size() for t in tasks]
    outputs = [t.n_outputs() for t in tasks]
    model = StackedTransformer(specs[0].model, len(specs), max(vocab), max(outputs), tasks[0].input_dim())
    model.reset_parameters([s.seed for s in specs], vocab if max(vocab) else None, outputs)
    return model.to(device)


class StackTrainer:
    """Holds a stack's model, optimizer and per-model counters; ``run()`` trains to every budget."""

    def __init__(self, specs: Sequence[RunSpec], store: RunStore | None = None,
                 options: TrainOptions | None = None) -> None:
        check_stackable(specs)
        self.specs, self.store = list(specs), store
        self.options = options or TrainOptions()
        self.device = torch.device(self.options.device)
        self.tasks = [s.task for s in specs]
        self.task_cls = check_stack(self.tasks)
        self.model = build_model(specs, self.device)
        self.forward = fast.compile_model(self.model, self._shape_key()) if self.options.compile else self.model
        self.totals = [s.train.steps for s in specs]
        self.optim = StackedAdam(list(self.model.parameters()), [s.optim for s in specs], self.totals,
                                 foreach=self.options.foreach)
        self.rng = StackRNG([s.seed for s in specs], stream=TRAIN).to(self.device)
        self.step = torch.zeros(len(specs), dtype=torch.int64, device=self.device)
        self.alive = torch.ones(len(specs), dtype=torch.bool, device=self.device)
        self.total_t = torch.tensor(self.totals, device=self.device)
        self.last_loss = [math.nan] * len(specs)
        self.failed: dict[int, str] = {}
        self._chunk = self._initial_chunk()
        self._graph: fast.StepGraph | None = None
        self._side_stream: torch.cuda.Stream | None = None
        self._graph_warmup = (fast.GRAPH_WARMUP_STEPS
                              if self.options.cuda_graphs and self.device.type == "cuda" else None)
        if store is not None:
            self._resume()

    # --- checkpoints -------------------------------------------------------------------------------------
    def _resume(self) -> None:
        for m, spec in enumerate(self.specs):
            state = self.store.load_checkpoint(spec.run_id)
            if state is None:
                continue
            with torch.no_grad():
                for name, p in self.model.named_parameters():
                    saved = state["params"][name]
                    region = tuple(slice(0, min(a, b)) for a, b in zip(p.shape[1:], saved.shape))
                    p[m].zero_()
                    p[m][region].copy_(saved[region])
            self.optim.load_state_of(m, _pad_like(state["optim"], self.optim, m))
            self.step[m] = state["step"]
            self.alive[m] = state["alive"]

    def _checkpoint(self) -> None:
        steps, alive = self.step.tolist(), self.alive.tolist()
        for m, spec in enumerate(self.specs):
            params = {name: p[m].detach().cpu().clone() for name, p in self.model.named_parameters()}
            self.store.save_checkpoint(spec.run_id, {"step": steps[m], "alive": alive[m], "params": params,
                                                     "optim": self.optim.state_of(m)})

    # --- the step ----------------------------------------------------------------------------------------
    def train_step(self) -> torch.Tensor:
        """One update of every active model; returns the per-model losses (M,) without syncing.

        The fast path (CUDA graph replay, CPU model chunks) computes the same numbers as the plain step.
        """
        if self._graph is not None:
            return self._graph.replay()
        if self._graph_warmup is not None:
            return self._graph_step()
        return self._step(None, self._chunk)

    @property
    def warming_up(self) -> bool:
        """True while the fast path still changes how steps run (CUDA graph warm-up and capture)."""
        return self._graph_warmup is not None

    @property
    def chunk(self) -> int:
        """Models per forward/backward/update chunk (the stack size unless CPU chunking applies)."""
        return self._chunk

    def _sample(self) -> Batch:
        return self.task_cls.sample(self.tasks, self.rng, self.specs[0].train.batch_size, self.step)

    def _step(self, batch: Batch | None, chunk: int, capturing: bool = False) -> torch.Tensor:
        active = (self.step < self.total_t) & self.alive
        if batch is None:
            batch = self._sample()
        if chunk < len(self.specs):  # CPU: forward, backward and update a few models at a time (fast.py)
            loss = fast.chunked_step(self.model, self.optim, batch, active, self.alive, self.step, chunk,
                                     self.task_cls.regression, lambda: fast.autocast_for(self.device, self.options.amp))
            self.step += (active & self.alive).long()
            return loss
        with fast.autocast_for(self.device, self.options.amp, cache=not capturing):
            logits = self.forward(batch.inputs, batch.positions)
        loss = per_model_loss(logits, batch, self.task_cls.regression)  # (M,)
        self.alive &= torch.isfinite(loss) | ~active
        active = active & self.alive
        for p in self.model.parameters():
            p.grad = None
        torch.where(active, loss, 0.0).sum().backward()
        self.optim.step(active, self.step)
        self.step += active.long()
        return loss.detach()

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
                max(t.seq_len() for t in self.tasks), max(t.vocab_size() for t in self.tasks),
                max(t.n_outputs() for t in self.tasks), self.options.amp)

    def _initial_chunk(self) -> int:
        """Models per chunk: the option, else the whole stack off-CPU or compiled, else the CPU rule."""
        n = len(self.specs)
        if self.options.chunk_models > 0:
            return min(self.options.chunk_models, n)
        if n == 1 or self.device.type != "cpu" or self.options.compile:
            return n
        cfg = self.specs[0].model
        tokens = self.specs[0].train.batch_size * max(t.seq_len() for t in self.tasks)
        return fast.cpu_chunk(n, tokens, max(cfg.mlp_width, 3 * cfg.d_model))

    def evaluate(self) -> dict[str, dict[str, list[float]]]:
        first = self.specs[0].train
        return evaluate(self.model, self.tasks, [s.seed for s in self.specs], first.eval_size,
                        min(self.options.eval_batch_size, first.eval_size))

    def run(self, progress: Callable[[int], None] | None = None) -> dict[str, dict]:
        """Train every model to its budget, evaluate, and record results. Returns {run_id: result}."""
        train = self.specs[0].train
        start = self.step.tolist()
        iters = max(max(t - s for t, s in zip(self.totals, start)), 0)
        last_beat = time.monotonic()
        for k in range(1, iters + 1):
            loss = self.train_step()
            if progress is not None:
                progress(sum(1 for t, s in zip(self.totals, start) if s + k <= t))
            if k % self.options.log_every == 0 or k == iters:
                self._log(loss)
            if train.eval_every and k < iters and (k % train.eval_every == 0):
                self._record_eval(self.evaluate())
            if self.store is not None:
                if train.checkpoint_every and k % train.checkpoint_every == 0 and k < iters:
                    self._checkpoint()
                if time.monotonic() - last_beat > self.options.heartbeat_seconds:
                    self.store.heartbeat([s.run_id for s in self.specs])
                    last_beat = time.monotonic()
        return self._finish(self.evaluate())

    def _refresh_failed(self) -> list[bool]:
        alive, steps = self.alive.tolist(), self.step.tolist()
        for m in range(len(self.specs)):
            if not alive[m] and m not in self.failed:
                self.failed[m] = f"loss became non-finite at step {steps[m] + 1} or earlier; model frozen"
        return alive

    def _log(self, loss: torch.Tensor) -> None:
        values, alive, steps = loss.tolist(), self._refresh_failed(), self.step.tolist()
        for m, spec in enumerate(self.specs):
            if alive[m]:
                self.last_loss[m] = values[m]
            if self.store is not None and m not in self.failed:
                self.store.append_metrics(spec.run_id, [{"step": steps[m], "train_loss": values[m]}])

    def _record_eval(self, metrics: dict[str, dict[str, list[float]]]) -> None:
        if self.store is None:
            return
        steps = self.step.tolist()
        for m, spec in enumerate(self.specs):
            if m not in self.failed:
                flat = {f"{split}/{k}": v[m] for split, d in metrics.items() for k, v in d.items()}
                self.store.append_metrics(spec.run_id, [{"step": steps[m], **flat}])

    def _finish(self, metrics: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
        self._refresh_failed()
        steps = self.step.tolist()
        results = {}
        for m, spec in enumerate(self.specs):
            if m in self.failed:
                if self.store is not None:
                    self.store.fail(spec.run_id, self.failed[m])
                continue
            flat = {f"{split}/{k}": v[m] for split, d in metrics.items() for k, v in d.items()}
            result = {"step": steps[m], "train_loss": self.last_loss[m], **flat}
            results[spec.run_id] = result
            if self.store is not None:
                self.store.append_metrics(spec.run_id, [{"step": steps[m], **flat}])
                self.store.finish(spec.run_id, result)
        return results


def _pad_like(state: dict, optim: StackedAdam, m: int) -> dict:
    """Fit a checkpoint's moment tensors into this stack's (possibly differently padded) shapes."""
    def fit(saved: list[torch.Tensor], current: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for s, c in zip(saved, current):
            target = torch.zeros_like(c[m])
            region = tuple(slice(0, min(a, b)) for a, b in zip(c.shape[1:], s.shape))
            target[region] = s[region]
            out.append(target)
        return out

    return {"exp_avg": fit(state["exp_avg"], optim.exp_avg), "exp_avg_sq": fit(state["exp_avg_sq"], optim.exp_avg_sq),
            "t": state["t"]}


def train_runs(specs: Sequence[RunSpec], store: RunStore | None = None, options: TrainOptions | None = None,
               progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """Train one stack of runs; convenience wrapper around :class:`StackTrainer`."""
    return StackTrainer(specs, store, options).run(progress)
