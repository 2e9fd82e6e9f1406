"""The optimisation engine (painterly.engine) on a tiny random encoder at 32-48 px.

These tests are about the machinery — optimisers, inits, modes, colours, seeds, progress, stopping,
checkpoints, NaN recovery — not about how good the pictures look (see test_real_weights.py).
"""

from __future__ import annotations

import io
import math
import threading

import pytest
import torch
from torch import nn

from painterly import color
from painterly.engine import MAX_RECOVERIES, MIN_SIDE, LOSS_TERMS, Progress, Run, StyleTransfer
from painterly.errors import ConfigError, DivergenceError

pytestmark = pytest.mark.usefixtures("single_thread")

# The tiny random encoder sees images in Caffe's 0-255 range without VGG's trained scale, so its
# losses are ~1e7 with very sharp curvature; SGD's step is lr × pixel count × gradient, stable below
# lr ~5e-10 at 32 px here.
TINY_SGD_LR = 1e-10


def run_all(run: Run) -> list[Progress]:
    return list(run)


def finish(transfer: StyleTransfer, content, styles, **kwargs) -> tuple[list[Progress], torch.Tensor]:
    run = transfer.start(content, styles, **kwargs)
    progress = run_all(run)
    return progress, run.result()


# --- optimisers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer, lr", [("lbfgs", None), ("adam", None), ("sgd", TINY_SGD_LR)])
def test_loss_decreases(optimizer, lr, images, tiny_config, tiny_transfer):
    cfg = tiny_config(optimizer=optimizer, learning_rate=lr, iterations=6)
    progress, result = finish(tiny_transfer(cfg), images.content_t, [images.style_t])
    losses = [p.loss for p in progress]
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses
    if optimizer == "lbfgs":  # the line search never accepts an increase
        assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert result.shape == (1, 3, 24, 32)
    assert result.dtype == torch.float32 and result.device.type == "cpu"
    assert 0.0 <= result.min().item() and result.max().item() <= 1.0


@pytest.mark.parametrize("optimizer, lr", [("lbfgs", None), ("adam", None), ("sgd", TINY_SGD_LR)])
def test_an_iteration_reads_the_device_once_per_evaluation(optimizer, lr, monkeypatch, images, tiny_config, tiny_transfer):
    """The GPU issue's rule: progress costs no device→host read of its own. Every tensor→Python
    conversion is counted by wrapping it on torch.Tensor; after a level's first iteration (which
    evaluates the start and builds the targets), a step converts exactly once per evaluation."""
    cfg = tiny_config(optimizer=optimizer, learning_rate=lr, iterations=8, multiscale=False)
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    assert run.step() is not None
    # torch.optim keeps Adam's/SGD's step counter as a host tensor on every device (not capturable):
    # reading it is no device transfer.
    torch_optimizer = getattr(run.work.optimizer, "torch_optimizer", None)
    host_counters = [st["step"] for st in torch_optimizer.state.values() if "step" in st] if torch_optimizer else []
    conversions = {"n": 0}
    for name in ("tolist", "item", "__float__", "__int__", "__bool__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            if not any(self is step for step in host_counters):
                conversions["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    steps = 0
    while (before := (conversions["n"], run.evaluations)) and run.step() is not None:
        steps += 1
        assert conversions["n"] - before[0] == run.evaluations - before[1], (steps, conversions, run.evaluations)
    assert steps == 7


def test_lbfgs_gets_a_preconditioner_for_each_level_unless_turned_off(images, tiny_config, tiny_transfer):
    cfg = tiny_config(multiscale=True, size=64, min_size=32, level_iterations=(1, 1))
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    for _ in run:
        # Built for the level's own image shape: it maps a flat image of that size to one of the same.
        flat = torch.ones(run.work.x.numel())
        smoothed = run.work.optimizer.lbfgs.precondition(flat)
        assert smoothed.shape == flat.shape and smoothed.max() > 1.5  # a smooth field is amplified
    plain = tiny_transfer(tiny_config(lbfgs_precondition=0.0)).start(images.content_t, [images.style_t])
    next(iter(plain))
    assert plain.work.optimizer.lbfgs.precondition is None


def test_reconstruct_mode_runs_plain_lbfgs(tiny_config):
    assert tiny_config("reconstruct").lbfgs_precondition == 0.0
    assert tiny_config("reconstruct", lbfgs_precondition=1.0).lbfgs_precondition == 1.0


def test_first_order_optimisers_keep_pixels_in_range(images, tiny_config, tiny_transfer):
    cfg = tiny_config(optimizer="adam", learning_rate=0.5, iterations=3)
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    for _ in run:
        assert run.work.x.min().item() >= 0.0 and run.work.x.max().item() <= 1.0


def test_sgd_learning_rate_decays(images, tiny_config, tiny_transfer):
    cfg = tiny_config(optimizer="sgd", learning_rate=TINY_SGD_LR, lr_decay=0.5, lr_decay_steps=1, iterations=3)
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    lrs = []
    for _ in run:
        lrs.append(run.work.optimizer.torch_optimizer.param_groups[0]["lr"])
    pixels = 24 * 32  # the step is scaled by the pixel count (the losses are means)
    assert lrs == pytest.approx([TINY_SGD_LR * pixels, TINY_SGD_LR * pixels / 2, TINY_SGD_LR * pixels / 4])


def test_loss_terms_are_weighted_and_sum_to_total(images, tiny_config, tiny_transfer):
    cfg = tiny_config(iterations=2, content_weight=3.0, style_weight=2.0, tv_weight=10.0)
    for p in tiny_transfer(cfg).start(images.content_t, [images.style_t]):
        assert set(p.losses) == set(LOSS_TERMS)
        assert p.losses["total"] == pytest.approx(p.losses["content"] + p.losses["style"] + p.losses["tv"], rel=1e-5)
        assert p.loss == p.losses["total"]
        assert all(v > 0 for v in p.losses.values())


@pytest.mark.parametrize(
    "options",
    [{"content_loss": "cosine"}, {"pooling": "avg"}, {"precision": "bf16"}, {"tv_weight": 0.0}, {"init": "style", "style_scale": 0.75}],
    ids=["cosine", "avg-pool", "bf16", "no-tv", "style-init"],
)
def test_option_variants_run_and_lower_the_loss(options, images, tiny_config, tiny_transfer):
    progress, result = finish(tiny_transfer(tiny_config(iterations=4, **options)), images.content_t, [images.style_t])
    assert progress[-1].loss < progress[0].loss
    assert torch.isfinite(result).all() and result.shape == (1, 3, 24, 32)


def test_style_layer_weights_select_layers(images, tiny_config, tiny_transfer):
    only_first = tiny_config(iterations=3, style_layer_weights=(1, 0, 0, 0, 0))
    just_one = tiny_config(iterations=3, style_layers=("relu1_1",))
    p1, r1 = finish(tiny_transfer(only_first), images.content_t, [images.style_t])
    p2, r2 = finish(tiny_transfer(just_one), images.content_t, [images.style_t])
    assert [p.losses["style"] for p in p1] == pytest.approx([p.losses["style"] for p in p2], rel=1e-5)
    assert torch.allclose(r1, r2, atol=1e-5)
    # Adam reports the loss at the point it steps from: here the same starting image for both.
    doubled = tiny_transfer(tiny_config(optimizer="adam", iterations=1, style_layer_weights=(2, 2, 2, 2, 2))).start(images.content_t, [images.style_t])
    plain = tiny_transfer(tiny_config(optimizer="adam", iterations=1)).start(images.content_t, [images.style_t])
    assert doubled.step().losses["style"] == pytest.approx(2 * plain.step().losses["style"], rel=1e-5)


def test_device_argument_overrides_the_config(images, tiny_config, tiny_encoder):
    cfg = tiny_config(device="auto", iterations=1)
    transfer = StyleTransfer(cfg, encoder=tiny_encoder(cfg.layers_needed), device="cpu")
    assert transfer.device.type == "cpu"
    assert transfer.run(images.content_t, [images.style_t]).device.type == "cpu"


# --- inits --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["noise", "content", "style", "tensor"])
def test_every_init_works(init, images, tiny_config, tiny_transfer):
    init_tensor = None
    if init == "tensor":
        init_tensor = images.style2_t
        cfg = tiny_config(init="image", iterations=2, init_colors="own")
    else:
        cfg = tiny_config(init=init, iterations=2, init_colors="own")
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t], init=init_tensor)
    start = run.current()
    assert start.shape == (1, 3, 24, 32)
    if init == "noise":
        assert 0.4 < start.mean().item() < 0.6 and start.std().item() > 0.25  # uniform [0, 1]
    else:
        source = {"content": images.content_t, "style": images.style_t, "tensor": images.style2_t}[init]
        expected = torch.nn.functional.interpolate(source, size=(24, 32), mode="bicubic", antialias=True, align_corners=False)
        assert torch.allclose(start, expected.clamp(0, 1), atol=1e-5)
    progress = run_all(run)
    assert len(progress) == 2 and math.isfinite(progress[-1].loss)
    assert run.result().shape == (1, 3, 24, 32)


def _colour_stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.double().flatten(2).squeeze(0)
    return pixels.mean(1), torch.cov(pixels)


def test_init_colors_style_starts_from_the_style_palette(images, tiny_config, tiny_transfer):
    cfg = tiny_config(init="content", init_colors="style", iterations=1)
    start = tiny_transfer(cfg).start(images.content_t, [images.style_t]).current()
    own = tiny_transfer(cfg.replace(init_colors="own")).start(images.content_t, [images.style_t]).current()
    mean, cov = _colour_stats(start)
    style_mean, style_cov = _colour_stats(images.style_t)
    own_mean, own_cov = _colour_stats(own)
    # Recoloured: the style's mean and covariance (up to the clamp to [0, 1]), unlike the image as it is.
    assert torch.allclose(mean, style_mean, atol=0.03), (mean, style_mean)
    assert torch.allclose(cov, style_cov, rtol=0.2, atol=0.005), (cov, style_cov)
    assert (own_mean - style_mean).abs().max() > 0.05 or (own_cov - style_cov).abs().max() > 0.02
    # ... and still the same picture: recolouring is one affine colour map applied to every pixel
    # (exactly, but for the clamp to [0, 1]).
    x = torch.cat([own.double().flatten(2).squeeze(0).T, torch.ones(own[0, 0].numel(), 1, dtype=torch.float64)], 1)
    y = start.double().flatten(2).squeeze(0).T
    fit = torch.linalg.lstsq(x, y).solution
    assert (x @ fit - y).pow(2).mean().sqrt() < 0.03


@pytest.mark.parametrize("init", ["style", "tensor"])
def test_init_colors_leaves_a_given_start_as_it_is(init, images, tiny_config, tiny_transfer):
    init_tensor = images.content_t.flip(-1) if init == "tensor" else None
    cfg = tiny_config(init="image" if init == "tensor" else init, iterations=1)
    starts = [
        tiny_transfer(cfg.replace(init_colors=c)).start(images.content_t, [images.style_t], init=init_tensor).current()
        for c in ("style", "own")
    ]
    assert torch.equal(starts[0], starts[1])


@pytest.mark.parametrize("colors", ["luminance", "histogram"])
def test_init_colors_is_ignored_when_the_original_colours_are_kept(colors, images, tiny_config, tiny_transfer):
    cfg = tiny_config(init="content", original_colors=colors, iterations=1)
    recoloured = tiny_transfer(cfg).start(images.content_t, [images.style_t]).current()
    own = tiny_transfer(cfg.replace(init_colors="own")).start(images.content_t, [images.style_t]).current()
    assert torch.equal(recoloured, own)


def test_init_noise_blends_noise_into_the_init(images, tiny_config, tiny_transfer):
    plain = tiny_transfer(tiny_config(init="content")).start(images.content_t, [images.style_t]).current()
    noisy = tiny_transfer(tiny_config(init="content", init_noise=0.5)).start(images.content_t, [images.style_t]).current()
    diff = (noisy - plain).abs().mean().item()
    assert 0.05 < diff < 0.5


def test_init_path_without_an_init_tensor_is_an_error(images, tiny_config, tiny_transfer):
    with pytest.raises(ConfigError, match="init"):
        tiny_transfer(tiny_config(init="start.png")).start(images.content_t, [images.style_t])


# --- modes ------------------------------------------------------------------------------------------------------


def test_texture_mode_without_content(images, tiny_config, tiny_transfer):
    cfg = tiny_config("texture", iterations=5)
    assert cfg.init == "noise" and not cfg.uses_content
    progress, result = finish(tiny_transfer(cfg), None, [images.style_t])
    assert all(p.losses["content"] == 0.0 for p in progress)
    assert progress[-1].losses["style"] < progress[0].losses["style"]
    assert result.shape == (1, 3, 32, 32)  # the style's aspect (square)


def test_reconstruct_mode_without_style(images, tiny_config, tiny_transfer):
    cfg = tiny_config("reconstruct", content_layers=("relu2_1",), iterations=5)
    transfer = tiny_transfer(cfg)
    assert transfer.encoder.layers == ("relu2_1",)
    progress, result = finish(transfer, images.content_t, [])
    assert all(p.losses["style"] == 0.0 and p.losses["tv"] == 0.0 for p in progress)
    assert progress[-1].losses["content"] < 0.5 * progress[0].losses["content"]
    assert result.shape == (1, 3, 24, 32)


def test_missing_inputs_are_config_errors(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config())
    with pytest.raises(ConfigError, match="content image is needed"):
        transfer.start(None, [images.style_t])
    with pytest.raises(ConfigError, match="style image is needed"):
        transfer.start(images.content_t, [])
    with pytest.raises(ConfigError, match="style_blend has 2 values for 1"):
        tiny_transfer(tiny_config(style_blend=(1, 2))).start(images.content_t, [images.style_t])
    with pytest.raises(ConfigError, match="init content"):
        tiny_transfer(tiny_config("texture", init="content")).start(None, [images.style_t])
    with pytest.raises(ConfigError, match="original_colors"):
        tiny_transfer(tiny_config("texture", original_colors="luminance")).start(None, [images.style_t])
    with pytest.raises(ConfigError, match="shape"):
        transfer.start(images.content_t[:, :1], [images.style_t])
    with pytest.raises(ConfigError, match="float"):
        transfer.start((images.content_t * 255).to(torch.uint8), [images.style_t])


def test_an_encoder_without_the_needed_layers_is_refused(tiny_encoder, tiny_config):
    with pytest.raises(ConfigError, match="relu4_2"):
        StyleTransfer(tiny_config(), encoder=tiny_encoder(["relu1_1", "relu2_1"]))


def test_three_dimensional_images_are_accepted(images, tiny_config, tiny_transfer):
    run = tiny_transfer(tiny_config(iterations=1)).start(images.content_t[0], [images.style_t[0]])
    run_all(run)
    assert run.result().shape == (1, 3, 24, 32)


def test_tiny_images_are_not_made_smaller_than_the_network_allows(images, tiny_config, tiny_transfer):
    wide = torch.rand(1, 3, 10, 200)
    run = tiny_transfer(tiny_config(size=64, iterations=1)).start(wide, [images.style_t])
    run_all(run)
    assert run.result().shape == (1, 3, MIN_SIDE, 64)


# --- styles -------------------------------------------------------------------------------------------------------


def _gram_targets(transfer, content, styles):
    run = transfer.start(content, styles)
    run.step()  # the first level's targets are computed as it starts
    return run.work.targets.grams


def test_style_blend_one_zero_equals_the_single_style(images, tiny_config, tiny_transfer):
    single = tiny_config(iterations=3)
    blended = tiny_config(iterations=3, style_blend=(1, 0))
    _, result_single = finish(tiny_transfer(single), images.content_t, [images.style_t])
    _, result_blend = finish(tiny_transfer(blended), images.content_t, [images.style_t, images.style2_t])
    assert torch.equal(result_single, result_blend)
    _, result_other = finish(tiny_transfer(tiny_config(iterations=3, style_blend=(0, 1))), images.content_t, [images.style_t, images.style2_t])
    _, result_2 = finish(tiny_transfer(single), images.content_t, [images.style2_t])
    assert torch.equal(result_other, result_2)
    assert not torch.equal(result_single, result_2)


def test_style_blend_is_a_normalised_weighted_sum_of_grams(images, tiny_config, tiny_transfer):
    cfg = tiny_config()
    g1 = _gram_targets(tiny_transfer(cfg), images.content_t, [images.style_t])
    g2 = _gram_targets(tiny_transfer(cfg), images.content_t, [images.style2_t])
    g_mix = _gram_targets(tiny_transfer(tiny_config(style_blend="1,3")), images.content_t, [images.style_t, images.style2_t])
    g_eq = _gram_targets(tiny_transfer(cfg), images.content_t, [images.style_t, images.style2_t])  # default: equal
    for name in cfg.style_layers:
        assert torch.allclose(g_mix[name], 0.25 * g1[name] + 0.75 * g2[name], rtol=1e-5, atol=1e-3)
        assert torch.allclose(g_eq[name], 0.5 * g1[name] + 0.5 * g2[name], rtol=1e-5, atol=1e-3)


class _Recorder:
    """Forward pre-hook recording the (H, W) and channel means of every image the encoder sees."""

    def __init__(self, module: nn.Module):
        self.shapes: list[tuple[int, int]] = []
        self.means: list[torch.Tensor] = []
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        (x,) = args
        self.shapes.append(tuple(x.shape[-2:]))
        self.means.append(x.detach().mean(dim=(0, 2, 3)).clone())


def test_style_scale_changes_the_style_target_size(images, tiny_config, tiny_transfer):
    seen = {}
    for scale in (1.0, 0.5, 1.5):
        transfer = tiny_transfer(tiny_config(size=32, style_scale=scale))
        rec = _Recorder(transfer.encoder)
        transfer.start(images.content_t, [images.style_t]).step()
        seen[scale] = rec.shapes
    # Calls while preparing a level: the content target, then the style target.
    assert [s[0] for s in seen.values()] == [(24, 32)] * 3
    assert seen[1.0][1] == (32, 32) and seen[0.5][1] == (MIN_SIDE, MIN_SIDE) and seen[1.5][1] == (48, 48)


def test_style_scale_changes_the_targets(images, tiny_config, tiny_transfer):
    a = _gram_targets(tiny_transfer(tiny_config(size=48)), images.content_t, [images.style_t])
    b = _gram_targets(tiny_transfer(tiny_config(size=48, style_scale=0.5)), images.content_t, [images.style_t])
    assert not torch.allclose(a["relu1_1"], b["relu1_1"])


# --- original colours ------------------------------------------------------------------------------------------


def test_original_colors_luminance_keeps_the_content_chroma(images, tiny_config, tiny_transfer):
    cfg = tiny_config(original_colors="luminance", iterations=4)
    progress, result = finish(tiny_transfer(cfg), images.content_t, [images.style_t])
    content = torch.nn.functional.interpolate(images.content_t, size=result.shape[-2:], mode="bilinear", align_corners=False)
    iq_result = color.rgb_to_yiq(result)[:, 1:]
    iq_content = color.rgb_to_yiq(content)[:, 1:]
    # Equal up to clamping to [0, 1] where the new luminance and the old chroma leave the RGB cube.
    assert (iq_result - iq_content).abs().mean().item() < 0.02
    # The luminance did change (the run did something).
    y_change = (color.rgb_to_yiq(result)[:, :1] - color.rgb_to_yiq(content)[:, :1]).abs().mean().item()
    assert y_change > 0.01
    # Progress images are already recoloured.
    assert progress[-1].image.shape == result.shape


def test_original_colors_luminance_runs_on_grey_images(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config(original_colors="luminance"))
    rec = _Recorder(transfer.encoder)
    run = transfer.start(images.content_t, [images.style_t])
    start = run.state.image  # the first level's starting image, as the optimiser sees it
    run.step()
    for m in rec.means[:2]:  # content and style targets: grey (R = G = B)
        assert torch.allclose(m, m.mean().expand(3), atol=1e-4)
    assert torch.allclose(start[:, 0], start[:, 1]) and torch.allclose(start[:, 1], start[:, 2])


def test_original_colors_after_is_the_plain_run_in_the_contents_colours(images, tiny_config, tiny_transfer):
    """`after` paints exactly as a plain run (same seed, same steps), then takes the content's colour
    channels: the plain run's light and dark, which carry the strokes (docs/quality.md)."""
    cfg = tiny_config(iterations=3, seed=0)
    _, plain = finish(tiny_transfer(cfg), images.content_t, [images.style_t])
    progress, after = finish(tiny_transfer(cfg.replace(original_colors="after")), images.content_t, [images.style_t])
    assert torch.equal(after, color.join_luminance(plain, images.content_t))
    assert not torch.equal(after, plain) and torch.equal(progress[-1].image, after)


def test_original_colors_histogram_recolours_the_style(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config(original_colors="histogram", iterations=2))
    rec = _Recorder(transfer.encoder)
    progress, result = finish(transfer, images.content_t, [images.style_t])
    content_mean, style_mean = rec.means[0], rec.means[1]
    # The style the network saw has (about) the content's mean colour, which the raw style has not.
    assert (style_mean - content_mean).abs().max().item() < 0.05
    assert (images.style_t.mean(dim=(0, 2, 3)) - content_mean).abs().max().item() > 0.1
    assert result.shape == (1, 3, 24, 32) and math.isfinite(progress[-1].loss)


def test_match_color_matches_mean_and_covariance():
    gen = torch.Generator().manual_seed(0)
    # Full-rank colour distributions well inside [0, 1], so that clamping plays no part.
    mix = torch.tensor([[1.0, 0.3, 0.0], [0.2, 1.0, 0.1], [0.0, 0.4, 1.0]])
    content = (0.5 + 0.08 * torch.einsum("ij,njhw->nihw", mix, torch.randn(1, 3, 20, 30, generator=gen))).clamp(0, 1)
    style = 0.3 + 0.2 * torch.rand(1, 3, 24, 24, generator=gen)

    def moments(x):
        flat = x.double().flatten(2)[0]
        return flat.mean(1), torch.cov(flat)

    out = color.match_color(style, content)
    assert out.shape == style.shape and out.dtype == style.dtype
    mo, co = moments(out)
    mc, cc = moments(content)
    assert torch.allclose(mo, mc, atol=1e-3)
    assert torch.allclose(co, cc, rtol=0.02, atol=1e-4)


# --- seeds --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer, lr", [("lbfgs", None), ("adam", None)])
def test_seed_makes_cpu_runs_bit_for_bit_reproducible(optimizer, lr, images, tiny_config, tiny_transfer):
    cfg = tiny_config(init="noise", optimizer=optimizer, learning_rate=lr, iterations=4, seed=1234)
    p1, r1 = finish(tiny_transfer(cfg), images.content_t, [images.style_t])
    p2, r2 = finish(tiny_transfer(cfg), images.content_t, [images.style_t])
    assert torch.equal(r1, r2)
    assert [p.losses for p in p1] == [p.losses for p in p2]


def test_different_seeds_differ_for_noise_init(images, tiny_config, tiny_transfer):
    _, r1 = finish(tiny_transfer(tiny_config(init="noise", iterations=2, seed=1)), images.content_t, [images.style_t])
    _, r2 = finish(tiny_transfer(tiny_config(init="noise", iterations=2, seed=2)), images.content_t, [images.style_t])
    assert not torch.allclose(r1, r2, atol=1e-3)


def test_a_seed_is_drawn_and_reported_when_none_is_given(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config(init="noise", seed=None, iterations=1))
    run = transfer.start(images.content_t, [images.style_t])
    assert isinstance(run.seed, int) and run.seed >= 0
    run_all(run)
    # Repeating with the reported seed repeats the run.
    again = tiny_transfer(tiny_config(init="noise", seed=run.seed, iterations=1)).start(images.content_t, [images.style_t])
    run_all(again)
    assert torch.equal(run.result(), again.result())


def test_drawing_a_seed_leaves_the_callers_random_generator_alone(images, tiny_config, tiny_transfer):
    """torch.seed() reseeded torch's global generator: a caller's seeded torch.rand stopped repeating."""
    transfer = tiny_transfer(tiny_config(seed=None, iterations=1))
    before = torch.get_rng_state()
    try:
        torch.manual_seed(1234)
        expected = torch.rand(4)
        torch.manual_seed(1234)
        seeds = {transfer.start(images.content_t, [images.style_t]).seed for _ in range(3)}
        assert torch.equal(torch.rand(4), expected)
    finally:
        torch.set_rng_state(before)  # other tests see the generator as they would have
    assert len(seeds) == 3 and all(0 <= s < 2**31 for s in seeds)


# --- progress ----------------------------------------------------------------------------------------------------------


def test_progress_fields_are_consistent(images, tiny_config, tiny_transfer):
    cfg = tiny_config(size=48, min_size=24, multiscale=True, level_iterations=(2, 3))
    transfer = tiny_transfer(cfg)
    seen: list[Progress] = []
    result = transfer.run(images.content_t, [images.style_t], callback=seen.append)
    assert [p.iteration for p in seen] == [1, 2, 3, 4, 5]
    assert all(p.total_iterations == 5 and p.levels == 2 for p in seen)
    assert [p.level for p in seen] == [0, 0, 1, 1, 1]
    assert [p.level_iteration for p in seen] == [1, 2, 1, 2, 3]
    assert [p.level_iterations for p in seen] == [2, 2, 3, 3, 3]
    assert [p.size for p in seen] == [(18, 24)] * 2 + [(36, 48)] * 3
    assert [p.fraction for p in seen] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    evals = [p.evaluations for p in seen]
    assert evals == sorted(evals) and evals[0] >= 1
    elapsed = [p.elapsed for p in seen]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0
    assert not any(p.recovered for p in seen)
    assert result.shape == (1, 3, 36, 48)


@pytest.mark.parametrize("original_colors", ["off", "luminance"])
def test_progress_image_is_the_current_image_in_range(original_colors, images, tiny_config, tiny_transfer):
    # Style weight up, so that an unconstrained optimiser would push pixels out of [0, 1].
    cfg = tiny_config(iterations=3, style_weight=1e4, original_colors=original_colors)
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    for p in run:
        assert p.image.shape == (1, 3, *p.size)
        assert p.image.min().item() >= 0.0 and p.image.max().item() <= 1.0
        assert torch.equal(p.image, run.current())
    if original_colors == "off":
        # L-BFGS is bounded to the displayable range: the iterate itself never leaves [0, 1].
        assert 0.0 <= run.work.x.min().item() and run.work.x.max().item() <= 1.0


@pytest.mark.parametrize("keep_detail", [True, False])
def test_a_level_starts_from_the_coarser_result_upsampled(keep_detail, images, tiny_config, tiny_transfer):
    cfg = tiny_config(size=48, min_size=24, multiscale=True, level_iterations=(2, 1), init_colors="own", keep_detail=keep_detail)
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    run.step(), run.step()
    coarse = run.state.image.clone()  # the first level's result, which the next level upsamples
    assert coarse.shape[-2:] == (18, 24) and not run.state.level_ready
    up = lambda t, hw: torch.nn.functional.interpolate(t, size=hw, mode="bicubic", align_corners=False).clamp(0, 1)  # noqa: E731
    down = lambda t, hw: torch.nn.functional.interpolate(  # noqa: E731
        t, size=hw, mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 1)
    expected = up(coarse, (36, 48))
    if keep_detail:
        # The start's detail band (what the 18x24 level could not hold) is added back.
        fine = down(images.content_t, (36, 48))
        expected = (expected + fine - up(down(fine, (18, 24)), (36, 48))).clamp(0, 1)
    assert torch.allclose(run.current(), expected, atol=1e-5)  # the next level's start


def test_keep_detail_needs_a_starting_image(images, tiny_config, tiny_transfer):
    # From noise there is no detail to keep: the level starts from the coarser result alone.
    cfg = tiny_config(size=48, min_size=24, multiscale=True, level_iterations=(1, 1), init="noise", seed=3)
    runs = [tiny_transfer(cfg.replace(keep_detail=k)).start(images.content_t, [images.style_t]) for k in (True, False)]
    for run in runs:
        run.step()
    assert torch.equal(runs[0].current(), runs[1].current())  # the next level's start


def test_run_properties_track_the_run(images, tiny_config, tiny_transfer):
    cfg = tiny_config(size=32, min_size=16, multiscale=True, level_iterations=(1, 2))
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    assert run.total_iterations == 3 and not run.done and run.level.size == 16
    run.step()
    assert run.level.size == 32 and run.iteration == 1
    run.step(), run.step()
    assert run.done and run.step() is None


# --- stopping -----------------------------------------------------------------------------------------------------------


def test_stop_from_the_callback_ends_the_run_early(images, tiny_config, tiny_transfer):
    run = tiny_transfer(tiny_config(iterations=10)).start(images.content_t, [images.style_t])
    seen = []
    for p in run:
        seen.append(p.iteration)
        if p.iteration == 3:
            run.stop()
    assert seen == [1, 2, 3]
    assert run.stopped and run.done and run.iteration == 3
    assert run.step() is None
    image = run.result()
    assert image.shape == (1, 3, 24, 32) and torch.isfinite(image).all()


def test_stop_before_the_first_step_still_gives_an_image(images, tiny_config, tiny_transfer):
    run = tiny_transfer(tiny_config(init="content")).start(images.content_t, [images.style_t])
    run.stop()
    assert run.step() is None and run_all(run) == []
    assert run.result().shape == (1, 3, 24, 32)


def test_stop_from_another_thread_abandons_the_iteration(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config(iterations=50))
    run = transfer.start(images.content_t, [images.style_t])
    run_all_first = run.step()
    assert run_all_first is not None
    done = threading.Event()
    original = run.work.objective.value_and_grad

    def objective(x):  # stop "from the studio" in the middle of an iteration's line search
        if not done.is_set():
            t = threading.Thread(target=run.stop)
            t.start()
            t.join()
            done.set()
        return original(x)

    run.work.objective.value_and_grad = objective
    assert run.step() is None  # the iteration was abandoned
    assert run.iteration == 1 and run.stopped
    assert torch.isfinite(run.result()).all()


# --- checkpoints --------------------------------------------------------------------------------------------------------


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _checkpoint_config(tiny_config, optimizer):
    lr = None if optimizer != "sgd" else TINY_SGD_LR
    return tiny_config(
        optimizer=optimizer, learning_rate=lr, size=32, min_size=16, multiscale=True, level_iterations=(3, 3), init_noise=0.3, lr_decay_steps=2
    )


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam", "sgd"])
@pytest.mark.parametrize("split", [0, 2, 3, 4])  # 3 is exactly the end of the first level
def test_checkpoint_resume_matches_an_uninterrupted_run(optimizer, split, images, tiny_config, tiny_transfer):
    cfg = _checkpoint_config(tiny_config, optimizer)
    straight = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    reference = [p.losses for p in straight]

    first = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    for _ in range(split):
        first.step()
    state = _roundtrip(first.state_dict())
    assert state["iteration"] == split
    assert state["level_ready"] == (split != 3)

    resumed = Run.from_state_dict(tiny_transfer(cfg), state)  # a fresh engine, as after a restart
    assert resumed.iteration == split and resumed.seed == first.seed
    rest = [p.losses for p in resumed]
    assert rest == reference[split:]
    assert torch.equal(resumed.result(), straight.result())


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_state_dict_is_a_snapshot(optimizer, images, tiny_config, tiny_transfer):
    """A state dict kept in memory while the run goes on still resumes from where it was taken."""
    cfg = _checkpoint_config(tiny_config, optimizer)
    transfer = tiny_transfer(cfg)
    straight = transfer.start(images.content_t, [images.style_t])
    run_all(straight)

    run = transfer.start(images.content_t, [images.style_t])
    run.step(), run.step()
    snapshot = run.state_dict()
    run_all(run)  # the original goes on to the end
    resumed = Run.from_state_dict(transfer, snapshot)
    run_all(resumed)
    assert torch.equal(resumed.result(), straight.result())


def test_checkpoint_of_a_finished_run(images, tiny_config, tiny_transfer):
    cfg = tiny_config(iterations=2)
    transfer = tiny_transfer(cfg)
    run = transfer.start(images.content_t, [images.style_t])
    run_all(run)
    resumed = Run.from_state_dict(transfer, _roundtrip(run.state_dict()))
    assert resumed.done and resumed.step() is None
    assert torch.equal(resumed.result(), run.result())


def test_checkpoint_keeps_the_original_colour_inputs(images, tiny_config, tiny_transfer):
    cfg = tiny_config(original_colors="luminance", iterations=4)
    transfer = tiny_transfer(cfg)
    straight = transfer.start(images.content_t, [images.style_t])
    run_all(straight)
    run = transfer.start(images.content_t, [images.style_t])
    run.step(), run.step()
    resumed = Run.from_state_dict(transfer, _roundtrip(run.state_dict()))
    run_all(resumed)
    assert torch.equal(resumed.result(), straight.result())


@pytest.mark.parametrize(
    "changed, words",
    [
        (dict(size=48), "`size` 32, not 48"),
        (dict(optimizer="adam"), "`optimizer` 'lbfgs', not 'adam'"),
        (dict(multiscale=False, level_iterations=None, iterations=6), "`multiscale` True, not False"),
        (dict(level_iterations=(2, 4)), "`level_iterations` [3, 3], not [2, 4]"),
        (dict(min_size=24), "`min_size` 16, not 24"),
    ],
)
def test_resuming_under_a_config_that_sizes_the_run_otherwise_is_refused(changed, words, images, tiny_config, tiny_transfer):
    """It failed deep in torch (a shape mismatch in a loss, a KeyError in the optimiser's state)."""
    cfg = _checkpoint_config(tiny_config, "lbfgs")
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    run.step()
    state = _roundtrip(run.state_dict())
    with pytest.raises(ConfigError) as caught:
        Run.from_state_dict(tiny_transfer(cfg.replace(**changed)), state)
    assert words in caught.value.template and "Config.from_mapping" in str(caught.value)
    # What does not size the run may differ (the CLI's resume keeps everything; a library caller may not).
    resumed = Run.from_state_dict(tiny_transfer(cfg.replace(tv_weight=cfg.tv_weight * 2, lbfgs_history=5)), state)
    assert resumed.step() is not None


def test_unknown_checkpoint_version_is_refused(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config())
    state = transfer.start(images.content_t, [images.style_t]).state_dict()
    state["version"] = 999
    with pytest.raises(ConfigError, match="version"):
        Run.from_state_dict(transfer, state)


# --- NaN recovery -------------------------------------------------------------------------------------------------------


class NaNEncoder(nn.Module):
    """Wraps an encoder; on the calls ``bad(n)`` says (1-based), every output is NaN."""

    def __init__(self, inner: nn.Module, bad):
        super().__init__()
        self.inner = inner
        self.layers = inner.layers
        self.bad = bad
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.inner(x)
        if self.bad(self.calls):
            out = {k: v * float("nan") for k, v in out.items()}
        return out


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_recovers_from_a_nan_once(optimizer, images, tiny_config, tiny_encoder):
    cfg = tiny_config(optimizer=optimizer, iterations=5)
    # Calls 1 and 2 compute the content and style targets; call 3 is the first loss evaluation.
    encoder = NaNEncoder(tiny_encoder(cfg.layers_needed), bad=lambda n: n == 3)
    transfer = StyleTransfer(cfg, encoder=encoder)
    run = transfer.start(images.content_t, [images.style_t])
    start = run.current().clone()
    progress = run_all(run)
    assert [p.recovered for p in progress] == [True, False, False, False, False]
    assert run.recoveries == 1 and run.iteration == 5
    assert all(math.isfinite(p.loss) for p in progress[1:])
    assert progress[-1].loss < progress[1].loss
    result = run.result()
    assert torch.isfinite(result).all() and not torch.equal(result, start)
    if optimizer == "adam":  # the first-order optimisers continue more carefully
        assert run.state.lr_scale == 0.5


def test_nan_inside_the_line_search_needs_no_recovery(images, tiny_config, tiny_encoder):
    cfg = tiny_config(optimizer="lbfgs", iterations=4)
    encoder = NaNEncoder(tiny_encoder(cfg.layers_needed), bad=lambda n: n == 4)  # a trial point of step 1
    run = StyleTransfer(cfg, encoder=encoder).start(images.content_t, [images.style_t])
    progress = run_all(run)
    assert not any(p.recovered for p in progress)
    assert all(math.isfinite(p.loss) for p in progress)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_persistent_nan_raises_divergence_error_with_the_last_good_image(optimizer, images, tiny_config, tiny_encoder):
    cfg = tiny_config(optimizer=optimizer, iterations=50, init="content")
    encoder = NaNEncoder(tiny_encoder(cfg.layers_needed), bad=lambda n: n >= 3)
    run = StyleTransfer(cfg, encoder=encoder).start(images.content_t, [images.style_t])
    start = run.current().clone()
    with pytest.raises(DivergenceError, match="diverged") as info:
        run_all(run)
    assert run.recoveries == MAX_RECOVERIES + 1
    image = info.value.image
    assert image.shape == (1, 3, 24, 32) and torch.isfinite(image).all()
    assert torch.equal(image, start)
    assert info.value.exit_code == 1


@pytest.mark.parametrize("pixels_only", [{"tv_weight": 1.0}, {"laplacian_weight": 100.0}])
def test_pixel_terms_alone_say_which_weights_to_give(pixels_only):
    """TV or Laplacian alone read no layer of the network: the message names the two weights that do,
    before any weights are loaded (it was "the encoder needs at least one layer to read")."""
    from painterly.config import Config
    from painterly.engine import build_encoder

    config = Config(content_weight=0.0, style_weight=0.0, **pixels_only)
    with pytest.raises(ConfigError) as info:
        build_encoder(config, weights=None)
    assert info.value.fields == ("content_weight", "style_weight")
