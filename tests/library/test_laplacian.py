"""The Laplacian loss (Li et al. 2017): analytic values, gradients, the term in a run (levels, tiles,
batches, checkpoints) and its options."""

from __future__ import annotations

import io

import pytest
import torch

from painterly import Config
from painterly.encoder import VGG19Encoder, random_state
from painterly.engine import Run, build_objective, build_targets, evaluate_batch, load_inputs
from painterly.engine.laplacian import PIXEL_SCALE, LaplacianTerm, laplacian_targets
from painterly.engine.objective import ContentTerm, GramStyleTerm, Objective, TVTerm
from painterly.engine.tiled import TiledEvaluation
from painterly.errors import ConfigError
from painterly.losses import gram_matrix, laplacian_loss, pooled_laplacian

F64 = torch.float64


def _rows_squared(h: int, w: int, a: float) -> torch.Tensor:
    """``a · i²`` in every channel, ``i`` the row: its second difference is ``2a`` everywhere."""
    i = torch.arange(h, dtype=F64).view(1, 1, h, 1)
    return (a * i**2).expand(1, 3, h, w).clone()


def test_the_filter_is_the_3x3_laplacian_summed_over_channels() -> None:
    x = torch.zeros(1, 3, 7, 7, dtype=F64)
    x[0, 1, 3, 3] = 1.0
    x[0, 2, 3, 3] = 1.0  # two channels: twice the filter
    lap = pooled_laplacian(x, 1)
    assert lap.shape == (1, 1, 5, 5)
    expected = torch.zeros(5, 5, dtype=F64)
    expected[2, 2], expected[1, 2], expected[3, 2], expected[2, 1], expected[2, 3] = -8.0, 2.0, 2.0, 2.0, 2.0
    torch.testing.assert_close(lap[0, 0], expected, rtol=0, atol=0)


def test_analytic_values_with_and_without_pooling() -> None:
    a = 0.01
    x, zero = _rows_squared(12, 9, a), torch.zeros(1, 1, 10, 7, dtype=F64)
    # No pooling: d²/di² (a i²) = 2a per channel, 6a over the three; the loss against 0 is (6a)².
    assert float(laplacian_loss(x, zero, 1)) == pytest.approx((6 * a) ** 2, rel=1e-12)
    # Pool 2: cell k is the mean of rows 2k and 2k+1, a(4k² + 2k + ½); its second difference is 8a.
    lap = pooled_laplacian(x, 2)
    assert lap.shape == (1, 1, 4, 2)
    torch.testing.assert_close(lap, torch.full_like(lap, 3 * 8 * a), rtol=1e-12, atol=1e-15)
    assert float(laplacian_loss(x, torch.zeros(1, 1, 4, 2, dtype=F64), 2)) == pytest.approx((24 * a) ** 2, rel=1e-12)
    # A linear ramp has no curvature: the same loss as the content it was added to.
    ramp = torch.linspace(0, 1, 9, dtype=F64).expand(1, 3, 12, 9)
    c = torch.rand(1, 3, 12, 9, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert float(laplacian_loss(c + ramp, pooled_laplacian(c, 1), 1)) < 1e-28


def test_rows_beyond_the_last_cell_are_left_out_and_a_pool_too_large_gives_zero() -> None:
    x = torch.rand(1, 3, 19, 13, dtype=F64, generator=torch.Generator().manual_seed(1))
    assert pooled_laplacian(x, 4).shape == (1, 1, 2, 1)
    torch.testing.assert_close(pooled_laplacian(x, 4), pooled_laplacian(x[..., :16, :12], 4))
    small = pooled_laplacian(x, 8)  # 2×1 cells: no whole 3×3 neighbourhood
    assert small.shape == (1, 1, 0, 0)
    loss = laplacian_loss(x.requires_grad_(True), small, 8)
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    (grad,) = torch.autograd.grad(loss, x)
    assert float(grad.abs().max()) == 0.0


@pytest.mark.parametrize("pool", [1, 2, 3])
def test_gradcheck_float64(pool: int) -> None:
    gen = torch.Generator().manual_seed(pool)
    x = torch.rand(1, 3, 10, 11, dtype=F64, generator=gen, requires_grad=True)
    target = pooled_laplacian(torch.rand(1, 3, 10, 11, dtype=F64, generator=gen), pool)
    assert torch.autograd.gradcheck(lambda t: laplacian_loss(t, target, pool), (x,))


def test_the_term_is_weighted_in_pixel_units_and_zero_at_the_content() -> None:
    gen = torch.Generator().manual_seed(3)
    content, x = torch.rand(2, 1, 3, 40, 36, dtype=F64, generator=gen)
    term = LaplacianTerm(laplacian_targets(content, (2, 4)), 7.0)
    expected = 7.0 * PIXEL_SCALE**2 * sum(float(laplacian_loss(x, pooled_laplacian(content, p), p)) for p in (2, 4))
    assert float(term(x, {})) == pytest.approx(expected, rel=1e-12)
    assert float(term(content, {})) == 0.0
    assert term.layers == () and term.name == "laplacian"
    assert term.tile_reach == (4, 4)


HW = (101, 70)  # no multiple of any tile or pool below; two tiles high at pool 3's 48 px alignment


def _objective(pools: tuple[int, ...], content_layers=("relu2_1",)) -> Objective:
    style_layers = ("relu1_1", "relu2_1")
    enc = VGG19Encoder(random_state(), "caffe", content_layers + style_layers, "max").double()
    gen = torch.Generator().manual_seed(4)
    content, style = torch.rand(1, 3, *HW, generator=gen, dtype=F64), torch.rand(1, 3, 40, 52, generator=gen, dtype=F64)
    with torch.no_grad():
        fc, fs = enc(content), enc(style)
    laps = laplacian_targets(content, pools)
    return Objective(enc, [
        ContentTerm({n: fc[n] for n in content_layers}, 5.0),
        GramStyleTerm({n: gram_matrix(fs[n]) for n in style_layers}, dict.fromkeys(style_layers, 1.0), 100.0),
        TVTerm(10.0),
        LaplacianTerm(laps, 300.0),
    ])  # fmt: skip


@pytest.mark.parametrize("pools", [(4,), (4, 16), (3,), (1,)])
@pytest.mark.parametrize("tile", [8, 36])
def test_tiled_equals_untiled(pools: tuple[int, ...], tile: int) -> None:
    obj = _objective(pools)
    tiled = TiledEvaluation(obj, tile)
    assert len(tiled.windows(HW)) > 1
    x = torch.rand(1, 3, *HW, generator=torch.Generator().manual_seed(5), dtype=F64)
    total, grad, values = obj.evaluation(x)
    assert float(values[obj.names.index("laplacian")]) > 0
    t_total, t_grad, t_values = tiled(x)
    torch.testing.assert_close(t_values, values, rtol=1e-12, atol=0)
    assert float((t_grad - grad).abs().max() / grad.abs().max()) < 1e-12


def test_tiles_are_aligned_to_the_pools_and_reach_a_cell_beyond() -> None:
    # relu2_1 alone would give origins on 2 px (16: the encoder's edge_padding) and a 4 px halo; pool 16
    # asks for 16 and 16; pools 3 and 5, 30 (with the encoder's 16: origins on 240).
    assert (TiledEvaluation(_objective((16,)), 20).stride, TiledEvaluation(_objective((16,)), 20).halo) == (16, 16)
    tiled = TiledEvaluation(_objective((3, 5)), 20)
    assert (tiled.stride, tiled.halo) == (240, 240)


def test_too_narrow_a_halo_is_caught() -> None:
    """The equivalence above can fail: a halo short of one pooled cell changes the gradient."""
    obj = _objective((8,), content_layers=("relu1_1",))
    tiled = TiledEvaluation(obj, 16)
    assert (tiled.stride, tiled.halo) == (16, 16)
    x = torch.rand(1, 3, *HW, generator=torch.Generator().manual_seed(6), dtype=F64)
    # Short of one 8 px pooled cell; off the encoder's 16 px grid, which relu1_1 alone does not feel
    # (its one row past a crop's edge is the same reflected row).
    tiled.halo = 4
    _, grad, _ = obj.evaluation(x)
    _, t_grad, _ = tiled(x)
    assert float((t_grad - grad).abs().max() / grad.abs().max()) > 1e-6


def test_config_fields_defaults_and_checks() -> None:
    cfg = Config()
    assert cfg.laplacian_weight == 0.0 and not cfg.uses_laplacian and cfg.laplacian_pools == (4, 16)
    assert Config(laplacian_pools="8, 2").laplacian_pools == (8, 2)
    for bad, words in [
        (dict(laplacian_weight=-1), "`laplacian_weight` must be at least 0"),
        (dict(laplacian_weight=float("nan")), "`laplacian_weight` must be a finite number"),
        (dict(laplacian_pools="4,0"), "`laplacian_pools` values must be between 1 and 256"),
        (dict(laplacian_pools="4,4"), "`laplacian_pools` names a pool size twice"),
        (dict(laplacian_pools="4,x"), "`laplacian_pools`: cannot read"),
        (dict(laplacian_weight=1, laplacian_pools=()), "`laplacian_weight` is positive but `laplacian_pools` is empty"),
        (dict(content_weight=0, style_weight=0, tv_weight=0), "`laplacian_weight` are all zero"),
    ]:
        with pytest.raises(ConfigError) as info:
            Config(**bad)
        assert words in info.value.template
    # The Laplacian term alone is something to optimise.
    assert Config(content_weight=0, style_weight=0, tv_weight=0, laplacian_weight=1).uses_laplacian


def test_it_needs_the_content(images, tiny_config) -> None:
    with pytest.raises(ConfigError, match="a content image is needed when laplacian_weight is positive"):
        load_inputs(tiny_config("texture", laplacian_weight=10.0), None, [images.style_t])


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_a_multiscale_run_reports_it_at_every_level_and_resumes_exactly(images, tiny_config, tiny_transfer) -> None:
    cfg = tiny_config(size=48, min_size=24, multiscale=True, level_iterations=(3, 3), laplacian_weight=1e3, laplacian_pools=(2, 4))
    straight = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    reference = [(p.level, p.size, p.losses) for p in straight]
    assert {lv for lv, _, _ in reference} == {0, 1}
    assert all(losses["laplacian"] > 0 for _, _, losses in reference)
    # The targets are the content's at each level's size.
    assert tuple(straight.work.targets.laplacians[4].shape[-2:]) == tuple(s // 4 - 2 for s in reference[-1][1])
    first = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    for _ in range(2):
        first.step()
    resumed = Run.from_state_dict(tiny_transfer(cfg), _roundtrip(first.state_dict()))
    assert [p.losses for p in resumed] == [losses for _, _, losses in reference[2:]]
    assert torch.equal(resumed.result(), straight.result())


def test_off_by_default_it_is_not_in_the_objective(images, tiny_config, tiny_transfer) -> None:
    cfg = tiny_config()
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    assert "laplacian" not in next(iter(run)).losses


def test_a_tiled_run_equals_the_untiled_one(images, tiny_config, tiny_transfer) -> None:
    cfg = tiny_config(size=48, laplacian_weight=1e3, laplacian_pools=(4,), content_layers=("relu1_1",), style_layers=("relu1_1",))
    losses = []
    for tile in (None, 16):
        run = tiny_transfer(cfg.replace(tile=tile)).start(images.content_t, [images.style_t])
        losses.append([p.losses["laplacian"] for p in run])
        if tile:
            assert run.work.tiles
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_a_batched_evaluation_equals_each_objective_alone(images, tiny_config, tiny_transfer) -> None:
    """One run with the term and one without, one encoder pass: each gets its own values and gradient."""
    hw = tuple(images.content_t.shape[-2:])
    base = tiny_config()
    transfer = tiny_transfer(base)
    items = []
    for k, cfg in enumerate((base.replace(laplacian_weight=1e3, laplacian_pools=(2, 4)), base)):
        inputs = load_inputs(cfg, images.content_t, [images.style_t])
        targets = build_targets(transfer.encoder, cfg, inputs, cfg.size, hw, transfer.device, None)
        objective = build_objective(transfer.encoder, cfg, targets, None, (), hw, transfer.device)
        items.append((objective, torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(k))))
    assert "laplacian" in items[0][0].names and "laplacian" not in items[1][0].names
    together = evaluate_batch(items)
    for (objective, x), (total, grad, values) in zip(items, together):
        alone_total, alone_grad, alone_values = objective.evaluation(x)
        torch.testing.assert_close(values, alone_values, rtol=1e-5, atol=0)
        torch.testing.assert_close(grad, alone_grad, rtol=1e-4, atol=1e-3 * float(alone_grad.abs().max()))


def test_with_a_mask_it_holds_the_whole_image(images, tiny_config, tiny_transfer) -> None:
    """Regions choose styles; the Laplacian term, like the content loss, compares the whole image."""
    cfg = tiny_config(regions=["red=1", "white=photo"], laplacian_weight=1e3, laplacian_pools=(2,))
    mask = torch.ones(1, 3, 48, 64)
    mask[:, 1:, :, :20] = 0.0
    run = tiny_transfer(cfg).start(load_inputs(cfg, images.content_t, [images.style_t], mask=mask))
    progress = list(run)
    assert all(p.losses["laplacian"] > 0 for p in progress)
    assert progress[-1].losses["total"] < progress[0].losses["total"]


def test_pools_without_the_weight_are_a_note_not_silence() -> None:
    from painterly.engine.inputs import ineffective_options

    assert any("laplacian_pools" in n for n in ineffective_options(Config(laplacian_pools=(8,))))
    assert not any("laplacian" in n for n in ineffective_options(Config(laplacian_pools=(8,), laplacian_weight=5)))
    assert not any("laplacian" in n for n in ineffective_options(Config()))
