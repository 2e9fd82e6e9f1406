"""Small helpers shared by the imageio modules: argument checks and how files are named in errors."""

from __future__ import annotations

import os

from PIL import Image

from ..errors import ConfigError, shown


def check_positive_int(value: object, what: str) -> None:
    """Raise :class:`~painterly.errors.ConfigError` unless ``value`` is an ``int`` >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {shown(value)}")


def reason(exc: OSError) -> str:
    """An OSError's explanation in lower case, for the end of a one-line message."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def pil_label(img: Image.Image) -> str:
    """How an already-open PIL image is named in messages: its file name, else ``"image"``."""
    filename = getattr(img, "filename", None)
    return os.fsdecode(filename) if filename else "image"
