"""The Laplacian term (Li et al. 2017; the loss itself: :mod:`painterly.losses.laplacian`): the image's
fine structure held to the photo's, as a :class:`~painterly.engine.objective.Term` on the pixels.

Its targets (the content's pooled Laplacians at the level's size) are computed once per level by
:func:`laplacian_targets`, called from :func:`~painterly.engine.targets.build_targets`; it evaluates by
tiles exactly (:meth:`LaplacianTerm.partials`), its tiles aligned to the pools (:attr:`LaplacianTerm.tile_reach`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from torch import Tensor

from ..losses.laplacian import laplacian_loss, pooled_laplacian

if TYPE_CHECKING:
    from .tiled import Window

PIXEL_SCALE = 255.0
"""The loss is computed in 0–255 pixel units, as the authors' lap_style.lua computes it on Caffe's
input: their weights (``-lap_weights 100``) mean the same here, next to painterly's content and style
weights, which are jcjohnson/neural-style's."""


def laplacian_targets(content: Tensor, pools: Sequence[int]) -> dict[int, Tensor]:
    """``{pool: pooled_laplacian(content, pool)}`` ``(1, 1, H // pool − 2, W // pool − 2)``, float32
    (float64 for a float64 content), detached: the content ``(1, 3, H, W)`` in [0, 1] at a level's size, on the run's device."""
    with torch.no_grad():
        return {p: pooled_laplacian(content, p) for p in pools}


@dataclass(frozen=True)
class LaplacianTerm:
    """``weight × 255² × Σ_pools laplacian_loss(image, targets[pool], pool)``.

    ``targets``: ``{pool: (1, 1, h, w)}`` from :func:`laplacian_targets` of the content at this level's
    size. A pool too large for the level (fewer than 3 pooled cells a side) adds 0 there.
    """

    targets: Mapping[int, Tensor]
    weight: float
    name: str = "laplacian"
    layers: tuple[str, ...] = ()

    @property
    def tile_reach(self) -> tuple[int, int]:
        """``(alignment, halo)`` in pixels that tiles need for :meth:`partials` to be exact: origins on
        every pool's grid, and a halo of one pooled cell (the filter's neighbours) of the largest pool."""
        return math.lcm(*self.targets), max(self.targets)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        loss = sum(laplacian_loss(image, t, p) for p, t in self.targets.items())
        return loss * (PIXEL_SCALE**2 * self.weight)

    def partials(self, image: Tensor, features: Mapping[str, Tensor], window: "Window") -> dict[str, Tensor]:
        """Per pool: Σ (D(pool(crop)) − target)² over the filter positions whose centre cell starts in
        the tile's own pixels (the crop's origin lies on the pool's grid: :attr:`tile_reach`)."""
        (y0, y1, x0, x1), (cy, _, cx, _) = window.own_pixels, window.crop
        h, w = window.hw
        out = {}
        for p, target in self.targets.items():
            lap = pooled_laplacian(image, p)  # position m of the crop's map is centre cell cy // p + m + 1
            # Owned centre cells [r0, r1) × [c0, c1), clipped to those with a whole neighbourhood.
            r0, r1 = max(y0 // p, 1), min(y1 // p, h // p - 1)
            c0, c1 = max(x0 // p, 1), min(x1 // p, w // p - 1)
            if r1 <= r0 or c1 <= c0:
                out[str(p)] = lap.new_zeros(())
                continue
            mine = lap[..., r0 - cy // p - 1 : r1 - cy // p - 1, c0 - cx // p - 1 : c1 - cx // p - 1]
            out[str(p)] = (mine - target[..., r0 - 1 : r1 - 1, c0 - 1 : c1 - 1].to(lap.dtype)).pow(2).sum()
        return out

    def from_partials(self, stats: Mapping[str, Tensor], shape: Sequence[int]) -> Tensor:
        # A pool with no position at this size summed zeros: divided by 1, it adds 0.
        total = sum(stats[str(p)] / max(1, t.numel()) for p, t in self.targets.items())
        return total * (PIXEL_SCALE**2 * self.weight)
