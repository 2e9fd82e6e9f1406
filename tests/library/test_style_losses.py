"""The distribution style losses: W2 between Gaussians, sliced Wasserstein, histogram matching."""

from __future__ import annotations

import math

import pytest
import torch

from painterly.losses import (
    channel_quantiles,
    feature_moments,
    gaussian_target,
    histogram_loss,
    random_directions,
    resample_quantiles,
    sliced_wasserstein_loss,
    sorted_projections,
    sqrtm_psd,
    w2_loss,
)


def _features(seed: int, c: int = 6, h: int = 5, w: int = 7, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(1, c, h, w, generator=g, dtype=dtype) + 0.3) * 3.0


def _permuted(features: torch.Tensor, seed: int) -> torch.Tensor:
    n, c, h, w = features.shape
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
    return features.reshape(n, c, h * w)[..., perm].reshape(n, c, h, w)


def _sliced_target(style: torch.Tensor, directions: torch.Tensor, positions: int) -> torch.Tensor:
    return resample_quantiles(sorted_projections(style, directions)[0], positions)


# --- W2 ------------------------------------------------------------------------------------------------


def test_sqrtm_psd_squares_back() -> None:
    a = torch.randn(8, 8, dtype=torch.float64)
    cov = a @ a.t()
    s = sqrtm_psd(cov)
    torch.testing.assert_close(s @ s, cov, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s, s.t())


def test_w2_zero_for_identical_distributions_and_positive_otherwise() -> None:
    f = _features(0)
    target = gaussian_target(*feature_moments(f))
    scale = float(target.trace.mean()) / f.shape[1]
    # Same distribution, positions shuffled: equal moments.
    assert abs(float(w2_loss(_permuted(f, 1), target))) < 1e-5 * scale
    other = _features(2)
    assert float(w2_loss(other, target)) > 1e-2 * scale


def test_w2_equals_closed_form_of_two_known_gaussians() -> None:
    # Features whose empirical moments are exactly chosen: ±1 patterns, orthogonal columns.
    c, m = 3, 8
    signs = torch.tensor([[1, 1, 1, 1, -1, -1, -1, -1], [1, 1, -1, -1, 1, 1, -1, -1], [1, -1, 1, -1, 1, -1, 1, -1]], dtype=torch.float64)
    # Each row has mean 0, variance 1, rows uncorrelated → covariance identity.
    mean1, std1 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    mean2, std2 = torch.tensor([0.0, 2.0, 5.0], dtype=torch.float64), torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64)
    f1 = (mean1[:, None] + std1[:, None] * signs).reshape(1, c, 2, 4)
    f2 = (mean2[:, None] + std2[:, None] * signs).reshape(1, c, 2, 4)
    m1, cov1 = feature_moments(f1)
    torch.testing.assert_close(cov1[0], torch.diag(std1**2))
    # Diagonal Gaussians: W2² = |m1 − m2|² + Σ (σ1 − σ2)².
    expected = ((mean1 - mean2).pow(2).sum() + (std1 - std2).pow(2).sum()) / c
    got = w2_loss(f1, gaussian_target(*feature_moments(f2)))
    assert math.isclose(float(got), float(expected), rel_tol=1e-9)
    assert math.isclose(float(expected), (1 + 0 + 4 + 4 + 1 + 0) / 3)


def test_w2_closed_form_with_full_covariances() -> None:
    # W2² = |m1−m2|² + tr Σ1 + tr Σ2 − 2 tr (Σ2^½ Σ1 Σ2^½)^½, checked against scipy-free float64 algebra:
    # for commuting Σ1 = Q D1 Qᵀ, Σ2 = Q D2 Qᵀ the cross term is Σ √(d1 d2).
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    d1, d2 = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64), torch.tensor([4.0, 1.0, 0.25, 9.0], dtype=torch.float64)
    # Samples with exactly these moments: whitened ±1 patterns of 8 positions, rotated.
    signs = torch.tensor([[1, 1, 1, 1, -1, -1, -1, -1], [1, 1, -1, -1, 1, 1, -1, -1], [1, -1, 1, -1, 1, -1, 1, -1], [1, -1, -1, 1, -1, 1, 1, -1]], dtype=torch.float64)
    f1 = (q @ (d1.sqrt()[:, None] * signs)).reshape(1, 4, 2, 4)
    f2 = (q @ (d2.sqrt()[:, None] * signs) + 1.0).reshape(1, 4, 2, 4)
    expected = (4 * 1.0 + (d1.sqrt() - d2.sqrt()).pow(2).sum()) / 4
    got = w2_loss(f1, gaussian_target(*feature_moments(f2)))
    assert math.isclose(float(got), float(expected), rel_tol=1e-9)


def test_w2_gradcheck_float64() -> None:
    f = _features(4, c=4, h=3, w=4, dtype=torch.float64).requires_grad_(True)
    target = gaussian_target(*feature_moments(_features(5, c=4, h=4, w=4, dtype=torch.float64)))
    assert torch.autograd.gradcheck(lambda x: w2_loss(x, target), (f,))


def test_w2_gradient_finite_for_rank_deficient_features() -> None:
    # More channels than positions: both covariances are singular (relu5_1 at small sizes).
    f = _features(6, c=16, h=2, w=3).requires_grad_(True)
    target = gaussian_target(*feature_moments(_features(7, c=16, h=2, w=2)))
    w2_loss(f, target).backward()
    assert torch.isfinite(f.grad).all()


# --- sliced Wasserstein ------------------------------------------------------------------------------


def test_sliced_zero_for_identical_distributions_and_positive_otherwise() -> None:
    f = _features(0)
    d = random_directions(f.shape[1], 8, torch.Generator().manual_seed(0))
    target = _sliced_target(f, d, 35)
    assert float(sliced_wasserstein_loss(f, d, target)) == 0.0
    assert float(sliced_wasserstein_loss(_features(2), d, target)) > 1e-2


def test_sliced_invariant_to_a_permutation_of_positions() -> None:
    f, style = _features(0), _features(1)
    d = random_directions(f.shape[1], 8, torch.Generator().manual_seed(0))
    target = _sliced_target(style, d, 35)
    a = sliced_wasserstein_loss(f, d, target)
    b = sliced_wasserstein_loss(_permuted(f, 9), d, target)
    assert float(a) > 0
    torch.testing.assert_close(a, b)


def test_sliced_style_of_another_size_by_quantiles() -> None:
    # A style of 4× the positions with each value repeated 4 times has the same quantile function.
    f = _features(0, h=4, w=4)
    style = f.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    d = random_directions(f.shape[1], 5, torch.Generator().manual_seed(1))
    target = _sliced_target(style, d, 16)
    assert target.shape == (5, 16)
    assert float(sliced_wasserstein_loss(f, d, target)) < 1e-10


def test_sliced_gradcheck_float64() -> None:
    f = _features(4, c=4, h=3, w=4, dtype=torch.float64) + torch.rand(1, 4, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    f.requires_grad_(True)
    d = random_directions(4, 6, torch.Generator().manual_seed(2), dtype=torch.float64)
    target = _sliced_target(_features(5, c=4, h=5, w=5, dtype=torch.float64), d, 12)
    assert torch.autograd.gradcheck(lambda x: sliced_wasserstein_loss(x, d, target), (f,))


def test_sliced_with_fixed_directions_is_deterministic_as_in_a_line_search() -> None:
    # Inside a line search the same point is evaluated more than once: the same directions must give
    # the same value and gradient bit for bit.
    f, style = _features(0).requires_grad_(True), _features(1)
    d = random_directions(f.shape[1], 8, torch.Generator().manual_seed(0))
    target = _sliced_target(style, d, 35)
    (g1,) = torch.autograd.grad(v1 := sliced_wasserstein_loss(f, d, target), f)
    (g2,) = torch.autograd.grad(v2 := sliced_wasserstein_loss(f, d, target), f)
    assert torch.equal(v1, v2) and torch.equal(g1, g2)
    # Directions drawn from the same seed are the same; from another seed they differ.
    assert torch.equal(d, random_directions(f.shape[1], 8, torch.Generator().manual_seed(0)))
    assert not torch.equal(d, random_directions(f.shape[1], 8, torch.Generator().manual_seed(1)))


def test_random_directions_are_unit_vectors() -> None:
    d = random_directions(10, 7, torch.Generator().manual_seed(0))
    torch.testing.assert_close(d.norm(dim=0), torch.ones(7))


def test_resample_quantiles_keeps_equal_lengths_and_interpolates() -> None:
    v = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    assert torch.equal(resample_quantiles(v, 4), v)
    # Two mid-point quantiles of four values: positions 0.5 and 2.5.
    torch.testing.assert_close(resample_quantiles(v, 2), torch.tensor([[0.5, 2.5]]))


# --- histogram ---------------------------------------------------------------------------------------


def test_histogram_zero_for_identical_distributions_and_positive_otherwise() -> None:
    f = _features(0)
    target = channel_quantiles(f, 35)[0]
    assert float(histogram_loss(_permuted(f, 3), target)) == 0.0
    assert float(histogram_loss(_features(2), target)) > 1e-2


def test_histogram_blind_to_cross_channel_structure() -> None:
    # Shuffling one channel's positions alone keeps every histogram: per channel, not joint.
    f = _features(0)
    g = f.clone()
    g[0, 0] = _permuted(f[:, :1], 5)[0, 0]
    assert float(histogram_loss(g, channel_quantiles(f, 35)[0])) == 0.0


def test_histogram_gradient_is_risser_remapping() -> None:
    # d/dO mean|sort(O) − q|² = 2 (O − R(O)) / numel, with R(O) the histogram-matched activations.
    f = _features(0, c=2, h=3, w=3).requires_grad_(True)
    q = channel_quantiles(_features(1, c=2, h=3, w=3), 9)[0]
    histogram_loss(f, q).backward()
    flat = f.detach().reshape(2, 9)
    ranks = flat.argsort(dim=1).argsort(dim=1)
    remapped = torch.gather(q, 1, ranks)
    torch.testing.assert_close(f.grad.reshape(2, 9), 2 * (flat - remapped) / flat.numel())


def test_histogram_gradcheck_float64() -> None:
    f = _features(4, c=3, h=3, w=3, dtype=torch.float64) + torch.rand(1, 3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    f.requires_grad_(True)
    q = channel_quantiles(_features(5, c=3, h=4, w=4, dtype=torch.float64), 9)[0]
    assert torch.autograd.gradcheck(lambda x: histogram_loss(x, q), (f,))


@pytest.mark.parametrize("kind", ["w2", "sliced", "histogram"])
def test_losses_accept_bf16_features_and_return_float32(kind: str) -> None:
    f, style = _features(0).bfloat16(), _features(1)
    if kind == "w2":
        value = w2_loss(f, gaussian_target(*feature_moments(style)))
    elif kind == "sliced":
        d = random_directions(6, 4, torch.Generator().manual_seed(0))
        value = sliced_wasserstein_loss(f, d, _sliced_target(style, d, 35))
    else:
        value = histogram_loss(f, channel_quantiles(style, 35)[0])
    assert value.dtype == torch.float32 and math.isfinite(float(value)) and float(value) > 0


def test_binned_histogram_matching_is_close_to_the_exact_one() -> None:
    # Risser's binned matching (used on large layers) against the sort: same value and gradient
    # within the binning's resolution.
    g = torch.Generator().manual_seed(0)
    f = (torch.randn(1, 4, 64, 64, generator=g) * torch.tensor([1.0, 2.0, 0.5, 3.0]).view(1, 4, 1, 1)).requires_grad_(True)
    q = channel_quantiles(torch.randn(1, 4, 32, 32, generator=g).exp(), 64 * 64)[0]
    exact = histogram_loss(f, q)
    (g_exact,) = torch.autograd.grad(exact, f)
    binned = histogram_loss(f, q, bins=256)
    (g_binned,) = torch.autograd.grad(binned, f)
    assert math.isclose(binned.item(), exact.item(), rel_tol=0.02)
    assert float((g_binned - g_exact).norm() / g_exact.norm()) < 0.05
    # Identical distributions: zero up to the binning (far below the loss of a different one).
    same = histogram_loss(f.detach(), channel_quantiles(f.detach(), 64 * 64)[0], bins=256)
    assert float(same) < 1e-3 * exact.item()
