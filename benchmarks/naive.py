"""The naive baseline: the seed documents' algorithm, written the plain way.

Single scale, fp32, NCHW, ``torch.optim.LBFGS`` over the pixels, targets computed once before the
loop, a ``closure`` that recomputes every feature and loss — the loop of the PyTorch tutorial the
seed documents explain (seed 000/001/003). Two departures from the tutorial, both needed for a fair
race: ``line_search_fn="strong_wolfe"`` (without it L-BFGS diverges at these loss weights), and no
clamping inside the closure (it would invalidate the line search; the result is clamped at the end,
as painterly does).

The objective is the one painterly optimises, so one evaluator can judge both (see
``benchmarks/bench.py``): content = MSE of relu4_2 features; style = Σ over relu1_1…relu5_1 of the
mean squared difference of Gram matrices normalised by C·H·W; TV = mean of squared neighbour
differences; weights 5, 100, 1e6; VGG19 with the original Caffe weights (BGR, 0–255, mean pixel
subtracted). This file shares no code with painterly's engine: only the weight file is read through
``painterly.weights``.

    python benchmarks/naive.py --content C.png --style S.png --iterations 500 --out naive.png \\
        [--snapshots DIR] [--log naive.jsonl]

It prints one JSON line at the end: iterations, evaluations, seconds, the final loss.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 5.0, 100.0, 1e6
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))


def load(path: str) -> torch.Tensor:
    """RGB image file → (1, 3, H, W) float32 in [0, 1] (the benchmark hands every method its inputs
    already at the working size, so there is no resizing here)."""
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def save(x: torch.Tensor, path: str) -> None:
    arr = (x.detach().clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    Image.fromarray(arr).save(path)


class VGG(nn.Module):
    """VGG19's convolutional stack up to relu5_1, as an nn.Sequential; returns the named layers."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        layers: list[nn.Module] = []
        self.names: list[str] = []
        cin = 3
        for b, (n, cout) in enumerate(BLOCKS, start=1):
            for k in range(1, n + 1):
                conv = nn.Conv2d(cin, cout, 3, padding=1)
                conv.weight.data.copy_(state[f"conv{b}_{k}.weight"])
                conv.bias.data.copy_(state[f"conv{b}_{k}.bias"])
                layers += [conv, nn.ReLU()]
                self.names += [f"conv{b}_{k}", f"relu{b}_{k}"]
                cin = cout
                if b == 5:  # relu5_1 is the deepest layer used
                    break
            if b == 5:
                break
            layers.append(nn.MaxPool2d(2, 2))
            self.names.append(f"pool{b}")
        self.body = nn.Sequential(*layers)
        mean = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
        self.register_buffer("mean", mean)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, rgb01: torch.Tensor, wanted: tuple[str, ...]) -> dict[str, torch.Tensor]:
        x = rgb01.flip(1) * 255.0 - self.mean  # RGB [0,1] → Caffe's BGR 0-255 minus the mean pixel
        out = {}
        for name, layer in zip(self.names, self.body):
            x = layer(x)
            if name in wanted:
                out[name] = x
        return out


def gram(f: torch.Tensor) -> torch.Tensor:
    _, c, h, w = f.shape
    m = f.view(c, h * w)
    return m @ m.t() / (c * h * w)


def tv(x: torch.Tensor) -> torch.Tensor:
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2)).mean()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--content", required=True)
    ap.add_argument("--style", required=True)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--history", type=int, default=100)
    ap.add_argument("--out", required=True)
    ap.add_argument("--snapshots", help="save the image after every optimizer.step() call here")
    ap.add_argument("--log", help="JSON lines: seconds, iterations and loss after every optimizer.step() call")
    args = ap.parse_args(argv)

    from painterly.weights import load_weights  # only the weight file; none of painterly's engine

    vgg = VGG(dict(load_weights("caffe").state)).eval()
    content, style = load(args.content), load(args.style)
    wanted = CONTENT_LAYERS + STYLE_LAYERS

    t0 = time.perf_counter()
    with torch.no_grad():  # targets, once
        content_t = {n: f for n, f in vgg(content, CONTENT_LAYERS).items()}
        style_t = {n: gram(f) for n, f in vgg(style, STYLE_LAYERS).items()}
    img = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [img], lr=1.0, max_iter=20, max_eval=None, history_size=args.history,
        tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe",
    )
    evals = 0
    last = {}

    def closure():
        nonlocal evals
        evals += 1
        opt.zero_grad()
        feats = vgg(img, wanted)
        c = sum(F.mse_loss(feats[n], content_t[n]) for n in CONTENT_LAYERS) / len(CONTENT_LAYERS)
        s = sum(F.mse_loss(gram(feats[n]), style_t[n]) for n in STYLE_LAYERS)
        loss = CONTENT_WEIGHT * c + STYLE_WEIGHT * s + TV_WEIGHT * tv(img)
        loss.backward()
        last["loss"] = loss.item()
        return loss

    snaps = Path(args.snapshots) if args.snapshots else None
    if snaps:
        snaps.mkdir(parents=True, exist_ok=True)
    log = open(args.log, "w") if args.log else None
    kept: list[tuple[int, float, torch.Tensor]] = []
    while True:
        done = opt.state[opt._params[0]].get("n_iter", 0)
        if done >= args.iterations:
            break
        opt.param_groups[0]["max_iter"] = min(20, args.iterations - done)
        opt.step(closure)
        seconds = time.perf_counter() - t0
        done = opt.state[opt._params[0]]["n_iter"]
        if snaps:
            kept.append((done, seconds, img.detach().clone()))  # written after the clock stops
        if log:
            log.write(json.dumps({"iteration": done, "seconds": seconds, "evaluations": evals, "loss": last["loss"]}) + "\n")
            log.flush()
    seconds = time.perf_counter() - t0
    save(img, args.out)
    for done, sec, x in kept:
        save(x, str(snaps / f"iter{done:05d}_{sec:.3f}s.png"))
    print(json.dumps({"iterations": done, "evaluations": evals, "seconds": seconds, "loss": last["loss"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
