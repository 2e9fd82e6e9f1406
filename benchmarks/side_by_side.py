"""Multi-scale (painterly's default) against --no-multiscale at equal time, on the built-in demo pair.

    python benchmarks/side_by_side.py                       # writes docs/multiscale_vs_single.png
    python benchmarks/side_by_side.py --clock cpu           # on a shared, noisy machine

First a run with the default settings (multi-scale, --iterations 500 at --size 512); then a
single-scale run with the same settings but --no-multiscale, stopped when it has used the same time.
Both results are scored by the benchmark's common evaluator (painterly's loss in fp32 at the final
size, see benchmarks/bench.py) and shown side by side with the inputs.

``--clock wall`` (default) compares wall time; ``--clock cpu`` compares the process's CPU time, which
stands in for wall time when other work shares the machine (both runs are equally parallel).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iterations", type=int, default=500, help="iterations of the default (multi-scale) run")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "multiscale_vs_single.png"))
    a = ap.parse_args(argv)

    import torch

    from bench import Evaluator
    from painterly.config import Config
    from painterly.demo import demo_images
    from painterly.engine import StyleTransfer
    from painterly.imageio import fit_size, load_image, resize, save_image
    from painterly.schedule import plan_levels

    clock = time.perf_counter if a.clock == "wall" else time.process_time
    content_path, (style_path,) = demo_images()
    content, style = load_image(content_path), load_image(style_path)

    def run(cfg: Config, budget: float | None = None):
        transfer = StyleTransfer(cfg)
        r = transfer.start(content, [style])
        t0 = clock()
        last = None
        for p in r:
            last = p
            if budget is not None and clock() - t0 >= budget:
                r.stop()
        return r.result(), clock() - t0, last

    base = Config(size=a.size, iterations=a.iterations, seed=a.seed)
    multi, t_multi, p_multi = run(base)
    print(f"multi-scale: {p_multi.iteration} iterations, {t_multi:.1f} s ({a.clock})", file=sys.stderr)
    single, t_single, p_single = run(base.replace(multiscale=False, iterations=100_000), budget=t_multi)
    print(f"single-scale: {p_single.iteration} iterations, {t_single:.1f} s ({a.clock})", file=sys.stderr)

    # Score both with the common evaluator at the output size (inputs saved at that size first).
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        hw = tuple(multi.shape[-2:])
        cpath, spath = Path(tmp) / "c.png", Path(tmp) / "s.png"
        save_image(resize(content, hw), cpath)
        save_image(resize(style, fit_size(*style.shape[-2:], a.size)), spath)
        ev = Evaluator(str(cpath), str(spath))
        loss_multi, loss_single = ev(multi)["total"], ev(single)["total"]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def show(ax, img, title):
        ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(title, fontsize=9)
        ax.axis("off")

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.9), dpi=100, gridspec_kw={"width_ratios": [1, 1, 1.6, 1.6]})
    show(axes[0], content, "content (built-in demo)")
    show(axes[1], style, "style (built-in demo)")
    levels = "→".join(str(lvl.size) for lvl in plan_levels(base))
    unit = "s" if a.clock == "wall" else "CPU s"
    show(axes[2], multi, f"default: multi-scale {levels} px, {p_multi.iteration} it\n{t_multi:.0f} {unit}, loss {loss_multi:.4g}")
    show(axes[3], single, f"--no-multiscale, same time: {p_single.iteration} it at {a.size} px\n{t_single:.0f} {unit}, loss {loss_single:.4g}")
    fig.suptitle(f"Equal {'wall' if a.clock == 'wall' else 'CPU'} time, {a.size} px, seed {a.seed} (loss: common fp32 evaluator, lower is better)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out)
    print(f"wrote {a.out}: multi-scale loss {loss_multi:.6g} vs single-scale {loss_single:.6g}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
