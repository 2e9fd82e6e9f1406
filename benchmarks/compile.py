"""``torch.compile`` against eager for one loss evaluation (``Objective.evaluation``: VGG19 forward to
the layers the default config needs, content + Gram style + TV losses, backward to the input), on
this machine's CPU (or ``--device``) — one command, one markdown table.

    python benchmarks/compile.py --content ../shared/images/tubingen.jpg --style ../shared/images/starry_night.jpg \\
        [--size 512] [--precisions fp32,bf16] [--modes default,static,whole] [--repeats 5] [--levels]

For each precision: the default stylize config's objective, single level at ``--size`` (real weights,
built through ``StyleTransfer`` as a run builds it), evaluated at the content image plus noise; eager
against ``torch.compile(objective.evaluation)`` in each ``--modes``:

* ``default``: torch.compile's defaults. ``requires_grad_`` and ``torch.autograd.grad`` break the
  graph: the forward and the losses are compiled, the backward is AOTAutograd's compiled backward.
* ``static``: ``dynamic=False`` (no symbolic shapes when a level's shape changes).
* ``whole``: ``torch._dynamo.config.trace_autograd_ops = True``: forward and backward one graph.

On CUDA both sides are captured as one CUDA graph each with ``painterly.graphs.capture``, as a run
evaluates there (the last column says where capture fell back). Columns: the compiled function's
first call (compile included; caches cold: a fresh ``TORCHINDUCTOR_CACHE_DIR`` per row — and
again from the caches it filled, what a second run would pay), the median (and best) ms per
evaluation of ``--repeats`` calls after two warm-up calls, interleaved eager/compiled (the machine
may be shared), compiled/eager, and the largest absolute difference of the loss and of the gradient
from eager (the gradient's also relative to its largest entry). A compile that fails puts its
reason in the row (one line).

``--levels`` (instead of the table; its own command, so that its caches are cold too): what a default
multi-scale run would pay — the compile once per pyramid level (its shape changes and the objective is
rebuilt), first precision and first mode: per level the first call's time, the eager and compiled ms
per evaluation, and the net seconds over the level's iterations (first call − one eager evaluation
+ iterations × (compiled − eager); one evaluation per iteration assumed).

Also printed: the machine's 3×3-conv peak as ``benchmarks/bench.py _peak`` measures it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "images"

import torch

# name: (torch.compile's arguments, dynamo settings, the name in the table)
MODES = {
    "default": ({}, {}, "defaults"),
    "static": ({"dynamic": False}, {}, "dynamic=False"),
    # The backward traced into the same graph (by default torch.autograd.grad is a graph break).
    "whole": ({}, {"trace_autograd_ops": True}, "trace_autograd_ops"),
}


def peak_line() -> str:
    """The 3×3-conv peak of this machine, measured by bench.py's own worker (in a subprocess)."""
    sys.path.insert(0, str(HERE))
    import bench

    try:
        _, _, _, p = bench.run_child(bench.worker("peak"), bench.plain_env())
    except Exception as exc:  # noqa: BLE001 — the peak is context, not the measurement
        return f"Machine peak: not measured ({first_line(exc)})"
    bf16 = f"{p['bf16']:.0f} GFLOP/s" if p.get("bf16") else "n/a (no native bf16)"
    return f"Machine peak (`bench.py _peak`: 3×3 conv, 256→256 channels, 128×128, channels_last, {p['threads']} threads): fp32 {p['fp32']:.0f} GFLOP/s, bf16 {bf16}."


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}".rstrip(": ")


def build(content: str, style: str, size: int, precision: str, device: str, multiscale: bool = False, weights=None, options=None):  # noqa: ANN001
    """``(transfer, inputs, config)``: the default stylize config at ``size`` and ``precision``
    (``weights``: loaded :class:`painterly.weights.Weights`, by default the config's; ``options``:
    more Config fields, e.g. the layers of smaller weights)."""
    from painterly.config import Config
    from painterly.engine import StyleTransfer, build_encoder, load_inputs

    cfg = Config(size=size, precision=precision, multiscale=multiscale, seed=0, **(options or {}))
    encoder = build_encoder(cfg, weights=weights) if weights is not None else None
    transfer = StyleTransfer(cfg, device=device, encoder=encoder)
    return transfer, load_inputs(cfg, content, [style], warn=False), cfg


def objective_at(transfer, inputs, cfg, longest: int):
    """The level's objective (as Run._begin_level builds it) and an image to evaluate it at."""
    from painterly.engine import build_objective, build_targets
    from painterly.engine.pyramid import level_size
    from painterly.imageio import resize

    hw = level_size(inputs, longest)
    targets = build_targets(transfer.encoder, cfg, inputs, longest, hw, transfer.device, transfer.autocast_dtype)
    objective = build_objective(transfer.encoder, cfg, targets, transfer.autocast_dtype)
    g = torch.Generator().manual_seed(0)
    x = (resize(inputs.content, hw) + 0.1 * torch.randn((1, 3, *hw), generator=g)).clamp(0, 1)
    return objective, x.to(transfer.device).contiguous(), hw


@contextlib.contextmanager
def cold_caches():
    """Inductor's on-disk caches in a new, empty folder while inside (then removed): a compile pays
    what it pays on a fresh machine (kernels built earlier in this process may still be reused from
    memory)."""
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="painterly-compile-") as folder:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = before


def compile_fn(fn, mode: str):
    """``torch.compile(fn)`` in ``mode`` (:data:`MODES`); its dynamo settings hold whenever it runs."""
    kwargs, settings, _ = MODES[mode]
    compiled = torch.compile(fn, **kwargs)
    if not settings:
        return compiled

    def call(x):
        with torch._dynamo.config.patch(**settings):
            return compiled(x)

    return call


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, x, device):
    sync(device)
    t = time.perf_counter()
    out = fn(x)
    sync(device)
    return time.perf_counter() - t, out


def interleaved(eager, compiled, x, device: torch.device, repeats: int) -> dict:  # noqa: ANN001
    """ms per evaluation of each, median and best of ``repeats`` calls, taken in turn (a neighbour's
    load hits both alike)."""
    te, tc = [], []
    for _ in range(repeats):
        te.append(timed(eager, x, device)[0])
        tc.append(timed(compiled, x, device)[0])
    return {
        "eager_ms": 1e3 * statistics.median(te), "compiled_ms": 1e3 * statistics.median(tc),
        "eager_best": 1e3 * min(te), "compiled_best": 1e3 * min(tc),
    }


def compare(objective, x, mode: str, repeats: int, device: torch.device) -> dict:
    """One row: compile time, ms per evaluation of each, and the differences from eager."""
    with cold_caches():
        return _compare(objective, x, mode, repeats, device)


def _compare(objective, x, mode: str, repeats: int, device: torch.device) -> dict:
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager = objective.evaluation
    row: dict = {"mode": mode}
    try:
        compiled = compile_fn(eager, mode)
        row["compile_s"], out_c = timed(compiled, x, device)
    except Exception as exc:  # noqa: BLE001 — the table says why, not a traceback
        row["error"] = first_line(exc)
        return row
    breaks = torch._dynamo.utils.counters["graph_break"]
    row["graph_breaks"] = sum(breaks.values())
    row["graphs"] = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    row["break_reasons"] = sorted({str(reason).strip().splitlines()[0] for reason in breaks})
    _, out_e = timed(eager, x, device)
    eager_run, compiled_run = eager, compiled
    if device.type == "cuda":
        # As a run evaluates on CUDA: each replayed as one CUDA graph where it can be captured.
        from painterly.graphs import capture

        eager_run, why_e = capture(eager, x)
        compiled_run, why_c = capture(compiled, x)
        row["cuda_graphs"] = f"eager: {why_e or 'yes'}; compiled: {why_c or 'yes'}"
    interleaved(eager_run, compiled_run, x, device, 2)  # warm-up: allocator, oneDNN primitives
    row.update(interleaved(eager_run, compiled_run, x, device, repeats))
    row["ratio"] = row["compiled_ms"] / row["eager_ms"]
    # What a second run pays: the same graph again, from the on-disk caches the first compile filled.
    torch._dynamo.reset()
    try:
        row["warm_s"], _ = timed(compile_fn(eager, mode), x, device)
    except Exception:  # noqa: BLE001 — compiled once already; a failure here is not the measurement
        row["warm_s"] = float("nan")
    row["d_loss"] = (out_c[0] - out_e[0]).abs().item()
    row["loss"] = out_e[0].abs().item()
    row["d_grad"] = (out_c[1] - out_e[1]).abs().max().item()
    row["grad_max"] = out_e[1].abs().max().item()
    return row


def level_rows(content: str, style: str, size: int, precision: str, mode: str, device: str, repeats: int) -> list[dict]:
    """A default multi-scale run's levels, compiled in order as a run would compile them."""
    from painterly.schedule import plan_levels

    transfer, inputs, cfg = build(content, style, size, precision, device, multiscale=True)
    torch._dynamo.reset()
    rows = []
    with cold_caches():
        for level in plan_levels(cfg):
            rows.append(_level_row(transfer, inputs, cfg, level, mode, repeats))
    return rows


def _level_row(transfer, inputs, cfg, level, mode: str, repeats: int) -> dict:  # noqa: ANN001
    objective, x, hw = objective_at(transfer, inputs, cfg, level.size)
    row = {"hw": hw, "iterations": level.iterations}
    try:
        compiled = compile_fn(objective.evaluation, mode)
        row["first_s"], _ = timed(compiled, x, transfer.device)
    except Exception as exc:  # noqa: BLE001 — the table says why
        row["error"] = first_line(exc)
        return row
    interleaved(objective.evaluation, compiled, x, transfer.device, 1)  # warm-up
    row.update(interleaved(objective.evaluation, compiled, x, transfer.device, repeats))
    # What compiling costs this level net: the first call's excess over an eager call, minus the gain.
    row["net_s"] = row["first_s"] - row["eager_ms"] / 1e3 + level.iterations * (row["compiled_ms"] - row["eager_ms"]) / 1e3
    return row


def table(
    content: str, style: str, size: int, precisions: list[str], modes: list[str], device: str, repeats: int, weights=None, options=None  # noqa: ANN001
) -> list[str]:
    """The markdown table: one row per precision and mode (see the module's docstring)."""
    lines = [
        "| size | precision | torch.compile | first call (compile) s, cold / warm cache | eager ms / eval (best) | compiled ms / eval (best) | compiled / eager (best) | max abs Δ loss | max abs Δ grad (rel. to max grad) | graphs / breaks | CUDA graphs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for precision in precisions:
        transfer, inputs, cfg = build(content, style, size, precision, device, weights=weights, options=options)
        objective, x, hw = objective_at(transfer, inputs, cfg, size)
        for mode in modes:
            r = compare(objective, x, mode, repeats, transfer.device)
            head = f"| {hw[1]}×{hw[0]} | {precision} | {MODES[mode][2]} |"
            if "error" in r:
                lines.append(f"{head} failed: {r['error']} | | | | | | | |")
            else:
                breaks = f" ({'; '.join(r['break_reasons'])})" if r["graph_breaks"] else ""
                lines.append(
                    f"{head} {r['compile_s']:.1f} / {r['warm_s']:.1f} | {r['eager_ms']:.0f} ({r['eager_best']:.0f}) | {r['compiled_ms']:.0f} ({r['compiled_best']:.0f}) | {r['ratio']:.2f} ({r['compiled_best'] / r['eager_best']:.2f}) | "
                    f"{r['d_loss']:.2g} (of {r['loss']:.3g}) | {r['d_grad']:.2g} ({r['d_grad'] / r['grad_max']:.1e}) | "
                    f"{r['graphs']} / {r['graph_breaks']}{breaks} | {r.get('cuda_graphs', '–')} |"
                )
            print(lines[-1], file=sys.stderr, flush=True)
    return lines


def levels_table(a: argparse.Namespace, precision: str, mode: str) -> list[str]:
    lines = [
        f"Per level of a default multi-scale run to {a.size} px ({precision}, torch.compile {MODES[mode][2]}; compiled in order, as a run would, caches cold):",
        "",
        "| level | iterations | first call s | eager ms / eval (best) | compiled ms / eval (best) | net s over the level (+: compiling costs time) |",
        "|---|---|---|---|---|---|",
    ]
    total = 0.0
    for r in level_rows(a.content, a.style, a.size, precision, mode, a.device, a.repeats):
        head = f"| {r['hw'][1]}×{r['hw'][0]} | {r['iterations']} |"
        if "error" in r:
            lines.append(f"{head} failed: {r['error']} | | | |")
        else:
            total += r["net_s"]
            lines.append(f"{head} {r['first_s']:.1f} | {r['eager_ms']:.0f} ({r['eager_best']:.0f}) | {r['compiled_ms']:.0f} ({r['compiled_best']:.0f}) | {r['net_s']:+.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines.append(f"| whole run | | | | | {total:+.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--content", default=str(SHARED / "tubingen.jpg"))
    ap.add_argument("--style", default=str(SHARED / "starry_night.jpg"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--modes", default="default")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--levels", action="store_true", help="instead of the table: the per-level compile of a default multi-scale run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-peak", action="store_true")
    a = ap.parse_args(argv)
    precisions = [p for p in a.precisions.split(",") if p]
    modes = [m for m in a.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            ap.error(f"--modes: {m!r} is not one of {', '.join(MODES)}")
    command = "python benchmarks/compile.py " + " ".join(shlex.quote(x) for x in argv)
    lines = [f"Command: `{command}`  "]
    lines.append(f"Device: {a.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, load average at start {os.getloadavg()[0]:.1f}; inductor caches in a fresh folder per row (per run for --levels).  ")
    if not a.no_peak:
        lines.append(peak_line())
    t0 = time.perf_counter()
    lines += [""] + (levels_table(a, precisions[0], modes[0]) if a.levels else table(a.content, a.style, a.size, precisions, modes, a.device, a.repeats))
    lines.append("")
    lines.append(f"({time.perf_counter() - t0:.0f} s of measurement.)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
