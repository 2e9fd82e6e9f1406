"""Guided Gram matrices (Gatys et al., CVPR 2017): the style statistics of one region of an image.

The Gram of the guide-weighted features, ``Σ_p (g_p F_p)(g_p F_p)ᵀ``, divided by ``C · Σ_p g_p²`` (the
region's area at that layer) instead of ``C·H·W``: a region's Gram is then the average co-activation
*inside* the region, on the scale of a whole-image Gram, so a small region gets its style as strongly
as a large one. With a guide of ones it is :func:`~painterly.losses.gram_matrix` exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .gram import gram_matrix, style_loss


def region_area(guide: Tensor) -> Tensor:
    """``Σ_p g_p²`` of a ``(1, 1, h, w)`` guide: the region's area in positions at that layer (0-d)."""
    return guide.pow(2).sum()


def guided_gram(features: Tensor, guide: Tensor, area: float | Tensor | None = None) -> Tensor:
    """The Gram matrix of ``features`` inside the region ``guide``.

    Args:
        features: ``(N, C, H, W)``, any float dtype and memory format.
        guide: ``(1, 1, H, W)`` or ``(N, 1, H, W)`` weights in [0, 1] (detached).
        area: ``Σ_p g_p²`` if already known (a Python float keeps a CUDA graph free of host reads);
            computed from ``guide`` otherwise. Must be positive: callers skip empty regions.

    Returns:
        ``(N, C, C)`` float32 (float64 for float64 features),
        ``G = Σ_p g_p² F_p F_pᵀ / (C · Σ_p g_p²)``.
    """
    h, w = features.shape[-2:]
    if area is None:
        area = region_area(guide.double() if features.dtype == torch.float64 else guide.float())
    masked = features * guide.to(features.dtype)
    # gram_matrix divides by C·H·W; the region's area replaces H·W (a factor of exactly 1 for a guide of ones).
    return gram_matrix(masked) * ((h * w) / area)


def guided_style_loss(features: Tensor, guide: Tensor, target: Tensor, area: float | Tensor | None = None) -> Tensor:
    """``style_loss(guided_gram(features, guide), target)``: 0-d, ≥ 0."""
    return style_loss(guided_gram(features, guide, area), target)
