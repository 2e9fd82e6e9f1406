"""Knowing an image file by its content, never its name, and saying what a non-image looks like."""

from __future__ import annotations

import codecs
from typing import BinaryIO

__all__ = ["sniff_format", "why_unidentified"]

# Leading bytes of the formats we decode: a file that starts like one of these but that Pillow
# cannot parse is a damaged image, not "not an image".
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def sniff_format(head: bytes) -> str | None:
    """The image format (PIL's name) that ``head``, a file's first bytes, starts like; ``None`` if none
    of the formats painterly decodes. Judges by content, never by file name."""
    for magic, fmt in _IMAGE_MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def why_unidentified(fp: BinaryIO) -> str:
    """Say what a file Pillow could not identify looks like, for the error message."""
    try:
        fp.seek(0)
        head = fp.read(1024)
    except Exception:
        return "not an image file"
    fmt = sniff_format(head)
    if fmt is not None:
        return f"truncated or corrupt image data ({'WebP' if fmt == 'WEBP' else fmt})"
    if head[4:8] == b"ftyp":
        return "not a supported image format (HEIC/AVIF-style container; convert it to PNG or JPEG)"
    if head.startswith(b"%PDF"):
        return "not an image file (looks like a PDF document)"
    if head.startswith(b"PK\x03\x04"):
        return "not an image file (looks like a ZIP archive)"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "not an image file (looks like an HTML page)"
    if b"<svg" in lowered[:1024]:
        return "not a supported image format (SVG; convert it to PNG)"
    if _looks_like_text(head):
        return "not an image file (looks like text)"
    return "not an image file (unrecognised data)"


def _looks_like_text(head: bytes) -> bool:
    try:
        # An incremental decoder tolerates a multi-byte character cut off at the end of `head`.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\n\r\f\v" for ch in text)
