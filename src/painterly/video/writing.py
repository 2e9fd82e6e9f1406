"""Frames out: a video file written (encoded with PyAV) from stylised frames, atomically, at the clip's
frame rate or its frames' own times, with the clip's sound copied over.

Frames are ``(1, 3, H, W)`` float32 tensors in [0, 1] on the CPU, as every other image in painterly.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, ImageError
from .frames import require_av

VIDEO_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".gif": "gif", ".avi": "mpeg4"}
"""The encoder used for each output container, chosen by the file's extension."""


def to_uint8(frame: Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` in [0, 1] → ``(H, W, 3)`` uint8 (rounded, as a PNG stores it)."""
    return frame.detach().squeeze(0).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


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
    audio_start: float = 0.0,
    times: Sequence[float] | None = None,
) -> bool:
    """Encode ``frames`` into the video file ``target`` (atomically: the old file stays until the new
    one is complete), at ``fps``, with the audio streams of ``audio_from`` copied over unchanged
    (no re-encoding) when it has any and the container accepts them: from ``audio_start`` seconds into
    the source (where its frames were taken from; ``read_frames(first=...)``) to where the frames end.
    ``times``: the frames' own presentation times in seconds (a variable-frame-rate clip's, from
    :func:`~painterly.video.frames.frame_times`), kept to the millisecond; ``None`` (or an ``.avi``, which has no such times):
    frame i at i / ``fps``.

    Returns whether audio was carried over.
    """
    from ..files import write_with

    codec = check_video_output(target)
    fmt = {".m4v": "mp4", ".mkv": "matroska"}.get(Path(target).suffix.lower(), Path(target).suffix.lower().lstrip("."))
    carried = [False]
    write_with(target, lambda tmp: carried.__setitem__(0, _encode(tmp, fmt, codec, frames, Fraction(fps), audio_from, audio_start, times)))
    return carried[0]


def _encode(  # noqa: ANN001
    tmp: Path, fmt: str, codec: str, frames: Iterable[Tensor], fps: Fraction, audio_from, audio_start: float, times: Sequence[float] | None
) -> bool:
    av = require_av()
    source = av.open(str(audio_from)) if audio_from is not None and Path(audio_from).is_file() else None
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
            clock = None if times is None or codec == "mpeg4" else Fraction(1, 1000)  # AVI has one fixed rate
            count = 0
            for frame in frames:
                count += 1
                array = to_uint8(frame)
                if stream is None:
                    stream = _video_stream(out, codec, fps, array.shape[1], array.shape[0])
                    if clock is not None:
                        stream.codec_context.time_base = clock
                vf = av.VideoFrame.from_ndarray(array, format="rgb24")
                if clock is not None:
                    if count > len(times):
                        raise ConfigError(f"times has {len(times)} entries, fewer than the frames")
                    vf.pts, vf.time_base = round((times[count - 1] - times[0]) / clock), clock
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
                # The sound ends with the pictures (ffmpeg's -shortest): a video written so far
                # (--save-every) must not run on in black with the whole clip's soundtrack.
                begin = _start_seconds(source) + Fraction(audio_start).limit_denominator(1_000_000)
                end = begin + (count / fps if clock is None else times[count - 1] - times[0] + 1 / fps)
                for packet in source.demux(*[a for a, _ in audio_pairs]):
                    if packet.dts is None:
                        continue
                    if packet.pts is not None and packet.time_base:
                        at = packet.pts * packet.time_base
                        if at >= end or (audio_start and at < begin):
                            continue
                        if audio_start:  # a piece from within the clip: its sound starts with its first frame
                            shift = round(begin / packet.time_base)
                            packet.pts -= shift
                            packet.dts -= shift
                    packet.stream = by_index[packet.stream.index]
                    out.mux(packet)
            return bool(audio_pairs)
    finally:
        if source is not None:
            source.close()


def _start_seconds(container) -> float:  # noqa: ANN001
    """When the source's video starts (its first frame's time; 0 for most files)."""
    video = container.streams.video[0] if container.streams.video else None
    if video is None or video.start_time is None or not video.time_base:
        return 0.0
    return float(video.start_time * video.time_base)


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
