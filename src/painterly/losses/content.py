"""Content losses: the paper's mean squared error of features, and a cosine variant."""

from __future__ import annotations

import torch
from torch import Tensor

def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between feature maps (the paper's content loss, mean instead of ½·sum).

    Args:
        features, target: ``(N, C, H, W)`` of equal shape; ``target`` detached.

    Returns:
        0-d tensor, float32 (float64 for float64 inputs) whatever the features' dtype.
    """
    if target.requires_grad:  # not painterly's use; autograd's generic path handles it
        diff = features.float() - target.float() if features.dtype != torch.float64 else features - target
        return diff.pow(2).mean()
    return _MeanSquaredError.apply(features, target)


class _MeanSquaredError(torch.autograd.Function):
    """``mean((F − P)²)`` with a one-kernel backward in the features' own dtype and memory format.

    Autograd's backward of ``(F.float() − P).pow(2).mean()`` multiplies an expanded (stride-0)
    gradient with a channels_last tensor and casts back, three passes at poor locality that cost
    more than 5 % of a 512 px iteration on CPU.
    """

    @staticmethod
    def forward(ctx, features: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        acc = torch.float64 if features.dtype == torch.float64 else torch.float32
        diff = features.to(acc) - target.to(acc)
        ctx.save_for_backward(diff)
        ctx.features_dtype = features.dtype
        return diff.pow(2).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (diff,) = ctx.saved_tensors
        return (diff * (grad * (2.0 / diff.numel()))).to(ctx.features_dtype), None


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
