"""Wasserstein style losses: W2 between Gaussians fitted to the features, and the sliced Wasserstein
distance along random directions (Heitz et al., CVPR 2021).

Both compare the *distribution* of the C-dimensional feature vectors over positions, where a Gram
matrix compares only its uncentred second moment: W2 adds the means and treats the covariance as a
shape; the sliced distance matches the whole distribution along each direction (sorted projections,
i.e. quantile functions).

All values are means (per channel for W2, per direction and position for the sliced loss), so that,
like the Gram loss, they do not grow with the image size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .gram import gram_matrix

# Eigenvalues below this (relative to the largest) are treated as 0 in square roots: a covariance of
# ReLU features is PSD but numerically has tiny negative eigenvalues, whose sqrt (and its gradient,
# ½/√λ) would be NaN or huge.
_EIG_FLOOR = 1e-10


def _flat(features: Tensor) -> Tensor:
    """``(N, C, H, W)`` → ``(N, C, HW)`` in float32 (float64 stays float64)."""
    acc = torch.float64 if features.dtype == torch.float64 else torch.float32
    n, c, h, w = features.shape
    return features.reshape(n, c, h * w).to(acc)


def feature_moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the feature vectors over positions.

    Args:
        features: ``(N, C, H, W)``, any float dtype.

    Returns:
        ``mean`` ``(N, C)`` and ``cov`` ``(N, C, C)`` (symmetric PSD, divided by ``H·W``), float32
        (float64 for float64 input).
    """
    # E[f fᵀ] − m mᵀ through gram_matrix: its hand-written backward is several times faster on CPU than
    # autograd's through a centred copy, and fp32 holds the difference well for ReLU features.
    acc = torch.float64 if features.dtype == torch.float64 else torch.float32
    mean = features.to(acc).mean(dim=(2, 3))
    cov = gram_matrix(features) * features.shape[1] - mean.unsqueeze(2) * mean.unsqueeze(1)
    return mean, cov


def sqrtm_psd(matrix: Tensor) -> Tensor:
    """The symmetric square root of a symmetric PSD matrix, by an eigendecomposition with the
    eigenvalues clamped at ``_EIG_FLOOR × λ_max`` (stable in fp32).

    Args:
        matrix: ``(..., C, C)`` symmetric PSD, float32 or float64.

    Returns:
        ``(..., C, C)`` ``S`` with ``S @ S ≈ matrix``.
    """
    vals, vecs = torch.linalg.eigh(matrix)
    vals = torch.maximum(vals, vals.amax(dim=-1, keepdim=True).clamp(min=0) * _EIG_FLOOR)
    return (vecs * vals.sqrt().unsqueeze(-2)) @ vecs.transpose(-1, -2)


class GaussianTarget(NamedTuple):
    """A style layer's Gaussian, computed once per level by :func:`gaussian_target`:
    ``mean`` ``(N, C)``, ``cov`` ``(N, C, C)``, ``cov_sqrt`` ``(N, C, C)`` and ``trace`` ``(N,)`` (of ``cov``)."""

    mean: Tensor
    cov: Tensor
    cov_sqrt: Tensor
    trace: Tensor


def gaussian_target(mean: Tensor, cov: Tensor) -> GaussianTarget:
    """The target of :func:`w2_loss` from a mean ``(N, C)`` and a covariance ``(N, C, C)`` (e.g. of
    :func:`feature_moments`, or a blend of several); detached."""
    mean, cov = mean.detach(), cov.detach()
    cov = (cov + cov.transpose(-1, -2)) / 2
    return GaussianTarget(mean, cov, sqrtm_psd(cov), torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1))


def w2_loss(features: Tensor, target: GaussianTarget) -> Tensor:
    """Squared Wasserstein-2 distance between the Gaussian fitted to ``features`` and ``target``, per
    channel::

        ( |m − m_t|² + tr Σ + tr Σ_t − 2 tr (Σ_t^½ Σ Σ_t^½)^½ ) / C

    The last trace is the sum of the square roots of the eigenvalues of ``Σ_t^½ Σ Σ_t^½``; its
    gradient ``Σ_i ½ λ_i^-½ v_i v_iᵀ`` needs the eigenvectors but, unlike the gradient of a matrix
    square root, never divides by eigenvalue gaps, so it stays finite for repeated eigenvalues.

    Args:
        features: ``(N, C, H, W)`` of the image being optimised.
        target: from :func:`gaussian_target`, with the same ``C``.

    Returns:
        0-d tensor ≥ 0 (up to round-off: about 1e-6 × the trace in fp32), zero iff the two Gaussians
        are equal; float32 (float64 for float64 input).
    """
    return w2_from_moments(*feature_moments(features), target)


def moments_from_sums(first: Tensor, second: Tensor, count: float | Tensor) -> tuple[Tensor, Tensor]:
    """The mean ``(N, C)`` and covariance ``(N, C, C)`` from sums over ``count`` (weighted) positions:
    ``first`` = Σ_p F_p ``(N, C)``, ``second`` = Σ_p F_p F_pᵀ ``(N, C, C)`` (what tiles gather)."""
    mean = first / count
    return mean, second / count - mean.unsqueeze(2) * mean.unsqueeze(1)


def w2_from_moments(mean: Tensor, cov: Tensor, target: GaussianTarget) -> Tensor:
    """:func:`w2_loss` from the image's mean ``(N, C)`` and covariance ``(N, C, C)`` already formed (by
    :func:`feature_moments`, a region's weighted moments, or sums gathered by tiles)."""
    c = cov.shape[-1]
    s = target.cov_sqrt.to(cov.dtype)
    inner = s @ cov @ s
    vals = torch.linalg.eigvalsh((inner + inner.transpose(-1, -2)) / 2)
    floor = vals.detach().amax(dim=-1, keepdim=True).clamp(min=0) * _EIG_FLOOR
    cross = torch.maximum(vals, floor).clamp(min=torch.finfo(vals.dtype).tiny).sqrt().sum(-1)
    trace = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
    dist = (mean - target.mean.to(mean.dtype)).pow(2).sum(-1) + trace + target.trace.to(trace.dtype) - 2 * cross
    return dist.mean() / c


# --- sliced Wasserstein -------------------------------------------------------------------------------


def random_directions(channels: int, count: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """``count`` directions uniform on the unit sphere of R^channels, as the columns of a
    ``(channels, count)`` matrix (drawn on the CPU from ``generator``: the same on every device)."""
    d = torch.randn(channels, count, generator=generator, dtype=torch.float64)
    return (d / d.norm(dim=0, keepdim=True)).to(dtype)


def sorted_projections(features: Tensor, directions: Tensor) -> Tensor:
    """The feature vectors projected on each direction, sorted over positions.

    Args:
        features: ``(N, C, H, W)``; directions: ``(C, K)``.

    Returns:
        ``(N, K, H·W)`` float32 (float64 for float64 input), ascending along the last axis (each row
        is the empirical quantile function of one projection).
    """
    flat = _flat(features)
    proj = directions.to(flat.dtype).t() @ flat
    return proj.sort(dim=-1).values


def resample_quantiles(sorted_values: Tensor, count: int) -> Tensor:
    """A quantile function sampled at ``count`` points instead of ``M``: linear interpolation of
    ``sorted_values`` ``(..., M)`` at the mid-point quantiles ``(i + ½)/count``. With ``count == M``
    it returns the input unchanged. This is what lets a style image and the output differ in size.

    Returns:
        ``(..., count)``, ascending.
    """
    m = sorted_values.shape[-1]
    if m == count:
        return sorted_values
    pos = ((torch.arange(count, dtype=torch.float64) + 0.5) * (m / count) - 0.5).clamp(0, m - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    frac = (pos - lo).to(sorted_values.dtype).to(sorted_values.device)
    lo, hi = lo.to(sorted_values.device), hi.to(sorted_values.device)
    return sorted_values[..., lo] * (1 - frac) + sorted_values[..., hi] * frac


def sliced_wasserstein_loss(features: Tensor, directions: Tensor, target_quantiles: Tensor) -> Tensor:
    """Sliced Wasserstein-2 loss: the mean squared difference between the sorted projections of
    ``features`` and the target's quantile functions along the same directions.

    Args:
        features: ``(N, C, H, W)``.
        directions: ``(C, K)`` unit columns, fixed while an optimiser's line search runs.
        target_quantiles: ``(K, H·W)`` or ``(N, K, H·W)``: the target's sorted projections on
            ``directions``, resampled to ``H·W`` by :func:`resample_quantiles` (detached).

    Returns:
        0-d tensor ≥ 0, zero iff every projection has the target's distribution; invariant to a
        permutation of the positions. float32 (float64 for float64 input).
    """
    ours = sorted_projections(features, directions)
    return (ours - target_quantiles.to(ours.dtype)).pow(2).mean()
