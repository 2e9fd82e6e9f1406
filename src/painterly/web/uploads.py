"""Uploaded files → images, under the studio's limits.

The checks run cheapest first, and each failure has its own HTTP status:

* more bytes than the upload limit → 413 (read stops one byte past the limit);
* bytes that do not start like a supported image, whatever the file is called → 415;
* an image whose header declares more pixels than the server accepts → 413 (refused before any
  pixel is decoded, so a "decompression bomb" costs nothing);
* an image that cannot be decoded (truncated, corrupt) → 400.

Decoding holds one of a few slots, so that a burst of large uploads cannot take all the memory at
once; decoded images are then shrunk to the largest size a run can use.
"""

from __future__ import annotations

import io
import os
import threading
from typing import TYPE_CHECKING, Awaitable, BinaryIO, Callable

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from PIL import Image

from ..errors import ImageError, TooManyPixels
from ..imageio import image_to_tensor, open_image, resize_longest, sniff_format, tensor_to_pil

if TYPE_CHECKING:
    from fastapi import UploadFile

ACCEPTED = "PNG, JPEG, WebP, GIF, BMP or TIFF"

_DECODE_SLOTS = threading.BoundedSemaphore(2)


class UploadRejected(Exception):
    """An upload the server refuses: ``status`` is the HTTP status, the message says why (one line)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        """The form field at fault, when the message is about one (the answer names it)."""


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def require_form(content_type: str | None) -> None:
    """Refuse (415) a body that is not a form: a JSON body would otherwise read as an empty form,
    and the answer ("no file uploaded, or send demo=true") would mislead the script that sent it."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind and kind not in FORM_TYPES:
        raise UploadRejected(
            415,
            f"the body is {kind}; send a multipart form (e.g. curl -F content=@photo.jpg"
            " -F style=@painting.jpg -F 'options={\"size\": 256}')",
        )


def sent_once(*names: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency refusing (422, naming the field) a form that repeats one of ``names``: the
    form parser keeps the last copy, so a script's mistake (two photos, two ``options``) would be
    silently half ignored."""

    async def check(request: Request) -> None:
        form = await request.form()  # the same parse the route's fields come from (cached)
        for name in names:
            count = len(form.getlist(name))
            if count > 1:
                said = "twice" if count == 2 else f"{count} times"
                raise RequestValidationError([{"loc": ("body", name), "msg": f"sent {said}; send it once", "type": "value_error"}])

    return check


def sniff(head: bytes) -> str | None:
    """The image format that ``head`` (the first bytes of a file) starts like, or None."""
    return sniff_format(head)


def read_limited(stream: BinaryIO, limit: int, label: str) -> bytes:
    """Read a whole upload, refusing (413) one byte past ``limit``."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UploadRejected(413, f"{label}: the file is larger than the upload limit of {_megabytes(limit)}")
    if not data:
        raise UploadRejected(400, f"{label}: empty file")
    return data


def decode_upload(data: bytes, label: str, *, max_pixels: int, max_side: int) -> Image.Image:
    """Check and decode one uploaded image; the result's longest side is at most ``max_side``."""
    fmt = sniff(data[:16])
    if fmt is None:
        raise UploadRejected(415, f"{label}: not an image this studio reads ({ACCEPTED})")
    with _DECODE_SLOTS:
        try:
            image = open_image(data, max_pixels=max_pixels, name=label)
        except TooManyPixels:
            too_big = _too_many_pixels(data, fmt, max_pixels) or "too many pixels"
            raise UploadRejected(413, f"{label}: {too_big}; this server accepts at most {_megapixels(max_pixels)}") from None
        except ImageError as exc:
            raise UploadRejected(400, str(exc)) from None
        return _shrink(image, max_side)


def client_name(upload: UploadFile) -> str:
    """The file name the browser sent, for display only (never used as a path)."""
    return os.path.basename(upload.filename or "")[:200] or "upload"


def read_upload(upload: UploadFile, label: str, max_bytes: int, max_pixels: int, max_side: int) -> Image.Image:
    """Read (:func:`read_limited`) and decode (:func:`decode_upload`) one uploaded file."""
    data = read_limited(upload.file, max_bytes, label)
    return decode_upload(data, label, max_pixels=max_pixels, max_side=max_side)


def uploaded_pair(
    demo: bool,
    content: UploadFile | None,
    styles: list[UploadFile],
    *,
    max_styles: int,
    max_bytes: int,
    max_pixels: int,
    max_side: int,
    style_hint: str = "",
) -> tuple[Image.Image, list[Image.Image], str | None, list[str]]:
    """A request's content and style images, the demo pair or read from ``content`` and ``styles``:
    ``(content, styles, content's name, styles' names)``, the names those the browser sent (``None``
    and ``[]`` for the demo). Refused with a 400 naming the field (``style_hint`` ends the message
    for missing styles)."""
    if demo:
        if content is not None or styles:
            raise UploadRejected(400, "send either demo=true or image files, not both")
        content_img, style_imgs = demo_pair()
        return content_img, style_imgs, None, []
    if content is None:
        raise UploadRejected(400, "content: no file uploaded (or send demo=true)")
    if not styles:
        raise UploadRejected(400, f"style: upload at least one style image{style_hint}")
    if len(styles) > max_styles:
        raise UploadRejected(400, f"style: at most {max_styles} style images, got {len(styles)}")
    content_img = read_upload(content, "content image", max_bytes, max_pixels, max_side)
    style_imgs = [read_upload(s, f"style image {i + 1}", max_bytes, max_pixels, max_side) for i, s in enumerate(styles)]
    return content_img, style_imgs, client_name(content), [client_name(s) for s in styles]


def demo_pair() -> tuple[Image.Image, list[Image.Image]]:
    """The built-in demo pair as images (content, [style]): what ``demo=true`` sends instead of uploads."""
    from ..demo import demo_images

    content, styles = demo_images()
    return open_image(content), [open_image(s) for s in styles]


def _too_many_pixels(data: bytes, fmt: str, max_pixels: int) -> str | None:
    """Say how big the image claims to be if that is over the limit (from its header only)."""
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        return "the image declares an enormous number of pixels"
    except Exception:
        return None
    if width * height > max_pixels:
        return f"{width}x{height} is {_megapixels(width * height)}"
    return None


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """Images bigger than any run can use are reduced now, so a queued job holds little memory."""
    if max(image.size) <= max_side:
        return image
    if image.mode == "RGB":
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return image
    # High-bit-depth grayscale: through the tensor path, which knows each mode's range.
    return tensor_to_pil(resize_longest(image_to_tensor(image), max_side))


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.3g} megapixels"
