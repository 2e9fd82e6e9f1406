"""The temporal loss and term (Ruder et al.): values, gradient, levels, and the hook into a run."""

from __future__ import annotations

import pytest
import torch

from painterly.engine import TemporalTerm, build_objective
from painterly.losses.temporal import temporal_loss


def test_temporal_loss_is_the_weighted_mean_square():
    image = torch.zeros((1, 3, 2, 2), dtype=torch.float64)
    warped = torch.ones((1, 3, 2, 2), dtype=torch.float64)
    weights = torch.tensor([[[[1.0, 0.0], [0.5, 0.0]]]], dtype=torch.float64)
    # 3 channels × (1 + 0.5) over 12 entries
    assert temporal_loss(image, warped, weights).item() == pytest.approx(4.5 / 12)
    assert temporal_loss(warped, warped, weights).item() == 0.0


def test_temporal_loss_ignores_zero_weight_pixels():
    g = torch.Generator().manual_seed(0)
    image, warped = torch.rand((2, 1, 3, 5, 6), generator=g, dtype=torch.float64)
    weights = torch.ones((1, 1, 5, 6), dtype=torch.float64)
    weights[..., 2:4, 1:5] = 0
    changed = image.clone()
    changed[..., 2:4, 1:5] += 7.0
    assert temporal_loss(changed, warped, weights).item() == pytest.approx(temporal_loss(image, warped, weights).item())


def test_temporal_loss_gradcheck():
    g = torch.Generator().manual_seed(1)
    image = torch.rand((1, 3, 5, 4), generator=g, dtype=torch.float64, requires_grad=True)
    warped = torch.rand((1, 3, 5, 4), generator=g, dtype=torch.float64)
    weights = (torch.rand((1, 1, 5, 4), generator=g, dtype=torch.float64) > 0.3).double()
    assert torch.autograd.gradcheck(lambda x: temporal_loss(x, warped, weights), (image,))


def test_temporal_term_gradcheck_with_long_term_pairs():
    g = torch.Generator().manual_seed(2)
    image = torch.rand((1, 3, 6, 5), generator=g, dtype=torch.float64, requires_grad=True)
    pairs = [(torch.rand((1, 3, 6, 5), generator=g), torch.rand((1, 1, 6, 5), generator=g)) for _ in range(3)]
    term = TemporalTerm(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), weight=3.0)
    assert term.name == "temporal" and term.layers == ()
    assert torch.autograd.gradcheck(lambda x: term(x, {}), (image,))
    expected = 3.0 * sum(temporal_loss(image, w.double(), c.double()) for w, c in pairs)
    assert term(image, {}).item() == pytest.approx(expected.item())


def test_temporal_term_at_level_resizes_to_the_level():
    warped = torch.rand((1, 3, 32, 48))
    weights = torch.ones((1, 1, 32, 48))
    small = TemporalTerm((warped,), (weights,), 1.0).at_level((16, 24), torch.device("cpu"))
    assert small.warped[0].shape == (1, 3, 16, 24) and small.weights[0].shape == (1, 1, 16, 24)
    assert small.weights[0].min() == 1.0
    assert small(small.warped[0], {}).item() == 0.0


def test_extra_terms_reach_every_level_of_a_run(tiny_transfer, tiny_config, images):
    """The temporal term rides on a run through the generic hook: no change to the run loop."""
    config = tiny_config(size=48, multiscale=True, min_size=24, level_iterations=(2, 2), seed=0)
    transfer = tiny_transfer(config)
    target = torch.full((1, 3, 48, 64), 0.5)
    term = TemporalTerm((target,), (torch.ones((1, 1, 48, 64)),), 1e3)
    run = transfer.start(images.content, [images.style], extra_terms=[term])
    sizes = []
    for progress in run:
        assert "temporal" in progress.losses and progress.losses["temporal"] > 0
        sizes.append(progress.size)
        total = sum(v for k, v in progress.losses.items() if k != "total")
        assert progress.losses["total"] == pytest.approx(total, rel=1e-5)
    assert sizes[0] != sizes[-1]
    assert run.work.objective.terms[-1].warped[0].shape[-2:] == sizes[-1]


def test_build_objective_without_extra_terms_is_unchanged(tiny_transfer, tiny_config):
    transfer = tiny_transfer(tiny_config())
    from painterly.engine import Targets

    objective = build_objective(transfer.encoder, transfer.config, Targets({}, {}), None)
    assert [t.name for t in objective.terms] == ["tv"]


def test_clip_styler_starts_later_frames_from_the_warped_last_result(tiny_transfer, tiny_config, images):
    pytest.importorskip("cv2")
    from painterly.video.sequence import ClipStyler, VideoSettings

    transfer = tiny_transfer(tiny_config(size=48, iterations=4))
    styler = ClipStyler(transfer, [images.style], VideoSettings(temporal_weight=1e6, frame_iterations=2, long_term=True))
    frame = images.content_t
    first = styler.start(frame)
    assert first.total_iterations == 4 and first.extra_terms == ()
    for _ in first:
        pass
    result = first.result()
    styler.push(frame, result)
    second = styler.start(frame)  # the same frame again: zero flow, everything trusted
    assert second.total_iterations == 2 and second.config.init == "image"
    (term,) = second.extra_terms
    assert term.name == "temporal" and len(term.warped) == 1
    assert torch.allclose(term.warped[0], result, atol=1e-4)
    assert term.weights[0].min() == 1.0
    assert torch.allclose(second.inputs.init, result, atol=1e-4)
    for progress in second:
        assert "temporal" in progress.losses
    styler.push(frame, second.result())
    third = styler.start(frame)  # long-term: i-1 and i-2, the older one only where i-1 is not trusted
    (term,) = third.extra_terms
    assert len(term.warped) == 2 and term.weights[1].max() == 0.0


@pytest.mark.parametrize("weight", [float("inf"), float("nan"), -1.0, True, "1e6"])
def test_video_settings_refuse_a_weight_that_is_not_finite_and_non_negative(weight):
    """inf was taken: every later frame's loss was then nan, and the clip its unchanged warped starts."""
    pytest.importorskip("cv2")
    from painterly.errors import ConfigError
    from painterly.video.sequence import VideoSettings

    with pytest.raises(ConfigError, match="temporal_weight must be a finite number ≥ 0"):
        VideoSettings(temporal_weight=weight)
    assert VideoSettings(temporal_weight=0).temporal_weight == 0 and VideoSettings(temporal_weight=1e9).temporal_weight == 1e9


def test_on_luminance_compares_brightness_alone():
    """--original-colors after: the saved frames have the content's colours, the run paints in the
    style's. On luminance, a frame of another colour but the same brightness costs nothing; a change of
    brightness costs what it costs on grey images."""
    from painterly import color

    g = torch.Generator().manual_seed(0)
    frame = torch.rand((1, 3, 12, 16), generator=g)
    y, iq = color.rgb_to_yiq(frame)[:, :1], color.rgb_to_yiq(frame)[:, 1:]
    recoloured = color.yiq_to_rgb(torch.cat([y, -iq], dim=1))  # same Y, other chroma (outside RGB is fine here)
    ones = torch.ones((1, 1, 12, 16))
    plain = TemporalTerm((color.luminance(frame),), (ones,), 1.0)
    grey = TemporalTerm((color.luminance(frame),), (ones,), 1.0, on_luminance=True)
    assert grey(recoloured, {}).item() == pytest.approx(0.0, abs=1e-10)
    assert plain(recoloured, {}).item() > 1e-3
    darker = recoloured - 0.1
    assert grey(darker, {}).item() == pytest.approx(0.01, rel=1e-4)
    assert grey.at_level((6, 8), torch.device("cpu")).on_luminance


def test_clip_styler_notes_what_the_first_frame_found_once(tiny_transfer, tiny_config, images):
    """Frames smaller than `size` are upscaled: said once for the clip (`notes`, and one warning), not
    once per frame, and as the frames (each frame), not as a content image."""
    pytest.importorskip("cv2")
    import warnings

    from painterly.errors import PainterlyWarning
    from painterly.video.sequence import ClipStyler, VideoSettings

    frame = torch.nn.functional.interpolate(images.content_t, size=(24, 32), mode="bilinear", align_corners=False)
    styler = ClipStyler(tiny_transfer(tiny_config(size=48, iterations=2)), [images.style], VideoSettings(frame_iterations=1))
    assert styler.notes is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            run = styler.start(frame)
            for _ in run:
                pass
            styler.push(frame, run.result())
    assert styler.notes == ("each frame is only 32x24 px; upscaled to 48 px",)
    assert [str(w.message) for w in caught if issubclass(w.category, PainterlyWarning)] == list(styler.notes)
    quiet = ClipStyler(tiny_transfer(tiny_config(size=48, iterations=2)), [images.style], warn=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.start(frame)
    assert quiet.notes == styler.notes and not [w for w in caught if issubclass(w.category, PainterlyWarning)]
