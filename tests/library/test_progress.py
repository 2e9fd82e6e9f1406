"""Progress in work, not iterations (issue 19): each level's iterations weighted by its pixels, so that
the fraction done and the ETA hold across the levels of a multi-scale run.

The timed tests run over ``PixelCostEncoder`` (tests/conftest.py): every evaluation really costs a
time proportional to its pixels, so the truth is known and the estimate can be checked against it.
"""

from __future__ import annotations

import math

import pytest

from conftest import pixel_cost_run
from painterly.engine import Run, RunState
from painterly.engine.pyramid import level_size


def test_work_is_iterations_weighted_by_each_levels_pixels(single_thread) -> None:
    run, _ = pixel_cost_run(seconds_per_megapixel=0.0, level_iterations=(3, 2, 2))
    sizes = [level_size(run.inputs, lv.size) for lv in run.levels]
    assert sizes == [(32, 32), (64, 64), (128, 128)]
    total = (3 * 32 * 32 + 2 * 64 * 64 + 2 * 128 * 128) / 1e6
    seen = list(run)
    assert all(p.work_total == pytest.approx(total) for p in seen)
    # After each iteration: the levels before, whole, plus this level's iterations at its size.
    expected, done = [], 0.0
    for lv, (h, w) in zip(run.levels, sizes):
        for _ in range(lv.iterations):
            done += h * w / 1e6
            expected.append(done)
    assert [p.work_done for p in seen] == pytest.approx(expected)
    assert seen[-1].work_fraction == pytest.approx(1.0)
    # The iteration count says 3/7 done after the first level; the work says 3 % of it.
    assert seen[2].fraction == pytest.approx(3 / 7)
    assert seen[2].work_fraction == pytest.approx(3 * 1024 / (total * 1e6))


def test_eta_at_a_third_of_a_multilevel_run_is_within_a_quarter_of_the_truth(single_thread) -> None:
    # 32, 64, 128 px; 12, 6, 6 iterations: a third of the work is done early in the last level, when
    # three quarters of the iterations are.
    run, encoder = pixel_cost_run(seconds_per_megapixel=20.0, level_iterations=(12, 6, 6))
    seen = [(p.iteration, p.work_fraction, p.eta, p.elapsed) for p in run]
    end = seen[-1][3]
    iteration, fraction, eta, elapsed = next(s for s in seen if s[1] >= 1 / 3)
    truth = end - elapsed
    assert truth > 0 and eta is not None
    assert abs(eta - truth) <= 0.25 * truth, (iteration, fraction, eta, truth)
    # What the iteration count alone says there is far off: the test tells a true ETA from a naive one.
    naive = elapsed * (run.total_iterations - iteration) / iteration
    assert abs(naive - truth) > 0.5 * truth, (naive, truth)


def test_level_rate_is_the_current_levels(single_thread) -> None:
    run, encoder = pixel_cost_run(seconds_per_megapixel=20.0, level_iterations=(8, 4, 5))
    seen = list(run)
    final = [p for p in seen if p.level == 2]
    # One 128 px evaluation per iteration, by the cost model (plus the tiny network's own time).
    rate = final[-1].level_rate
    assert rate == pytest.approx(1 / encoder.seconds((128, 128)), rel=0.25)
    # Iterations per second since the first iteration (which pays the process's warm-up).
    average = (seen[-1].iteration - 1) / (seen[-1].elapsed - seen[0].elapsed)
    assert average > 1.5 * rate  # an average over the levels says much more


def test_level_start_survives_a_checkpoint(single_thread, tiny_transfer) -> None:
    run, _ = pixel_cost_run(seconds_per_megapixel=0.0, level_iterations=(2, 2, 2))
    for _ in range(3):
        run.step()
    state = run.state
    assert 0 < state.level_started <= state.elapsed and state.level_index == 1
    again = RunState.from_dict(state.to_dict())
    assert again.level_started == state.level_started
    resumed = Run(run.transfer, run.inputs, again)
    p = resumed.step()
    assert p.level == 1 and p.level_iteration == 2
    # Its rate is measured from the level's first iteration, across the interruption.
    assert math.isclose(p.work_rate, (2 - 1) * (64 * 64 / 1e6) / (p.elapsed - state.level_started), rel_tol=1e-9)
    # A checkpoint written before this field existed still loads (its level started at 0).
    old = {k: v for k, v in state.to_dict().items() if k != "level_started"}
    assert RunState.from_dict(old).level_started == 0.0
