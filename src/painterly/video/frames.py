"""Frames in and out: a video file (decoded with PyAV) or a folder / glob pattern of images, streamed
one frame at a time (a clip is never held in memory whole).

Frames are ``(1, 3, H, W)`` float32 tensors in [0, 1] on the CPU, as every other image in painterly.
Every frame of one source must have the size of the first: a size that changes mid-stream is an
:class:`~painterly.errors.ImageError` naming the frame.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, ImageError

VIDEO_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".gif": "gif", ".avi": "mpeg4"}
"""The encoder used for each output container, chosen by the file's extension."""
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


def is_frame_folder(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a folder of frames rather than a video file: an existing folder, a name
    ending in a separator, a glob pattern, or a name without an extension."""
    text = str(target)
    return Path(text).is_dir() or text.endswith(("/", os.sep)) or glob.has_magic(text) or Path(text).suffix == ""


def frame_files(source: str | os.PathLike[str]) -> list[Path]:
    """The image files of a frame folder (sorted by name) or of a glob pattern (sorted)."""
    text = str(source)
    if Path(text).is_dir():
        paths = [p for p in Path(text).iterdir() if p.suffix.lower() in FRAME_EXTENSIONS and not p.name.startswith(".")]
    else:
        paths = [Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in FRAME_EXTENSIONS]
    return sorted(paths)


def probe(source: str | os.PathLike[str]) -> VideoInfo:
    """Open ``source`` just far enough to know its :class:`VideoInfo`.

    Raises:
        ImageError: no such file, not a video, no frames (one line, naming the file).
    """
    text = str(source)
    if is_frame_folder(text) and not Path(text).is_file():
        files = frame_files(text)
        if not files:
            raise ImageError(f"{text}: no frames found (expected images such as 000001.png)")
        from ..imageio import declared_size

        return VideoInfo(DEFAULT_FRAME_RATE, declared_size(files[0]), len(files), False, "images")
    if not Path(text).exists():
        raise ImageError(f"{text}: no such file")
    av = require_av()
    try:
        with av.open(text) as container:
            if not container.streams.video:
                raise ImageError(f"{text}: has no video stream")
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                # FFmpeg opens a photo as a clip of one frame: minutes of work for a one-frame video.
                raise ImageError(f"{text}: is a still image, not a video (painterly stylize paints a picture; a video may also be a folder of frames)")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or DEFAULT_FRAME_RATE
            frames = stream.frames or None
            return VideoInfo(Fraction(fps), (stream.height, stream.width), frames, bool(container.streams.audio), "video")
    except ImageError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ImageError(f"{text}: not a video painterly can read ({_reason(exc)})") from None


def read_frames(source: str | os.PathLike[str]) -> Iterator[Tensor]:
    """Every frame of ``source`` in order, decoded one at a time.

    Raises:
        ImageError: not a video, zero frames, or a frame whose size differs from the first's.
    """
    text = str(source)
    info = probe(text)
    it = _image_frames(text) if info.kind == "images" else _video_frames(text)
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


def _image_frames(source: str) -> Iterator[Tensor]:
    from ..imageio import load_image

    for path in frame_files(source):
        yield load_image(path)


def _video_frames(source: str) -> Iterator[Tensor]:
    av = require_av()
    try:
        with av.open(source) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                array = frame.to_ndarray(format="rgb24")
                yield torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    except av.FFmpegError as exc:
        raise ImageError(f"{source}: cannot decode ({_reason(exc)})") from None


def to_uint8(frame: Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` in [0, 1] → ``(H, W, 3)`` uint8 (rounded, as a PNG stores it)."""
    return frame.detach().squeeze(0).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def quantize(frame: Tensor) -> Tensor:
    """The frame as it will read back from an 8-bit file (so a resumed clip sees what a straight run saw)."""
    return frame.detach().clamp(0, 1).mul(255).round().div(255).cpu()


def check_video_output(path: str | os.PathLike[str]) -> str:
    """The codec for the output file ``path``, or a ConfigError naming the containers painterly writes."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_CODECS:
        raise ConfigError(f"{path}: cannot write {suffix or 'a file without extension'} video; use one of {', '.join(VIDEO_CODECS)} (or a folder for frames)")
    return VIDEO_CODECS[suffix]


def write_video(
    target: str | os.PathLike[str],
    frames: Iterable[Tensor],
    fps: Fraction,
    *,
    audio_from: str | os.PathLike[str] | None = None,
) -> bool:
    """Encode ``frames`` into the video file ``target`` (atomically: the old file stays until the new
    one is complete), at ``fps``, with the audio streams of ``audio_from`` copied over unchanged
    (no re-encoding) when it has any and the container accepts them.

    Returns whether audio was carried over.
    """
    from ..files import write_with

    codec = check_video_output(target)
    fmt = {".m4v": "mp4", ".mkv": "matroska"}.get(Path(target).suffix.lower(), Path(target).suffix.lower().lstrip("."))
    carried = [False]
    write_with(target, lambda tmp: carried.__setitem__(0, _encode(tmp, fmt, codec, frames, Fraction(fps), audio_from)))
    return carried[0]


def _encode(tmp: Path, fmt: str, codec: str, frames: Iterable[Tensor], fps: Fraction, audio_from) -> bool:  # noqa: ANN001
    av = require_av()
    source = av.open(str(audio_from)) if audio_from is not None and not is_frame_folder(audio_from) else None
    try:
        with av.open(str(tmp), "w", format=fmt) as out:
            stream = None
            audio_pairs = []
            if source is not None:
                for in_audio in source.streams.audio:
                    try:
                        audio_pairs.append((in_audio, out.add_stream_from_template(in_audio)))
                    except (av.FFmpegError, ValueError):  # a codec the container refuses: the video goes without it
                        pass
            for frame in frames:
                array = to_uint8(frame)
                if stream is None:
                    stream = _video_stream(out, codec, fps, array.shape[1], array.shape[0])
                vf = av.VideoFrame.from_ndarray(array, format="rgb24")
                if (vf.width, vf.height) != (stream.width, stream.height):
                    vf = vf.reformat(width=stream.width, height=stream.height)
                for packet in stream.encode(vf):
                    out.mux(packet)
            if stream is None:
                raise ImageError(f"{tmp}: no frames to write")
            for packet in stream.encode():
                out.mux(packet)
            if audio_pairs:
                by_index = {a.index: o for a, o in audio_pairs}
                for packet in source.demux(*[a for a, _ in audio_pairs]):
                    if packet.dts is None:
                        continue
                    packet.stream = by_index[packet.stream.index]
                    out.mux(packet)
            return bool(audio_pairs)
    finally:
        if source is not None:
            source.close()


def _video_stream(out, codec: str, fps: Fraction, width: int, height: int):  # noqa: ANN001, ANN202
    stream = out.add_stream(codec, rate=fps)
    if codec == "gif":
        stream.pix_fmt = "rgb8"
        stream.width, stream.height = width, height
    else:
        # 4:2:0 chroma needs even sides; the last row/column is dropped by the scaler's resize.
        stream.pix_fmt = "yuv420p"
        stream.width, stream.height = width - width % 2 or 2, height - height % 2 or 2
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "medium"}
    return stream


def _reason(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())[:200]
