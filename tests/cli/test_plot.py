"""--plot's chart (issue 19), drawn from a real run's progress and from its loss log (a resumed run's
plot starts from the log)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import pixel_cost_run
from painterly.cli.plot import COLORS, LEVEL, PLOT_SIZE, LossHistory, draw_plot
from painterly.cli.report import LossLog


def test_the_log_and_the_live_progress_draw_the_same_chart(tmp_path, single_thread) -> None:
    run, _ = pixel_cost_run(seconds_per_megapixel=0.0, level_iterations=(4, 3, 3))
    live, log = LossHistory(), LossLog(tmp_path / "run.jsonl")
    for p in run:
        live.add(p)
        log.write(p)
    log.close()
    from_log = LossHistory.from_log(tmp_path / "run.jsonl")
    assert len(from_log) == len(live) == 10
    drawn = np.asarray(draw_plot(live))
    assert drawn.shape == (PLOT_SIZE[1], PLOT_SIZE[0], 3)
    # The log rounds the seconds to 0.1 ms: the same chart to within a pixel column here and there.
    assert (np.asarray(draw_plot(from_log)) != drawn).any(axis=-1).mean() < 0.01
    half = PLOT_SIZE[1] // 2
    for color in (*COLORS.values(), LEVEL):  # every term, and the dashed level changes, in both panels
        hits = np.all(drawn == color, axis=-1)
        assert hits[:half].sum() > 10 and hits[half:].sum() > 10, color


def test_an_empty_or_missing_log_is_an_empty_history(tmp_path) -> None:
    assert len(LossHistory.from_log(None)) == 0
    assert len(LossHistory.from_log(tmp_path / "none.jsonl")) == 0
    image = draw_plot(LossHistory())  # axes only, no crash
    assert image.size == PLOT_SIZE


def test_a_log_in_use_by_another_run_is_refused_and_left_alone(tmp_path):
    """Two runs given the same --log: the second stops with one line naming the field, and the first
    run's lines are neither emptied nor interleaved."""
    from painterly.errors import ConfigError

    path = tmp_path / "run.jsonl"
    first = LossLog(path)
    first.file.write('{"iteration": 1}\n')
    first.file.flush()
    with pytest.raises(ConfigError, match="log .* is being written by another painterly run"):
        LossLog(path)
    with pytest.raises(ConfigError, match="another painterly run"):
        LossLog(path, resume_at=0)
    assert path.read_text() == '{"iteration": 1}\n'
    first.close()
    LossLog(path).close()  # free again once the first run has closed it
    assert path.read_text() == ""
