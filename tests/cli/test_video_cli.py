"""`painterly video` end to end (issue 16): a 5-frame 48 px clip through the real command, resume
after SIGINT giving the very same frames, and bad input as one line with nothing lost."""

from __future__ import annotations

import signal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

pytest.importorskip("av")
pytest.importorskip("cv2")

from conftest import clip_with_audio, clip_with_times  # noqa: E402
from cli_support import fast_args, finish, one_line_error, run_painterly, snapshot, start_painterly, wait_for  # noqa: E402
from painterly.imageio import save_image  # noqa: E402
from painterly.video.frames import probe, read_frames  # noqa: E402
from painterly.video.writing import write_video  # noqa: E402


def clip_frames(n: int = 5, h: int = 36, w: int = 48) -> list[torch.Tensor]:
    """A smooth texture panning left by 2 px per frame."""
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand((1, 3, 6, 8), generator=g), size=(h, w + 2 * n), mode="bicubic", align_corners=False).clamp(0, 1)
    return [base[..., 2 * i : 2 * i + w].contiguous() for i in range(n)]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    write_video(path, iter(clip_frames()), Fraction(10))
    return path


def video_args(weights: Path, *extra: str) -> list[str]:
    return [*fast_args(weights, size=48, iterations=3), "--frame-iterations", "2", *extra]


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_five_frame_clip_end_to_end(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    args = ["video", str(clip), str(images.style), "-o", "out.mp4", "--log", "frames.jsonl", *video_args(tiny_weights_file)]
    result = run_painterly([*args, "--keep-frames"], tmp_path)
    assert result.returncode == 0, result.stderr
    frame_lines = [line for line in result.stderr.splitlines() if line.startswith("painterly: frame ")]
    assert len(frame_lines) == 5 and "frame 1/5: 3 iterations" in frame_lines[0] and "frame 2/5: 2 iterations" in frame_lines[1]
    assert "temporal=" in frame_lines[1] and "temporal=" not in frame_lines[0]
    info = probe(tmp_path / "out.mp4")
    assert info.fps == 10 and info.size == (36, 48)
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 5
    frames = sorted((tmp_path / "out.mp4.frames").glob("frame_*.png"))
    assert [p.name for p in frames] == [f"frame_{i:06d}.png" for i in range(1, 6)]
    assert pixels(frames[0]).shape == (36, 48, 3)
    assert len((tmp_path / "frames.jsonl").read_text().splitlines()) == 5
    for private in ("frames.jsonl", "out.mp4"):  # private, as every file painterly writes (they show the clip)
        assert oct((tmp_path / private).stat().st_mode & 0o777) == oct(0o600), private
    # Running the same command again redoes nothing: the frames stay, the video is assembled again.
    before = {p.name: p.stat().st_mtime_ns for p in frames}
    again = run_painterly([*args, "--keep-frames"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "painterly: frame " not in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in frames} == before
    # Without --keep-frames: still nothing redone, and the frames folder goes once the video is written.
    last = run_painterly(args, tmp_path)
    assert last.returncode == 0, last.stderr
    assert "painterly: frame " not in last.stderr and "frames in" not in last.stderr
    assert not (tmp_path / "out.mp4.frames").exists()
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 5


def test_frames_an_older_version_made_are_not_continued(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """Version 1 read clips sideways (no display rotation) and frame files in text order: its frames
    are not mixed with this version's, by the same command or by resume; nothing is removed."""
    import json

    from painterly.video.clip import FrameFolder

    args = ["video", str(clip), str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file), "--keep-frames"]
    folder = tmp_path / "out.mp4.frames"
    first = run_painterly(args, tmp_path)
    assert first.returncode == 0, first.stderr
    manifest = FrameFolder(folder).manifest
    plan = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**plan, "version": 1}))
    before = snapshot(tmp_path)
    for command in (args, ["resume", str(folder)]):
        result = run_painterly(command, tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "its frames were made by another version of painterly" in lines[0], lines
    assert snapshot(tmp_path) == before


def test_a_clip_without_a_frame_count_shows_the_estimated_total(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """Matroska declares no frame count, only a duration: the progress says about how many frames."""
    source = tmp_path / "clip.mkv"
    write_video(source, iter(clip_frames(3)), Fraction(10))
    result = run_painterly(["video", str(source), str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file)], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("painterly: frame ")]
    assert [line.split(":")[1] for line in lines] == [" frame 1/~3", " frame 2/~3", " frame 3/~3"], result.stderr


def test_the_frames_folder_goes_after_the_video_but_nothing_of_the_users(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """Frames are kept while the clip is unfinished (for resume); once the video is written, painterly
    removes what it wrote there and the folder if it made it and it is empty, nothing else."""
    frames = clip_frames(3)
    source = tmp_path / "frames"
    for i, f in enumerate(frames):
        save_image(f if i < 2 else f[..., :, :40], source / f"{i:03d}.png")  # frame 3: another size
    args = ["video", "frames", str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file)]
    assert run_painterly(args, tmp_path).returncode == 2
    side = tmp_path / "out.mp4.frames"
    assert len(list(side.glob("frame_*.png"))) == 2  # unfinished: kept for resuming
    (side / "notes.txt").write_text("mine")
    save_image(frames[2], source / "002.png")  # the user fixes the input and runs the same command
    result = run_painterly(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "painterly: frame 3/3" in result.stderr and "painterly: frame 1/3" not in result.stderr
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 3
    assert sorted(p.name for p in side.iterdir()) == ["notes.txt"]  # the user's file and its folder stay
    assert "kept (it holds other files)" in result.stderr
    # A folder the user made (empty) is emptied of painterly's files but not removed; a new one is.
    (tmp_path / "mine.mp4.frames").mkdir()
    for out in ("mine.mp4", "new.mp4"):
        done = run_painterly(["video", "frames", str(images.style), "-o", out, *video_args(tiny_weights_file)], tmp_path)
        assert done.returncode == 0, done.stderr
    assert list((tmp_path / "mine.mp4.frames").iterdir()) == []
    assert not (tmp_path / "new.mp4.frames").exists()


def test_output_as_a_folder_of_frames(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    result = run_painterly(["video", str(clip), str(images.style), "-o", "styled/", *video_args(tiny_weights_file)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "styled").glob("frame_*.png"))) == 5


@pytest.mark.parametrize("flow_ahead", ["0", "2"])
def test_resume_after_sigint_gives_the_same_frames(tmp_path: Path, clip: Path, images, tiny_weights_file: Path, flow_ahead: str) -> None:  # noqa: ANN001
    """The straight run computes the flow inline; the interrupted one inline or 2 frames ahead."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    straight.mkdir()
    stopped.mkdir()
    args = ["video", str(clip), str(images.style), "-o", "out.mp4", "--keep-frames", *video_args(tiny_weights_file)]
    result = run_painterly([*args, "--flow-ahead", "0"], straight)
    assert result.returncode == 0, result.stderr

    proc = start_painterly([*args, "--flow-ahead", flow_ahead], stopped, step_delay=0.3)
    wait_for(lambda: (stopped / "out.mp4.frames" / "frame_000002.png").exists(), proc, what="the second frame")
    proc.send_signal(signal.SIGINT)
    rc, err = finish(proc, timeout=30)
    assert rc == 130, err
    assert "painterly resume" in err and "out.mp4.frames" in err
    kept = sorted(p.name for p in (stopped / "out.mp4.frames").glob("frame_*.png"))
    assert 2 <= len(kept) < 5, kept
    assert not (stopped / "out.mp4").exists()
    # Continue with `painterly resume FOLDER` (re-running the command works the same way).
    resumed = run_painterly(["resume", "out.mp4.frames"], stopped)
    assert resumed.returncode == 0, resumed.stderr
    assert f"painterly: frame {len(kept) + 1}/5" in resumed.stderr and "painterly: frame 1/5" not in resumed.stderr
    for i in range(1, 6):
        name = f"frame_{i:06d}.png"
        assert np.array_equal(pixels(straight / "out.mp4.frames" / name), pixels(stopped / "out.mp4.frames" / name)), name
    assert len(list(read_frames(stopped / "out.mp4"))) == 5


def test_not_a_video_and_zero_frames_are_one_line_and_write_nothing(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    (tmp_path / "notes.mp4").write_text("not a video")
    (tmp_path / "empty").mkdir()
    save_image(clip_frames(1)[0], tmp_path / "photo.jpg")
    before = snapshot(tmp_path)
    cases = (("notes.mp4", "not a video"), ("empty", "no frames"), ("missing.mov", "no such file"), ("photo.jpg", "is a still image, not a video"))
    for source, words in cases:
        result = run_painterly(["video", source, str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file)], tmp_path)
        assert result.returncode == 2
        assert words in one_line_error(result.stderr)
    assert snapshot(tmp_path) == before


def test_unwritable_output_and_bad_container_are_one_line(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    for output, words, extra in (
        ("afile/out.mp4", "is a file", []),
        ("out.xyz", ".xyz", []),
        ("clip.mp4", "same file", []),
        ("out.mp4", "--flow-ahead must be a non-negative integer", ["--flow-ahead", "-1"]),
    ):
        result = run_painterly(["video", str(clip), str(images.style), "-o", output, *video_args(tiny_weights_file), *extra], tmp_path)
        assert result.returncode == 2, result.stderr
        assert words in one_line_error(result.stderr)
    assert snapshot(tmp_path) == before


def test_help_says_what_the_output_options_mean_for_a_video(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """--save-every counts frames; --checkpoint-every is not offered, and refused in one line when given."""
    shown = run_painterly(["video", "--help"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "to OUT every N frames" in text and "every N iterations" not in text
    assert "--checkpoint-every" not in text
    assert ".m4v" in text
    before = snapshot(tmp_path)
    refused = run_painterly(["video", str(clip), str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file), "--checkpoint-every", "2"], tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "--checkpoint-every is not used by video" in one_line_error(refused.stderr)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flow_ahead", ["0", "2"])
def test_a_frame_size_change_mid_stream_keeps_the_frames_done(tmp_path: Path, images, tiny_weights_file: Path, flow_ahead: str) -> None:  # noqa: ANN001
    """With the flow computed ahead, the error is met in the flow thread: the same one line, no hang."""
    frames = clip_frames(3)
    source = tmp_path / "frames"
    for i, f in enumerate(frames):
        save_image(f if i < 2 else f[..., :, :40], source / f"{i:03d}.png")
    result = run_painterly(["video", "frames", str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file), "--flow-ahead", flow_ahead], tmp_path)
    assert result.returncode == 2
    errors = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("painterly: frame "))
    assert "frame 3 is 40x36 px but the first frame is 48x36" in one_line_error(errors)
    assert len(list((tmp_path / "out.mp4.frames").glob("frame_*.png"))) == 2
    assert not (tmp_path / "out.mp4").exists()


def test_other_settings_refuse_to_mix_with_earlier_frames(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    args = ["video", str(clip), str(images.style), "-o", "out.mp4", "--keep-frames", *video_args(tiny_weights_file)]
    assert run_painterly(args, tmp_path).returncode == 0
    before = snapshot(tmp_path)
    result = run_painterly([*args, "--temporal-weight", "5"], tmp_path)
    assert result.returncode == 2
    assert "other settings" in one_line_error(result.stderr)
    assert snapshot(tmp_path) == before


def test_a_run_refused_before_its_first_frame_leaves_no_frames_folder(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """A style image that cannot be read (or a device that is absent) is found after the manifest is
    written; the folder must not outlive the error, or the corrected command is refused for 'other settings'."""
    (tmp_path / "broken.jpg").write_bytes(Path(images.style).read_bytes()[:200])
    before = snapshot(tmp_path)
    bad = run_painterly(["video", str(clip), "broken.jpg", "-o", "out.mp4", *video_args(tiny_weights_file)], tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert "broken.jpg" in one_line_error(bad.stderr)
    assert snapshot(tmp_path) == before
    good = run_painterly(["video", str(clip), str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file)], tmp_path)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "out.mp4").is_file() and not (tmp_path / "out.mp4.frames").exists()


def test_nothing_of_the_users_is_overwritten_by_the_output_or_the_log(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """-o naming a style (a GIF style is a video name too), a read-only OUT, or --log naming the clip, a
    style or a frame of the input folder: one line, before anything is written (the log was truncated
    before the first frame, the clip or style lost; the style and the read-only file were replaced)."""
    write_video(tmp_path / "style.gif", iter(clip_frames(2)), Fraction(5))
    (tmp_path / "kept.mp4").write_bytes(b"mine")
    (tmp_path / "kept.mp4").chmod(0o444)
    for i, f in enumerate(clip_frames(2)):
        save_image(f, tmp_path / "frames" / f"{i:03d}.png")
    before = snapshot(tmp_path)
    for source, style, output, extra, words in (
        (str(clip), "style.gif", "style.gif", [], "same file as the input style.gif"),
        (str(clip), str(images.style), "kept.mp4", [], "kept.mp4: is read-only"),
        (str(clip), str(images.style), "out.mp4", ["--log", str(clip)], "--log"),
        (str(clip), "style.gif", "out.mp4", ["--log", "style.gif"], "is one of the input images"),
        ("frames", str(images.style), "out.mp4", ["--log", "frames/001.png"], "is one of the input images"),
    ):
        result = run_painterly(["video", source, style, "-o", output, *video_args(tiny_weights_file), *extra], tmp_path)
        assert result.returncode == 2, result.stderr
        assert words in one_line_error(result.stderr)
    assert snapshot(tmp_path) == before


def test_resume_to_another_output_never_replaces_the_clip(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """`painterly resume FOLDER -o CLIP` wrote the stylised video over the input clip."""
    args = ["video", str(clip), str(images.style), "-o", "out.mp4", "--keep-frames", *video_args(tiny_weights_file)]
    assert run_painterly(args, tmp_path).returncode == 0
    before = snapshot(tmp_path)
    for output, words in ((str(clip), "same file as the input"), ("again/", "resume writes the video file")):
        result = run_painterly(["resume", "out.mp4.frames", "-o", output], tmp_path)
        assert result.returncode == 2, result.stderr
        assert words in one_line_error(result.stderr)
    result = run_painterly(["resume", "out.mp4.frames", "--log", str(clip)], tmp_path)
    assert result.returncode == 2 and "is one of the input images" in one_line_error(result.stderr)
    assert snapshot(tmp_path) == before
    moved = run_painterly(["resume", "out.mp4.frames", "-o", "copy.gif"], tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert len(list(read_frames(tmp_path / "copy.gif"))) == 5


def test_other_settings_are_named_as_flags_with_both_values(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """The refusal said only '(config, video)': which flag to put back was left to guess."""
    args = ["video", str(clip), str(images.style), "-o", "out.mp4", "--keep-frames", *video_args(tiny_weights_file)]
    assert run_painterly(args, tmp_path).returncode == 0
    result = run_painterly([*args, "--frame-iterations", "4", "--style-weight", "7"], tmp_path)
    assert result.returncode == 2
    line = one_line_error(result.stderr)
    assert "--frame-iterations was 2, now 4" in line and "--style-weight was" in line and "now 7.0" in line


def test_start_and_duration_stylise_a_piece_of_the_clip(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """--start/--duration: a few seconds tried before the whole clip; the piece is a setting of the
    frames folder (another piece is refused, naming it), and a start past the end is one line."""
    args = ["video", str(clip), str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file), "--keep-frames"]
    result = run_painterly([*args, "--start", "0.2", "--duration", "0:00.2"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "frame 2/2:" in result.stderr and "(2 frames at 10 fps" in result.stderr
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 2
    again = run_painterly([*args, "--start", "0.1", "--duration", "0.2"], tmp_path)
    assert again.returncode == 2 and "--start was 0.2, now 0.1" in one_line_error(again.stderr)
    before = snapshot(tmp_path)
    past = run_painterly([*args[:4], "other.mp4", *args[5:], "--start", "1"], tmp_path)
    assert past.returncode == 2 and "--start 1 s is past the end of the clip (0.5 s)" in one_line_error(past.stderr)
    bad = run_painterly([*args[:4], "other.mp4", *args[5:], "--duration", "soon"], tmp_path)
    assert bad.returncode == 2 and "--duration expects a time in seconds" in one_line_error(bad.stderr)
    assert snapshot(tmp_path) == before


def test_a_variable_frame_rate_clip_keeps_its_timing(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """A phone's clip with uneven frame times comes out with the same times, not at its average rate."""
    import av

    times = [0.0, 0.1, 0.2, 0.5, 0.6]
    source = clip_with_times(tmp_path / "phone.mp4", clip_frames(5), times)
    result = run_painterly(["video", str(source), str(images.style), "-o", "out.mkv", *video_args(tiny_weights_file)], tmp_path)
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "out.mkv")) as container:
        assert [round(float(f.time), 3) for f in container.decode(container.streams.video[0])] == times


def test_original_colors_after_keeps_the_clips_colours(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """--original-colors after on a clip: each frame painted as usual, then given the clip's colours (the
    temporal term compares brightness only: the saved frames have the clip's colours, the runs the style's)."""
    from painterly import color

    result = run_painterly(["video", str(clip), str(images.style), "-o", "out/", "--original-colors", "after", *video_args(tiny_weights_file)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "temporal=" in result.stderr
    source, out = list(read_frames(clip)), list(read_frames(tmp_path / "out"))
    assert len(out) == 5
    for a, b in zip(source, out):  # the chroma (I, Q) is the clip's, up to 8-bit rounding and the codec
        assert (color.rgb_to_yiq(a)[:, 1:] - color.rgb_to_yiq(b)[:, 1:]).abs().mean().item() < 0.03


def test_frames_smaller_than_the_size_are_noted_once(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """48x36 frames at --size 64: one note for the clip (it was none: the frames' notes were dropped)."""
    result = run_painterly(["video", str(clip), str(images.style), "-o", "out/", *fast_args(tiny_weights_file, size=64, iterations=2), "--frame-iterations", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("painterly: note: ")]
    assert notes == ["painterly: note: each frame is only 48x36 px; upscaled to 64 px"], result.stderr


def test_max_pixels_refuses_a_large_clip_in_one_line(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    before = snapshot(tmp_path)
    result = run_painterly(["video", str(clip), str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file), "--max-pixels", "1000"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "48x36 pixels exceeds the limit of 1000 (raise --max-pixels)" in one_line_error(result.stderr)
    assert snapshot(tmp_path) == before


def test_brackets_in_a_file_name_are_a_file_and_a_pattern_is_no_output(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """'take [2] styled.mp4' became a folder of frames named so (a pattern character made it one), and the
    audio of an input named with brackets was dropped; -o 'styled/*.png' made a folder named '*.png'."""
    source = clip_with_audio(tmp_path / "take [2].mp4", clip_frames(3), 10, audio_seconds=0.3)
    before = snapshot(tmp_path)
    refused = run_painterly(["video", source.name, str(images.style), "-o", "styled/*.png", *video_args(tiny_weights_file)], tmp_path)
    assert refused.returncode == 2 and "a pattern names frames to read" in one_line_error(refused.stderr)
    assert snapshot(tmp_path) == before
    result = run_painterly(["video", source.name, str(images.style), "-o", "take [2] styled.mp4", *video_args(tiny_weights_file)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "audio carried over" in result.stderr
    styled = tmp_path / "take [2] styled.mp4"
    assert styled.is_file() and probe(styled).has_audio and len(list(read_frames(styled))) == 3


def test_output_gone_mid_clip_the_clip_still_ends_and_is_written(tmp_path: Path, clip: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """The terminal or pipe the command reports to goes away (an ssh session closed, ``2>&1 | head``):
    the frame lines go nowhere, and the clip is still stylised and assembled (it ended at the first line)."""
    args = ["video", str(clip), str(images.style), "-o", "out.mp4", *video_args(tiny_weights_file)]
    proc = start_painterly(args, tmp_path, step_delay=0.02)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 5
