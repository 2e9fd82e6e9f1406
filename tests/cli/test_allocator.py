"""The ``painterly`` command re-executes itself once under tcmalloc (cli/allocator.py) — and only
when it runs as a command: ``main()`` called from Python never replaces the caller's process.

The end-to-end tests run the real console script and ``python -m painterly`` and read, through
``painterly info``, which allocator the process actually has mapped. They need Debian's
``libtcmalloc-minimal4`` (scripts/test.sh installs it; set ``PAINTERLY_REQUIRE_ALLOCATOR`` to make its
absence a failure rather than a skip).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cli_support import child_env, fast_args
from painterly.cli import allocator

TCMALLOC = allocator.find_library("tcmalloc")
needs_tcmalloc = pytest.mark.skipif(
    TCMALLOC is None and not os.environ.get("PAINTERLY_REQUIRE_ALLOCATOR"),
    reason="libtcmalloc_minimal is not installed (apt-get install libtcmalloc-minimal4)",
)
CONSOLE_SCRIPT = Path(sys.executable).with_name("painterly")


def info(command: list[str], **env: str) -> dict[str, str]:
    environ = child_env(**env)
    environ.pop("LD_PRELOAD", None)
    done = subprocess.run([*command, "info"], env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return dict(line.split(": ", 1) for line in done.stdout.splitlines())


@needs_tcmalloc
@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_command_runs_under_tcmalloc(how: str) -> None:
    if how == "console script" and not CONSOLE_SCRIPT.exists():
        pytest.skip("painterly is not installed as a console script next to this interpreter")
    command = [str(CONSOLE_SCRIPT)] if how == "console script" else [sys.executable, "-m", "painterly"]
    report = info(command, PAINTERLY_ALLOCATOR="auto")
    assert report["allocator"].startswith("tcmalloc (")
    assert "libtcmalloc" in report["allocator"]


@needs_tcmalloc
def test_python_flags_survive_the_reexec() -> None:
    # -X utf8 must still be in force after the exec (the interpreter's own options are kept).
    environ = child_env(PAINTERLY_ALLOCATOR="tcmalloc")
    code = "import sys; print(sys.flags.utf8_mode)"
    done = subprocess.run([sys.executable, "-X", "utf8", "-c", code], env=environ, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "1"
    report = info([sys.executable, "-X", "utf8", "-m", "painterly"], PAINTERLY_ALLOCATOR="tcmalloc")
    assert report["allocator"].startswith("tcmalloc")


def test_system_allocator_on_request() -> None:
    report = info([sys.executable, "-m", "painterly"], PAINTERLY_ALLOCATOR="system")
    assert report["allocator"].startswith("system malloc; PAINTERLY_ALLOCATOR=system")


def test_info_says_when_the_setting_names_no_allocator() -> None:
    report = info([sys.executable, "-m", "painterly"], PAINTERLY_ALLOCATOR="bogus")
    assert report["allocator"].startswith("system malloc; PAINTERLY_ALLOCATOR=bogus names no installed allocator")


def test_info_reports_the_basics() -> None:
    report = info([sys.executable, "-m", "painterly"], PAINTERLY_ALLOCATOR="system")
    for key in ("painterly", "python", "torch", "cpu", "cuda", "device (auto)", "precision (auto)", "weights cache"):
        assert report[key], key
    assert report["precision (auto)"] in ("bf16", "fp32")
    assert report["device (auto)"] in ("cpu", "cuda", "mps")


@needs_tcmalloc
def test_a_real_run_under_tcmalloc(tmp_path: Path, tiny_weights_file: Path, images) -> None:  # noqa: ANN001
    out = tmp_path / "out.png"
    environ = child_env(PAINTERLY_ALLOCATOR="tcmalloc")
    environ.pop("LD_PRELOAD", None)
    done = subprocess.run(
        [sys.executable, "-m", "painterly", "stylize", str(images.content), str(images.style), "-o", str(out),
         *fast_args(tiny_weights_file), "--quiet"],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (48, 36)  # --size 48: the longer side


# --- the decision, in this process (execve replaced by a recorder) ---------------------------------


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    monkeypatch.setattr(allocator.os, "execve", lambda path, args, env: calls.append((path, list(args), dict(env))))
    monkeypatch.setattr(allocator, "find_library", lambda choice="auto": None if choice == "system" else str(lib))
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv(allocator._MARK, raising=False)
    monkeypatch.delenv(allocator.ENV, raising=False)
    return calls


def test_main_called_from_python_never_reexecs(execs, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(sys, "argv", ["/venv/bin/painterly", "info"])
    allocator.maybe_reexec(["info"])  # argv given: a Python caller
    assert execs == []


def test_console_script_reexecs_once_with_the_library_preloaded(execs, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(sys, "argv", ["/venv/bin/painterly", "demo", "-o", "x.png"])
    monkeypatch.setattr(sys, "orig_argv", ["/venv/bin/python", "/venv/bin/painterly", "demo", "-o", "x.png"])
    allocator.maybe_reexec(None)
    assert len(execs) == 1
    path, args, env = execs[0]
    assert path == sys.executable
    assert args == [sys.executable, "/venv/bin/painterly", "demo", "-o", "x.png"]
    assert env["LD_PRELOAD"].endswith("libtcmalloc_minimal.so.4")
    assert env[allocator._MARK] == env["LD_PRELOAD"]


def test_the_reexecuted_process_does_not_reexec_and_hides_its_preload(execs, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(sys, "argv", ["/venv/bin/painterly", "info"])
    monkeypatch.setenv(allocator._MARK, "/lib/libtcmalloc_minimal.so.4")
    monkeypatch.setenv("LD_PRELOAD", "/lib/libtcmalloc_minimal.so.4:/lib/user.so")
    allocator.maybe_reexec(None)
    assert execs == []
    # Child processes get back what the user had preloaded, not our allocator.
    assert os.environ["LD_PRELOAD"] == "/lib/user.so"


@pytest.mark.parametrize(
    "setting",
    [{"PAINTERLY_ALLOCATOR": "system"}, {"LD_PRELOAD": "/opt/lib/libjemalloc.so.2"}],
    ids=["opted out", "user preloads an allocator"],
)
def test_no_reexec_when_the_user_decided(execs, monkeypatch: pytest.MonkeyPatch, setting: dict[str, str]) -> None:  # noqa: ANN001
    monkeypatch.setattr(sys, "argv", ["/venv/bin/painterly", "info"])
    for key, value in setting.items():
        monkeypatch.setenv(key, value)
    allocator.maybe_reexec(None)
    assert execs == []


def test_a_failing_exec_runs_on(execs, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    def refuse(*_):  # noqa: ANN002, ANN202
        raise PermissionError("exec refused")

    monkeypatch.setattr(allocator.os, "execve", refuse)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/painterly", "info"])
    allocator.maybe_reexec(None)  # returns: the run goes on under the system allocator


def test_active_allocator_of_this_process() -> None:
    kind, path = allocator.active_allocator()
    preload = os.environ.get("LD_PRELOAD", "")
    if "tcmalloc" in preload:
        assert kind == "tcmalloc" and path
    elif "jemalloc" in preload:
        assert kind == "jemalloc" and path
    else:
        assert (kind, path) == ("system", None)
