"""A smoothing preconditioner for L-BFGS over an image's pixels.

Why: L-BFGS starts each run (and each level) knowing nothing of the curvature: its first directions
are the gradient scaled by one number (``H₀ = γ·I``), and with 20–30 iterations to a good picture the
history never grows long enough to learn much more. The gradient of the style loss is dominated by
fine detail, so those early steps move edges and speckle, while the broad colour fields and strokes,
which the loss also wants moved, follow slowly. Starting the inverse-Hessian estimate from
``H₀ = γ·P``, where ``P`` passes fine detail as it is and amplifies smooth components, moves every
scale at once: the same idea as coarse-to-fine, inside one level.

``P = I + Σₖ (4s)ᵏ · Dₖᵀ Dₖ`` for k = 1…K, where ``Dₖ`` blurs with a [1, 3, 3, 1]/8 tent and halves
the resolution k times and ``Dₖᵀ`` is its exact adjoint (the transposed convolution). The factor 4ᵏ
undoes the adjoint's ¼ per halving, so a smooth direction (wide compared with 2ᵏ px) is amplified by
about ``1 + s + s² + … + sᴷ`` and single-pixel detail by about 1. ``P`` is symmetric and ``P ⪰ I``, so
the L-BFGS estimate stays positive definite and its directions stay descent directions.

Measured (tubingen × starry_night, 512 px, single scale, bounded L-BFGS; docs/benchmarks.md): with
``s = 1.4`` the loss after 24 iterations is 2.62e6 instead of 2.81e6, after 32 iterations 2.37e6
instead of 2.52e6 — the same loss in 12–16 % fewer iterations. Larger strengths (2) made the line
search spend extra evaluations; preconditioning the very first (steepest-descent) step did no
better. Scaling γ by ``y·P·y`` instead of ``y·y`` sizes the steps better in long runs (fewer wasted
line-search evaluations) but reached the benchmark's bar later; not kept (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# The tent's 1-D taps; the 2-D kernel is their outer product and sums to 1.
_TAPS = (1.0, 3.0, 3.0, 1.0)
# No pyramid level smaller than this (in px, either side): a 4-tap kernel needs some room.
_MIN_SIDE = 4


def pyramid_preconditioner(
    shape: Sequence[int], strength: float, levels: int = 4
) -> Callable[[Tensor], Tensor] | None:
    """``P`` (see the module docstring) for images of ``shape``, acting on flat vectors.

    Args:
        shape: ``(N, C, H, W)`` of the image the vectors flatten (row-major, contiguous).
        strength: ``s`` ≥ 0: how much more a smooth component is amplified per octave; 0 gives no
            preconditioner.
        levels: ``K``, the number of halvings (fewer when the image is too small for them).

    Returns:
        ``None`` when ``strength`` is 0, else a function mapping a flat vector of ``prod(shape)``
        elements to ``P·v`` (new tensor, same dtype and device).
    """
    if strength < 0:
        raise ValueError(f"strength must be non-negative, got {strength}")
    if strength == 0 or levels < 1:
        return None
    n, c, h, w = (int(v) for v in shape)
    weights = [(4.0 * strength) ** k for k in range(1, levels + 1)]
    # Made once per dtype and device: on a GPU a new kernel per call would be a host→device copy in
    # every L-BFGS iteration.
    kernels: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def apply(v: Tensor) -> Tensor:
        # Channels as batch with one 1-channel kernel: the same operator as a grouped (depthwise)
        # convolution, and about twice as fast on the CPU.
        x = v.reshape(n * c, 1, h, w)
        key = (x.dtype, x.device)
        if key not in kernels:
            kernels[key] = _kernel(*key)
        kernel = kernels[key]
        # Downward: r_k = D_k x.
        pyramid = [x]
        for _ in weights:
            cur = pyramid[-1]
            ch, cw = cur.shape[-2:]
            if min(ch, cw) < _MIN_SIDE:
                break
            # Pad odd sides to even with zeros (its adjoint crops them off again).
            cur = F.pad(cur, (0, cw % 2, 0, ch % 2))
            pyramid.append(F.conv2d(cur, kernel, stride=2, padding=1))
        if len(pyramid) == 1:
            return v.clone()
        # Upward, Horner-style: acc = Dᵀ(w_1 r_1 + Dᵀ(w_2 r_2 + …)) = Σ w_k D_kᵀ D_k x.
        acc = None
        for k in range(len(pyramid) - 1, 0, -1):
            term = weights[k - 1] * pyramid[k]
            acc = term if acc is None else acc + term
            acc = F.conv_transpose2d(acc, kernel, stride=2, padding=1)
            ch, cw = pyramid[k - 1].shape[-2:]  # the finer level's size, before its padding
            acc = acc[..., :ch, :cw]
        return (x + acc).reshape(v.shape)

    return apply


def _kernel(dtype: torch.dtype, device: torch.device) -> Tensor:
    taps = torch.tensor(_TAPS, dtype=dtype, device=device) / sum(_TAPS)
    return (taps[:, None] * taps[None, :]).view(1, 1, len(_TAPS), len(_TAPS))
