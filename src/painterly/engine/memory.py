"""How much memory a level needs and has: whether its evaluation goes by tiles, and how many steps
L-BFGS remembers.

Estimates, not measurements: the encoder's activations are the sum of its layers' outputs (each is
kept for the backward pass), which on this CPU overestimates the measured peak by ~20 % (in-place
ReLUs share storage); docs/benchmarks.md has the measurements.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from ..encoder import VGG19Encoder
from ..layers import edge_padding, feature_side
from .pyramid import HW
from .tiled import geometry

ACTIVATION_SHARE = 0.35
"""Of the memory available at a level's start, the share the encoder's activations may take (the rest
is for the targets, the optimiser, the image's own copies and whatever else runs on the machine)."""
LBFGS_SHARE = 0.15
"""Of the memory available at a level's start, the share L-BFGS's history may take."""
MIN_TILE_CELLS = 4
"""The smallest tile, in multiples of the deepest layer's stride (smaller tiles are mostly halo)."""
GB = 1e9


def available_bytes(device: torch.device) -> int:
    """Memory free for this process on ``device``: the driver's free memory on CUDA, else the kernel's
    MemAvailable (``/proc/meminfo``; the free physical pages where there is none)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: never tile on our own


def activation_bytes(encoder: VGG19Encoder, hw: HW, element_bytes: int = 4) -> int:
    """Estimated memory of one forward and backward pass of ``encoder`` over an image of ``hw``: every
    layer's output (kept for the backward), plus the two largest again (the gradients in flight); the
    network sees the image continued to a multiple of 16 (:func:`~painterly.layers.edge_padding`)."""
    h, w = hw[0] + edge_padding(hw[0]), hw[1] + edge_padding(hw[1])
    sizes, channels, stride = [], 3, 1
    for module in getattr(encoder, "net", ()):  # a stand-in encoder without layers: its input only
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            stride *= 2
        sizes.append(channels * feature_side(h, stride) * feature_side(w, stride))
    largest = sorted(sizes)[-2:]
    return (sum(sizes) + sum(largest) + 3 * h * w) * element_bytes


def choose_tile(
    setting: int | None, encoder: VGG19Encoder, hw: HW, device: torch.device, element_bytes: int = 4, free: int | None = None
) -> tuple[int | None, str | None]:
    """The tile side for an image of ``hw`` (``None``: untiled) and, when chosen automatically, the one
    line that says why.

    ``setting``: ``0`` never tiles, a positive side always does (when smaller than the image), ``None``
    tiles only when the whole image's activations would exceed ACTIVATION_SHARE of the memory available,
    with the largest tile whose crop (tile plus halo) stays within it. ``free``: the memory available
    (default: :func:`available_bytes` now).
    """
    if setting == 0 or (setting is not None and setting >= max(hw)):
        return None, None
    if setting is not None:
        return setting, None
    need = activation_bytes(encoder, hw, element_bytes)
    free = available_bytes(device) if free is None else free
    budget = free * ACTIVATION_SHARE
    if need <= budget:
        return None, None
    stride, halo = geometry(encoder.layers)
    side = max(hw)
    while side > MIN_TILE_CELLS * stride:
        crop = side + 2 * halo
        if activation_bytes(encoder, (min(crop, hw[0]), min(crop, hw[1])), element_bytes) <= budget:
            break
        side = int(side * 0.9) // stride * stride
    side = max(side, MIN_TILE_CELLS * stride)
    h, w = hw
    note = (
        f"{w}x{h} px is evaluated by tiles of {side} px (+{halo} px halo, exact): the whole image would need "
        f"~{need / GB:.1f} GB, {free / GB:.1f} GB is available"
    )
    return side, note


def lbfgs_history_for_memory(requested: int, shape: tuple[int, ...], free: int, minimum: int) -> int:
    """L-BFGS steps remembered for an image of ``shape`` (2 float32 images per step): ``requested``,
    capped to LBFGS_SHARE of ``free`` bytes, but not below ``minimum``."""
    per_step = 2 * 4 * math.prod(shape)
    return min(requested, max(minimum, int(free * LBFGS_SHARE) // per_step))
