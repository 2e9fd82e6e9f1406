"""The Gram matrix and the Gram style loss (see the package docstring for the normalisation)."""

from __future__ import annotations

import torch
from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """Channel co-activation matrix of a feature map.

    Args:
        features: ``(N, C, H, W)``, any memory format, any float dtype.

    Returns:
        ``(N, C, C)`` float32 (float64 if the input is float64), ``G[n, i, j] = Σ_p F[n,i,p] F[n,j,p] / (C·H·W)``.
        Symmetric and positive semi-definite.
    """
    return _Gram.apply(features)


def gram_sum(features: Tensor) -> Tensor:
    """The unnormalised Gram ``Σ_p F[n,:,p] F[n,:,p]ᵀ`` of ``(N, C, H, W)`` features, ``(N, C, C)``
    float32 (float64 for float64 input): additive over disjoint sets of positions (tiles); zeros when
    there are no positions."""
    n, c, h, w = features.shape
    if h * w == 0:
        return features.new_zeros((n, c, c), dtype=torch.float64 if features.dtype == torch.float64 else torch.float32)
    return gram_matrix(features) * (c * h * w)


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
