"""painterly.files: what a writer killed outright (SIGKILL, the OOM killer) leaves behind.

Real processes are killed mid-write (each waits, inside ``atomic_write``, for the test to kill it:
no race), then a later write of the same target must leave no stale temporary file of a dead writer,
and must keep a live writer's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from painterly.files import is_temp_name, write_bytes

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process probes are POSIX")

WRITER = """
import sys, time
from pathlib import Path
from painterly.files import atomic_write
with atomic_write(sys.argv[1]) as fh:
    fh.write(b"half of a file")
    fh.flush()
    Path(sys.argv[2]).touch()  # inside the write: the temporary file exists, the target is not replaced yet
    time.sleep(60)
"""


def start_writer(target: Path, ready: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(ready)])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, "the writer exited before writing"
        assert time.monotonic() < deadline, "the writer never started writing"
        time.sleep(0.005)
    return proc


def killed(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def temps(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if is_temp_name(n))


def test_the_next_write_removes_what_killed_writers_left_and_keeps_a_live_writers(tmp_path: Path) -> None:
    target, other = tmp_path / "out.png.ckpt", tmp_path / "other.png"
    write_bytes(target, b"the first checkpoint")
    dead = [start_writer(target, tmp_path / f"ready{i}") for i in range(2)]
    dead_other = start_writer(other, tmp_path / "ready-other")
    for proc in (*dead, dead_other):
        killed(proc)
    assert len(temps(tmp_path)) == 3  # what SIGKILL leaves: the writer could not clean up
    assert target.read_bytes() == b"the first checkpoint"  # and the target was never touched
    dead_temps = set(temps(tmp_path))
    live = start_writer(target, tmp_path / "ready-live")
    try:
        live_temps = set(temps(tmp_path)) - dead_temps
        assert len(live_temps) == 1
        write_bytes(target, b"the second checkpoint")
        assert target.read_bytes() == b"the second checkpoint"
        left = set(temps(tmp_path))
        # The live writer's file stays (it is about to become the target), and so does the dead
        # writer's file of another target (its own next write removes it); the two dead ones go.
        assert left == live_temps | {n for n in dead_temps if n.startswith(".other.png.")}, sorted(left)
    finally:
        killed(live)
    # Now every writer of out.png.ckpt is dead: the next write clears the rest.
    write_bytes(target, b"the third checkpoint")
    assert [n for n in temps(tmp_path) if n.startswith(".out.png.ckpt.")] == []
    write_bytes(other, b"x")
    assert temps(tmp_path) == []


def test_names_that_do_not_say_their_writer_are_left_alone(tmp_path: Path) -> None:
    from painterly.files import remove_stale_temps

    target = tmp_path / "out.png"
    foreign = [".out.png.1a2b3c4d.tmp", ".out.png.ffffp1-00000000.tmp", ".out.png.abcdp99999999999999999999-0a0b0c0d.tmp", ".out.png"]
    for name in foreign:
        (tmp_path / name).write_bytes(b"not ours to judge")
    # (ffff may be this host's tag by chance only once in 65536; pid 1 is alive anyway.)
    assert remove_stale_temps(target) == 0
    write_bytes(target, b"data")
    assert sorted(os.listdir(tmp_path)) == sorted([*foreign, "out.png"])
