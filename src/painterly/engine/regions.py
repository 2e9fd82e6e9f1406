"""The mask of a run, loaded and checked with the other inputs (called by :func:`load_inputs`).

Every check that involves the mask, the ``regions`` and the images together is made here, once,
before any work: a mask without regions or regions without a mask, a style number beyond the styles
given, a mask whose aspect is not the content's, colours of the mask no region assigns.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..config import Config
from ..errors import ConfigError
from ..imageio import resize
from ..masks import check_aspect, color_name, parse_regions, photo_weight, read_mask, region_weights
from .inputs import ImageLike, Inputs


def _label(source: object, default: str) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else default


def _top_colors(mask: Tensor, n: int = 5) -> list[str]:
    pixels = (mask[0].reshape(3, -1).t() * 255.0).round().long()
    unique, counts = torch.unique(pixels, dim=0, return_counts=True)
    order = torch.argsort(counts, descending=True)[:n]
    return [color_name(unique[i].tolist()) for i in order]


def load_regions(inputs: Inputs, config: Config, mask: ImageLike | None, style_masks: Sequence[ImageLike | None] | None) -> Inputs:
    """``inputs`` with the mask, its regions' soft weights and the style masks (see :class:`Inputs`)."""
    if mask is None:
        if config.regions:
            raise ConfigError("`regions` assigns the colours of a mask, but no `mask` was given")
        raise ConfigError("style masks work only with a mask and `regions`")
    name = _label(mask, "mask")
    if inputs.content is None:
        raise ConfigError(f"{name}: a mask needs a content image (it says which part of the content gets which style)")
    mask_t = read_mask(mask, max_pixels=config.max_pixels, name=name)
    if not config.regions:
        raise ConfigError(
            f"{name}: give `regions` for the mask's colours ({', '.join(_top_colors(mask_t))}), e.g. red=1"
        )
    regions = parse_regions(config.regions)
    n_styles = len(inputs.styles)
    for r in regions:
        beyond = [s + 1 for s in r.styles if s >= n_styles]
        if beyond:
            raise ConfigError(
                f"`regions` {r.spec}: there is no style image {beyond[0]} "
                f"({n_styles} style image{'s' if n_styles != 1 else ''} given)"
            )
    if not config.uses_style and any(not r.is_photo for r in regions):
        raise ConfigError("`regions` assigns styles but `style_weight` is 0")
    check_aspect(tuple(mask_t.shape[-2:]), inputs.reference_size, name=name)
    weights = region_weights(mask_t, [r.color for r in regions], name=name)
    masks_t: tuple[Tensor | None, ...] = ()
    if style_masks is not None:
        if len(style_masks) != n_styles:
            raise ConfigError(f"{len(style_masks)} style masks for {n_styles} style image{'s' if n_styles != 1 else ''}")
        loaded = []
        for i, (sm, style) in enumerate(zip(style_masks, inputs.styles)):
            if sm is None:
                loaded.append(None)
                continue
            label = _label(sm, f"style mask {i + 1}")
            t = read_mask(sm, max_pixels=config.max_pixels, name=label).mean(1, keepdim=True)  # gray: white = take style here
            check_aspect(tuple(t.shape[-2:]), tuple(style.shape[-2:]), name=label, image=f"style image {i + 1}")
            if float(t.max()) <= 0.0:
                raise ConfigError(f"{label}: is all black: no part of style image {i + 1} to take the style from")
            loaded.append(t)
        masks_t = tuple(loaded)
    return dataclasses.replace(inputs, mask=mask_t, regions=regions, region_weights=weights, style_masks=masks_t)


Evaluation = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]


def keep_photo(inputs: Inputs, x: Tensor) -> Tensor:
    """``x`` ``(1, 3, H, W)`` with its photo regions (``white=photo``) showing the photo:
    ``p · photo + (1 − p) · x``, ``p`` the photo share of each pixel at ``x``'s size (soft at a
    feathered edge); ``x`` itself when there is no photo region.

    The image a run evaluates and shows is this one (:func:`keep_photo_evaluation`, ``Run._present``):
    only the content loss acts on a photo region, and it holds the photo's features, not its pixels, so
    the style of the neighbouring region used to reach ~60 px into it at 256 px (docs/quality.md).
    """
    p = photo_weight(inputs.regions, inputs.region_weights, tuple(x.shape[-2:]))
    if p is None:
        return x
    photo = resize(inputs.content_work, tuple(x.shape[-2:])).to(x)
    return torch.lerp(x, photo, p.to(x))  # exact at p = 0 and p = 1


def keep_photo_evaluation(evaluation: Evaluation, inputs: Inputs, hw: tuple[int, int], device: torch.device) -> Evaluation:
    """``evaluation`` (``x -> (total, grad, values)``) of :func:`keep_photo` ``(x)``, its gradient by
    the chain rule (``(1 − p) · grad``: a pixel kept as the photo never moves); ``evaluation`` itself
    when there is no photo region."""
    p = photo_weight(inputs.regions, inputs.region_weights, hw)
    if p is None:
        return evaluation
    p, photo = p.to(device), resize(inputs.content_work, hw).to(device)

    def evaluate(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        share = p.to(x)
        total, grad, values = evaluation(torch.lerp(x, photo.to(x), share))
        return total, grad * (1 - share), values

    return evaluate
