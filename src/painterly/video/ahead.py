"""The flow computed ahead: a small pipeline that decodes the next frames and computes their optical
flow in a background thread while the current frame is stylised.

Frames are sequential by nature (each starts from the previous *stylised* frame, warped), so frames
are never stylised in parallel. What depends on the input clip alone can run ahead: decoding a frame,
resizing it to the output size, and the backward flow with its consistency weights to frames i−1 (and
i−2, i−4 with long-term consistency). Only warping the previous result stays in the frame's turn.

OpenCV and torch release the GIL while they compute, so the thread overlaps with the stylisation;
at most ``ahead`` frames are held beyond the one being stylised (memory stays bounded).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import torch
from torch import Tensor

from ..errors import ConfigError, shown
from ..imageio import resize
from .flow import flow_pair

T = TypeVar("T")

FLOW_AHEAD_CUDA = 4
"""Frames computed ahead by default on a GPU (the CPU is idle there while the GPU stylises)."""
FLOW_AHEAD_CPU = 0
"""Frames computed ahead by default on the CPU: none (measured on a 2-core CPU, docs/video.md: the
flow thread competes with the stylisation for the same cores and saves nothing measurable)."""


def default_flow_ahead(device: torch.device) -> int:
    """How many frames to compute ahead on ``device`` when not told."""
    return FLOW_AHEAD_CUDA if device.type == "cuda" else FLOW_AHEAD_CPU


def check_flow_ahead(value: object) -> int:
    """``value`` if it is an integer ≥ 0, else a ConfigError naming ``flow_ahead``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"`flow_ahead` must be a non-negative integer (0: compute the flow inline), got {shown(value)}")
    return value


@dataclass(frozen=True)
class FrameFlows:
    """One input frame and what the temporal method needs of the input clip for it.

    ``index``: the frame's position (0 = first). ``frame``: ``(1, 3, H, W)`` in [0, 1], as decoded.
    ``flows``: for each earlier frame i−j compared with (j in the styler's steps, nearest first, only
    those that exist), the backward flow ``(1, 2, h, w)`` from this frame to frame i−j and the
    consistency weights ``(1, 1, h, w)`` in {0, 1}, at the output size ``(h, w)``; ``None`` for a
    frame that is not to be stylised (before ``start``) and ``()`` for the first frame.
    """

    index: int
    frame: Tensor
    flows: tuple[tuple[Tensor, Tensor], ...] | None


def with_flows(
    frames: Iterable[Tensor], size_of: Callable[[Tensor], tuple[int, int]], steps: Sequence[int], start: int = 0
) -> Iterator[FrameFlows]:
    """``frames`` with their flows to the earlier frames ``steps`` back (computed for frames from
    ``start`` on: the ones before are already done). Holds at most ``max(steps)`` earlier frames."""
    earlier: deque[Tensor] = deque(maxlen=max(steps))
    for index, frame in enumerate(frames):
        flows = None
        if index >= start - max(steps):
            current = resize(frame, size_of(frame))
            if index >= start:
                flows = tuple(flow_pair(earlier[-j], current) for j in steps if j <= len(earlier))
            earlier.append(current)
        yield FrameFlows(index, frame, flows)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def ahead(items: Iterable[T], n: int) -> Iterator[T]:
    """The items of ``items`` in order, up to ``n`` of them produced ahead in a background thread.

    At most ``n`` items have been taken from ``items`` and not yet handed on (a slot is taken before
    each item is made, given back when the consumer receives it). An exception raised by ``items``
    is raised here, at its place in the stream, after the items before it. Closing this iterator
    (``break``, an exception in the consumer) stops the thread and waits for it. ``n == 0``: inline.
    """
    if n <= 0:
        yield from items
        return
    slots = threading.Semaphore(n)
    out: queue.SimpleQueue[object] = queue.SimpleQueue()
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(items)
        try:
            while True:
                while not slots.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                try:
                    item = next(iterator)
                except StopIteration:
                    out.put(_END)
                    return
                out.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            out.put(_Failed(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="painterly-flow-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            slots.release()
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
