"""The one map of VGG19 layer names (painterly.layers)."""

from __future__ import annotations

import pytest

from painterly import layers as L

# torchvision's vgg19().features is built from configuration "E" by make_layers(): each number is a
# 3x3 convolution followed by a ReLU, each "M" a 2x2 max pool. Rebuilding that list here checks our
# names against torchvision's indexing without needing torchvision installed.
_CFG_E = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def _torchvision_features() -> list[tuple[str, int]]:
    """(kind, output channels) for each module of torchvision's vgg19().features, in order."""
    out: list[tuple[str, int]] = []
    ch = 3
    for v in _CFG_E:
        if v == "M":
            out.append(("pool", ch))
        else:
            ch = int(v)
            out += [("conv", ch), ("relu", ch)]
    return out


def test_there_are_37_layers_16_convolutions():
    assert len(L.VGG19_LAYERS) == 37
    assert len(L.LAYER_NAMES) == len(set(L.LAYER_NAMES)) == 37
    assert len(L.CONV_LAYERS) == 16
    assert [lay.index for lay in L.VGG19_LAYERS] == list(range(37))


def test_kinds_and_channels_follow_torchvision_features():
    tv = _torchvision_features()
    assert len(tv) == 37
    assert [(lay.kind, lay.channels) for lay in L.VGG19_LAYERS] == tv


@pytest.mark.parametrize(
    "name, index",
    [
        ("conv1_1", 0), ("relu1_1", 1), ("conv1_2", 2), ("relu1_2", 3), ("pool1", 4),
        ("conv2_1", 5), ("relu2_1", 6), ("pool2", 9), ("conv3_1", 10), ("relu3_1", 11),
        ("relu4_1", 20), ("relu4_2", 22), ("pool4", 27), ("relu5_1", 29),
        ("conv5_4", 34), ("relu5_4", 35), ("pool5", 36),
    ],
)
def test_names_map_to_torchvision_indices(name, index):
    assert L.layer(name).index == index
    assert L.VGG19_LAYERS[index].name == name


def test_naming_pattern_and_block_structure():
    expected = []
    for block, n in enumerate((2, 2, 4, 4, 4), start=1):
        for k in range(1, n + 1):
            expected += [f"conv{block}_{k}", f"relu{block}_{k}"]
        expected.append(f"pool{block}")
    assert list(L.LAYER_NAMES) == expected


def test_in_channels_and_strides():
    assert L.layer("conv1_1").in_channels == 3
    assert L.layer("conv2_1").in_channels == 64
    assert L.layer("conv3_1").in_channels == 128
    assert L.layer("conv5_1").in_channels == 512
    # The stride is the downsampling of the layer's *output*: a pool halves, the convs after it see that.
    assert L.layer("relu1_1").stride == 1
    assert L.layer("pool1").stride == 2
    assert L.layer("relu2_1").stride == 2
    assert L.layer("relu3_1").stride == 4
    assert L.layer("relu4_2").stride == 8
    assert L.layer("relu5_1").stride == 16
    assert L.layer("pool5").stride == 32
    for lay in L.VGG19_LAYERS:
        if lay.kind == "relu":
            conv = L.VGG19_LAYERS[lay.index - 1]
            assert conv.kind == "conv" and conv.name == "conv" + lay.name[4:]
            assert (conv.channels, conv.stride) == (lay.channels, lay.stride)


def test_torchvision_keys():
    assert L.torchvision_key("conv1_1", "weight") == "features.0.weight"
    assert L.torchvision_key("conv3_2", "bias") == "features.12.bias"
    assert L.torchvision_key("conv5_4", "weight") == "features.34.weight"
    with pytest.raises(ValueError, match="not a convolution"):
        L.torchvision_key("relu1_1", "weight")


@pytest.mark.parametrize(
    "name, keras",
    [("conv1_1", "block1_conv1"), ("conv3_2", "block3_conv2"), ("conv4_4", "block4_conv4"), ("conv5_4", "block5_conv4")],
)
def test_keras_names(name, keras):
    assert L.keras_name(name) == keras


def test_keras_name_of_non_conv_is_an_error():
    with pytest.raises(ValueError, match="not a convolution"):
        L.keras_name("pool3")


def test_every_conv_has_a_unique_keras_name():
    names = [L.keras_name(lay.name) for lay in L.CONV_LAYERS]
    assert len(set(names)) == 16


def test_deepest():
    assert L.deepest(["relu1_1", "relu4_2", "relu3_1"]).name == "relu4_2"
    assert L.deepest(["relu5_1", "pool5"]).name == "pool5"
    assert L.deepest(["conv2_1"]).name == "conv2_1"
    # Generators are fine too.
    assert L.deepest(n for n in ("relu2_1", "relu1_1")).name == "relu2_1"


def test_deepest_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        L.deepest([])


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as info:
        L.layer("relu6_1")
    message = info.value.args[0]
    assert "relu6_1" in message
    for name in L.LAYER_NAMES:
        assert name in message
    with pytest.raises(KeyError, match="valid layers"):
        L.deepest(["relu1_1", "conv9_9"])


def test_is_layer():
    assert L.is_layer("relu4_2")
    assert not L.is_layer("relu4_5")
    assert not L.is_layer("")
