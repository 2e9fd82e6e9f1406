"""Frames in and out: a video file (decoded with PyAV) or a folder / glob pattern of images, streamed
one frame at a time (a clip is never held in memory whole).

Frames are ``(1, 3, H, W)`` float32 tensors in [0, 1] on the CPU, as every other image in painterly.
Every frame of one source must have the size of the first: a size that changes mid-stream is an
:class:`~painterly.errors.ImageError` naming the frame.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, ImageError, PainterlyWarning, shown
from ..imageio import DEFAULT_MAX_PIXELS
from ..imageio.decoding import check_pixel_count

DEFAULT_FRAME_RATE = Fraction(24)
"""The frame rate of a folder of frames (it has none of its own)."""
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
INSTALL_HINT = "video needs PyAV and OpenCV: pip install 'painterly[video]'"


def require_av():  # noqa: ANN201
    """The ``av`` module, or a one-line ConfigError saying how to install it."""
    try:
        import av
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What is known of a source before decoding it: frame rate, size ``(height, width)``, the frame
    count the container declares (``None``: unknown until decoded) and whether it has audio."""

    fps: Fraction
    size: tuple[int, int]
    frames: int | None
    has_audio: bool
    kind: str
    """``"video"`` (a container file) or ``"images"`` (a folder or pattern of frames)."""
    duration: float | None = None
    """Seconds of video the container declares (``None``: unknown); with ``fps``, about how many
    frames a file without a frame count should hold (a file that ends far short of it is damaged)."""
    times: tuple[float, ...] | None = None
    """A variable-frame-rate clip's frame times in seconds from its first frame (:func:`frame_times`);
    ``None`` where frame i is shown at i / ``fps``."""

    @property
    def expected_frames(self) -> int | None:
        """The frame count declared, else estimated from the declared duration (``None``: unknown)."""
        if self.frames:
            return self.frames
        return round(self.duration * float(self.fps)) if self.duration else None

    def frame_range(self, start: float = 0.0, duration: float | None = None) -> tuple[int, int | None]:
        """The frames of ``duration`` seconds (``None``: to the end) from ``start`` seconds in: the first
        one's index and how many (``None``: to the end); for :func:`read_frames`' ``first``, ``count``.

        Raises:
            ConfigError: a start past the clip's end, or a duration shorter than one frame.
        """
        if self.times is None:
            first = round(start * self.fps)
            count = None if duration is None else round(duration * self.fps)
            known = self.expected_frames
            end = None if known is None else float(known / self.fps)
        else:
            # A variable frame rate (a phone's clip): the frame shown nearest ``start``, and the frames
            # shown within ``duration`` of it, by their own times (the average rate misplaces them).
            times, half = self.times, 0.5 / float(self.fps)
            known = len(times)
            first = known if start > times[-1] + half else min(range(known), key=lambda i: abs(times[i] - start))
            count = None if duration is None else sum(1 for t in times[first:] if t - times[first] < duration - 0.001)
            end = max(self.duration or 0.0, times[-1] + 2 * half)
        if count is not None and count < 1:
            raise ConfigError(f"`duration` {duration:g} s is less than one frame at {float(self.fps):g} fps")
        if known is not None and first >= known:
            raise ConfigError(f"`start` {start:g} s is past the end of the clip ({end:.1f} s)")
        return first, count


def is_frame_folder(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a folder of frames rather than a video file: what
    :func:`is_folder_output` takes for a folder, or a glob pattern."""
    return is_folder_output(target) or glob.has_magic(str(target))


def is_folder_output(target: str | os.PathLike[str]) -> bool:
    """Whether the output ``target`` names a folder for the frames: an existing folder, a name ending in
    a separator, or a name without an extension. Unlike :func:`is_frame_folder` a pattern character
    counts for nothing here (``My clip [final].mp4`` is a video file name, not a folder)."""
    text = str(target)
    return Path(text).is_dir() or text.endswith(("/", os.sep)) or Path(text).suffix == ""


def frame_files(source: str | os.PathLike[str]) -> list[Path]:
    """The image files of a frame folder or of a glob pattern, in frame order: sorted by name with
    numbers compared as numbers (``frame2.png`` before ``frame10.png``, as most tools number frames)."""
    text = str(source)
    if Path(text).is_dir():
        paths = [p for p in Path(text).iterdir() if p.suffix.lower() in FRAME_EXTENSIONS and not p.name.startswith(".")]
    else:
        paths = [Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in FRAME_EXTENSIONS]
    return sorted(paths, key=_frame_order)


def _frame_order(path: Path) -> tuple:
    # Zero-padded names keep their order; unpadded ones (frame2, frame10) are not scrambled.
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts)


def frame_times(source: str | os.PathLike[str], fps: Fraction) -> list[float] | None:
    """The presentation times of a variable-frame-rate clip's frames, in seconds from its first frame,
    in order, read from its packets (nothing is decoded): a phone's clip keeps its timing through
    :func:`write_video`'s ``times``. ``None`` where frame i is shown at i / ``fps`` already (within
    half a frame), for a folder of frames, and for a file whose packets do not all carry a time."""
    text = str(source)
    if is_frame_folder(text) and not Path(text).is_file():
        return None
    av = require_av()
    try:
        with av.open(text) as container:
            stream = main_video_stream(container)
            stamps = [p.pts for p in container.demux(stream) if p.size]
    except (av.FFmpegError, OSError, ValueError):
        return None
    if not stamps or any(t is None for t in stamps):
        return None
    stamps.sort()  # packets come in decoding order (B-frames): the frames are shown in time order
    times = [float((t - stamps[0]) * stream.time_base) for t in stamps]
    steady = all(abs(t - i / fps) <= 0.5 / fps for i, t in enumerate(times))
    rising = all(b - a >= 0.001 for a, b in zip(times, times[1:]))  # kept to the millisecond
    return None if steady or not rising else times


def probe(source: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> VideoInfo:
    """Open ``source`` just far enough to know its :class:`VideoInfo` (a video: its header and first
    frame). ``size`` is as the clip is shown: a rotation the video declares (a phone's portrait clip)
    is applied, as :func:`read_frames` applies it.

    Raises:
        ImageError: no such file, not a video, no frames, frames of more than ``max_pixels`` pixels
            (one line, naming the file).
    """
    text = str(source)
    if is_frame_folder(text) and not Path(text).is_file():
        files = frame_files(text)
        if not files:
            raise ImageError(f"{text}: no frames found (expected images such as 000001.png)")
        from ..imageio import declared_size

        size = declared_size(files[0])
        check_pixel_count(size[::-1], max_pixels, text)
        return VideoInfo(DEFAULT_FRAME_RATE, size, len(files), False, "images")
    if not Path(text).exists():
        raise ImageError(f"{text}: no such file")
    av = require_av()
    try:
        with av.open(text) as container:
            stream = main_video_stream(container)
            if stream is None:
                raise ImageError(f"{text}: has no video stream")
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                # FFmpeg opens a photo as a clip of one frame: minutes of work for a one-frame video.
                raise ImageError(f"{text}: is a still image, not a video (painterly stylize paints a picture; a video may also be a folder of frames)")
            fps = stream.average_rate or stream.guessed_rate or DEFAULT_FRAME_RATE
            frames = stream.frames or None
            # The declared size is checked before a frame is decoded (a 100-megapixel frame is 1.2 GB as floats).
            check_pixel_count((stream.width, stream.height), max_pixels, text)
            first = next(iter(container.decode(stream)), None)
            if first is None:
                raise ImageError(f"{text}: has no frames (a damaged or truncated file?)")
            size = (first.height, first.width) if _quarter_turns(first) % 2 == 0 else (first.width, first.height)
            audio = bool(container.streams.audio)
            duration = _duration(container, stream)
        times = frame_times(text, Fraction(fps))  # the packets read once more: no frame is decoded
        return VideoInfo(Fraction(fps), size, frames, audio, "video", duration, None if times is None else tuple(times))
    except ImageError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ImageError(f"{text}: not a video painterly can read ({_reason(exc)})") from None


def read_frames(
    source: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS, first: int = 0, count: int | None = None
) -> Iterator[Tensor]:
    """The frames of ``source`` in order, decoded one at a time, upright (a rotation the video
    declares is applied): all of them, or ``count`` frames (``None``: to the end) from frame
    ``first`` (0-based; the frames before it are decoded and dropped).

    A video that ends well short of the frames it declares (a truncated download, a damaged tail)
    yields the frames it has and then warns (:class:`~painterly.errors.PainterlyWarning`).

    Raises:
        ConfigError: ``first`` or ``count`` is not an integer ≥ 0 (``count`` ≥ 1).
        ImageError: not a video, zero frames, a frame of more than ``max_pixels`` pixels, or a frame
            whose size differs from the first's.
    """
    if isinstance(first, bool) or not isinstance(first, int) or first < 0:
        raise ConfigError(f"first must be an integer ≥ 0, got {shown(first)}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ConfigError(f"count must be a positive integer or None, got {shown(count)}")
    every = _every_frame(str(source), max_pixels)
    return every if first == 0 and count is None else islice(every, first, None if count is None else first + count)


def _every_frame(text: str, max_pixels: int) -> Iterator[Tensor]:
    info = probe(text, max_pixels=max_pixels)
    it = _image_frames(text, max_pixels) if info.kind == "images" else _video_frames(text, max_pixels)
    size = None
    count = 0
    for index, frame in enumerate(it):
        hw = tuple(frame.shape[-2:])
        if size is None:
            size = hw
        elif hw != size:
            raise ImageError(
                f"{text}: frame {index + 1} is {hw[1]}x{hw[0]} px but the first frame is {size[1]}x{size[0]}; "
                "every frame must have one size"
            )
        count += 1
        yield frame
    if count == 0:
        raise ImageError(f"{text}: has no frames")
    expected = info.expected_frames
    if info.kind == "video" and expected is not None and count < expected - max(1, expected // 20):
        warnings.warn(
            f"{text}: the video ends after {count} frame{'' if count == 1 else 's'}, short of the {expected} it declares "
            "(a damaged or truncated file?); only those are stylised",
            PainterlyWarning,
            stacklevel=2,
        )


def _image_frames(source: str, max_pixels: int) -> Iterator[Tensor]:
    from ..imageio import load_image

    for path in frame_files(source):
        yield load_image(path, max_pixels=max_pixels)


def _video_frames(source: str, max_pixels: int) -> Iterator[Tensor]:
    av = require_av()
    try:
        with av.open(source) as container:
            stream = main_video_stream(container)
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                check_pixel_count((frame.width, frame.height), max_pixels, f"{source}: frame {index + 1}")
                array = frame.to_ndarray(format="rgb24")
                turns = _quarter_turns(frame)
                if turns:
                    array = np.ascontiguousarray(np.rot90(array, turns))
                yield torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    except av.FFmpegError as exc:
        raise ImageError(f"{source}: cannot decode ({_reason(exc)})") from None


def main_video_stream(container):  # noqa: ANN001, ANN202
    """The clip's main video stream as FFmpeg chooses it (not a cover picture or a thumbnail track
    that happens to come first); ``None`` when there is none."""
    try:
        return container.streams.best("video")
    except (AttributeError, ValueError):  # an older PyAV: the first video stream
        return container.streams.video[0] if container.streams.video else None


def _quarter_turns(frame) -> int:  # noqa: ANN001
    """Counter-clockwise quarter turns that show ``frame`` upright: its display matrix's rotation
    (FFmpeg's convention, counter-clockwise degrees; a phone's portrait clip says 90 or -90)."""
    rotation = getattr(frame, "rotation", 0) or 0
    return round(rotation / 90) % 4


def _duration(container, stream) -> float | None:  # noqa: ANN001
    """Seconds of the video stream, as declared: the stream's own duration, or its DURATION tag
    (Matroska), or the container's when the video is its only stream."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION")
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    if container.duration and len(container.streams) == 1:
        return container.duration / 1_000_000
    return None


def _reason(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())[:200]
