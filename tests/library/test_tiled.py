"""The tiled evaluation equals the untiled one (float64, the tiny random encoder): total, every term and
the gradient, for tile sizes that do and do not divide the image, both poolings and every term."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from painterly.encoder import VGG19Encoder, random_state
from painterly.engine.objective import ContentTerm, GramStyleTerm, Objective, TVTerm
from painterly.engine.tiled import TiledEvaluation, encode_by_tiles, geometry, receptive_radius, windows
from painterly.errors import ConfigError
from painterly.losses import gram_matrix

CONTENT = ("relu2_1", "relu3_1")
STYLE = ("relu1_1", "relu2_1", "relu3_1")
HW = (45, 61)  # a multiple of no tile size below, nor of the stride (4)


def _objective(pooling: str, cosine: bool, layers_c=CONTENT, layers_s=STYLE) -> Objective:
    enc = VGG19Encoder(random_state(), "caffe", layers_c + layers_s, pooling).double()
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, *HW, generator=gen, dtype=torch.float64)
    style = torch.rand(1, 3, 40, 52, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        fc, fs = enc(content), enc(style)
    weights = dict(zip(layers_s, (0.5, 2.0, 1.0, 1.5)))
    terms = [
        ContentTerm({n: fc[n] for n in layers_c}, 5.0, cosine=cosine),
        GramStyleTerm({n: gram_matrix(fs[n]) for n in layers_s}, weights, 100.0),
        TVTerm(10.0),
    ]
    return Objective(enc, terms)


def _image() -> torch.Tensor:
    return torch.rand(1, 3, *HW, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def _assert_same(obj: Objective, tiled: TiledEvaluation, x: torch.Tensor, grad_rtol: float = 1e-12) -> None:
    total, grad, values = obj.evaluation(x)
    t_total, t_grad, t_values = tiled(x)
    torch.testing.assert_close(t_values, values, rtol=1e-12, atol=0)
    torch.testing.assert_close(t_total, total, rtol=1e-12, atol=0)
    scale = grad.abs().max()
    assert float((t_grad - grad).abs().max() / scale) < grad_rtol


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("cosine", [False, True])
@pytest.mark.parametrize("tile", [8, 20, 36, 100])
def test_tiled_equals_untiled(pooling: str, cosine: bool, tile: int) -> None:
    obj = _objective(pooling, cosine)
    tiled = TiledEvaluation(obj, tile)
    assert len(tiled.windows(HW)) > 1 or tile >= max(HW)
    _assert_same(obj, tiled, _image())


def test_deeper_layers_and_their_halo() -> None:
    obj = _objective("max", False, layers_c=("relu4_1",), layers_s=("relu1_1", "relu4_1"))
    tiled = TiledEvaluation(obj, 16)
    assert (tiled.stride, tiled.halo) == (16, 32)  # radius 2 + 4 + 16 + 8 = 30, up to a multiple of 16 (edge_padding)
    _assert_same(obj, tiled, _image())


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_pool_layers_read_directly(pooling: str) -> None:
    obj = _objective(pooling, False, layers_c=("pool2",), layers_s=("conv1_2", "pool3"))
    tiled = TiledEvaluation(obj, 17)
    assert (tiled.stride, tiled.halo) == (16, 32)  # radius 2 + 4 + 16 (a pool adds nothing beyond its cell), up to 16
    _assert_same(obj, tiled, _image())


def test_too_narrow_a_halo_is_caught() -> None:
    """The equivalence above can fail: with a halo short of the receptive field the gradients differ."""
    obj = _objective("max", False, layers_c=("relu4_1",), layers_s=("relu1_1", "relu4_1"))
    tiled = TiledEvaluation(obj, 16)
    assert (tiled.stride, tiled.halo) == (16, 32)
    tiled.halo = 16  # aligned, but short of relu4_1's receptive radius (30 px)
    _, grad, _ = obj.evaluation(_image())
    _, t_grad, _ = tiled(_image())
    assert float((t_grad - grad).abs().max() / grad.abs().max()) > 1e-6


def test_geometry_and_windows_partition_the_image() -> None:
    assert receptive_radius("relu5_1") == 70 and geometry(["relu5_1", "relu1_1"]) == (16, 80)
    assert geometry([]) == (1, 1)
    wins = windows(HW, 20, 4, 12)
    covered = torch.zeros(HW, dtype=torch.int64)
    for win in wins:
        y0, y1, x0, x1 = win.own_pixels
        covered[y0:y1, x0:x1] += 1
        assert y0 % 4 == 0 and x0 % 4 == 0 and win.crop[0] % 4 == 0 and win.crop[2] % 4 == 0
    assert bool((covered == 1).all())
    # A last strip narrower than the stride joins the tile before it.
    assert [w.own_pixels[:2] for w in windows((41, 8), 20, 4, 4) if w.own_pixels[2] == 0] == [(0, 20), (20, 41)]


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_encode_by_tiles_gives_targets(pooling: str) -> None:
    enc = VGG19Encoder(random_state(), "caffe", STYLE, pooling).double()
    image = _image()
    with torch.no_grad():
        full = enc(image)
    features, grams = encode_by_tiles(enc, image, 12, keep=("relu2_1",), grams=STYLE)
    torch.testing.assert_close(features["relu2_1"], full["relu2_1"], rtol=1e-12, atol=1e-12)
    for n in STYLE:
        torch.testing.assert_close(grams[n], gram_matrix(full[n]), rtol=1e-12, atol=0)


@dataclass(frozen=True)
class _WholeImageTerm:
    name: str = "other"
    layers: tuple[str, ...] = ()

    def __call__(self, image, features):
        return image.max()


def test_a_term_that_is_not_a_sum_is_refused() -> None:
    obj = Objective(VGG19Encoder(random_state(), "caffe", ("relu1_1",)), [TVTerm(1.0), _WholeImageTerm()])
    with pytest.raises(ConfigError, match="tile cannot be used with the other loss"):
        TiledEvaluation(obj, 32)


def test_a_run_by_tiles_follows_the_untiled_run(tiny_config, tiny_transfer) -> None:
    """The whole engine with `tile`: the same losses as without (float32 round-off), multi-scale."""
    from painterly.engine import load_inputs

    runs = {}
    for tile in (0, 16):
        config = tiny_config(size=48, iterations=4, multiscale=True, min_size=32, tile=tile)
        transfer = tiny_transfer(config)
        gen = torch.Generator().manual_seed(3)
        inputs = load_inputs(config, torch.rand(1, 3, 36, 48, generator=gen), [torch.rand(1, 3, 40, 40, generator=gen)])
        run = transfer.start(inputs)
        runs[tile] = [p.losses["total"] for p in run]
        assert isinstance(run.work.evaluation, TiledEvaluation) == (tile > 0)
    assert len(runs[0]) == 4
    assert runs[16] == pytest.approx(runs[0], rel=1e-3)


def test_tiles_are_chosen_when_the_image_would_not_fit() -> None:
    from painterly.engine.memory import activation_bytes, choose_tile

    enc = VGG19Encoder(random_state(), "caffe", ("relu1_1", "relu3_1"))
    cpu = torch.device("cpu")
    need = activation_bytes(enc, (300, 400))
    assert choose_tile(None, enc, (300, 400), cpu, free=4 * need) == (None, None)
    tile, note = choose_tile(None, enc, (300, 400), cpu, free=need)
    assert tile is not None and tile % 4 == 0 and tile < 400
    assert activation_bytes(enc, (tile + 24, tile + 24)) <= need / 2 and "tiles of" in note
    assert choose_tile(0, enc, (300, 400), cpu, free=1) == (None, None)
    assert choose_tile(64, enc, (300, 400), cpu) == (64, None)
    assert choose_tile(512, enc, (300, 400), cpu) == (None, None)


def test_lbfgs_history_follows_the_memory_available() -> None:
    from painterly.engine.memory import LBFGS_SHARE
    from painterly.engine.optimizers import MIN_LBFGS_HISTORY, lbfgs_history_for

    shape = (1, 3, 1000, 1000)  # 24 MB per remembered step
    per_step = 2 * 4 * 3 * 1000 * 1000
    assert lbfgs_history_for(100, shape, free=int(40 * per_step / LBFGS_SHARE)) == 40
    assert lbfgs_history_for(100, shape, free=int(1000 * per_step / LBFGS_SHARE)) == 100
    assert lbfgs_history_for(100, shape, free=per_step) == MIN_LBFGS_HISTORY
    assert lbfgs_history_for(5, shape, free=1) == 5


def test_tile_setting_is_checked() -> None:
    from painterly.config import Config

    assert Config(tile=0).tile == 0 and Config().tile is None
    with pytest.raises(ConfigError, match="tile must be at least 0"):
        Config(tile=-1)


@pytest.mark.parametrize("tile", [8, 20])
def test_a_mask_guided_style_term_by_tiles_equals_untiled(tile: int) -> None:
    """Regions compose with tiles: the guided Gram is a sum over positions as the plain one is."""
    from painterly.engine.guided import GuidedStyleTerm, RegionTarget
    from painterly.masks import layer_guides

    enc = VGG19Encoder(random_state(), "caffe", STYLE, "max").double()
    gen = torch.Generator().manual_seed(3)
    soft = torch.rand(1, 1, *HW, generator=gen, dtype=torch.float64)
    weights = torch.cat([soft, 1 - soft])  # two soft regions that sum to 1 per pixel
    guides = layer_guides(weights, STYLE, "avg")
    with torch.no_grad():
        fs = enc(torch.rand(1, 3, 40, 52, generator=gen, dtype=torch.float64))
    targets = {
        n: tuple(
            RegionTarget(label, guides[n][k : k + 1], float(guides[n][k : k + 1].pow(2).sum()), gram_matrix(fs[n]) * (k + 1), 1.0 + k)
            for k, label in enumerate(("red", "blue"))
        )
        for n in STYLE
    }
    obj = Objective(enc, [GuidedStyleTerm(targets, dict(zip(STYLE, (0.5, 2.0, 1.0))), 100.0), TVTerm(10.0)])
    _assert_same(obj, TiledEvaluation(obj, tile), _image())


def test_progress_reports_the_tiles_and_the_evaluation_the_tile_in_work(tiny_config, tiny_transfer) -> None:
    """Progress.tiles partitions each tiled level's image (empty when whole); while an evaluation runs,
    ``active`` names the tile in work (each tile once per pass), and is None between evaluations."""
    from painterly.engine import load_inputs

    config = tiny_config(size=48, iterations=2, multiscale=True, min_size=24, tile=16)
    gen = torch.Generator().manual_seed(3)
    inputs = load_inputs(config, torch.rand(1, 3, 36, 48, generator=gen), [torch.rand(1, 3, 40, 40, generator=gen)])
    run = tiny_transfer(config).start(inputs)
    seen = []
    for p in run:
        h, w = p.size
        if max(h, w) <= 16:
            assert p.tiles == ()
            continue
        covered = torch.zeros(h, w, dtype=torch.int64)
        for top, left, th, tw in p.tiles:
            covered[top : top + th, left : left + tw] += 1
        assert p.tiles and bool((covered == 1).all())
        seen.append(p.tiles)
    assert len(seen[-1]) > 1 and seen[-1] == run.work.evaluation.grid((36, 48))

    evaluation = run.work.evaluation
    features, active = evaluation.objective.features, []
    evaluation.objective.features = lambda crop: (active.append(evaluation.active), features(crop))[1]
    evaluation(torch.rand(1, 3, 36, 48, generator=gen))
    n = len(seen[-1])
    assert active == list(range(n)) * 2 and evaluation.active is None


def _w2_objective(pooling: str, guided: bool) -> Objective:
    from painterly.engine.region_terms import GuidedW2Term, RegionGaussian
    from painterly.engine.style_terms import W2StyleTerm
    from painterly.losses import feature_moments, gaussian_target
    from painterly.masks import layer_guides

    enc = VGG19Encoder(random_state(), "caffe", STYLE, pooling).double()
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        fs = enc(torch.rand(1, 3, 40, 52, generator=gen, dtype=torch.float64))
    weights = dict(zip(STYLE, (0.5, 2.0, 1.0)))
    targets = {n: gaussian_target(*feature_moments(fs[n])) for n in STYLE}
    if not guided:
        return Objective(enc, [W2StyleTerm(targets, weights, 100.0), TVTerm(10.0)])
    soft = torch.rand(1, 1, *HW, generator=gen, dtype=torch.float64)
    guides = layer_guides(torch.cat([soft, 1 - soft]), STYLE, "avg")  # two soft regions summing to 1
    regions = {
        n: tuple(RegionGaussian(label, guides[n][k : k + 1], float(guides[n][k : k + 1].pow(2).sum()),
                                gaussian_target(targets[n].mean * (k + 1), targets[n].cov), 1.0 + k)
                 for k, label in enumerate(("red", "blue")))
        for n in STYLE
    }  # fmt: skip
    return Objective(enc, [GuidedW2Term(regions, weights, 100.0), TVTerm(10.0)])


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("tile", [8, 20, 36])
def test_w2_style_terms_by_tiles_equal_untiled(pooling: str, guided: bool, tile: int) -> None:
    """W2 is a function of Σ F, Σ F Fᵀ (and the count): by tiles it is exact, with a mask's regions too."""
    obj = _w2_objective(pooling, guided)
    tiled = TiledEvaluation(obj, tile)
    assert len(tiled.windows(HW)) > 1
    # W2's gradient goes through an eigendecomposition (½ λ^-½ for small λ): round-off grows to ~1e-11.
    _assert_same(obj, tiled, _image(), grad_rtol=1e-9)


def _sliced_objective() -> Objective:
    from painterly.engine.style_terms import SlicedStyleTerm

    enc = VGG19Encoder(random_state(), "caffe", STYLE, "max")
    with torch.no_grad():
        fs = enc(torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(4)))
    samples = {n: ((1.0, fs[n][0].flatten(1)),) for n in STYLE}
    return Objective(enc, [SlicedStyleTerm(samples, HW, dict.fromkeys(STYLE, 1.0), 1.0, torch.device("cpu")), TVTerm(1.0)])


def test_sorting_style_losses_refuse_tiles_in_one_line() -> None:
    from painterly.config import Config

    for kind in ("sliced", "histogram"):
        with pytest.raises(ConfigError, match=f"style_loss {kind} cannot be evaluated by tiles \\(tile 64\\)"):
            Config(style_loss=kind, tile=64)
        assert Config(style_loss=kind, tile=0).tile == 0
    assert Config(style_loss="w2", tile=64).tile == 64
    with pytest.raises(ConfigError, match="tile cannot be used with style_loss sliced"):
        TiledEvaluation(_sliced_objective(), 16)


def test_automatic_tiles_with_a_sorting_loss_evaluate_whole_or_refuse() -> None:
    """Where tiles would be chosen automatically, a loss that sorts all positions is evaluated whole,
    said in one line, when the image fits in the memory available; it is refused when it does not."""
    from painterly.engine.memory import activation_bytes
    from painterly.engine.tiled import LevelTiles
    from painterly.errors import PainterlyWarning

    sliced, w2 = _sliced_objective(), _w2_objective("max", False)
    hw = (300, 400)
    need = activation_bytes(sliced.encoder, hw)
    auto = LevelTiles(None, sliced.encoder, torch.device("cpu"), 4)
    with pytest.warns(PainterlyWarning, match="400x300 px is evaluated whole, not by tiles: style_loss sliced"):
        assert auto.for_objective(sliced, hw, free=need) is None  # more than ACTIVATION_SHARE of it: tiles otherwise
    with pytest.raises(ConfigError, match="needs .* untiled .*style_loss sliced .*cannot be evaluated by tiles"):
        auto.for_objective(sliced, hw, free=need // 2)
    assert auto.for_objective(sliced, hw, free=10 * need) is None  # fits: no tiles, nothing said
    with pytest.warns(PainterlyWarning, match="tiles of"):
        assert auto.for_objective(w2, hw, free=need) is not None  # a sum over positions: tiled as before
    assert LevelTiles(0, sliced.encoder, torch.device("cpu"), 4).for_objective(sliced, hw, free=1) is None


def test_a_masked_w2_run_by_tiles_follows_the_untiled_run(tiny_config, tiny_transfer, images) -> None:  # noqa: ANN001
    from painterly.engine import load_inputs

    runs = {}
    mask = torch.ones(1, 3, 48, 64)
    mask[:, 1:, :, :28] = 0.0  # red on the left, white on the right
    for tile in (0, 16):
        config = tiny_config(size=48, iterations=2, style_loss="w2", regions=["red=1", "white=2:2"], tile=tile)
        run = tiny_transfer(config).start(load_inputs(config, images.content_t, [images.style_t, images.style2_t], mask=mask))
        runs[tile] = [p.losses["total"] for p in run]
        assert isinstance(run.work.evaluation, TiledEvaluation) == (tile > 0)
    assert len(runs[0]) == 2
    # fp32: W2's covariance (E[xxᵀ] − mmᵀ) magnifies the order of the sums; L-BFGS then drifts apart
    # after a few iterations, so the runs are compared over two, and one evaluation (float64: exact, above).
    assert runs[16] == pytest.approx(runs[0], rel=1e-3)
    x = run.work.x.detach()
    total, grad, _ = run.work.evaluation(x)
    whole_total, whole_grad, _ = run.work.objective.evaluation(x)
    assert float(total) == pytest.approx(float(whole_total), rel=1e-4)
    # W2's fp32 gradient is itself ~1 % off its float64 value here (eigenvalues of E[xxᵀ] − mmᵀ), untiled too.
    assert float((grad - whole_grad).abs().max() / whole_grad.abs().max()) < 2e-2


def test_a_sliced_run_where_tiles_would_be_chosen_is_evaluated_whole(tiny_config, tiny_transfer, images, monkeypatch) -> None:  # noqa: ANN001
    """The run's own path: with the memory available made just short of the automatic threshold."""
    from painterly.engine import load_inputs, memory
    from painterly.errors import PainterlyWarning

    config = tiny_config(size=32, iterations=2, style_loss="sliced")
    transfer = tiny_transfer(config)
    monkeypatch.setattr(memory, "available_bytes", lambda device: memory.activation_bytes(transfer.encoder, (24, 32)))
    with pytest.warns(PainterlyWarning, match="32x24 px is evaluated whole, not by tiles: style_loss sliced"):
        run = transfer.start(load_inputs(config, images.content_t, [images.style_t]))
        losses = [p.losses["total"] for p in run]
    assert len(losses) == 2 and not isinstance(run.work.evaluation, TiledEvaluation)
