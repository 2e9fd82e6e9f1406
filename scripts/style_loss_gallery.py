"""The pictures of docs/style-losses.md: each --style-loss on the same inputs, side by side, with each
run's seconds and final losses (real VGG19, seeded; small sizes: the machine is a shared 2-core CPU).

    python scripts/style_loss_gallery.py texture ../shared/images/starry_night.jpg -o docs/style_losses_texture_starry.jpg
    python scripts/style_loss_gallery.py stylize src/painterly/assets/demo_content.jpg ../shared/images/the_scream.jpg -o docs/style_losses_stylize.jpg

Prints a markdown table (the command, seconds and the weighted losses of each run) to paste beside
the picture. Each run is in this process, one after the other, with the same seed and options.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from PIL import Image, ImageDraw

KINDS = ("gram", "w2", "sliced", "histogram")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["texture", "stylize"])
    parser.add_argument("images", nargs="+", help="texture: the style; stylize: content then style")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from painterly import Config
    from painterly.engine import StyleTransfer
    from painterly.imageio import load_image, tensor_to_pil

    images = [load_image(p) for p in args.images]
    content, style = (None, images[0]) if args.mode == "texture" else (images[0], images[1])
    tiles, rows = [], []
    for kind in KINDS:
        cfg = Config.for_mode(args.mode, size=args.size, iterations=args.iterations, seed=args.seed, style_loss=kind)
        transfer = StyleTransfer(cfg)
        t0 = time.perf_counter()
        run = transfer.start(content, [style])
        last = None
        for last in run:
            pass
        seconds = time.perf_counter() - t0
        tiles.append(tensor_to_pil(run.result()))
        losses = ", ".join(f"{k} {v:.3g}" for k, v in last.losses.items() if v)
        rows.append(f"| {kind} | {seconds:.0f} | {run.evaluations} | {losses} |")
    w, h = tiles[0].size
    sheet = Image.new("RGB", (w * len(tiles), h + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (kind, tile) in enumerate(zip(KINDS, tiles)):
        sheet.paste(tile, (i * w, 18))
        draw.text((i * w + 4, 3), kind, fill="black")
    sheet.save(args.output, quality=88)
    print("`python " + " ".join(shlex.quote(a) for a in sys.argv) + "`\n")
    print("| style loss | seconds | evaluations | final losses (weighted) |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
