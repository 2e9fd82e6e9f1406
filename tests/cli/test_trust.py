"""Issue 12, the command line: `resume` writes only where the user says, nothing it should not touch is
touched, and odd values get one line instead of an internal error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cli_support import fast_args, one_line_error, run_main, snapshot
from cli_support import one_torch_thread  # noqa: F401 (an autouse fixture)


def _checkpoint(tmp_path: Path, images, weights: Path, output: str, log: str | None) -> Path:  # noqa: ANN001
    """A real checkpoint of a real run (one iteration done), saved with the given output and log
    entries, as a crafted file would carry them."""
    from painterly.api import load_inputs
    from painterly.config import Config
    from painterly.engine import StyleTransfer

    config = Config(weights=str(weights), precision="fp32", device="cpu", size=48, iterations=3, seed=0,
                    content_layers=("relu1_1",), style_layers=("relu1_1",))  # fmt: skip
    run = StyleTransfer(config).start(load_inputs(config, images.content, [images.style]))
    run.step()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    path = folder / "run.png.ckpt"
    torch.save({"run": run.state_dict(), "output": output, "outputs": {"save_every": 1, "checkpoint_every": 1, "log": log}}, path)
    return path


def test_a_crafted_checkpoint_writes_nothing_outside_its_folder(capsys, tmp_path: Path, monkeypatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim, notes = elsewhere / "victim.png", elsewhere / "notes.txt"
    victim.write_bytes(b"not to be overwritten")
    notes.write_text("my notes\nnot JSON at all\n")
    ckpt = _checkpoint(tmp_path, images, tiny_weights_file, str(victim), str(notes))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(elsewhere)
    rc, err = run_main(capsys, ["resume", str(ckpt)])
    assert rc == 0, err
    assert snapshot(elsewhere) == before  # the paths stored in the checkpoint were never used
    assert list(work.iterdir()) == []
    said = [line for line in err.splitlines() if "resuming" in line]
    assert said and str(ckpt.parent / "victim.png") in said[0] and str(ckpt.parent / "notes.txt") in said[0]
    assert (ckpt.parent / "victim.png").is_file() and (ckpt.parent / "notes.txt").is_file()
    assert not ckpt.exists()  # the run finished: its checkpoint has nothing left to give


def test_resume_never_rewrites_a_file_that_is_not_its_log(capsys, tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    ckpt = _checkpoint(tmp_path, images, tiny_weights_file, "out.png", "notes.txt")
    notes = ckpt.parent / "notes.txt"
    notes.write_text("a user's own text file\n")
    before = snapshot(tmp_path)
    rc, err = run_main(capsys, ["resume", str(ckpt), "-q"])
    line = one_line_error(err)
    assert rc == 2 and "notes.txt" in line and "not a painterly loss log" in line
    assert snapshot(tmp_path) == before


def test_resume_writes_where_it_is_told(capsys, tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    ckpt = _checkpoint(tmp_path, images, tiny_weights_file, "/somewhere/else/out.png", "/somewhere/else/log.jsonl")
    target = tmp_path / "chosen"
    rc, err = run_main(capsys, ["resume", str(ckpt), "-o", str(target / "mine.png"), "--log", str(target / "mine.jsonl"), "-q"])
    assert rc == 0, err
    written = sorted(p.name for p in target.iterdir())
    assert {"mine.jsonl", "mine.png"} <= set(written) and all(name.startswith("mine") for name in written), written
    assert not Path("/somewhere/else").exists()


@pytest.mark.parametrize(
    "field, value, needle",
    [("iteration", "seven", "iteration"), ("level_index", -1, "level_index"), ("image", "pixels", "image"), ("losses", [1, 2], "losses")],
)
def test_a_checkpoint_with_fields_of_the_wrong_type_is_one_line(field, value, needle, capsys, tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    ckpt = _checkpoint(tmp_path, images, tiny_weights_file, "out.png", None)
    data = torch.load(ckpt, weights_only=True)
    data["run"][field] = value
    torch.save(data, ckpt)
    before = snapshot(tmp_path)
    rc, err = run_main(capsys, ["resume", str(ckpt)])
    line = one_line_error(err)
    assert rc == 2 and "damaged checkpoint" in line and needle in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--size", "100000"], "--size must be at most 16384"),
        (["--seed", str(2**70)], "--seed must be a non-negative integer below 2**63"),
        (["--optimizer", "adam", "--learning-rate", "1e300"], "--learning-rate must be at most"),
    ],
)
def test_values_that_used_to_be_internal_errors(extra, needle, capsys, tmp_path: Path, monkeypatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    argv = ["stylize", str(images.content), str(images.style), "-o", "out.png", *fast_args(tiny_weights_file), *extra]
    rc, err = run_main(capsys, argv)
    line = one_line_error(err)
    assert rc == 2 and needle in line
    assert snapshot(tmp_path) == before


def test_a_read_only_output_is_not_replaced(capsys, tmp_path: Path, monkeypatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    os.chmod(out, 0o444)
    rc, err = run_main(capsys, ["stylize", str(images.content), str(images.style), "-o", "out.png", *fast_args(tiny_weights_file)])
    line = one_line_error(err)
    assert rc == 2 and "read-only" in line and out.read_bytes() == b"keep me"


def test_outputs_and_checkpoints_are_private(capsys, tmp_path: Path, monkeypatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """They embed the input photos: readable by the user alone (0600), their new folders 0700."""
    monkeypatch.chdir(tmp_path)
    argv = ["stylize", str(images.content), str(images.style), "-o", "new/out.png", "--save-every", "1", "--log", "logs/losses.jsonl", "--plot", "new/losses.png", *fast_args(tiny_weights_file)]
    rc, err = run_main(capsys, argv)
    assert rc == 0, err
    assert (tmp_path / "new/losses.png").is_file()
    for path in [*(tmp_path / "new").iterdir(), tmp_path / "logs/losses.jsonl"]:
        assert oct(path.stat().st_mode & 0o777) == oct(0o600), path
    for folder in ("new", "logs"):
        assert oct((tmp_path / folder).stat().st_mode & 0o777) == oct(0o700), folder


def test_a_new_run_never_replaces_an_unfinished_runs_checkpoint(capsys, tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """Ctrl-C, then the same command again (as `batch` and `video` allow): the new run would overwrite
    the checkpoint of the interrupted one at its first checkpoint. It is refused, naming the way on."""
    ckpt = _checkpoint(tmp_path, images, tiny_weights_file, "run.png", None)
    folder = ckpt.parent
    argv = ["stylize", str(images.content), str(images.style), "-o", str(folder / "run.png"), "--checkpoint-every", "1", *fast_args(tiny_weights_file)]
    before = snapshot(tmp_path)
    rc, err = run_main(capsys, argv)
    line = one_line_error(err)
    assert rc == 2 and f"{ckpt}: holds an unfinished run" in line and f"painterly resume {ckpt}" in line
    assert snapshot(tmp_path) == before
    # Resumed into another output whose own checkpoint is an unfinished run's: refused the same way.
    other = folder / "other.png.ckpt"
    other.write_bytes(ckpt.read_bytes())
    rc, err = run_main(capsys, ["resume", str(ckpt), "-o", str(folder / "other.png")])
    assert rc == 2 and f"{other}: holds an unfinished run" in one_line_error(err)
    assert snapshot(tmp_path) == {**before, "ckpt/other.png.ckpt": snapshot(tmp_path)["ckpt/other.png.ckpt"]}
    # Without --checkpoint-every nothing would touch it: that run goes ahead; so does the resume itself.
    rc, err = run_main(capsys, argv[: argv.index("--checkpoint-every")] + argv[argv.index("--checkpoint-every") + 2 :])
    assert rc == 0, err
    rc, err = run_main(capsys, ["resume", str(ckpt), "-q"])
    assert rc == 0, err
    assert not ckpt.exists()
