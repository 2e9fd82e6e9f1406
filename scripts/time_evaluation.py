"""Seconds per evaluation (value and gradient) of the default objective, real caffe weights, fp32, CPU.

    flock /work/wt/bench.lock python scripts/time_evaluation.py CONTENT STYLE [HxW ...]

Default sizes 384x512, 341x512, 300x451 (sides that are and are not multiples of 16): docs/quality.md
compares the pools' partial cells with the former floor this way (run it once per version, e.g. with
PYTHONPATH pointing at the other version's src/). Prints the median and the least of 6 timings per size.
"""

from __future__ import annotations

import sys
import time

import torch

import painterly
from painterly.config import Config
from painterly.engine import build_encoder, build_objective, build_targets, load_inputs
from painterly.imageio import load_image


def main() -> None:
    content, style, *sizes = sys.argv[1:]
    shapes = [tuple(int(v) for v in s.split("x")) for s in sizes] or [(384, 512), (341, 512), (300, 451)]
    print(painterly.__file__)
    cfg = Config(precision="fp32", device="cpu")
    encoder = build_encoder(cfg)
    for hw in shapes:
        c = cfg.replace(size=max(hw))
        inputs = load_inputs(c, load_image(content), [style], warn=False)
        x = torch.nn.functional.interpolate(inputs.content, size=hw, mode="bilinear")
        objective = build_objective(encoder, c, build_targets(encoder, c, inputs, max(hw), hw, torch.device("cpu"), None), None)
        objective.value_and_grad(x)  # warm-up
        times = []
        for _ in range(6):
            start = time.perf_counter()
            objective.value_and_grad(x)
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"{hw[1]}x{hw[0]}: median {times[3]:.3f} s, least {times[0]:.3f} s per evaluation")


if __name__ == "__main__":
    main()
