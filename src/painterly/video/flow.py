"""Optical flow (OpenCV's DIS: no downloaded weights), Ruder et al.'s forward–backward consistency
check, and warping with ``grid_sample``.

Conventions: a flow is ``(1, 2, H, W)`` float32, channel 0 the x (column) and channel 1 the y (row)
displacement in pixels. ``flow(a, b)`` maps each pixel ``p`` of ``a`` to ``p + flow[p]`` in ``b``, so
``warp(b, flow(a, b))`` looks like ``a`` wherever ``p`` is visible in both.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from .frames import INSTALL_HINT


def _cv2():  # noqa: ANN202
    try:
        import cv2
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return cv2


def _gray(image: Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` in [0, 1] → ``(H, W)`` uint8 luma (what DIS works on)."""
    y = 0.299 * image[0, 0] + 0.587 * image[0, 1] + 0.114 * image[0, 2]
    return y.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()


def optical_flow(a: Tensor, b: Tensor) -> Tensor:
    """The dense flow from ``a`` to ``b`` (both ``(1, 3, H, W)`` in [0, 1], one size), ``(1, 2, H, W)``.

    DIS at its "medium" preset with variational refinement: about 80 ms per 512×288 pair on this
    project's shared 2-core CPU (niced, under load), the consistency check about 60 ms more.
    """
    cv2 = _cv2()
    if a.shape != b.shape:
        raise ValueError(f"optical_flow: frames of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(_gray(a), _gray(b), None)
    return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1).unsqueeze(0).float()


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """``out[p] = image[p + flow[p]]``, bilinear; samples outside the image take the nearest border pixel.

    Args:
        image: ``(N, C, H, W)``.
        flow: ``(N or 1, 2, H, W)`` in pixels, same dtype and device as ``image``.

    Differentiable in ``image`` (and in ``flow``).
    """
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=image.dtype, device=image.device), torch.arange(w, dtype=image.dtype, device=image.device), indexing="ij"
    )
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    # align_corners=True: -1 and 1 are the centres of the first and last pixels.
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1).expand(n, h, w, 2)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def consistency(forward: Tensor, backward: Tensor) -> Tensor:
    """Ruder et al.'s per-pixel weights for frame ``t`` from the flows between ``t−1`` and ``t``.

    Args:
        forward: flow ``t−1 → t``, ``(1, 2, H, W)``.
        backward: flow ``t → t−1``, ``(1, 2, H, W)``.

    Returns:
        ``(1, 1, H, W)`` in {0, 1}: 0 where the round trip ``t → t−1 → t`` does not come back (the pixel
        was occluded in ``t−1``: disocclusion) and on motion boundaries (a steep gradient of the
        backward flow), 1 elsewhere. Thresholds are the paper's (eq. 5 and 6).
    """
    w_hat = backward
    w_tilde = warp(forward, backward)  # the forward flow at where each pixel of t came from
    round_trip = (w_tilde + w_hat).pow(2).sum(1, keepdim=True)
    occluded = round_trip > 0.01 * (w_tilde.pow(2).sum(1, keepdim=True) + w_hat.pow(2).sum(1, keepdim=True)) + 0.5
    gx = F.pad(w_hat[..., :, 1:] - w_hat[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(w_hat[..., 1:, :] - w_hat[..., :-1, :], (0, 0, 0, 1))
    gradient = (gx.pow(2) + gy.pow(2)).sum(1, keepdim=True)
    boundary = gradient > 0.01 * w_hat.pow(2).sum(1, keepdim=True) + 0.002
    return (~(occluded | boundary)).to(backward.dtype)


def flow_pair(previous: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
    """The backward flow ``current → previous`` and the consistency weights of ``current``: what
    warps the previous stylised frame onto this one, and where it may be trusted."""
    backward = optical_flow(current, previous)
    forward = optical_flow(previous, current)
    return backward, consistency(forward, backward)
