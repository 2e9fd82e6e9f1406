"""Keeping the content's colours ("Preserving Color in Neural Artistic Style Transfer", Gatys et al. 2016).

Three methods, chosen by ``--original-colors``:

* ``luminance`` — transfer on brightness alone: the content and style images are reduced to their
  luminance (the style's moved to the content's mean), the run works on those, and the result's
  luminance is joined to the content's colour channels (YIQ space).
* ``histogram`` — recolour the style image first, so that its colour distribution (mean and the shape
  of its covariance in RGB) matches the content's, then run normally.
* ``after`` — run normally, then join the result's luminance to the content's colour channels (what
  jcjohnson/neural-style's ``-original_colors 1`` does).

The spread of the matched style (``contrast``; a run's is ``Config.color_contrast``) is one rule for the
first two: ``"painting"`` (a run's default) keeps the painting's luminance standard deviation, the
light–dark contrast that carries its strokes; ``"photo"`` (the functions' default: plain moment matching,
also what ``init_colors`` uses) is Gatys et al. 2016 exactly, the spread scaled to the photo's.
With a photo flatter than the painting, ``"photo"`` shrinks the style's Gram energy many times (0.02–0.09
of the painting's for the demo photo × starry_night) and the run hardly paints (docs/quality.md).

All images are ``(N, 3, H, W)`` RGB in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import COLOR_CONTRASTS

# NTSC YIQ; Y is the luminance.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def _apply(matrix: Tensor, image: Tensor) -> Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image), image)


def rgb_to_yiq(image: Tensor) -> Tensor:
    return _apply(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    return _apply(torch.linalg.inv(_RGB_TO_YIQ.double()).float(), image)


def luminance(image: Tensor) -> Tensor:
    """``(N, 3, H, W)`` → its luminance replicated to 3 channels (a grey RGB image)."""
    y = rgb_to_yiq(image)[:, :1]
    return y.expand(-1, 3, -1, -1).contiguous()


CONTRASTS = COLOR_CONTRASTS
"""Whose luminance spread a matched style keeps: the painting's own, or the photo's (Gatys et al. 2016)
(the choices of ``Config.color_contrast``)."""


def _target_spread(style: Tensor, content: Tensor, contrast: str) -> Tensor:
    """The luminance standard deviation a style matched to ``content`` gets: the painting's own
    (``"painting"``) or the content's (``"photo"``). 0-d, in ``style``'s dtype."""
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {', '.join(CONTRASTS)}, got {contrast!r}")
    return rgb_to_yiq(style if contrast == "painting" else content.to(style))[:, :1].std()


def match_luminance(style: Tensor, content: Tensor, contrast: str = "photo") -> Tensor:
    """Grey luminance image of ``style`` with its mean moved to the content's, and its standard deviation
    the painting's own (``contrast="painting"``: the grey painting shifted) or the content's (``"photo"``,
    Gatys et al. 2016)."""
    ys = rgb_to_yiq(style)[:, :1]
    yc = rgb_to_yiq(content.to(style))[:, :1]
    ys = (ys - ys.mean()) * (_target_spread(style, content, contrast) / ys.std().clamp_min(1e-6)) + yc.mean()
    return ys.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def join_luminance(result: Tensor, content: Tensor) -> Tensor:
    """The luminance of ``result`` with the colour (I, Q) of ``content`` (resized to match)."""
    if content.shape[-2:] != result.shape[-2:]:
        content = torch.nn.functional.interpolate(content, size=result.shape[-2:], mode="bilinear", align_corners=False)
    y = rgb_to_yiq(result)[:, :1]
    iq = rgb_to_yiq(content.to(result))[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0, 1)


def _sqrtm(cov: Tensor, inverse: bool = False) -> Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(1e-8)
    power = -0.5 if inverse else 0.5
    return vecs @ torch.diag(vals**power) @ vecs.T


def match_color(style: Tensor, content: Tensor, contrast: str = "photo") -> Tensor:
    """Recolour ``style`` so its RGB mean is ``content``'s and its covariance ``k² Σc``: the content's
    palette, with ``k`` giving it the painting's luminance standard deviation (``contrast="painting"``)
    or ``k = 1``, the content's covariance exactly (``"photo"``, Gatys et al. 2016).

    The map is ``x ↦ k Σc^½ Σs^-½ (x − μs) + μc``, the symmetric ("image analogies") choice among the
    linear maps that match second moments: it rotates colours least.
    """
    s = style.double().flatten(2).squeeze(0) if style.shape[0] == 1 else style.double().permute(1, 0, 2, 3).flatten(1)
    c = content.double().flatten(2).squeeze(0) if content.shape[0] == 1 else content.double().permute(1, 0, 2, 3).flatten(1)
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64) * 1e-5
    cov_s = torch.cov(s) + eye
    cov_c = torch.cov(c) + eye
    out = _sqrtm(cov_c) @ _sqrtm(cov_s, inverse=True) @ (s - mu_s)
    if contrast != "photo":  # "photo": the luminance spread is already the content's
        y = _RGB_TO_YIQ[0].double() @ out
        out = out * (_target_spread(style.double(), content, contrast) / y.std().clamp_min(1e-6))
    out = out + mu_c
    if style.shape[0] == 1:
        out = out.view(1, 3, *style.shape[-2:])
    else:
        out = out.view(3, style.shape[0], *style.shape[-2:]).permute(1, 0, 2, 3)
    return out.clamp(0, 1).to(style.dtype)
