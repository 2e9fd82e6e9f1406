"""Helpers shared by the robustness tests of the command line (issue 5).

* :func:`fast_args`: options that make a real CLI run take a fraction of a second: the conftest's
  tiny weights file read only to ``relu1_1`` (one 3→64 convolution), fp32 on the CPU, tiny sizes;
* :func:`run_main`: ``painterly`` in this process (fast; stderr captured by ``capsys``);
* :func:`run_painterly` / :func:`start_painterly`: ``python -m painterly`` in a real subprocess, bounded
  by a timeout, with one torch thread (two CPU cores are shared by the whole suite, and a resumed run
  must use the same thread count as the run it continues to be bit-identical);
* :func:`snapshot`: every file under a folder (hidden ones included), to prove that nothing was written;
* :func:`small_disk` / :func:`remount`: a tmpfs of a test's own, made read-only (or writable again) mid-command.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pytest

LAYERS = {
    "stylize": ["--content-layers", "relu1_1", "--style-layers", "relu1_1"],
    "texture": ["--style-layers", "relu1_1"],
    "reconstruct": ["--layer", "relu1_1"],
    "demo": ["--content-layers", "relu1_1", "--style-layers", "relu1_1"],
}

SUBPROCESS_TIMEOUT = 60  # seconds: a hung subprocess fails its test instead of the whole suite


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():  # noqa: ANN201
    """In-process runs use one torch thread while a module of these tests runs (restored after).

    With two cores shared by the whole suite, oneDNN's spinning threads slow these tiny runs ten-fold
    whenever something else is busy. Modules import this fixture to use it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fast_args(weights: Path, mode: str = "stylize", *, size: int = 48, iterations: int = 3, seed: int = 0) -> list[str]:
    """Options for a quick, deterministic run of ``mode`` (placed after the command name)."""
    return [
        "--weights", str(weights), "--precision", "fp32", "--device", "cpu",
        "--size", str(size), "--iterations", str(iterations), "--seed", str(seed),
        *LAYERS[mode],
    ]  # fmt: skip


def run_main(capsys: pytest.CaptureFixture[str], argv: Sequence[str]) -> tuple[int, str]:
    """Run ``painterly ARGV`` in this process; returns (exit status, stderr).

    argparse's usage errors leave through SystemExit, as they do from the real command.
    """
    from painterly.cli import main

    capsys.readouterr()  # drop anything printed before
    try:
        rc = main(list(argv))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    return rc, capsys.readouterr().err


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", COLUMNS="200")
    env.update(extra)
    return env


def painterly_command(args: Sequence[str], *, step_delay: float | None = None) -> list[str]:
    """``python -m painterly ARGS``; with ``step_delay``, the same command with each optimiser
    iteration slowed down by that many seconds (so that a test can interrupt it at a known point
    without a race; the results are unchanged)."""
    if step_delay is None:
        return [sys.executable, "-m", "painterly", *args]
    code = (
        "import sys, time\n"
        "import painterly.engine as engine\n"
        "_step = engine.Run.step\n"
        "def step(self):\n"
        f"    time.sleep({step_delay!r})\n"
        "    return _step(self)\n"
        "engine.Run.step = step\n"
        "from painterly.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return [sys.executable, "-c", code, *args]


def run_painterly(
    args: Sequence[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = SUBPROCESS_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        painterly_command(args), cwd=cwd, env=env or child_env(), capture_output=True, text=True, timeout=timeout
    )


def start_painterly(
    args: Sequence[str], cwd: Path, *, env: dict[str, str] | None = None, step_delay: float | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        painterly_command(args, step_delay=step_delay),
        cwd=cwd,
        env=env or child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = SUBPROCESS_TIMEOUT) -> tuple[int, str]:
    """Wait for ``proc`` (killing it if it overstays); returns (exit status, stderr)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"painterly did not finish within {timeout} s; stderr:\n{err}")
    return proc.returncode, err


def wait_for(predicate, proc: subprocess.Popen[str] | None = None, timeout: float = 60.0, what: str = "") -> None:  # noqa: ANN001
    """Poll ``predicate()`` every 5 ms until it holds; fail if ``proc`` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"painterly exited ({proc.returncode}) before {what}; stderr:\n{err}")
        if time.monotonic() > deadline:
            if proc is not None:
                proc.kill()
                proc.communicate()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def log_lines(path: Path) -> int:
    """Complete lines in a --log file so far (0 if it does not exist yet)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def snapshot(root: Path, exclude: Iterable[Path] = ()) -> dict[str, str]:
    """Relative path → SHA-256 of every file under ``root`` (folders as "<dir>")."""
    skip = {Path(p).resolve() for p in exclude}
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.resolve() in skip or any(parent.resolve() in skip for parent in path.parents):
            continue
        rel = str(path.relative_to(root))
        out[rel] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def one_line_error(err: str) -> str:
    """The single error line of ``err``; fails if there is a traceback or more than one line."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "error" in lines[0], lines[0]
    return lines[0]


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of its own (made read-only or full by the test while a command writes to it)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); needs root in a machine that allows it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, how: str) -> None:
    """Remount ``mount`` ``ro`` or ``rw``; retried while a file there is open for writing (busy)."""
    deadline = time.monotonic() + 30
    while subprocess.run(["mount", "-o", f"remount,{how}", str(mount)], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, f"cannot remount {mount} {how}"
        time.sleep(0.01)
