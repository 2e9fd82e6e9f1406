"""Pixel modes: every PIL image normalised to ``"RGB"`` or a high-bit-depth grayscale mode.

Alpha is composited over white, CMYK goes through its ICC profile, palette/LAB/HSV/YCbCr/... are
converted, and 16-bit or float grayscale is left alone so :func:`~painterly.imageio.image_to_tensor`
keeps every bit. EXIF orientation is applied here too, since it is part of "the image as meant".
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from ..errors import ImageError, PainterlyWarning

__all__ = ["HIGH_BIT_MODES", "finish", "to_canonical_mode", "unit_range_gray"]

# Modes whose samples have more than 8 bits. They are returned as they are so that
# image_to_tensor can scale them by their real range instead of Pillow truncating to 8 bits.
HIGH_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def finish(img: Image.Image, label: str) -> Image.Image:
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
    return to_canonical_mode(oriented, label)


def _has_alpha(img: Image.Image) -> bool:
    has = getattr(img, "has_transparency_data", None)  # Pillow >= 10.1
    if has is not None:
        return bool(has)
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def to_canonical_mode(img: Image.Image, label: str) -> Image.Image:
    """Return ``img`` as ``"RGB"`` or as one of the high-bit-depth grayscale modes."""
    mode = img.mode
    if mode in HIGH_BIT_MODES:
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


def unit_range_gray(arr: np.ndarray, mode: str) -> np.ndarray:
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
