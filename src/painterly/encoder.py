"""The VGG19 feature encoder.

It owns its input preprocessing (the rest of painterly sees RGB in [0, 1]), is frozen (no weight
gradients: they would cost ~50 % more time per step and nobody needs them), is cut right after the
deepest layer a run reads, and applies a ReLU in place only where the convolution before it is not
one of the layers read, so that both a ``convX_Y`` and its ``reluX_Y`` can be read in one pass.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor, nn

from .errors import ConfigError, WeightsError, shown
from .layers import VGG19_LAYERS, Layer, deepest, edge_padding, feature_side, layer

# Caffe's VGG was trained on BGR images in 0-255 with the mean pixel subtracted.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)

# torchvision's network sees inputs ≈ 255·0.226 ≈ 58 times smaller than Caffe's, and its features
# are correspondingly smaller. Multiplying them by this factor puts them on (roughly) the Caffe
# scale, so that one set of loss weights suits both sources. It is an approximation: the two
# networks were trained separately and their deeper layers are not exact multiples of each other.
TORCHVISION_FEATURE_SCALE = 255.0 * sum(TORCHVISION_STD) / 3.0


class VGG19Encoder(nn.Module):
    """VGG19's convolutional stack, returning the activations of chosen layers.

    Args:
        state: conv weights keyed ``conv1_1.weight``, ``conv1_1.bias``, …; channel counts are taken from
            the tensors, so a narrow "VGG-shaped" network (used by the tests) works the same way.
        preprocessing: ``"caffe"`` (BGR, 0–255, minus the mean pixel) or ``"torchvision"`` (RGB,
            ImageNet mean/std).
        layers: the layer names whose outputs :meth:`forward` returns. The network is built only up
            to the deepest of them.
        pooling: ``"max"`` (the network's own) or ``"avg"`` (the paper found it gives smoother results).
    """

    def __init__(
        self,
        state: Mapping[str, Tensor],
        preprocessing: str,
        layers: Iterable[str],
        pooling: str = "max",
    ) -> None:
        super().__init__()
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(layers))
        if not self.layers:
            raise ConfigError("the encoder needs at least one layer to read")
        for name in self.layers:
            try:
                layer(name)
            except KeyError as exc:
                raise ConfigError(str(exc.args[0])) from None
        if preprocessing not in ("caffe", "torchvision"):
            raise ConfigError(f"unknown preprocessing {shown(preprocessing)}")
        if pooling not in ("max", "avg"):
            raise ConfigError(f"pooling must be max or avg, got {shown(pooling)}")
        self.preprocessing = preprocessing
        self.pooling = pooling
        last = deepest(self.layers)
        self._plan: list[Layer] = [lay for lay in VGG19_LAYERS if lay.index <= last.index]

        modules: list[nn.Module] = []
        in_channels = 3
        for lay in self._plan:
            if lay.kind == "conv":
                w_key, b_key = f"{lay.name}.weight", f"{lay.name}.bias"
                if w_key not in state or b_key not in state:
                    raise WeightsError(
                        f"the weights have no {lay.name}, which this run needs (layers up to {last.name})"
                    )
                weight, bias = state[w_key], state[b_key]
                if weight.ndim != 4 or weight.shape[1] != in_channels or weight.shape[2:] != (3, 3):
                    raise WeightsError(f"{lay.name}.weight has shape {tuple(weight.shape)}, expected (*, {in_channels}, 3, 3)")
                if bias.shape != (weight.shape[0],):
                    raise WeightsError(f"{lay.name}.bias has shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
                conv = nn.Conv2d(in_channels, weight.shape[0], 3, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(weight)
                    conv.bias.copy_(bias)
                modules.append(conv)
                in_channels = weight.shape[0]
            elif lay.kind == "relu":
                modules.append(nn.ReLU(inplace=False))
            else:
                # ceil_mode: only pool5 can meet an odd side (the input is continued to a multiple of 16:
                # layers.edge_padding); it keeps the last row/column (layers.feature_side).
                modules.append(nn.MaxPool2d(2, 2, ceil_mode=True) if pooling == "max" else nn.AvgPool2d(2, 2, ceil_mode=True))
        self.net = nn.ModuleList(modules)
        # A ReLU whose convolution output nobody reads may overwrite it: one large tensor fewer to
        # allocate and write per layer (the modules stay non-inplace, for anyone who runs them alone).
        wanted = set(self.layers)
        self._relu_in_place = tuple(
            lay.kind == "relu" and self._plan[i - 1].name not in wanted for i, lay in enumerate(self._plan)
        )

        if preprocessing == "caffe":
            mean = torch.tensor(CAFFE_MEAN_BGR).flip(0) / 255.0  # as RGB in [0, 1]
            self.register_buffer("_mean", mean.view(1, 3, 1, 1), persistent=False)
            self.register_buffer("_scale", torch.full((1, 3, 1, 1), 255.0), persistent=False)
            self.feature_scale = 1.0
        else:
            self.register_buffer("_mean", torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("_scale", 1.0 / torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1), persistent=False)
            self.feature_scale = TORCHVISION_FEATURE_SCALE
        self.requires_grad_(False)
        self.eval()

    @property
    def deepest_layer(self) -> str:
        """The deepest layer the network is built up to (it computes nothing beyond it)."""
        return self._plan[-1].name

    def preprocess(self, image: Tensor) -> Tensor:
        """RGB ``(N, 3, H, W)`` in [0, 1] → the network's own input convention."""
        x = (image - self._mean.to(image.dtype)) * self._scale.to(image.dtype)
        if self.preprocessing == "caffe":
            x = x.flip(1)  # RGB → BGR
        return x

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Activations of :attr:`layers`.

        Args:
            image: ``(N, 3, H, W)`` RGB in [0, 1] (values a little outside are fine). H and W should be
                at least ``2**(number of pools before the deepest layer)``.

        Returns:
            ``{layer name: (N, C, H', W')}`` for every requested layer, ``H' = ceil(H / stride)``
            (:func:`~painterly.layers.feature_side`). The network sees the image reflected past its
            bottom and right edges to a multiple of 16, so that every position up to relu5_x stands on
            a whole pool cell (:func:`~painterly.layers.edge_padding`).
        """
        wanted = set(self.layers)
        out: dict[str, Tensor] = {}
        h, w = image.shape[-2:]
        x = continued(self.preprocess(image))
        padded = tuple(x.shape[-2:]) != (h, w)
        for lay, module, in_place in zip(self._plan, self.net, self._relu_in_place):
            x = torch.relu_(x) if in_place else module(x)
            if lay.name in wanted:
                # Only the positions that stand on the image: those wholly in the padding are dropped.
                f = x[..., : feature_side(h, lay.stride), : feature_side(w, lay.stride)] if padded else x
                out[lay.name] = f * self.feature_scale if self.feature_scale != 1.0 else f
        return out


def continued(x: Tensor) -> Tensor:
    """``x`` ``(N, C, H, W)`` reflected past its bottom and right edges to a multiple of 16, as the
    network sees it (:func:`~painterly.layers.edge_padding`; edge pixels repeated where a side is too
    short to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = edge_padding(h), edge_padding(w)
    if not ph and not pw:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)


def random_state(widths: tuple[int, int, int, int, int] = (8, 16, 32, 32, 32), seed: int = 0) -> dict[str, Tensor]:
    """A random "VGG-shaped" state dict with narrow layers: fast stand-in weights for tests and demos
    of the machinery (not for real results). He-initialised so activations keep a sane scale."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, Tensor] = {}
    in_ch = 3
    for lay in VGG19_LAYERS:
        if lay.kind != "conv":
            continue
        block = int(lay.name[4]) - 1
        out_ch = widths[block]
        std = (2.0 / (in_ch * 9)) ** 0.5
        state[f"{lay.name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=gen) * std
        state[f"{lay.name}.bias"] = torch.randn(out_ch, generator=gen) * 0.01
        in_ch = out_ch
    return state
