"""Per-channel histogram matching of a layer's activations (Risser, Wilmot & Barnes, 2017).

Risser et al. remap each channel of the output's activations ``O`` to the style's histogram, giving
``R(O)``, and minimise ``|O − R(O)|²`` with ``R(O)`` held fixed; the Gram loss stays beside it (the
histogram term fixes the first-order statistics, which a Gram matrix does not constrain: it is what
stops the "washed-out" look). Exact histogram matching of ``n`` values is the sort: the ``i``-th
smallest value of a channel maps to the target's ``(i + ½)/n`` quantile, so ``|O − R(O)|²`` is the
squared 1-D Wasserstein distance between the channel's values and the style's, per channel, with
the gradient ``2 (O − R(O))`` of Risser et al. (the sort's own gradient is a permutation).
No bins: the quantiles are interpolated, so the style and the output may differ in size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .wasserstein import resample_quantiles


def channel_quantiles(features: Tensor, count: int | None = None) -> Tensor:
    """Each channel's values sorted over positions (its quantile function), resampled to ``count``
    points (``None``: ``H·W``, as they are).

    Args:
        features: ``(N, C, H, W)``, any float dtype.

    Returns:
        ``(N, C, count)`` float32 (float64 for float64 input), ascending.
    """
    acc = torch.float64 if features.dtype == torch.float64 else torch.float32
    n, c, h, w = features.shape
    values = features.reshape(n, c, h * w).to(acc).sort(dim=-1).values
    return values if count is None else resample_quantiles(values, count)


def histogram_loss(features: Tensor, target_quantiles: Tensor) -> Tensor:
    """Mean squared difference between each channel's sorted values and the target's quantiles:
    ``mean |O − R(O)|²`` of Risser et al. with exact (sort-based) histogram matching.

    Args:
        features: ``(N, C, H, W)``.
        target_quantiles: ``(C, H·W)`` or ``(N, C, H·W)`` from :func:`channel_quantiles` of the style
            with ``count = H·W`` (detached).

    Returns:
        0-d tensor ≥ 0, zero iff every channel has the target's histogram; float32 (float64 for
        float64 input).
    """
    ours = channel_quantiles(features)
    return (ours - target_quantiles.to(ours.dtype)).pow(2).mean()
