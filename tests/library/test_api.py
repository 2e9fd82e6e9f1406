"""The one-call API (painterly.stylize / texture / reconstruct) with a tiny encoder."""

from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image

import painterly
from painterly.config import Config
from painterly.errors import ConfigError, PainterlyWarning

pytestmark = pytest.mark.usefixtures("single_thread")

FAST = dict(iterations=2, seed=0, precision="fp32", device="cpu", multiscale=False)


def test_stylize_from_paths(images, tiny_encoder):
    enc = tiny_encoder(Config().layers_needed)
    out = painterly.stylize(images.content, images.style, encoder=enc, size=48, **FAST)
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert out.size == (48, 36)  # longest side == size, the content's 4:3 aspect kept


def test_stylize_from_strings_pil_and_tensors_agree(images, tiny_encoder):
    layers = Config().layers_needed
    a = painterly.stylize(str(images.content), str(images.style), encoder=tiny_encoder(layers), size=32, **FAST)
    b = painterly.stylize(Image.open(images.content), Image.open(images.style), encoder=tiny_encoder(layers), size=32, **FAST)
    c = painterly.stylize(images.content_t, images.style_t[0], encoder=tiny_encoder(layers), size=32, **FAST)
    assert a.size == b.size == c.size == (32, 24)
    assert a.tobytes() == b.tobytes() == c.tobytes()


def test_stylize_portrait_aspect(images, tiny_encoder):
    portrait = images.content_t.transpose(-1, -2)  # 48 wide, 64 high
    out = painterly.stylize(portrait, images.style, encoder=tiny_encoder(Config().layers_needed), size=40, **FAST)
    assert out.size == (30, 40)


def test_stylize_several_styles_with_blend(images, tiny_encoder):
    out = painterly.stylize(
        images.content, [images.style, images.style2], style_blend=(2, 1), encoder=tiny_encoder(Config().layers_needed), size=32, **FAST
    )
    assert out.size == (32, 24)


def test_stylize_with_a_config_and_overrides(images, tiny_encoder):
    cfg = Config(size=64, **FAST)
    seen = []
    out = painterly.stylize(images.content, images.style, config=cfg, size=32, callback=seen.append, encoder=tiny_encoder(cfg.layers_needed))
    assert out.size == (32, 24)
    assert [p.iteration for p in seen] == [1, 2]


def test_unknown_option_is_a_config_error(images, tiny_encoder):
    with pytest.raises(ConfigError, match="unknown option 'stlye_weight'"):
        painterly.stylize(images.content, images.style, encoder=tiny_encoder(["relu1_1"]), stlye_weight=3)
    with pytest.raises(ConfigError, match="unknown option 'stlye_weight'"):
        painterly.stylize(images.content, images.style, config=Config(), encoder=tiny_encoder(["relu1_1"]), stlye_weight=3)


def test_bad_image_argument_is_a_config_error(images, tiny_encoder):
    with pytest.raises(ConfigError, match="expected a path"):
        painterly.stylize(123, images.style, encoder=tiny_encoder(Config().layers_needed), **FAST)


def test_a_config_that_is_not_a_config_is_a_config_error(tiny_encoder):
    with pytest.raises(ConfigError, match="config must be a painterly.Config, got dict"):
        painterly.StyleTransfer({"size": 32}, encoder=tiny_encoder(Config().layers_needed))


def test_upscaling_a_small_content_image_warns(images, tiny_encoder):
    with pytest.warns(PainterlyWarning, match="upscaled to 80 px"):
        painterly.stylize(images.content, images.style, encoder=tiny_encoder(Config().layers_needed), size=80, **FAST)


def test_shapes_that_cannot_be_kept_are_noted(images, tiny_encoder):
    """A start image of another shape is stretched to the content's, and a side under the network's
    16 px is raised to it: both said, each naming what to change."""
    from painterly.api import load_inputs

    with pytest.warns(PainterlyWarning) as seen:
        load_inputs(Config(init="image", size=48), images.content, [images.style], images.style)  # 48x48 start, 64x48 content
    assert [str(w.message) for w in seen] == [f"init {images.style} is 48x48 px, another shape than the content (64x48): it is stretched to it"]
    thin = torch.rand(1, 3, 4, 100)
    with pytest.warns(PainterlyWarning, match=r"the image is 100x4 px: at size 48 .* the result is 48x16, stretched \(size 400 or more keeps its shape\)"):
        load_inputs(Config(size=48), thin, [images.style])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same shapes: nothing to say
        load_inputs(Config(init="image", size=48), images.content, [images.style], images.content)


def test_texture(images, tiny_encoder):
    enc = tiny_encoder(Config.for_mode("texture").layers_needed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no content image: nothing to warn about
        out = painterly.texture(images.style, encoder=enc, size=40, **FAST)
    assert isinstance(out, Image.Image) and out.size == (40, 40)


def test_texture_of_two_styles_takes_the_first_ones_shape(images, tiny_encoder):
    wide_style = images.content_t  # 64x48
    out = painterly.texture([wide_style, images.style], encoder=tiny_encoder(Config.for_mode("texture").layers_needed), size=32, **FAST)
    assert out.size == (32, 24)


def test_reconstruct(images, tiny_encoder):
    out = painterly.reconstruct(images.content, "relu2_1", encoder=tiny_encoder(["relu2_1"]), size=48, **FAST)
    assert isinstance(out, Image.Image) and out.size == (48, 36)


def test_reconstruct_default_layer_and_callback(images, tiny_encoder):
    seen = []
    out = painterly.reconstruct(images.content, encoder=tiny_encoder(["relu3_1"]), size=32, callback=seen.append, **FAST)
    assert out.size == (32, 24)
    assert all(p.losses["style"] == 0 and p.losses["content"] > 0 for p in seen)


def test_seeded_api_runs_are_reproducible(images, tiny_encoder):
    layers = Config.for_mode("texture").layers_needed
    a = painterly.texture(images.style, encoder=tiny_encoder(layers), size=32, **FAST)
    b = painterly.texture(images.style, encoder=tiny_encoder(layers), size=32, **FAST)
    assert a.tobytes() == b.tobytes()


def test_public_names_resolve():
    for name in painterly.__all__:
        assert getattr(painterly, name) is not None
    with pytest.raises(AttributeError):
        painterly.no_such_thing  # noqa: B018
    assert torch.is_tensor(painterly.gram_matrix(torch.ones(1, 2, 2, 2)))
