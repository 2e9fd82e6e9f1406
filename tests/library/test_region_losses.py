"""Regions (issue 15) with the style losses beyond the Gram matrix (issue 18): w2, sliced, histogram.

Float64 on the tiny random encoder: an all-ones mask is the unmasked loss and gradient; a hard region's
loss is the unmasked loss of its own positions and nothing outside moves it; soft weights are
continuous; gradcheck of the guided W2; the engine with masks, blends, photo regions and multi-scale.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from painterly.encoder import VGG19Encoder, random_state
from painterly.engine import build_objective, build_targets, load_inputs
from painterly.engine.guided import StyleFeatures, StyleRegion
from painterly.engine.objective import Objective
from painterly.engine.region_terms import GuidedHistogramTerm, GuidedSlicedTerm, GuidedW2Term, region_style_targets
from painterly.engine.style_terms import HistogramTerm, SlicedStyleTerm, W2StyleTerm, style_targets
from painterly.losses import (
    channel_quantiles,
    feature_moments,
    gaussian_target,
    guided_moments,
    histogram_loss,
    random_directions,
    resample_quantiles,
    sliced_wasserstein_loss,
    sorted_projections,
    w2_from_moments,
    w2_loss,
    weighted_quantiles,
    weighted_sorted_loss,
)
from painterly.masks import layer_guides

from conftest import make_tiny_config, make_tiny_transfer

KINDS = ("w2", "sliced", "histogram")
LAYERS = ("relu1_1", "relu2_1", "relu3_1")
HW = (20, 28)
WEIGHTS = dict(zip(LAYERS, (0.5, 2.0, 1.0)))


def _encoder() -> VGG19Encoder:
    return VGG19Encoder(random_state(), "caffe", LAYERS, "max").double()


def _styles(enc: VGG19Encoder, n: int = 2) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        return [enc(torch.rand(1, 3, 24, 24 + 4 * i, generator=gen, dtype=torch.float64)) for i in range(n)]


def _image(seed: int = 2) -> torch.Tensor:
    return torch.rand(1, 3, *HW, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _plain_term(kind: str, styles, shares):
    t = style_targets(kind, [(w, {n: s[n] for n in LAYERS}) for w, s in zip(shares, styles)], HW)
    if kind == "w2":
        return W2StyleTerm(t.gaussians, WEIGHTS, 10.0)
    if kind == "sliced":
        return SlicedStyleTerm(t.samples, HW, WEIGHTS, 10.0, torch.device("cpu"))
    return HistogramTerm(t.histograms, WEIGHTS, 10.0)


def _region_term(kind: str, styles, regions, style_guides=None):
    encoded = [StyleFeatures({n: s[n] for n in LAYERS}, None if style_guides is None else style_guides[i]) for i, s in enumerate(styles)]
    return region_style_targets(kind, regions, encoded, LAYERS, HW).term(WEIGHTS, 10.0)


def _value_and_grad(term, x: torch.Tensor, seed_iteration=(3, 4)) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(term, "redraw"):
        term.redraw(*seed_iteration)
    obj = Objective(_encoder(), [term])
    terms, grad = obj.value_and_grad(x)
    return terms.as_dict()[term.name], grad


@pytest.mark.parametrize("kind", KINDS)
def test_all_ones_mask_is_the_unmasked_loss_and_gradient(kind: str) -> None:
    enc = _encoder()
    styles = _styles(enc)
    shares = (0.25, 0.75)  # a blend of two styles in the one region
    ones = layer_guides(torch.ones(1, 1, *HW, dtype=torch.float64), LAYERS)
    region = StyleRegion("white", 1.0, ((0.25, 0), (0.75, 1)), ones)
    plain, masked = _plain_term(kind, styles, shares), _region_term(kind, styles, [region])
    assert isinstance(masked, {"w2": GuidedW2Term, "sliced": GuidedSlicedTerm, "histogram": GuidedHistogramTerm}[kind])
    for seed_iteration in ((0, 0), (3, 4)):  # the sliced term's directions: the same draws as without a mask
        (a, ga), (b, gb) = _value_and_grad(plain, _image(), seed_iteration), _value_and_grad(masked, _image(), seed_iteration)
        assert a > 0
        assert b == pytest.approx(a, rel=1e-12, abs=0)
        torch.testing.assert_close(gb, ga, rtol=1e-10, atol=1e-12 * float(ga.abs().max()))


@pytest.mark.parametrize("kind", KINDS)
def test_all_ones_mask_through_the_engine_is_todays_run(kind: str, images) -> None:  # noqa: ANN001
    layers = dict(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1", "relu3_1", "relu5_1"), style_loss=kind)
    plain, masked = make_tiny_config(**layers), make_tiny_config(regions=["white=1"], **layers)
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    out = []
    for cfg, extra in ((plain, {}), (masked, dict(mask=torch.ones(1, 3, 48, 64)))):
        inputs = load_inputs(cfg, images.content, [images.style], **extra)
        enc = make_tiny_transfer(cfg).encoder
        obj = build_objective(enc, cfg, build_targets(enc, cfg, inputs, 32, (24, 32), torch.device("cpu"), None), None)
        out.append(obj.value_and_grad(x))
    (a, ga), (b, gb) = out
    assert a.names == b.names
    # fp32 here (the float64 equivalence is above): the same up to the order of a sum.
    torch.testing.assert_close(b.values, a.values, rtol=1e-6, atol=0)
    torch.testing.assert_close(gb, ga, rtol=1e-5, atol=1e-6 * float(ga.abs().max()))


def _halves() -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    left = torch.zeros(1, 1, *HW, dtype=torch.float64)
    left[..., : HW[1] // 2] = 1.0
    return left, layer_guides(left, LAYERS), layer_guides(1 - left, LAYERS)


@pytest.mark.parametrize("kind", KINDS)
def test_each_hard_region_depends_only_on_its_own_features(kind: str) -> None:
    """Two regions, two styles: the gradient of each region's loss with respect to the features is zero
    outside it, and the two-region loss is the sum of the regions' own losses."""
    enc = _encoder()
    styles = _styles(enc)
    _, gl, gr = _halves()
    red, blue = StyleRegion("red", 1.0, ((1.0, 0),), gl), StyleRegion("blue", 2.0, ((1.0, 1),), gr)
    with torch.no_grad():
        feats = {n: f.clone().requires_grad_(True) for n, f in enc(_image()).items()}
    both = _region_term(kind, styles, [red, blue])
    parts = []
    for region, guides in ((red, gl), (blue, gr)):
        term = _region_term(kind, styles, [region])
        for t in (term, both):
            if hasattr(t, "redraw"):
                t.redraw(1, 2)
        value = term(_image(), feats)
        grads = torch.autograd.grad(value, [feats[n] for n in term.layers])
        for n, g in zip(term.layers, grads):
            outside = (guides[n] == 0).expand_as(g)
            assert g[outside].abs().max() == 0 and g[~outside].abs().max() > 0
        parts.append(float(value.detach()))
    assert float(both(_image(), feats)) == pytest.approx(sum(parts), rel=1e-12)


def test_a_hard_region_is_the_unmasked_loss_of_its_own_positions() -> None:
    """Area normalisation: a region's statistics are those of its positions alone, whatever its size."""
    gen = torch.Generator().manual_seed(7)
    f = torch.rand(1, 5, 6, 10, generator=gen, dtype=torch.float64)
    guide = torch.zeros(1, 1, 6, 10, dtype=torch.float64)
    guide[..., 3:7] = 1.0
    crop = f[..., 3:7]
    target = gaussian_target(*feature_moments(torch.rand(1, 5, 4, 4, generator=gen, dtype=torch.float64)))
    mean, cov = guided_moments(f, guide)
    assert w2_from_moments(mean, cov, target) == pytest.approx(float(w2_loss(crop, target)), rel=1e-12)
    index = torch.nonzero(guide.flatten() > 0).flatten()
    values = f.flatten(2)[0][:, index]
    d = random_directions(5, 3, torch.Generator().manual_seed(1), torch.float64)
    q = resample_quantiles(sorted_projections(torch.rand(1, 5, 7, 7, generator=gen, dtype=torch.float64), d)[0], 24)
    ones = torch.ones(24, dtype=torch.float64)
    assert float(weighted_sorted_loss(d.t() @ values, ones, q)) == pytest.approx(float(sliced_wasserstein_loss(crop, d, q)), rel=1e-12)
    hq = channel_quantiles(torch.rand(1, 5, 5, 5, generator=gen, dtype=torch.float64), 24)[0]
    assert float(weighted_sorted_loss(values, ones, hq)) == pytest.approx(float(histogram_loss(crop, hq)), rel=1e-12)


def test_soft_weights_are_continuous_and_weighted_quantiles_select() -> None:
    gen = torch.Generator().manual_seed(8)
    v = torch.rand(3, 12, generator=gen, dtype=torch.float64)
    target = torch.rand(3, 9, generator=gen, dtype=torch.float64).sort(-1).values
    w = torch.rand(12, generator=gen, dtype=torch.float64) + 0.1
    fading = w.clone()
    fading[4] = 1e-12  # a position at the very edge of a soft region counts (almost) nothing
    dropped = torch.cat([torch.arange(4), torch.arange(5, 12)])
    assert float(weighted_sorted_loss(v, fading, target)) == pytest.approx(
        float(weighted_sorted_loss(v[:, dropped], w[dropped], target)), rel=1e-9
    )
    # Zero weights select: the weighted quantiles of a 0/1 weighting are those of the selected samples.
    hard = (torch.arange(12) % 3 != 0).double()
    chosen = torch.nonzero(hard).flatten()
    torch.testing.assert_close(weighted_quantiles(v, hard, 8), resample_quantiles(v[:, chosen].sort(-1).values, 8), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weighted_quantiles(v, torch.ones(12, dtype=torch.float64), 12), v.sort(-1).values, rtol=1e-12, atol=1e-12)


def test_guided_w2_and_weighted_sorts_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(9)
    f = torch.rand(1, 4, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    guide = torch.rand(1, 1, 5, 6, generator=gen, dtype=torch.float64)  # a soft region
    target = gaussian_target(*feature_moments(torch.rand(1, 4, 6, 6, generator=gen, dtype=torch.float64) * 2))
    assert torch.autograd.gradcheck(lambda x: w2_from_moments(*guided_moments(x, guide), target), (f,))
    v = torch.rand(3, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    q = torch.rand(3, 7, generator=gen, dtype=torch.float64).sort(-1).values
    w = guide.flatten()[:10]
    assert torch.autograd.gradcheck(lambda x: weighted_sorted_loss(x, w, q), (v,))


@pytest.mark.parametrize("kind", KINDS)
def test_a_style_mask_takes_the_style_from_its_positions_only(kind: str) -> None:
    """A style's own mask: the region's target is that of the style's masked positions."""
    enc = _encoder()
    (style,) = _styles(enc, 1)
    ones = layer_guides(torch.ones(1, 1, *HW, dtype=torch.float64), LAYERS)
    region = StyleRegion("white", 1.0, ((1.0, 0),), ones)
    top = torch.zeros(1, 1, 24, 24, dtype=torch.float64)
    top[..., :12, :] = 1.0
    masked = _region_term(kind, [style], [region], [layer_guides(top, LAYERS)])
    cropped = _region_term(kind, [{n: f[..., : f.shape[-2] // 2, :] for n, f in style.items()}], [region])
    (a, _), (b, _) = _value_and_grad(masked, _image()), _value_and_grad(cropped, _image())
    assert a == pytest.approx(b, rel=1e-6)  # the sliced term's samples are fp32, as without a mask


@pytest.mark.parametrize("kind", KINDS)
def test_photo_region_gets_no_style_gradient_and_small_regions_are_skipped(kind: str, images) -> None:  # noqa: ANN001
    cfg = make_tiny_config(regions=["red=1", "white=photo"], content_weight=0.0, tv_weight=0.0, style_layers=("relu1_1",), style_loss=kind)
    mask = torch.ones(1, 3, 48, 64)
    mask[:, 1:, :, :32] = 0.0  # red on the left half, white (the photo) on the right
    inputs = load_inputs(cfg, images.content, [images.style], mask=mask)
    enc = make_tiny_transfer(cfg).encoder
    obj = build_objective(enc, cfg, build_targets(enc, cfg, inputs, 32, (24, 32), torch.device("cpu"), None), None)
    terms, grad = obj.value_and_grad(torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(2)))
    assert terms.as_dict()["histogram" if kind == "histogram" else "style"] > 0
    # relu1_1 sees a 3x3 neighbourhood: beyond one pixel of the border the photo half gets nothing.
    assert grad[..., 18:].abs().max() == 0 and grad[..., :15].abs().max() > 0
    # A three-pixel strip: too small at relu5_1 (2x1 positions at 32 px), skipped there with a note.
    cfg = make_tiny_config(regions=["red=1", "white=2"], style_layers=("relu1_1", "relu5_1"), style_loss=kind)
    strip = torch.ones(1, 3, 48, 64)
    strip[:, 1:, :, :3] = 0.0
    inputs = load_inputs(cfg, images.content, [images.style, images.style2], mask=strip)
    enc = make_tiny_transfer(cfg).encoder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        targets = build_targets(enc, cfg, inputs, 32, (24, 32), torch.device("cpu"), None)
    notes = [str(w.message) for w in caught if "region red" in str(w.message)]
    assert len(notes) == 1 and "relu5_1" in notes[0]
    labels = {n: [r.label for r in v] for n, v in targets.region_style.targets.items()}
    assert labels["relu1_1"] == ["red", "white"] and labels.get("relu5_1", ["white"]) == ["white"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_masked_multiscale_run_with_a_blend_lowers_the_loss(kind: str, images, tiny_transfer, single_thread) -> None:  # noqa: ANN001
    cfg = make_tiny_config(regions=["red=1+2", "white=2:3"], style_blend=(1.0, 3.0), style_loss=kind,
                           multiscale=True, min_size=16, size=32, level_iterations=(3, 3))  # fmt: skip
    mask = torch.ones(1, 3, 48, 64)
    mask[:, 1:, :, :20] = 0.0
    run = tiny_transfer(cfg).start(load_inputs(cfg, images.content_t, [images.style_t, images.style2_t], mask=mask))
    progress = list(run)
    assert len(progress) == 6 and all(torch.isfinite(torch.tensor(p.losses["total"])) for p in progress)
    assert progress[2].losses["total"] < progress[0].losses["total"]
