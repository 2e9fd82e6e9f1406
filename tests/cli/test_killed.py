"""Commands killed outright (SIGKILL: the OOM killer, a power cut; no handler runs), then continued.

Each child runs the real command with one library call wrapped so that, at a chosen point, it
creates a marker file and waits there; the test waits for the marker and SIGKILLs the process: a kill
at a known point without a race. What is checked: the command continues (``painterly resume`` or the
same command again), nothing finished is redone from scratch, and no temporary file is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import SUBPROCESS_TIMEOUT, child_env, fast_args, run_painterly, wait_for
from painterly.files import is_temp_name

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")]

# ``python -c WRAPPER OWNER ATTRIBUTE CALL MARKER ARGS...``: painterly's main, with OWNER.ATTRIBUTE (OWNER a
# module or a class in one)
# wrapped so that its CALL-th call (after it returns) touches MARKER and waits to be killed.
WRAPPER = """
import importlib, sys, time
from pathlib import Path
module, attribute, call, marker = sys.argv[1:5]
del sys.argv[1:5]
try:
    owner = importlib.import_module(module)
except ModuleNotFoundError:  # module.Class.method
    module, name = module.rsplit(".", 1)
    owner = getattr(importlib.import_module(module), name)
original = getattr(owner, attribute)
calls = [0]
def wrapped(*args, **kwargs):
    out = original(*args, **kwargs)
    calls[0] += 1
    if calls[0] == int(call):
        Path(marker).touch()
        time.sleep(60)
    return out
setattr(owner, attribute, wrapped)
from painterly.cli import main
sys.exit(main(sys.argv[1:]))
"""


def kill_at(args: list[str], cwd: Path, where: str, call: int) -> None:
    """Run ``painterly ARGS`` and SIGKILL it at the ``call``-th return of ``where`` (module.attribute)."""
    module, attribute = where.rsplit(".", 1)
    marker = cwd / "killed-here"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, module, attribute, str(call), str(marker), *args],
        cwd=cwd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(marker.exists, proc, timeout=SUBPROCESS_TIMEOUT, what=f"call {call} of {where}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    marker.unlink()


def temporary_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if is_temp_name(p.name))


def test_stylize_killed_while_writing_a_checkpoint_resumes_and_leaves_no_temporary_file(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    args = ["stylize", str(images.content), str(images.style), "-o", "out.png", "--log", "run.jsonl",
            *fast_args(tiny_weights_file, iterations=8), "--checkpoint-every", "2"]  # fmt: skip
    # torch.save has filled the second checkpoint's temporary file; it is not yet renamed.
    kill_at(args, tmp_path, "torch.save", 2)
    assert len(temporary_files(tmp_path)) == 1 and (tmp_path / "out.png.ckpt").is_file()
    resumed = run_painterly(["resume", "out.png.ckpt"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(os.listdir(tmp_path)) == ["out.png", "run.jsonl"]
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == list(range(1, 9))


def test_batch_killed_between_a_result_and_its_record_continues_the_job(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    args = ["batch", "--content", str(images.content), "--style", str(images.style), str(images.style2), "-o", str(out),
            *fast_args(tiny_weights_file, iterations=6), "--checkpoint-every", "2"]  # fmt: skip
    # The first job's result is written; its record is being made: the manifest does not list it yet.
    kill_at(args, tmp_path, "painterly.cli.batch_local.done_record", 1)
    first = sorted(p.name for p in out.glob("*.png"))
    assert len(first) == 1
    written = (out / first[0]).read_bytes()
    again = run_painterly(args, tmp_path)
    assert again.returncode == 0, again.stderr
    records = {json.loads(line)["output"]: json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()}
    assert set(records) == {first[0], *(n for n in records if n != first[0])} and len(records) == 2
    assert all(r["status"] == "done" for r in records.values())
    # Continued from its last checkpoint, not run again from the start; the same image.
    assert records[first[0]]["action"] == "resumed", records[first[0]]
    assert (out / first[0]).read_bytes() == written
    assert not list(out.glob("*.ckpt")) and temporary_files(out) == []


def test_batch_killed_while_writing_its_manifest_leaves_no_temporary_file(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    args = ["batch", "--content", str(images.content), "--style", str(images.style), str(images.style2), "-o", str(out),
            *fast_args(tiny_weights_file, iterations=4)]  # fmt: skip
    # The second atomic write (the first is the first result) is the manifest's: its temporary file
    # is complete and about to be renamed (files._keep_permissions runs just before the rename).
    kill_at(args, tmp_path, "painterly.files._keep_permissions", 2)
    assert [n.split(".")[1] for n in temporary_files(out)] == ["manifest"]
    again = run_painterly(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert temporary_files(out) == []
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2


def video_command(tmp_path: Path, images, weights: Path, frames: int, *extra: str) -> list[str]:  # noqa: ANN001
    """A clip of ``frames`` frames in ``tmp_path`` and the `painterly video` command that stylises it
    into out.mp4 (skips without the video extra)."""
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from fractions import Fraction

    from painterly.video.writing import write_video
    from test_video_cli import clip_frames

    clip = tmp_path / "clip.mp4"
    write_video(clip, iter(clip_frames(frames)), Fraction(10))
    return ["video", str(clip), str(images.style), "-o", "out.mp4", *extra, *fast_args(weights, iterations=2), "--frame-iterations", "1"]


def test_video_killed_while_writing_its_first_manifest_starts_again(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    args = video_command(tmp_path, images, tiny_weights_file, 3)
    from painterly.video.frames import read_frames
    # The first atomic write of a clip is its frames folder's manifest: killed just before the rename.
    kill_at(args, tmp_path, "painterly.files._keep_permissions", 1)
    assert [p.name.startswith("..painterly-video.json.") for p in (tmp_path / "out.mp4.frames").iterdir()] == [True]
    again = run_painterly(args, tmp_path)
    assert again.returncode == 0, again.stderr  # it was refused as "a folder with other files in it"
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "out.mp4"]
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 3


def test_video_killed_while_removing_its_frames_redoes_none(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    args = video_command(tmp_path, images, tiny_weights_file, 4)
    # The clip is written; its frames folder is being removed (two of four frames gone).
    kill_at(args, tmp_path, "painterly.files.remove_quietly", 2)
    written = (tmp_path / "out.mp4").read_bytes()
    assert len(list((tmp_path / "out.mp4.frames").glob("frame_*.png"))) == 2
    again = run_painterly(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "painterly: frame " not in again.stderr  # every frame was made again before
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "out.mp4"]
    assert (tmp_path / "out.mp4").read_bytes() == written


@pytest.mark.parametrize("where", ["painterly.imageio.save_image", "painterly.cli.video._Report.frame"], ids=["frame-saved", "line-written"])
def test_video_killed_between_a_frame_and_its_log_line_keeps_one_line_a_frame(where: str, tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    args = video_command(tmp_path, images, tiny_weights_file, 4, "--log", "frames.jsonl")
    kill_at(args, tmp_path, where, 2)  # the second frame: just saved, or just logged
    again = run_painterly(args, tmp_path)
    assert again.returncode == 0, again.stderr
    lines = (tmp_path / "frames.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [1, 2, 3, 4]
