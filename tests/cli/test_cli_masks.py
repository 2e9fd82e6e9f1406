"""Issue 15 on the command line: ``--mask MASK.png --region COLOR=STYLE[:WEIGHT]``.

A masked run writes its image, checkpoints the mask and resumes; each bad input (a colour not
assigned, a colour assigned twice, a mask of the wrong shape, an unreadable mask, a style number
beyond the styles) gets one line, exit status 2, and nothing is written.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_support import one_torch_thread  # noqa: F401 (an autouse fixture)
from cli_support import fast_args, finish, log_lines, one_line_error, run_main, run_painterly, snapshot, start_painterly, wait_for


@pytest.fixture
def work(tmp_path: Path, images, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: ANN001
    """A folder with content.png (64x48), style.png, style2.png and masks, as the current directory."""
    for name, src in (("content.png", images.content), ("style.png", images.style), ("style2.png", images.style2)):
        (tmp_path / name).write_bytes(Path(src).read_bytes())
    m = np.zeros((48, 64, 3), np.uint8)
    m[:, :32] = (255, 0, 0)
    m[:, 32:] = (0, 0, 255)
    Image.fromarray(m).save(tmp_path / "mask.png")
    m[:, 40:] = (255, 255, 0)
    Image.fromarray(m).save(tmp_path / "three.png")
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(tmp_path / "square.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_masked_run_checkpoints_the_mask_and_resumes_to_the_same_image(work: Path, tiny_weights_file: Path) -> None:
    common = ["content.png", "style.png", "style2.png", "--mask", "mask.png", "--region", "red=1",
              "--region", "blue=2:2", "--quiet", *fast_args(tiny_weights_file, iterations=8), "--no-multiscale"]  # fmt: skip
    run_a = start_painterly([*common, "-o", "a.png"], work)
    run_b = start_painterly([*common, "-o", "b.png", "--log", "b.jsonl", "--checkpoint-every", "2"], work, step_delay=0.3)
    ckpt = work / "b.png.ckpt"
    wait_for(lambda: ckpt.exists() and log_lines(work / "b.jsonl") >= 3, run_b, what="a checkpoint")
    run_b.send_signal(signal.SIGINT)
    assert finish(run_b)[0] == 130
    assert finish(run_a)[0] == 0
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert saved["run"]["config"]["regions"] == ["red=1", "blue=2:2"]
    assert saved["run"]["mask"].shape == (1, 3, 48, 64)
    again = run_painterly(["resume", "b.png.ckpt", "--quiet"], work)
    assert again.returncode == 0, again.stderr
    assert Image.open(work / "a.png").size == (48, 36)
    assert np.array_equal(np.asarray(Image.open(work / "a.png")), np.asarray(Image.open(work / "b.png")))


def test_style_by_path_photo_region_and_style_mask(capsys, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    gray = np.zeros((48, 48), np.uint8)
    gray[:, :24] = 255
    Image.fromarray(gray).save(work / "left.png")
    rc, err = run_main(capsys, [
        "content.png", "style.png", "-o", "out.png", "--mask", "mask.png", "--region", "red=style2.png:3",
        "--region", "blue=photo", "--style-mask", "1=left.png", "--quiet", *fast_args(tiny_weights_file),
    ])  # fmt: skip
    assert rc == 0, err
    assert (work / "out.png").exists()


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--mask", "three.png", "--region", "red=1", "--region", "blue=1"], ["three.png", "colours not assigned", "yellow", "--region"]),
        (["--mask", "mask.png", "--region", "red=1", "--region", "#ff0000=1"], ["--region", "red twice"]),
        (["--mask", "square.png", "--region", "black=1"], ["square.png", "48x48", "aspect ratios differ"]),
        (["--mask", "mask.png", "--region", "red=1", "--region", "blue=1", "--style-mask", "1=mask.png"],
         ["mask.png", "64x48", "style image 1 is 48x48", "aspect ratios differ"]),
        (["--mask", "broken.png", "--region", "red=1"], ["broken.png"]),
        (["--mask", "missing.png", "--region", "red=1"], ["missing.png", "no such file"]),
        (["--mask", "mask.png", "--region", "red=1", "--region", "blue=3"], ["--region", "no style image 3"]),
        (["--mask", "mask.png"], ["mask.png", "--region", "red", "blue"]),
        (["--region", "red=1"], ["--region", "no --mask was given"]),
        (["--mask", "mask.png", "--region", "red=teal.png", "--region", "blue=1"], ["--region", "teal.png"]),
        (["--mask", "mask.png", "--region", "crimson=1"], ["--region", "unknown colour"]),
    ],
)
def test_bad_mask_input_is_one_line_and_writes_nothing(capsys, work: Path, tiny_weights_file: Path, extra, needles) -> None:  # noqa: ANN001
    before = snapshot(work)
    argv = ["content.png", "style.png", "-o", "out/result.png", "--log", "out/log.jsonl", "--checkpoint-every", "1",
            *fast_args(tiny_weights_file), *extra]  # fmt: skip
    rc, err = run_main(capsys, argv)
    line = one_line_error(err)
    assert rc == 2, err
    for needle in needles:
        assert needle in line, line
    assert snapshot(work) == before


def test_bad_mask_in_a_real_subprocess(work: Path, tiny_weights_file: Path) -> None:
    done = run_painterly(
        ["content.png", "style.png", "-o", "out.png", "--mask", "three.png", "--region", "red=1", *fast_args(tiny_weights_file)], work
    )
    assert done.returncode == 2
    line = one_line_error(done.stderr)
    assert "blue" in line and "yellow" in line and "--region" in line
    assert not (work / "out.png").exists()


def test_help_lists_the_mask_options(work: Path) -> None:
    done = run_painterly(["stylize", "--help"], work)
    assert done.returncode == 0
    text = done.stdout
    for word in ("--mask", "--region", "COLOR=STYLE[:WEIGHT]", "--style-mask", "--mask-propagation"):
        assert word in text


@pytest.mark.parametrize("kind", ["w2", "sliced"])
def test_regions_with_another_style_loss_in_a_real_subprocess(work: Path, tiny_weights_file: Path, kind: str) -> None:
    done = run_painterly(
        ["content.png", "style.png", "style2.png", "-o", "out.png", "--mask", "mask.png", "--region", "red=1",
         "--region", "blue=2", "--style-loss", kind, "--quiet", *fast_args(tiny_weights_file)], work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Image.open(work / "out.png").size == (48, 36)


def test_a_sorting_style_loss_with_tiles_is_one_line_and_writes_nothing(work: Path, tiny_weights_file: Path) -> None:
    before = snapshot(work)
    done = run_painterly(
        ["content.png", "style.png", "-o", "out.png", "--mask", "mask.png", "--region", "red=1", "--region", "blue=photo",
         "--style-loss", "histogram", "--tile", "32", *fast_args(tiny_weights_file)], work,
    )  # fmt: skip
    assert done.returncode == 2
    line = one_line_error(done.stderr)
    assert "--style-loss histogram" in line and "--tile" in line, line
    assert snapshot(work) == before
