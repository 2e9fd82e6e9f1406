"""The style losses (``--style-loss``) measured: their cost per evaluation against Gram, and their
value at the content start (what STYLE_LOSS_SCALES is calibrated from).

    flock /work/wt/bench.lock python benchmarks/style_losses.py --size 512 --repeats 5 --peak
    python benchmarks/style_losses.py --calibrate --size 256

Speed: one process, real VGG19 (caffe), single scale at --size, precision auto, all four kinds built
on the same inputs; each evaluation (forward, style terms, backward) timed --repeats times after one
warm-up, the kinds interleaved round by round (the order rotated each round) so that a change of
machine load hits all of them; reported: the medians' ratio and the median of each round's ratio to
that round's Gram evaluation (steadier on a loaded machine). The sliced loss's redraw (new
directions, styles projected and sorted) happens once per SLICED_REDRAW_EVERY iterations, not per
evaluation: it is timed apart. Calibration: each kind's *unweighted*
style value (style_weight 1, scale 1) at the content image, over the Gram loss's; run on each pair
given and the geometric mean taken. Prints markdown tables and the command that made them.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("gram", "w2", "sliced", "histogram")


def _run_for(kind: str, size: int, content, style, weight: float = 100.0):
    from painterly import Config
    from painterly.engine import StyleTransfer
    from painterly.engine.style_terms import STYLE_LOSS_SCALES

    cfg = Config(size=size, multiscale=False, iterations=2, style_loss=kind, style_weight=weight, seed=0, init="content", init_colors="own")
    transfer = StyleTransfer(cfg)
    run = transfer.start(content, [style])
    run.work = run._begin_level()  # targets, objective, optimiser of the level, as a run's first step builds them
    return run, STYLE_LOSS_SCALES


def speed(args) -> None:
    from painterly.engine.style_terms import SLICED_REDRAW_EVERY
    from painterly.imageio import load_image

    content, style = load_image(args.content), load_image(args.style)
    runs = {k: _run_for(k, args.size, content, style)[0] for k in KINDS}
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    redraw: list[float] = []
    for k, run in runs.items():  # warm-up
        run.work.objective.value_and_grad(run.work.x)
    for r in range(args.repeats):
        order = KINDS[r % len(KINDS):] + KINDS[:r % len(KINDS)]  # rotated: no kind always runs first
        for k in order:
            run = runs[k]
            if k == "sliced":
                t = time.perf_counter()
                run.work.objective.begin_iteration(0, (len(redraw) + 1) * SLICED_REDRAW_EVERY)  # one that redraws
                redraw.append(time.perf_counter() - t)
            t = time.perf_counter()
            run.work.objective.value_and_grad(run.work.x)
            times[k].append(time.perf_counter() - t)
    run = runs["gram"]
    h, w = run.work.x.shape[-2:]
    base = statistics.median(times["gram"])
    print(f"`{_command()}`\n")
    print(f"{w}×{h} px, precision {run.transfer.autocast_dtype or 'fp32'}, {torch.get_num_threads()} threads, "
          f"load average before/after: {args.load0} / {os.getloadavg()[0]:.2f}\n")
    print("| style loss | s / evaluation (median) | × gram (medians) | × gram (median of the rounds' ratios) | min–max |")
    print("|---|---|---|---|---|")
    for k in KINDS:
        m = statistics.median(times[k])
        per_round = statistics.median(t / g for t, g in zip(times[k], times["gram"]))
        print(f"| {k} | {m:.3f} | {m / base:.2f} | {per_round:.2f} | {min(times[k]):.3f}–{max(times[k]):.3f} |")
    r = statistics.median(redraw)
    print(f"\nsliced redraw (once every {SLICED_REDRAW_EVERY} iterations): median {r:.3f} s = {r / base:.2f} × a gram evaluation")
    if args.peak:
        print(f"\nhost peak (benchmarks/bench.py's large 3×3 convolution, best of 20): {_peak()}")


def _peak() -> str:
    """The host's convolution GFLOP/s, measured by benchmarks/bench.py's own worker (a subprocess)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench

    _, _, _, res = bench.run_child(bench.worker("peak"), bench.plain_env())
    bf16 = f"{res['bf16']:.0f} GFLOP/s" if res["bf16"] else "n/a"
    return f"fp32 {res['fp32']:.0f} GFLOP/s, bf16 {bf16}, {res['threads']} threads"


def calibrate(args) -> None:
    from painterly.imageio import load_image

    pairs = [(args.content, s) for s in args.styles or [args.style]]
    ratios: dict[str, list[float]] = {k: [] for k in KINDS}
    print(f"`{_command()}`\n")
    print("| pair | " + " | ".join(f"{k} (unweighted)" for k in KINDS) + " |")
    print("|---|" + "---|" * len(KINDS))
    for c, s in pairs:
        content, style = load_image(c), load_image(s)
        values = {}
        for k in KINDS:
            run, _ = _run_for(k, args.size, content, style, weight=1.0)
            with torch.no_grad():
                terms = run.work.objective(run.work.x).as_dict()
            # Each term at weight 1 × its current scale: undo the scale to get the raw value.
            from painterly.engine.style_terms import STYLE_LOSS_SCALES

            key = "histogram" if k == "histogram" else "style"
            values[k] = terms[key] / (STYLE_LOSS_SCALES[k] if k != "gram" else 1.0)
        for k in KINDS:
            ratios[k].append(values["gram"] / values[k])
        print(f"| {Path(c).stem} × {Path(s).stem} | " + " | ".join(f"{values[k]:.4g}" for k in KINDS) + " |")
    print("\nscale = geometric mean of gram / kind: " + ", ".join(
        f"{k} {math.exp(statistics.fmean(math.log(r) for r in ratios[k])):.4g}" for k in KINDS))


def _command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", default=str(ROOT / "src/painterly/assets/demo_content.jpg"))
    parser.add_argument("--style", default=str(ROOT.parent.parent / "shared/images/starry_night.jpg"))
    parser.add_argument("--styles", nargs="*", help="calibration: several styles, each paired with --content")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--peak", action="store_true", help="also measure the host's peak GFLOP/s (benchmarks/bench.py)")
    args = parser.parse_args()
    args.load0 = f"{os.getloadavg()[0]:.2f}"
    calibrate(args) if args.calibrate else speed(args)


if __name__ == "__main__":
    main()
