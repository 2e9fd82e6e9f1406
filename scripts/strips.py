"""What the picture scripts share: images side by side at one height (the docs' before/after strips)."""

from __future__ import annotations

from PIL import Image

GAP = 8
"""White pixels between two pictures of a strip."""


def strip(*images: Image.Image, height: int) -> Image.Image:
    """``images`` scaled to ``height`` px and set side by side, left to right, on white."""
    scaled = [im.resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in images]
    out = Image.new("RGB", (sum(im.width for im in scaled) + GAP * (len(scaled) - 1), height), "white")
    x = 0
    for im in scaled:
        out.paste(im.convert("RGB"), (x, 0))
        x += im.width + GAP
    return out
