"""Optical flow, warping and the consistency check (painterly.video.flow)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("cv2")

from painterly.video.flow import consistency, flow_pair, optical_flow, warp  # noqa: E402


def texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random colour texture (what optical flow can lock onto), (1, 3, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, h // 4 + 1, w // 4 + 1), generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_warp_by_an_integer_shift_is_exact():
    image = texture(40, 50)
    flow = torch.zeros((1, 2, 40, 50))
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # out[y, x] = image[y - 2, x + 3]
    out = warp(image, flow)
    assert torch.allclose(out[..., 2:, :-3], image[..., :-2, 3:], atol=1e-5)
    # Outside the image the border pixel is repeated.
    assert torch.allclose(out[..., 2:, -1], image[..., :-2, -1], atol=1e-5)


def test_warp_by_a_half_pixel_interpolates():
    image = texture(20, 30, seed=1)
    flow = torch.zeros((1, 2, 20, 30))
    flow[:, 0] = 0.5
    out = warp(image, flow)
    assert torch.allclose(out[..., :-1], (image[..., :-1] + image[..., 1:]) / 2, atol=1e-5)


def test_flow_recovers_a_known_shift_and_warps_back():
    big = texture(120, 150, seed=2)
    a = big[..., 10:106, 10:138]
    b = big[..., 13:109, 8:136]  # b[y, x] = a[y + 3, x - 2]: a's pixel p is at p + (2, -3) in b
    flow = optical_flow(a, b)
    inner = (..., slice(12, -12), slice(12, -12))
    assert flow[:, 0][inner].mean().item() == pytest.approx(2.0, abs=0.05)
    assert flow[:, 1][inner].mean().item() == pytest.approx(-3.0, abs=0.05)
    assert (flow[:, 0][inner] - 2.0).abs().max() < 0.3
    back = warp(b, flow)
    assert (back - a)[inner].abs().mean() < 0.01


def test_consistency_is_one_where_flows_agree_and_zero_on_an_occluded_patch():
    h, w = 32, 40
    backward = torch.zeros((1, 2, h, w))
    backward[:, 0] = -1.5  # a uniform pan: t → t−1 by −1.5 px, t−1 → t by +1.5 px
    forward = -backward.clone()
    assert consistency(forward, backward).min() == 1.0
    # A patch of t−1 moved by 6 px in its forward flow, while the backward flow of t says it stayed:
    # the round trip misses by 6 px there, so those pixels of t were hidden in t−1.
    forward[:, :, 10:20, 10:20] = 6.0
    weights = consistency(forward, backward)
    assert weights.shape == (1, 1, h, w)
    assert weights[..., 12:18, 13:20].max() == 0.0
    assert weights[..., :, 30:].min() == 1.0


def test_consistency_zero_on_a_motion_boundary():
    h, w = 24, 24
    backward = torch.zeros((1, 2, h, w))
    backward[:, 0, :, 12:] = -4.0  # the right half moves, the left does not: a steep flow gradient at x=11
    weights = consistency(-backward, backward)
    assert weights[..., :, 11].max() == 0.0
    assert weights[..., :, :8].min() == 1.0


def test_disoccluded_strip_behind_a_moving_object_gets_zero_weight():
    background = texture(96, 128, seed=3) * 0.5
    thing = texture(40, 40, seed=4) * 0.5 + 0.5  # brighter than the background: a distinct object
    previous, current = background.clone(), background.clone()
    previous[..., 28:68, 30:70] = thing
    current[..., 28:68, 38:78] = thing  # moved 8 px right: columns 30..37 of current were hidden before
    backward, weights = flow_pair(previous, current)
    assert backward[:, 0, 36:60, 45:65].mean().item() == pytest.approx(-8.0, abs=0.3)
    assert weights[..., 32:64, 31:37].mean() < 0.05
    assert weights[..., 2:20, :].mean() > 0.95  # the still background above it is trusted
