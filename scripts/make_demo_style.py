"""Paint the built-in demo style image: swirling impasto strokes in night-sky colours.

Generated, not copied: a flow field made of a few vortices, and a few thousand short strokes laid
along it, each coloured from a palette by where it sits (bright "stars" near the vortex centres, deep
blues elsewhere, a dark band of "hills" at the bottom). Deterministic (fixed seed).

    python scripts/make_demo_style.py src/painterly/assets/demo_style.jpg
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 512, 384
rng = np.random.default_rng(1889)
vortices = [(140, 110, 70, 1.0), (360, 90, 55, -1.0), (260, 200, 90, 1.0), (450, 250, 45, 1.0), (60, 260, 50, -1.0)]
stars = [(70, 60), (215, 40), (300, 120), (440, 55), (500, 170), (150, 190)]
palette_sky = np.array([[25, 45, 110], [40, 80, 160], [70, 120, 200], [30, 60, 130], [90, 150, 210], [20, 35, 85]])
palette_star = np.array([[250, 220, 90], [255, 240, 160], [240, 190, 60], [255, 255, 210]])
palette_hill = np.array([[20, 30, 30], [35, 55, 45], [15, 20, 35], [50, 70, 60]])


def flow(x: float, y: float) -> tuple[float, float]:
    vx, vy = 1.0, 0.15  # a gentle wind to the right
    for cx, cy, r, spin in vortices:
        dx, dy = x - cx, y - cy
        d2 = dx * dx + dy * dy + 1.0
        k = spin * np.exp(-d2 / (2 * r * r)) * 3.0
        vx += -dy / np.sqrt(d2) * k
        vy += dx / np.sqrt(d2) * k
    n = np.hypot(vx, vy) + 1e-9
    return vx / n, vy / n


def colour(x: float, y: float) -> tuple[int, int, int]:
    if y > H * 0.78 + 25 * np.sin(x / 60):
        base = palette_hill[rng.integers(len(palette_hill))]
    else:
        d = min(np.hypot(x - sx, y - sy) for sx, sy in stars)
        if d < 28 + rng.normal(0, 6):
            base = palette_star[rng.integers(len(palette_star))]
        else:
            base = palette_sky[rng.integers(len(palette_sky))]
    jitter = rng.normal(0, 12, 3)
    return tuple(int(v) for v in np.clip(base + jitter, 0, 255))


def main(path: str) -> None:
    img = Image.new("RGB", (W, H), (30, 50, 110))
    draw = ImageDraw.Draw(img)
    for _ in range(9000):
        x, y = rng.uniform(0, W), rng.uniform(0, H)
        c = colour(x, y)
        width = int(rng.integers(3, 7))
        points = [(x, y)]
        for _ in range(int(rng.integers(6, 14))):
            vx, vy = flow(x, y)
            x, y = x + 3 * vx, y + 3 * vy
            points.append((x, y))
        draw.line(points, fill=c, width=width, joint="curve")
        # A lighter edge on each stroke gives the impression of thick paint.
        hi = tuple(min(255, v + 35) for v in c)
        draw.line([(px + 1, py - 1) for px, py in points], fill=hi, width=max(1, width // 3))
    img = img.filter(ImageFilter.SMOOTH)
    img.save(path, quality=92)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo_style.jpg")
