"""The style matching of ``original_colors`` luminance and histogram (painterly.color): the matched style
keeps the painting's light–dark spread (``color_contrast="painting"``, the default) or takes the photo's
(``"photo"``, Gatys et al. 2016 exactly). docs/quality.md has the measurements behind the default.
"""

from __future__ import annotations

import pytest
import torch

from painterly import Config, color
from painterly.engine import load_inputs
from painterly.errors import ConfigError


def _y(x: torch.Tensor) -> torch.Tensor:
    return color.rgb_to_yiq(x.double())[:, :1]


def _flat_photo_and_contrasty_painting() -> tuple[torch.Tensor, torch.Tensor]:
    """A photo with a luminance spread of ~0.03 and a painting of ~0.09, colours well inside [0, 1]
    (so that clamping plays no part, before or after matching) and correlated channels (full-rank covariances)."""
    gen = torch.Generator().manual_seed(0)
    mix = torch.tensor([[1.0, 0.3, 0.0], [0.2, 1.0, 0.1], [0.0, 0.4, 1.0]])
    photo = 0.5 + 0.03 * torch.einsum("ij,njhw->nihw", mix, torch.randn(1, 3, 20, 30, generator=gen))
    painting = 0.45 + 0.3 * torch.einsum("ij,njhw->nihw", mix.T, torch.rand(1, 3, 24, 24, generator=gen) - 0.5)
    assert 0.2 < photo.min() and photo.max() < 0.8 and 0.1 < painting.min() and painting.max() < 0.9
    return photo, painting


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.double().flatten(2)[0]
    return flat.mean(1), torch.cov(flat)


def test_luminance_keeps_the_paintings_spread_at_the_photos_mean():
    photo, painting = _flat_photo_and_contrasty_painting()
    out = color.match_luminance(painting, photo, contrast="painting")
    assert out.shape == painting.shape and torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    # The grey painting moved by a constant: every stroke's light and dark as they were (no clamping here).
    expected = _y(painting) - _y(painting).mean() + _y(photo).mean()
    assert torch.allclose(out[:, :1].double(), expected, atol=1e-5)
    assert out[:, :1].double().std().item() == pytest.approx(_y(painting).std().item(), rel=1e-4)


def test_luminance_with_the_photos_contrast_is_gatys_et_al():
    photo, painting = _flat_photo_and_contrasty_painting()
    out = color.match_luminance(painting, photo, contrast="photo")
    assert torch.equal(out, color.match_luminance(painting, photo))  # the function's default: plain moment matching
    y = out[:, :1].double()
    assert y.mean().item() == pytest.approx(_y(photo).mean().item(), abs=1e-5)
    assert y.std().item() == pytest.approx(_y(photo).std().item(), rel=1e-4)
    # Scaled by the ratio of spreads about the mean: the light–dark contrast a third of the painting's here.
    scale = _y(photo).std() / _y(painting).std()
    assert torch.allclose(y, (_y(painting) - _y(painting).mean()) * scale + _y(photo).mean(), atol=1e-5)


def test_histogram_takes_the_photos_palette_with_the_paintings_spread():
    photo, painting = _flat_photo_and_contrasty_painting()
    out = color.match_color(painting, photo, contrast="painting")
    assert out.shape == painting.shape and out.dtype == painting.dtype
    mo, co = _moments(out)
    mc, cc = _moments(photo)
    k = _y(painting).std() / _y(photo).std()
    assert k > 2.5  # the case the default is for: a photo flatter than the painting
    assert torch.allclose(mo, mc, atol=1e-4)
    assert torch.allclose(co, k**2 * cc, rtol=0.02, atol=1e-5)  # the photo's colours, scaled as one
    assert _y(out).std().item() == pytest.approx(_y(painting).std().item(), rel=0.01)


def test_histogram_with_the_photos_contrast_matches_mean_and_covariance():
    photo, painting = _flat_photo_and_contrasty_painting()
    assert torch.equal(color.match_color(painting, photo), color.match_color(painting, photo, contrast="photo"))
    mo, co = _moments(color.match_color(painting, photo, contrast="photo"))
    mc, cc = _moments(photo)
    assert torch.allclose(mo, mc, atol=1e-4)
    assert torch.allclose(co, cc, rtol=0.02, atol=1e-5)


@pytest.mark.parametrize("contrast", ["painting", "photo"])
def test_matching_an_image_to_itself_changes_nothing(contrast):
    _, painting = _flat_photo_and_contrasty_painting()
    assert torch.allclose(color.match_color(painting, painting, contrast), painting, atol=1e-4)
    assert torch.allclose(color.match_luminance(painting, painting, contrast), color.luminance(painting), atol=1e-5)


def test_an_all_equal_photo_leaves_the_paintings_strokes():
    """A photo with no contrast at all: Gatys et al.'s matching flattens the style to one grey (nothing
    left to paint); the default keeps the painting's strokes around the photo's grey."""
    _, painting = _flat_photo_and_contrasty_painting()
    photo = torch.full((1, 3, 8, 8), 0.6)
    gatys = color.match_luminance(painting, photo, contrast="photo")
    assert gatys.std().item() < 1e-5
    kept = color.match_luminance(painting, photo, contrast="painting")
    assert kept[:, :1].mean().item() == pytest.approx(0.6, abs=1e-5)
    assert kept[:, :1].double().std().item() == pytest.approx(_y(painting).std().item(), rel=1e-4)


def test_an_unknown_contrast_is_refused():
    photo, painting = _flat_photo_and_contrasty_painting()
    with pytest.raises(ValueError, match="contrast"):
        color.match_luminance(painting, photo, contrast="paper")
    with pytest.raises(ConfigError, match="color_contrast"):
        Config(color_contrast="paper")


@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_by_default_a_run_keeps_the_paintings_contrast(mode, images):
    """The fix of docs/quality.md: a run's style target has the painting's light–dark spread (Gatys et
    al.'s matching gave it the photo's, a third of it here, and the run hardly painted)."""
    flat = 0.5 + 0.3 * (images.content_t - 0.5)
    inputs = load_inputs(Config(size=48, original_colors=mode), flat, [images.style_t])
    spread = _y(inputs.styles_work[0]).std().item()
    assert spread == pytest.approx(_y(images.style_t).std().item(), rel=0.15)
    assert spread > 2.5 * _y(flat).std().item()


@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_the_run_sees_the_style_color_contrast_asks_for(mode, images):
    """What load_inputs hands the run: the painting's luminance spread by default, the photo's with
    ``color_contrast="photo"``; the photo's mean brightness either way."""
    flat = 0.5 + 0.3 * (images.content_t - 0.5)  # a photo of a third of the stripes' contrast
    spreads = {}
    for contrast in ("painting", "photo"):
        inputs = load_inputs(Config(size=48, original_colors=mode, color_contrast=contrast), flat, [images.style_t])
        spreads[contrast] = _y(inputs.styles_work[0]).std().item()
        assert _y(inputs.styles_work[0]).mean().item() == pytest.approx(_y(flat).mean().item(), abs=0.02)
    # Up to 15 %: the stripes are two colours (a line in RGB, so histogram matches the covariance only
    # along it) and their extremes, pushed out of the RGB cube by recolouring, are clamped.
    assert spreads["photo"] == pytest.approx(_y(flat).std().item(), rel=0.15)
    assert spreads["painting"] == pytest.approx(_y(images.style_t).std().item(), rel=0.15)
    assert spreads["painting"] > 2.5 * spreads["photo"]


def test_color_contrast_without_luminance_or_histogram_is_noted():
    from painterly import Config
    from painterly.engine.inputs import ineffective_options

    assert ineffective_options(Config(color_contrast="photo", original_colors="histogram")) == []
    for colors in ("off", "after"):
        assert ineffective_options(Config(color_contrast="photo", original_colors=colors)) == [
            "`color_contrast` has no effect without `original_colors` luminance or histogram"
        ]
    assert ineffective_options(Config(original_colors="off")) == []
