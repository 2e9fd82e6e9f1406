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


def histogram_loss(features: Tensor, target_quantiles: Tensor, bins: int | None = None) -> Tensor:
    """``mean |O − R(O)|²`` of Risser et al.: each channel's values against the target's quantiles.

    With ``bins=None`` the matching is exact (a sort): the mean squared difference between each
    channel's sorted values and the target's quantiles. With ``bins`` it is Risser's own binned
    matching, :func:`histogram_remap` held fixed: O(n) instead of a sort's O(n log n), for layers with
    many positions (sorting is what costs on a CPU: docs/benchmarks.md). Same gradient up to the
    binning, ``2 (O − R(O)) / numel``.

    Args:
        features: ``(N, C, H, W)``.
        target_quantiles: ``(C, H·W)`` or ``(N, C, H·W)`` from :func:`channel_quantiles` of the style
            with ``count = H·W`` (detached).
        bins: ``None`` (exact) or the number of histogram bins per channel (≥ 2).

    Returns:
        0-d tensor ≥ 0, zero iff every channel has the target's histogram (exact matching; binned:
        up to the binning); float32 (float64 for float64 input).
    """
    if bins is None:
        ours = channel_quantiles(features)
        return (ours - target_quantiles.to(ours.dtype)).pow(2).mean()
    acc = torch.float64 if features.dtype == torch.float64 else torch.float32
    n, c, h, w = features.shape
    values = features.reshape(n * c, h * w).to(acc)
    remapped = histogram_remap(values.detach(), target_quantiles.reshape(n * c, -1).to(acc), bins)
    return (values - remapped).pow(2).mean()


def histogram_remap(values: Tensor, target_quantiles: Tensor, bins: int) -> Tensor:
    """Histogram matching by bins: each value moved to the target's quantile at its own rank, where
    the rank comes from a ``bins``-bin histogram of its row, and the remapping is linear within a bin
    between its values at the bin edges (so the target is resolved to ``bins`` bins too, as in
    Risser et al.). About ten passes over the values: no sort.

    Args:
        values: ``(R, n)`` (rows: channels), float32/float64.
        target_quantiles: ``(R, m)`` ascending (any ``m``).
        bins: histogram bins per row, ≥ 2.

    Returns:
        ``(R, n)``, detached: ``Q_target(F_values(v))`` for every value ``v``.
    """
    with torch.no_grad():
        rows, count = values.shape
        m = target_quantiles.shape[-1]
        lo, hi = torch.aminmax(values, dim=1, keepdim=True)
        scale = bins / (hi - lo).clamp(min=torch.finfo(values.dtype).tiny)
        t = torch.addcmul(-lo * scale, values, scale).clamp_(0, bins * (1 - 1e-6))
        idx = t.long()
        frac = t.sub_(idx)
        hist = values.new_zeros(rows, bins).scatter_add_(1, idx, values.new_ones(()).expand_as(values))
        # Values below each bin edge → the target's quantile there (mid-point convention).
        below = torch.cat([hist.new_zeros(rows, 1), hist.cumsum(dim=1)], dim=1)
        pos = below.mul_(m / count).sub_(0.5).clamp_(0, m - 1)
        left = pos.long()
        edges = torch.lerp(target_quantiles.gather(1, left), target_quantiles.gather(1, (left + 1).clamp_(max=m - 1)), pos - left)
        return torch.lerp(edges[:, :-1].gather(1, idx), edges[:, 1:].gather(1, idx), frac)
