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
* total variation is the mean over pixels.
"""

from __future__ import annotations

from .content import content_loss, cosine_content_loss
from .gram import gram_matrix, gram_sum, style_loss
from .smoothness import total_variation

__all__ = ["gram_matrix", "gram_sum", "content_loss", "cosine_content_loss", "style_loss", "total_variation"]
