"""Masks for spatial control (Gatys et al., CVPR 2017): which style paints which part of the image.

A mask is a colour-coded (or grayscale) image; each ``regions`` entry ``COLOR=STYLE[:WEIGHT]`` says
what its colour means: a style image (its 1-based index, or ``1+2`` for a blend of styles 1 and 2),
or ``photo`` / ``none`` (no style there: the photo is kept). This module holds the pure parts:

* :func:`parse_color` / :func:`parse_region`: the specs (colour names, ``#rrggbb``, gray levels);
* :func:`region_weights`: a mask image → per-region soft weights ``(K, 1, H, W)`` in [0, 1] that
  sum to 1 at each pixel (a feathered edge between two assigned colours is a blend of the two);
* :func:`check_aspect` / :func:`resize_weights`: the mask fitted to the content at each level;
* :func:`layer_guides`: the weights carried down the network to each layer's resolution.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError, shown
from .layers import VGG19_LAYERS, feature_side, layer

RGB = tuple[int, int, int]

COLOR_NAMES: dict[str, RGB] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "orange": (255, 128, 0),
    "purple": (128, 0, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
}
"""The colour names a region spec accepts (pure primaries: what a paint program's swatches give)."""

PHOTO_WORDS = ("photo", "none", "content")
"""What a region spec says for "no style here: keep the photo"."""

PROPAGATIONS = ("avg", "inside")
"""How a guide reaches deeper layers: average pooling through the pools (``avg``), or also eroded by
each 3×3 convolution so that only positions whose receptive field lies inside the region count
(``inside``, Gatys et al. 2017)."""

COLOR_TOLERANCE = 40.0
"""How far (Euclidean, 0-255 units) a pixel's colour may be from an assigned colour, or from the line
between two of them (a feathered edge), and still count as explained by them (JPEG noise, antialiasing)."""

STRAY_FRACTION = 0.001
"""Unexplained pixels below this share of the mask (junctions of three colours, stray noise) take the
nearest assigned colour; above it, the unassigned colours are an error."""

ASPECT_TOLERANCE = 0.02
"""The largest relative difference of aspect ratio between mask and content that is resized away."""

MIN_REGION_AREA = 1.0
"""A region whose guide covers less than this many positions at a layer is skipped at that layer."""


@dataclass(frozen=True)
class Region:
    """One ``regions`` entry: ``color`` (0-255 RGB), ``styles`` (0-based style indices; empty for a
    photo region) and ``weight`` (multiplies this region's style loss)."""

    color: RGB
    styles: tuple[int, ...]
    weight: float = 1.0
    spec: str = ""

    @property
    def is_photo(self) -> bool:
        return not self.styles

    @property
    def label(self) -> str:
        return color_name(self.color)


def color_name(rgb: Sequence[int]) -> str:
    """A colour as users wrote it: its name when it has one, else ``#rrggbb``."""
    rgb = tuple(int(v) for v in rgb)
    for name, value in COLOR_NAMES.items():
        if value == rgb:
            return name
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def parse_color(text: str) -> RGB:
    """``red`` / ``#ff0000`` / ``#f00`` / a gray level ``0``..``255`` → ``(r, g, b)`` in 0..255."""
    t = text.strip().lower()
    if t in COLOR_NAMES:
        return COLOR_NAMES[t]
    if re.fullmatch(r"#[0-9a-f]{6}", t):
        return tuple(int(t[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    if re.fullmatch(r"#[0-9a-f]{3}", t):
        return tuple(int(c * 2, 16) for c in t[1:])  # type: ignore[return-value]
    if re.fullmatch(r"\d{1,3}", t) and int(t) <= 255:
        return (int(t),) * 3  # type: ignore[return-value]
    raise ConfigError(
        f"`regions`: unknown colour {shown(text)}; use a name ({', '.join(n for n in COLOR_NAMES if n != 'grey')}), "
        "#rrggbb or a gray level 0-255"
    )


def parse_region(spec: str) -> Region:
    """``COLOR=STYLE[:WEIGHT]`` → :class:`Region`. STYLE is a 1-based index, ``1+2`` (a blend), or
    one of :data:`PHOTO_WORDS`."""
    if not isinstance(spec, str) or spec.count("=") != 1:
        raise ConfigError(f"`regions`: {shown(spec)} is not COLOR=STYLE[:WEIGHT] (e.g. red=1, blue=2:0.5, white=photo)")
    color_text, rest = spec.split("=")
    style_text, _, weight_text = rest.partition(":")
    color = parse_color(color_text)
    style_text = style_text.strip().lower()
    weight = 1.0
    if weight_text:
        try:
            weight = float(weight_text)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"`regions`: the weight in {shown(spec)} must be a finite number ≥ 0")
    if style_text in PHOTO_WORDS:
        if weight_text:
            raise ConfigError(f"`regions`: {shown(spec)}: a photo region takes no weight")
        return Region(color, (), 1.0, spec)
    parts = style_text.split("+")
    if not all(re.fullmatch(r"\d+", p.strip()) and int(p) >= 1 for p in parts):
        raise ConfigError(
            f"`regions`: {shown(spec)}: the style must be the number of a style image (1, 2, ...), "
            f"a blend such as 1+2, or {'/'.join(PHOTO_WORDS)}"
        )
    styles = tuple(dict.fromkeys(int(p) - 1 for p in parts))
    return Region(color, styles, weight, spec)


def parse_regions(specs: Iterable[str]) -> tuple[Region, ...]:
    """Every spec parsed; a colour assigned twice is a :class:`ConfigError`."""
    regions = tuple(parse_region(s) for s in specs)
    seen: dict[RGB, str] = {}
    for r in regions:
        if r.color in seen:
            raise ConfigError(f"`regions` assigns the colour {r.label} twice ({shown(seen[r.color])} and {shown(r.spec)})")
        seen[r.color] = r.spec
    return regions


# --- mask image → soft weights -------------------------------------------------------------------


def region_weights(mask: Tensor, colors: Sequence[RGB], *, name: str = "mask") -> Tensor:
    """Per-region soft weights of a mask image.

    Args:
        mask: ``(1, 3, H, W)`` float in [0, 1] (a grayscale mask as three equal channels).
        colors: the regions' colours, 0-255.

    Returns:
        ``(K, 1, H, W)`` float32 in [0, 1], summing to 1 at every pixel. A pixel of an assigned colour
        is all that region's; a pixel on the line between two assigned colours (a feathered edge,
        a gray between black and white) is shared by the two in proportion.

    Raises:
        ConfigError: colours of the mask that no region explains, named (most frequent first).
    """
    if not colors:
        raise ConfigError(f"{name}: no `regions` given for the mask's colours")
    h, w = mask.shape[-2:]
    pixels = (mask[0].reshape(3, -1).t().double() * 255.0).round()
    unique, inverse, counts = torch.unique(pixels, dim=0, return_inverse=True, return_counts=True)
    anchors = torch.tensor(colors, dtype=torch.float64)
    k = len(colors)
    best = torch.full((unique.shape[0],), math.inf, dtype=torch.float64)
    weights = torch.zeros(unique.shape[0], k, dtype=torch.float64)
    for i in range(k):
        d = (unique - anchors[i]).norm(dim=1)
        better = d < best
        best = torch.where(better, d, best)
        weights[better] = 0.0
        weights[better, i] = 1.0
    for i in range(k):
        for j in range(i + 1, k):
            seg = anchors[i] - anchors[j]
            t = (((unique - anchors[j]) @ seg) / seg.dot(seg)).clamp(0, 1)
            d = (unique - (anchors[j] + t[:, None] * seg)).norm(dim=1)
            better = d < best - 1e-9
            best = torch.where(better, d, best)
            weights[better] = 0.0
            weights[better, i] = t[better]
            weights[better, j] = 1.0 - t[better]
    unexplained = best > COLOR_TOLERANCE
    if unexplained.any() and counts[unexplained].sum().item() > STRAY_FRACTION * h * w:
        order = torch.argsort(counts[unexplained], descending=True)
        bad, n = unique[unexplained][order], counts[unexplained][order]
        shown = [f"{color_name(c.long().tolist())} ({100.0 * int(m) / (h * w):.1f} %)" for c, m in zip(bad[:5], n[:5])]
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        assigned = ", ".join(color_name(c) for c in colors)
        raise ConfigError(
            f"{name}: colours not assigned to any region: {', '.join(shown)}{more}; "
            f"`regions` assigns {assigned} (give each colour a COLOR=STYLE entry)"
        )
    out = weights[inverse].t().reshape(k, 1, h, w)
    return out.float()


def read_mask(source, *, max_pixels: int | None = None, name: str = "mask") -> Tensor:  # noqa: ANN001
    """A mask from a path, PIL image or ``(1, 3, H, W)`` tensor in [0, 1], as ``(1, 3, H, W)`` float32
    (through :mod:`painterly.imageio`: an unreadable file is an :class:`~painterly.errors.ImageError`
    naming it; a bad tensor a :class:`~painterly.errors.ConfigError` naming ``name``). Never decoded
    reduced: that would invent colours."""
    from .engine.inputs import to_tensor

    return to_tensor(source, name=name, max_pixels=max_pixels)


def check_aspect(
    mask_hw: Sequence[int], content_hw: Sequence[int], *, name: str = "mask", image: str = "the content"
) -> None:
    """Refuse a mask whose aspect differs from its image's by more than :data:`ASPECT_TOLERANCE`.

    ``image`` names what the mask lies over in the message (a style mask: ``"style image 2"``)."""
    (mh, mw), (ch, cw) = mask_hw, content_hw
    ratio = (mw / mh) / (cw / ch)
    if abs(ratio - 1.0) > ASPECT_TOLERANCE:
        raise ConfigError(
            f"{name} is {mw}x{mh} px but {image} is {cw}x{ch}: their aspect ratios differ by "
            f"{abs(ratio - 1.0) * 100:.0f} % (at most {ASPECT_TOLERANCE * 100:.0f} % is resized away); "
            f"make the mask {image}'s shape"
        )


def resize_weights(weights: Tensor, hw: Sequence[int]) -> Tensor:
    """``(K, 1, H, W)`` region weights resized to ``hw`` (bilinear, antialiased when shrinking) and
    normalised again to sum 1 per pixel. Returns ``weights`` itself when the size is unchanged."""
    if tuple(weights.shape[-2:]) == tuple(hw):
        return weights
    out = F.interpolate(weights, size=tuple(hw), mode="bilinear", align_corners=False, antialias=True).clamp_min(0)
    return out / out.sum(0, keepdim=True).clamp_min(1e-12)


def layer_guides(guide: Tensor, layers: Iterable[str], propagation: str = "avg") -> dict[str, Tensor]:
    """A guide at the image's resolution carried down VGG19 to each of ``layers``.

    Args:
        guide: ``(K, 1, H, W)`` in [0, 1] at the size of the image the encoder sees.
        layers: layer names; the sizes follow the encoder's (3×3 convs keep the size, 2×2 pools; the
            guide continued past its bottom and right edges as the image is: :func:`~painterly.encoder.continued`,
            :func:`~painterly.layers.feature_side`).
        propagation: ``avg`` (average pooling through the pools) or ``inside`` (also an erosion, a
            3×3 minimum, at each convolution: a position counts only as much as its whole receptive
            field's neighbourhood lies inside the region).

    Returns:
        ``{layer: (K, 1, h, w)}``.
    """
    if propagation not in PROPAGATIONS:
        raise ConfigError(f"`mask_propagation` must be one of {', '.join(PROPAGATIONS)}; got {shown(propagation)}")
    wanted = set(layers)
    if not wanted:
        return {}
    from .encoder import continued

    last = max(layer(n).index for n in wanted)
    out: dict[str, Tensor] = {}
    h, w = guide.shape[-2:]
    g = continued(guide)  # as the encoder continues the image past its bottom and right edges
    for lay in VGG19_LAYERS:
        if lay.index > last:
            break
        if lay.kind == "pool":
            g = F.avg_pool2d(g, 2, 2, ceil_mode=True)  # as the encoder's pools (layers.feature_side)
        elif lay.kind == "conv" and propagation == "inside":
            g = -F.max_pool2d(-g, 3, stride=1, padding=1)
        if lay.name in wanted:
            out[lay.name] = g[..., : feature_side(h, lay.stride), : feature_side(w, lay.stride)]
    return out


def photo_weight(regions: Sequence[Region], weights: Tensor | None, hw: Sequence[int]) -> Tensor | None:
    """``(1, 1, H, W)``: how much each pixel at ``hw`` is a photo region's (``None`` when none is)."""
    keep = [k for k, r in enumerate(regions) if r.is_photo]
    if weights is None or not keep:
        return None
    return resize_weights(weights, hw)[keep].sum(0, keepdim=True).clamp(0, 1)
