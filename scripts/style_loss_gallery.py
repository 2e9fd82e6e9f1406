"""The pictures of docs/style-losses.md: each --style-loss on the same inputs, side by side, at equal
wall time, with a close-up crop under each result and each run's figures (real VGG19, seeded, single
scale; small sizes: the machine is a shared 2-core CPU).

    python scripts/style_loss_gallery.py texture ../shared/images/starry_night.jpg -o docs/style_losses_texture_starry.jpg --seconds 40
    python scripts/style_loss_gallery.py stylize skimage:astronaut ../shared/images/the_scream.jpg -o docs/style_losses_astronaut_scream.jpg --seconds 40

An image is a path or ``skimage:NAME`` (one of scikit-image's sample photos, e.g. astronaut, coffee,
rocket; needs scikit-image). The four runs are interleaved iteration by iteration (the one
that has spent the least wall time goes next, so that changes of the shared machine's load hit all
alike); each stops at the end of the first iteration that brings its own wall time (its targets
included; the network is built before) to ``--seconds``, or at ``--iterations`` if given instead. The crop (``--crop X Y``, the fractions of the image where its
centre lies) is ``1 / --zoom`` of the image's width, enlarged ``--zoom`` times. Prints a markdown
table (the command, the load average, seconds, iterations, evaluations and the weighted final
losses of each run) to paste beside the picture. The runs are in this process, with the same seed and
options.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from PIL import Image, ImageDraw

KINDS = ("gram", "w2", "sliced", "histogram")
LABEL = 18


def _load(spec: str):
    from painterly.imageio import image_to_tensor, load_image

    if spec.startswith("skimage:"):
        import skimage.data

        return image_to_tensor(Image.fromarray(getattr(skimage.data, spec.split(":", 1)[1])()).convert("RGB"))
    return load_image(spec)


def _crop(tile: Image.Image, centre: tuple[float, float], zoom: int) -> Image.Image:
    w, h = tile.size
    cw, ch = w // zoom, h // zoom
    x = min(max(0, int(centre[0] * w) - cw // 2), w - cw)
    y = min(max(0, int(centre[1] * h) - ch // 2), h - ch)
    return tile.crop((x, y, x + cw, y + ch)).resize((cw * zoom, ch * zoom), Image.Resampling.NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["texture", "stylize"])
    parser.add_argument("images", nargs="+", help="texture: the style; stylize: content then style")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=40.0, help="wall time of each run")
    parser.add_argument("--iterations", type=int, help="instead of --seconds: this many iterations each")
    parser.add_argument("--crop", type=float, nargs=2, default=(0.5, 0.5), metavar=("X", "Y"))
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", nargs="*", default=list(KINDS))
    args = parser.parse_args()

    from painterly import Config
    from painterly.engine import StyleTransfer
    from painterly.imageio import tensor_to_pil

    images = [_load(p) for p in args.images]
    content, style = (None, images[0]) if args.mode == "texture" else (images[0], images[1])
    load0 = os.getloadavg()[0]
    runs, spent = {}, {}
    for kind in args.kinds:
        cfg = Config.for_mode(args.mode, size=args.size, min_size=args.size, multiscale=False,
                              iterations=args.iterations or 100000, seed=args.seed, style_loss=kind)
        runs[kind], spent[kind] = StyleTransfer(cfg).start(content, [style]), 0.0
    # Interleaved: the run that has spent the least wall time takes the next iteration, so that a change
    # of the (shared) machine's load hits all of them alike; each stops once it has spent --seconds.
    last = {}
    while True:
        left = [k for k, r in runs.items() if not r.done and (args.iterations is not None or spent[k] < args.seconds)]
        if not left:
            break
        kind = min(left, key=spent.__getitem__)
        t0 = time.perf_counter()
        progress = runs[kind].step()
        spent[kind] += time.perf_counter() - t0
        if progress is None:
            break
        last[kind] = progress
    tiles, rows = [], []
    for kind, run in runs.items():
        tiles.append(tensor_to_pil(run.result()))
        losses = ", ".join(f"{k} {v:.3g}" for k, v in last[kind].losses.items() if v)
        rows.append(f"| {kind} | {spent[kind]:.1f} | {run.iteration} | {run.evaluations} | {losses} |")
    w, h = tiles[0].size
    crops = [_crop(t, tuple(args.crop), args.zoom) for t in tiles]
    ch = crops[0].size[1]
    sheet = Image.new("RGB", (w * len(tiles), LABEL + h + ch), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (kind, tile, crop) in enumerate(zip(args.kinds, tiles, crops)):
        sheet.paste(tile, (i * w, LABEL))
        sheet.paste(crop, (i * w + (w - crop.size[0]) // 2, LABEL + h))
        draw.text((i * w + 4, 3), kind, fill="black")
    sheet.save(args.output, quality=88)
    print("`python " + " ".join(shlex.quote(a) for a in sys.argv) + "`\n")
    print(f"load average (1 min) before: {load0:.2f}, after: {os.getloadavg()[0]:.2f}\n")
    print("| style loss | seconds | iterations | evaluations | final losses (weighted) |\n|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
