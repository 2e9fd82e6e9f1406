"""PIL images to tensors and back, and the project's one resize rule.

:func:`fit_size` says what size an image becomes and :func:`resize` makes it so; the engine, the
loaders and the studio all go through these two, so an image resized anywhere in painterly is the
same to the pixel.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ._common import check_positive_int, pil_label
from .modes import to_canonical_mode, unit_range_gray

__all__ = ["fit_size", "resize", "resize_longest", "resize_to", "image_to_tensor", "tensor_to_pil"]


# --------------------------------------------------------------------------------------------------
# The resize rule


def fit_size(height: int, width: int, longest: int, min_side: int = 16) -> tuple[int, int]:
    """``(H, W)`` for an image of ``height`` x ``width`` whose longest side becomes ``longest``.

    The aspect ratio is kept; each side is ``round(side * longest / max(height, width))`` (Python's
    ``round``: halves go to even) and never below ``min_side`` (the engine's 16 px, so the deepest
    VGG layers still have pixels). This can upscale.
    """
    scale = longest / max(height, width)
    return max(min_side, round(height * scale)), max(min_side, round(width * scale))


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` floats to ``size = (H', W')``: bicubic, ``align_corners=False``,
    antialiased when either side shrinks, clamped to ``[0, 1]``.

    Returns ``image`` itself (not a copy) when it already has that size. The dtype must be one that
    bicubic interpolation supports on the tensor's device (float32/float64 everywhere).
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    down = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    out = F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=down)
    return out.clamp(0, 1)


def resize_longest(image: torch.Tensor, size: int, *, min_side: int = 1) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` (or ``(C, H, W)``) floats so the longest side is ``size`` pixels.

    ``resize_to(image, *fit_size(H, W, size, min_side))``: the aspect ratio is kept, each side rounded
    to the nearest pixel and at least ``min_side`` (1 by default; the engine's 16 gives the engine's
    sizes exactly). Values are clamped to ``[0, 1]``. Dtype and device are kept.
    """
    check_positive_int(size, "size")
    check_positive_int(min_side, "min_side")
    height, width = int(image.shape[-2]), int(image.shape[-1])
    if max(height, width) == 0:
        raise ValueError("resize_longest() got an image with no pixels")
    return resize_to(image, *fit_size(height, width, size, min_side))


def resize_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` (or ``(C, H, W)``) floats to exactly ``height`` x ``width``.

    :func:`resize`, with checks: bicubic, antialiased when either side shrinks, values clamped to
    ``[0, 1]``. Dtype and device are kept (half precision is computed in float32). Returns a new
    tensor even when the size is unchanged.
    """
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    if not torch.is_floating_point(image):
        raise TypeError(f"resize_to() needs a floating-point tensor, got {image.dtype}")
    if image.dim() == 3:
        return resize_to(image.unsqueeze(0), height, width).squeeze(0)
    if image.dim() != 4:
        raise ValueError(
            f"resize_to() needs an (N, C, H, W) tensor, got shape {tuple(image.shape)}"
        )
    if tuple(image.shape[-2:]) == (height, width):
        return image.clamp(0.0, 1.0)
    # Bicubic (and its antialiased variant) is not implemented for half types on every device.
    work = image if image.dtype in (torch.float32, torch.float64) else image.float()
    return resize(work, (height, width)).to(image.dtype)


# --------------------------------------------------------------------------------------------------
# PIL <-> tensor


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert a PIL image to a ``(1, 3, H, W)`` ``float32`` tensor with values in ``[0, 1]``.

    8-bit data is divided by 255 and 16-bit data (``I;16*`` modes) by 65535, so no precision is
    lost. Grayscale is replicated to three channels. Any other mode is first normalised the way
    :func:`~painterly.imageio.open_image` does it (alpha over white, CMYK/palette/... to RGB).

    Modes without a fixed range are scaled by what they contain: ``"I"`` (32-bit integers) by 65535
    when every value fits in 16 bits (how Pillow stores most 16-bit files) and by ``2**31 - 1``
    otherwise; ``"F"`` (floats) is taken as ``[0, 1]``, ``[0, 255]`` or ``[0, 65535]``, whichever is
    the smallest to contain its maximum, else scaled by its maximum. Negative values become 0 and
    NaN becomes 0.
    """
    img = to_canonical_mode(img, pil_label(img))
    mode = img.mode
    if mode == "RGB":
        # (H, W, 3) uint8 -> float32 in [0, 1]; astype copies, so the tensor owns writable memory.
        rgb = np.asarray(img, dtype=np.uint8).astype(np.float32)
        rgb /= 255.0
        chw = torch.from_numpy(rgb).permute(2, 0, 1)
    else:
        gray = torch.from_numpy(unit_range_gray(np.asarray(img), mode))
        chw = gray.unsqueeze(0).expand(3, -1, -1)
    return chw.unsqueeze(0).contiguous()


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
