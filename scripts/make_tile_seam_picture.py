"""docs/tile_seam.png: the same crop of an untiled and a tiled run, at 100 %, around a tile corner.

    python scripts/make_tile_seam_picture.py UNTILED.png TILED.png --at 160,160 -o docs/tile_seam.png

UNTILED and TILED are two runs of the same command but ``--tile 0`` / ``--tile 160`` (docs/tiles.md has
the commands). The third panel is the difference ×10 (black: none). Red ticks outside the crops mark
the tile boundaries; nothing is drawn over the pixels.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

R = 64  # half side of the crop, px


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("untiled")
    parser.add_argument("tiled")
    parser.add_argument("--at", default="160,160", help="x,y of the tile corner")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    x, y = (int(v) for v in args.at.split(","))
    a = np.asarray(Image.open(args.untiled).convert("RGB")).astype(int)
    b = np.asarray(Image.open(args.tiled).convert("RGB")).astype(int)
    h, w = a.shape[:2]
    y0, y1, x0, x1 = max(0, y - R), min(h, y + R), max(0, x - R), min(w, x + R)
    panels = [a[y0:y1, x0:x1], b[y0:y1, x0:x1], np.clip(np.abs(a - b)[y0:y1, x0:x1] * 10, 0, 255)]
    ph, pw = panels[0].shape[:2]
    gap, tick = 12, 6
    canvas = np.full((ph + 2 * tick, 3 * pw + 2 * gap, 3), 255, dtype=np.uint8)
    for i, p in enumerate(panels):
        left = i * (pw + gap)
        canvas[tick : tick + ph, left : left + pw] = p
        # Ticks at the tile boundary, above/below and (in the gap) beside each panel.
        canvas[:tick, left + x - x0] = canvas[tick + ph :, left + x - x0] = (220, 0, 0)
        if y0 < y < y1:
            side = left + pw if i < 2 else left - tick
            canvas[tick + y - y0, max(0, side) : side + tick] = (220, 0, 0)
    Image.fromarray(canvas).save(args.output, optimize=True)
    d = np.abs(a - b).mean(axis=2)
    near = np.zeros(d.shape, dtype=bool)
    near[max(0, y - 3) : y + 3, :] = near[:, max(0, x - 3) : x + 3] = True  # within 3 px of the tile boundaries
    print(
        f"max difference {int(np.abs(a - b).max())}/255, mean {d.mean():.3f}; within 3 px of the boundaries "
        f"{d[near].mean():.3f}, elsewhere {d[~near].mean():.3f}; crop {x1 - x0}x{y1 - y0} at ({x0},{y0})"
    )


if __name__ == "__main__":
    main()
