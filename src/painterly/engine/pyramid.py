"""The images a run starts from: the starting image, each level's size and each level's start.

Sizes are ``(height, width)`` everywhere in painterly's code (``HW``); only the configuration speaks of a
longest side (``Config.size``, ``Level.size``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import color
from ..config import Config
from ..imageio import fit_size, resize
from ..masks import photo_weight
from .inputs import Inputs

HW = tuple[int, int]
"""A size as ``(height, width)`` in pixels."""

MIN_SIDE = 16
"""Smallest side the network can take: relu5_x sits behind four 2×2 pools."""


def level_size(inputs: Inputs, longest: int) -> HW:
    """The size of a level whose longest side is ``longest``, in the aspect of the content (or style)."""
    h, w = inputs.reference_size
    return fit_size(h, w, longest, MIN_SIDE)


def starting_image(config: Config, inputs: Inputs, hw: HW) -> Tensor | None:
    """The image a run starts from, at the final size ``hw`` and before any noise; ``None`` for noise.
    (Coarser levels resize it down, from an image no larger than the result.)"""
    if config.init == "noise":
        return None
    if config.init == "content":
        base = inputs.content_work
    elif config.init == "style":
        base = inputs.styles_work[0]
    else:
        base = inputs.init
    base = resize(base, hw)
    if config.original_colors == "luminance" and config.init != "content":
        base = color.luminance(base)
    if config.init_colors == "style" and config.original_colors in ("off", "after") and config.init == "content" and inputs.styles:
        # The style loss's shallow layers (relu1_1 is nearly linear in colour) move the image to the
        # style's palette within the first iterations anyway; starting there saves them
        # (docs/benchmarks.md). With several styles, the palette of the most weighted one. An image
        # given as the start (a previous result, say) is the user's choice and stays as it is.
        main = inputs.main_style
        h, w = main.shape[-2:]
        recoloured = color.match_color(base, resize(main, fit_size(h, w, max(hw), MIN_SIDE)))
        # Regions kept as the photo (a mask) start in the photo's own colours: no style pulls them back.
        photo = photo_weight(inputs.regions, inputs.region_weights, hw)
        base = recoloured if photo is None else recoloured * (1 - photo) + base * photo
    return base


def first_level_image(config: Config, start: Tensor | None, hw: HW, generator: torch.Generator) -> Tensor:
    """The first level's image: ``start`` resized to ``hw`` (with ``init_noise`` blended in), or
    white noise drawn from ``generator`` when there is no start."""
    noise = torch.rand((1, 3, *hw), generator=generator)
    if start is None:
        return noise
    base = resize(start, hw)
    if config.init_noise > 0:
        base = (1 - config.init_noise) * base + config.init_noise * noise
    return base.clone()


def next_level_image(config: Config, coarse: Tensor, start: Tensor | None, hw: HW) -> Tensor:
    """The start of a finer level: the coarser level's result resized to ``hw`` and, with
    ``keep_detail``, the starting image's detail band that the coarser size could not hold.

    Plain upsampling hands the next level a blurred image, and the finer level spends about as many
    iterations recovering as a single-scale run from the content image. Adding
    ``start − up(down(start))`` (equivalently: the full-size start plus the *change* the coarse level
    made, upsampled) keeps the coarse level's large strokes and the start's sharp edges; the run ends
    visibly sharper and lower in loss (docs/benchmarks.md, "keep detail").
    """
    image = resize(coarse, hw)
    if not config.keep_detail or start is None:
        return image
    fine = resize(start, hw)
    blurred = resize(resize(start, tuple(coarse.shape[-2:])), hw)
    return (image + fine.to(image) - blurred.to(image)).clamp(0, 1)
