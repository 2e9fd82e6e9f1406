"""Issue 5, runs that are stopped, crash, diverge or lack resources.

* SIGINT / SIGTERM to a real ``painterly`` process: it stops within a second or two, keeps the image
  so far next to the output (and says where), and exits 130 / 143.
* Checkpoints: a run interrupted (SIGINT) or killed outright (SIGKILL) and continued with ``painterly
  resume`` ends with the very same PNG as a run that was never interrupted — L-BFGS and Adam, and a
  multi-scale run resumed before, or exactly at, a level boundary. The loss log continues.
* Divergence (NaN/Inf): recovered from, or a one-line error with the last good image kept.
* Weights: a damaged cache is rebuilt (with a note); without any source, the message says how to get
  them. Out of memory: a ResourceError naming a --size that would fit, exit status 1 from the CLI.

The subprocesses use the tiny weights file and one torch thread; each is bounded by a timeout. Runs
that a test must interrupt at a known point are slowed down per iteration (``step_delay``) rather
than raced: what they compute is unchanged.
"""

from __future__ import annotations

import json
import math
import signal
import socket
import time
from pathlib import Path

import pytest

from painterly.cli.plot import PLOT_SIZE
import torch
from PIL import Image

from cli_support import one_torch_thread  # noqa: F401 (an autouse fixture)
from cli_support import (
    child_env,
    fast_args,
    finish,
    log_lines,
    one_line_error,
    run_main,
    run_painterly,
    start_painterly,
    wait_for,
)
from painterly.errors import ResourceError

# --- SIGINT / SIGTERM ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signum, status, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")]
)
def test_signal_stops_cleanly_and_keeps_the_image(signum: int, status: int, name: str, tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    args = [
        "stylize", str(images.content), str(images.style), "-o", "out.png", "--log", "run.jsonl",
        *fast_args(tiny_weights_file, size=64, iterations=100_000), "--save-every", "0", "--plot", "losses.png",
    ]  # fmt: skip
    proc = start_painterly(args, tmp_path)
    wait_for(lambda: log_lines(tmp_path / "run.jsonl") >= 3, proc, what="the first iterations")
    t0 = time.monotonic()
    proc.send_signal(signum)
    rc, err = finish(proc, timeout=30)
    took = time.monotonic() - t0
    assert rc == status, err
    print(f"{name}: stopped and exited {took:.2f} s after the signal")
    assert took < 3.0, f"took {took:.2f} s to stop"
    assert "Traceback" not in err
    partial = tmp_path / "out-interrupted.png"
    assert f"painterly: {name}: stopped at iteration " in err and f"saved the image so far to {partial.name}" in err
    img = Image.open(partial)
    img.load()
    assert img.mode == "RGB" and max(img.size) == 64
    assert not (tmp_path / "out.png").exists()
    # The loss chart is drawn when interrupted too (issue 19).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losses.png", "out-interrupted.png", "run.jsonl"]  # no temp files
    with Image.open(tmp_path / "losses.png") as plot:
        assert plot.format == "PNG" and plot.size == PLOT_SIZE
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    assert all(json.loads(line)["iteration"] == i + 1 for i, line in enumerate(lines))  # complete lines only


def _without_a_reader(proc) -> None:  # noqa: ANN001
    """The terminal or pipe the command writes to goes away (an ssh session closed, ``2>&1 | head``)."""
    proc.stdout.close()
    proc.stderr.close()


def test_output_gone_mid_run_the_run_still_ends_and_writes(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    args = ["stylize", str(images.content), str(images.style), "-o", "out.png", "--log", "run.jsonl", *fast_args(tiny_weights_file, size=48, iterations=30)]
    proc = start_painterly(args, tmp_path, step_delay=0.02)
    _without_a_reader(proc)
    assert proc.wait(timeout=120) == 0
    assert log_lines(tmp_path / "run.jsonl") == 30 and Image.open(tmp_path / "out.png").size[0] == 48


def test_hangup_with_the_terminal_gone_keeps_the_image_and_the_checkpoint(tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    args = [
        "stylize", str(images.content), str(images.style), "-o", "out.png", "--log", "run.jsonl",
        *fast_args(tiny_weights_file, size=48, iterations=100_000), "--checkpoint-every", "2",
    ]  # fmt: skip
    proc = start_painterly(args, tmp_path)
    wait_for(lambda: log_lines(tmp_path / "run.jsonl") >= 3, proc, what="the first iterations")
    _without_a_reader(proc)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 128 + signal.SIGHUP
    assert Image.open(tmp_path / "out-interrupted.png").size[0] == 48
    assert (tmp_path / "out.png.ckpt").is_file() and not (tmp_path / "out.png").exists()


# --- checkpoints and resume ----------------------------------------------------------------------

# name → (options, iterations, --checkpoint-every, signal, when to send it, B's delay per iteration).
# The delays leave a second or more between the moment the test acts and the next event that would
# change the outcome (the end of the run, a level boundary, another checkpoint), even on a busy machine.
RESUME_CASES = {
    "adam": (["--optimizer", "adam", "--no-multiscale"], 24, 7, signal.SIGINT, "log>=8", 0.1),
    # L-BFGS (the default) at 32 px for 30 iterations, then 64 px for 15: interrupted in the first
    # level, resumed across the boundary.
    "lbfgs-multiscale": (["--size", "64", "--min-size", "32"], 45, 7, signal.SIGINT, "log>=8", 0.1),
    # Killed outright (a crash) after the checkpoint written exactly at the boundary (between levels),
    # and after two more iterations were logged: resume must drop those log lines and redo them.
    "lbfgs-boundary-sigkill": (
        ["--size", "64", "--min-size", "32", "--level-iterations", "10,10"], 20, 10, signal.SIGKILL, "ckpt+log>=12", 0.2
    ),
}


def _log_records(path: Path) -> list[dict]:
    """The log without what may differ between two runs of the same computation (timings)."""
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "evaluations")} for line in path.read_text().splitlines()]


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_gives_the_uninterrupted_result(case: str, tmp_path: Path, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    options, iterations, every, signum, when, delay = RESUME_CASES[case]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    common = [
        "stylize", str(images.content), str(images.style),
        *fast_args(tiny_weights_file, size=48, iterations=iterations, seed=3), *options, "-q",
    ]  # fmt: skip
    # A (never interrupted) and B (checkpointed, slowed down so that it can be stopped early) side by side.
    run_a = start_painterly([*common, "-o", "a.png", "--log", "a.jsonl"], run_dir)
    run_b = start_painterly(
        [*common, "-o", "b.png", "--log", "b.jsonl", "--checkpoint-every", str(every)], run_dir, step_delay=delay
    )
    ckpt, log_b = run_dir / "b.png.ckpt", run_dir / "b.jsonl"
    if when == "log>=8":
        wait_for(lambda: log_lines(log_b) >= 8, run_b, what="the checkpoint at iteration 7")
        assert ckpt.exists()
    else:
        wait_for(lambda: ckpt.exists() and log_lines(log_b) >= 12, run_b, what="the checkpoint at the boundary")
    run_b.send_signal(signum)
    rc_b, err_b = finish(run_b)
    assert rc_b == (130 if signum == signal.SIGINT else -signal.SIGKILL), err_b
    assert not (run_dir / "b.png").exists()

    state = torch.load(ckpt, map_location="cpu", weights_only=True)["run"]
    if signum == signal.SIGINT:
        assert f"continue with: painterly resume {ckpt.name}" in err_b
        assert (run_dir / "b-interrupted.png").exists()
        assert state["iteration"] == log_lines(log_b)  # saved where it stopped
    if case == "lbfgs-multiscale":
        assert state["level_index"] == 0 and state["iteration"] < 30  # the resumed run crosses into level 1
    if case == "lbfgs-boundary-sigkill":
        assert (state["iteration"], state["level_index"], state["level_ready"]) == (10, 1, False)
        assert log_lines(log_b) >= 12  # lines past the checkpoint, to be dropped

    # Resumed from another directory (the checkpoint holds absolute paths); once with -o.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if case == "lbfgs-multiscale":
        resume_args, result = ["resume", str(ckpt), "-o", "c.png", "-q"], elsewhere / "c.png"
    else:
        resume_args, result = ["resume", str(ckpt), "-q"], run_dir / "b.png"
    resumed = start_painterly(resume_args, elsewhere)
    rc_r, err_r = finish(resumed)
    rc_a, err_a = finish(run_a)
    assert rc_a == 0, err_a
    assert rc_r == 0 and err_r == "", err_r
    assert result.read_bytes() == (run_dir / "a.png").read_bytes()
    assert not ckpt.exists()  # the run finished: its checkpoint is gone
    # The loss log continued (where it was, not in the resuming directory): every iteration once,
    # with the uninterrupted run's losses.
    assert [r["iteration"] for r in _log_records(log_b)] == list(range(1, iterations + 1))
    assert _log_records(log_b) == _log_records(run_dir / "a.jsonl")
    assert sorted(p.name for p in elsewhere.iterdir()) == (["c.png"] if case == "lbfgs-multiscale" else [])


# --- divergence --------------------------------------------------------------------------------------


def test_divergence_that_cannot_recover_keeps_the_last_good_image(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """A loss weight that overflows float32 makes every step Inf: after the recoveries, a one-line
    error naming the image kept, exit status 1, and no output."""
    monkeypatch.chdir(tmp_path)
    argv = [
        "stylize", str(images.content), str(images.style), "-o", "out.png", "--log", "run.jsonl",
        *fast_args(tiny_weights_file, iterations=20), "--style-weight", "1e300", "-q",
    ]  # fmt: skip
    rc, err = run_main(capsys, argv)
    line = one_line_error(err)
    assert rc == 1
    assert "diverged" in line and "kept the last good image in out-last-good.png" in line
    img = Image.open(tmp_path / "out-last-good.png")
    img.load()
    assert max(img.size) == 48
    assert not (tmp_path / "out.png").exists()
    records = [json.loads(x) for x in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert records and all(r.get("recovered") for r in records)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "lbfgs"])
def test_absurd_learning_rate_recovers_or_fails_cleanly(optimizer: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    argv = [
        "stylize", str(images.content), str(images.style), "-o", "out.png",
        *fast_args(tiny_weights_file, iterations=8), "--optimizer", optimizer, "--learning-rate", "1e30", "-q",
    ]  # fmt: skip
    rc, err = run_main(capsys, argv)
    assert "Traceback" not in err
    if rc == 0:
        assert err == ""
        Image.open(tmp_path / "out.png").load()
    else:
        line = one_line_error(err)
        assert rc == 1 and "diverged" in line
        Image.open(tmp_path / "out-last-good.png").load()


def test_transient_nan_is_recovered(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    """One NaN loss (injected into the 3rd evaluation): the run restores the last good image, halves
    Adam's step, logs `recovered`, and finishes normally."""
    import painterly.engine.objective as engine

    real_tv = engine.total_variation
    calls = []

    def flaky_tv(x):  # noqa: ANN001, ANN202
        calls.append(1)
        value = real_tv(x)
        return value * math.nan if len(calls) == 3 else value

    monkeypatch.setattr(engine, "total_variation", flaky_tv)
    monkeypatch.chdir(tmp_path)
    argv = [
        "stylize", str(images.content), str(images.style), "-o", "out.png", "--log", "run.jsonl",
        *fast_args(tiny_weights_file, iterations=6), "--optimizer", "adam", "-q",
    ]  # fmt: skip
    rc, err = run_main(capsys, argv)
    assert rc == 0 and err == "", err
    records = [json.loads(x) for x in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r.get("recovered", False) for r in records] == [False, False, True, False, False, False]
    assert all(math.isfinite(r["total"]) for i, r in enumerate(records) if i != 2)
    Image.open(tmp_path / "out.png").load()


# --- weights ----------------------------------------------------------------------------------------


def test_truncated_weight_cache_is_rebuilt(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images) -> None:  # noqa: ANN001
    from painterly.weights import CACHE_FILE, load_weights

    cache_dir = tmp_path / "cache"
    load_weights("caffe", cache_dir=cache_dir)  # builds the cache
    cache = cache_dir / CACHE_FILE
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 3])  # a download or a write cut short

    monkeypatch.setenv("PAINTERLY_CACHE_DIR", str(cache_dir))
    monkeypatch.chdir(tmp_path)
    argv = [
        "stylize", str(images.content), str(images.style), "-o", "out.png",
        "--weights", "caffe", "--size", "32", "--iterations", "1", "--precision", "fp32", "--device", "cpu", "-q",
    ]  # fmt: skip
    rc, err = run_main(capsys, argv)
    assert rc == 0, err
    assert "Traceback" not in err
    notes = [line for line in err.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("painterly: note: ")
    assert str(cache) in notes[0] and "corrupt" in notes[0] and "rebuilt" in notes[0]
    Image.open(tmp_path / "out.png").load()
    assert cache.stat().st_size == len(data)
    assert load_weights("caffe", cache_dir=cache_dir).convs[-1] == "conv5_4"  # whole again
    assert sorted(p.name for p in cache_dir.iterdir()) == [CACHE_FILE, CACHE_FILE + ".sha256"]  # no temporary file left


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the socket is: nothing listens there


def test_no_weights_source_says_how_to_get_them(tmp_path: Path, images) -> None:  # noqa: ANN001
    torch_home = tmp_path / "torch-home"
    torch_home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = child_env(
        PAINTERLY_TORCHVISION_URL=f"http://127.0.0.1:{_closed_port()}/vgg19-dcbb9e9d.pth", TORCH_HOME=str(torch_home)
    )
    args = [
        "stylize", str(images.content), str(images.style), "-o", "out.png", "--log", "run.jsonl",
        "--weights", "torchvision", "--size", "32", "--iterations", "1",
    ]  # fmt: skip
    proc = run_painterly(args, work, env=env, timeout=60)
    line = one_line_error(proc.stderr)
    assert proc.returncode == 1
    assert "cannot download torchvision VGG19 weights" in line and "127.0.0.1" in line
    assert "--weights caffe" in line and "--weights PATH" in line
    assert list(work.iterdir()) == []  # no output, no log
    assert [p for p in torch_home.rglob("*") if p.is_file()] == []  # no partial download


# --- out of memory ---------------------------------------------------------------------------------


OOM_ERRORS = {
    "cuda-runtime-error": lambda: RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"),
    "cuda-oom-class": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 512.00 MiB"),
    "cpu-allocator": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 4294967296 bytes."),
    "memory-error": lambda: MemoryError(),
}


@pytest.mark.parametrize("when", ["targets", "objective"])
@pytest.mark.parametrize("kind", list(OOM_ERRORS))
def test_out_of_memory_names_a_size_that_fits(kind: str, when: str, tiny_config, tiny_transfer, images) -> None:  # noqa: ANN001
    config = tiny_config(size=64, iterations=3)
    transfer = tiny_transfer(config)
    real_forward = transfer.encoder.forward
    calls = []
    # The first forward passes compute the targets (content, style); later ones are the objective.
    fail_at = 1 if when == "targets" else 3

    def forward(x):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) >= fail_at:
            raise OOM_ERRORS[kind]()
        return real_forward(x)

    transfer.encoder.forward = forward
    run = transfer.start(images.content_t, [images.style_t])
    with pytest.raises(ResourceError) as caught:
        run.step()
    from painterly.cli import flag

    message = caught.value.render(flag)  # the library names the field; the CLI says --size
    assert "out of memory" in message and "\n" not in message
    size = int(message.split("--size ")[1].split()[0])
    assert 16 <= size < 64
    assert caught.value.exit_code == 1


def test_out_of_memory_from_the_cli(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images, tiny_weights_file: Path) -> None:  # noqa: ANN001
    from painterly.encoder import VGG19Encoder

    def forward(self, x):  # noqa: ANN001, ANN202
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(VGG19Encoder, "forward", forward)
    monkeypatch.chdir(tmp_path)
    argv = [
        "stylize", str(images.content), str(images.style), "-o", "out.png", "--log", "run.jsonl",
        *fast_args(tiny_weights_file, size=48), "-q",
    ]  # fmt: skip
    rc, err = run_main(capsys, argv)
    line = one_line_error(err)
    assert rc == 1
    assert line.startswith("painterly: error: out of memory at 48x36 px") and "try --size 32" in line
    assert not (tmp_path / "out.png").exists()
