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
    return _Gram.apply(features)


# Positions per partial product when features are bf16/fp16 on a CPU. oneDNN's bf16 GEMM accumulates
# each partial product in fp32 and rounds it once to bf16 (relative error ≤ 2⁻⁸); the partials are
# summed in fp32, so the roundings of many small partials average out instead of one rounding of the
# whole sum. At 512 px this Gram takes ~40 % of the time of an fp32 one (on this CPU the fp32 GEMM
# runs at ~190 GFLOP/s, the bf16 one several times faster): 0.41 → 0.39 s per evaluation, with the
# same results (evaluator loss 2.742e6 vs 2.756e6 after 26 iterations, 1.8514e6 both after 500;
# docs/benchmarks.md). Elsewhere (cuBLAS may reduce bf16 in reduced precision) the features are
# upcast to fp32 instead, _GRAM_UPCAST_ELEMENTS at a time (a few MB: the copy is never allocated whole).
_GRAM_CHUNK_POSITIONS = 2048
_GRAM_UPCAST_ELEMENTS = 1 << 20


def _low_precision_gram(flat: Tensor, positions_first: bool, upcast: bool) -> Tensor:
    """``FᵀF`` (unnormalised, fp32) of bf16/fp16 features given as :func:`_positions_by_channels`
    returns them: low-precision partial products summed in fp32, or with ``upcast`` fp32 products of
    upcast slices (see _GRAM_CHUNK_POSITIONS). Both keep bf16 runs within a fraction of a percent of
    fp32 runs."""
    n = flat.shape[0]
    c, positions = (flat.shape[2], flat.shape[1]) if positions_first else (flat.shape[1], flat.shape[2])
    gram = flat.new_zeros((n, c, c), dtype=torch.float32)
    step = max(1, _GRAM_UPCAST_ELEMENTS // c) if upcast else _GRAM_CHUNK_POSITIONS
    for start in range(0, positions, step):
        part = flat[:, start : start + step] if positions_first else flat[:, :, start : start + step]
        if upcast:
            part = part.float()
        gram += part.transpose(1, 2) @ part if positions_first else part @ part.transpose(1, 2)
    return gram


def _positions_by_channels(features: Tensor) -> tuple[Tensor, bool]:
    """The features as a matrix without copying: ``(N, HW, C)`` for channels_last storage (returned
    with ``True``), else ``(N, C, HW)``."""
    n, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
        return features.permute(0, 2, 3, 1).reshape(n, h * w, c), True
    return features.reshape(n, c, h * w), False


class _Gram(torch.autograd.Function):
    """The Gram matrix with a hand-written backward.

    Autograd's own backward of ``bmm(Fᵀ, F)`` multiplies through transposed, strided views, which on
    CPU ran at a few GFLOP/s (a third of a 512 px iteration went there). Here the forward is one
    ``Fᵀ F`` product accumulated in (at least) fp32, and the backward is one well-shaped product
    ``dF = F · (dG + dGᵀ) / (C·H·W)`` in the features' own dtype and memory format (so a bf16
    channels_last network gets a bf16 channels_last gradient, as its convolutions want).
    Device-agnostic: only matmuls and views.
    """

    @staticmethod
    def forward(ctx, features: Tensor) -> Tensor:  # type: ignore[override]
        n, c, h, w = features.shape
        flat, positions_first = _positions_by_channels(features)
        if features.dtype in (torch.float32, torch.float64):
            gram = flat.transpose(1, 2) @ flat if positions_first else flat @ flat.transpose(1, 2)
        else:
            # bf16/fp16 (autocast): accumulated in fp32 all the same.
            gram = _low_precision_gram(flat, positions_first, upcast=features.device.type != "cpu")
        ctx.save_for_backward(features)
        return gram / (c * h * w)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (features,) = ctx.saved_tensors
        n, c, h, w = features.shape
        sym = ((grad + grad.transpose(1, 2)) / (c * h * w)).to(features.dtype)
        flat, positions_first = _positions_by_channels(features)
        if positions_first:
            # (N, HW, C) · (C, C): the result is the channels_last gradient, no copy.
            return (flat @ sym).view(n, h, w, c).permute(0, 3, 1, 2)
        return (sym @ flat).view(n, c, h, w)


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
