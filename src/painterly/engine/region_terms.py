"""Regions with the style losses beyond the Gram matrix (``style_loss`` w2, sliced, histogram).

Each style region's statistics come from that region's features only, with the guides and area
normalisation of the guided Gram (:mod:`.guided`): a position of the layer counts with the weight
``w_p = g_p²`` its guide gives it in the region's Gram, and every statistic is divided by the
region's ``Σ_p w_p`` (a small region gets its style as strongly as a large one):

* ``w2``: the region's weighted mean and covariance (:func:`~painterly.losses.guided_moments`)
  against the Gaussian of its style(s); a sum over positions, so it can be evaluated by tiles;
* ``sliced`` and ``histogram``: the *weighted* distribution of the region's values (each position a
  sample of weight ``w_p``: weighted quantiles, :func:`~painterly.losses.weighted_sorted_loss`); a
  hard mask is exactly the region's positions, a soft edge fades a position out smoothly (a 0.5
  threshold would make the loss jump as the edge moves; weights as multiplicities keep it continuous).
  These sort all of a region's positions at once: never by tiles.

A style's own mask selects its positions the same way. Blending several styles in a region is what
each loss does without regions (:mod:`.style_terms`): the mixture's Gaussian for w2, the mean of the
quantile functions for sliced and histogram. "Keep the photo" regions get no style term; a region too
small at a layer is skipped there (:func:`~.guided.style_regions`, with a note).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from torch import Tensor

from ..config import Config
from ..layers import layer
from ..losses import (
    GaussianTarget,
    feature_moments,
    gaussian_target,
    gram_sum,
    guided_moments,
    moments_from_sums,
    w2_from_moments,
    weighted_quantiles,
    weighted_sorted_loss,
)
from ..encoder import VGG19Encoder
from .guided import StyleFeatures, build_guided_targets, encode_styles, style_regions
from .inputs import Inputs
from .pyramid import HW
from .style_terms import HISTOGRAM_LAYERS, SLICED_REDRAW_EVERY, draw_directions, histogram_stride, layer_positions, sliced_directions_count

if TYPE_CHECKING:
    from .tiled import Window


def _acc(t: Tensor) -> Tensor:
    return t if t.dtype == torch.float64 else t.float()


def _area(guide: Tensor) -> float:
    return float(guide.double().pow(2).sum())


@dataclass(frozen=True)
class RegionGaussian:
    """W2: one region at one layer: its ``guide`` ``(1, 1, h, w)``, ``area`` ``Σ g²``, the Gaussian
    ``target`` of its style(s) and its ``weight``."""

    label: str
    guide: Tensor
    area: float
    target: GaussianTarget
    weight: float


@dataclass(frozen=True)
class RegionSamples:
    """Sliced/histogram: one region at one layer: ``index`` ``(P,)`` its positions on the layer's
    (flattened, for the histogram possibly strided) grid, ``weights`` ``(P,)`` their ``g²``, its
    ``weight``; ``target`` ``(C, P)`` (histogram: the blended channel quantiles) and ``sources``
    (sliced: ``((share, (C, M) style samples, (M,) their weights or None), ...)``, projected afresh on
    each iteration's directions)."""

    label: str
    index: Tensor
    weights: Tensor
    weight: float
    target: Tensor | None = None
    sources: tuple[tuple[float, Tensor, Tensor | None], ...] = ()


def _flat(features: Tensor, index: Tensor) -> Tensor:
    """``(1, C, h, w)`` features at the positions ``index`` of the flattened grid: ``(C, P)``."""
    return _acc(features).flatten(2)[0].index_select(1, index)


@dataclass(frozen=True)
class GuidedW2Term:
    """``weight × Σ_layers layer_weight × Σ_regions region_weight × w2(region's moments, target)``;
    with one region of ones it is :class:`~.style_terms.W2StyleTerm`."""

    targets: Mapping[str, tuple[RegionGaussian, ...]]
    layer_weights: Mapping[str, float]
    weight: float
    name: str = "style"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(n for n, regions in self.targets.items() if regions)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        loss = 0.0
        for n in self.layers:
            f = features[n]
            part = sum(r.weight * w2_from_moments(*guided_moments(f, r.guide, r.area), r.target) for r in self.targets[n])
            loss = loss + self.layer_weights[n] * part
        return loss * self.weight

    def partials(self, image: Tensor, features: Mapping[str, Tensor], window: "Window") -> dict[str, Tensor]:
        """Per layer and region: ``Σ_p g_p² F_p`` ``(1, C)`` and ``Σ_p g_p² F_p F_pᵀ`` ``(1, C, C)``."""
        out = {}
        for n in self.layers:
            stride = layer(n).stride
            f = window.own(features[n], stride)
            for k, r in enumerate(self.targets[n]):
                g = window.whole(r.guide, stride)
                out[f"{n}/{k}/sum"] = (_acc(f) * g.to(_acc(f).dtype).pow(2)).sum(dim=(2, 3))
                out[f"{n}/{k}/gram"] = gram_sum(f * g.to(f.dtype))
        return out

    def from_partials(self, stats: Mapping[str, Tensor], shape: Sequence[int]) -> Tensor:
        loss = 0.0
        for n in self.layers:
            part = 0.0
            for k, r in enumerate(self.targets[n]):
                moments = moments_from_sums(stats[f"{n}/{k}/sum"], stats[f"{n}/{k}/gram"], r.area)
                part = part + r.weight * w2_from_moments(*moments, r.target)
            loss = loss + self.layer_weights[n] * part
        return loss * self.weight


@dataclass(frozen=True)
class GuidedHistogramTerm:
    """``weight × Σ_layers layer_weight × Σ_regions region_weight × weighted histogram loss`` (exact:
    weighted sorts; a layer of more than HISTOGRAM_EXACT_ELEMENTS values on every other row and column,
    as without regions); reported as ``histogram`` beside the guided Gram ``style`` term."""

    targets: Mapping[str, tuple[RegionSamples, ...]]
    strides: Mapping[str, int]
    layer_weights: Mapping[str, float]
    weight: float
    name: str = "histogram"
    whole_image = "`style_loss` histogram (its histogram term sorts all positions of a layer at once)"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(n for n, regions in self.targets.items() if regions)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        loss = 0.0
        for n in self.layers:
            s = self.strides[n]
            f = features[n] if s == 1 else features[n][..., ::s, ::s]
            part = sum(r.weight * weighted_sorted_loss(_flat(f, r.index), r.weights, r.target) for r in self.targets[n])
            loss = loss + self.layer_weights[n] * part
        return loss * self.weight


class GuidedSlicedTerm:
    """``weight × Σ_layers layer_weight × Σ_regions region_weight × weighted sliced loss`` on
    directions drawn once per period of iterations (:meth:`redraw`, in place, as
    :class:`~.style_terms.SlicedStyleTerm` draws them: the same directions for the same seed and
    iteration), shared by the regions of a layer."""

    name = "style"
    whole_image = "`style_loss` sliced (it sorts all positions of a layer at once)"

    def __init__(self, targets: Mapping[str, tuple[RegionSamples, ...]], channels: Mapping[str, int], hw: HW,
                 layer_weights: Mapping[str, float], weight: float, device: torch.device) -> None:
        self.targets = targets
        self.layer_weights = layer_weights
        self.weight = weight
        self.order = tuple(targets)  # every style layer, in order: the draws follow the unmasked term's
        self.layers = tuple(n for n in self.order if targets[n])
        counts = {n: sliced_directions_count(channels[n], layer_positions(n, hw)) for n in self.order}
        self.directions = {n: torch.zeros(channels[n], counts[n], device=device) for n in self.order}
        self.quantiles = {n: tuple(torch.zeros(counts[n], r.index.numel(), device=device) for r in targets[n]) for n in self.order}
        self.redraw_every = SLICED_REDRAW_EVERY
        self._drawn: tuple[int, int] | None = None
        self.redraw(0, 0)

    def redraw(self, seed: int, iteration: int) -> bool:
        """Make ``iteration``'s directions current (those of its period, as the unmasked term's) and
        project each region's styles on them, in place; returns whether ``iteration`` starts a period."""
        period = iteration // self.redraw_every
        if self._drawn == (seed, period):
            return iteration % self.redraw_every == 0
        self._drawn = (seed, period)
        draw_directions(self.directions, self.order, seed, period)
        for n in self.order:
            with torch.no_grad():
                for r, q in zip(self.targets[n], self.quantiles[n]):
                    dt = self.directions[n].t()
                    q.copy_(sum(share * weighted_quantiles(dt.to(x.dtype) @ x, w, q.shape[-1]) for share, x, w in r.sources))
        return iteration % self.redraw_every == 0

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        loss = 0.0
        for n in self.layers:
            f, d = features[n], self.directions[n]
            part = 0.0
            for r, q in zip(self.targets[n], self.quantiles[n]):
                x = _flat(f, r.index)
                part = part + r.weight * weighted_sorted_loss(d.to(x.dtype).t() @ x, r.weights, q)
            loss = loss + self.layer_weights[n] * part
        return loss * self.weight


@dataclass(frozen=True)
class RegionStyleTargets:
    """A level's region statistics for ``kind`` (w2, sliced, histogram), per style layer (in order)."""

    kind: str
    targets: Mapping[str, tuple]
    hw: HW
    channels: Mapping[str, int] = field(default_factory=dict)
    strides: Mapping[str, int] = field(default_factory=dict)

    def term(self, layer_weights: Mapping[str, float], weight: float):  # noqa: ANN201 (one of three terms)
        """The term over these targets (``None`` when no region is left at any layer)."""
        if not any(self.targets.values()):
            return None
        if self.kind == "w2":
            return GuidedW2Term(self.targets, layer_weights, weight)
        if self.kind == "histogram":
            return GuidedHistogramTerm(self.targets, self.strides, layer_weights, weight)
        device = next(r for v in self.targets.values() for r in v).index.device
        return GuidedSlicedTerm(self.targets, self.channels, self.hw, layer_weights, weight, device)


def _positions(guide: Tensor) -> tuple[Tensor, Tensor]:
    """The flat positions of ``guide`` ``(1, 1, h, w)`` with a positive weight, and their ``g²``."""
    w = guide.flatten().pow(2)
    index = torch.nonzero(w > 0).flatten()
    return index, w.index_select(0, index)


def _style_samples(style: StyleFeatures, n: str) -> tuple[Tensor, Tensor | None]:
    """A style's ``(C, M)`` feature vectors at ``n`` and their weights (``None``: all, unweighted)."""
    f = _acc(style.features[n]).flatten(2)[0]
    g = style.guide(n)
    if g is None:
        return f, None
    index, w = _positions(g.to(f.dtype))
    return f.index_select(1, index), w


def region_style_targets(kind: str, regions: Sequence, styles: Sequence[StyleFeatures], layers: Sequence[str], hw: HW) -> RegionStyleTargets:
    """The targets of ``kind`` for style ``regions`` (:class:`~.guided.StyleRegion`) from the encoded
    ``styles``, for an output of ``hw``; detached, fp32 (fp64 for fp64 features)."""
    targets: dict[str, list] = {n: [] for n in layers}
    if kind == "w2":
        moments = []
        for style in styles:
            per = {}
            for n in layers:
                g = style.guide(n)
                f = style.features[n]
                per[n] = feature_moments(f) if g is None else guided_moments(f, g, _area(g))
            moments.append(per)
        for region in regions:
            for n, g in region.guides.items():
                parts = [(share, *moments[s][n]) for share, s in region.shares]
                mean = sum(w * m[0] for w, m, _ in parts)
                second = sum(w * (c[0] + m[0][:, None] * m[0][None, :]) for w, m, c in parts)
                target = gaussian_target(mean[None], (second - mean[:, None] * mean[None, :])[None])
                targets[n].append(RegionGaussian(region.label, g, _area(g), target, region.weight))
        return RegionStyleTargets(kind, {n: tuple(v) for n, v in targets.items()}, hw)
    channels = {n: styles[0].features[n].shape[1] for n in layers}
    if kind == "histogram":
        layers = [n for n in layers if n in HISTOGRAM_LAYERS] or list(layers)
        targets = {n: [] for n in layers}
    strides = {n: histogram_stride(channels[n], layer_positions(n, hw)) if kind == "histogram" else 1 for n in layers}
    samples = [{n: _style_samples(style, n) for n in layers} for style in styles]
    for region in regions:
        for n, g in region.guides.items():
            if n not in targets:
                continue
            s = strides[n]
            index, w = _positions(g[..., ::s, ::s])
            if index.numel() == 0:
                continue  # a thin region between the rows and columns a strided histogram layer reads
            if kind == "histogram":
                q = sum(share * weighted_quantiles(*samples[i][n], index.numel()) for share, i in region.shares)
                targets[n].append(RegionSamples(region.label, index, w, region.weight, target=q))
            else:
                # fp32 samples, as without a mask: the directions and their quantiles are fp32 buffers.
                sources = tuple((share, samples[i][n][0].float(), samples[i][n][1]) for share, i in region.shares)
                targets[n].append(RegionSamples(region.label, index, w, region.weight, sources=sources))
    return RegionStyleTargets(kind, {n: tuple(v) for n, v in targets.items()}, hw, channels, strides)


def build_region_style_targets(
    config: Config, inputs: Inputs, styles: Sequence[StyleFeatures], hw: HW, device: torch.device
) -> RegionStyleTargets:
    """The region targets of ``config.style_loss`` (w2, sliced, histogram) at a level of size ``hw``,
    from the styles encoded by :func:`~.guided.encode_styles`. Call under ``torch.no_grad()``."""
    # The histogram kind's guided Gram targets have already noted the regions skipped.
    regions = style_regions(config, inputs, hw, device, warn=config.style_loss != "histogram")
    with torch.autocast(device.type, enabled=False):  # fp32 statistics whatever the encoder ran in
        return region_style_targets(config.style_loss, regions, styles, config.style_layers, hw)


def build_region_targets(
    encoder: VGG19Encoder, config: Config, inputs: Inputs, level_longest: int, hw: HW, device: torch.device
) -> tuple[dict[str, tuple], RegionStyleTargets | None]:
    """A masked level's style targets: the guided Grams (``style_loss`` gram, and histogram's Gram
    part) and the regions' statistics of the other kinds. Under ``torch.no_grad()`` and the autocast."""
    styles = encode_styles(encoder, config, inputs, level_longest, device)
    kind = config.style_loss
    guided = build_guided_targets(encoder, config, inputs, level_longest, hw, device, styles) if kind in ("gram", "histogram") else {}
    return guided, (build_region_style_targets(config, inputs, styles, hw, device) if kind != "gram" else None)
