"""What load_inputs / to_tensor accept and refuse: every bad image is a ConfigError naming it."""

from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image

from painterly import stylize
from painterly.engine import load_inputs, to_tensor
from painterly.errors import ConfigError, PainterlyWarning

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda c: c * 255, r"content image must have values in \[0, 1\]; got 0 to 255; divide a 0–255 image by 255"),
        (lambda c: (c - 0.485) / 0.229, r"content image must have values in \[0, 1\]"),  # ImageNet-normalised
        (lambda c: c * 2 - 1, r"content image must have values in \[0, 1\]; got -1 to 1$"),
        (lambda c: c.masked_fill(c > 0.8, float("nan")), "content image has NaN or infinite values"),
        (lambda c: c.masked_fill(c > 0.8, float("inf")), "content image has NaN or infinite values"),
        (lambda c: c[..., :0, :], r"content image has no pixels: shape \(1, 3, 0, 64\)"),
    ],
)
def test_a_tensor_outside_the_contract_is_refused_naming_it(make, words, images, tiny_config):
    with pytest.raises(ConfigError, match=words):
        load_inputs(tiny_config(), make(images.content_t), [images.style_t])


def test_a_resize_overshoot_is_clamped_and_the_callers_tensor_left_alone(images, tiny_config):
    content = images.content_t * 1.005 - 0.002  # bicubic ringing strays this little outside [0, 1]
    before = content.clone()
    inputs = load_inputs(tiny_config(), content, [images.style_t])
    assert inputs.content.min().item() == 0.0 and inputs.content.max().item() == 1.0
    torch.testing.assert_close(inputs.content, content.clamp(0, 1), rtol=0, atol=0)
    assert torch.equal(content, before)


def test_float64_and_float16_tensors_are_taken_as_float32(images, tiny_config):
    for dtype in (torch.float64, torch.float16):
        inputs = load_inputs(tiny_config(), images.content_t.to(dtype), [images.style_t])
        assert inputs.content.dtype == torch.float32
        torch.testing.assert_close(inputs.content, images.content_t, rtol=0, atol=1e-3)


def test_an_empty_pil_image_is_refused_naming_it(images, tiny_config):
    with pytest.raises(ConfigError, match="style image 1 has no pixels: 0x0"):
        load_inputs(tiny_config(), images.content_t, [Image.new("RGB", (0, 0))])


@pytest.mark.parametrize("kind", ["path", "str", "pil", "tensor"])
def test_one_style_image_alone_is_the_one_style(kind, images, tiny_config):
    """`start(content, style)` and `load_inputs(config, content, style)`: not a sequence of characters
    (a path), of rows (a tensor) or a TypeError (a PIL image)."""
    style = {"path": images.style, "str": str(images.style), "pil": Image.open(images.style), "tensor": images.style_t}[kind]
    alone = load_inputs(tiny_config(), images.content_t, style)
    listed = load_inputs(tiny_config(), images.content_t, [style])
    assert len(alone.styles) == 1
    assert torch.equal(alone.styles[0], listed.styles[0])


def test_no_styles_given_as_none_is_the_usual_error(images, tiny_config):
    with pytest.raises(ConfigError, match="at least one style image is needed"):
        load_inputs(tiny_config(), images.content_t, None)
    assert load_inputs(tiny_config("reconstruct"), images.content_t, None).styles == ()


def test_a_bad_style_mask_tensor_is_named_as_the_style_mask(images, tiny_config):
    config = tiny_config(regions=("white=1",))
    mask = torch.ones(1, 3, 48, 64)
    with pytest.raises(ConfigError, match=r"^style mask 1 must have values in \[0, 1\]"):
        load_inputs(config, images.content_t, [images.style_t], mask=mask, style_masks=[torch.ones(1, 3, 48, 48) * 255])
    with pytest.raises(ConfigError, match=r"^mask must have values in \[0, 1\]"):
        load_inputs(config, images.content_t, [images.style_t], mask=mask * 255)


def test_to_tensor_names_the_image_it_refuses():
    with pytest.raises(ConfigError, match=r"^init image has NaN"):
        to_tensor(torch.full((3, 8, 8), float("nan")), name="init image")


def test_stylize_refuses_a_0_255_tensor_before_any_work(images, tiny_encoder):
    with pytest.raises(ConfigError, match="divide a 0–255 image by 255"):
        stylize(images.content_t * 255, images.style_t, size=32, iterations=1, encoder=tiny_encoder(["relu1_1"]))


def test_the_notes_are_kept_in_the_inputs_whether_warned_or_not(images, tiny_config):
    """A face that loads quietly (the studio) still has every note to show in its own words."""
    config = tiny_config(init="image", size=96, optimizer="adam", lbfgs_history=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = load_inputs(config, images.content_t, [images.style_t], init=torch.rand(1, 3, 24, 64), warn=False)
    assert quiet.notes == (
        "`lbfgs_history` has no effect with `optimizer` adam",
        "content image is only 64x48 px; upscaled to 96 px",
        "`init` image is 64x24 px, another shape than the content (64x48): it is stretched to it",
    )
    with pytest.warns(PainterlyWarning) as caught:
        loud = load_inputs(config, images.content_t, [images.style_t], init=torch.rand(1, 3, 24, 64))
    assert tuple(w.message.template for w in caught) == loud.notes == quiet.notes
    assert load_inputs(tiny_config(), images.content_t, [images.style_t]).notes == ()
