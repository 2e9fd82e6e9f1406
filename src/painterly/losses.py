"""The loss terms of Gatys et al., as pure tensor functions.

Shapes: features are ``(N, C, H, W)``; images are ``(N, 3, H, W)`` in [0, 1]. Every function returns
a 0-d tensor (or ``(N,)`` where noted) and is differentiable; none keeps state. Targets are passed in,
computed once by the caller and detached there.

Normalisation. The paper sums squared errors, so its weights change with the image size. Here every
term is a *mean*, which makes ``--content-weight`` and ``--style-weight`` mean the same thing at 128 px
and at 2048 px, and lets a coarse-to-fine run keep one set of weights across its levels:

* Gram matrices are divided by ``C·H·W`` (as in jcjohnson/neural-style), so a Gram entry is the average
  co-activation of two channels per position;
* the style loss is the mean squared difference of the Gram entries (the paper's ``1/(4 N² M²)`` factor
  is folded into this choice);
* the content loss is the mean squared difference of the features;
* total variation is the mean over pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gram_matrix", "content_loss", "cosine_content_loss", "style_loss", "total_variation"]


def gram_matrix(features: Tensor) -> Tensor:
    """Channel co-activation matrix of a feature map.

    Args:
        features: ``(N, C, H, W)``, any memory format, any float dtype.

    Returns:
        ``(N, C, C)`` float32 (float64 if the input is float64), ``G[n, i, j] = Σ_p F[n,i,p] F[n,j,p] / (C·H·W)``.
        Symmetric and positive semi-definite.
    """
    n, c, h, w = features.shape
    # Gram matrices are sums over many positions: accumulate in (at least) fp32 even when the
    # network ran in bf16, which keeps bf16 runs within a fraction of a percent of fp32 runs.
    if features.dtype != torch.float64:
        features = features.float()
    if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
        # channels_last stores N,H,W,C: viewing it as (N, HW, C) needs no copy, in the forward pass
        # or in the backward, which roughly halves the Grams' cost on CPU.
        flat = features.permute(0, 2, 3, 1).reshape(n, h * w, c)
        gram = torch.bmm(flat.transpose(1, 2), flat)
    else:
        flat = features.reshape(n, c, h * w)
        gram = torch.bmm(flat, flat.transpose(1, 2))
    return gram / (c * h * w)


def style_loss(gram: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference between Gram matrices.

    Args:
        gram: ``(N, C, C)`` from :func:`gram_matrix` of the image being optimised.
        target: ``(C, C)`` or ``(N, C, C)``, the style target (detached).

    Returns:
        0-d tensor ≥ 0; zero iff the two Grams are equal.
    """
    return (gram - target).pow(2).mean()


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between feature maps (the paper's content loss, mean instead of ½·sum).

    Args:
        features, target: ``(N, C, H, W)`` of equal shape; ``target`` detached.
    """
    diff = features.float() - target.float() if features.dtype != torch.float64 else features - target
    return diff.pow(2).mean()


def cosine_content_loss(features: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Content loss from the direction of feature vectors rather than their size.

    The variant discussed in the seed document 003: compare, at every position, the C-dimensional
    feature vector of the image with the target's by their normalised dot product. It keeps *which*
    features fire where and ignores *how strongly*, so the content is held more loosely than by MSE
    (brightness and contrast are freer to follow the style).

    The value is ``mean_p (1 − cos(F_p, P_p)) · mean(P²)``: the ``mean(P²)`` factor (a constant of the
    target) puts it on the same scale as :func:`content_loss`, so one ``--content-weight`` suits both.

    Args:
        features, target: ``(N, C, H, W)`` of equal shape; ``target`` detached.

    Returns:
        0-d tensor in ``[0, 2·mean(P²)]``.
    """
    if features.dtype != torch.float64:
        features, target = features.float(), target.float()
    cos = torch.nn.functional.cosine_similarity(features, target, dim=1, eps=eps)
    return (1.0 - cos).mean() * target.pow(2).mean()


def total_variation(image: Tensor, exponent: float = 2.0) -> Tensor:
    """Total-variation regulariser: how much neighbouring pixels differ.

    ``mean_{i,j} ((x[i+1,j] − x[i,j])² + (x[i,j+1] − x[i,j])²)^(exponent/2)`` over the
    ``(H−1)×(W−1)`` grid and all channels. ``exponent=2`` is the squared form of jcjohnson/neural-style;
    ``exponent=2.5`` is the form of the Keras example (``(a + b)^1.25``), which punishes large steps more.

    Args:
        image: ``(N, C, H, W)``, H and W ≥ 2.

    Returns:
        0-d tensor ≥ 0; 0 for a constant image.
    """
    dx = image[..., :-1, 1:] - image[..., :-1, :-1]
    dy = image[..., 1:, :-1] - image[..., :-1, :-1]
    sq = dx.pow(2) + dy.pow(2)
    if exponent == 2.0:
        return sq.mean()
    if exponent > 2.0:
        # d/ds s^(e/2) = (e/2)·s^(e/2 − 1) is 0, not infinite, at s = 0: no epsilon needed, so a
        # constant image is exactly 0 as documented.
        return sq.pow(exponent / 2.0).mean()
    # Below 2 the gradient at s = 0 is infinite: a tiny epsilon keeps it finite where neighbours are equal.
    return (sq + 1e-12).pow(exponent / 2.0).mean()
