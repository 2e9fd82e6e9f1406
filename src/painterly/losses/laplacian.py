"""The Laplacian loss of Li et al., "Laplacian-Steered Neural Style Transfer" (ACM MM 2017).

The content loss compares deep features, which hold *what* is where but not the fine structure of
the photo: edges bend, faces distort. This loss compares the image itself: the Laplacian (the 3×3
filter below, a second derivative that responds to edges and fine detail) of the image average-pooled
by ``pool × pool`` cells, against the same map of the content. Pooling first makes it a constraint on
structure at the scale of the pool (p = 4: contours; p = 16: the large layout), not on texture, which
the style is free to paint.

As the authors' code (lap_style.lua, on top of jcjohnson/neural-style) has it: the filter runs over
the three colour channels together (one output channel, the Laplacian of their sum), unpadded (only
positions whose 3×3 neighbourhood lies inside the pooled image), and the squared differences are
averaged (the paper writes a sum; painterly's losses are means, so one weight suits every size).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

LAPLACIAN_KERNEL = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
"""The 3×3 discrete Laplacian (its sign does not matter to a squared difference)."""


def pooled_laplacian(image: Tensor, pool: int) -> Tensor:
    """The Laplacian of ``image`` average-pooled by ``pool × pool`` cells, summed over the channels.

    Args:
        image: ``(N, C, H, W)``, any range (painterly's images are in [0, 1]).
        pool: the side of the pooling cells, ≥ 1 (1: no pooling). Rows and columns beyond the last
            whole cell are left out, as ``avg_pool2d`` does.

    Returns:
        ``(N, 1, H // pool − 2, W // pool − 2)`` in float32 (float64 for float64 input), on
        ``image``'s device; a side that would be below 1 is 0 (no position has a whole neighbourhood).
    """
    if pool < 1:
        raise ValueError(f"pool must be at least 1, got {pool}")
    acc = torch.float64 if image.dtype == torch.float64 else torch.float32
    x = image.to(acc)
    n, c, h, w = x.shape
    ph, pw = h // pool, w // pool
    if ph < 3 or pw < 3:
        # Empty, but still a function of ``image``: a loss made of it alone has a (zero) gradient.
        return x[:, :1, : max(0, ph - 2), : max(0, pw - 2)] * 0.0
    if pool > 1:
        x = F.avg_pool2d(x, pool)
    kernel = torch.tensor(LAPLACIAN_KERNEL, dtype=acc, device=x.device).expand(1, c, 3, 3)
    return F.conv2d(x, kernel)


def laplacian_loss(image: Tensor, target: Tensor, pool: int) -> Tensor:
    """``mean((pooled_laplacian(image, pool) − target)²)``: Li et al.'s Laplacian loss, unweighted.

    Args:
        image: ``(N, C, H, W)``, the image being optimised.
        target: ``pooled_laplacian(content, pool)`` of a content of the same size, detached.
        pool: as in :func:`pooled_laplacian`.

    Returns:
        0-d tensor ≥ 0, float32 (float64 for float64 input); 0 where the pooled image has no
        position with a whole 3×3 neighbourhood, and 0 when ``image`` is the content.
    """
    lap = pooled_laplacian(image, pool)
    if lap.numel() == 0:
        return lap.sum()
    return (lap - target.to(lap.dtype)).pow(2).mean()
