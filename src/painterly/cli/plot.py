"""``--plot FILE.png``: the loss terms against seconds and against iterations, level changes marked.

Drawn with Pillow's ImageDraw, which painterly already needs: a line chart does not justify making
matplotlib (tens of MB with its own dependencies) a requirement, and an option that fails on most
installations ("install matplotlib first") would be a worse one. The picture is made from the same
:class:`~painterly.engine.Progress` values the loss log writes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from PIL import Image, ImageDraw, ImageFont

PLOT_SIZE = (960, 720)
"""(width, height) of the picture, in pixels."""

COLORS = {"total": (20, 20, 20), "content": (31, 119, 180), "style": (214, 39, 40), "tv": (44, 160, 44)}
OTHER_COLORS = ((148, 103, 189), (255, 127, 14), (140, 86, 75), (227, 119, 194))
GRID, LEVEL = (225, 225, 225), (150, 150, 150)
MARGIN = {"left": 72, "right": 24, "top": 52, "bottom": 40, "gap": 56}


@dataclass
class LossHistory:
    """Iteration, seconds, level, level size and each loss term of every iteration so far."""

    points: list[dict[str, Any]] = field(default_factory=list)

    def add(self, p: Any) -> None:
        """Record one :class:`~painterly.engine.Progress`."""
        self.points.append({
            "iteration": p.iteration, "seconds": p.elapsed, "level": p.level, "width": p.size[1], "height": p.size[0],
            **{k: float(v) for k, v in p.losses.items()},
        })  # fmt: skip

    @classmethod
    def from_log(cls, path: str | Path | None) -> "LossHistory":
        """The records of a loss log (``--log``), for a resumed run; empty when there is none."""
        history = cls()
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines() if path else []
        except OSError:
            return history
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            history.points.append({k: (math.nan if v is None else v) for k, v in record.items()})
        return history

    def __len__(self) -> int:
        return len(self.points)


def draw_plot(history: LossHistory, size: tuple[int, int] = PLOT_SIZE) -> Image.Image:
    """The chart: loss terms (log scale) against seconds above, against iterations below; a dashed
    line and the new size at each level change."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    pts = history.points
    terms = [t for t in _terms(pts) if any(_positive(p.get(t)) for p in pts)]
    values = [math.log10(p[t]) for p in pts for t in terms if _positive(p.get(t))]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    # Legend along the top.
    x = MARGIN["left"]
    for term in terms:
        color = _color(term, terms)
        draw.line([(x, 20), (x + 24, 20)], fill=color, width=3)
        draw.text((x + 30, 14), term, fill=(0, 0, 0), font=font)
        x += 40 + int(draw.textlength(term, font=font)) + 20
    panel = (height - MARGIN["top"] - MARGIN["bottom"] - MARGIN["gap"]) // 2
    top = MARGIN["top"]
    for key, title in (("seconds", "seconds"), ("iteration", "iterations")):
        box = (MARGIN["left"], top, width - MARGIN["right"], top + panel)
        _panel(draw, font, box, pts, terms, key, title, (lo, hi))
        top += panel + MARGIN["gap"]
    return image


def _panel(draw: ImageDraw.ImageDraw, font: Any, box: tuple[int, int, int, int], pts: Sequence[dict[str, Any]],
           terms: Sequence[str], key: str, title: str, ylim: tuple[float, float]) -> None:
    x0, y0, x1, y1 = box
    xs = [float(p[key]) for p in pts]
    xmax = max(xs) if xs and max(xs) > 0 else 1.0
    lo, hi = ylim

    def sx(v: float) -> float:
        return x0 + (x1 - x0) * v / xmax

    def sy(v: float) -> float:
        return y1 - (y1 - y0) * (math.log10(v) - lo) / (hi - lo)

    for d in range(math.floor(lo), math.ceil(hi) + 1):  # a grid line per decade
        if lo <= d <= hi:
            y = y1 - (y1 - y0) * (d - lo) / (hi - lo)
            draw.line([(x0, y), (x1, y)], fill=GRID)
            draw.text((x0 - 6, y), f"1e{d}", fill=(0, 0, 0), font=font, anchor="rm")
    for t in _ticks(xmax):
        draw.line([(sx(t), y1), (sx(t), y1 + 4)], fill=(0, 0, 0))
        draw.text((sx(t), y1 + 6), f"{t:g}", fill=(0, 0, 0), font=font, anchor="ma")
    draw.text(((x0 + x1) / 2, y1 + 20), title, fill=(0, 0, 0), font=font, anchor="ma")
    draw.text((x0 - 6, y0 - 14), "loss", fill=(0, 0, 0), font=font, anchor="ra")
    labels: list[tuple[float, str]] = []
    for prev, cur in zip(pts, pts[1:]):  # level changes: between the last point of one and the next
        if cur["level"] != prev["level"]:
            x = sx(float(prev[key]))
            for y in range(int(y0), int(y1), 8):
                draw.line([(x, y), (x, min(y + 4, y1))], fill=LEVEL)
            labels.append((x, f"{cur['width']}x{cur['height']}"))
    for term in terms:
        line: list[tuple[float, float]] = []
        for p in pts:
            if _positive(p.get(term)):
                line.append((sx(float(p[key])), sy(p[term])))
                continue
            _polyline(draw, line, _color(term, terms))
            line = []
        _polyline(draw, line, _color(term, terms))
    for x, label in labels:  # over the lines, on a white ground
        right = x + 4 + draw.textlength(label, font=font) <= x1  # else on the line's left
        at, anchor = (x + 4 if right else x - 4, y0 + 3), "la" if right else "ra"
        draw.rectangle(draw.textbbox(at, label, font=font, anchor=anchor), fill="white")
        draw.text(at, label, fill=(90, 90, 90), font=font, anchor=anchor)
    draw.rectangle(box, outline=(0, 0, 0))


def _polyline(draw: ImageDraw.ImageDraw, line: list[tuple[float, float]], color: tuple[int, int, int]) -> None:
    if len(line) > 1:
        draw.line(line, fill=color, width=2, joint="curve")
    elif line:
        draw.ellipse([line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2], fill=color)


def _terms(pts: Iterable[dict[str, Any]]) -> list[str]:
    skip = {"iteration", "seconds", "level", "width", "height", "evaluations", "recovered"}
    names: list[str] = []
    for p in pts:
        names += [k for k in p if k not in skip and k not in names]
    return sorted(names, key=lambda n: (n != "total", n))


def _color(term: str, terms: Sequence[str]) -> tuple[int, int, int]:
    if term in COLORS:
        return COLORS[term]
    others = [t for t in terms if t not in COLORS]
    return OTHER_COLORS[others.index(term) % len(OTHER_COLORS)]


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _ticks(xmax: float, n: int = 6) -> list[float]:
    """Round numbers from 0 to ``xmax``, about ``n`` of them."""
    step = 10 ** math.floor(math.log10(xmax / n)) if xmax > 0 else 1.0
    for m in (1, 2, 5, 10):
        if xmax / (step * m) <= n:
            step *= m
            break
    return [i * step for i in range(int(xmax / step + 1e-9) + 1)]
