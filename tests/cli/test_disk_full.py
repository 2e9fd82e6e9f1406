"""A disk that fills up mid-run (issue 12): a side write that fails (log, intermediate image,
checkpoint) is a note and the run goes on; a final save that fails keeps the finished image in the
temporary folder, says where, and exits 1. Real processes writing to a real, tiny tmpfs."""

from __future__ import annotations

import contextlib
import sys
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from cli_support import child_env, fast_args, run_painterly


@contextlib.contextmanager
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, filled to the last byte."""
    mount = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); needs root in a machine that allows it")
    try:
        with open(mount / "filler", "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _args(images, weights: Path, output: str, *extra: str) -> list[str]:  # noqa: ANN001
    return ["stylize", str(images.content), str(images.style), "-o", output, *fast_args(weights, iterations=4), *extra]


def test_log_and_intermediates_on_a_full_disk_are_notes_and_the_run_finishes(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    work = tmp_path / "work"
    work.mkdir()
    with full_disk(tmp_path) as disk:
        args = _args(images, tiny_weights_file, str(work / "out.png"), "--log", str(disk / "log.jsonl"), "-q")
        proc = run_painterly(args, work)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        notes = [line for line in proc.stderr.splitlines() if line.strip()]
        assert notes and all(line.startswith("painterly: note: ") for line in notes)
        assert any("log.jsonl" in line and "No space left on device" in line for line in notes)
    Image.open(work / "out.png").load()  # the finished image, whole


def test_intermediates_and_checkpoints_on_a_full_disk(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    with full_disk(tmp_path) as disk:
        # The output itself lands on the full disk too: every side write fails, then the final save.
        temp = tmp_path / "temp"
        temp.mkdir()
        env = child_env(TMPDIR=str(temp))
        args = _args(images, tiny_weights_file, str(disk / "out.png"), "--save-every", "1", "--checkpoint-every", "1", "-q")
        proc = subprocess.run(
            [sys.executable, "-m", "painterly", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        *notes, error = lines
        assert notes and all(line.startswith("painterly: note: could not write") for line in notes)
        assert error.startswith("painterly: error: ") and "no space left on device" in error.lower()
        kept = [p for p in temp.iterdir() if p.suffix == ".png"]
        assert len(kept) == 1 and str(kept[0]) in error  # says where the finished image is
        Image.open(kept[0]).load()
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no partial or temporary file


def test_plot_on_a_full_disk_is_a_note_and_the_run_finishes(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    work = tmp_path / "work"
    work.mkdir()
    with full_disk(tmp_path) as disk:
        args = _args(images, tiny_weights_file, str(work / "out.png"), "--plot", str(disk / "losses.png"), "-q")
        proc = run_painterly(args, work)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        notes = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(notes) == 1 and notes[0].startswith("painterly: note: could not write ")
        assert "losses.png" in notes[0] and "No space left on device" in notes[0]
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no half-written plot, no temporary file
    Image.open(work / "out.png").load()  # the finished image, whole


def test_a_batch_whose_folder_goes_read_only_stops_then_continues(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    from cli_support import finish, remount, small_disk, start_painterly, wait_for

    temp = tmp_path / "temp"
    temp.mkdir()
    photo2 = tmp_path / "photo2.png"
    photo2.write_bytes(images.content.read_bytes())
    with small_disk(tmp_path) as disk:
        out = disk / "out"
        # Two contents in two styles: four jobs, slowed down so that the folder goes read-only mid-batch.
        args = ["batch", "--content", str(images.content), str(photo2), "--style", str(images.style), str(images.style2),
                "-o", str(out), *fast_args(tiny_weights_file, iterations=4), "--checkpoint-every", "2"]  # fmt: skip
        env = child_env(TMPDIR=str(temp))
        proc = start_painterly(args, tmp_path, env=env, step_delay=0.2)
        wait_for(lambda: (out / "manifest.jsonl").is_file(), proc, what="the first job's record")
        remount(disk, "ro")
        rc, err = finish(proc)
        assert rc == 1, err
        assert "Traceback" not in err
        # It stops at the first job it cannot record, instead of running every job left (each one
        # spilled into the temporary folder, and made again by the next run): at most one kept there.
        assert "stopping the batch" in err and "Read-only file system" in err, err
        assert len(list(temp.iterdir())) <= 1
        remount(disk, "rw")
        again = run_painterly(args, tmp_path, env=env)
        assert again.returncode == 0, again.stderr
        names = sorted(p.name for p in out.iterdir())
        # Every result, and no checkpoint of a finished job nor a temporary file left behind.
        assert len([n for n in names if n.endswith(".png") and n != "contact-sheet.png"]) == 4, names
        assert not any(n.endswith((".ckpt", ".tmp")) for n in names), names
