"""What a level's terms compare against: :class:`Targets`, computed once per level by :func:`build_targets`
(the content's features at the level's size, the styles' statistics), and read by
:func:`painterly.engine.objective.build_objective` to make the terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..config import Config
from ..encoder import VGG19Encoder
from ..imageio import fit_size, resize
from ..losses import gram_matrix
from .inputs import Inputs
from .laplacian import laplacian_targets
from .pyramid import HW, MIN_SIDE
from .style_terms import StyleTargets, style_targets


@dataclass(frozen=True)
class Targets:
    """What one level's terms compare against, computed once per level (detached, on the run's device).

    ``content``: ``{layer: (1, C, h, w)}`` float32 features of the content at the level's size.
    ``grams``: ``{layer: (1, C, C)}`` Gram matrices of the styles at the style size, blended (empty
    unless ``style_loss`` is gram or histogram).
    ``guided``: with a mask (``regions``), each layer's style regions instead of ``grams``
    (:func:`painterly.engine.guided.build_guided_targets`).
    """

    content: Mapping[str, Tensor]
    grams: Mapping[str, Tensor]
    style: StyleTargets = field(default_factory=StyleTargets)
    """The statistics of the other ``style_loss`` kinds (:mod:`.style_terms`)."""
    hw: tuple[int, int] = (0, 0)
    """The level's output size ``(H, W)``."""
    guided: Mapping[str, tuple] = field(default_factory=dict)
    region_style: Any = None  # with a mask and style_loss w2/sliced/histogram: region_terms.RegionStyleTargets
    laplacians: Mapping[int, Tensor] = field(default_factory=dict)
    """With ``laplacian_weight``: ``{pool: (1, 1, H // pool − 2, W // pool − 2)}``, the content's pooled
    Laplacians at the level's size (:func:`painterly.engine.laplacian.laplacian_targets`)."""


def build_targets(
    encoder: VGG19Encoder,
    config: Config,
    inputs: Inputs,
    level_longest: int,
    hw: HW,
    device: torch.device,
    autocast: torch.dtype | None,
    tiles: Callable[[HW], int | None] | None = None,
) -> Targets:
    """The content features (and pooled Laplacians) at the level's size ``hw`` and the blended style statistics of
    ``config.style_loss`` (Grams, Gaussians, samples or channel quantiles; see :mod:`.style_terms`), or
    with a mask each region's, at ``level_longest × style_scale`` (each style in its own aspect).
    ``tiles(hw)`` gives the tile side for encoding an image of ``hw`` (``None``: whole), for images too
    large to encode at once."""
    from .tiled import encode_by_tiles

    ctx = torch.autocast(device.type, dtype=autocast, enabled=autocast is not None)
    content: dict[str, Tensor] = {}
    grams: dict[str, Tensor] = {}
    styles: list[tuple[float, dict[str, Tensor]]] = []
    kind = config.style_loss
    guided: dict[str, tuple] = {}
    region_style = None

    def encode(image: Tensor, keep: Sequence[str], gram_layers: Sequence[str]) -> tuple[Mapping[str, Tensor], Mapping[str, Tensor]]:
        tile = tiles(tuple(image.shape[-2:])) if tiles is not None else None
        if tile:
            return encode_by_tiles(encoder, image, tile, keep, gram_layers, autocast)
        with ctx:
            feats = encoder(image.contiguous(memory_format=torch.channels_last))
            return {n: feats[n].float() for n in keep}, {n: gram_matrix(feats[n]) for n in gram_layers}

    laplacians: dict[int, Tensor] = {}
    with torch.no_grad():
        if config.uses_content or config.uses_laplacian:
            content_image = resize(inputs.content_work, hw).to(device)
        if config.uses_content:
            content = dict(encode(content_image, config.content_layers, ())[0])
        if config.uses_laplacian:
            laplacians = laplacian_targets(content_image, config.laplacian_pools)
        if config.uses_style and inputs.regions:
            from .region_terms import build_region_targets

            with ctx:
                guided, region_style = build_region_targets(encoder, config, inputs, level_longest, hw, device)
        elif config.uses_style:
            style_size = max(MIN_SIDE, round(level_longest * config.style_scale))
            for weight, style in zip(inputs.style_weights, inputs.styles_work):
                h, w = style.shape[-2:]
                image = resize(style, fit_size(h, w, style_size, MIN_SIDE)).to(device)
                # Gram (and histogram's Gram part) can be summed by tiles; the other kinds keep features.
                keep = config.style_layers if kind != "gram" else ()
                feats, style_grams = encode(image, keep, config.style_layers if kind in ("gram", "histogram") else ())
                if keep:
                    styles.append((weight, {n: feats[n].detach() for n in keep}))
                for n, g in style_grams.items():
                    g = g.detach() * weight
                    grams[n] = grams[n] + g if n in grams else g
    with torch.no_grad():  # fp32 statistics whatever the encoder ran in
        style = style_targets(kind, styles, hw) if styles else StyleTargets()
    return Targets(content, grams, style, tuple(hw), guided, region_style, laplacians)
