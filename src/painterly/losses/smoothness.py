"""Total variation: the smoothness prior on the image itself."""

from __future__ import annotations

import torch
from torch import Tensor


def total_variation(image: Tensor, exponent: float = 2.0) -> Tensor:
    """Total-variation regulariser: how much neighbouring pixels differ.

    Every pair of horizontal and every pair of vertical neighbours counts once, the frame's as much as
    the inside's. (The form of jcjohnson/neural-style and of the Keras example sums over the
    ``(H−1)×(W−1)`` grid only: the last row was never smoothed along itself, the last column never down
    itself, and the bottom-right pixel not at all; a texture from noise kept a speckled last column.)

    * ``exponent=2`` (the squared form): ``mean (x[i,j+1] − x[i,j])² + mean (x[i+1,j] − x[i,j])²``, each
      mean over its own pairs (``H×(W−1)`` and ``(H−1)×W``) and all channels;
    * other exponents (``2.5`` is the Keras example's ``(a + b)^1.25``, which punishes large steps more):
      ``mean_{i,j} (dx² + dy²)^(exponent/2)`` over all ``H×W`` pixels, a difference across the frame
      being 0.

    Args:
        image: ``(N, C, H, W)``, H and W ≥ 2.

    Returns:
        0-d tensor ≥ 0; 0 for a constant image.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    if exponent == 2.0:
        return dx.pow(2).mean() + dy.pow(2).mean()
    sq = torch.nn.functional.pad(dx.pow(2), (0, 1)) + torch.nn.functional.pad(dy.pow(2), (0, 0, 0, 1))
    if exponent > 2.0:
        # d/ds s^(e/2) = (e/2)·s^(e/2 − 1) is 0, not infinite, at s = 0: no epsilon needed, so a
        # constant image is exactly 0 as documented.
        return sq.pow(exponent / 2.0).mean()
    # Below 2 the gradient at s = 0 is infinite: a tiny epsilon keeps it finite where neighbours are equal.
    return (sq + 1e-12).pow(exponent / 2.0).mean()
