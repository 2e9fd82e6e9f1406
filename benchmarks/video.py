"""The consistency gain of the temporal method (issue 16): a synthetic clip stylised per frame
independently and with painterly's temporal method, the same iterations per frame, judged by the
mean temporal warping error and by the content/style losses.

The clip: a slow pan and zoom over the built-in demo photo with a bright disc moving across it.
Metric (Ruder et al.'s): for consecutive output frames, the mean over channels and over the pixels
the consistency check keeps of ``(out_t − warp(out_{t−1}, flow of the *input* t → t−1))²``, averaged
over t. The losses are each frame's final (weighted) content and style terms, averaged over frames.

From the repository root (real VGG19 weights; the methods run in parallel, one process each)::

    nice python benchmarks/video.py --frames 24 --size 128 --iterations 30 --out /tmp/video-bench

It prints a markdown table and writes, under --out, the frames of each method, a strip of frames
(strip.png) and a GIF of each (independent.gif, temporal.gif) for docs/video.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F

from painterly.config import Config
from painterly.engine import StyleTransfer, load_inputs
from painterly.imageio import load_image, save_image
from painterly.video.flow import flow_pair, warp
from painterly.video.writing import write_video
from painterly.video.sequence import ClipStyler, VideoSettings

ASSETS = Path(__file__).resolve().parents[1] / "src" / "painterly" / "assets"


def make_clip(n: int, size: int) -> list[torch.Tensor]:
    """``n`` frames ``(1, 3, h, w)`` (longest side ``size``, 4:3): a pan right and a zoom in of 15 %
    over the demo photo, and a textured disc crossing it left to right."""
    photo = load_image(ASSETS / "demo_content.jpg")
    H, W = photo.shape[-2:]
    h, w = round(size * 3 / 4), size
    frames = []
    for t in range(n):
        s = t / max(n - 1, 1)
        crop_w = W * (0.75 - 0.12 * s)  # zoom in
        crop_h = crop_w * h / w
        x0 = (W - crop_w) * (0.2 + 0.5 * s)  # pan right
        y0 = (H - crop_h) * 0.5
        theta = torch.tensor([[crop_w / W, 0, (2 * x0 + crop_w) / W - 1], [0, crop_h / H, (2 * y0 + crop_h) / H - 1]], dtype=torch.float32)
        grid = F.affine_grid(theta[None], (1, 3, h, w), align_corners=False)
        frame = F.grid_sample(photo, grid, mode="bilinear", align_corners=False)
        # The disc: radius h/6, moving across at 1.2 px per frame at 160 px, with a radial pattern.
        cx, cy, r = w * (0.15 + 0.7 * s), h * (0.6 - 0.2 * s), h / 6
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
        d = ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt()
        inside = (r - d).clamp(0, 1)
        ring = 0.5 + 0.5 * torch.cos(d / r * 3 * math.pi)
        disc = torch.stack([0.9 * ring + 0.1, 0.3 + 0.3 * ring, 0.2 * (1 - ring)])[None]
        frames.append((frame * (1 - inside) + disc * inside).clamp(0, 1))
    return frames


def warping_error(inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> tuple[float, float]:
    """Mean over t of the consistency-weighted mean square of out_t − warp(out_{t−1}); and the mean
    fraction of pixels kept."""
    errors, kept = [], []
    for t in range(1, len(outputs)):
        backward, weights = flow_pair(inputs[t - 1], inputs[t])
        diff = (outputs[t] - warp(outputs[t - 1], backward)).pow(2).mean(1, keepdim=True)
        errors.append(float((diff * weights).sum() / weights.sum().clamp(min=1)))
        kept.append(float(weights.mean()))
    return sum(errors) / len(errors), sum(kept) / len(kept)


def stylise(method: str, clip: list[torch.Tensor], style: torch.Tensor, config: Config, temporal_weight: float, out: Path, threads: int):
    # One torch thread per method, the methods in parallel processes: on a shared 2-core machine two
    # threads in one process spin against each other (measured: 20× slower per evaluation under load).
    torch.set_num_threads(threads)
    transfer = StyleTransfer(config)
    results, losses, seconds, evaluations = [], [], [], []
    # Every "independent…" row (also --independent-iterations') starts each frame from the content;
    # only the temporal rows start from the warped previous result.
    styler = ClipStyler(transfer, [style], VideoSettings(temporal_weight=temporal_weight, frame_iterations=config.iterations)) if not method.startswith("independent") else None
    for i, frame in enumerate(clip):
        t0 = time.perf_counter()
        run = styler.start(frame) if styler else transfer.start(load_inputs(config, frame, [style], warn=False))
        last = None
        for last in run:
            pass
        image = run.result()
        seconds.append(time.perf_counter() - t0)
        evaluations.append(run.evaluations)
        path = save_image(image, out / method / f"frame_{i + 1:04d}.png")
        image = load_image(path)  # as saved (8-bit), as the CLI does
        if styler:
            styler.push(frame, image)
        results.append(image)
        losses.append(last.losses)
        print(f"  {method} frame {i + 1}/{len(clip)}: {seconds[-1]:.1f} s " + " ".join(f"{k}={v:.4g}" for k, v in last.losses.items()), flush=True)
    return results, losses, seconds, evaluations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=30, help="L-BFGS iterations per frame, every method")
    ap.add_argument("--temporal-weights", default=None, help="comma-separated weights to compare (default: the library's default)")
    ap.add_argument("--style", default=str(ASSETS / "demo_style.jpg"))
    ap.add_argument("--out", default="/tmp/painterly-video-bench")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per method (the methods run in parallel processes)")
    ap.add_argument("--independent-iterations", default="", help="comma-separated: more independent rows with these iterations per frame (e.g. 60)")
    args = ap.parse_args()
    from painterly.video.sequence import TEMPORAL_WEIGHT

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = make_clip(args.frames, args.size)
    for i, f in enumerate(clip):
        save_image(f, out / "input" / f"frame_{i + 1:04d}.png")
    style = load_image(args.style)
    config = Config(size=args.size, iterations=args.iterations, multiscale=False, seed=0, precision="fp32", device="cpu")
    weights = [float(w) for w in args.temporal_weights.split(",")] if args.temporal_weights else [TEMPORAL_WEIGHT]
    methods = [("independent", 0.0)] + [(f"temporal-{w:g}" if len(weights) > 1 else "temporal", w) for w in weights]
    longer = [int(n) for n in args.independent_iterations.split(",") if n.strip()]
    configs = [config] * len(methods) + [config.replace(iterations=n) for n in longer]
    methods += [(f"independent-{n}it", 0.0) for n in longer]
    from concurrent.futures import ProcessPoolExecutor

    rows, outputs = [], {}
    with ProcessPoolExecutor(max_workers=len(methods)) as pool:
        futures = [pool.submit(stylise, method, clip, style, cfg, w, out, args.threads) for (method, w), cfg in zip(methods, configs)]
        done = [f.result() for f in futures]
    for (method, w), (frames, losses, seconds, evaluations) in zip(methods, done):
        outputs[method] = frames
        error, kept = warping_error(clip, frames)
        row = {
            "method": method,
            "temporal_weight": w,
            "warping_error": error,
            "kept": kept,
            "content": sum(x["content"] for x in losses) / len(losses),
            "style": sum(x["style"] for x in losses) / len(losses),
            "seconds_per_frame": sum(seconds) / len(seconds),
            "evaluations_per_frame": sum(evaluations) / len(evaluations),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_video(out / f"{method}.gif", iter(frames), Fraction(8))
    input_error, _ = warping_error(clip, clip)
    base = rows[0]
    print(f"\nclip: {args.frames} frames at {clip[0].shape[-1]}x{clip[0].shape[-2]}, {args.iterations} L-BFGS iterations per frame, "
          f"style {Path(args.style).name}; warping error of the input clip itself: {input_error:.2e}\n")
    print("| method | temporal weight | warping error | vs independent | content loss | style loss | evaluations/frame | s/frame |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['temporal_weight']:g} | {r['warping_error']:.2e} | {base['warping_error'] / r['warping_error']:.1f}× lower | "
              f"{r['content']:.4g} ({r['content'] / base['content'] - 1:+.1%}) | {r['style']:.4g} ({r['style'] / base['style'] - 1:+.1%}) | "
              f"{r['evaluations_per_frame']:.1f} | {r['seconds_per_frame']:.1f} |")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows, "input_error": input_error}, indent=1))
    # A strip: every 4th frame, input / independent / temporal rows.
    picks = list(range(0, args.frames, max(1, args.frames // 6)))[:6]
    strip_rows = [torch.cat([clip[i] for i in picks], dim=-1)] + [torch.cat([outputs[m][i] for i in picks], dim=-1) for m, _ in methods[: len(weights) + 1]]
    save_image(torch.cat(strip_rows, dim=-2), out / "strip.png")


if __name__ == "__main__":
    main()
