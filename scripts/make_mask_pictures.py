"""Make the pictures of docs/masks.md (spatial control): real VGG19 weights, small sizes.

    python scripts/make_mask_pictures.py --paintings ../shared/images --out docs

Photos: scikit-image's ``rocket`` and ``coffee`` (pip install scikit-image). Paintings: the public-domain
starry_night.jpg, the_scream.jpg and shipwreck.jpg. Each picture is photo | mask | result, one JPEG.
The masks are drawn here from simple shapes (a horizon, an ellipse), feathered by a blur.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

import painterly
from strips import strip


def sky_mask(size: tuple[int, int]) -> Image.Image:
    """The rocket photo: blue sky above the launch pad's horizon, red land below, a feathered edge."""
    w, h = size
    m = Image.new("RGB", size, (0, 0, 255))
    ImageDraw.Draw(m).rectangle([0, int(0.86 * h), w, h], fill=(255, 0, 0))
    return m.filter(ImageFilter.GaussianBlur(3))


def cup_mask(size: tuple[int, int]) -> Image.Image:
    """The coffee photo: the cup and saucer (an ellipse, white: kept as the photo) on a black background."""
    w, h = size
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).ellipse([0.12 * w, 0.14 * h, 0.82 * w, 0.99 * h], fill=255)
    return m.filter(ImageFilter.GaussianBlur(4)).convert("RGB")


def _report(progress) -> None:  # noqa: ANN001
    if progress.iteration % 10 == 0:
        print(f"  {progress.iteration}/{progress.total_iterations} {progress.elapsed:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paintings", default="../shared/images")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=80)
    ap.add_argument("--only", choices=("rocket", "coffee"), help="make one of the two pictures")
    args = ap.parse_args()

    paint = Path(args.paintings)
    out = Path(args.out)
    common = dict(size=args.size, iterations=args.iterations, seed=0, min_size=128, callback=_report)

    if args.only != "coffee":
        rocket_picture(paint, out, common, args.size)
    if args.only != "rocket":
        coffee_picture(paint, out, common, args.size)


def rocket_picture(paint: Path, out: Path, common: dict, size: int) -> None:
    import skimage.data

    rocket = Image.fromarray(skimage.data.rocket())
    mask = sky_mask(rocket.size)
    t = time.perf_counter()
    result = painterly.stylize(rocket, [paint / "starry_night.jpg", paint / "the_scream.jpg"], mask=mask,
                               regions=["blue=1", "red=2"], **common)  # fmt: skip
    print(f"rocket: {time.perf_counter() - t:.0f} s", flush=True)
    strip(rocket, mask, result, height=size * 427 // 640).save(out / "masks_sky_and_land.jpg", quality=88)


def coffee_picture(paint: Path, out: Path, common: dict, size: int) -> None:
    import skimage.data

    coffee = Image.fromarray(skimage.data.coffee())
    mask = cup_mask(coffee.size)
    t = time.perf_counter()
    result = painterly.stylize(coffee, [paint / "shipwreck.jpg"], mask=mask, regions=["white=photo", "black=1"], **common)
    print(f"coffee: {time.perf_counter() - t:.0f} s", flush=True)
    strip(coffee, mask, result, height=size * 400 // 600).save(out / "masks_photo_kept.jpg", quality=88)


if __name__ == "__main__":
    main()
