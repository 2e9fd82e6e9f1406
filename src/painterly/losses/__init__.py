"""The loss terms of Gatys et al., as pure tensor functions (one module per idea).

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
* total variation is the mean over pixels;
* the Laplacian loss (:mod:`.laplacian`, Li et al. 2017) is the mean over the pooled image's positions;
* the distribution losses (:mod:`.wasserstein`, :mod:`.histogram`) are means per channel (W2) or per
  direction/channel and position (sliced, histogram).

Beyond the Gram matrix: :func:`w2_loss` (W2 between fitted Gaussians), :func:`sliced_wasserstein_loss`
(Heitz et al. 2021) and :func:`histogram_loss` (Risser et al. 2017) compare the distribution of the
feature vectors, not only their second moment.
"""

from __future__ import annotations

from .content import content_loss, cosine_content_loss
from .gram import gram_matrix, gram_sum, style_loss
from .guided import guided_gram, guided_moments, guided_style_loss, quantile_at, region_area, weighted_quantiles, weighted_sorted_loss
from .histogram import channel_quantiles, histogram_loss
from .laplacian import laplacian_loss, pooled_laplacian
from .smoothness import total_variation
from .wasserstein import (
    GaussianTarget,
    feature_moments,
    gaussian_target,
    moments_from_sums,
    random_directions,
    resample_quantiles,
    sliced_wasserstein_loss,
    sorted_projections,
    sqrtm_psd,
    w2_from_moments,
    w2_loss,
)

__all__ = [
    "GaussianTarget", "channel_quantiles", "content_loss", "cosine_content_loss", "feature_moments", "gaussian_target",
    "gram_matrix", "gram_sum", "laplacian_loss", "pooled_laplacian", "guided_gram", "guided_moments", "guided_style_loss", "quantile_at", "histogram_loss", "moments_from_sums", "random_directions", "region_area",
    "resample_quantiles", "sliced_wasserstein_loss", "sorted_projections", "sqrtm_psd", "style_loss", "total_variation", "w2_from_moments", "w2_loss",
    "weighted_quantiles", "weighted_sorted_loss",
]
