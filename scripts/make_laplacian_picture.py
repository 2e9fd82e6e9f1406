"""Make the picture of docs/style-losses.md's Laplacian section: photo | without | with the Laplacian loss.

    python scripts/make_laplacian_picture.py CONTENT STYLE OUT.jpg --size 256 --iterations 100 \\
        --laplacian-weights 0,100 --laplacian-pools 4,16

Real VGG19 weights (Caffe), the default settings otherwise, one seed for both runs. Prints each run's
final losses and the Laplacian distance of each result to the photo (unweighted, 0–255 units, per pool),
the figures quoted beside the picture. Photos: the built-in demo photo or scikit-image's samples;
paintings: the public-domain ones only (docs/ licence rule).
"""

from __future__ import annotations

import argparse
import json
import time

from PIL import Image

import painterly
from painterly.engine import to_tensor
from painterly.engine.laplacian import PIXEL_SCALE
from painterly.imageio import resize
from painterly.losses import laplacian_loss, pooled_laplacian
from strips import strip


def distance(result: Image.Image, content: str, pools: tuple[int, ...]) -> dict[int, float]:
    """The unweighted Laplacian loss of ``result`` against the photo at the result's size, per pool."""
    x = to_tensor(result)
    c = resize(to_tensor(content), tuple(x.shape[-2:]))
    return {p: round(PIXEL_SCALE**2 * float(laplacian_loss(x, pooled_laplacian(c, p), p)), 2) for p in pools}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("content")
    ap.add_argument("style")
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=451)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--laplacian-weights", default="0,100", help="one run (one panel) per weight, comma-separated")
    ap.add_argument("--laplacian-pools", default="4,16")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--height", type=int, default=300, help="height of each panel in the picture")
    ap.add_argument("--panels", help="also save each result here, as laplacian-WEIGHT.png")
    args = ap.parse_args()
    pools = tuple(int(p) for p in args.laplacian_pools.split(","))
    results = []
    for weight in (float(w) for w in args.laplacian_weights.split(",")):
        t0 = time.time()
        losses: dict[str, float] = {}
        image = painterly.stylize(
            args.content, args.style, size=args.size, iterations=args.iterations, seed=args.seed,
            laplacian_weight=weight, laplacian_pools=pools,
            callback=lambda p: losses.update(p.losses),
        )  # fmt: skip
        results.append(image)
        if args.panels:
            image.save(f"{args.panels}/laplacian-{weight:g}.png")
        print(json.dumps({"laplacian_weight": weight, "seconds": round(time.time() - t0, 1),
                          "losses": {k: round(v, 1) for k, v in losses.items()},
                          "laplacian_distance": distance(image, args.content, (2, 4, 8, 16))}), flush=True)  # fmt: skip
    with Image.open(args.content) as photo:
        picture = strip(photo.convert("RGB"), *results, height=args.height)
    picture.save(args.out, quality=88, optimize=True)
    print(f"wrote {args.out} ({picture.width}x{picture.height})")


if __name__ == "__main__":
    main()
