"""The style losses as terms of a run (``style_loss``) and iterate averaging (``average``), on the tiny
random encoder."""

from __future__ import annotations

import io
import math

import pytest
import torch

from painterly.config import STYLE_LOSSES
from painterly.engine import Run
from painterly.engine.averaging import corrected_average, update_average
from painterly.engine import style_terms
from painterly.engine.style_terms import SlicedStyleTerm, layer_positions
from painterly.errors import ConfigError

pytestmark = pytest.mark.usefixtures("single_thread")


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("kind", STYLE_LOSSES)
def test_each_style_loss_runs_multiscale_and_lowers_the_loss(kind, images, tiny_config, tiny_transfer):
    cfg = tiny_config(style_loss=kind, size=32, min_size=16, multiscale=True, level_iterations=(4, 4))
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    progress = list(run)
    assert len(progress) == 8 and len({p.size for p in progress}) == 2 and progress[-1].size == (24, 32)
    for level in (0, 1):
        losses = [p.loss for p in progress if p.level == level]
        assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], (kind, losses)
    assert progress[-1].losses["style"] > 0
    assert ("histogram" in progress[-1].losses) == (kind == "histogram")


@pytest.mark.parametrize("kind", ["w2", "sliced", "histogram"])
def test_style_blend_one_zero_equals_the_single_style(kind, images, tiny_config, tiny_transfer):
    single = tiny_config(style_loss=kind, iterations=3)
    blended = tiny_config(style_loss=kind, iterations=3, style_blend=(1, 0))
    a = tiny_transfer(single).start(images.content_t, [images.style_t])
    b = tiny_transfer(blended).start(images.content_t, [images.style_t, images.style2_t])
    la, lb = [p.losses for p in a], [p.losses for p in b]
    for x, y in zip(la, lb):
        assert x.keys() == y.keys() and all(math.isclose(x[k], y[k], rel_tol=1e-5, abs_tol=1e-6) for k in x)


def test_w2_blend_is_the_mixture_gaussian(images, tiny_config, tiny_transfer):
    cfg = tiny_config(style_loss="w2", style_blend="1,3")
    transfer = tiny_transfer(cfg)
    run = transfer.start(images.content_t, [images.style_t, images.style2_t])
    run.step()
    t = run.work.targets.style.gaussians
    one = tiny_transfer(tiny_config(style_loss="w2")).start(images.content_t, [images.style_t])
    two = tiny_transfer(tiny_config(style_loss="w2")).start(images.content_t, [images.style2_t])
    one.step(), two.step()
    for n, g in t.items():
        g1, g2 = one.work.targets.style.gaussians[n], two.work.targets.style.gaussians[n]
        mean = 0.25 * g1.mean + 0.75 * g2.mean
        second = 0.25 * (g1.cov + g1.mean[..., :, None] * g1.mean[..., None, :]) + 0.75 * (g2.cov + g2.mean[..., :, None] * g2.mean[..., None, :])
        torch.testing.assert_close(g.mean, mean, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(g.cov, second - mean[..., :, None] * mean[..., None, :], rtol=1e-4, atol=1e-1)


@pytest.mark.parametrize("every", [1, 3])
def test_sliced_directions_are_redrawn_once_per_period_and_lbfgs_re_evaluates_there(every, monkeypatch, images, tiny_config, tiny_transfer):
    monkeypatch.setattr(style_terms, "SLICED_REDRAW_EVERY", every)
    cfg = tiny_config(style_loss="sliced", iterations=7, init_noise=0.3)
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    run.step()
    term = next(t for t in run.work.objective.terms if isinstance(t, SlicedStyleTerm))
    assert term.redraw_every == every
    draws, points = [], []
    original, evaluate = term.redraw, run._evaluate

    def counting(seed, iteration):
        before = {n: d.clone() for n, d in term.directions.items()}
        changed = original(seed, iteration)
        if any(not torch.equal(before[n], d) for n, d in term.directions.items()):
            draws.append(iteration)
        assert changed == (iteration % every == 0)
        return changed

    def recording(x):
        points.append((run.iteration, x.detach().clone()))
        return evaluate(x)

    object.__setattr__(term, "redraw", counting)
    monkeypatch.setattr(run, "_evaluate", recording)
    starts = {}
    for _ in range(6):
        starts[run.iteration] = run.work.x.detach().clone()
        evaluations = run.evaluations
        run.step()
        assert run.evaluations - evaluations >= 1
    # New directions at the start of each period only, kept through that period's line searches.
    assert draws == [i for i in range(1, 7) if i % every == 0]
    # Where the objective changed, L-BFGS's first evaluation is at the current point (its stored value
    # belonged to the old directions); elsewhere it starts from the stored one (a trial step away).
    for i in range(1, 7):
        first = next(p for it, p in points if it == i)
        assert torch.equal(first, starts[i]) == (i % every == 0), i
    # The same point evaluated twice within an iteration: the same value and gradient.
    x = run.work.x.detach().clone()
    (v1, g1), (v2, g2) = run.work.objective.value_and_grad(x), run.work.objective.value_and_grad(x)
    assert torch.equal(v1.values, v2.values) and torch.equal(g1, g2)


def test_sliced_directions_depend_on_seed_and_iteration_only(images, tiny_config, tiny_transfer):
    cfg = tiny_config(style_loss="sliced", iterations=3)
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    run.step()
    term = next(t for t in run.work.objective.terms if isinstance(t, SlicedStyleTerm))
    every = term.redraw_every
    term.redraw(7, 2 * every)
    first = {n: d.clone() for n, d in term.directions.items()}
    term.redraw(7, 3 * every)
    assert not all(torch.equal(first[n], d) for n, d in term.directions.items())
    term.redraw(7, 2 * every + every - 1)  # another iteration of the same period: the same directions
    assert all(torch.equal(first[n], d) for n, d in term.directions.items())
    term.redraw(7, 2 * every)
    assert all(torch.equal(first[n], d) for n, d in term.directions.items())
    for n, d in term.directions.items():
        assert d.shape[1] >= 1 and term.quantiles[n].shape == (d.shape[1], layer_positions(n, (24, 32)))


@pytest.mark.parametrize("kind, average, every", [("sliced", 0.0, 1), ("gram", 0.8, 1), ("sliced", 0.5, 1), ("sliced", 0.0, 2)])
@pytest.mark.parametrize("split", [2, 3])
def test_checkpoint_resume_matches_an_uninterrupted_run(kind, average, every, split, monkeypatch, images, tiny_config, tiny_transfer):
    monkeypatch.setattr(style_terms, "SLICED_REDRAW_EVERY", every)
    cfg = tiny_config(style_loss=kind, average=average, size=32, min_size=16, multiscale=True, level_iterations=(3, 3), init_noise=0.3)
    straight = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    reference = [(p.losses, p.image.clone()) for p in straight]
    first = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    for _ in range(split):
        first.step()
    state = _roundtrip(first.state_dict())
    assert (state["average"] is not None) == (average > 0 and split != 3)
    resumed = Run.from_state_dict(tiny_transfer(cfg), state)
    rest = [(p.losses, p.image.clone()) for p in resumed]
    assert [r[0] for r in rest] == [r[0] for r in reference[split:]]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(rest, reference[split:]))
    assert torch.equal(resumed.result(), straight.result())


def test_average_is_the_bias_corrected_moving_average_of_the_iterates(images, tiny_config, tiny_transfer):
    decay = 0.7
    plain = tiny_transfer(tiny_config(iterations=4, seed=3)).start(images.content_t, [images.style_t])
    iterates = [p.image.clone() for p in plain]
    averaged = tiny_transfer(tiny_config(iterations=4, seed=3, average=decay)).start(images.content_t, [images.style_t])
    shown = [p.image.clone() for p in averaged]
    # The optimiser's path is the same; only what is shown differs.
    torch.testing.assert_close(shown[0], iterates[0])
    for t in range(1, 5):
        weights = [decay ** (t - 1 - i) for i in range(t)]
        expected = sum(w * x for w, x in zip(weights, iterates[:t])) / sum(weights)
        torch.testing.assert_close(shown[t - 1], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(averaged.result(), shown[-1])
    assert not torch.allclose(shown[-1], iterates[-1])


def test_average_restarts_at_each_level_and_the_next_level_starts_from_it(images, tiny_config, tiny_transfer):
    cfg = tiny_config(average=0.9, size=32, min_size=16, multiscale=True, level_iterations=(2, 2))
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    progress = [run.step() for _ in range(2)]
    assert run.state.average is None  # the level ended: nothing carried to the next size
    assert torch.equal(run.state.image, progress[-1].image)
    run.step()
    assert run.state.average.shape[-2:] == (24, 32)


def test_update_and_correct_average_by_hand():
    a = update_average(None, torch.tensor([2.0]), 0.5)
    assert float(corrected_average(a, 0.5, 1)) == 2.0
    a = update_average(a, torch.tensor([4.0]), 0.5)
    assert math.isclose(float(corrected_average(a, 0.5, 2)), (0.5 * 2 + 4) / 1.5, rel_tol=1e-6)


@pytest.mark.parametrize("options, field", [({"style_loss": "l1"}, "style_loss"), ({"average": 1.0}, "average"), ({"average": -0.1}, "average")])
def test_bad_values_name_the_field(options, field, tiny_config):
    with pytest.raises(ConfigError, match=field):
        tiny_config(**options)


def test_histogram_on_large_layers_is_binned_on_every_other_row_and_column(monkeypatch, images, tiny_config, tiny_transfer):
    import painterly.engine.style_terms as st

    monkeypatch.setattr(st, "HISTOGRAM_EXACT_ELEMENTS", 1000)  # the tiny encoder's relu1_1 at 32 px exceeds it
    cfg = tiny_config(style_loss="histogram", iterations=4)
    run = tiny_transfer(cfg).start(images.content_t, [images.style_t])
    progress = list(run)
    term = next(t for t in run.work.objective.terms if isinstance(t, st.HistogramTerm))
    # relu1_1 of a 24×32 image: its 12×16 every-other grid; relu4_1 (3×4) stays whole.
    assert term.targets["relu1_1"].shape[-1] == 12 * 16 and term.targets["relu4_1"].shape[-1] == 3 * 4
    assert progress[-1].losses["histogram"] > 0 and progress[-1].loss < progress[0].loss
