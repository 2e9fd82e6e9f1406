"""painterly on a GPU: the floor, painterly's cost per iteration, the naive loop, the default run's
wall time and peak memory per size — one command, one markdown report.

    python benchmarks/gpu.py --content ../shared/images/tubingen.jpg --style ../shared/images/starry_night.jpg \\
        [--sizes 512,1024,2048,4096] [--iterations 500] [--budget-s 420] [--compile default,whole] [--write-docs] [--report FILE]

Smoke test of the script itself on the CPU (tiny sizes; numbers meaningless):

    python benchmarks/gpu.py --device cpu --sizes 64,96 --iterations 3 --content C.png --style S.png

What it measures (each part wrapped: a failing measurement prints its error in its table cell and the
script goes on, so that one GPU session gives as much as it can):

* The floor: VGG19 to relu5_1 (or the deepest layer the weights have), forward + backward to the
  input, bf16 autocast (fp32 on the CPU), channels_last, captured as one CUDA graph with
  :func:`painterly.graphs.capture`: ms per evaluation. No loss, no optimiser: what an evaluation
  cannot go below.
* painterly per iteration: ``painterly.stylize`` single scale at the size, ``--probe-iterations``
  iterations; ms per iteration and evaluations per iteration from the progress callbacks after the
  first ``--probe-skip`` (warm-up, capture) — and the first iteration's time separately; how
  L-BFGS's phases ran; and the first size again with ``cuda_graphs=False`` (what the graphs are worth).
* With ``--compile MODES``: ``torch.compile`` of one evaluation at the first size, against the eager
  one, both replayed as CUDA graphs (benchmarks/compile.py's table, ``--compile-precisions``): whether
  compiling pays on this device (it did not on the CPU: docs/benchmarks.md).
* The naive loop (benchmarks/naive.py's network, losses and torch.optim.LBFGS, fp32 NCHW) at the
  first size, ``--iterations`` iterations.
* The default run: ``painterly.stylize`` with its defaults (multi-scale) and ``--iterations``
  iterations (500 is the default; fewer is said in the table): wall time of the call, the run's own
  elapsed time, peak CUDA memory (``torch.cuda.max_memory_allocated``, reset before each run).

``--budget-s``: before each measurement the time spent so far is checked; past the budget the rest
(the largest sizes, measured last) is skipped, and a run still going at 1.25 × the budget is stopped
from its progress callback and reported as partial. ``--write-docs`` puts the report into
docs/benchmarks.md between the ``benchmark:gpu`` markers; ``--from-report FILE --write-docs`` does
that with a report made earlier (e.g. on another machine) without measuring.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- benchmark:gpu:start -->", "<!-- benchmark:gpu:end -->"


class OutOfTime(Exception):
    """Raised from a progress callback to stop a run past the hard time limit."""


class Clock:
    def __init__(self, budget_s: float):
        self.t0 = time.perf_counter()
        self.budget_s = budget_s

    @property
    def spent(self) -> float:
        return time.perf_counter() - self.t0

    def over(self) -> bool:
        return self.spent > self.budget_s

    def hard_over(self) -> bool:
        return self.spent > 1.25 * self.budget_s


def attempt(fn: Callable[[], Any], device: torch.device) -> tuple[Any, str | None]:
    """``(fn(), None)`` or ``(None, "Error: first line")``; frees cached CUDA memory after an error."""
    try:
        return fn(), None
    except Exception as exc:  # noqa: BLE001 — every failure becomes a table cell
        traceback.print_exc(file=sys.stderr)
        if device.type == "cuda":
            try:
                torch.cuda.synchronize(device)
                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001
                pass
        text = str(exc).strip().splitlines()
        return None, f"{type(exc).__name__}: {text[0] if text else ''}".strip()[:160]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        sync(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def shape_for(size: int, aspect: float) -> tuple[int, int, int, int]:
    """``(1, 3, H, W)`` with the longest side ``size`` and W/H = ``aspect``."""
    if aspect >= 1:
        return (1, 3, max(1, round(size / aspect)), size)
    return (1, 3, size, max(1, round(size * aspect)))


# --- the floor ---------------------------------------------------------------------------------------
def floor(encoder: torch.nn.Module, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype | None, repeats: int = 10) -> dict:
    """ms per forward + backward to the input of ``encoder`` (on ``device``, channels_last), captured
    as a CUDA graph where possible. Returns ``{"ms", "graph": None or why not}``."""
    from painterly.graphs import capture

    x = torch.rand(shape, device=device).contiguous(memory_format=torch.channels_last)

    def evaluate(inp: torch.Tensor):
        inp = inp.detach().requires_grad_(True)
        with torch.enable_grad():
            # (The autocast cache must be off while capturing a graph.)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None, cache_enabled=False):
                feats = encoder(inp)
            total = sum(f.float().mean() for f in feats.values())
            (grad,) = torch.autograd.grad(total, inp)
        return total.detach(), grad, total.detach().reshape(1)

    fn, why = capture(evaluate, x)
    for _ in range(2):
        fn(x)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    sync(device)
    return {"ms": (time.perf_counter() - t0) * 1000 / repeats, "graph": why}


def floor_encoder(weights: Any, device: torch.device) -> tuple[torch.nn.Module, str]:
    """VGG19 to relu5_1 (or the deepest ReLU the weights have), frozen, on ``device``, channels_last."""
    from painterly.encoder import VGG19Encoder

    deepest = "relu5_1" if "conv5_1" in weights.convs else "relu" + weights.convs[-1][4:]
    enc = VGG19Encoder(weights.state, weights.preprocessing, (deepest,))
    return enc.to(device).to(memory_format=torch.channels_last).eval(), deepest


# --- painterly -------------------------------------------------------------------------------------
def layer_options(weights: Any) -> dict:
    """Config options restricting the layers to those the weights have (none for full VGG19)."""
    if "conv5_1" in weights.convs:
        return {}
    relus = ["relu" + c[4:] for c in weights.convs]
    return {"content_layers": (relus[-1],), "style_layers": tuple(r for r in relus if r.endswith("_1"))}


def painterly_run(content: str, style: str, size: int, iterations: int, device: torch.device, clock: Clock, options: dict) -> dict:
    """One ``painterly.stylize`` call; progress marks, wall time, peak memory. Stopped (partial) if
    the hard time limit passes."""
    import painterly

    marks: list[tuple[int, int, float]] = []
    levels: list[int] = []

    def callback(p) -> None:  # noqa: ANN001
        marks.append((p.iteration, p.evaluations, p.elapsed))
        levels.append(p.level)
        if clock.hard_over():
            raise OutOfTime(f"stopped at iteration {p.iteration} (time limit)")

    from painterly.engine import optimizers

    # Which way L-BFGS's phases ran (CUDA graphs, or Python and why): the runners the run made.
    runners, make_runner = [], optimizers.phase_runner
    optimizers.phase_runner = lambda dev: runners.append(make_runner(dev)) or runners[-1]  # noqa: E731
    reset_peak(device)
    t0 = time.perf_counter()
    stopped = None
    try:
        painterly.stylize(content, style, size=size, iterations=iterations, device=str(device), seed=0, callback=callback, **options)
    except OutOfTime as exc:
        stopped = str(exc)
    finally:
        optimizers.phase_runner = make_runner
    sync(device)
    return {"wall": time.perf_counter() - t0, "marks": marks, "levels": levels, "peak": peak_gib(device), "stopped": stopped, "phases": phases_note(runners)}


def level_setups(run: dict) -> float:
    """Seconds the run spent starting its levels: each level's first iteration (targets, the graph
    captures, cuDNN's algorithm search at a new shape) beyond that level's median iteration."""
    elapsed = [0.0] + [m[2] for m in run["marks"]]
    by_level: dict[int, list[float]] = {}
    for k, level in enumerate(run["levels"]):
        by_level.setdefault(level, []).append(elapsed[k + 1] - elapsed[k])
    return sum(max(0.0, gaps[0] - statistics.median(gaps[1:] or gaps)) for gaps in by_level.values())


def phases_note(runners: list) -> str:
    """How L-BFGS's phases ran: ``graphs (N captured)``, ``python`` (off CUDA) or ``python: why``."""
    failed = [r.failed for r in runners if getattr(r, "failed", None)]
    if failed:
        return f"python: {failed[0]}"
    captured = sum(getattr(r, "captured", 0) for r in runners)
    return f"graphs ({captured} captured)" if any(hasattr(r, "captured") for r in runners) else "python"


def batch_run(content: str, style: str, size: int, batch: int, iterations: int, skip: int, device: torch.device, options: dict) -> dict:
    """``batch`` runs (seeds 0..batch-1) of ``iterations`` single-scale iterations evaluated together
    (``painterly.engine.run_together``): image-iterations per second after the first ``skip`` rounds
    (at least until the batch's pass has been captured as a graph), and how the passes ran."""
    from painterly import Config
    from painterly.engine import StyleTransfer, load_inputs, run_together
    from painterly.engine.batched import CAPTURE_AFTER, SharedEvaluation, batch_capture

    base = Config(size=size, iterations=iterations, multiscale=False, device=str(device), seed=0, **options)
    first = StyleTransfer(base)
    inputs = load_inputs(base, content, [style])
    runs = [StyleTransfer(base.replace(seed=k), encoder=first.encoder).start(inputs) for k in range(batch)]
    capture = batch_capture(runs)
    shared = SharedEvaluation(batch, capture=capture)
    if capture is not None:
        skip = min(max(skip, CAPTURE_AFTER + 2), iterations - 2)
    reset_peak(device)
    done, t_skip = 0, None
    t0 = time.perf_counter()
    for _, p in run_together(runs, shared):
        done += 1
        if done == skip * batch:
            sync(device)
            t_skip = time.perf_counter()
    sync(device)
    wall = time.perf_counter() - (t_skip or t0)
    counted = done - (skip * batch if t_skip else 0)
    passes = f"graphs ({shared.captured} captured)" if shared.captured else f"eager: {shared.failed or 'no graphs'}"
    return {"rate": counted / wall, "wall": time.perf_counter() - t0, "evaluations": sum(r.evaluations for r in runs), "peak": peak_gib(device), "passes": passes, "skip": skip}


def per_iteration(run: dict, skip: int) -> tuple[float, float]:
    """(ms per iteration, evaluations per iteration) over the marks after the first ``skip``."""
    marks = run["marks"]
    if len(marks) < 2:
        raise RuntimeError(f"only {len(marks)} iterations reported")
    skip = min(skip, len(marks) - 2)
    (i0, e0, t0), (i1, e1, t1) = marks[skip], marks[-1]
    return (t1 - t0) * 1000 / (i1 - i0), (e1 - e0) / (i1 - i0)


def compile_probe(args: argparse.Namespace, size: int, device: torch.device, weights: Any, options: dict) -> list[str]:
    """benchmarks/compile.py's table at ``size`` on ``device`` (its rows are failures, not errors)."""
    sys.path.insert(0, str(HERE))
    import compile as compile_bench

    precisions = [p for p in args.compile_precisions.split(",") if p]
    modes = [m for m in args.compile.split(",") if m]
    unknown = [m for m in modes if m not in compile_bench.MODES]
    if unknown:
        raise ValueError(f"--compile: {', '.join(unknown)} not among {', '.join(compile_bench.MODES)}")
    return compile_bench.table(args.content, args.style, size, precisions, modes, str(device), 10, weights, options)


# --- the naive loop --------------------------------------------------------------------------------
def naive_run(content: str, style: str, size: int, iterations: int, state: dict, device: torch.device, clock: Clock) -> dict:
    """benchmarks/naive.py's loop (its network, losses and torch.optim.LBFGS, fp32 NCHW) on ``device``,
    inputs resized to ``size`` first (as bench.py hands them)."""
    import torch.nn.functional as F

    sys.path.insert(0, str(HERE))
    import naive

    from painterly.imageio import load_image

    vgg = naive.VGG(state).eval().to(device)
    c_img, s_img = (load_image(path, size=size).to(device) for path in (content, style))
    reset_peak(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        content_t = vgg(c_img, naive.CONTENT_LAYERS)
        style_t = {n: naive.gram(f) for n, f in vgg(s_img, naive.STYLE_LAYERS).items()}
    img = c_img.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([img], lr=1.0, max_iter=20, history_size=100, tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    evals = 0

    def closure():
        nonlocal evals
        evals += 1
        opt.zero_grad()
        feats = vgg(img, naive.CONTENT_LAYERS + naive.STYLE_LAYERS)
        c = sum(F.mse_loss(feats[n], content_t[n]) for n in naive.CONTENT_LAYERS) / len(naive.CONTENT_LAYERS)
        s = sum(F.mse_loss(naive.gram(feats[n]), style_t[n]) for n in naive.STYLE_LAYERS)
        loss = naive.CONTENT_WEIGHT * c + naive.STYLE_WEIGHT * s + naive.TV_WEIGHT * naive.tv(img)
        loss.backward()
        return loss

    done, stopped = 0, None
    while done < iterations:
        if clock.hard_over():
            stopped = f"stopped at iteration {done} (time limit)"
            break
        opt.param_groups[0]["max_iter"] = min(20, iterations - done)
        opt.step(closure)
        done = opt.state[opt._params[0]]["n_iter"]
    sync(device)
    wall = time.perf_counter() - t0
    return {"wall": wall, "iterations": done, "evaluations": evals, "peak": peak_gib(device), "stopped": stopped}


# --- the report ------------------------------------------------------------------------------------
def fmt(value: Any, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def measure(args: argparse.Namespace) -> str:
    """Run every measurement; return the markdown report."""
    from painterly.devices import resolve_device
    from painterly.graphs import prepare_cuda
    from painterly.imageio import load_image
    from painterly.weights import load_weights

    device = resolve_device(args.device)
    clock = Clock(args.budget_s)
    sizes = [int(v) for v in args.sizes.split(",")]
    lines: list[str] = []
    cmd = "python benchmarks/gpu.py " + " ".join(args.argv)
    lines += [f"Command: `{cmd}`  ", f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  "]
    if device.type == "cuda":
        prepare_cuda()
        props = torch.cuda.get_device_properties(device)
        lines.append(f"Device: {props.name} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}  ")
    else:
        lines.append(f"Device: {device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), torch {torch.__version__}: a smoke test, the numbers mean nothing  ")
    weights, err = attempt(lambda: load_weights(args.weights), device)
    if weights is None:
        return "\n".join(lines + ["", f"**weights could not be loaded**: {err}", ""])
    options = layer_options(weights)
    aspect_img, err = attempt(lambda: load_image(args.content), device)
    aspect = aspect_img.shape[-1] / aspect_img.shape[-2] if aspect_img is not None else 1.0
    lines.append(f"Weights: {weights.source}; images: {Path(args.content).name} × {Path(args.style).name} (aspect {aspect:.3f})  ")
    if options:
        lines.append(f"Layers limited to the weights': {options}  ")
    lines.append("")

    # The floor.
    floor_dtype = torch.bfloat16 if device.type == "cuda" else None
    built, err = attempt(lambda: floor_encoder(weights, device), device)
    encoder, deepest = built if built is not None else (None, "relu5_1")
    lines += [
        f"**Floor**: VGG19 to {deepest}, forward + backward to the input, {'bf16 autocast' if floor_dtype else 'fp32'}, channels_last, one CUDA graph per evaluation",
        "",
        "| size | input | ms per evaluation | graph | peak GiB |",
        "|---|---|---|---|---|",
    ]
    for size in sizes:
        shape = shape_for(size, aspect)
        if clock.over() or encoder is None:
            lines.append(f"| {size} | {shape[3]}×{shape[2]} | {err if encoder is None else f'skipped (budget: {clock.spent:.0f} s spent)'} | | |")
            continue
        reset_peak(device)
        got, err2 = attempt(lambda: floor(encoder, shape, device, floor_dtype), device)
        graph = "–" if got is None else ("yes" if got["graph"] is None else f"no: {got['graph']}")
        lines.append(f"| {size} | {shape[3]}×{shape[2]} | {err2 or fmt(got['ms'], '.2f')} | {graph} | {fmt(peak_gib(device), '.2f')} |")
    del encoder
    print("\n".join(lines), flush=True)

    # painterly per iteration, single scale.
    lines += [
        "",
        f"**painterly per iteration**: `painterly.stylize(..., size=S, multiscale=False, iterations={args.probe_iterations}, device=..., seed=0)`; "
        f"rates over the iterations after the first {args.probe_skip}",
        "",
        "| size | ms per iteration | evaluations per iteration | ms per evaluation | first iteration (ms) | peak GiB | L-BFGS phases |",
        "|---|---|---|---|---|---|---|",
    ]
    # Each size with CUDA graphs, then the first size without (what the graphs are worth).
    for size, graphs in [(size, True) for size in sizes] + [(sizes[0], False)]:
        label = f"{size}" if graphs else f"{size}, `cuda_graphs=False`"
        if clock.over():
            lines.append(f"| {label} | skipped (budget: {clock.spent:.0f} s spent) | | | | | |")
            continue
        probe_options = dict(options, multiscale=False, cuda_graphs=graphs)
        run, err = attempt(lambda: painterly_run(args.content, args.style, size, args.probe_iterations, device, clock, probe_options), device)
        rates, err2 = (None, err) if run is None else attempt(lambda: per_iteration(run, args.probe_skip), device)
        if rates is None:
            lines.append(f"| {label} | {err2} | | | | | |")
            continue
        ms, evals = rates
        first = run["marks"][0][2] * 1000
        note = f" ({run['stopped']})" if run["stopped"] else ""
        lines.append(f"| {label} | {ms:.2f}{note} | {evals:.2f} | {ms / evals:.2f} | {first:.0f} | {fmt(run['peak'], '.2f')} | {run['phases']} |")
    print("\n".join(lines[-len(sizes) - 2:]), flush=True)

    if args.compile:
        lines += ["", f"**torch.compile probe** (benchmarks/compile.py, modes {args.compile}) at {sizes[0]} px: one evaluation, eager against compiled", ""]
        if clock.over():
            lines.append(f"skipped (budget: {clock.spent:.0f} s spent)")
        else:
            got, err = attempt(lambda: compile_probe(args, sizes[0], device, weights, options), device)
            lines += got if got is not None else [f"error: {err}"]
        print("\n".join(lines[-6:]), flush=True)

    # The naive loop at the first size.
    size = sizes[0]
    lines += ["", f"**Naive loop** (benchmarks/naive.py: torch.optim.LBFGS, fp32 NCHW) at {size} px, {args.iterations} iterations", ""]
    if clock.over():
        lines.append(f"skipped (budget: {clock.spent:.0f} s spent)")
    else:
        got, err = attempt(lambda: naive_run(args.content, args.style, size, args.iterations, dict(weights.state), device, clock), device)
        if got is None:
            lines.append(f"error: {err}")
        else:
            lines.append(
                f"{got['wall']:.2f} s for {got['iterations']} iterations, {got['evaluations']} evaluations: "
                f"{got['wall'] * 1000 / got['iterations']:.2f} ms per iteration, {got['wall'] * 1000 / got['evaluations']:.2f} ms per evaluation; "
                f"peak {fmt(got['peak'], '.2f')} GiB" + (f" ({got['stopped']})" if got["stopped"] else "")
            )
    print(lines[-1], flush=True)

    # The default run.
    scaled = "" if args.iterations == 500 else f" — scaled down from the default 500 with --iterations {args.iterations}"
    lines += [
        "",
        f"**Default run**: `painterly.stylize(content, style, size=S, iterations={args.iterations}, device=..., seed=0)` (multi-scale, precision auto){scaled}",
        "",
        "| size | wall time (s) | run's elapsed (s) | of which level set-ups (s) | iterations | evaluations | ms per iteration | peak GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        if clock.over():
            lines.append(f"| {size} | skipped (budget: {clock.spent:.0f} s spent) | | | | | | |")
            continue
        run, err = attempt(lambda: painterly_run(args.content, args.style, size, args.iterations, device, clock, options), device)
        if run is None or not run["marks"]:
            lines.append(f"| {size} | {err or 'no progress reported'} | | | | | | |")
            continue
        it, ev, el = run["marks"][-1]
        note = f" ({run['stopped']})" if run["stopped"] else ""
        setups = level_setups(run)
        lines.append(f"| {size} | {run['wall']:.2f}{note} | {el:.2f} | {setups:.2f} | {it} | {ev} | {el * 1000 / it:.2f} | {fmt(run['peak'], '.2f')} |")
        print(lines[-1], flush=True)

    from painterly.engine.batched import CAPTURE_AFTER

    lines += [
        "",
        f"**Batch throughput** at {args.batch_size} px: B runs (seeds 0..B−1, {args.probe_iterations} single-scale iterations each) "
        "evaluated together, one encoder pass per round (`painterly.engine.run_together`), the pass a CUDA graph once a group has "
        f"met {CAPTURE_AFTER} times; image-iterations per second after the rounds skipped (warm-up and capture)",
        "",
        "| batch | image-iterations/s | × batch 1 | evaluations | wall (s) | peak GiB | rounds skipped | passes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base_rate = None
    for batch in [int(v) for v in args.batches.split(",")]:
        if clock.over():
            lines.append(f"| {batch} | skipped (budget: {clock.spent:.0f} s spent) | | | | | | |")
            continue
        got, err = attempt(lambda: batch_run(args.content, args.style, args.batch_size, batch, args.probe_iterations, args.probe_skip, device, options), device)
        if got is None:
            lines.append(f"| {batch} | {err} | | | | | | |")
            continue
        base_rate = base_rate or (got["rate"] if batch == 1 else None)
        ratio = f"{got['rate'] / base_rate:.2f}" if base_rate else "–"
        lines.append(f"| {batch} | {got['rate']:.1f} | {ratio} | {got['evaluations']} | {got['wall']:.2f} | {fmt(got['peak'], '.2f')} | {got['skip']} | {got['passes']} |")
        print(lines[-1], flush=True)
    lines.append("")
    lines.append(f"Total time of this report: {clock.spent:.0f} s (budget {args.budget_s:.0f} s).")
    return "\n".join(lines) + "\n"


def write_docs(report: str, path: Path = DOCS) -> None:
    """Put ``report`` between the gpu markers of docs/benchmarks.md (a "## GPU" section at the end
    if the markers are not there yet)."""
    from painterly.files import write_bytes

    text = path.read_text(encoding="utf-8")
    block = f"{START}\n{report.rstrip()}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## GPU\n\nMade by `benchmarks/gpu.py` (see its docstring for the method).\n\n" + block + "\n"
    write_bytes(path, text.encode("utf-8"), mode=0o644)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--content", help="content image (tubingen.jpg)")
    p.add_argument("--style", help="style image (starry_night.jpg)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--sizes", default="512,1024,2048,4096", help="longest sides, smallest first")
    p.add_argument("--iterations", type=int, default=500, help="iterations of the default runs and the naive loop")
    p.add_argument("--probe-iterations", type=int, default=30, help="iterations of the per-iteration runs")
    p.add_argument("--probe-skip", type=int, default=5, help="iterations left out of the per-iteration rates")
    p.add_argument("--batches", default="1,4,16", help="batch sizes of the throughput table")
    p.add_argument("--batch-size", type=int, default=512, help="longest side of the throughput table's images")
    p.add_argument("--budget-s", type=float, default=420.0, help="skip what is left after this many seconds")
    p.add_argument("--compile", default="", metavar="MODES", help="also probe torch.compile of one evaluation in these modes (default,static,whole: benchmarks/compile.py)")
    p.add_argument("--compile-precisions", default="bf16,fp32", help="precisions of the torch.compile probe")
    p.add_argument("--weights", default="caffe", help="caffe, torchvision or a weights file")
    p.add_argument("--write-docs", action="store_true", help="put the report into docs/benchmarks.md")
    p.add_argument("--report", help="also write the report to this file")
    p.add_argument("--from-report", help="do not measure: take the report from this file (with --write-docs)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.from_report:
        report = Path(args.from_report).read_text(encoding="utf-8")
    else:
        if not (args.content and args.style):
            p.error("--content and --style are needed to measure")
        report = measure(args)
        print("\n" + report)
    if args.report and not args.from_report:
        from painterly.files import write_bytes

        write_bytes(args.report, report.encode("utf-8"), mode=0o644)
    if args.write_docs:
        write_docs(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
