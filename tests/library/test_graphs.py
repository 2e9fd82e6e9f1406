"""CUDA graphs of one loss evaluation and of L-BFGS's phases (painterly.graphs), and the measured
precision choice.

On the CPU the fallbacks run, and the phases run under graph_replay.ReplayedPhases (CUDA-graph
semantics emulated); the CUDA tests run where a GPU is present (``pytest tests/library/test_graphs.py``
on the GPU machine)."""

from __future__ import annotations

import pytest
import torch

from conftest import load_benchmark, smooth_pull
from graph_replay import AllocationCheck, ReplayedPhases, replayed_evaluation
from painterly.devices import fastest_precision
from painterly.engine import load_inputs
from painterly.engine import optimizers as optimizers_module
from painterly.graphs import WARMUP_CALLS, PhaseGraphs, capture, eager, graphed, prepare_cuda
from painterly.lbfgs import LBFGS
from painterly.losses import gram_matrix

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _evaluation(encoder):
    """A loss evaluation in the form painterly.graphs expects: (total 0-d, grad like x, terms 1-d)."""

    def evaluate(x):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            feats = encoder(x)
            style = sum(gram_matrix(f).square().mean() for f in feats.values())
            tv = (x[..., 1:, :] - x[..., :-1, :]).square().mean()
            total = style + tv
            (grad,) = torch.autograd.grad(total, x)
        return total.detach(), grad, torch.stack([total.detach(), style.detach(), tv.detach()])

    return evaluate


def test_on_the_cpu_the_evaluation_is_returned_unchanged(tiny_encoder):
    evaluate = _evaluation(tiny_encoder(("relu1_1", "relu2_1")))
    x = torch.rand(1, 3, 16, 16)
    assert graphed(evaluate, x) is evaluate
    assert evaluate.graph_fallback == "not a CUDA tensor (device cpu)"
    # A bound method takes no attribute: capture() gives the reason as a value.
    class Run:
        def objective(self, point):
            return evaluate(point)

    run = Run()
    same, why = capture(run.objective, x)
    assert same == run.objective and why == "not a CUDA tensor (device cpu)"
    assert graphed(run.objective, x) == run.objective


def test_prepare_cuda_turns_on_cudnn_benchmark():
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        prepare_cuda()
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = before


def test_fastest_precision_is_for_cuda_only(tiny_encoder):
    with pytest.raises(ValueError, match="CUDA"):
        fastest_precision(tiny_encoder(("relu1_1",)), (1, 3, 16, 16), torch.device("cpu"))


@cuda
def test_a_graph_gives_the_eager_results_and_fresh_outputs(tiny_encoder):
    device = torch.device("cuda")
    evaluate = _evaluation(tiny_encoder(("relu1_1", "relu2_1")).to(device))
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.rand(1, 3, 32, 32, generator=gen).to(device) for _ in range(2))
    fast = graphed(evaluate, a)
    assert fast is not evaluate and getattr(evaluate, "graph_fallback", None) is None
    first = fast(a)
    kept = [t.clone() for t in first]
    second = fast(b)
    for got, want in zip(second, evaluate(b)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    # The first call's outputs are clones: replaying for b left them alone.
    for got, want in zip(first, kept):
        assert torch.equal(got, want)


@cuda
def test_a_failing_warm_up_falls_back_with_the_reason(tiny_encoder):
    calls = {"n": 0}

    def evaluate(x):
        calls["n"] += 1
        raise RuntimeError("no memory left\nsecond line")

    x = torch.rand(1, 3, 16, 16, device="cuda")
    assert graphed(evaluate, x) is evaluate
    assert evaluate.graph_fallback == "CUDA graph capture failed: RuntimeError: no memory left"
    assert calls["n"] == 1
    torch.cuda.synchronize()  # the device is still usable


@cuda
def test_a_host_sync_inside_cannot_be_captured_and_falls_back(tiny_encoder):
    inner = _evaluation(tiny_encoder(("relu1_1",)).cuda())
    calls = {"n": 0}

    def evaluate(x):
        calls["n"] += 1
        total, grad, terms = inner(x)
        float(total)  # a device→host read: illegal while capturing
        return total, grad, terms

    x = torch.rand(1, 3, 16, 16, device="cuda")
    fn, why = capture(evaluate, x)
    assert fn is evaluate and why.startswith("CUDA graph capture failed")
    assert calls["n"] == WARMUP_CALLS + 1
    assert torch.isfinite(evaluate(x)[0])  # and eager evaluation still works afterwards


def _run_images(transfer, config, images, phases, monkeypatch):
    monkeypatch.setattr(optimizers_module, "phase_runner", lambda device: phases)
    run = transfer.start(load_inputs(config, images.content, [images.style]))
    losses = [p.loss for p in run]
    return losses, run.result()


def test_a_run_with_its_lbfgs_phases_replayed_as_graphs_is_the_python_run(tiny_config, tiny_transfer, images, monkeypatch):
    # Two levels (a new optimiser and new graphs each), the smoothing preconditioner, the box: the whole
    # engine path, with the phases under CUDA-graph semantics against plain Python.
    config = tiny_config(size=48, iterations=12, multiscale=True, min_size=32, lbfgs_history=5)
    transfer = tiny_transfer(config)
    runner = ReplayedPhases()
    losses_graphed, graphed_image = _run_images(transfer, config, images, runner, monkeypatch)
    losses_plain, plain_image = _run_images(transfer, config, images, eager, monkeypatch)
    assert losses_graphed == pytest.approx(losses_plain, rel=1e-5)
    torch.testing.assert_close(graphed_image, plain_image, rtol=0, atol=1e-5)
    assert runner.replays > 0


def test_in_a_run_the_lbfgs_phases_keep_nothing_they_allocate(tiny_config, tiny_transfer, images, monkeypatch):
    # Their graphs share one memory pool on CUDA (graphs.Recorder): see graph_replay.AllocationCheck.
    config = tiny_config(size=48, iterations=12, multiscale=True, min_size=32, lbfgs_history=5)
    runner = AllocationCheck()
    _run_images(tiny_transfer(config), config, images, runner, monkeypatch)
    assert runner.checked > 20


def _red_left_mask():
    mask = torch.ones(1, 3, 48, 64)
    mask[:, 1:, :, :32] = 0.0  # red on the left half, white on the right
    return mask


@pytest.mark.parametrize(
    "options, mask",
    [
        (dict(), False),
        (dict(content_loss="cosine", style_blend=(3.0, 1.0)), False),
        (dict(style_loss="w2"), False),
        (dict(style_loss="sliced"), False),
        (dict(style_loss="histogram"), False),
        (dict(regions=["red=1", "white=photo"]), True),
        (dict(regions=["red=1", "white=2"], style_loss="sliced"), True),
    ],
    ids=["gram", "cosine-blend", "w2", "sliced", "histogram", "regions", "regions-sliced"],
)
def test_every_term_evaluates_the_same_replayed_as_a_graph(options, mask, tiny_config, tiny_transfer, images):
    # What engine/run.py captures on CUDA (Objective.evaluation), recorded once and replayed with CUDA
    # graph semantics: at new images, and after the sliced loss redraws its directions in place, the
    # replay must give the objective's own loss terms and gradient (nothing read from the device or
    # frozen from Python inside an evaluation).
    if "style_blend" in options or options.get("regions") == ["red=1", "white=2"]:
        styles = [images.style, images.style2]
    else:
        styles = [images.style]
    config = tiny_config(iterations=2, **options)
    run = tiny_transfer(config).start(load_inputs(config, images.content, styles, mask=_red_left_mask() if mask else None))
    next(iter(run))
    objective, x = run.work.objective, run.work.x.detach().clone()
    replay = replayed_evaluation(objective.evaluation, x)
    gen = torch.Generator().manual_seed(1)
    for iteration in (3, 5, 11):
        objective.begin_iteration(0, iteration)  # the sliced loss redraws at 5 and 10 (in place)
        y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
        for got, want in zip(replay(y), objective.evaluation(y)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_a_video_frames_temporal_term_evaluates_the_same_replayed_as_a_graph(tiny_config, tiny_transfer, images):
    pytest.importorskip("cv2")
    from painterly.video.sequence import ClipStyler, VideoSettings

    styler = ClipStyler(tiny_transfer(tiny_config(size=48, iterations=2)), [images.style], VideoSettings(temporal_weight=1e6, frame_iterations=2, long_term=True))
    first = styler.start(images.content_t)
    for _ in first:
        pass
    styler.push(images.content_t, first.result())
    second = styler.start(images.content_t)
    next(iter(second))
    objective, x = second.work.objective, second.work.x.detach().clone()
    assert "temporal" in objective.names
    replay = replayed_evaluation(objective.evaluation, x)
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    for got, want in zip(replay(y), objective.evaluation(y)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_on_the_cpu_lbfgs_runs_its_phases_as_python():
    assert optimizers_module.phase_runner(torch.device("cpu")) is eager


@cuda
def test_lbfgs_phases_as_cuda_graphs_give_the_python_run():
    device = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)
    target = (torch.rand(1, 3, 24, 24, generator=gen) * 1.4 - 0.2).to(device)
    fn = smooth_pull(target)

    runner = PhaseGraphs(device)
    graphed_opt = LBFGS(history=6, bounds=(0.0, 1.0), phases=runner)
    plain_opt = LBFGS(history=6, bounds=(0.0, 1.0))
    xg, xp = torch.full_like(target, 0.5), torch.full_like(target, 0.5)
    for _ in range(15):
        fg, _ = graphed_opt.step(xg, fn)
        fp, _ = plain_opt.step(xp, fn)
        assert fg == pytest.approx(fp, rel=1e-4)
    torch.testing.assert_close(xg, xp, rtol=0, atol=1e-4)
    assert runner.failed is None and runner.captured >= 4


@cuda
def test_fastest_precision_picks_one_of_the_two(tiny_encoder):
    encoder = tiny_encoder(("relu1_1", "relu2_1")).cuda().to(memory_format=torch.channels_last)
    rng = torch.cuda.get_rng_state()
    assert fastest_precision(encoder, (1, 3, 64, 64), torch.device("cuda")) in (None, torch.bfloat16)
    assert torch.equal(torch.cuda.get_rng_state(), rng)  # the caller's random stream is untouched


# --- benchmarks/gpu.py, at toy sizes on the CPU ---------------------------------------------------


def _gpu_benchmark():
    return load_benchmark("gpu")


@pytest.mark.slow
def test_the_gpu_benchmark_runs_on_the_cpu_and_reports_every_part(images, tiny_weights_file, tmp_path):
    bench = _gpu_benchmark()
    report_file = tmp_path / "report.md"
    args = ["--device", "cpu", "--sizes", "32", "--iterations", "2", "--probe-iterations", "3", "--probe-skip", "1"]
    args += ["--content", str(images.content), "--style", str(images.style), "--weights", str(tiny_weights_file)]
    args += ["--batches", "1,2", "--batch-size", "32", "--compile", "whole", "--compile-precisions", "fp32"]
    assert bench.main(args + ["--report", str(report_file)]) == 0
    report = report_file.read_text()
    rows = [line for line in report.splitlines() if line.startswith("| 32 |")]
    assert len(rows) == 3, report  # floor, per iteration, default run
    floor, per_iteration, default = (row.split(" | ") for row in rows)
    assert float(floor[2]) > 0 and floor[3] == "no: not a CUDA tensor (device cpu)"
    assert float(per_iteration[1]) > 0 and float(per_iteration[2]) >= 1
    assert per_iteration[6] == "python |"  # L-BFGS's phases: CUDA graphs on CUDA only
    assert "| 32, `cuda_graphs=False` |" in report  # the same probe without graphs (python here too)
    assert default[4] == "2" and float(default[3]) >= 0  # iterations of the scaled-down default run; level set-ups
    assert "to relu3_1" in report  # the tiny weights file stops at conv3_1
    # The naive loop needs all of VGG19: its error is reported and the script went on.
    assert "error: KeyError" in report and "scaled down from the default 500" in report
    # Batch throughput: runs evaluated together (engine.run_together), each with its 3 iterations.
    batch_rows = [line.split(" | ") for line in report.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert [row[0] for row in batch_rows] == ["| 1", "| 2"], report
    assert all(float(row[1]) > 0 for row in batch_rows) and batch_rows[0][2] == "1.00"
    assert [int(row[3]) for row in batch_rows][1] == 2 * int(batch_rows[0][3])  # each run its own evaluations
    assert all(row[-1] == "eager: no graphs |" for row in batch_rows)  # the batch's pass: a CUDA graph on CUDA only
    # The torch.compile probe (benchmarks/compile.py's table): forward and backward one graph, the
    # compiled evaluation's loss and gradient those of the eager one.
    probe = [line.split(" | ") for line in report.splitlines() if "| fp32 | trace_autograd_ops |" in line]
    assert len(probe) == 1, report
    probe = probe[0]
    assert all(float(probe[k].split()[0]) > 0 for k in (3, 4, 5, 6)), probe  # compile s, ms, ms, ratio
    assert float(probe[7].split()[0]) <= 1e-4 * float(probe[7].split("of ")[1].rstrip(")")), probe  # loss
    assert float(probe[8].split(" (")[1].rstrip(")")) <= 1e-4, probe  # gradient, relative to its largest entry
    assert probe[9] == "1 / 0" and probe[10] == "– |", probe  # one graph; CUDA graphs on CUDA only

    # Into the docs, between markers; a second write replaces the section.
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nother text\n")
    bench.write_docs(report, docs)
    bench.write_docs(report.replace("| 32 |", "| 33 |"), docs)
    text = docs.read_text()
    assert text.count(bench.START) == 1 and text.count("## GPU") == 1
    assert "| 33 |" in text and "| 32 |" not in text and text.startswith("# Benchmarks\n\nother text")


@pytest.mark.slow
def test_the_gpu_benchmark_skips_what_is_past_its_budget(images, tiny_weights_file, tmp_path):
    bench = _gpu_benchmark()
    args = ["--device", "cpu", "--sizes", "32,48", "--budget-s", "0", "--content", str(images.content)]
    args += ["--style", str(images.style), "--weights", str(tiny_weights_file), "--report", str(tmp_path / "r.md")]
    assert bench.main(args) == 0
    report = (tmp_path / "r.md").read_text()
    # three tables of two sizes (the per-iteration one also without CUDA graphs), the naive loop,
    # and the batch table's three batch sizes
    assert report.count("skipped (budget") == 3 * 2 + 1 + 1 + 3
    assert "--budget-s 0" in report  # the command that made it
    # A run still going past 1.25 × the budget is stopped from its progress callback.
    options = dict(bench.layer_options(__import__("painterly").load_weights(str(tiny_weights_file))), multiscale=False)
    run = bench.painterly_run(str(images.content), str(images.style), 32, 50, torch.device("cpu"), bench.Clock(0), options | {"weights": str(tiny_weights_file)})
    assert run["stopped"] == "stopped at iteration 1 (time limit)" and len(run["marks"]) == 1


def test_the_gpu_benchmark_counts_each_levels_first_iteration_beyond_its_median_as_set_up():
    bench = _gpu_benchmark()
    marks = [(1, 1, 1.0), (2, 2, 1.1), (3, 3, 1.2), (4, 4, 2.0), (5, 5, 2.1), (6, 6, 2.2)]
    # Level 0: gaps 1.0, 0.1, 0.1 → 0.9 of set-up; level 1: 0.8, 0.1, 0.1 → 0.7.
    assert bench.level_setups({"marks": marks, "levels": [0, 0, 0, 1, 1, 1]}) == pytest.approx(1.6)
