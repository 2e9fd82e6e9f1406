"""The style terms beyond the Gram matrix (``style_loss`` w2, sliced, histogram): their targets, built
once per level, and the terms themselves (same call shape as :class:`~.objective.GramStyleTerm`).

Blending several styles (``style_blend`` weights ``w_s``, summing to 1) means, for each kind:

* ``gram``: the weighted mean of the Gram matrices (the mixture's second moment), as before;
* ``w2``: the Gaussian fitted to the *mixture* of the styles' features: mean ``Σ w_s m_s``, covariance
  ``Σ w_s (Σ_s + m_s m_sᵀ) − m mᵀ`` (consistent with the Gram blend: the same second moment);
* ``sliced`` and ``histogram``: along each direction (each channel), the weighted mean of the styles'
  quantile functions, which is the 1-D Wasserstein barycentre of the styles' distributions (a
  mixture would instead put some of each style's values side by side; the barycentre blends them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from torch import Tensor

from ..layers import feature_side, layer
from ..losses import (
    GaussianTarget,
    channel_quantiles,
    feature_moments,
    gaussian_target,
    gram_sum,
    histogram_loss,
    moments_from_sums,
    random_directions,
    resample_quantiles,
    sliced_wasserstein_loss,
    sorted_projections,
    w2_from_moments,
    w2_loss,
)

if TYPE_CHECKING:
    from .tiled import Window

STYLE_LOSS_SCALES: dict[str, float] = {"gram": 1.0, "w2": 1.0, "sliced": 2.2, "histogram": 1.75}
"""What ``style_weight`` is multiplied by for each ``style_loss`` (the histogram's: for its own term,
added to the Gram term), so that one ``--style-weight`` means about the same strength for each.
Measured by ``benchmarks/style_losses.py --calibrate``: each loss's style value at the content start
matched to the Gram loss's on a real pair (docs/style-losses.md)."""

SLICED_ELEMENTS = 1 << 18
"""Sliced loss: directions per layer ``min(C, ⌈SLICED_ELEMENTS / positions⌉)``: the cost is the
sort of ``directions × positions`` values, so shallow layers (many positions) get fewer directions
than deep ones (docs/benchmarks.md: sorting is what costs on a CPU)."""


SLICED_REDRAW_EVERY = 5
"""Sliced loss: new directions every this many iterations (docs/style-losses.md: measured)."""

HISTOGRAM_LAYERS = ("relu1_1", "relu4_1")
"""Histogram term: the style layers it matches (all style layers when none of these is one). Two, not
five, for speed; the first holds the colours and fine texture, the second the motifs."""

HISTOGRAM_EXACT_ELEMENTS = 1 << 20
HISTOGRAM_BINS = 256
"""Histogram term: a layer of more than HISTOGRAM_EXACT_ELEMENTS values (relu1_1 above ~128 px) is
matched with Risser's HISTOGRAM_BINS-bin histograms (O(n)) instead of an exact sort (O(n log n)),
the larger part of its cost on a CPU (docs/benchmarks.md), and on every other row and column only:
the histogram of that grid estimates the whole layer's, and every pixel still gets a gradient
through the 3×3 convolutions between it and the layer (a quarter of the passes over the values)."""


def histogram_stride(channels: int, positions: int) -> int:
    """1 (every position) for a layer of up to HISTOGRAM_EXACT_ELEMENTS values, else 2."""
    return 1 if channels * positions <= HISTOGRAM_EXACT_ELEMENTS else 2


def _strided_positions(name: str, hw: tuple[int, int], stride: int) -> int:
    s = layer(name).stride
    return -(-feature_side(hw[0], s) // stride) * -(-feature_side(hw[1], s) // stride)


def layer_positions(name: str, hw: tuple[int, int]) -> int:
    """Positions of layer ``name``'s output for an image of ``hw`` (each 2×2 pool keeps a partial cell:
    :func:`~painterly.layers.feature_side`)."""
    stride = layer(name).stride
    return feature_side(hw[0], stride) * feature_side(hw[1], stride)


def sliced_directions_count(channels: int, positions: int) -> int:
    """Directions for a layer of ``channels`` × ``positions``: see :data:`SLICED_ELEMENTS`."""
    return max(1, min(channels, -(-SLICED_ELEMENTS // max(1, positions))))


@dataclass(frozen=True)
class StyleTargets:
    """A level's style statistics for one ``style_loss`` kind, per layer (detached, on the device):

    * ``gaussians`` (w2): :class:`~painterly.losses.GaussianTarget` of the blended styles;
    * ``samples`` (sliced): each style's ``(blend weight, (C, M_s) features)``, projected afresh on
      each period's directions;
    * ``histograms`` (histogram): ``(C, positions)`` blended channel quantiles at the output's size.
    """

    gaussians: Mapping[str, GaussianTarget] = field(default_factory=dict)
    samples: Mapping[str, tuple[tuple[float, Tensor], ...]] = field(default_factory=dict)
    histograms: Mapping[str, Tensor] = field(default_factory=dict)


def style_targets(kind: str, styles: Sequence[tuple[float, Mapping[str, Tensor]]], hw: tuple[int, int]) -> StyleTargets:
    """The statistics ``kind`` needs from each style's features ``(weight, {layer: (1, C, h, w)})``
    (weights summing to 1), for an output of ``hw`` pixels. ``gram`` needs none here."""
    if kind == "w2":
        gaussians = {}
        for n in styles[0][1]:
            moments = [(w, *feature_moments(f[n])) for w, f in styles]
            mean = sum(w * m[0] for w, m, _ in moments)
            second = sum(w * (c[0] + m[0][:, None] * m[0][None, :]) for w, m, c in moments)
            gaussians[n] = gaussian_target(mean[None], (second - mean[:, None] * mean[None, :])[None])
        return StyleTargets(gaussians=gaussians)
    if kind == "sliced":
        samples = {n: tuple((w, f[n][0].flatten(1).float()) for w, f in styles) for n in styles[0][1]}
        return StyleTargets(samples=samples)
    if kind == "histogram":
        names = [n for n in styles[0][1] if n in HISTOGRAM_LAYERS] or list(styles[0][1])
        hist = {}
        for n in names:
            c = styles[0][1][n].shape[1]
            count = _strided_positions(n, hw, histogram_stride(c, layer_positions(n, hw)))
            hist[n] = sum(w * channel_quantiles(f[n], count)[0] for w, f in styles)
        return StyleTargets(histograms=hist)
    return StyleTargets()


@dataclass(frozen=True)
class W2StyleTerm:
    """``weight × Σ_layers layer_weight × w2_loss(features, Gaussian target)``."""

    targets: Mapping[str, GaussianTarget]
    layer_weights: Mapping[str, float]
    weight: float
    name: str = "style"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        return sum(self.layer_weights[n] * w2_loss(features[n], t) for n, t in self.targets.items()) * self.weight

    # --- by tiles (engine/tiled.py): the mean and covariance come from sums over positions -------------
    def partials(self, image: Tensor, features: Mapping[str, Tensor], window: "Window") -> dict[str, Tensor]:
        """Per layer: Σ_p F_p ``(1, C)`` and Σ_p F_p F_pᵀ ``(1, C, C)`` over the tile's own positions."""
        out = {}
        for n in self.targets:
            f = window.own(features[n], layer(n).stride)
            out[f"{n}/sum"] = f.to(torch.float64 if f.dtype == torch.float64 else torch.float32).sum(dim=(2, 3))
            out[f"{n}/gram"] = gram_sum(f)
        return out

    def from_partials(self, stats: Mapping[str, Tensor], shape: Sequence[int]) -> Tensor:
        loss = 0.0
        for n, t in self.targets.items():
            moments = moments_from_sums(stats[f"{n}/sum"], stats[f"{n}/gram"], layer_positions(n, tuple(shape[-2:])))
            loss = loss + self.layer_weights[n] * w2_from_moments(*moments, t)
        return loss * self.weight


@dataclass(frozen=True)
class HistogramTerm:
    """``weight × Σ_layers layer_weight × histogram_loss(features, channel quantiles)``: Risser's
    term, reported as ``histogram`` beside the Gram ``style`` term."""

    targets: Mapping[str, Tensor]
    layer_weights: Mapping[str, float]
    weight: float
    name: str = "histogram"
    whole_image = "`style_loss` histogram (its histogram term sorts all positions of a layer at once)"

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        loss = features[next(iter(self.targets))].new_zeros((), dtype=torch.float32)
        for n, t in self.targets.items():
            f = features[n]
            if histogram_stride(f.shape[1], f.shape[2] * f.shape[3]) == 1:
                loss = loss + self.layer_weights[n] * histogram_loss(f, t)
            else:
                loss = loss + self.layer_weights[n] * histogram_loss(f[..., ::2, ::2], t, HISTOGRAM_BINS)
        return loss * self.weight


def draw_directions(directions: Mapping[str, Tensor], order: Sequence[str], seed: int, period: int) -> None:
    """Fill each layer's ``(C, K)`` direction buffer in place with the draw of ``(seed, period, its
    index in order)``: the same directions for the masked and the unmasked sliced term, and for a
    resumed run."""
    for i, n in enumerate(order):
        generator = torch.Generator().manual_seed((seed * 1_000_003 + period * 101 + i) % (2**63))
        directions[n].copy_(random_directions(directions[n].shape[0], directions[n].shape[1], generator))


class SlicedStyleTerm:
    """``weight × Σ_layers layer_weight × sliced_wasserstein_loss`` on directions that change once
    every ``redraw_every`` (:data:`SLICED_REDRAW_EVERY`) iterations.

    The directions (and the targets' quantiles along them) are the term's state for those iterations:
    :meth:`redraw` (called by the run at the start of each iteration, through
    :meth:`~.objective.Objective.begin_iteration`) replaces them *in place* at the start of a period,
    so every evaluation of a line search sees the same objective (L-BFGS assumes one), and a captured
    CUDA graph reads the new ones; the run then has L-BFGS re-evaluate the loss at the current point.
    They depend only on ``(seed, iteration // redraw_every)``: a resumed run draws the same.
    """

    name = "style"
    whole_image = "`style_loss` sliced (it sorts all positions of a layer at once)"

    def __init__(self, samples: Mapping[str, tuple[tuple[float, Tensor], ...]], hw: tuple[int, int],
                 layer_weights: Mapping[str, float], weight: float, device: torch.device) -> None:
        self.samples = samples
        self.layer_weights = layer_weights
        self.weight = weight
        self.layers = tuple(samples)
        self.positions = {n: layer_positions(n, hw) for n in samples}
        channels = {n: s[0][1].shape[0] for n, s in samples.items()}
        counts = {n: sliced_directions_count(channels[n], p) for n, p in self.positions.items()}
        self.directions = {n: torch.zeros(channels[n], counts[n], device=device) for n in samples}
        self.quantiles = {n: torch.zeros(counts[n], self.positions[n], device=device) for n in samples}
        self.redraw_every = SLICED_REDRAW_EVERY
        self._drawn: tuple[int, int] | None = None
        self.redraw(0, 0)

    def redraw(self, seed: int, iteration: int) -> bool:
        """Make ``iteration``'s directions current: those of its period (``redraw_every``
        iterations), drawn and projected on the styles in place unless already there. Returns whether
        ``iteration`` starts a period (the objective changes there: the optimiser's stored value is stale)."""
        period = iteration // self.redraw_every
        if self._drawn == (seed, period):
            return iteration % self.redraw_every == 0
        self._drawn = (seed, period)
        draw_directions(self.directions, self.layers, seed, period)
        for n in self.layers:
            with torch.no_grad():
                q = sum(w * resample_quantiles(sorted_projections(f[None, :, :, None], self.directions[n])[0], self.positions[n])
                        for w, f in self.samples[n])
            self.quantiles[n].copy_(q)
        return iteration % self.redraw_every == 0

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        loss = sum(self.layer_weights[n] * sliced_wasserstein_loss(features[n], self.directions[n], self.quantiles[n]) for n in self.layers)
        return loss * self.weight
