"""The sliced loss with L-BFGS: how often to redraw the directions and what the optimiser does then,
measured at equal cost (docs/style-losses.md).

    flock /work/wt/bench.lock python benchmarks/sliced_lbfgs.py ../shared/images/starry_night.jpg --evaluations 100 --size 160

Each variant runs `painterly texture` (or `stylize` with --content) with the sliced loss from the same
seed (real VGG19, single scale) until it has spent --evaluations loss evaluations (the end of the
iteration that reaches them; on a shared, loaded CPU an evaluation count is a steadier budget than
wall time: every variant's evaluation costs the same), or --seconds of wall time if given; then its image is scored on a fixed,
larger sample of directions that no variant optimised: the mean of the sliced loss over 8 draws
(seed 999). Variants: the redraw period (iterations kept on one set of directions) and what happens
to L-BFGS at a redraw: `stale` (its line search starts from the old objective's value), `reeval` (the
loss is evaluated afresh at the current point: one evaluation), `reset` (re-evaluated and its
curvature history forgotten). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time

VARIANTS = (("1", "stale"), ("1", "reeval"), ("2", "reeval"), ("5", "reeval"), ("5", "reset"), ("10", "reeval"), ("20", "reeval"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("style")
    parser.add_argument("--content")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--evaluations", type=int, default=100)
    parser.add_argument("--seconds", type=float, help="instead of --evaluations: a wall-time budget")
    parser.add_argument("--variants", nargs="*", help="period:mode, e.g. 1:stale 5:reeval")
    args = parser.parse_args()

    import torch

    from painterly import Config
    from painterly.engine import StyleTransfer
    from painterly.engine import optimizers, style_terms
    from painterly.imageio import load_image

    style = load_image(args.style)
    content = load_image(args.content) if args.content else None
    mode = "stylize" if content is not None else "texture"
    variants = [tuple(v.split(":")) for v in args.variants] if args.variants else VARIANTS
    print("`python " + " ".join(shlex.quote(a) for a in sys.argv) + f"`, load average before {os.getloadavg()[0]:.2f}\n")
    print("| redraw every | at a redraw | iterations | evaluations | evaluations / iteration | seconds | sliced loss, 8 fixed draws (mean) |")
    print("|---|---|---|---|---|---|---|")
    for period, what in variants:
        style_terms.SLICED_REDRAW_EVERY = 10**9 if period == "inf" else int(period)
        if what == "stale":
            optimizers.LBFGSOptimizer.objective_changed = lambda self: None
        elif what == "reeval":
            optimizers.LBFGSOptimizer.objective_changed = lambda self: self.lbfgs.forget_value()
        else:
            optimizers.LBFGSOptimizer.objective_changed = lambda self: self.lbfgs.reset()
        cfg = Config.for_mode(mode, size=args.size, min_size=args.size, multiscale=False, iterations=100000, seed=0, style_loss="sliced")
        transfer = StyleTransfer(cfg)
        run = transfer.start(content, [style])
        t0 = time.perf_counter()
        for p in run:
            if (time.perf_counter() - t0 >= args.seconds) if args.seconds else run.evaluations >= args.evaluations:
                break
        seconds = time.perf_counter() - t0
        term = next(t for t in run.work.objective.terms if isinstance(t, style_terms.SlicedStyleTerm))
        term.redraw_every = 1
        x = run.work.x.detach()
        scores = []
        with torch.no_grad():
            features = run.work.objective.features(x)
            for i in range(8):
                term.redraw(999, i)
                scores.append(float(term(x, features)))
        it = run.iteration
        print(f"| {period} | {what} | {it} | {run.evaluations} | {run.evaluations / max(1, it):.2f} | {seconds:.1f} | {statistics.fmean(scores):.4g} |", flush=True)


if __name__ == "__main__":
    main()
