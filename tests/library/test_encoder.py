"""The VGG19 feature encoder (painterly.encoder), on the tiny random network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from painterly.encoder import CAFFE_MEAN_BGR, TORCHVISION_FEATURE_SCALE, VGG19Encoder, random_state
from painterly.errors import ConfigError, WeightsError
from painterly.layers import VGG19_LAYERS, layer

WIDTHS = (8, 16, 32, 32, 32)  # random_state()'s default


def name_at(index: int) -> str:
    return VGG19_LAYERS[index].name


def _image(h=32, w=48, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_outputs_exactly_the_requested_layers_with_channels_and_strides(tiny_encoder):
    names = ["relu1_1", "conv2_2", "pool2", "relu3_1", "relu4_2", "relu5_1", "pool5"]
    enc = tiny_encoder(names)
    out = enc(_image(64, 96))
    assert list(out) == names
    for name in names:
        lay = layer(name)
        block = int(name[4]) - 1
        assert out[name].shape == (1, WIDTHS[block], 64 // lay.stride, 96 // lay.stride), name


def test_duplicate_layers_are_read_once(tiny_encoder):
    enc = tiny_encoder(["relu2_1", "relu1_1", "relu2_1"])
    assert enc.layers == ("relu2_1", "relu1_1")
    assert set(enc(_image())) == {"relu1_1", "relu2_1"}


@pytest.mark.parametrize(
    "names, deepest, modules",
    [(["relu1_1"], "relu1_1", 2), (["relu2_1", "relu1_1"], "relu2_1", 7), (["conv3_1"], "conv3_1", 11), (["relu4_2"], "relu4_2", 23), (["pool5"], "pool5", 37)],
)
def test_network_is_cut_after_the_deepest_layer(tiny_encoder, names, deepest, modules):
    enc = tiny_encoder(names)
    assert enc.deepest_layer == deepest
    assert len(enc.net) == modules == layer(deepest).index + 1
    n_convs = sum(isinstance(m, nn.Conv2d) for m in enc.net)
    assert n_convs == sum(1 for i in range(modules) if name_at(i).startswith("conv"))
    # Only the convolutions it uses are built (parameters: weight + bias each).
    assert len(list(enc.parameters())) == 2 * n_convs


def test_frozen_gradient_reaches_only_the_input(tiny_encoder):
    enc = tiny_encoder(["relu1_1", "relu3_1"])
    assert not any(p.requires_grad for p in enc.parameters())
    assert not enc.training
    x = _image().requires_grad_(True)
    out = enc(x)
    (out["relu1_1"].sum() + out["relu3_1"].pow(2).mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())


def test_relus_are_not_inplace_conv_and_relu_both_readable(tiny_encoder):
    enc = tiny_encoder(["conv1_1", "relu1_1", "conv2_1", "relu2_1"])
    assert all(not m.inplace for m in enc.net if isinstance(m, nn.ReLU))
    out = enc(_image())
    for k in ("1_1", "2_1"):
        conv, relu = out["conv" + k], out["relu" + k]
        assert (conv < 0).any(), "a random conv has negative outputs"
        assert not torch.equal(conv, relu)
        assert torch.equal(relu, conv.clamp_min(0))


def test_encoder_is_deterministic_and_layout_independent(tiny_encoder):
    enc = tiny_encoder(["relu1_1", "relu3_1"])
    x = _image()
    a = enc(x)
    b = enc(x.contiguous(memory_format=torch.channels_last))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4, rtol=1e-4)


def test_caffe_preprocessing_of_a_known_pixel(tiny_state):
    enc = VGG19Encoder(tiny_state, "caffe", ["relu1_1"])
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    out = enc.preprocess(red).flatten()
    b, g, r = CAFFE_MEAN_BGR
    # RGB (1, 0, 0) → BGR (0, 0, 255) minus the mean pixel.
    assert torch.allclose(out, torch.tensor([0.0 - b, 0.0 - g, 255.0 - r]), atol=1e-4)
    grey = torch.full((1, 3, 1, 1), 0.5)
    assert torch.allclose(enc.preprocess(grey).flatten(), torch.tensor([127.5 - b, 127.5 - g, 127.5 - r]), atol=1e-4)
    assert enc.feature_scale == 1.0


def test_torchvision_preprocessing_and_feature_scale(tiny_state):
    enc = VGG19Encoder(tiny_state, "torchvision", ["conv1_1"])
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    expected = torch.tensor([(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225])
    assert torch.allclose(enc.preprocess(red).flatten(), expected, atol=1e-5)
    # Outputs are multiplied by the scale that brings them near Caffe's range.
    x = _image()
    conv = enc.net[0]
    with torch.no_grad():
        raw = conv(enc.preprocess(x))
    assert torch.allclose(enc(x)["conv1_1"], raw * TORCHVISION_FEATURE_SCALE, rtol=1e-5, atol=1e-3)


def test_weights_are_copied_into_the_network(tiny_state):
    enc = VGG19Encoder(tiny_state, "caffe", ["relu1_2"])
    assert torch.equal(enc.net[0].weight, tiny_state["conv1_1.weight"])
    assert torch.equal(enc.net[2].bias, tiny_state["conv1_2.bias"])
    tiny_state["conv1_1.weight"].zero_()  # the caller's tensors are not aliased
    assert enc.net[0].weight.abs().sum() > 0


def test_avg_and_max_pooling_differ(tiny_state):
    x = _image()
    mx = VGG19Encoder(tiny_state, "caffe", ["relu2_1", "pool2"], pooling="max")
    avg = VGG19Encoder(tiny_state, "caffe", ["relu2_1", "pool2"], pooling="avg")
    assert isinstance(mx.net[4], nn.MaxPool2d) and isinstance(avg.net[4], nn.AvgPool2d)
    a, b = mx(x), avg(x)
    assert a["pool2"].shape == b["pool2"].shape
    assert not torch.allclose(a["relu2_1"], b["relu2_1"])
    # On the same input (relu1_2 is before any pool) the max of a window is never below its mean.
    mx1 = VGG19Encoder(tiny_state, "caffe", ["relu1_2", "pool1"], pooling="max")(x)
    avg1 = VGG19Encoder(tiny_state, "caffe", ["relu1_2", "pool1"], pooling="avg")(x)
    assert torch.equal(mx1["relu1_2"], avg1["relu1_2"])
    assert (mx1["pool1"] >= avg1["pool1"] - 1e-4).all() and (mx1["pool1"] > avg1["pool1"] + 1e-3).any()


def test_missing_layer_in_weights_is_a_weights_error(tiny_state):
    partial = {k: v for k, v in tiny_state.items() if k.split(".")[0] in ("conv1_1", "conv1_2", "conv2_1", "conv2_2")}
    VGG19Encoder(partial, "caffe", ["relu2_2"])  # deep enough: fine
    with pytest.raises(WeightsError, match="conv3_1"):
        VGG19Encoder(partial, "caffe", ["relu1_1", "relu3_1"])


def test_badly_shaped_weights_are_a_weights_error(tiny_state):
    bad = dict(tiny_state)
    bad["conv1_2.weight"] = torch.zeros(8, 8, 5, 5)
    with pytest.raises(WeightsError, match="conv1_2.weight"):
        VGG19Encoder(bad, "caffe", ["relu1_2"])
    bad = dict(tiny_state)
    bad["conv1_1.bias"] = torch.zeros(3)
    with pytest.raises(WeightsError, match="conv1_1.bias"):
        VGG19Encoder(bad, "caffe", ["relu1_1"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layers": []}, "at least one layer"),
        ({"layers": ["relu9_1"]}, "valid layers"),
        ({"layers": ["relu1_1"], "preprocessing": "bgr"}, "preprocessing"),
        ({"layers": ["relu1_1"], "pooling": "min"}, "pooling"),
    ],
)
def test_bad_arguments_are_config_errors(tiny_state, kwargs, message):
    args = {"preprocessing": "caffe", **kwargs}
    with pytest.raises(ConfigError, match=message):
        VGG19Encoder(tiny_state, **args)


def test_random_state_shapes_and_determinism():
    a, b = random_state(seed=3), random_state(seed=3)
    assert a.keys() == b.keys() and len(a) == 32
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(random_state(seed=4)["conv1_1.weight"], a["conv1_1.weight"])
    wide = random_state((4, 4, 4, 4, 6))
    assert wide["conv5_4.weight"].shape == (6, 6, 3, 3)
    assert wide["conv5_1.weight"].shape == (6, 4, 3, 3)


def test_the_network_sees_the_image_reflected_to_a_multiple_of_16() -> None:
    """A side that is no multiple of 16 is continued by its mirror image past the bottom and right
    edges, and each map cropped back to ceil(side / stride) positions: every position up to relu5_1
    stands on a whole pool cell. (With the partial cells kept as they were, the last rows of such a
    picture came out as a band of coloured specks: docs/quality.md.)"""
    from painterly.layers import feature_side

    names = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    enc = VGG19Encoder(random_state(), "caffe", names).double()
    x = torch.rand(1, 3, 34, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = enc(x)
    whole = enc(torch.nn.functional.pad(x, (0, 14, 0, 14), mode="reflect"))  # 48 x 64: nothing to continue
    for n in names:
        s = layer(n).stride
        assert out[n].shape[-2:] == (feature_side(34, s), feature_side(50, s))
        assert torch.equal(out[n], whole[n][..., : feature_side(34, s), : feature_side(50, s)]), n
    # A side of 16's multiples is read as it is (the bits of before).
    y = x[..., :32, :48]
    plain = enc(y)
    assert all(plain[n].shape[-2:] == (32 // layer(n).stride or 1, 48 // layer(n).stride) for n in names)


def test_a_layers_features_do_not_depend_on_the_deeper_layers_read() -> None:
    x = torch.rand(1, 3, 21, 37, generator=torch.Generator().manual_seed(1))
    shallow = VGG19Encoder(random_state(), "caffe", ("relu1_1",))(x)["relu1_1"]
    deep = VGG19Encoder(random_state(), "caffe", ("relu1_1", "relu5_1"))(x)["relu1_1"]
    assert torch.equal(shallow, deep)


def test_a_side_too_short_to_reflect_repeats_its_edge() -> None:
    """8 px cannot be reflected by 8 more (reflection needs a longer side): the edge row is repeated."""
    enc = VGG19Encoder(random_state(), "caffe", ("relu1_1", "relu4_1"))
    out = enc(torch.rand(1, 3, 8, 40, generator=torch.Generator().manual_seed(2)))
    assert out["relu1_1"].shape[-2:] == (8, 40) and out["relu4_1"].shape[-2:] == (1, 5)
