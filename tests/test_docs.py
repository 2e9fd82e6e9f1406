"""The README's options table is generated from the CLI; it must not drift from the code."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from update_readme import README, render  # noqa: E402


def test_readme_options_table_is_current() -> None:
    text = README.read_text()
    assert render(text) == text, "README options table is stale: run python scripts/update_readme.py"


def test_readme_has_the_two_commands() -> None:
    text = README.read_text()
    assert "painterly demo" in text
    assert "bash scripts/test.sh" in text
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
