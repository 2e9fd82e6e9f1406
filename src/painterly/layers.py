"""The one map of VGG19 layer names.

VGG19's feature stack is 16 3×3 convolutions in five blocks, each block ending in a 2×2 pool.
Everything that names a layer (``conv1_1``, ``relu4_2``, ``pool3``) reads from here: the encoder
builds itself from :data:`VGG19_LAYERS`, the configuration validates names against it, and the
weight loaders translate torchvision's ``features.N`` and Keras' ``blockB_convK`` keys through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from .errors import shown

# Convolutions per block and their output channels, from Simonyan & Zisserman (2014), config E.
_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))

LayerKind = Literal["conv", "relu", "pool"]


@dataclass(frozen=True)
class Layer:
    """One layer of the feature stack.

    ``index`` is the position in torchvision's ``vgg19().features`` (the same order as the paper's
    network); ``channels`` is the number of output channels; ``stride`` is the total downsampling
    factor of this layer's output relative to the input image.
    """

    name: str
    kind: LayerKind
    index: int
    channels: int
    in_channels: int
    stride: int


def _build() -> tuple[Layer, ...]:
    layers: list[Layer] = []
    index = 0
    in_ch = 3
    stride = 1
    for block, (n_convs, ch) in enumerate(_BLOCKS, start=1):
        for k in range(1, n_convs + 1):
            layers.append(Layer(f"conv{block}_{k}", "conv", index, ch, in_ch, stride))
            layers.append(Layer(f"relu{block}_{k}", "relu", index + 1, ch, ch, stride))
            index += 2
            in_ch = ch
        stride *= 2
        layers.append(Layer(f"pool{block}", "pool", index, ch, ch, stride))
        index += 1
    return tuple(layers)


VGG19_LAYERS: tuple[Layer, ...] = _build()
"""All 37 layers of VGG19's feature stack, in order."""

LAYER_NAMES: tuple[str, ...] = tuple(layer.name for layer in VGG19_LAYERS)
_BY_NAME: dict[str, Layer] = {layer.name: layer for layer in VGG19_LAYERS}

CONV_LAYERS: tuple[Layer, ...] = tuple(layer for layer in VGG19_LAYERS if layer.kind == "conv")
"""The 16 convolutions, in order."""


def feature_side(pixels: int, stride: int) -> int:
    """Positions along an image side of ``pixels`` at a layer of total ``stride``: ``ceil(pixels / stride)``.

    The last position stands on the image's last, partial cell of ``stride`` px, continued past the edge
    (:func:`edge_padding`). Dropping it (the network's own floor) left a strip of up to ``stride − 1``
    px at the bottom and right that got no style from the deeper layers and stayed visibly smoother
    than the rest; keeping it as a cell of fewer pixels (``ceil_mode`` alone) made it a band of specks.
    """
    return -(-pixels // stride)


EDGE_MULTIPLE = 16
"""The network's input is continued to a multiple of this (relu5_x's stride) whatever layers a run reads,
so that a layer's features never depend on which deeper layers are computed beside it."""


def edge_padding(pixels: int) -> int:
    """Pixels the network's input is continued by past the bottom (right) edge of a side of ``pixels``:
    up to the next multiple of :data:`EDGE_MULTIPLE`, so that no pool cell up to relu5_x is partial.

    A partial cell kept as it is (``ceil_mode`` alone) stands on fewer pixels than the others yet counts
    as fully in every statistic: the last rows of a picture whose height is no multiple of 16 came out
    as a band of coloured specks (docs/quality.md). The encoder reflects the image into the padding and
    crops each map back to :func:`feature_side` positions.
    """
    return -pixels % EDGE_MULTIPLE


def layer(name: str) -> Layer:
    """Look a layer up by name; raise ``KeyError`` listing the valid names if it does not exist."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown layer {shown(name)}; valid layers: {', '.join(LAYER_NAMES)}") from None


def is_layer(name: str) -> bool:
    return name in _BY_NAME


def deepest(names: Iterable[str]) -> Layer:
    """The deepest of the named layers: the encoder can be cut right after it."""
    found = [layer(n) for n in names]
    if not found:
        raise ValueError("no layers given")
    return max(found, key=lambda lay: lay.index)


def torchvision_key(conv_name: str, param: str) -> str:
    """``conv1_1``, ``weight`` → ``features.0.weight`` (torchvision's VGG19 state-dict key)."""
    lay = layer(conv_name)
    if lay.kind != "conv":
        raise ValueError(f"{conv_name} is not a convolution")
    return f"features.{lay.index}.{param}"


def keras_name(conv_name: str) -> str:
    """``conv3_2`` → ``block3_conv2`` (Keras' naming, used by the quantised Caffe weight file)."""
    lay = layer(conv_name)
    if lay.kind != "conv":
        raise ValueError(f"{conv_name} is not a convolution")
    block, k = conv_name[4:].split("_")
    return f"block{block}_conv{k}"
