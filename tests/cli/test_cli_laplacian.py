"""``--laplacian-weight`` / ``--laplacian-pools`` on the command line (Li et al.'s Laplacian loss): a real
run reports the term in its log, by tiles too, and a bad value is one line naming the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import one_torch_thread  # noqa: F401 (an autouse fixture)
from cli_support import fast_args, one_line_error, run_main, run_painterly, snapshot


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_with_the_flag_logs_the_term_and_tiles_give_the_same(tmp_path: Path, images, tiny_weights_file: Path) -> None:
    args = [str(images.content), str(images.style), *fast_args(tiny_weights_file, size=64, iterations=3),
            "--laplacian-weight", "300", "--laplacian-pools", "2,8"]  # fmt: skip
    whole = run_painterly([*args, "-o", "whole.png", "--log", "whole.jsonl"], tmp_path)
    assert whole.returncode == 0, whole.stderr
    tiled = run_painterly([*args, "-o", "tiled.png", "--log", "tiled.jsonl", "--tile", "24"], tmp_path)
    assert tiled.returncode == 0, tiled.stderr
    a, b = _log(tmp_path / "whole.jsonl"), _log(tmp_path / "tiled.jsonl")
    assert len(a) == 3 and all(r["laplacian"] > 0 for r in a)
    assert [r["laplacian"] for r in b] == pytest.approx([r["laplacian"] for r in a], rel=1e-3)
    assert [r["total"] for r in b] == pytest.approx([r["total"] for r in a], rel=1e-3)
    from PIL import Image

    with Image.open(tmp_path / "whole.png") as im:
        saved = json.loads(im.info["painterly:config"])
    assert saved["laplacian_weight"] == 300 and saved["laplacian_pools"] == [2, 8]


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--laplacian-pools", "4,0"], "--laplacian-pools values must be between 1 and 256"),
        (["--laplacian-weight", "-3"], "--laplacian-weight must be at least 0"),
        (["--laplacian-weight", "5", "--laplacian-pools", ""], "--laplacian-weight is positive but --laplacian-pools is empty"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag(flags, words, capsys, tmp_path: Path, images, tiny_weights_file: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    rc, err = run_main(capsys, [str(images.content), str(images.style), "-o", "out.png", *fast_args(tiny_weights_file), *flags])
    assert rc == 2
    assert words in one_line_error(err)
    assert snapshot(tmp_path) == before


def test_texture_has_no_laplacian_flags(capsys, images, tiny_weights_file: Path) -> None:
    rc, err = run_main(capsys, ["texture", str(images.style), "-o", "t.png", *fast_args(tiny_weights_file, "texture"), "--laplacian-weight", "5"])
    assert rc == 2 and "--laplacian-weight" in err
