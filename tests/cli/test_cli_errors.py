"""Issue 5, bad input: every one gets a single line that names the file or option at fault, exit status
2 (usage, bad input) or 1 (failure at run time), no traceback, and nothing written — no output image,
no --log file, no intermediate image or checkpoint, no folder, no temporary file.

Most cases run ``painterly`` in this process (a run costs milliseconds); a few run the real command in
a subprocess to show the same from the outside (exit status, stderr). Every file is made by the test.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
import threading
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from cli_support import one_torch_thread  # noqa: F401 (an autouse fixture)
from cli_support import fast_args, one_line_error, run_main, run_painterly, snapshot

# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path: Path, images) -> Path:  # noqa: ANN001
    """tmp_path/in: copies of the conftest's content (64x48) and style (48x48) PNGs."""
    d = tmp_path / "in"
    d.mkdir()
    for name, src in (("content.png", images.content), ("style.png", images.style)):
        (d / name).write_bytes(Path(src).read_bytes())
    return d


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory of the command (relative paths land here)."""
    d = tmp_path / "work"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


# Every refused command also asks for a log, intermediates and checkpoints in a folder that does not
# exist yet: none of it, not even the folder, may appear.
SIDE_OUTPUTS = ["--log", "out/log.jsonl", "--save-every", "1", "--checkpoint-every", "1"]


def stylize(weights: Path, content: str, styles: list[str], *extra: str, output: str = "out/result.png") -> list[str]:
    return ["stylize", content, *styles, "-o", output, *fast_args(weights), *SIDE_OUTPUTS, *extra]


def refused(capsys, root: Path, argv: list[str], status: int, *needles: str) -> str:  # noqa: ANN001
    """Run ``argv``; check status, one error line holding every needle, and that nothing changed."""
    before = snapshot(root)
    rc, err = run_main(capsys, argv)
    line = one_line_error(err)
    assert rc == status, err
    for needle in needles:
        assert needle in line, f"{needle!r} not in: {line}"
    assert snapshot(root) == before, "something was written"
    return line


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG signature + IHDR declaring ``width x height`` (and no pixel data): a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def _noise(w: int = 64, h: int = 48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _truncated(path: Path, fmt: str) -> Path:
    _noise().save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


# name → (make the file in a folder → its path, what the message must say)
BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda d: d / "nothing-here.png", "no such file"),
    "directory": (lambda d: _folder(d / "a-folder.png"), "is a directory"),
    "zero-bytes": (lambda d: _write(d / "empty.png", b""), "empty file"),
    "truncated-jpeg": (lambda d: _truncated(d / "cut.jpg", "JPEG"), "truncated or corrupt"),
    "truncated-png": (lambda d: _truncated(d / "cut.png", "PNG"), "truncated or corrupt"),
    "text": (lambda d: _write(d / "notes.png", b"not a picture\n"), "not an image file"),
    "pdf": (lambda d: _write(d / "paper.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"), "PDF"),
    # 100000 x 100000 declared in a 100-byte file: refused from the header, before any decoding.
    "decompression-bomb": (lambda d: png_header_only(d / "bomb.png", 100_000, 100_000), "exceeds the limit"),
}


# --- bad input images ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["content", "style"])
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_input_image(kind: str, where: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    make, reason = BAD_FILES[kind]
    bad = make(tmp_path / "in")
    content, style = (str(bad), str(inputs / "style.png")) if where == "content" else (str(inputs / "content.png"), str(bad))
    line = refused(capsys, tmp_path, stylize(tiny_weights_file, content, [style]), 2, str(bad), reason)
    assert line.startswith("painterly: error: ")


@pytest.mark.parametrize("kind", ["missing", "text", "truncated-png"])
def test_bad_init_image(kind: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    make, reason = BAD_FILES[kind]
    bad = make(tmp_path / "in")
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--init", str(bad))
    refused(capsys, tmp_path, argv, 2, str(bad), reason)


def test_bad_second_style_image(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    bad = BAD_FILES["text"][0](tmp_path / "in")
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png"), str(bad)])
    refused(capsys, tmp_path, argv, 2, str(bad), "not an image file")


def test_texture_with_bad_style(capsys, tmp_path: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    bad = BAD_FILES["truncated-jpeg"][0](tmp_path)
    argv = ["texture", str(bad), "-o", "out/t.png", *fast_args(tiny_weights_file, "texture"), *SIDE_OUTPUTS]
    refused(capsys, tmp_path, argv, 2, str(bad), "truncated or corrupt")


def test_more_pixels_than_max_pixels(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """A perfectly good 64x48 image is refused under --max-pixels 1000, naming the limit to raise."""
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--max-pixels", "1000")
    refused(capsys, tmp_path, argv, 2, "content.png", "64x48", "--max-pixels")


# --- the output path ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, needle",
    [
        ("out/result.xyz", "unsupported output format '.xyz'"),
        ("out/result", "no file extension"),
        ("out/result.gif", "unsupported output format '.gif'"),
    ],
)
def test_unknown_output_extension(output: str, needle: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], output=output)
    line = refused(capsys, tmp_path, argv, 2, output, needle)
    assert ".png" in line  # says what would work


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink"])
@pytest.mark.parametrize("which", ["content", "style", "init"])
def test_output_is_an_input(which: str, spelling: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    content, style = inputs / "content.png", inputs / "style.png"
    init = _write(inputs / "init.png", content.read_bytes())
    target = {"content": content, "style": style, "init": init}[which]
    extra = ["--init", str(init)] if which == "init" else []
    if spelling == "same":
        output = str(target)
    elif spelling == "dotdot":
        output = str(inputs / "sub" / ".." / target.name)
    else:
        (tmp_path / "link.png").symlink_to(target)
        output = str(tmp_path / "link.png")
    original = target.read_bytes()
    line = refused(capsys, tmp_path, stylize(tiny_weights_file, str(content), [str(style)], *extra, output=output), 2, "same file", "refusing")
    assert output in line
    assert target.read_bytes() == original  # byte-identical


@pytest.mark.parametrize("name", ["result-interrupted.png", "result-last-good.png", "result_0002.png"])
def test_files_written_beside_the_output_would_overwrite_an_input(name: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """The image kept on Ctrl-C, the last good one, the intermediates: none may land on an input."""
    victim = _write(work / name, (inputs / "content.png").read_bytes())
    argv = stylize(tiny_weights_file, str(victim), [str(inputs / "style.png")], output="result.png")
    refused(capsys, tmp_path, argv, 2, "result.png", name, "another output name")


def test_output_is_a_directory(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    (work / "pics.png").mkdir()
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], output="pics.png")
    refused(capsys, tmp_path, argv, 2, "pics.png", "is a directory")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, as non-root")
def test_output_folder_not_writable(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], output="locked/out.png")
        refused(capsys, tmp_path, argv, 2, "locked/out.png", "permission denied")
    finally:
        locked.chmod(0o755)


def test_output_folder_blocked_by_a_file(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    (work / "results").write_text("a file where a folder should go")
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], output="results/new/out.png")
    refused(capsys, tmp_path, argv, 2, "results/new/out.png", "is a file")


# --- the --log file ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["input", "output", "directory", "intermediate", "kept on ctrl-c"])
def test_bad_log_path(case: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    content = inputs / "content.png"
    log = {"input": str(content), "output": "out/result.png", "directory": str(work),
           "intermediate": "out/result_0001.png", "kept on ctrl-c": "out/result-interrupted.png"}[case]  # fmt: skip
    needle = {"input": "one of the input images", "output": "is the output image", "directory": "is a directory"}.get(case, f"this run writes {log} itself")
    original = content.read_bytes()
    argv = stylize(tiny_weights_file, str(content), [str(inputs / "style.png")]) + ["--log", log]
    refused(capsys, tmp_path, argv, 2, "--log", needle)
    assert content.read_bytes() == original


@pytest.mark.parametrize("case", ["not png", "output", "log", "directory", "intermediate"])
def test_bad_plot_path(case: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    (work / "charts.png").mkdir()
    plot = {"not png": "losses.jpg", "output": "out/result.png", "log": "out/log.jsonl", "directory": str(work / "charts.png"), "intermediate": "out/result_0002.png"}[case]
    needle = {"not png": "must be a .png file name", "output": "is the output image", "log": "is the loss log", "directory": "is a directory",
              "intermediate": "this run writes out/result_0002.png itself"}[case]  # fmt: skip
    if case == "log":
        plot = "out/log.png"
        argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--plot", plot, "--log", plot)
    else:
        argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--plot", plot)
    refused(capsys, tmp_path, argv, 2, "--plot", needle)


# --- layer names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, bad",
    [
        ("--content-layers", "relu9_9", "relu9_9"),
        ("--style-layers", "relu1_1,conv1_3", "conv1_3"),
        ("--style-layers", "RELU1_1", "RELU1_1"),
    ],
)
def test_unknown_layer(option: str, value: str, bad: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], option, value)
    line = refused(capsys, tmp_path, argv, 2, option, repr(bad), "valid layers:")
    for valid in ("relu1_1", "conv4_2", "relu5_1", "pool5"):
        assert valid in line


def test_unknown_reconstruct_layer(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = ["reconstruct", str(inputs / "content.png"), "-o", "out/r.png", *fast_args(tiny_weights_file, "reconstruct"), *SIDE_OUTPUTS, "--layer", "relu3_9"]
    refused(capsys, tmp_path, argv, 2, "--layer", "'relu3_9'", "valid layers:", "relu3_1")


# --- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, needle",
    [
        ("--style-weight", "-1", "at least 0"),
        ("--content-weight", "-0.5", "at least 0"),
        ("--tv-weight", "-3", "at least 0"),
        ("--size", "0", "at least 1"),
        ("--size", "-64", "at least 1"),
        ("--iterations", "0", "at least 1"),
        ("--content-weight", "nan", "finite"),
        ("--style-weight", "inf", "finite"),
        ("--learning-rate", "NaN", "finite"),
        ("--learning-rate", "0", "greater than 0"),
        ("--size", "big", "integer"),
        ("--iterations", "2.5", "integer"),
        ("--style-blend", "nan", "finite"),
        ("--style-layer-weights", "-1", "non-negative"),
        ("--max-pixels", "0", "at least 1"),
        ("--seed", "-1", "non-negative"),
        ("--init-noise", "1.5", "[0, 1]"),
        ("--min-size", "4", "at least 16"),
        ("--level-iterations", "0,0", "positive sum"),
        ("--save-every", "-1", "non-negative"),
        ("--checkpoint-every", "-2", "non-negative"),
    ],
)
def test_invalid_number(option: str, value: str, needle: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], option, value)
    refused(capsys, tmp_path, argv, 2, option, needle)


# --- contradictory options -------------------------------------------------------------------------


def test_style_blend_count_mismatch(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--style-blend", "3,7")
    refused(capsys, tmp_path, argv, 2, "--style-blend", "2 values for 1 style image")


def test_style_blend_count_mismatch_two_styles(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    style = str(inputs / "style.png")
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [style, style], "--style-blend", "1,2,3")
    refused(capsys, tmp_path, argv, 2, "--style-blend", "3 values for 2 style images")


def test_texture_with_init_content(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = ["texture", str(inputs / "style.png"), "-o", "out/t.png", *fast_args(tiny_weights_file, "texture"), *SIDE_OUTPUTS, "--init", "content"]
    refused(capsys, tmp_path, argv, 2, "--init content", "texture")


def test_reconstruct_with_init_style(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = ["reconstruct", str(inputs / "content.png"), "-o", "out/r.png", *fast_args(tiny_weights_file, "reconstruct"), *SIDE_OUTPUTS, "--init", "style"]
    refused(capsys, tmp_path, argv, 2, "--init style", "reconstruct")


def test_style_layer_weights_length_mismatch(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--style-layer-weights", "1,2,3")
    refused(capsys, tmp_path, argv, 2, "--style-layer-weights", "3 values for 1 style layers")


def test_all_loss_weights_zero(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = stylize(
        tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")],
        "--content-weight", "0", "--style-weight", "0", "--tv-weight", "0",
    )  # fmt: skip
    refused(capsys, tmp_path, argv, 2, "nothing to optimise")


def test_misspelt_init_keyword(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--init", "contnet")
    refused(capsys, tmp_path, argv, 2, "--init contnet", "no such file", "noise, content, style")


def test_unknown_option(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--style-wieght", "3")
    refused(capsys, tmp_path, argv, 2, "--style-wieght")


def test_a_style_after_the_options_is_a_style(monkeypatch):
    # An artist adds a second painting at the end of the line: it is a style, not "unrecognized".
    import painterly.cli.commands as commands
    from painterly.cli import main

    seen = []
    monkeypatch.setattr(commands, "run_command", lambda args: seen.append(vars(args)) or 0)
    assert main(["c.png", "s1.png", "--size", "64", "s2.png", "-o", "out.png"]) == 0
    assert main(["video", "in.mp4", "s1.png", "--size", "64", "s2.png", "-o", "out.mp4"]) == 0
    assert seen[0]["command"] == "stylize" and seen[0]["styles"] == ["s1.png", "s2.png"] and seen[0]["size"] == 64
    assert seen[1]["command"] == "video" and seen[1]["styles"] == ["s1.png", "s2.png"]


@pytest.mark.parametrize(
    "argv, command, word",
    [
        (["texture", "s.png", "-o", "t.png", "--original-colors"], "texture", "--original-colors"),
        (["reconstruct", "c.png", "s.png", "-o", "r.png"], "reconstruct", "s.png"),
        (["info", "extra"], "info", "extra"),
    ],
)
def test_an_argument_a_command_does_not_take_points_to_that_commands_help(argv, command, word, capsys):
    from painterly.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"painterly {command}: error: unrecognized arguments: {word}")
    assert err.endswith(f"(see painterly {command} --help)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--device", "cuda")
    refused(capsys, tmp_path, argv, 2, "--device cuda")


# --- weights (runtime failures: exit status 1) ------------------------------------------------------


@pytest.mark.parametrize("case", ["missing-file", "not-weights", "unknown-name", "too-shallow"])
def test_bad_weights(case: str, capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    if case == "too-shallow":  # the tiny file stops at conv3_1: relu4_1 cannot be computed
        argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--style-layers", "relu4_1")
        refused(capsys, tmp_path, argv, 1, "conv3_2", "relu4_1")
        return
    if case == "missing-file":
        spec, needle = str(tmp_path / "in" / "vgg.safetensors"), "not found"
    elif case == "not-weights":
        spec = str(tmp_path / "in" / "vgg.pth")
        Path(spec).write_text("definitely not a pickle")
        needle = "cannot read"
    else:
        spec, needle = "vgg-from-the-moon", "unknown weights"
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")], "--weights", spec)
    refused(capsys, tmp_path, argv, 1, spec, needle)


# --- resume with a bad checkpoint ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["missing", "directory", "text", "wrong-structure"])
def test_resume_bad_checkpoint(case: str, capsys, tmp_path: Path, work: Path) -> None:  # noqa: ANN001
    path = tmp_path / "in" / "run.png.ckpt"
    path.parent.mkdir()
    if case == "directory":
        path.mkdir()
    elif case == "text":
        path.write_text("hello")
    elif case == "wrong-structure":
        torch.save({"run": {"config": {"size": 64}}}, path)
    needle = {"missing": "no such checkpoint", "directory": "is a directory"}.get(case, "not a painterly checkpoint")
    refused(capsys, tmp_path, ["resume", str(path)], 2, str(path), needle)


# --- failing to write: the old file survives ------------------------------------------------------


def _failing_save(monkeypatch: pytest.MonkeyPatch, fail_on: Callable[[int], bool]) -> list[int]:
    """Make PIL's save write half an image and then fail with 'No space left on device'."""
    real_save = Image.Image.save
    calls: list[int] = []

    def save(self, fp, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(1)
        if not fail_on(len(calls)):
            return real_save(self, fp, *args, **kwargs)
        fp.write(b"\x89PNG\r\n\x1a\n half an image")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", save)
    return calls


def test_failed_final_save_keeps_the_old_output(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    out = work / "result.png"
    _noise(10, 10).save(out)
    original = out.read_bytes()
    _failing_save(monkeypatch, lambda n: True)
    argv = ["stylize", str(inputs / "content.png"), str(inputs / "style.png"), "-o", str(out), *fast_args(tiny_weights_file), "-q"]
    rc, err = run_main(capsys, argv)
    line = one_line_error(err)
    # Issue 12: a finished run whose final save fails exits 1 (a failure at run time) and says where
    # its image went (here nowhere: every save fails).
    assert rc == 1 and str(out) in line and "no space left on device" in line
    assert "the finished image could not be kept anywhere" in line
    assert out.read_bytes() == original  # the old file, whole
    assert sorted(p.name for p in work.iterdir()) == ["result.png"]  # no temporary file left behind


def test_failed_intermediate_save_leaves_no_partial_file(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    calls = _failing_save(monkeypatch, lambda n: n == 2)  # the first intermediate is written, the second fails
    argv = [
        "stylize", str(inputs / "content.png"), str(inputs / "style.png"), "-o", "result.png",
        *fast_args(tiny_weights_file, iterations=5), "--save-every", "1", "-q",
    ]  # fmt: skip
    rc, err = run_main(capsys, argv)
    # Issue 12: a failing side write is a note, and the run goes on to the end.
    notes = [line for line in err.splitlines() if line.strip()]
    assert rc == 0 and len(notes) == 1 and notes[0].startswith("painterly: note: ")
    assert "result_0002.png" in notes[0] and "no space left on device" in notes[0].lower() and len(calls) == 5
    assert sorted(p.name for p in work.iterdir()) == ["result.png", "result_0001.png", "result_0003.png", "result_0004.png"]
    Image.open(work / "result_0001.png").load()  # the one that was written is whole


# --- internal errors and --debug ---------------------------------------------------------------------


def test_internal_error_is_one_line(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    import painterly.cli.commands as commands

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ZeroDivisionError("a bug\nspread over two lines")

    monkeypatch.setattr(commands, "_execute", broken)
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")])
    before = snapshot(tmp_path)
    rc, err = run_main(capsys, argv)
    line = one_line_error(err)
    assert rc == 1
    assert line.startswith("painterly: internal error: ZeroDivisionError: a bug spread over two lines")
    assert "--debug" in line
    assert snapshot(tmp_path) == before
    with pytest.raises(ZeroDivisionError):  # --debug lets the traceback through
        run_main(capsys, argv + ["--debug"])


def test_real_process_bad_input(tmp_path: Path, inputs: Path, tiny_weights_file: Path) -> None:
    """The same, from the outside: a real `painterly` given a truncated JPEG. (A failure at run time
    in a real process, exit status 1, is in test_signals_resume.py: offline --weights torchvision.)"""
    bad = _truncated(tmp_path / "in" / "photo.jpg", "JPEG")
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(tmp_path)
    proc = run_painterly(stylize(tiny_weights_file, str(bad), [str(inputs / "style.png")]), work)
    line = one_line_error(proc.stderr)
    assert proc.returncode == 2 and str(bad) in line and "truncated or corrupt" in line
    assert snapshot(tmp_path) == before



def test_output_to_a_pipe_whose_reader_has_gone_ends_quietly(tmp_path: Path) -> None:
    """`painterly info | head -1`: the reader closes the pipe; painterly stops like a Unix tool (exit
    128 + SIGPIPE, no 'internal error: BrokenPipeError' on the terminal)."""
    import os
    import signal
    import subprocess

    from cli_support import child_env, painterly_command

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before painterly writes a byte
    try:
        proc = subprocess.run(painterly_command(["info"]), cwd=tmp_path, env=child_env(), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 128 + signal.SIGPIPE
    assert proc.stderr == ""


def test_debug_lets_the_exception_through(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """--debug: the error propagates (and Python prints its traceback), for a bug report."""
    from painterly.errors import ImageError

    bad = BAD_FILES["text"][0](tmp_path / "in")
    before = snapshot(tmp_path)
    with pytest.raises(ImageError, match="not an image file"):
        run_main(capsys, stylize(tiny_weights_file, str(bad), [str(inputs / "style.png")], "--debug"))
    assert snapshot(tmp_path) == before


def test_debug_may_come_before_the_command(capsys, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """`painterly --debug info` and `painterly --debug CONTENT STYLE -o OUT`: every command takes
    --debug, so it is accepted first too (as git's options are), not refused as unrecognised."""
    from painterly.errors import ImageError

    assert run_main(capsys, ["--debug", "info"]) == (0, "")
    bad = BAD_FILES["text"][0](tmp_path / "in")
    argv = stylize(tiny_weights_file, str(bad), [str(inputs / "style.png")])
    assert argv[0] == "stylize"
    with pytest.raises(ImageError, match="not an image file"):
        run_main(capsys, ["--debug", *argv[1:]])  # the bare form: `stylize` is implied


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_sigterm_before_the_run_starts(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, inputs: Path, work: Path, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """SIGTERM while the weights load (before there is a run to stop): exit 143, nothing written."""
    import painterly.weights as weights

    real = weights.load_weights

    def load_then_terminated(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        result = real(*args, **kwargs)
        # Only with main's handler in place: the default one would end the test process itself.
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None, old)
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(weights, "load_weights", load_then_terminated)
    old = signal.getsignal(signal.SIGTERM)
    argv = stylize(tiny_weights_file, str(inputs / "content.png"), [str(inputs / "style.png")])
    before = snapshot(tmp_path)
    rc, err = run_main(capsys, argv)
    assert rc == 143 and err.strip() == "painterly: terminated"
    assert snapshot(tmp_path) == before
    assert signal.getsignal(signal.SIGTERM) is old  # main put the test process's handler back


def test_a_log_being_written_by_another_run_is_refused(tmp_path, inputs, work, tiny_weights_file):  # noqa: ANN001
    """Issue 12 (item 10): two runs given the same --log. The other run is this test, holding the
    file's lock as a running painterly does; the real command stops with one line, writes nothing,
    and the other run's lines stay as they were."""
    fcntl = pytest.importorskip("fcntl")
    log = work / "shared.jsonl"
    log.write_text('{"iteration": 1}\n')
    with open(log, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = snapshot(work)
        done = run_painterly(
            ["stylize", str(inputs / "content.png"), str(inputs / "style.png"), "-o", "result.png", *fast_args(tiny_weights_file), "--log", str(log)],
            cwd=work,
        )
        assert snapshot(work) == before, "something was written"
    line = one_line_error(done.stderr)
    assert done.returncode == 2, done.stderr
    assert "--log" in line and "another painterly run" in line, line
    assert log.read_text() == '{"iteration": 1}\n'
