"""Decoding an image file with Pillow: only the formats a style-transfer tool needs, the pixel limit
checked from the header before any pixel is decoded, and a big image decoded or shrunk at a reduced
scale (JPEG draft mode, then an integer box filter in 8 bits) before it ever becomes floats.
Used by :mod:`.reading`, which opens the files safely and turns the result into RGB.
"""

from __future__ import annotations

import math
import warnings
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from ..errors import ImageError, TooManyPixels
from .sniffing import why_unidentified

# Pillow can parse dozens of formats; a style-transfer tool needs a handful. Limiting the decoders
# keeps rarely-exercised parsers away from files uploaded to the web studio, and makes a PDF or EPS
# report "not an image file" instead of a confusing Ghostscript failure.
_DECODERS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "PPM", "AVIF")

def check_pixel_count(size: tuple[int, int], max_pixels: int, label: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{label}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise TooManyPixels(
            f"{label}: {width}x{height} pixels exceeds the limit of {max_pixels} "
            "(raise `max_pixels`)"
        )


def _draft(img: Image.Image, keep: int) -> None:
    """Ask Pillow's JPEG decoder for the smallest 1/1, 1/2, 1/4 or 1/8 scale whose longest side is
    still at least ``keep`` (it picks the scale from the requested box, rounding in our favour)."""
    width, height = img.size
    longest = max(width, height)
    if longest <= keep:
        return
    box = (math.ceil(width * keep / longest), math.ceil(height * keep / longest))
    img.draft(img.mode, box)


# Modes whose samples a box filter may average as they are (alpha must be composited first).
_SHRINKABLE_MODES = frozenset({"RGB", "L", "I", "F"})


def shrink(img: Image.Image, keep: int | None) -> Image.Image:
    """Shrink ``img`` by the largest integer factor that keeps its longest side at least ``keep``.

    A box filter in the image's own samples (8-bit RGB, or 32-bit for high-bit-depth grayscale),
    before any float conversion: the expensive full-resolution float tensor never exists.
    """
    if keep is None or not (img.mode in _SHRINKABLE_MODES or img.mode.startswith("I;16")):
        return img  # palette, alpha, CMYK ...: finish() turns them into one of these first
    width, height = img.size
    factor = max(width, height) // keep
    if factor < 2:
        return img
    if img.mode.startswith("I;16"):
        img = img.convert("I")  # Pillow filters 16-bit samples only by nearest neighbour
    # resize(BOX) rather than reduce(): reduce() gives a partial last box its own whole pixel, which
    # stretches the image by up to a pixel; resize maps the whole extent onto the whole extent, as
    # the tensor resize does. round(side / factor) >= side // factor, so the longest side stays
    # >= keep.
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return img.resize(size, Image.Resampling.BOX)


def _decoders() -> list[str]:
    Image.init()
    return [fmt for fmt in _DECODERS if fmt in Image.OPEN]


def decode(
    fp: BinaryIO, label: str, max_pixels: int, keep: int | None = None
) -> tuple[Image.Image, str]:
    """Identify, size-check and fully decode the first frame of ``fp``; a JPEG whose longest side is
    above ``keep`` is decoded at the smallest DCT scale that keeps at least ``keep``.

    Returns the image and, for a multi-frame file, the note to warn with (else ``""``).
    """
    try:
        # Our own limit replaces Pillow's: its warning (above ~89 MP) would be noise next to ours.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=_decoders())
    except Image.DecompressionBombError as exc:
        # Pillow refuses outright above ~179 MP, before telling us the dimensions. Identify the
        # file again without that check, so the message has the real size and a `max_pixels` above
        # Pillow's ceiling still works.
        img = _open_past_pillow_limit(fp)
        if img is None:
            raise TooManyPixels(
                f"{label}: image exceeds the limit of {max_pixels} pixels (raise `max_pixels`)"
            ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label}: {why_unidentified(fp)}") from exc
    except Exception as exc:  # a plugin choking on a malformed header: ValueError, OSError, ...
        raise ImageError(f"{label}: truncated or corrupt image data") from exc

    check_pixel_count(img.size, max_pixels, label)

    note = ""
    try:
        # MPO is how cameras store a JPEG with an embedded preview: its "frames" are not animation.
        if getattr(img, "is_animated", False) and img.format != "MPO":
            note = (
                "multi-page TIFF; using the first page"
                if img.format == "TIFF"
                else "animated image; using the first frame"
            )
        if img.tell() != 0:
            img.seek(0)
        if keep is not None and img.format in ("JPEG", "MPO"):
            _draft(img, keep)
        # catch_warnings is process-wide before Python 3.14; at worst a concurrent thread also
        # misses Pillow's bomb warning, which our own limit makes redundant anyway.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # load() forces every byte to be decoded now, while fp is open, so truncation is an
            # error here rather than a gray band later. (If some other code has set
            # ImageFile.LOAD_TRUNCATED_IMAGES, Pillow pads instead; we do not change that global.)
            img.load()
    except Image.DecompressionBombError as exc:
        width, height = img.size
        raise ImageError(
            f"{label}: {width}x{height} pixels is more than Pillow will decode in one piece"
        ) from exc
    except MemoryError as exc:
        width, height = img.size
        raise ImageError(f"{label}: not enough memory to decode {width}x{height} pixels") from exc
    except Exception as exc:
        raise ImageError(f"{label}: truncated or corrupt image data") from exc
    return img, note


def _open_past_pillow_limit(fp: BinaryIO) -> Image.Image | None:
    """Identify ``fp`` as ``Image.open`` does but without its pixel ceiling; None if we cannot.

    Pillow's ceiling is a module global; changing it would race with other threads (the web studio),
    so instead we call the format plugins' openers directly, which only parse the header.
    """
    try:
        fp.seek(0)
        prefix = fp.read(16)
    except Exception:
        return None
    for fmt in _decoders():
        factory, accept = Image.OPEN[fmt]
        # accept() returns True, False, or a string explaining why a matching file is unsupported.
        verdict = accept(prefix) if accept else True
        if verdict is not True and (isinstance(verdict, str) or not verdict):
            continue
        try:
            fp.seek(0)
            return factory(fp, "")
        except Exception:
            continue
    return None
