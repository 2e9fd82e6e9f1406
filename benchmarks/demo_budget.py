"""How many iterations `painterly demo` needs: the built-in pair at the photo's own size (451×300) with
increasing iteration budgets, each result judged by bench.py's common fp32 evaluator against the
former demo (512 px, upscaled, 500 iterations).

    python benchmarks/demo_budget.py [--budgets 200,300] [--threads N] [--workdir DIR]

Prints a markdown table (with the command that made it and the machine's 3×3-conv peak, measured the
way benchmarks/bench.py does). Seconds are optimisation seconds (the run's own clock, from the loss
log: target computation included, process start and weight loading not). The machine is shared:
the load average is printed beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the peak worker, the evaluator, the subprocess helper)

FORMER = ("512", "500")  # the demo before issue 19: the default size and iterations


def painterly(args: list[str], workdir: Path, tag: str, threads: int | None) -> dict:
    """One CLI run; its optimisation seconds and final image."""
    out, log = workdir / f"{tag}.png", workdir / f"{tag}.jsonl"
    cmd = [sys.executable, "-m", "painterly", "demo", "-o", str(out), "--log", str(log), "--quiet", *args]
    env = bench.painterly_env()
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    bench.run_child(cmd, env, log=workdir / f"{tag}.txt")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return {"image": str(out), "seconds": records[-1]["seconds"], "iterations": records[-1]["iteration"], "evaluations": records[-1]["evaluations"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="200,300")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the runs (default: torch's choice)")
    ap.add_argument("--former-iterations", default=FORMER[1], help="only to check the script quickly")
    a = ap.parse_args()
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="painterly-demo-budget-"))
    workdir.mkdir(parents=True, exist_ok=True)
    from painterly.demo import demo_images
    from painterly.imageio import fit_size, load_image, resize, save_image

    content, (style,) = demo_images()
    c = load_image(content)
    s = load_image(style)
    h, w = c.shape[-2:]
    save_image(c, workdir / "content.png")
    save_image(resize(s, fit_size(*s.shape[-2:], max(h, w), 16)), workdir / "style.png")

    _, _, _, peak = bench.run_child(bench.worker("peak"), bench.painterly_env())
    load_before = os.getloadavg()
    print(
        f"`{' '.join(shlex.quote(x) for x in ['python', 'benchmarks/demo_budget.py', *sys.argv[1:]])}`\n\n"
        f"Machine peak (3×3 conv, 256→256 channels, 128×128, {peak['threads']} threads): fp32 {peak['fp32']:.0f} GFLOP/s"
        + (f", bf16 {peak['bf16']:.0f} GFLOP/s" if peak.get("bf16") else "")
        + f". Runs with {a.threads or 'torch default'} thread(s); load average (1 min) {load_before[0]:.1f} "
        f"on {os.cpu_count()} cores at the start: the machine is shared.\n",
        flush=True,
    )
    judge = bench.Evaluator(str(workdir / "content.png"), str(workdir / "style.png"))
    print(f"| run | size | iterations | evaluations | optimisation s | load (1 min) | evaluator loss at {w}×{h} (content / style / tv) |", flush=True)
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    # The new demo's budgets first (each row printed as it is measured), the former demo last.
    plan = [(n, ["--size", str(max(h, w)), "--iterations", n]) for n in a.budgets.split(",")]
    plan.append(("former", ["--size", FORMER[0], "--iterations", a.former_iterations]))
    runs: dict[str, dict] = {}
    for tag, args in plan:
        r = runs[tag] = painterly(args, workdir, tag if tag == "former" else f"demo_{tag}", a.threads)
        r["load"] = os.getloadavg()[0]
        image = load_image(r["image"])
        r["eval"] = e = judge(resize(image, (h, w)) if tuple(image.shape[-2:]) != (h, w) else image)
        size = f"{FORMER[0]} px (upscaled)" if tag == "former" else f"{w}×{h}"
        print(
            f"| {'former demo' if tag == 'former' else 'demo'} | {size} | {r['iterations']} | {r['evaluations']} | {r['seconds']:.1f} | {r['load']:.1f} | "
            f"{e['total']:.4g} ({e['content']:.3g} / {e['style']:.3g} / {e['tv']:.3g}) |",
            flush=True,
        )
        (workdir / "results.json").write_text(json.dumps(runs, indent=1))
    bar = runs["former"]["eval"]["total"]
    lines = ["", "vs the former demo's evaluator loss:"]
    lines += [f"  {tag}: {100 * (r['eval']['total'] / bar - 1):+.1f} %" for tag, r in runs.items()]
    print("\n".join(lines))
    (workdir / "results.json").write_text(json.dumps(runs, indent=1))
    print(f"\n(images and logs in {workdir})")


if __name__ == "__main__":
    main()
