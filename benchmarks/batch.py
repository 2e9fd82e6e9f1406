"""The pictures and figures of docs/batch.md: a contact sheet (two photos × three paintings) and the
throughput of `painterly batch` locally and on Ray with two local workers.

    nice python benchmarks/batch.py [--size 192] [--iterations 60] [--bench-size 256] [--bench-iterations 10]

Inputs (never committed): the built-in demo photo, scikit-image's astronaut, and the public-domain
paintings in ../shared/images (--paintings) (starry_night, the_scream, shipwreck). Real VGG19 (caffe) weights.
Writes docs/batch_contact_sheet.png and prints the throughput lines for the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAINTINGS = ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg")


def inputs(folder: Path, source: Path) -> tuple[Path, Path]:
    from PIL import Image
    from skimage import data

    photos, paintings = folder / "photos", folder / "paintings"
    photos.mkdir()
    paintings.mkdir()
    shutil.copy(ROOT / "src/painterly/assets/demo_content.jpg", photos / "demo.jpg")
    Image.fromarray(data.astronaut()).save(photos / "astronaut.png")
    for name in PAINTINGS:
        shutil.copy(source / name, paintings / name)
    return photos, paintings


def batch(photos: Path, paintings: Path, out: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "painterly", "batch", "--content", str(photos), "--style", str(paintings), "-o", str(out), "--seed", "0", *extra]
    subprocess.run(cmd, check=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--bench-size", type=int, default=256)
    ap.add_argument("--bench-iterations", type=int, default=10)
    ap.add_argument("--skip-sheet", action="store_true")
    ap.add_argument("--bench-styles", type=int, default=3, help="paintings in the throughput runs (2 photos × this many jobs)")
    ap.add_argument("--paintings", type=Path, default=ROOT.parent / "shared/images", help="folder of the three paintings")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos, paintings = inputs(tmp, args.paintings)
        if not args.skip_sheet:
            out = tmp / "sheet"
            batch(photos, paintings, out, "--size", str(args.size), "--iterations", str(args.iterations), "-q")
            shutil.copy(out / "contact-sheet.png", ROOT / "docs/batch_contact_sheet.png")
            print(f"contact sheet: {len(list(out.glob('*__*.png')))} images, {(out / 'contact-sheet.png').stat().st_size} bytes")
        common = ["--size", str(args.bench_size), "--iterations", str(args.bench_iterations), "-q"]
        for extra in sorted(paintings.iterdir())[args.bench_styles:]:
            extra.unlink()
        n = 2 * args.bench_styles
        print(f"load average before the throughput runs: {os.getloadavg()}")
        seconds = batch(photos, paintings, tmp / "local", *common)
        print(f"local: {n} images in {seconds:.1f} s = {n / seconds * 60:.1f} images/min (wall, incl. start-up)")
        job_seconds = sum(json.loads(l)["seconds"] for l in (tmp / "local/manifest.jsonl").read_text().splitlines())
        print(f"local: {job_seconds:.1f} s inside the jobs")
        seconds = batch(photos, paintings, tmp / "ray", *common, "--backend", "ray", "--ray-workers", "2")
        print(f"ray, 2 local workers: {n} images in {seconds:.1f} s = {n / seconds * 60:.1f} images/min (wall, incl. cluster start)")


if __name__ == "__main__":
    main()
