"""Writing images: the output format from the file name, atomic saves, and "is this the same file".

Every byte goes through :mod:`painterly.files`, so an output is either the complete new image or
whatever was there before, and a new file is private to the user (0600).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..errors import ConfigError, ImageError, shown
from ..files import PRIVATE_FILE, atomic_write, make_folder
from ._common import reason
from .tensors import image_to_tensor, tensor_to_pil

__all__ = ["OUTPUT_FORMATS", "output_format", "save_image", "same_file"]

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

    ``image`` is a tensor as accepted by :func:`~painterly.imageio.tensor_to_pil` or a PIL image (any
    mode; it is normalised like :func:`~painterly.imageio.open_image` does and written as 8-bit RGB,
    alpha composited over white). The format comes from the extension (:func:`output_format`).
    ``quality`` (1-100) applies to JPEG and WebP. ``metadata`` is stored as PNG text chunks (keys of
    1-79 Latin-1 characters; values are converted with ``str``); other formats ignore it.

    The write is :func:`painterly.files.atomic_write`: the data goes to a hidden temporary file
    (``.<name>.<host>p<pid>-<random>.tmp``) in the target's directory, is fsynced, then renamed over the target,
    so a crash, an error or Ctrl-C leaves either the old file or the complete new one and never the
    temporary file. Missing parent directories are created (0700). A new file is private to the user
    (0600); an existing target keeps its permission bits.

    Raises :class:`~painterly.errors.ConfigError` for an unsupported extension, a bad ``quality`` or
    bad metadata keys, and :class:`~painterly.errors.ImageError` when the location is not writable.
    """
    label = os.fsdecode(os.fspath(path))
    target = Path(label)
    fmt = output_format(target)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ConfigError(f"quality must be an integer from 1 to 100, got {shown(quality)}")
    options = _save_options(fmt, quality, metadata)
    pil = _as_rgb8(image)

    if target.is_dir():
        raise ImageError(f"{label}: is a directory")
    parent = target.parent
    try:
        make_folder(parent)
    except FileExistsError as exc:
        raise ImageError(
            f"{label}: cannot create directory {parent}: a file is in the way"
        ) from exc
    except OSError as exc:
        raise ImageError(f"{label}: cannot create directory {parent}: {reason(exc)}") from exc

    try:
        with atomic_write(target, mode=PRIVATE_FILE) as fh:
            pil.save(fh, format=fmt, **options)
    except OSError as exc:
        raise ImageError(f"{label}: cannot write: {reason(exc)}") from exc
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
                raise ConfigError(f"metadata key {shown(key)}: must be 1-79 Latin-1 characters")
            # Pillow writes tEXt when the value is Latin-1 and iTXt (UTF-8) otherwise.
            info.add_text(key, str(value).replace("\x00", ""))
        return {"pnginfo": info}
    return {}
