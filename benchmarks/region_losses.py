"""Regions (``--mask``, ``--region``) with each style loss: the cost of one evaluation with a two-region
mask against the same loss without a mask.

    flock /work/wt/bench.lock python benchmarks/region_losses.py --size 512 --repeats 3

One process, real VGG19 (caffe), single scale at --size, precision auto. The mask: the left 45 % of
the content red, the rest blue, with a 16-px feathered edge (soft weights); red takes style 1, blue
style 2; without a mask the two styles are blended. Each evaluation (forward, terms, backward) is timed
--repeats times after one warm-up, the runs interleaved round by round so that a change of machine
load hits all of them; the median is reported. The sliced loss's redraw (once every
SLICED_REDRAW_EVERY iterations) is timed apart.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("gram", "w2", "sliced", "histogram")


def _mask(h: int, w: int) -> torch.Tensor:
    """``(1, 3, h, w)``: red left of 45 % of the width, blue right of it, a 16-px linear ramp between."""
    x = torch.arange(w, dtype=torch.float32)
    t = ((x - 0.45 * w) / 16 + 0.5).clamp(0, 1)  # 0 = red, 1 = blue
    m = torch.zeros(1, 3, h, w)
    m[0, 0] = (1 - t)[None, :]
    m[0, 2] = t[None, :]
    return m


def _run(kind: str, masked: bool, size: int, content, styles):
    from painterly import Config
    from painterly.engine import StyleTransfer, load_inputs

    extra = dict(regions=["red=1", "blue=2"]) if masked else {}
    cfg = Config(size=size, multiscale=False, iterations=2, style_loss=kind, seed=0, init="content", init_colors="own", **extra)
    mask = _mask(*content.shape[-2:]) if masked else None
    inputs = load_inputs(cfg, content, list(styles), **({"mask": mask} if masked else {}))
    run = StyleTransfer(cfg).start(inputs)
    run.work = run._begin_level()  # targets, objective, optimiser of the level, as a run's first step builds them
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", default=str(ROOT / "src/painterly/assets/demo_content.jpg"))
    shared = ROOT.parent.parent / "shared/images"
    parser.add_argument("--styles", nargs=2, default=[str(shared / "starry_night.jpg"), str(shared / "the_scream.jpg")])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    from painterly.engine.style_terms import SLICED_REDRAW_EVERY
    from painterly.imageio import load_image

    content, styles = load_image(args.content), [load_image(s) for s in args.styles]
    runs = {(k, m): _run(k, m, args.size, content, styles) for k in KINDS for m in (False, True)}
    times: dict[tuple[str, bool], list[float]] = {key: [] for key in runs}
    redraw: dict[bool, list[float]] = {False: [], True: []}
    for run in runs.values():  # warm-up
        run.work.objective.value_and_grad(run.work.x)
    for i in range(args.repeats):
        for (k, m), run in runs.items():
            if k == "sliced":
                t = time.perf_counter()
                # An iteration that starts a period: any other keeps the directions it has (nothing to time).
                run.work.objective.begin_iteration(0, (i + 1) * SLICED_REDRAW_EVERY)
                redraw[m].append(time.perf_counter() - t)
            t = time.perf_counter()
            run.work.objective.value_and_grad(run.work.x)
            times[(k, m)].append(time.perf_counter() - t)
    run = runs[("gram", False)]
    h, w = run.work.x.shape[-2:]
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    print(f"`{cmd}`\n")
    print(f"{w}×{h} px, precision {run.transfer.autocast_dtype or 'fp32'}, {torch.get_num_threads()} threads, "
          f"load average before/after: {load0:.2f} / {os.getloadavg()[0]:.2f}\n")
    print("| style loss | no mask: s / evaluation | two regions: s / evaluation | × no mask |")
    print("|---|---|---|---|")
    for k in KINDS:
        a, b = statistics.median(times[(k, False)]), statistics.median(times[(k, True)])
        print(f"| {k} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
    print(f"\nsliced redraw (once every {SLICED_REDRAW_EVERY} iterations), median: no mask {statistics.median(redraw[False]):.3f} s, "
          f"two regions {statistics.median(redraw[True]):.3f} s")


if __name__ == "__main__":
    main()
