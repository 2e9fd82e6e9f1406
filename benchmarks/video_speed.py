"""Seconds per frame of `painterly video` at 512×288, with the flow computed inline or ahead (issue 16).

The clip is benchmarks/video.py's (a pan and zoom over the demo photo with a moving disc), made at
512 px wide and cropped to 288 rows (16:9). Real VGG19 weights (``painterly.weights.load_weights
("caffe")``), the default settings of `painterly video` at ``--size 512`` except the first frame's
iterations (``--first-iterations``, default 5, to keep the run short: the first frame is not what is
measured). Every later frame runs the default frame iterations (a fifth of the default 500: 100),
single scale, from the warped previous result, as the command does.

Measured per later frame: the wall time from asking for the frame (and its flow) to its result being
saved and read back, as the command's loop does. Also measured once: the flow alone per frame.

From the repository root, one command per mode (about 5 minutes each on this 2-core CPU when it is
not crowded; under heavy load add ``--frame-iterations 25`` to stay within ten minutes)::

    flock /work/wt/bench.lock timeout 590 python benchmarks/video_speed.py --flow-ahead 0 --frames 3
    flock /work/wt/bench.lock timeout 590 python benchmarks/video_speed.py --flow-ahead 2 --frames 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video import make_clip  # noqa: E402

from painterly.config import Config  # noqa: E402
from painterly.engine import StyleTransfer  # noqa: E402
from painterly.imageio import load_image, save_image  # noqa: E402
from painterly.video.ahead import with_flows  # noqa: E402
from painterly.video.sequence import ClipStyler, VideoSettings  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "src" / "painterly" / "assets"


def clip_512x288(n: int) -> list[torch.Tensor]:
    frames = make_clip(n, 512)  # 512×384
    top = (frames[0].shape[-2] - 288) // 2
    return [f[..., top : top + 288, :].contiguous() for f in frames]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4, help="frames in all (the first is not measured)")
    ap.add_argument("--flow-ahead", type=int, default=0)
    ap.add_argument("--first-iterations", type=int, default=5)
    ap.add_argument("--frame-iterations", type=int, default=None, help="iterations of each later frame (default: the default, 500 // 5)")
    ap.add_argument("--long-term", action="store_true")
    ap.add_argument("--out", default="/tmp/painterly-video-speed")
    args = ap.parse_args()

    clip = clip_512x288(args.frames)
    style = load_image(ASSETS / "demo_style.jpg")
    defaults = Config()
    config = Config(size=512, iterations=args.first_iterations, seed=0, device="cpu")
    settings = VideoSettings(frame_iterations=args.frame_iterations or defaults.iterations // 5, long_term=args.long_term)
    transfer = StyleTransfer(config)
    styler = ClipStyler(transfer, [style], settings)

    # The flow alone (what the pipeline can hide), per frame after the first.
    t0 = time.perf_counter()
    for _ in with_flows(iter(clip), styler.output_size, styler.steps):
        pass
    flow_seconds = (time.perf_counter() - t0) / max(1, len(clip) - 1)
    print(f"  the flow alone: {flow_seconds:.3f} s per frame (torch threads: {torch.get_num_threads()})", flush=True)

    out = Path(args.out) / f"ahead-{args.flow_ahead}"
    seconds, iterations = [], []
    stream = styler.frames(iter(clip), flow_ahead=args.flow_ahead)
    t = time.perf_counter()
    for item in stream:
        run = styler.start(item.frame, item.flows)
        for _ in run:
            pass
        path = save_image(run.result(), out / f"frame_{item.index + 1:04d}.png")
        styler.push(item.frame, load_image(path))
        now = time.perf_counter()
        seconds.append(now - t)
        iterations.append(run.iteration)
        print(f"  frame {item.index + 1}: {run.iteration} iterations, {seconds[-1]:.1f} s", flush=True)
        t = time.perf_counter()  # the next frame's clock starts when it is asked for
    later = seconds[1:]
    row = {
        "flow_ahead": args.flow_ahead,
        "long_term": args.long_term,
        "size": list(clip[0].shape[-2:]),
        "frame_iterations": iterations[1:],
        "seconds_per_later_frame": sum(later) / len(later),
        "seconds_per_iteration": sum(later) / sum(iterations[1:]),
        "flow_seconds_per_frame": flow_seconds,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
