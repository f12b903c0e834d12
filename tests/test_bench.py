"""`limitlab bench` runs and reports its fields; the fast path computes what the plain step computes."""

from __future__ import annotations

import json

import pytest
import torch

from limitlab import bench
from limitlab.cli import main
from limitlab.spec import OptimConfig
from limitlab.train import fast
from limitlab.train.optim import StackedAdam
from limitlab.train.trainer import StackTrainer, TrainOptions

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _params(trainer: StackTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def _train(specs, steps: int, **options) -> StackTrainer:
    trainer = StackTrainer(specs, None, TrainOptions(**options))
    for _ in range(steps):
        trainer.train_step()
    return trainer


# --- the command -------------------------------------------------------------------------------------------------

def test_bench_json_has_every_field(capsys):
    code = main(["bench", "--d", "8", "--m", "3", "--models", "3", "--batch", "4", "--seconds", "0.05",
                 "--loop-models", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["info"]["device"] == "cpu" and report["info"]["peak_flops"] > 0
    (row,) = report["rows"]
    assert (row["d"], row["T"], row["models"]) == (8, 30, 3)
    eager = row["modes"]["eager"]
    for side in ("stacked", "loop"):
        assert set(eager[side]) == {"model_steps_per_s", "tokens_per_s", "mfu"}
        assert eager[side]["model_steps_per_s"] > 0 and 0 < eager[side]["mfu"]
    assert eager["speedup"] > 0 and eager["chunk"] in (1, 2, 3) and eager["chunk_how"].startswith("measured")
    assert set(eager["chunk_seconds"]) == {"1", "2", "3"}  # every candidate's best step, as the trainer timed it
    assert report["info"]["cpu"] and report["info"]["caches"]
    assert row["dense"]["model_steps_per_s"] > 0
    rounds = eager["round_seconds"]  # every round of every side, paired ratios from the same rounds
    assert len(rounds["stacked"]) == len(rounds["plain"]) == 3 and "vmap" not in eager
    assert eager["vs_plain_by_round"] == pytest.approx([p / s for p, s in zip(rounds["plain"], rounds["stacked"])])
    assert eager["speedup_vs_plain"] == pytest.approx(min(rounds["plain"]) / min(rounds["stacked"]))
    assert eager["speedup_vs_plain_median"] == pytest.approx(sorted(eager["vs_plain_by_round"])[1])  # of 3 rounds
    assert eager["own_loop_vs_plain_median"] == pytest.approx(
        sorted(p / m1 for p, m1 in zip(rounds["plain"], rounds["loop"]))[1])


def test_bench_vmap_side(capsys):
    code = main(["bench", "--d", "8", "--m", "3", "--models", "3", "--batch", "4", "--seconds", "0.05",
                 "--loop-models", "2", "--repeat", "2", "--vmap"])
    out = capsys.readouterr().out
    assert code == 0 and "vmap m-steps/s" in out and "vs vmap" in out
    assert main(["bench", "--d", "8", "--m", "3", "--models", "2", "--batch", "4", "--seconds", "0.05",
                 "--repeat", "1", "--vmap", "--json"]) == 0
    eager = json.loads(capsys.readouterr().out)["rows"][0]["modes"]["eager"]
    assert eager["vmap"]["model_steps_per_s"] > 0 and len(eager["vs_vmap_by_round"]) == 1


def test_bench_table_and_preset_projection(capsys):
    code = main(["bench", "--preset", "counting/smoke", "--preset-stacks", "2", "--preset-max-models", "2",
                 "--seconds", "0.05", "--loop-models", "1"])
    out = capsys.readouterr().out
    assert code == 0
    for field in ("stacked m-steps/s", "loop m-steps/s", "speedup", "MFU", "dense ceil", "6·N_nonembed",
                  "preset counting/smoke", "projected (eager)", "min per seed", "one at a time"):
        assert field in out, field


def test_bench_rejects_bad_input(capsys):
    assert main(["bench", "--preset", "nosuch/paper"]) == 2
    assert "unknown study" in capsys.readouterr().err
    assert main(["bench", "--modes", "fastest"]) == 2


@pytest.mark.parametrize("bad, allowed", [
    (["--models", "0"], ">= 1"), (["--models", "-1"], ">= 1"), (["--heads", "0"], ">= 1"),
    (["--threads", "0"], ">= 1"), (["--threads", "-1"], ">= 1"), (["--device", "tpu"], "allowed: auto, cpu, cuda"),
    (["--d", "8", "--heads", "3"], "allowed for 8: 1, 2, 4, 8"), (["--repeat", "0"], ">= 1"),
    (["--repeat", "-1"], ">= 1"), (["--seconds", "-1"], "> 0"), (["--seconds", "nan"], "> 0"),
    (["--preset-stacks", "0"], ">= 1"), (["--preset-stacks", "-1"], ">= 1"), (["--peak-flops", "-1"], ">= 0"),
    (["--peak-flops", "inf"], ">= 0"), (["--loop-models", "-1"], ">= 1"), (["--loop-models", "0"], ">= 1"),
    (["--d", "0"], ">= 1"), (["--batch", "0"], ">= 1"), (["--layers", "0"], ">= 1"),
    (["--preset-max-models", "-1"], ">= 0"), (["--modes", "eager,fast"], "allowed: auto"),
    (["--attention", "sdpa", "--attn-d", "10", "--heads", "4"], "allowed for 10: 1, 2, 5, 10"),
    (["--attention", "sdpa", "--T", "0"], ">= 1"),
])
def test_bench_refuses_each_bad_argument_in_one_line_before_any_work(bad, allowed, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("bench started work before checking its arguments")

    for name in ("measure", "device_info", "run_attention"):
        monkeypatch.setattr(bench, name, no_work)
    monkeypatch.setattr(torch, "set_num_threads", no_work)
    assert main(["bench", *bad]) == 2
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert out.out == "" and len(lines) == 1 and lines[0].startswith("limitlab: error: --"), lines
    assert bad[-1] in lines[0] and allowed in lines[0], lines[0]  # names the value and what is allowed


def test_projection_fit():
    a, b = bench.fit_line([1.0, 2.0, 3.0], [3.0, 5.0, 7.0])
    assert a == pytest.approx(1.0) and b == pytest.approx(2.0)
    assert bench.fit_line([2.0], [4.0]) == (0.0, 2.0)
    assert bench.fit_line([1.0, 2.0], [5.0, 1.0])[1] == 0.0  # never a negative cost per FLOP


# --- the fast path computes the same numbers ---------------------------------------------------------------------

def test_optimizer_moves_parameters_into_one_flat_buffer(make_spec):
    """Every parameter is a view of the optimizer's (M, P) buffer, so an update reaches the model it trains."""
    trainer = StackTrainer([make_spec(seed=0), make_spec(seed=1)], None, TrainOptions())
    flat = trainer.optim.flat
    assert all(p.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr() for p in trainer.model.parameters())
    assert flat.shape == (2, sum(p[0].numel() for p in trainer.model.parameters()))
    before = trainer.model.head.weight.detach().clone()
    trainer.train_step()
    assert not torch.equal(before, trainer.model.head.weight)


def test_model_chunks_match_the_whole_stack(make_spec):
    """Chunks of 1 reproduce single-model training bit for bit; other chunkings agree to float rounding."""
    specs = [make_spec(seed=s, m=4 + s) for s in range(3)]  # padded stack
    whole = _train(specs, 4, chunk_models=3)
    ones = _train(specs, 4, chunk_models=1)
    pair = _train(specs, 4, chunk_models=2)
    for a, b, c in zip(_params(whole), _params(ones), _params(pair)):
        assert torch.allclose(a, b, atol=5e-3) and torch.allclose(a, c, atol=5e-3)  # Adam on ~0 gradients
    assert torch.equal(whole.step, ones.step) and torch.equal(whole.optim.t, ones.optim.t)
    same_shape = [make_spec(seed=s) for s in range(3)]
    ones, alone = _train(same_shape, 4, chunk_models=1), _train(same_shape[1:2], 4)
    assert all(torch.equal(p[1], q[0]) for p, q in zip(_params(ones), _params(alone)))


def test_chunked_step_freezes_nan_models(make_spec):
    specs = [make_spec(seed=s) for s in range(3)]
    trainer = StackTrainer(specs, None, TrainOptions(chunk_models=1))
    with torch.no_grad():
        trainer.model.head.weight[1].fill_(float("nan"))
    for _ in range(3):
        trainer.train_step()
    assert trainer.alive.tolist() == [True, False, True] and trainer.step.tolist() == [3, 0, 3]


def test_chunked_optimizer_is_bitwise_the_whole():
    configs = [OptimConfig(), OptimConfig(optimizer="adamw", weight_decay=0.1, lr=0.01),
               OptimConfig(schedule="cosine", warmup_steps=2), OptimConfig(optimizer="adam", weight_decay=0.01)]
    torch.manual_seed(0)
    shapes = [(4, 3, 5), (4, 1, 5), (4, 7)]
    start = [torch.randn(s) for s in shapes]
    runs = []
    for chunk in (0, 3, 1):
        params = [torch.nn.Parameter(x.clone()) for x in start]
        opt = StackedAdam(params, configs, [10] * 4)
        gen = torch.Generator().manual_seed(1)
        for step in range(4):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step(torch.tensor([True, True, step < 2, True]), torch.full((4,), step), chunk)
        runs.append(params + opt.exp_avg + opt.exp_avg_sq)
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


@pytest.mark.parametrize("clip", [None, 0.5])
def test_unmasked_update_is_bitwise_the_masked_one(clip):
    """When every model updates, Adam skips its frozen-model masks: the same bits as the masked path."""
    configs = [OptimConfig(grad_clip=clip), OptimConfig(optimizer="adamw", weight_decay=0.1, lr=0.01),
               OptimConfig(schedule="cosine", warmup_steps=2), OptimConfig(optimizer="adam", weight_decay=0.01)]
    start = [torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(2)), torch.randn(4, 7)]
    runs = []
    for every in (True, False):
        params = [torch.nn.Parameter(x.clone()) for x in start]
        opt = StackedAdam(params, configs, [10] * 4)
        gen, models, active = torch.Generator().manual_seed(1), slice(0, 4), torch.ones(4, dtype=torch.bool)
        for step in range(5):
            grad = torch.randn(4, sum(opt.sizes), generator=gen)
            hyper = opt._hyper(active, torch.full((4,), step), models, every)
            with torch.no_grad():
                opt._update(models, active, hyper, grad, every)
        runs.append([*params, opt.exp_avg_flat, opt.exp_avg_sq_flat, opt.t])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # importing torch._dynamo touches torch.jit
def test_compile_stays_under_the_recompile_limit(monkeypatch):
    """A sweep of many stack shapes resets dynamo before the limit; shapes seen since the reset do not."""
    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    monkeypatch.setattr(fast, "_compiled_keys", set())
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 4)
    model = torch.nn.Linear(2, 2)
    for key in ["a", "b", "a", "c", "b"]:
        fast.compile_model(model, (key,))
    assert resets == []
    fast.compile_model(model, ("d",))  # a 4th shape would reach the limit
    assert resets == [1] and fast._compiled_keys == {("d",)}


# --- CUDA (skipped without a GPU) --------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("compile_", [False, True])
def test_cuda_graph_step_matches_eager(make_spec, compile_):
    """Whole-step CUDA graph (optionally over a compiled forward): same parameters as eager, fp32."""
    specs = [make_spec(seed=s, m=4 + s) for s in range(3)]
    eager = _train(specs, 8, device="cuda", amp=False)
    graphed = _train(specs, 8, device="cuda", amp=False, cuda_graphs=True, compile=compile_)
    assert graphed._graph is not None, "capture fell back to eager"
    for a, b in zip(_params(eager), _params(graphed)):
        torch.testing.assert_close(a, b, atol=5e-3, rtol=1e-3)
    assert torch.equal(eager.step, graphed.step)


@needs_cuda
@pytest.mark.gpu
def test_cuda_graph_run_records_results(make_spec):
    specs = [make_spec(seed=s, steps=30) for s in range(2)]
    plain = StackTrainer(specs, None, TrainOptions(device="cuda")).run()
    graphed = StackTrainer(specs, None, TrainOptions(device="cuda", cuda_graphs=True)).run()
    for run_id, result in plain.items():
        assert graphed[run_id]["step"] == 30
        assert graphed[run_id]["test/accuracy"] == pytest.approx(result["test/accuracy"], abs=0.1)


@needs_cuda
@pytest.mark.gpu
def test_cuda_bench_measures_compiled_graphs(capsys):
    code = main(["bench", "--d", "16", "--m", "3", "--models", "4", "--batch", "4", "--seconds", "0.2",
                 "--loop-models", "1", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["rows"][0]["modes"]) == {"eager", "compiled"} and report["info"]["peak_flops"]
