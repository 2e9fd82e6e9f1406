"""Reading and writing images, and moving them between Pillow and PyTorch.

Everything that touches an image file goes through here, so every other module can assume:

* an input image is a ``(1, 3, H, W)`` ``float32`` tensor with values in ``[0, 1]`` (sRGB, not
  linearised), whatever the file's mode, bit depth, orientation or transparency was;
* a bad input file raises :class:`~painterly.errors.ImageError` with a one-line message naming the
  file, never a Pillow traceback;
* an output file is either the complete new image or whatever was there before, never half of one.

Size limits are checked from the header, before any pixel data is decoded, so a small file that
declares an enormous canvas (a "decompression bomb") costs nothing to refuse.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import secrets
import stat
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Mapping, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from .errors import ConfigError, ImageError, PainterlyWarning

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "INPUT_EXTENSIONS",
    "OUTPUT_FORMATS",
    "ImageSource",
    "open_image",
    "image_to_tensor",
    "load_image",
    "resize_longest",
    "resize_to",
    "tensor_to_pil",
    "output_format",
    "save_image",
    "same_file",
]

DEFAULT_MAX_PIXELS: int = 100_000_000
"""Largest ``width * height`` that :func:`open_image` decodes unless told otherwise.

100 megapixels is ~1.2 GB as a float32 tensor: beyond anything style transfer can use, but above
every real camera, so only a deliberately huge (or hostile) file trips it.
"""

ImageSource = Union[str, "os.PathLike[str]", bytes, BinaryIO, Image.Image]
"""Anything :func:`open_image` accepts."""

OUTPUT_FORMATS: Mapping[str, str] = MappingProxyType(
    {
        ".png": "PNG",
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".webp": "WEBP",
        ".bmp": "BMP",
        ".tif": "TIFF",
        ".tiff": "TIFF",
    }
)
"""Lower-case file extension → Pillow format name, for the files :func:`save_image` writes."""

INPUT_EXTENSIONS: Mapping[str, str] = MappingProxyType({**OUTPUT_FORMATS, ".gif": "GIF"})
"""Lower-case file extension → Pillow format name, for the files :func:`open_image` is meant to
read (used for file pickers and globbing). ``open_image`` itself goes by the file's content, not its
name: a PNG called ``photo.jpg`` opens fine."""

# Pillow can parse dozens of formats; a style-transfer tool needs a handful. Limiting the decoders
# keeps rarely-exercised parsers away from files uploaded to the web studio, and makes a PDF or EPS
# report "not an image file" instead of a confusing Ghostscript failure.
_DECODERS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "PPM", "AVIF")

# Modes whose samples have more than 8 bits. They are returned as they are so that
# image_to_tensor can scale them by their real range instead of Pillow truncating to 8 bits.
_HIGH_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})

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


# --------------------------------------------------------------------------------------------------
# Reading


def open_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
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

    Raises :class:`~painterly.errors.ImageError` (one line, naming the file) for a missing,
    unreadable, empty or non-regular file, a directory, something that is not an image, damaged or
    truncated image data, and an image whose declared ``width * height`` exceeds ``max_pixels``
    (checked from the header, before decoding). Raises :class:`~painterly.errors.ConfigError` if
    ``max_pixels`` is not a positive integer.
    """
    _check_positive_int(max_pixels, "max_pixels")

    if isinstance(source, Image.Image):
        label = name or _pil_label(source)
        _check_pixel_count(source.size, max_pixels, label)
        try:
            source.load()
        except Exception as exc:  # Pillow's decoders raise many exception types on bad data
            raise ImageError(f"{label}: truncated or corrupt image data") from exc
        result = _finish(source, label)
        # Never hand back the caller's own object: later in-place edits must not reach it.
        return result.copy() if result is source else result

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        label = name or os.fsdecode(path)
        with _open_regular_file(path, label) as fh:
            image, animated = _decode(fh, label, max_pixels)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "image data"
        data = bytes(source)
        if not data:
            raise ImageError(f"{label}: empty file (0 bytes)")
        image, animated = _decode(io.BytesIO(data), label, max_pixels)
    elif isinstance(source, io.TextIOBase):
        raise TypeError("open_image() needs a binary file object (open the file with 'rb')")
    elif hasattr(source, "read"):
        label = name or _stream_label(source)
        image, animated = _decode(_readable_stream(source, label), label, max_pixels)
    else:
        raise TypeError(
            "open_image() expects a path, bytes, a binary file object or a PIL image, "
            f"not {type(source).__name__}"
        )

    if animated:
        warnings.warn(f"{label}: {animated}", PainterlyWarning, stacklevel=2)
    return _finish(image, label)


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert a PIL image to a ``(1, 3, H, W)`` ``float32`` tensor with values in ``[0, 1]``.

    8-bit data is divided by 255 and 16-bit data (``I;16*`` modes) by 65535, so no precision is
    lost. Grayscale is replicated to three channels. Any other mode is first normalised the way
    :func:`open_image` does it (alpha over white, CMYK/palette/... to RGB).

    Modes without a fixed range are scaled by what they contain: ``"I"`` (32-bit integers) by 65535
    when every value fits in 16 bits (how Pillow stores most 16-bit files) and by ``2**31 - 1``
    otherwise; ``"F"`` (floats) is taken as ``[0, 1]``, ``[0, 255]`` or ``[0, 65535]``, whichever is
    the smallest to contain its maximum, else scaled by its maximum. Negative values become 0 and
    NaN becomes 0.
    """
    img = _to_canonical_mode(img, _pil_label(img))
    mode = img.mode
    if mode == "RGB":
        # (H, W, 3) uint8 -> float32 in [0, 1]; astype copies, so the tensor owns writable memory.
        rgb = np.asarray(img, dtype=np.uint8).astype(np.float32)
        rgb /= 255.0
        chw = torch.from_numpy(rgb).permute(2, 0, 1)
    else:
        gray = torch.from_numpy(_unit_range_gray(np.asarray(img), mode))
        chw = gray.unsqueeze(0).expand(3, -1, -1)
    return chw.unsqueeze(0).contiguous()


def load_image(
    source: ImageSource,
    *,
    size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> torch.Tensor:
    """Open ``source`` and return it as a ``(1, 3, H, W)`` ``float32`` tensor in ``[0, 1]``.

    With ``size``, the image is resized (antialiased bicubic) so its longest side is ``size``
    pixels, keeping the aspect ratio; this can upscale. See :func:`open_image` for what is accepted
    and what is raised; a ``size`` that is not a positive integer raises
    :class:`~painterly.errors.ConfigError`.
    """
    if size is not None:
        _check_positive_int(size, "size")
    tensor = image_to_tensor(open_image(source, max_pixels=max_pixels, name=name))
    if size is not None:
        tensor = resize_longest(tensor, size)
    return tensor


# --------------------------------------------------------------------------------------------------
# Resizing and converting back


def resize_longest(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` (or ``(C, H, W)``) floats so the longest side is ``size`` pixels.

    The shorter side keeps the aspect ratio, rounded to the nearest pixel and at least 1. Values are
    clamped to ``[0, 1]`` (bicubic overshoots at edges). Dtype and device are kept.
    """
    _check_positive_int(size, "size")
    height, width = int(image.shape[-2]), int(image.shape[-1])
    longest = max(height, width)
    if longest == 0:
        raise ValueError("resize_longest() got an image with no pixels")
    # floor(x + 0.5) rather than round(): Python's round() goes to even on exact halves, which
    # would make 3:2 and 2:3 images of odd sizes come out a pixel apart.
    new_height = max(1, math.floor(height * size / longest + 0.5))
    new_width = max(1, math.floor(width * size / longest + 0.5))
    return resize_to(image, new_height, new_width)


def resize_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` (or ``(C, H, W)``) floats to exactly ``height`` x ``width``.

    Bicubic interpolation, antialiased when either side shrinks so that downscaled images do not
    alias; values clamped to ``[0, 1]``. Dtype and device are kept (half precision is computed in
    float32). Returns a new tensor even when the size is unchanged.
    """
    _check_positive_int(height, "height")
    _check_positive_int(width, "width")
    if not torch.is_floating_point(image):
        raise TypeError(f"resize_to() needs a floating-point tensor, got {image.dtype}")
    if image.dim() == 3:
        return resize_to(image.unsqueeze(0), height, width).squeeze(0)
    if image.dim() != 4:
        raise ValueError(
            f"resize_to() needs an (N, C, H, W) tensor, got shape {tuple(image.shape)}"
        )

    old_height, old_width = int(image.shape[-2]), int(image.shape[-1])
    if (old_height, old_width) == (height, width):
        return image.clamp(0.0, 1.0)
    # Bicubic (and its antialiased variant) is not implemented for half types on every device.
    work = image if image.dtype in (torch.float32, torch.float64) else image.float()
    resized = F.interpolate(
        work,
        size=(height, width),
        mode="bicubic",
        align_corners=False,
        antialias=height < old_height or width < old_width,
    )
    return resized.clamp_(0.0, 1.0).to(image.dtype)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """Convert a ``(1, 3, H, W)`` or ``(3, H, W)`` tensor in ``[0, 1]`` to an 8-bit RGB image.

    Any dtype or device. Values are clamped to ``[0, 1]`` and rounded to the nearest of the 256
    levels (not truncated, which would darken the image by half a level on average); NaN becomes 0,
    +inf 1 and -inf 0. A single channel (``(1, 1, H, W)`` or ``(1, H, W)``) is taken as gray.
    """
    t = image.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"tensor_to_pil() converts one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(
            "tensor_to_pil() needs a (1, 3, H, W) or (3, H, W) tensor, "
            f"got shape {tuple(image.shape)}"
        )
    t = t.to(device="cpu", dtype=torch.float32)
    # nan_to_num allocates, so the in-place ops below never touch the caller's tensor.
    t = torch.nan_to_num(t, nan=0.0, posinf=1.0, neginf=0.0)
    t = t.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return Image.fromarray(t.permute(1, 2, 0).contiguous().numpy())


# --------------------------------------------------------------------------------------------------
# Writing


def output_format(path: str | os.PathLike[str]) -> str:
    """The Pillow format name for writing ``path``, from its extension (case-insensitive).

    Raises :class:`~painterly.errors.ConfigError` naming the supported extensions when the extension
    is missing or unsupported, or when this Pillow build cannot write that format.
    """
    label = os.fsdecode(os.fspath(path))
    ext = os.path.splitext(label)[1].lower()
    supported = ", ".join(OUTPUT_FORMATS)
    if not ext:
        raise ConfigError(
            f"{label}: no file extension to choose an output format; use one of {supported}"
        )
    fmt = OUTPUT_FORMATS.get(ext)
    if fmt is None:
        raise ConfigError(f"{label}: unsupported output format '{ext}'; use one of {supported}")
    Image.init()
    if fmt not in Image.SAVE:
        raise ConfigError(
            f"{label}: this installation of Pillow cannot write {fmt} files; use .png"
        )
    return fmt


def save_image(
    image: torch.Tensor | Image.Image,
    path: str | os.PathLike[str],
    *,
    quality: int = 95,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``image`` to ``path`` atomically and return the path written.

    ``image`` is a tensor as accepted by :func:`tensor_to_pil` or a PIL image (any mode; it is
    normalised like :func:`open_image` does and written as 8-bit RGB, alpha composited over white).
    The format comes from the extension (:func:`output_format`). ``quality`` (1-100) applies to JPEG
    and WebP. ``metadata`` is stored as PNG text chunks (keys of 1-79 Latin-1 characters; values are
    converted with ``str``); other formats ignore it.

    The data goes to a hidden temporary file (``.<name>.<random>.tmp``) in the target's directory,
    is fsynced, then renamed over the target, so a crash or error leaves either the old file or the
    complete new one; the temporary file is removed on any failure. Missing parent directories are
    created. An existing target keeps its permission bits.

    Raises :class:`~painterly.errors.ConfigError` for an unsupported extension, a bad ``quality`` or
    bad metadata keys, and :class:`~painterly.errors.ImageError` when the location is not writable.
    """
    label = os.fsdecode(os.fspath(path))
    target = Path(label)
    fmt = output_format(target)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ConfigError(f"quality must be an integer from 1 to 100, got {quality!r}")
    options = _save_options(fmt, quality, metadata)
    pil = _as_rgb8(image)

    if target.is_dir():
        raise ImageError(f"{label}: is a directory")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise ImageError(
            f"{label}: cannot create directory {parent}: a file is in the way"
        ) from exc
    except OSError as exc:
        raise ImageError(f"{label}: cannot create directory {parent}: {_reason(exc)}") from exc

    tmp, fd = _create_temp_file(parent, target.name, label)
    try:
        with os.fdopen(fd, "wb") as fh:
            pil.save(fh, format=fmt, **options)
            fh.flush()
            os.fsync(fh.fileno())
        _copy_permissions(target, tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        # BaseException: a Ctrl-C mid-write must not leave a stray .tmp file behind either.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ImageError(f"{label}: cannot write: {_reason(exc)}") from exc
        raise
    _fsync_directory(parent)
    return target


def same_file(a: object, b: object) -> bool:
    """True if ``a`` and ``b`` are paths naming the same file.

    When both exist this follows links and hard links (``os.path.samefile``); otherwise it compares
    the resolved absolute paths. Anything that is not a path (bytes, streams, images) is never the
    same file. Used to refuse writing the output over an input.
    """
    if not isinstance(a, (str, os.PathLike)) or not isinstance(b, (str, os.PathLike)):
        return False
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        pass  # at least one does not exist (or cannot be stat'ed): compare names instead
    try:
        resolved_a = Path(os.fsdecode(os.fspath(a))).resolve()
        resolved_b = Path(os.fsdecode(os.fspath(b))).resolve()
        return resolved_a == resolved_b
    except (OSError, RuntimeError, ValueError):
        return os.path.abspath(a) == os.path.abspath(b)


# --------------------------------------------------------------------------------------------------
# Helpers: opening


def _check_positive_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")


def _check_pixel_count(size: tuple[int, int], max_pixels: int, label: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{label}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"{label}: {width}x{height} pixels exceeds the limit of {max_pixels} "
            "(raise --max-pixels)"
        )


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _pil_label(img: Image.Image) -> str:
    filename = getattr(img, "filename", None)
    return os.fsdecode(filename) if filename else "image"


def _stream_label(stream: object) -> str:
    stream_name = getattr(stream, "name", None)
    if isinstance(stream_name, (str, bytes)) and stream_name:
        return os.fsdecode(stream_name)
    return "image data"


def _open_regular_file(path: str | bytes, label: str) -> BinaryIO:
    """Open ``path`` for reading, turning every way that can fail into a one-line ImageError."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ImageError(f"{label}: no such file") from exc
    except PermissionError as exc:
        raise ImageError(f"{label}: permission denied") from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = _reason(exc) if isinstance(exc, OSError) else "invalid path"
        raise ImageError(f"{label}: cannot read ({reason})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{label}: is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        # A FIFO would block and /dev/zero would never end: refuse before reading.
        raise ImageError(f"{label}: not a regular file")
    if info.st_size == 0:
        raise ImageError(f"{label}: empty file (0 bytes)")
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it with `with`
    except PermissionError as exc:
        raise ImageError(f"{label}: permission denied") from exc
    except OSError as exc:
        raise ImageError(f"{label}: cannot read ({_reason(exc)})") from exc


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
        raise ImageError(f"{label}: cannot read ({_reason(exc)})") from exc
    if not first:
        raise ImageError(f"{label}: empty file (0 bytes)")
    if start:
        # Image.open reads from offset 0; honour where the caller left the stream instead.
        try:
            stream.seek(start)
            return io.BytesIO(stream.read())
        except OSError as exc:
            raise ImageError(f"{label}: cannot read ({_reason(exc)})") from exc
    return stream


def _decoders() -> list[str]:
    Image.init()
    return [fmt for fmt in _DECODERS if fmt in Image.OPEN]


def _decode(fp: BinaryIO, label: str, max_pixels: int) -> tuple[Image.Image, str]:
    """Identify, size-check and fully decode the first frame of ``fp``.

    Returns the image and, for a multi-frame file, the note to warn with (else ``""``).
    """
    try:
        # Our own limit replaces Pillow's: its warning (above ~89 MP) would be noise next to ours.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=_decoders())
    except Image.DecompressionBombError as exc:
        # Pillow refuses outright above ~179 MP, before telling us the dimensions. Identify the
        # file again without that check, so the message has the real size and a --max-pixels above
        # Pillow's ceiling still works.
        img = _open_past_pillow_limit(fp)
        if img is None:
            raise ImageError(
                f"{label}: image exceeds the limit of {max_pixels} pixels (raise --max-pixels)"
            ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label}: {_why_unidentified(fp)}") from exc
    except Exception as exc:  # a plugin choking on a malformed header: ValueError, OSError, ...
        raise ImageError(f"{label}: truncated or corrupt image data") from exc

    _check_pixel_count(img.size, max_pixels, label)

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


def sniff_format(head: bytes) -> str | None:
    """The image format (PIL's name) that ``head``, a file's first bytes, starts like; ``None`` if none
    of the formats painterly decodes. Judges by content, never by file name."""
    for magic, fmt in _IMAGE_MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _why_unidentified(fp: BinaryIO) -> str:
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


# --------------------------------------------------------------------------------------------------
# Helpers: modes


def _finish(img: Image.Image, label: str) -> Image.Image:
    """Apply the EXIF orientation and normalise the mode; always returns a new image."""
    try:
        oriented = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF is common in the wild and should not cost the user the image
        warnings.warn(
            f"{label}: unreadable EXIF orientation; using the image as stored",
            PainterlyWarning,
            stacklevel=3,
        )
        oriented = img.copy()
    return _to_canonical_mode(oriented, label)


def _has_alpha(img: Image.Image) -> bool:
    has = getattr(img, "has_transparency_data", None)  # Pillow >= 10.1
    if has is not None:
        return bool(has)
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _to_canonical_mode(img: Image.Image, label: str) -> Image.Image:
    """Return ``img`` as ``"RGB"`` or as one of the high-bit-depth grayscale modes."""
    mode = img.mode
    if mode in _HIGH_BIT_MODES:
        return img
    if mode.startswith("I;"):  # other integer layouts (signed, 32-bit): widen to plain "I"
        try:
            return img.convert("I")
        except ValueError as exc:
            raise ImageError(f"{label}: unsupported pixel format {mode!r}") from exc
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if _has_alpha(img):
        return _over_white(img)
    if mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise ImageError(f"{label}: unsupported pixel format {mode!r}") from exc


def _over_white(img: Image.Image) -> Image.Image:
    """Composite an image with transparency over a white background, giving ``"RGB"``.

    White, not black: transparent areas of logos and scans are meant to read as paper, and
    style transfer would otherwise paint over a black hole.
    """
    if img.mode == "La":  # premultiplied gray+alpha has no direct route to RGBA
        img = img.convert("LA")
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """CMYK → sRGB through the embedded ICC profile if there is one, else Pillow's formula.

    Print CMYK files (the usual source) carry a press profile; ignoring it gives washed-out, shifted
    colours. Pillow's fallback, R = (255 - C) * (255 - K) / 255 and so on, is fine for untagged
    data.
    """
    icc = img.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            converted = ImageCms.profileToProfile(
                img,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
            if converted is not None:
                return converted
        except Exception:
            pass  # a broken or exotic profile must not make a readable image unreadable
    return img.convert("RGB")


def _unit_range_gray(arr: np.ndarray, mode: str) -> np.ndarray:
    """High-bit-depth grayscale samples (H, W) → float32 in [0, 1] (see image_to_tensor)."""
    if mode.startswith("I;16"):
        return arr.astype(np.float32) / np.float32(65535.0)
    if mode == "I":
        values = np.clip(arr.astype(np.float64), 0.0, None)
        scale = 65535.0 if values.max(initial=0.0) <= 65535.0 else float(2**31 - 1)
        return (values / scale).astype(np.float32)
    # "F": no intrinsic range, so infer it from the data.
    values = arr.astype(np.float64)
    finite = values[np.isfinite(values)]
    peak = float(finite.max()) if finite.size else 0.0
    scale = next((s for s in (1.0, 255.0, 65535.0) if peak <= s), peak)
    values = np.nan_to_num(values / scale, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Helpers: writing


def _as_rgb8(image: torch.Tensor | Image.Image) -> Image.Image:
    if isinstance(image, torch.Tensor):
        return tensor_to_pil(image)
    if isinstance(image, Image.Image):
        if image.mode == "RGB":
            return image
        # Through the tensor path so 16-bit and float images are rounded, not truncated.
        return tensor_to_pil(image_to_tensor(image))
    raise TypeError(f"save_image() needs a tensor or a PIL image, not {type(image).__name__}")


def _save_options(fmt: str, quality: int, metadata: dict[str, str] | None) -> dict[str, object]:
    if fmt == "JPEG":
        # Full-resolution chroma at high quality: painted textures are full of fine colour detail
        # that 4:2:0 subsampling smears.
        return {"quality": quality, "subsampling": 0 if quality >= 90 else 2}
    if fmt == "WEBP":
        return {"quality": quality}
    if fmt == "PNG" and metadata:
        info = PngInfo()
        for key, value in metadata.items():
            if (
                not isinstance(key, str)
                or not 1 <= len(key) <= 79
                or "\x00" in key
                or not all(ord(ch) < 256 for ch in key)
            ):
                raise ConfigError(f"metadata key {key!r}: must be 1-79 Latin-1 characters")
            # Pillow writes tEXt when the value is Latin-1 and iTXt (UTF-8) otherwise.
            info.add_text(key, str(value).replace("\x00", ""))
        return {"pnginfo": info}
    return {}


def _create_temp_file(directory: Path, target_name: str, label: str) -> tuple[Path, int]:
    """Create ``directory/.<target_name>.<random>.tmp`` exclusively and return it with its fd."""
    # os.open with 0o666 (not mkstemp's 0o600) so the finished file gets the user's umask, like any
    # other file they create. Truncate long names to stay under NAME_MAX.
    stem = target_name[:200]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = directory / f".{stem}.{secrets.token_hex(4)}.tmp"
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ImageError(f"{label}: cannot write: {_reason(exc)}") from exc
    raise ImageError(f"{label}: cannot write: could not create a temporary file in {directory}")


def _copy_permissions(target: Path, tmp: Path) -> None:
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return  # no existing file: keep the umask-derived default
    try:
        os.chmod(tmp, mode)
    except OSError:
        pass  # permission bits are a courtesy, not worth failing the save over


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable. Best effort: not every platform can fsync a directory."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)



def fit_size(height: int, width: int, longest: int, min_side: int = 16) -> tuple[int, int]:
    """(H, W) with the longest side ``longest`` and the aspect of ``height`` x ``width``; no side below ``min_side``."""
    scale = longest / max(height, width)
    return max(min_side, round(height * scale)), max(min_side, round(width * scale))


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, C, H, W)`` resized to ``size`` = (H, W): bicubic, antialiased when shrinking, clamped to [0, 1];
    the input itself when the size already matches."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    down = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=down).clamp(0, 1)
