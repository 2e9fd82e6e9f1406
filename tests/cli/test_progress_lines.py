"""The command's plain progress lines (logs, CI: stderr is not a terminal), issue 19: one line per
tenth of the *work*, with the current level's rate, not an average since the start.

The run is real and in this process, over ``PixelCostEncoder`` (tests/conftest.py): each evaluation
costs a time proportional to its pixels, so the true rate of each level is known.
"""

from __future__ import annotations

import io
import re

import pytest

from conftest import pixel_cost_run
from painterly.cli.report import ProgressBar, clock

LINE = re.compile(r"\[\s*(\d+)/(\d+)\]\s+(\d+)% (?:level (\d)/3 )?(\d+)x(\d+) ([\d.]+) it/s ETA (\S+) loss=")


def test_plain_lines_show_the_current_levels_rate_and_tenths_of_the_work(single_thread) -> None:
    run, encoder = pixel_cost_run(seconds_per_megapixel=20.0, level_iterations=(8, 4, 6))
    stream = io.StringIO()  # not a terminal: plain lines
    bar = ProgressBar(run.total_iterations, stream=stream)
    seen = []
    for p in run:
        bar.update(p)
        seen.append(p)
    bar.close()
    lines = [LINE.match(line) for line in stream.getvalue().splitlines()]
    assert lines and all(lines), stream.getvalue()
    percents = [int(m.group(3)) for m in lines]
    assert percents[-1] == 100 and percents == sorted(percents)
    # A line per tenth of the work: each iteration of the last level is 13 % of it, and has its line.
    assert sum(1 for m in lines if m.group(4) == "3") == 6
    final = [m for m in lines if m.group(4) == "3" and int(m.group(1)) > 8 + 4 + 1]
    assert final
    truth = 1 / encoder.seconds((128, 128))
    # Iterations per second since the first iteration (which pays the process's warm-up).
    average = (seen[-1].iteration - 1) / (seen[-1].elapsed - seen[0].elapsed)
    for m in final:
        rate = float(m.group(7))
        assert rate == pytest.approx(truth, rel=0.25), (m.group(0), truth)
        assert average > 1.5 * rate  # what "iterations / seconds since the start" would have printed


def test_clock() -> None:
    assert clock(None) == "?" and clock(float("inf")) == "?"
    assert clock(5.4) == "0:05" and clock(65) == "1:05" and clock(3725) == "1:02:05"
