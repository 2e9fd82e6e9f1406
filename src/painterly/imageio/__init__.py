"""Reading and writing images, and moving them between Pillow and PyTorch.

Everything that touches an image file goes through this package, so every other module can assume:

* an input image is a ``(1, 3, H, W)`` ``float32`` tensor with values in ``[0, 1]`` (sRGB, not
  linearised), whatever the file's mode, bit depth, orientation or transparency was;
* a bad input file raises :class:`~painterly.errors.ImageError` with a one-line message naming the
  file, never a Pillow traceback;
* an output file is either the complete new image or whatever was there before, never half of one;
* an image is resized by one rule everywhere (:func:`fit_size` + :func:`resize`).

One idea per module: :mod:`.reading` (opening files and streams safely), :mod:`.decoding` (the
formats decoded, the decompression-bomb guard, reduced decoding), :mod:`.sniffing` (formats by
content), :mod:`.modes` (alpha, CMYK, 16-bit, palette ... to RGB), :mod:`.tensors` (PIL <-> tensor
and resizing), :mod:`.writing` (output format, atomic saves).
"""

from __future__ import annotations

from .reading import (
    DEFAULT_MAX_PIXELS,
    declared_size,
    INPUT_EXTENSIONS,
    SHRINK_MARGIN,
    ImageSource,
    load_image,
    open_image,
)
from .sniffing import sniff_format
from .tensors import fit_size, image_to_tensor, resize, resize_longest, resize_to, tensor_to_pil
from .writing import OUTPUT_FORMATS, output_format, same_file, save_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "INPUT_EXTENSIONS",
    "OUTPUT_FORMATS",
    "SHRINK_MARGIN",
    "ImageSource",
    "open_image",
    "declared_size",
    "image_to_tensor",
    "load_image",
    "fit_size",
    "resize",
    "resize_longest",
    "resize_to",
    "tensor_to_pil",
    "output_format",
    "save_image",
    "same_file",
    "sniff_format",
]
