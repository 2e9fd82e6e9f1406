"""The built-in demo pair, shipped inside the package so that ``painterly demo`` works offline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def asset(name: str) -> Path:
    """Path of a file in ``painterly/assets`` (the package is installed as files, not zipped)."""
    return Path(str(resources.files("painterly") / "assets" / name))


def demo_images() -> tuple[Path, list[Path]]:
    """(content, [style]) paths of the built-in pair: a photo of a cat and a generated swirly painting."""
    return asset("demo_content.jpg"), [asset("demo_style.jpg")]
