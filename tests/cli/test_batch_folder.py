"""``painterly batch`` and what is already in its folder, and odd job lists (a user audit of many-image
work): nothing a batch did not write is replaced; a finished result made with other settings is
replaced only with one line saying so; the batch's own file names cannot be a job's; a folder given
as an image, the same file spelt twice and a swept value given twice are handled in one line or
merged. Real subprocesses where a batch runs; ``run_main`` where it is refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_support import one_torch_thread  # noqa: F401 (an autouse fixture)
from cli_support import child_env, fast_args, run_main, run_painterly, snapshot


def _png(path: Path, seed: int, size: tuple[int, int] = (56, 48)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3)).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "photos").mkdir()
    (tmp_path / "paintings").mkdir()
    _png(tmp_path / "photos" / "a.png", 0)
    _png(tmp_path / "paintings" / "p1.png", 1, (48, 48))
    return tmp_path


def _records(out: Path) -> dict[str, dict]:
    return {r["output"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}


def _args(root: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return ["batch", "--content", str(root / "photos" / "a.png"), "--style", str(root / "paintings" / "p1.png"), "-o", str(out), *extra, *fast_args(weights)]


@pytest.mark.parametrize("name", ["a__p1.png", "manifest.jsonl", "contact-sheet.png", "index.html"])
def test_a_file_the_batch_did_not_write_is_refused(name: str, capsys: pytest.CaptureFixture[str], inputs: Path, tiny_weights_file: Path) -> None:
    out = inputs / "out"
    out.mkdir()
    (out / name).write_bytes(b"the user's own file")
    (out / "notes.txt").write_text("unrelated files are fine")
    before = snapshot(out)
    rc, err = run_main(capsys, _args(inputs, out, tiny_weights_file))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and str(out / name) in err, err
    assert "another --output folder" in err, err
    assert snapshot(out) == before  # nothing written, nothing replaced


def test_a_result_made_with_other_settings_is_replaced_with_one_line(inputs: Path, tiny_weights_file: Path) -> None:
    out = inputs / "out"
    first = run_painterly(_args(inputs, out, tiny_weights_file, "--style-weight", "100"), inputs)
    assert first.returncode == 0 and "replaced" not in first.stderr, first.stderr
    (out / "notes.txt").write_text("a file of the user's beside the results")  # not the batch's: left alone
    again = run_painterly(_args(inputs, out, tiny_weights_file, "--style-weight", "5"), inputs)
    assert again.returncode == 0, again.stderr
    lines = [line for line in again.stderr.splitlines() if "replaced" in line]
    assert len(lines) == 1 and "a__p1.png (style_weight 100.0 → 5.0)" in lines[0], again.stderr
    assert _records(out)["a__p1.png"]["options"]["style_weight"] == 5.0
    assert (out / "notes.txt").read_text().startswith("a file of the user's")
    same = run_painterly(_args(inputs, out, tiny_weights_file, "--style-weight", "5"), inputs)
    assert same.returncode == 0 and "replaced" not in same.stderr and "1 skipped" in same.stderr, same.stderr


def test_a_job_may_not_take_the_name_of_the_sheet_page_or_manifest(capsys: pytest.CaptureFixture[str], inputs: Path, tiny_weights_file: Path) -> None:
    for name in ("contact-sheet.png", "Index.html", "manifest.jsonl"):
        jobs = inputs / "jobs.jsonl"
        jobs.write_text(json.dumps({"content": "photos/a.png", "style": "paintings/p1.png", "output": name}) + "\n")
        rc, err = run_main(capsys, ["batch", "--jobs", str(jobs), "-o", str(inputs / "out"), *fast_args(tiny_weights_file)])
        assert rc == 2 and len(err.strip().splitlines()) == 1 and f"job {name}: the batch writes its own" in err, err
        assert not (inputs / "out").exists()


def test_a_folder_as_an_image_the_same_file_twice_and_a_value_twice(inputs: Path, tiny_weights_file: Path) -> None:
    jobs = inputs / "jobs.jsonl"
    jobs.write_text(
        json.dumps({"content": "photos/a.png", "style": "paintings/p1.png"}) + "\n"
        + json.dumps({"content": "photos", "style": "paintings/p1.png", "output": "folder.png"}) + "\n"
    )
    proc = run_painterly(["batch", "--jobs", str(jobs), "-o", str(inputs / "j"), *fast_args(tiny_weights_file)], inputs)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    naming = [line for line in proc.stderr.splitlines() if "is a folder, not an image file" in line]
    assert len(naming) == 1 and naming[0].startswith("painterly: error:"), proc.stderr
    assert _records(inputs / "j")["folder.png"]["status"] == "failed"
    # photos/a.png and ./photos/a.png are one content; style_weight=5,5 is one column.
    args = [
        "batch", "--content", "photos/a.png", "./photos/a.png", "--style", "paintings/p1.png",
        "--sweep", "style_weight=5,5", "-o", "twice", *fast_args(tiny_weights_file),
    ]  # fmt: skip
    proc = run_painterly(args, inputs)
    assert proc.returncode == 0, proc.stderr
    assert set(_records(inputs / "twice")) == {"a__p1__style_weight-5.png"}


def test_an_unreachable_or_malformed_ray_address_is_one_line(inputs: Path, tiny_weights_file: Path) -> None:
    """Ray itself retries an address where nothing listens for minutes (printing its own warnings), and
    a malformed one was an internal error: both are one line, at once, with nothing written."""
    import socket

    pytest.importorskip("ray")
    with socket.socket() as sock:  # a port where nothing listens (bound, then closed)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for address, expected in ((f"127.0.0.1:{port}", "nothing answers there"), ("bogus", "write it as HOST:PORT")):
        out = inputs / "ray-out"
        proc = run_painterly(_args(inputs, out, tiny_weights_file, "--backend", "ray", "--ray-address", address), inputs, timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"painterly: error: --ray-address {address}: {expected}"), proc.stderr
        assert not out.exists()
    # Without the flag, Ray joins the cluster of its own RAY_ADDRESS: checked the same way.
    proc = run_painterly(_args(inputs, out, tiny_weights_file, "--backend", "ray"), inputs, env=child_env(RAY_ADDRESS=f"127.0.0.1:{port}"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith(f"painterly: error: RAY_ADDRESS 127.0.0.1:{port}: nothing answers there"), proc.stderr
    assert not out.exists()


def test_the_photos_own_folder_as_output_reruns_skipping_its_results(inputs: Path, tiny_weights_file: Path) -> None:
    """``--content photos/ -o photos/``: the first run writes its results beside the photos; the same
    command again must skip them, not take the results (and the sheet) for new photos."""
    (inputs / "paintings" / "p1.png").rename(inputs / "p1.png")
    for spec in ("photos", str(inputs / "photos" / "*.png")):
        args = ["batch", "--content", spec, "--style", "p1.png", "-o", "photos", *fast_args(tiny_weights_file)]
        proc = run_painterly(args, inputs)
        assert proc.returncode == 0, proc.stderr
        assert set(_records(inputs / "photos")) == {"a__p1.png"}, proc.stderr
    assert "1/1 done (0 ran, 1 skipped)" in proc.stderr, proc.stderr


def test_an_output_folder_that_cannot_be_made_or_written_is_one_line(capsys: pytest.CaptureFixture[str], inputs: Path, tiny_weights_file: Path) -> None:
    (inputs / "a-file").write_text("not a folder")
    rc, err = run_main(capsys, _args(inputs, inputs / "a-file" / "out", tiny_weights_file))
    assert rc == 2 and err.strip() == f"painterly: error: {inputs / 'a-file' / 'out'}: cannot create the batch's --output folder (Not a directory)", err
    # The page cannot be written (a folder in its place): one line, the result and manifest are kept, exit 1.
    out = inputs / "out"
    assert run_painterly(_args(inputs, out, tiny_weights_file), inputs).returncode == 0
    (out / "index.html").unlink()
    (out / "index.html").mkdir()
    proc = run_painterly(_args(inputs, out, tiny_weights_file, "--style-weight", "5"), inputs)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    naming = [line for line in proc.stderr.splitlines() if "cannot write" in line]
    assert len(naming) == 1 and naming[0].startswith(f"painterly: error: {out / 'index.html'}: cannot write it"), proc.stderr
    assert _records(out)["a__p1.png"]["options"]["style_weight"] == 5.0


def test_a_job_listed_twice_is_named_as_such(capsys: pytest.CaptureFixture[str], inputs: Path, tiny_weights_file: Path) -> None:
    jobs = inputs / "jobs.jsonl"
    jobs.write_text(
        json.dumps({"content": "photos/a.png", "style": "paintings/p1.png"}) + "\n"
        + json.dumps({"content": "./photos/a.png", "styles": ["paintings/p1.png"]}) + "\n"
    )
    rc, err = run_main(capsys, ["batch", "--jobs", str(jobs), "-o", str(inputs / "out"), *fast_args(tiny_weights_file)])
    assert rc == 2 and err.strip() == f"painterly: error: --jobs {jobs}: the job a__p1.png is listed twice (the same content, styles and options); drop one", err


def test_unicode_and_spaces_in_names(inputs: Path, tiny_weights_file: Path) -> None:
    """Accents are kept as their letters (``café`` → ``cafe``; they were dropped: ``caf``), and names
    with no ASCII form get a hash of themselves: ``東京`` and ``大阪`` both became ``image``, and the
    batch refused to run them together."""
    from painterly.batch.jobs import _stem

    photos = inputs / "photos"
    for i, name in enumerate(("café au lait", "東京", "大阪")):
        _png(photos / f"{name}.png", 10 + i)
    proc = run_painterly(["batch", "--content", "photos", "--style", "paintings/p1.png", "-o", "out", *fast_args(tiny_weights_file)], inputs)
    assert proc.returncode == 0, proc.stderr
    names = set(_records(inputs / "out"))
    assert len(names) == 4 and {"a__p1.png", "cafe-au-lait__p1.png"} <= names, names
    assert {n for n in names if n.startswith("image-")} == {f"{_stem('東京.png')}__p1.png", f"{_stem('大阪.png')}__p1.png"}
    assert _stem("東京.png") != _stem("大阪.png") and _stem("東京.png") == _stem("x/東京.jpg")
    assert all(n.isascii() for n in names)


def test_a_result_written_just_before_the_batch_was_killed_is_its_own(inputs: Path, tiny_weights_file: Path) -> None:
    """Killed between writing a result and its record (here: the record removed), the batch's own
    result is recognised by its PNG's painterly settings and made again, not refused as foreign."""
    out = inputs / "out"
    assert run_painterly(_args(inputs, out, tiny_weights_file), inputs).returncode == 0
    for name in ("manifest.jsonl", "contact-sheet.png", "index.html"):  # killed before any was written
        (out / name).unlink()
    proc = run_painterly(_args(inputs, out, tiny_weights_file), inputs)
    assert proc.returncode == 0 and "1 ran" in proc.stderr, proc.stderr
    # The same file made with other settings is not this job's: refused (it may be the user's own).
    for name in ("manifest.jsonl", "contact-sheet.png", "index.html"):
        (out / name).unlink()
    proc = run_painterly(_args(inputs, out, tiny_weights_file, "--style-weight", "5"), inputs)
    assert proc.returncode == 2 and "already there" in proc.stderr, proc.stderr


def test_ray_s_own_address_words_are_taken_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` and ``local`` are Ray's own values for ``address`` (and for RAY_ADDRESS): they name no
    host to try, so the check passes them to Ray instead of refusing them as malformed."""
    from painterly.cli.batch_ray import check_address
    from painterly.errors import ConfigError

    for word in ("auto", "local"):
        check_address(word)
        monkeypatch.setenv("RAY_ADDRESS", word)
        check_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "bogus")
    with pytest.raises(ConfigError, match="RAY_ADDRESS bogus: write it as HOST:PORT"):
        check_address(None)


def test_output_gone_mid_batch_the_batch_still_ends_and_writes(inputs: Path, tiny_weights_file: Path) -> None:
    """The terminal or pipe the batch reports to goes away (an ssh session closed, ``2>&1 | head``):
    the batch's lines go nowhere, and every job still runs and is recorded (it ended at the first line)."""
    from cli_support import finish, start_painterly

    out = inputs / "gone"
    proc = start_painterly(_args(inputs, out, tiny_weights_file, "--sweep", "style_weight=1,2,3"), inputs, step_delay=0.02)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0
    assert sorted(r["status"] for r in _records(out).values()) == ["done"] * 3


def test_a_result_is_recognised_whatever_device_or_precision_made_it(tmp_path: Path) -> None:
    """A batch's own PNG (killed before its record) is its own when only the device or the precision
    differ, as for the manifest's jobs (result_settings); another setting makes it someone else's."""
    import torch

    from painterly.cli.batch import _made_for
    from painterly.cli.commands import _metadata
    from painterly.config import Config
    from painterly.imageio import save_image

    made = Config(size=32, precision="fp32", device="cpu")
    path = tmp_path / "a__p1.png"
    save_image(torch.rand(1, 3, 16, 16), path, metadata=_metadata(made))
    assert _made_for(path, made)
    assert _made_for(path, made.replace(precision="bf16", device="auto"))
    assert not _made_for(path, made.replace(style_weight=5.0))
