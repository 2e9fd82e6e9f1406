"""The temporal loss of Ruder et al. (2016): stay close to the previous stylised frame, where the
optical flow says it is visible."""

from __future__ import annotations

from torch import Tensor


def temporal_loss(image: Tensor, warped: Tensor, weights: Tensor) -> Tensor:
    """``mean over pixels and channels of weights × (image − warped)²`` (the paper's ``1/D Σ c (x − ω)²``).

    Args:
        image: the frame being optimised, ``(N, C, H, W)``.
        warped: the previous stylised frame warped onto this one by the flow, ``(N, C, H, W)`` (detached).
        weights: per-pixel weights in [0, 1], ``(N or 1, 1, H, W)``: 0 on occlusions and motion boundaries.

    Returns:
        0-d tensor ≥ 0; 0 where ``image`` equals ``warped`` on every pixel of positive weight.
    """
    return (weights * (image - warped).pow(2)).mean()
