"""Spatial control: the mask-guided style term and its targets (Gatys et al., CVPR 2017).

Each style region (a colour of the mask assigned a style) compares the guided Gram of the image's
features inside the region with its own target, the Gram of its style image(s) (inside the style's
own mask, if one was given). Photo regions have no style target: only the content loss acts there.
The guides are the mask's soft region weights resized to the level and carried down the network
(:func:`painterly.masks.layer_guides`), computed once per level with the other targets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from torch import Tensor

from ..config import Config
from ..encoder import VGG19Encoder
from ..errors import PainterlyWarning
from ..imageio import fit_size, resize
from ..layers import layer
from ..losses import gram_matrix, gram_sum, guided_gram, style_loss
from ..masks import MIN_REGION_AREA, layer_guides, resize_weights
from .inputs import Inputs
from .pyramid import HW, MIN_SIDE

if TYPE_CHECKING:
    from .tiled import Window


@dataclass(frozen=True)
class RegionTarget:
    """One region at one layer: its ``guide`` ``(1, 1, h, w)``, its ``area`` (``Σ g²``, a Python float
    so the term reads nothing back from the device), the target ``gram`` ``(1, C, C)`` and ``weight``."""

    label: str
    guide: Tensor
    area: float
    gram: Tensor
    weight: float


@dataclass(frozen=True)
class GuidedStyleTerm:
    """``weight × Σ_layers layer_weight × Σ_regions region_weight × style_loss(guided Gram, target)``.

    With one region covering everything (a guide of ones, region weight 1) it is
    :class:`~painterly.engine.objective.GramStyleTerm` exactly.
    """

    targets: Mapping[str, tuple[RegionTarget, ...]]
    layer_weights: Mapping[str, float]
    weight: float
    name: str = "style"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(n for n, regions in self.targets.items() if regions)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        loss = image.new_zeros((), dtype=torch.float64 if image.dtype == torch.float64 else torch.float32)
        for n, regions in self.targets.items():
            if not regions:
                continue
            f = features[n]
            part = sum(r.weight * style_loss(guided_gram(f, r.guide, r.area), r.gram) for r in regions)
            loss = loss + self.layer_weights[n] * part
        return loss * self.weight

    # --- by tiles (engine/tiled.py): the guided Gram is a sum over positions too ------------------------
    def partials(self, image: Tensor, features: Mapping[str, Tensor], window: "Window") -> dict[str, Tensor]:
        """Per layer and region: Σ_p g_p² F_p F_pᵀ over the tile's own positions (unnormalised)."""
        out = {}
        for n, regions in self.targets.items():
            stride = layer(n).stride
            f = window.own(features[n], stride)
            for k, r in enumerate(regions):
                out[f"{n}/{k}"] = gram_sum(f * window.whole(r.guide, stride).to(f.dtype))
        return out

    def from_partials(self, stats: Mapping[str, Tensor], shape: Sequence[int]) -> Tensor:
        loss = 0.0
        for n, regions in self.targets.items():
            part = 0.0
            for k, r in enumerate(regions):
                g = stats[f"{n}/{k}"]
                part = part + r.weight * style_loss(g / (g.shape[-1] * r.area), r.gram)
            loss = loss + self.layer_weights[n] * part
        return loss * self.weight


@dataclass(frozen=True)
class StyleFeatures:
    """One style image encoded at a level's style size: its ``features`` ``{layer: (1, C, h, w)}`` and,
    where it has a mask, that mask's ``guides`` ``{layer: (1, 1, h, w)}`` (``None``: the whole painting)."""

    features: Mapping[str, Tensor]
    guides: Mapping[str, Tensor] | None

    def guide(self, name: str) -> Tensor | None:
        """The style mask's guide at ``name``; ``None`` without one, or where it leaves less than
        MIN_REGION_AREA positions (a mask with nothing left at a deep layer: the whole painting there)."""
        if self.guides is None:
            return None
        g = self.guides[name]
        return g if float(g.double().pow(2).sum()) >= MIN_REGION_AREA else None


def encode_styles(encoder: VGG19Encoder, config: Config, inputs: Inputs, level_longest: int, device: torch.device) -> list[StyleFeatures]:
    """Each style encoded at the level's style size, with its own mask's guides where it has one."""
    style_size = max(MIN_SIDE, round(level_longest * config.style_scale))
    out: list[StyleFeatures] = []
    for i, style in enumerate(inputs.styles_work):
        h, w = style.shape[-2:]
        hw = fit_size(h, w, style_size, MIN_SIDE)
        feats = encoder(resize(style, hw).to(device).contiguous(memory_format=torch.channels_last))
        mask = inputs.style_masks[i] if i < len(inputs.style_masks) else None
        guides = None if mask is None else layer_guides(_resize_mask(mask, hw).to(device), config.style_layers, config.mask_propagation)
        out.append(StyleFeatures({n: feats[n] for n in config.style_layers}, guides))
    return out


def _style_grams(styles: Sequence[StyleFeatures], layers: Sequence[str]) -> list[dict[str, Tensor]]:
    """Each style's Grams, inside its own mask where it has one."""
    out: list[dict[str, Tensor]] = []
    for style in styles:
        grams = {}
        for n in layers:
            g = style.guide(n)
            f = style.features[n]
            grams[n] = (gram_matrix(f) if g is None else guided_gram(f, g, float(g.double().pow(2).sum()))).float().detach()
        out.append(grams)
    return out


@dataclass(frozen=True)
class StyleRegion:
    """A region that takes a style, at a level: its ``label``, ``weight``, the blend ``shares``
    ``((share, style index), ...)`` summing to 1, and its ``guides`` ``{layer: (1, 1, h, w)}`` at the
    layers where it is large enough."""

    label: str
    weight: float
    shares: tuple[tuple[float, int], ...]
    guides: Mapping[str, Tensor]


def style_regions(config: Config, inputs: Inputs, hw: HW, device: torch.device, warn: bool = True) -> list[StyleRegion]:
    """The regions of ``inputs`` that take a style ("keep the photo" regions have none), with their
    guides at a level of size ``hw``. A region whose guide covers less than
    :data:`~painterly.masks.MIN_REGION_AREA` positions at a layer is left out there (with a
    :class:`PainterlyWarning` when ``warn``): too few positions for its statistics."""
    guides = layer_guides(resize_weights(inputs.region_weights, hw).to(device), config.style_layers, config.mask_propagation)
    out = []
    for k, region in enumerate(inputs.regions):
        if region.is_photo:
            continue
        blend = [inputs.style_weights[s] for s in region.styles]
        total = sum(blend)
        shares = [b / total for b in blend] if total > 0 else [1.0 / len(blend)] * len(blend)
        kept = {}
        for n in config.style_layers:
            g = guides[n][k : k + 1]
            coverage = float(g.double().sum())
            if coverage < MIN_REGION_AREA:
                if warn:
                    warnings.warn(
                        f"region {region.label} covers {coverage:.2f} positions at {n} at {max(hw)} px: "
                        f"too small for that layer, skipped there",
                        PainterlyWarning,
                        stacklevel=3,
                    )
                continue
            kept[n] = g.contiguous()
        out.append(StyleRegion(region.label, region.weight, tuple(zip(shares, region.styles)), kept))
    return out


def _resize_mask(mask: Tensor, hw: HW) -> Tensor:
    """A ``(1, 1, H, W)`` style mask at ``hw`` (bilinear, antialiased), in [0, 1]."""
    if tuple(mask.shape[-2:]) == tuple(hw):
        return mask
    out = torch.nn.functional.interpolate(mask, size=tuple(hw), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp(0, 1)


def build_guided_targets(
    encoder: VGG19Encoder, config: Config, inputs: Inputs, level_longest: int, hw: HW, device: torch.device,
    styles: Sequence[StyleFeatures] | None = None,
) -> dict[str, tuple[RegionTarget, ...]]:
    """``{layer: (RegionTarget, ...)}`` of the style regions at a level of size ``hw`` (regions too
    small at a layer are left out there, with a note: :func:`style_regions`). ``styles``: the styles
    already encoded by :func:`encode_styles` (encoded here otherwise).
    Call under ``torch.no_grad()`` (and the run's autocast).
    """
    if styles is None:
        styles = encode_styles(encoder, config, inputs, level_longest, device)
    style_grams = _style_grams(styles, config.style_layers)
    targets: dict[str, list[RegionTarget]] = {n: [] for n in config.style_layers}
    for region in style_regions(config, inputs, hw, device):
        for n, g in region.guides.items():
            gram = sum(share * style_grams[s][n] for share, s in region.shares)
            targets[n].append(RegionTarget(region.label, g, float(g.double().pow(2).sum()), gram, region.weight))
    return {n: tuple(v) for n, v in targets.items()}
