"""The flow computed ahead (issue 16, item 5): the same frames bit for bit as inline, a bounded
number of frames held ahead, errors raised at their place in the stream, and the thread stopped."""

from __future__ import annotations

import threading
import time

import pytest
import torch
import torch.nn.functional as F

from painterly.errors import ConfigError, ImageError
from painterly.video.ahead import ahead, check_flow_ahead

pytest.importorskip("cv2")


def ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "painterly-flow-ahead"]


class Source:
    """Items 0, 1, 2 ... counted as they are made; optionally an error in place of item ``fail_at``."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at, self.made = n, fail_at, 0

    def __iter__(self):  # noqa: ANN204
        for i in range(self.n):
            if i == self.fail_at:
                raise ImageError(f"frame {i + 1} is 40x36 px but the first frame is 48x36")
            self.made += 1
            yield i


def wait_until(condition, seconds: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize("n", [1, 3])
def test_ahead_holds_at_most_n_items_and_fills_up_to_n(n: int) -> None:
    source = Source(10)
    received = []
    for item in ahead(source, n):
        received.append(item)
        # The thread fills the free slots: it makes exactly n beyond what was received, never more.
        wait_until(lambda: source.made >= min(len(received) + n, 10))
        time.sleep(0.02)
        assert source.made - len(received) <= n
    assert received == list(range(10))
    assert ahead_threads() == []


def test_ahead_zero_is_inline() -> None:
    source = Source(5)
    for i, item in enumerate(ahead(source, 0)):
        assert item == i and source.made == i + 1
    assert ahead_threads() == []


def test_an_error_in_the_thread_is_raised_at_its_place_and_the_thread_ends() -> None:
    received = []
    with pytest.raises(ImageError, match="frame 4 is 40x36 px"):
        for item in ahead(Source(10, fail_at=3), 2):
            received.append(item)
    assert received == [0, 1, 2]
    assert ahead_threads() == []


def test_leaving_early_stops_the_thread() -> None:
    stream = ahead(Source(1000), 2)
    assert next(stream) == 0
    stream.close()
    assert ahead_threads() == []
    with pytest.raises(RuntimeError):
        for _ in ahead(Source(1000), 2):
            raise RuntimeError("the consumer failed")
    assert ahead_threads() == []


def test_check_flow_ahead() -> None:
    assert check_flow_ahead(0) == 0 and check_flow_ahead(3) == 3
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="flow_ahead must be a non-negative integer"):
            check_flow_ahead(bad)


def clip(n: int = 6, h: int = 36, w: int = 48) -> list[torch.Tensor]:
    """A smooth texture panning by 2 px a frame."""
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand((1, 3, 6, 8), generator=g), size=(h, w + 2 * n), mode="bicubic", align_corners=False).clamp(0, 1)
    return [base[..., 2 * i : 2 * i + w].contiguous() for i in range(n)]


def stylise(transfer, style, frames, flow_ahead: int | None, start: int = 0) -> list[torch.Tensor]:  # noqa: ANN001
    from painterly.video.sequence import ClipStyler, VideoSettings

    styler = ClipStyler(transfer, [style], VideoSettings(frame_iterations=2, long_term=True))
    results = []
    if flow_ahead is None:  # no pipeline at all: each frame's flow computed in start()
        items = [(f, None) for f in frames]
    else:
        items = [(item.frame, item.flows) for item in styler.frames(iter(frames), flow_ahead=flow_ahead)]
    for frame, flows in items:
        run = styler.start(frame, flows)
        for _ in run:
            pass
        results.append(run.result())
        styler.push(frame, results[-1])
    return results


def test_flow_ahead_gives_the_same_frames_bit_for_bit(tiny_transfer, tiny_config, images) -> None:  # noqa: ANN001
    frames = clip()
    transfer = tiny_transfer(tiny_config(size=48, iterations=3, seed=0))
    inline = stylise(transfer, images.style_t, frames, 0)
    for n in (None, 2):
        other = stylise(transfer, images.style_t, frames, n)
        assert all(torch.equal(a, b) for a, b in zip(inline, other, strict=True)), n
    assert not torch.equal(inline[-1], inline[-2])  # the frames really differ: the comparison means something


def test_frames_from_start_carry_flows_and_earlier_ones_none(tiny_transfer, tiny_config, images) -> None:  # noqa: ANN001
    from painterly.video.sequence import ClipStyler, VideoSettings

    styler = ClipStyler(tiny_transfer(tiny_config(size=48)), [images.style], VideoSettings(long_term=True))
    items = list(styler.frames(iter(clip(7)), start=3, flow_ahead=2))
    assert [i.index for i in items] == list(range(7))
    assert [i.flows for i in items[:3]] == [None, None, None]
    assert [len(i.flows) for i in items[3:]] == [2, 3, 3, 3]  # i-1, i-2 for frame 4; i-1, i-2, i-4 after
    backward, trust = items[3].flows[0]
    assert backward.shape == (1, 2, 36, 48) and trust.shape == (1, 1, 36, 48)
    assert ahead_threads() == []
