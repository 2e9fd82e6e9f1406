"""painterly.imageio.writing: outputs go through painterly.files, private to the user."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from painterly.imageio import save_image

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@posix_only
def test_new_outputs_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask would give 0644 to a file created 0666
    try:
        written = save_image(torch.rand(1, 3, 4, 4), tmp_path / "new" / "out.png")
    finally:
        os.umask(old)
    assert written.stat().st_mode & 0o777 == 0o600
    assert written.parent.stat().st_mode & 0o777 == 0o700  # a folder created for it, too
    assert sorted(p.name for p in written.parent.iterdir()) == ["out.png"]


@posix_only
def test_a_replaced_output_keeps_its_bits(tmp_path: Path) -> None:
    target = tmp_path / "shared.jpg"
    target.write_bytes(b"old")
    target.chmod(0o664)
    save_image(torch.rand(1, 3, 4, 4), target)
    assert target.stat().st_mode & 0o777 == 0o664
    assert target.read_bytes()[:3] == b"\xff\xd8\xff"  # the new image replaced the old bytes
