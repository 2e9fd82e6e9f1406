"""Frames in and out (painterly.video.frames): encoded round trips, folders, audio, bad input."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

av = pytest.importorskip("av")

from painterly.errors import ConfigError, ImageError, PainterlyWarning, TooManyPixels  # noqa: E402
from painterly.imageio import save_image  # noqa: E402
from painterly.video.frames import frame_files, frame_times, probe, read_frames  # noqa: E402
from painterly.video.writing import write_video  # noqa: E402

from conftest import clip_with_audio, clip_with_times  # noqa: E402


def synthetic_frames(n: int = 6, h: int = 48, w: int = 64) -> list[torch.Tensor]:
    """Smooth frames that differ from each other (a gradient that slides), (1, 3, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand((1, 3, 5, 6), generator=g), size=(h, w + 4 * n), mode="bicubic", align_corners=False).clamp(0, 1)
    return [base[..., 4 * i : 4 * i + w].contiguous() for i in range(n)]


@pytest.mark.parametrize("suffix, tolerance", [(".mp4", 0.03), (".webm", 0.04), (".mkv", 0.03)])
def test_round_trip_through_an_encoded_video(tmp_path: Path, suffix: str, tolerance: float):
    frames = synthetic_frames()
    path = tmp_path / f"clip{suffix}"
    write_video(path, iter(frames), Fraction(12))
    info = probe(path)
    assert info.kind == "video" and info.size == (48, 64) and info.fps == 12 and not info.has_audio
    back = list(read_frames(path))
    assert len(back) == len(frames)
    for a, b in zip(frames, back):
        assert b.shape == a.shape and b.dtype == torch.float32
        assert (a - b).abs().mean() < tolerance
    # Frame order is kept: each frame is nearest to its own original.
    for i, b in enumerate(back):
        assert min(range(len(frames)), key=lambda j: (frames[j] - b).abs().mean()) == i


def test_gif_round_trip(tmp_path: Path):
    frames = synthetic_frames(4)
    write_video(tmp_path / "clip.gif", iter(frames), Fraction(10))
    back = list(read_frames(tmp_path / "clip.gif"))
    assert len(back) == 4 and back[0].shape == frames[0].shape
    assert (back[2] - frames[2]).abs().mean() < 0.08  # 256 colours


def test_frames_folder_and_pattern_in_order(tmp_path: Path):
    frames = synthetic_frames(3)
    for i, f in enumerate(frames):
        save_image(f, tmp_path / f"f_{i + 1:03d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    for source in (tmp_path, str(tmp_path / "f_*.png")):
        info = probe(source)
        assert info.kind == "images" and info.frames == 3 and info.size == (48, 64)
        back = list(read_frames(source))
        assert len(back) == 3
        for a, b in zip(frames, back):
            assert (a - b).abs().max() <= 0.5 / 255 + 1e-6


def test_audio_is_carried_over(tmp_path: Path):
    source = clip_with_audio(tmp_path / "with_audio.mp4", synthetic_frames(5), 10, audio_seconds=0.5)
    assert probe(source).has_audio
    target = tmp_path / "out.mp4"
    carried = write_video(target, read_frames(source), probe(source).fps, audio_from=source)
    assert carried
    info = probe(target)
    assert info.has_audio and info.fps == 10 and len(list(read_frames(target))) == 5


def audio_seconds(path: Path) -> float:
    """Where the last audio packet of ``path`` ends, in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        ends = [(p.pts + (p.duration or 0)) * stream.time_base for p in container.demux(stream) if p.pts is not None]
    return float(max(ends))


def test_the_sound_ends_with_the_pictures(tmp_path: Path):
    """A video written so far (--save-every: 3 frames of a 12-frame clip) carried the whole clip's
    soundtrack, playing on over a frozen last frame; the sound now stops with the pictures."""
    source = clip_with_audio(tmp_path / "with_audio.mp4", synthetic_frames(12), 10, audio_seconds=1.2)
    assert audio_seconds(source) > 1.1
    frames = list(read_frames(source))
    for n in (3, 12):
        target = tmp_path / f"first_{n}.mp4"
        assert write_video(target, iter(frames[:n]), Fraction(10), audio_from=source)
        # AAC packets are 1024 samples (46 ms at 22.05 kHz): the last one may reach past the cut.
        assert n / 10 - 0.1 <= audio_seconds(target) <= n / 10 + 0.05, (n, audio_seconds(target))


def test_not_a_video_and_no_frames(tmp_path: Path):
    bad = tmp_path / "clip.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(ImageError, match="clip.mp4"):
        probe(bad)
    with pytest.raises(ImageError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="no frames"):
        probe(empty)


def test_a_frame_size_change_mid_stream_is_one_clear_error(tmp_path: Path):
    frames = synthetic_frames(3)
    save_image(frames[0], tmp_path / "a1.png")
    save_image(frames[1], tmp_path / "a2.png")
    save_image(frames[2][..., :40], tmp_path / "a3.png")
    it = read_frames(tmp_path)
    assert next(it).shape[-2:] == (48, 64) and next(it).shape[-2:] == (48, 64)
    with pytest.raises(ImageError, match="frame 3 is 40x48 px but the first frame is 64x48"):
        next(it)


def test_unknown_output_container_and_failed_write_keep_the_old_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"\.xyz"):
        write_video(tmp_path / "out.xyz", iter(synthetic_frames(2)), Fraction(5))
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")

    def failing():
        yield synthetic_frames(1)[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_video(target, failing(), Fraction(5))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def _encode(path: Path, frames: list[torch.Tensor], *, rotation: int = 0, fps: int = 10, fmt: str | None = None) -> None:
    """An H.264 clip of ``frames``, with a display rotation in its header (a phone's portrait clip) when asked."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[-2:]
        stream.pix_fmt = "yuv444p"  # no chroma subsampling: the corners below stay distinct
        if rotation:
            stream.set_display_rotation(rotation)
        _mux(out, stream, frames)


def _mux(out, stream, frames: list[torch.Tensor]) -> None:  # noqa: ANN001
    """Encode ``frames`` ((1, 3, H, W) in [0, 1]) into ``stream`` of the open container ``out``, then flush it."""
    for frame in frames:
        arr = (frame[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        for p in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
            out.mux(p)
    for p in stream.encode():
        out.mux(p)


@pytest.mark.parametrize("rotation, turns", [(90, 1), (-90, 3), (180, 2)])
def test_a_rotated_clip_is_read_upright(tmp_path: Path, rotation: int, turns: int):
    """A clip whose header says "rotate by R° counter-clockwise to show" (FFmpeg's display matrix, as phones
    write portrait clips) is read as shown, as a photo's EXIF orientation is: not sideways."""
    frame = torch.zeros((1, 3, 32, 48))
    frame[..., :16, :24] = 1.0  # a white top-left quadrant, so every turn is distinguishable
    path = tmp_path / "phone.mp4"
    _encode(path, [frame, frame], rotation=rotation)
    shown = torch.rot90(frame, turns, dims=(-2, -1))
    info = probe(path)
    assert info.size == tuple(shown.shape[-2:])
    back = list(read_frames(path))
    assert len(back) == 2 and back[0].shape == shown.shape
    assert (back[0] - shown).abs().mean() < 0.03
    # The unrotated clip is read as it is.
    _encode(tmp_path / "flat.mp4", [frame])
    assert (next(read_frames(tmp_path / "flat.mp4")) - frame).abs().mean() < 0.03


def test_max_pixels_guards_a_clip_and_a_folder_of_frames(tmp_path: Path):
    """The decompression-bomb guard of every other image applies to a clip: refused from its header,
    before a frame is decoded."""
    frames = synthetic_frames(2)
    write_video(tmp_path / "clip.mp4", iter(frames), Fraction(5))
    for i, f in enumerate(frames):
        save_image(f, tmp_path / "folder" / f"{i:03d}.png")
    for source in (tmp_path / "clip.mp4", tmp_path / "folder"):
        with pytest.raises(TooManyPixels, match=r"64x48 pixels exceeds the limit of 3000 \(raise max_pixels\)"):
            probe(source, max_pixels=3000)
        with pytest.raises(ImageError, match="exceeds the limit of 3000"):
            next(read_frames(source, max_pixels=3000))
        assert len(list(read_frames(source, max_pixels=64 * 48))) == 2


def test_a_truncated_clip_gives_its_frames_and_a_warning(tmp_path: Path):
    """A clip that stops short of the length it declares (a cut download) yields what it has and says so;
    one cut before its first frame is refused by probe, before any work."""
    frames = synthetic_frames(12)
    whole = tmp_path / "whole.mkv"
    _encode(whole, frames)  # Matroska declares its duration up front: 1.2 s at 10 fps
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(read_frames(whole))) == 12  # a whole clip: no warning
    with av.open(str(whole)) as container:
        starts = [p.pos for p in container.demux(video=0) if p.size]
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: starts[8]])  # the file ends inside the 9th packet
    with pytest.warns(PainterlyWarning, match=r"cut.mkv: the video ends after \d+ frames?, short of the 12 it declares"):
        got = len(list(read_frames(cut)))
    assert 1 <= got <= 8
    stub = tmp_path / "stub.mkv"
    stub.write_bytes(data[: starts[0] + 2])
    with pytest.raises(ImageError, match="stub.mkv"):
        probe(stub)


def test_unpadded_frame_numbers_keep_their_order(tmp_path: Path):
    """frame2.png comes before frame10.png (numbers compared as numbers), as the tools that number frames mean."""
    frames = synthetic_frames(11)
    for i, f in enumerate(frames):
        save_image(f, tmp_path / f"frame{i + 1}.png")
    assert [p.name for p in frame_files(tmp_path)][:3] == ["frame1.png", "frame2.png", "frame3.png"]
    back = list(read_frames(tmp_path))
    for a, b in zip(frames, back):
        assert (a - b).abs().max() <= 0.5 / 255 + 1e-6


def test_the_main_video_stream_is_read_not_a_cover_picture_before_it(tmp_path: Path):
    """A file whose first video stream is a one-frame picture (cover art, a thumbnail track) and whose
    clip comes second: the clip is read (it was the picture, a one-frame video)."""
    frames = synthetic_frames(5)
    path = tmp_path / "with_cover.mkv"
    with av.open(str(path), "w") as out:
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 16, 16, "yuvj420p"
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        _mux(out, cover, [torch.full((1, 3, 16, 16), 200 / 255)])
        _mux(out, video, frames)
    info = probe(path)
    assert info.size == (48, 64) and info.fps == 10
    back = list(read_frames(path))
    assert len(back) == 5 and (back[2] - frames[2]).abs().mean() < 0.03


def test_a_piece_of_the_clip(tmp_path: Path):
    """read_frames(first=, count=) gives those frames of the whole; VideoInfo.frame_range turns
    --start/--duration seconds into them, and refuses a start past the end by name."""
    source = tmp_path / "clip.mp4"
    write_video(source, iter(synthetic_frames(12)), Fraction(10))
    every = list(read_frames(source))
    piece = list(read_frames(source, first=3, count=4))
    assert len(piece) == 4 and all(torch.equal(a, b) for a, b in zip(piece, every[3:7]))
    assert len(list(read_frames(source, first=9))) == 3 and len(list(read_frames(source, count=2))) == 2
    info = probe(source)
    assert info.frame_range() == (0, None) and info.frame_range(0.3, 0.4) == (3, 4) and info.frame_range(1.1) == (11, None)
    with pytest.raises(ConfigError, match=r"start 1.2 s is past the end of the clip \(1.2 s\)"):
        info.frame_range(1.2)
    with pytest.raises(ConfigError, match=r"duration 0.01 s is less than one frame at 10 fps"):
        info.frame_range(0, 0.01)
    for bad in ({"first": -1}, {"count": 0}, {"first": 1.5}):
        with pytest.raises(ConfigError):
            read_frames(source, **bad)


def test_a_piece_keeps_its_own_stretch_of_sound(tmp_path: Path):
    """Frames 5–8 of a clip (0.5 s in) get the sound of 0.5–0.9 s, moved to start with them."""
    import av

    source = clip_with_audio(tmp_path / "with_audio.mp4", synthetic_frames(12), 10, audio_seconds=1.2)
    target = tmp_path / "piece.mp4"
    assert write_video(target, read_frames(source, first=5, count=4), Fraction(10), audio_from=source, audio_start=0.5)
    with av.open(str(target)) as container:
        stream = container.streams.audio[0]
        starts = [p.pts * stream.time_base for p in container.demux(stream) if p.pts is not None]
    # AAC packets are 1024 samples (46 ms at 22.05 kHz): the cut falls on a packet's edge.
    assert 0 <= min(starts) <= 0.05
    assert 0.4 - 0.1 <= audio_seconds(target) <= 0.4 + 0.05


VFR_TIMES = [0.0, 0.1, 0.2, 0.5, 0.6, 1.0]


def shown_at(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [round(float(f.time), 3) for f in container.decode(container.streams.video[0])]


def test_a_variable_frame_rate_keeps_its_timing(tmp_path: Path):
    """A phone's clip shows its frames at uneven times; written back at the average rate its motion
    ran at the wrong speed in places (and off its sound). frame_times reads the times (None for a
    steady clip), write_video keeps them, in every container but AVI (one fixed rate)."""
    source = clip_with_times(tmp_path / "vfr.mp4", synthetic_frames(len(VFR_TIMES)), VFR_TIMES)
    info = probe(source)
    times = frame_times(source, info.fps)
    assert times == pytest.approx(VFR_TIMES, abs=1e-6)
    steady = tmp_path / "steady.mp4"
    write_video(steady, iter(synthetic_frames(6)), Fraction(10))
    assert frame_times(steady, Fraction(10)) is None and frame_times(tmp_path, Fraction(10)) is None
    frames = list(read_frames(source))
    for suffix in (".mp4", ".mkv", ".webm", ".gif"):
        target = tmp_path / f"out{suffix}"
        write_video(target, iter(frames), info.fps, times=times)
        assert shown_at(target) == VFR_TIMES, suffix
    piece = tmp_path / "piece.mp4"
    write_video(piece, iter(frames[2:5]), info.fps, times=times[2:5])
    assert shown_at(piece) == [0.0, 0.3, 0.4]
    with pytest.raises(ConfigError, match="times has 2 entries"):
        write_video(tmp_path / "short.mp4", iter(frames[:3]), info.fps, times=times[:2])


def test_a_piece_of_a_variable_frame_rate_clip_starts_where_asked(tmp_path: Path):
    """--start/--duration on a phone's clip go by the frames' own times. At its average rate (7.5 fps)
    0.5 s in was frame 4 (shown at 0.6 s), 0.4 s from 0.45 s took the frame shown at 1.0 s too, and
    0.9 s was refused as past the end (0.8 s)."""
    source = clip_with_times(tmp_path / "vfr.mp4", synthetic_frames(len(VFR_TIMES)), VFR_TIMES)
    info = probe(source)
    assert info.times == pytest.approx(VFR_TIMES, abs=1e-6)
    assert info.frame_range(0.5) == (3, None)  # the frame shown at 0.5 s
    assert info.frame_range(0.45, 0.4) == (3, 2)  # nearest 0.45 s: 0.5; within 0.4 s of it: 0.5, 0.6
    assert info.frame_range(0.0, 0.2) == (0, 2) and info.frame_range(0.9) == (5, None)
    with pytest.raises(ConfigError, match="start 2 s is past the end of the clip"):
        info.frame_range(2.0)
    steady = tmp_path / "steady.mp4"
    write_video(steady, iter(synthetic_frames(6)), Fraction(10))
    assert probe(steady).times is None
