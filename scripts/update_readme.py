"""Regenerate the options table in README.md from the CLI (which is built from Config).

    python scripts/update_readme.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from options_table import options_table  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- options-table:begin -->", "<!-- options-table:end -->"


def render(text: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _: f"{BEGIN}\n{options_table()}\n{END}", text)


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
