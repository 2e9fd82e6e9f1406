"""Reading images: opening files safely, decoding only what is needed, and refusing bombs.

Everything that reads an image goes through :func:`open_image`, so every other module can assume:

* a bad input file raises :class:`~painterly.errors.ImageError` with a one-line message naming the
  file, never a Pillow traceback, and never hangs (a FIFO or a device is refused, not read);
* the image comes back in ``"RGB"`` or a high-bit-depth grayscale mode (see :mod:`.modes`), with
  its EXIF orientation applied.

Size limits are checked from the header, before any pixel data is decoded, so a small file that
declares an enormous canvas (a "decompression bomb") costs nothing to refuse. A caller that needs
the image only up to some size says so (``max_side``): a big photo is then decoded at a reduced
scale and shrunk in 8 bits before it ever becomes floats.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from types import MappingProxyType
from typing import BinaryIO, Mapping, Union

import torch
from PIL import Image

from ..errors import ImageError, PainterlyWarning
from ._common import check_positive_int, pil_label, reason
from .decoding import check_pixel_count, decode, shrink
from .modes import finish
from .tensors import image_to_tensor, resize_longest
from .writing import OUTPUT_FORMATS

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "INPUT_EXTENSIONS",
    "ImageSource",
    "open_image",
    "load_image",
]

DEFAULT_MAX_PIXELS: int = 100_000_000
"""Largest ``width * height`` that :func:`open_image` decodes unless told otherwise.

100 megapixels is ~1.2 GB as a float32 tensor: beyond anything style transfer can use, but above
every real camera, so only a deliberately huge (or hostile) file trips it.
"""

ImageSource = Union[str, "os.PathLike[str]", bytes, BinaryIO, Image.Image]
"""Anything :func:`open_image` accepts."""

INPUT_EXTENSIONS: Mapping[str, str] = MappingProxyType({**OUTPUT_FORMATS, ".gif": "GIF"})
"""Lower-case file extension → Pillow format name, for the files :func:`open_image` is meant to
read (used for file pickers and globbing). ``open_image`` itself goes by the file's content, not its
name: a PNG called ``photo.jpg`` opens fine."""

# A reduced image keeps at least this many times the side the caller needs, so the last step down
# is still the project's one resize rule (antialiased bicubic) and not a box filter's rounding.
SHRINK_MARGIN = 2


def open_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    max_side: int | None = None,
) -> Image.Image:
    """Open and fully decode an image, normalised for :func:`image_to_tensor`.

    ``source`` is a path, the file's bytes, a binary file object (read from its current position)
    or an already-open PIL image. ``name`` is how the file is called in error messages; it defaults
    to the path as given (or ``"image data"`` for bytes and anonymous streams).

    The result is a new, fully loaded image (no open file behind it) with the EXIF orientation
    applied, in one of these modes:

    * ``"RGB"`` for every 8-bit source. Alpha (RGBA, LA, PA, palette or RGB with a transparent
      colour) is composited over white; CMYK goes through its embedded ICC profile when there is
      one; grayscale, bilevel, palette, YCbCr, LAB and HSV are converted.
    * ``"I;16"``/``"I;16B"``/``"I;16L"``/``"I;16N"``, ``"I"`` or ``"F"`` for high-bit-depth
      grayscale, left untouched so :func:`image_to_tensor` keeps every bit. (Pillow has no 16-bit
      RGB mode: it decodes 16-bit-per-channel colour PNG/TIFF to 8-bit ``"RGB"`` itself.)

    Animated GIF/WebP/APNG and multi-page TIFF files give their first frame, with a
    :class:`~painterly.errors.PainterlyWarning`. A PIL image passed in is used at whatever frame it
    is on, and is not modified.

    ``max_side`` says the caller will never use more than that many pixels on the longest side. An
    image whose longest side is above ``SHRINK_MARGIN * max_side`` is then made smaller before it is
    returned, never below that: a JPEG is decoded at 1/2, 1/4 or 1/8 scale (Pillow's draft mode,
    the DCT does the scaling) and any image is reduced by an integer factor (a box filter, in its
    own 8- or 32-bit samples). A 6000x4000 JPEG for a 64 px run is decoded as 750x500, never as
    24 megapixels. ``max_pixels`` still applies to the size the file declares.

    Raises :class:`~painterly.errors.ImageError` (one line, naming the file) for a missing,
    unreadable, empty or non-regular file, a directory, something that is not an image, damaged or
    truncated image data, and an image whose declared ``width * height`` exceeds ``max_pixels``
    (checked from the header, before decoding). Raises :class:`~painterly.errors.ConfigError` if
    ``max_pixels`` or ``max_side`` is not a positive integer.
    """
    check_positive_int(max_pixels, "max_pixels")
    keep = None
    if max_side is not None:
        check_positive_int(max_side, "max_side")
        keep = SHRINK_MARGIN * max_side

    if isinstance(source, Image.Image):
        label = name or pil_label(source)
        check_pixel_count(source.size, max_pixels, label)
        try:
            source.load()
        except Exception as exc:  # Pillow's decoders raise many exception types on bad data
            raise ImageError(f"{label}: truncated or corrupt image data") from exc
        result = shrink(finish(shrink(source, keep), label), keep)
        # Never hand back the caller's own object: later in-place edits must not reach it.
        return result.copy() if result is source else result

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        label = name or os.fsdecode(path)
        with _open_regular_file(path, label) as fh:
            image, animated = decode(fh, label, max_pixels, keep)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "image data"
        data = bytes(source)
        if not data:
            raise ImageError(f"{label}: empty file (0 bytes)")
        image, animated = decode(io.BytesIO(data), label, max_pixels, keep)
    elif isinstance(source, io.TextIOBase):
        raise TypeError("open_image() needs a binary file object (open the file with 'rb')")
    elif hasattr(source, "read"):
        label = name or _stream_label(source)
        image, animated = decode(_readable_stream(source, label), label, max_pixels, keep)
    else:
        raise TypeError(
            "open_image() expects a path, bytes, a binary file object or a PIL image, "
            f"not {type(source).__name__}"
        )

    if animated:
        warnings.warn(f"{label}: {animated}", PainterlyWarning, stacklevel=2)
    # Shrunk before finish() where the mode allows it (its copies are then small), after otherwise.
    return shrink(finish(shrink(image, keep), label), keep)


def load_image(
    source: ImageSource,
    *,
    size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    max_side: int | None = None,
) -> torch.Tensor:
    """Open ``source`` and return it as a ``(1, 3, H, W)`` ``float32`` tensor in ``[0, 1]``.

    With ``size``, the image is resized (antialiased bicubic) so its longest side is ``size``
    pixels, keeping the aspect ratio; this can upscale (:func:`~painterly.imageio.resize_longest`).

    ``max_side`` (the largest size the caller will resize the image to, e.g. the run's ``size``)
    lets a big image be decoded and reduced in 8 bits first, so it never exists as floats at full
    resolution; the tensor returned then has its longest side between ``SHRINK_MARGIN * max_side``
    and ``2 * SHRINK_MARGIN * max_side`` (or the file's own, if smaller). See :func:`open_image`
    for what is accepted and what is raised; a ``size`` or ``max_side`` that is not a positive
    integer raises :class:`~painterly.errors.ConfigError`.
    """
    if size is not None:
        check_positive_int(size, "size")
    image = open_image(source, max_pixels=max_pixels, name=name, max_side=max_side)
    tensor = image_to_tensor(image)
    if size is not None:
        tensor = resize_longest(tensor, size)
    return tensor


# --------------------------------------------------------------------------------------------------
# Helpers


def _stream_label(stream: object) -> str:
    stream_name = getattr(stream, "name", None)
    if isinstance(stream_name, (str, bytes)) and stream_name:
        return os.fsdecode(stream_name)
    return "image data"


def declared_size(path: str | os.PathLike[str], name: str | None = None) -> tuple[int, int]:
    """The ``(height, width)`` an image file declares, after its EXIF orientation: what its aspect is,
    whatever size :func:`open_image` with ``max_side`` decodes it at. Reads the header only."""
    label = name or os.fsdecode(os.fspath(path))
    with _open_regular_file(os.fspath(path), label) as fh:
        try:
            with Image.open(fh) as img:
                width, height = img.size
                turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # orientations that swap the sides
        except Exception as exc:  # what open_image reports in detail; here only the size is wanted
            raise ImageError(f"{label}: cannot read its size") from exc
    return (width, height) if turned else (height, width)


def _open_regular_file(path: str | bytes, label: str) -> BinaryIO:
    """Open ``path`` for reading, turning every way that can fail into a one-line ImageError.

    The file is opened first and checked through its descriptor (``fstat``), never checked by name
    and then opened: a FIFO swapped in between would block the reader forever. ``O_NONBLOCK`` makes
    opening a FIFO return at once, so it can be refused like any other non-regular file.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ImageError(f"{label}: no such file") from exc
    except IsADirectoryError as exc:  # Windows cannot open a folder as a file
        raise ImageError(f"{label}: is a directory, not an image file") from exc
    except PermissionError as exc:
        if os.path.isdir(path):  # Windows again: a folder reports "permission denied"
            raise ImageError(f"{label}: is a directory, not an image file") from exc
        raise ImageError(f"{label}: permission denied") from exc
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a Unix socket, or a device with nothing behind it
            raise ImageError(f"{label}: not a regular file") from exc
        raise ImageError(f"{label}: cannot read ({reason(exc)})") from exc
    except ValueError as exc:  # a NUL byte in the path
        raise ImageError(f"{label}: cannot read (invalid path)") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(f"{label}: is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):
            # A FIFO would block and /dev/zero would never end: refuse before reading.
            raise ImageError(f"{label}: not a regular file")
        if info.st_size == 0:
            raise ImageError(f"{label}: empty file (0 bytes)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # no effect on a regular file; restores the ordinary flags
        return os.fdopen(fd, "rb")
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise ImageError(f"{label}: cannot read ({reason(exc)})") from exc
        raise


def _readable_stream(stream: BinaryIO, label: str) -> BinaryIO:
    """A seekable stream positioned at the image's first byte, or an ImageError if it is empty."""
    try:
        seekable = stream.seekable() if hasattr(stream, "seekable") else False
        if not seekable:
            # Pillow seeks back and forth while identifying a file; buffer the whole thing.
            data = stream.read()
            if not data:
                raise ImageError(f"{label}: empty file (0 bytes)")
            return io.BytesIO(data)
        start = stream.tell()
        first = stream.read(1)
        stream.seek(start)
    except OSError as exc:
        raise ImageError(f"{label}: cannot read ({reason(exc)})") from exc
    if not first:
        raise ImageError(f"{label}: empty file (0 bytes)")
    if start:
        # Image.open reads from offset 0; honour where the caller left the stream instead.
        try:
            stream.seek(start)
            return io.BytesIO(stream.read())
        except OSError as exc:
            raise ImageError(f"{label}: cannot read ({reason(exc)})") from exc
    return stream


