"""Spatial control (issue 15): masks, guided Gram matrices and the guided style term."""

from __future__ import annotations

import warnings

import pytest
import torch

from painterly.config import Config
from painterly.encoder import VGG19Encoder, random_state
from painterly.engine import Run, build_objective, build_targets, load_inputs
from painterly.engine.guided import GuidedStyleTerm
from painterly.imageio import resize
from painterly.errors import ConfigError, ImageError, PainterlyWarning
from painterly.losses import gram_matrix, guided_gram, guided_style_loss, style_loss
from painterly.masks import (
    check_aspect,
    color_name,
    layer_guides,
    parse_color,
    parse_region,
    parse_regions,
    region_weights,
    resize_weights,
)

from conftest import make_tiny_config, make_tiny_transfer


def _mask(h: int, w: int, *blocks: tuple[tuple[int, int, int], slice]) -> torch.Tensor:
    """A (1, 3, h, w) mask in [0, 1]: white, with the given colours painted over column ranges."""
    m = torch.ones(1, 3, h, w)
    for rgb, cols in blocks:
        m[0, :, :, cols] = torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1) / 255.0
    return m


# --- specs -------------------------------------------------------------------------------------------


def test_colours_by_name_hex_and_gray_level() -> None:
    assert parse_color("red") == (255, 0, 0)
    assert parse_color(" Blue ") == (0, 0, 255)
    assert parse_color("#10a0FF") == (16, 160, 255)
    assert parse_color("#f80") == (255, 136, 0)
    assert parse_color("0") == (0, 0, 0) and parse_color("200") == (200, 200, 200)
    assert color_name((255, 255, 0)) == "yellow" and color_name((1, 2, 3)) == "#010203"
    for bad in ("reddish", "#12345", "256", ""):
        with pytest.raises(ConfigError, match="unknown colour"):
            parse_color(bad)


def test_region_specs() -> None:
    r = parse_region("red=2:0.5")
    assert (r.color, r.styles, r.weight, r.is_photo) == ((255, 0, 0), (1,), 0.5, False)
    assert parse_region("#00ff00=1+3").styles == (0, 2)
    for word in ("photo", "none", "content"):
        assert parse_region(f"white={word}").is_photo
    for bad in ("red", "red=0", "red=x", "red=1:-1", "red=1:nan", "red=photo:2", "a=b=c"):
        with pytest.raises(ConfigError, match="regions"):
            parse_region(bad)
    with pytest.raises(ConfigError, match="assigns the colour red twice"):
        parse_regions(["red=1", "#ff0000=2"])


def test_config_checks_and_keeps_regions() -> None:
    cfg = Config(regions="red=1,blue=photo", mask_propagation="inside")
    assert cfg.regions == ("red=1", "blue=photo")
    assert Config.from_mapping(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="twice"):
        Config(regions=["red=1", "red=2"])
    with pytest.raises(ConfigError, match="mask_propagation"):
        Config(mask_propagation="max")


# --- mask → soft weights ----------------------------------------------------------------------------


def test_hard_mask_gives_one_hot_weights() -> None:
    m = _mask(4, 6, ((255, 0, 0), slice(0, 2)), ((0, 0, 255), slice(2, 4)))
    w = region_weights(m, [(255, 0, 0), (0, 0, 255), (255, 255, 255)])
    assert w.shape == (3, 1, 4, 6)
    assert torch.equal(w[0, 0, :, :2], torch.ones(4, 2)) and torch.equal(w[1, 0, :, 2:4], torch.ones(4, 2))
    assert torch.equal(w[2, 0, :, 4:], torch.ones(4, 2)) and torch.equal(w.sum(0), torch.ones(1, 4, 6))


def test_feathered_edges_and_gray_levels_are_soft() -> None:
    # A gray ramp between black and white: the weights follow it linearly and sum to 1.
    ramp = torch.linspace(0, 1, 11).view(1, 1, 1, 11).expand(1, 3, 2, 11)
    w = region_weights(ramp, [(0, 0, 0), (255, 255, 255)])
    expected = (ramp[0, 0, 0].double() * 255).round().float() / 255.0
    assert torch.allclose(w[1, 0, 0], expected, atol=1e-6)
    assert torch.allclose(w.sum(0), torch.ones(1, 2, 11))
    # Half red, half blue (a feathered edge between them) is shared half and half.
    mid = _mask(1, 1, ((128, 0, 127), slice(0, 1)))
    w = region_weights(mid, [(255, 0, 0), (0, 0, 255)])
    assert abs(w[0].item() - 0.5) < 0.01 and abs(w[1].item() - 0.5) < 0.01


def test_unassigned_colours_are_named() -> None:
    m = _mask(10, 10, ((255, 0, 0), slice(0, 5)), ((255, 255, 0), slice(5, 7)))
    with pytest.raises(ConfigError, match=r"not assigned to any region: white \(30\.0 %\), yellow \(20\.0 %\); regions assigns red"):
        region_weights(m, [(255, 0, 0)], name="m.png")
    # A few stray pixels (below 0.1 % of the mask) take the nearest colour instead.
    big = torch.zeros(1, 3, 40, 40)
    big[0, :, 0, 0] = torch.tensor([0.0, 1.0, 0.0])
    assert torch.equal(region_weights(big, [(0, 0, 0)]), torch.ones(1, 1, 40, 40))


def test_aspect_tolerance_and_resizing() -> None:
    check_aspect((100, 151), (1000, 1500))  # 0.7 %: resized
    with pytest.raises(ConfigError, match="aspect ratios differ by 25 %"):
        check_aspect((100, 100), (300, 400), name="m.png")
    w = region_weights(_mask(8, 8, ((255, 0, 0), slice(0, 3))), [(255, 0, 0), (255, 255, 255)])
    for hw in ((5, 5), (16, 16), (8, 8)):
        r = resize_weights(w, hw)
        assert r.shape == (2, 1, *hw) and torch.allclose(r.sum(0), torch.ones(1, *hw)) and r.min() >= 0


def test_guides_match_each_layers_resolution() -> None:
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    enc = VGG19Encoder(random_state(), "caffe", layers)
    image = torch.rand(1, 3, 37, 53)
    feats = enc(image)
    guide = torch.zeros(1, 1, 37, 53)
    guide[..., :, :20] = 1.0
    for mode in ("avg", "inside"):
        guides = layer_guides(guide, layers, mode)
        for n in layers:
            assert guides[n].shape[-2:] == feats[n].shape[-2:], (mode, n)
    avg, inside = layer_guides(guide, layers, "avg"), layer_guides(guide, layers, "inside")
    for n in layers:
        assert torch.all(inside[n] <= avg[n] + 1e-6)  # erosion only ever shrinks a region
    assert inside["relu3_1"].sum() < avg["relu3_1"].sum()
    ones = layer_guides(torch.ones(1, 1, 37, 53), layers, "inside")
    assert all(torch.equal(g, torch.ones_like(g)) for g in ones.values())


# --- guided Gram ----------------------------------------------------------------------------------


def test_all_ones_guide_is_the_gram_exactly() -> None:
    f = torch.randn(1, 8, 9, 11)
    ones = torch.ones(1, 1, 9, 11)
    assert torch.equal(guided_gram(f, ones), gram_matrix(f))
    target = gram_matrix(torch.randn(1, 8, 9, 11))
    assert torch.equal(guided_style_loss(f, ones, target), style_loss(gram_matrix(f), target))


def test_area_normalisation_small_region_as_strong_as_large() -> None:
    f = torch.randn(1, 6, 12, 16, dtype=torch.float64)
    for cols in (slice(0, 2), slice(0, 12)):
        g = torch.zeros(1, 1, 12, 16, dtype=torch.float64)
        g[..., cols] = 1.0
        # The region's Gram is the Gram of its own positions: independent of the region's size.
        assert torch.allclose(guided_gram(f, g), gram_matrix(f[..., cols].contiguous()), atol=1e-12)
    # A texture repeated over a small and a large region gives the same Gram in both.
    tile = torch.randn(1, 6, 4, 4, dtype=torch.float64)
    texture = tile.repeat(1, 1, 3, 4)
    small, large = torch.zeros(1, 1, 12, 16, dtype=torch.float64), torch.zeros(1, 1, 12, 16, dtype=torch.float64)
    small[..., :4, :4] = 1.0
    large[..., :, 4:] = 1.0
    assert torch.allclose(guided_gram(texture, small), guided_gram(texture, large), atol=1e-12)


def test_soft_guides() -> None:
    f = torch.randn(1, 5, 7, 7, dtype=torch.float64)
    half = torch.full((1, 1, 7, 7), 0.5, dtype=torch.float64)
    assert torch.allclose(guided_gram(f, half), gram_matrix(f), atol=1e-12)  # a uniform guide changes nothing
    ramp = torch.linspace(0, 1, 7, dtype=torch.float64).view(1, 1, 1, 7).expand(1, 1, 7, 7)
    flat = f.reshape(5, -1)
    wts = ramp.reshape(-1) ** 2
    expected = (flat * wts) @ flat.t() / (5 * wts.sum())
    assert torch.allclose(guided_gram(f, ramp)[0], expected, atol=1e-12)


def test_guided_loss_gradcheck_float64() -> None:
    f = torch.randn(1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    g = torch.rand(1, 1, 5, 6, dtype=torch.float64)
    target = gram_matrix(torch.randn(1, 4, 5, 6, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda x: guided_style_loss(x, g, target), (f,))
    assert torch.autograd.gradcheck(lambda x: guided_gram(x, g), (f,))


# --- the term, the targets and the run ---------------------------------------------------------------


def _objective_value_and_grad(config: Config, inputs, x: torch.Tensor):  # noqa: ANN001, ANN202
    transfer = make_tiny_transfer(config)
    hw = tuple(x.shape[-2:])
    targets = build_targets(transfer.encoder, config, inputs, max(hw), hw, torch.device("cpu"), None)
    objective = build_objective(transfer.encoder, config, targets, None)
    return objective, objective.value_and_grad(x)


def test_all_ones_mask_gives_todays_loss_and_gradient_exactly(images) -> None:  # noqa: ANN001
    layers = dict(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1", "relu3_1", "relu5_1"))
    plain = make_tiny_config(**layers)
    masked = make_tiny_config(regions=["white=1"], **layers)
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    _, (terms_a, grad_a) = _objective_value_and_grad(plain, load_inputs(plain, images.content, [images.style]), x)
    inputs = load_inputs(masked, images.content, [images.style], mask=torch.ones(1, 3, 48, 64))
    objective, (terms_b, grad_b) = _objective_value_and_grad(masked, inputs, x)
    assert any(isinstance(t, GuidedStyleTerm) for t in objective.terms)
    assert terms_a.names == terms_b.names
    assert torch.equal(terms_a.values, terms_b.values)
    assert torch.equal(grad_a, grad_b)


def test_photo_region_gets_no_style_gradient_inside(images) -> None:  # noqa: ANN001
    cfg = make_tiny_config(regions=["red=1", "white=photo"], content_weight=0.0, tv_weight=0.0, style_layers=("relu1_1",))
    mask = _mask(48, 64, ((255, 0, 0), slice(0, 32)))
    inputs = load_inputs(cfg, images.content, [images.style], mask=mask)
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(2))
    _, (terms, grad) = _objective_value_and_grad(cfg, inputs, x)
    assert terms.as_dict()["style"] > 0
    # relu1_1 sees a 3x3 neighbourhood: beyond one pixel of the border the photo half gets nothing.
    assert grad[..., 18:].abs().max() == 0 and grad[..., :15].abs().max() > 0


def test_small_region_is_skipped_at_deep_layers_with_a_note(images) -> None:  # noqa: ANN001
    cfg = make_tiny_config(regions=["red=1", "white=2"], style_layers=("relu1_1", "relu5_1"))
    mask = _mask(48, 64, ((255, 0, 0), slice(0, 3)))
    inputs = load_inputs(cfg, images.content, [images.style, images.style2], mask=mask)
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        objective, (terms, grad) = _objective_value_and_grad(cfg, inputs, x)
    assert any("region red" in str(w.message) and "relu5_1" in str(w.message) for w in caught)
    (term,) = [t for t in objective.terms if isinstance(t, GuidedStyleTerm)]
    assert [r.label for r in term.targets["relu1_1"]] == ["red", "white"]
    assert [r.label for r in term.targets["relu5_1"]] == ["white"]
    assert torch.isfinite(terms.values).all() and torch.isfinite(grad).all()


def test_blend_and_style_masks_in_a_region(images) -> None:  # noqa: ANN001
    cfg = make_tiny_config(regions=["red=1+2", "white=2"], style_layers=("relu1_1",), style_blend=(1.0, 3.0))
    mask = _mask(48, 64, ((255, 0, 0), slice(0, 32)))
    inputs = load_inputs(cfg, images.content, [images.style, images.style2], mask=mask)
    transfer = make_tiny_transfer(cfg)
    targets = build_targets(transfer.encoder, cfg, inputs, 32, (24, 32), torch.device("cpu"), None)
    small = [resize(s, (32, 32)) for s in (images.style_t, images.style2_t)]
    grams = [gram_matrix(transfer.encoder(s)["relu1_1"]) for s in small]
    red, white = targets.guided["relu1_1"]
    assert torch.allclose(red.gram, 0.25 * grams[0] + 0.75 * grams[1], rtol=1e-5)
    assert torch.allclose(white.gram, grams[1], rtol=1e-5)
    # A style mask: the style of style 1 taken from its left half only.
    left = torch.zeros(1, 3, 48, 48)
    left[..., :24] = 1.0
    inputs = load_inputs(cfg, images.content, [images.style, images.style2], mask=mask, style_masks=[left, None])
    targets = build_targets(transfer.encoder, cfg, inputs, 32, (24, 32), torch.device("cpu"), None)
    feats = transfer.encoder(small[0])["relu1_1"]
    g = torch.nn.functional.interpolate(left[:, :1], size=(32, 32), mode="bilinear", antialias=True)
    assert g[..., :15].min() == 1 and g[..., 17:].max() == 0
    expected = 0.25 * guided_gram(feats, g) + 0.75 * grams[1]
    assert torch.allclose(targets.guided["relu1_1"][0].gram, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        dict(optimizer="lbfgs", multiscale=True, min_size=16, size=32, level_iterations=(2, 2)),
        dict(optimizer="adam"),
        dict(optimizer="sgd"),
        dict(original_colors="luminance", mask_propagation="inside"),
        dict(original_colors="histogram"),
    ],
)
def test_runs_compose_with_the_mask(images, options, single_thread) -> None:  # noqa: ANN001
    cfg = make_tiny_config(regions=["red=1", "blue=2", "white=photo"], **options)
    mask = _mask(24, 32, ((255, 0, 0), slice(0, 12)), ((0, 0, 255), slice(12, 24)))
    inputs = load_inputs(cfg, images.content, [images.style, images.style2], mask=mask)
    out = make_tiny_transfer(cfg).run(inputs)
    assert torch.isfinite(out).all() and out.shape[-1] == 32


def test_checkpoint_keeps_the_mask_and_resumes_identically(images, single_thread) -> None:  # noqa: ANN001
    cfg = make_tiny_config(regions=["red=1", "white=2"], iterations=4)
    mask = _mask(48, 64, ((255, 0, 0), slice(0, 20)))
    inputs = load_inputs(cfg, images.content, [images.style, images.style2], mask=mask)
    whole = Run(make_tiny_transfer(cfg), inputs)
    for _ in range(4):
        whole.step()
    first = Run(make_tiny_transfer(cfg), inputs)
    first.step(), first.step()
    data = first.state_dict()
    assert torch.equal(data["mask"], mask)
    resumed = Run.from_state_dict(make_tiny_transfer(Config.from_mapping(data["config"])), data)
    assert torch.equal(resumed.inputs.region_weights, inputs.region_weights)
    resumed.step(), resumed.step()
    assert torch.equal(resumed.result(), whole.result())


def test_bad_mask_inputs_are_one_clear_error(images, tmp_path) -> None:  # noqa: ANN001
    cfg = make_tiny_config(regions=["red=1"])
    red = _mask(48, 64, ((255, 0, 0), slice(0, 64)))
    with pytest.raises(ConfigError, match="no mask was given"):
        load_inputs(cfg, images.content, [images.style])
    with pytest.raises(ConfigError, match=r"give regions for the mask's colours \(red, white\)"):
        load_inputs(make_tiny_config(), images.content, [images.style], mask=_mask(48, 64, ((255, 0, 0), slice(0, 40))))
    with pytest.raises(ConfigError, match="no style image 2"):
        load_inputs(make_tiny_config(regions=["red=2"]), images.content, [images.style], mask=red)
    with pytest.raises(ConfigError, match="aspect ratios differ"):
        load_inputs(cfg, images.content, [images.style], mask=torch.ones(1, 3, 48, 48))
    with pytest.raises(ConfigError, match="not assigned.*white"):
        load_inputs(cfg, images.content, [images.style], mask=_mask(48, 64, ((255, 0, 0), slice(0, 40))))
    broken = tmp_path / "mask.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ImageError, match="mask.png"):
        load_inputs(cfg, images.content, [images.style], mask=broken)


def test_two_regions_take_the_colours_of_their_own_styles(images, single_thread) -> None:  # noqa: ANN001
    """Left half red → a red-orange striped painting, right half blue → a blue checked one: after a short
    run each half's mean colour is nearer its own style's than the other's."""
    from conftest import _checks_array, _stripes_array, _to_tensor

    warm = _to_tensor(_stripes_array(colors=((0.9, 0.2, 0.1), (0.6, 0.1, 0.0))))
    cool = _to_tensor(_checks_array())
    cool = torch.stack([0.1 + 0 * cool[:, 0], 0.3 + 0.3 * cool[:, 1], 0.9 + 0 * cool[:, 2]], 1)
    mask = _mask(48, 64, ((255, 0, 0), slice(0, 32)), ((0, 0, 255), slice(32, 64)))
    cfg = make_tiny_config(
        regions=["red=1", "blue=2"], size=48, iterations=40, content_weight=0.01, tv_weight=0.0,
        style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu3_1",), init_colors="own",
    )  # fmt: skip
    out = make_tiny_transfer(cfg).run(load_inputs(cfg, images.content, [warm, cool], mask=mask))
    left, right = out[..., :20].mean((0, 2, 3)), out[..., 28:].mean((0, 2, 3))
    start_left, start_right = images.content_t[..., :26].mean((0, 2, 3)), images.content_t[..., 38:].mean((0, 2, 3))
    w, c = warm.mean((0, 2, 3)), cool.mean((0, 2, 3))
    assert (left - w).norm() < (left - c).norm() and (right - c).norm() < (right - w).norm()
    # ... and each half moved towards its style from where it started (the content).
    assert (left - w).norm() < (start_left - w).norm() and (right - c).norm() < (start_right - c).norm()


def test_photo_regions_start_in_the_photos_own_colours(images) -> None:  # noqa: ANN001
    """init_colors=style recolours the start to the painting's palette, except where the photo is kept."""
    from painterly.engine.pyramid import starting_image

    cfg = make_tiny_config(regions=["red=1", "white=photo"])
    inputs = load_inputs(cfg, images.content, [images.style], mask=_mask(48, 64, ((255, 0, 0), slice(0, 32))))
    start = starting_image(cfg, inputs, (48, 64))
    assert torch.equal(start[..., 32:], images.content_t[..., 32:])
    assert (start[..., :32] - images.content_t[..., :32]).abs().mean() > 0.05


@pytest.mark.parametrize("tile", [0, 32])
def test_a_photo_region_is_the_photo_at_the_end_of_a_run(images, single_thread, tile) -> None:  # noqa: ANN001
    """Only the content loss acts on a photo region, and it holds features, not pixels: the neighbouring
    style used to reach deep into it (docs/quality.md, 40/255 off the photo near the border at 256 px).
    Now the run evaluates and shows the photo there: the result is the photo wherever the mask is
    (evaluated whole or by tiles)."""
    cfg = make_tiny_config(
        regions=["red=1", "white=photo"], size=48, iterations=12, multiscale=True, min_size=24,
        style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu3_1",), style_weight=1e4, tile=tile,
    )  # fmt: skip
    mask = _mask(48, 64, ((255, 0, 0), slice(0, 32)))
    inputs = load_inputs(cfg, images.content, [images.style], mask=mask)
    out = make_tiny_transfer(cfg).run(inputs)
    hw = tuple(out.shape[-2:])
    photo = resize(images.content_t, hw).clamp(0, 1)
    share = resize_weights(inputs.region_weights, hw)[1:2]  # the white (photo) region's share
    kept = (share == 1).expand_as(out)
    assert kept[..., -4:].all()  # the photo half, away from the feathered border
    assert torch.equal(out[kept], photo[kept])
    # ... while the painted half is painted.
    assert (out[..., :16] - photo[..., :16]).abs().mean() > 0.05


def test_keep_photo_evaluation_is_the_chain_rule(images) -> None:  # noqa: ANN001
    """With a feathered mask the evaluation of the kept image has the gradient of the loss of
    ``keep_photo(x)`` with respect to ``x`` (float64), and a pixel wholly the photo's gets none."""
    from painterly.engine.regions import keep_photo, keep_photo_evaluation

    cfg = make_tiny_config(regions=["red=1", "white=photo"])
    mask = _mask(48, 64, ((255, 0, 0), slice(0, 32)))
    mask = torch.nn.functional.avg_pool2d(mask, 9, stride=1, padding=4, count_include_pad=False)  # feathered
    inputs = load_inputs(cfg, images.content, [images.style], mask=mask)
    hw = (24, 32)
    c = torch.linspace(0.5, 3.0, 3 * 24 * 32, dtype=torch.float64).reshape(1, 3, 24, 32)

    def loss(y: torch.Tensor) -> torch.Tensor:
        return (c * y).sin().sum()

    def evaluation(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = y.detach().requires_grad_(True)
        total = loss(y)
        return total.detach(), torch.autograd.grad(total, y)[0], total.detach()

    x = torch.rand(1, 3, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(4), requires_grad=True)
    total, grad, _ = keep_photo_evaluation(evaluation, inputs, hw, torch.device("cpu"))(x.detach())
    expected = torch.autograd.grad(loss(keep_photo(inputs, x)), x)[0]
    assert torch.allclose(total, loss(keep_photo(inputs, x)).detach(), rtol=1e-12)
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-12)
    share = resize_weights(inputs.region_weights, hw)[1:2]
    assert ((share > 0) & (share < 1)).any()  # the feathered edge is in the test
    assert grad[(share == 1).expand_as(grad)].abs().max() == 0
    assert torch.equal(keep_photo(inputs, x)[(share == 1).expand_as(x)], resize(images.content_t, hw).double()[(share == 1).expand_as(x)])
