"""Guided Gram matrices (Gatys et al., CVPR 2017): the style statistics of one region of an image.

The Gram of the guide-weighted features, ``Σ_p (g_p F_p)(g_p F_p)ᵀ``, divided by ``C · Σ_p g_p²`` (the
region's area at that layer) instead of ``C·H·W``: a region's Gram is then the average co-activation
*inside* the region, on the scale of a whole-image Gram, so a small region gets its style as strongly
as a large one. With a guide of ones it is :func:`~painterly.losses.gram_matrix` exactly.

The other style statistics of a region use the same per-position weights ``w_p = g_p²`` (a position
counts as much in a region's mean, covariance or quantiles as in its Gram), normalised by the same
area ``Σ_p w_p``: :func:`guided_moments` (W2) and, for the sorted losses (sliced, histogram), the
*weighted* empirical distribution of the region's values (:func:`weighted_sorted_loss`,
:func:`weighted_quantiles`): a position of weight ``w`` counts as ``w`` of a sample, so a soft edge
fades a position out of a region smoothly and a hard mask selects exactly the region's positions.
With weights of ones each is the unweighted statistic (up to round-off).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .gram import gram_matrix, style_loss
from .wasserstein import resample_quantiles


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


def _acc(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def guided_moments(features: Tensor, guide: Tensor, area: float | Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The weighted mean and covariance of the feature vectors inside the region ``guide``
    (weights ``g_p²``, normalised by ``area = Σ_p g_p²``): :func:`~painterly.losses.feature_moments`
    of the region; the same with a guide of ones.

    Args:
        features: ``(N, C, H, W)``; guide: ``(1 or N, 1, H, W)`` in [0, 1] (detached).

    Returns:
        ``mean`` ``(N, C)`` and ``cov`` ``(N, C, C)``, float32 (float64 for float64 features).
    """
    acc = _acc(features)
    if area is None:
        area = region_area(guide.to(acc))
    mean = (features.to(acc) * guide.to(acc).pow(2)).sum(dim=(2, 3)) / area
    # Σ g² F Fᵀ / area is C × the guided Gram (its fast backward); minus m mᵀ as in feature_moments.
    cov = guided_gram(features, guide, area) * features.shape[1] - mean.unsqueeze(2) * mean.unsqueeze(1)
    return mean, cov


def quantile_at(quantiles: Tensor, u: Tensor) -> Tensor:
    """A quantile function sampled at the mid-points ``(k + ½)/m`` (``quantiles`` ``(R, m)``,
    ascending), evaluated at the levels ``u`` ``(R, n)`` in [0, 1] by linear interpolation (constant
    beyond the first and last mid-points). Returns ``(R, n)``."""
    m = quantiles.shape[-1]
    pos = (u.detach() * m - 0.5).clamp(0, m - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    frac = (pos - lo).to(quantiles.dtype)
    return torch.lerp(quantiles.gather(-1, lo), quantiles.gather(-1, hi), frac)


def _levels(sorted_weights: Tensor) -> Tensor:
    """The quantile level of each sorted sample: the middle of its share of the total weight."""
    return (sorted_weights.cumsum(-1) - sorted_weights / 2) / sorted_weights.sum(-1, keepdim=True)


def weighted_quantiles(values: Tensor, weights: Tensor | None, count: int) -> Tensor:
    """The quantile function of weighted samples at the mid-points ``(k + ½)/count``.

    Args:
        values: ``(R, M)`` (rows: channels or directions; columns: positions), any order.
        weights: ``(M,)`` ≥ 0 with a positive sum, or ``None`` (all 1: then it is
            :func:`~painterly.losses.resample_quantiles` of the sorted values).
        count: the points to sample.

    Returns:
        ``(R, count)`` ascending, float32 (float64 for float64 input); detached use (targets).
    """
    acc = _acc(values)
    ordered, perm = values.to(acc).sort(dim=-1)
    if weights is None:
        return resample_quantiles(ordered, count)
    levels = _levels(weights.to(acc)[perm])
    u = ((torch.arange(count, dtype=acc, device=values.device) + 0.5) / count).expand(values.shape[0], count).contiguous()
    m = values.shape[-1]
    idx = torch.searchsorted(levels, u)
    hi, lo = idx.clamp(max=m - 1), (idx - 1).clamp(min=0)
    c_lo, c_hi = levels.gather(-1, lo), levels.gather(-1, hi)
    frac = torch.where(c_hi > c_lo, (u - c_lo) / (c_hi - c_lo).clamp(min=torch.finfo(acc).tiny), torch.ones_like(u)).clamp(0, 1)
    return torch.lerp(ordered.gather(-1, lo), ordered.gather(-1, hi), frac)


def weighted_sorted_loss(values: Tensor, weights: Tensor, target_quantiles: Tensor) -> Tensor:
    """The squared 1-D Wasserstein distance between each row's weighted samples and its target, the
    mean over rows of ``Σ_i w_(i) (v_(i) − Q(u_i))² / Σ_i w_i`` (sorted values ``v_(i)``, their
    levels ``u_i`` from :func:`weighted_quantiles`' rule, ``Q`` the target's quantile function).

    With weights of ones it is the mean squared difference of the sorted values and the target's
    quantiles: :func:`~painterly.losses.histogram_loss` (rows: channels) and
    :func:`~painterly.losses.sliced_wasserstein_loss` (rows: projections).

    Args:
        values: ``(R, P)`` differentiable; weights: ``(P,)`` ≥ 0, positive sum (detached);
        target_quantiles: ``(R, m)`` ascending, sampled at ``(k + ½)/m`` (any ``m``; detached).

    Returns:
        0-d ≥ 0, float32 (float64 for float64 input).
    """
    acc = _acc(values)
    ordered, perm = values.to(acc).sort(dim=-1)
    w = weights.to(acc)[perm]
    target = quantile_at(target_quantiles.to(acc), _levels(w))
    return ((ordered - target).pow(2) * w).sum() / (values.shape[0] * weights.to(acc).sum())
