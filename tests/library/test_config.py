"""Run configuration (painterly.config): defaults, validation messages, modes, parsing."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from painterly.cli import flag as cli_flag
from painterly.cli.outputs import OutputOptions
from painterly.config import DEFAULT_LEARNING_RATES, MODE_DEFAULTS, Config
from painterly.errors import ConfigError
from painterly.layers import LAYER_NAMES


def test_defaults_are_valid_and_as_documented():
    cfg = Config()
    assert cfg.size == 512 and cfg.iterations == 500
    assert cfg.content_layers == ("relu4_2",)
    assert cfg.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert cfg.optimizer == "lbfgs" and cfg.lr == 1.0
    assert cfg.weights == "caffe" and cfg.init == "content" and cfg.original_colors == "off"
    assert cfg.uses_content and cfg.uses_style
    assert cfg.layers_needed == ("relu4_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def test_every_field_has_help_text():
    for f in dataclasses.fields(Config) + dataclasses.fields(OutputOptions):
        assert f.metadata.get("help"), f.name


@pytest.mark.parametrize(
    "options, flag",
    [
        ({"size": 0}, "--size"),
        ({"size": -5}, "--size"),
        ({"size": 12.5}, "--size"),
        ({"size": "big"}, "--size"),
        ({"iterations": 0}, "--iterations"),
        ({"max_pixels": 0}, "--max-pixels"),
        ({"min_size": 8}, "--min-size"),
        ({"lbfgs_history": 0}, "--lbfgs-history"),
        ({"lbfgs_precondition": -0.5}, "--lbfgs-precondition"),
        ({"lbfgs_precondition": math.nan}, "--lbfgs-precondition"),
        ({"lr_decay_steps": 0}, "--lr-decay-steps"),
        ({"content_weight": -1.0}, "--content-weight"),
        ({"style_weight": -1e-9}, "--style-weight"),
        ({"tv_weight": -3}, "--tv-weight"),
        ({"content_weight": math.nan}, "--content-weight"),
        ({"style_weight": math.inf}, "--style-weight"),
        ({"tv_weight": math.nan}, "--tv-weight"),
        ({"style_scale": 0}, "--style-scale"),
        ({"style_scale": math.nan}, "--style-scale"),
        ({"learning_rate": 0}, "--learning-rate"),
        ({"learning_rate": -0.1}, "--learning-rate"),
        ({"learning_rate": math.nan}, "--learning-rate"),
        ({"lr_decay": 0}, "--lr-decay"),
        ({"lr_decay": 1.5}, "--lr-decay"),
        ({"init_noise": -0.1}, "--init-noise"),
        ({"init_noise": 1.1}, "--init-noise"),
        ({"seed": -1}, "--seed"),
        ({"seed": 1.5}, "--seed"),
        ({"seed": True}, "--seed"),
        ({"pooling": "min"}, "--pooling"),
        ({"content_loss": "l1"}, "--content-loss"),
        ({"optimizer": "rmsprop"}, "--optimizer"),
        ({"original_colors": "yes"}, "--original-colors"),
        ({"precision": "fp16"}, "--precision"),
        ({"device": "tpu"}, "--device"),
        ({"content_layers": ("relu4_2", "relu4_2")}, "--content-layers"),
        ({"style_layers": "relu1_1,relu1_1"}, "--style-layers"),
        ({"style_layer_weights": (1, 2)}, "--style-layer-weights"),
        ({"style_layer_weights": (1, 1, 1, 1, math.nan)}, "--style-layer-weights"),
        ({"style_layer_weights": (1, 1, -1, 1, 1)}, "--style-layer-weights"),
        ({"style_layer_weights": (0, 0, 0, 0, 0)}, "--style-layer-weights"),
        ({"style_blend": (0, 0)}, "--style-blend"),
        ({"style_blend": (1, -1)}, "--style-blend"),
        ({"style_blend": (1, math.inf)}, "--style-blend"),
        ({"style_blend": "a,b"}, "--style-blend"),
        ({"style_blend": 3}, "--style-blend"),
        ({"level_iterations": (10, -1)}, "--level-iterations"),
        ({"level_iterations": (0, 0)}, "--level-iterations"),
        ({"level_iterations": (1.5, 2)}, "--level-iterations"),
        ({"init": ""}, "--init"),
        ({"multiscale": "false"}, "--multiscale"),
        ({"keep_detail": "false"}, "--keep-detail"),
        ({"cuda_graphs": "false"}, "--cuda-graphs"),
        ({"init_colors": "painting"}, "--init-colors"),
        ({"weights": ""}, "--weights"),
        ({"content_layers": ()}, "--content-layers"),
        ({"style_layers": ()}, "--style-layers"),
        ({"content_weight": 0, "style_weight": 0, "tv_weight": 0}, "--content-weight"),
    ],
)
def test_bad_values_name_their_flag(options, flag):
    with pytest.raises(ConfigError) as info:
        Config(**options)
    # The library names the field; the command line renders it as its flag.
    message = info.value.render(cli_flag)
    assert flag in message
    assert flag in [cli_flag(f) for f in info.value.fields]
    assert "\n" not in message


@pytest.mark.parametrize(
    "make",
    [
        lambda v: Config(style_weight=v),
        lambda v: Config(device=v),
        lambda v: Config(precision=v),
        lambda v: OutputOptions(save_every=v),
        lambda v: OutputOptions(plot=v),
    ],
)
def test_a_huge_bad_value_is_echoed_cut_short(make):
    """A value the user sent (a 100 KB form field, a pasted blob) comes back clipped, not whole."""
    with pytest.raises(ConfigError) as info:
        make("x" * 100_000)
    assert "xxxxxxxxxx" in str(info.value) and len(str(info.value)) < 250


def test_all_zero_loss_weights_names_all_three():
    with pytest.raises(ConfigError, match="nothing to optimise") as info:
        Config(content_weight=0, style_weight=0, tv_weight=0)
    for flag in ("--content-weight", "--style-weight", "--tv-weight"):
        assert flag in info.value.render(cli_flag)


@pytest.mark.parametrize("field", ["content_layers", "style_layers"])
def test_unknown_layer_lists_the_valid_ones(field):
    with pytest.raises(ConfigError) as info:
        Config(**{field: ("relu1_1", "relu6_6")})
    message = info.value.render(cli_flag)
    assert "--" + field.replace("_", "-") in message and "relu6_6" in message
    assert all(name in message for name in LAYER_NAMES)


def test_style_layer_weights_length_mismatch_says_both_counts():
    with pytest.raises(ConfigError, match="2 values for 5 style layers"):
        Config(style_layer_weights=(1.0, 2.0))


def test_config_errors_are_value_errors_with_exit_code_2():
    with pytest.raises(ValueError) as info:
        Config(size=0)
    assert info.value.exit_code == 2


def test_from_mapping_accepts_cli_and_field_spellings():
    cfg = Config.from_mapping({"style-weight": 3, "content_weight": 2, "style-layers": "relu1_1, relu2_1"})
    assert cfg.style_weight == 3.0 and isinstance(cfg.style_weight, float)
    assert cfg.content_weight == 2.0
    assert cfg.style_layers == ("relu1_1", "relu2_1")


def test_from_mapping_rejects_unknown_options():
    with pytest.raises(ConfigError, match="unknown option 'stlye_weight'"):
        Config.from_mapping({"stlye_weight": 3})
    with pytest.raises(ConfigError, match="unknown option 'no-such-flag'"):
        Config.from_mapping({"no-such-flag": 1})


def test_replace_validates_and_rejects_unknown_options():
    cfg = Config(size=256)
    assert cfg.replace(size=128).size == 128
    assert cfg.replace(**{"style-weight": 7}).style_weight == 7.0
    with pytest.raises(ConfigError, match="^size must be at least 1"):
        cfg.replace(size=0)
    with pytest.raises(ConfigError, match="unknown option 'sise'"):
        cfg.replace(sise=128)


def test_comma_strings_and_lists_are_parsed():
    cfg = Config(
        content_layers="relu3_1,relu4_2",
        style_layers=["relu1_1", "relu2_1"],
        style_layer_weights="0.5, 2",
        style_blend="3,7",
        level_iterations="10,20,30",
    )
    assert cfg.content_layers == ("relu3_1", "relu4_2")
    assert cfg.style_layers == ("relu1_1", "relu2_1")
    assert cfg.style_layer_weights == (0.5, 2.0)
    assert cfg.style_blend == (3.0, 7.0)
    assert cfg.level_iterations == (10, 20, 30)
    assert all(isinstance(v, int) for v in cfg.level_iterations)
    # Whole floats are accepted for integer lists and fields (JSON numbers).
    assert Config(level_iterations=[5.0, 6]).level_iterations == (5, 6)
    assert Config(size=256.0).size == 256 and isinstance(Config(size=256.0).size, int)


def test_empty_string_lists_are_empty_tuples():
    cfg = Config(content_weight=0, content_layers="")
    assert cfg.content_layers == ()
    assert not cfg.uses_content
    assert cfg.layers_needed == cfg.style_layers


def test_learning_rate_defaults_per_optimizer():
    for name, lr in DEFAULT_LEARNING_RATES.items():
        assert Config(optimizer=name).lr == lr
    assert Config(optimizer="adam", learning_rate=0.5).lr == 0.5


@pytest.mark.parametrize("mode", ["stylize", "texture", "reconstruct"])
def test_every_mode_default_is_valid(mode):
    assert isinstance(Config.for_mode(mode), Config)


def test_texture_mode_defaults():
    cfg = Config.for_mode("texture")
    assert cfg.content_weight == 0 and cfg.content_layers == () and cfg.init == "noise"
    assert not cfg.uses_content and cfg.uses_style
    assert cfg.layers_needed == Config().style_layers
    assert cfg.style_weight == Config().style_weight


def test_reconstruct_mode_defaults():
    cfg = Config.for_mode("reconstruct", content_layers="relu2_1")
    assert cfg.style_weight == 0 and cfg.style_layers == () and cfg.init == "noise" and cfg.tv_weight == 0
    assert cfg.uses_content and not cfg.uses_style
    assert cfg.layers_needed == ("relu2_1",)


def test_mode_defaults_yield_to_user_options():
    cfg = Config.for_mode("texture", init="content", **{"tv-weight": 5})
    assert cfg.init == "content" and cfg.tv_weight == 5.0
    assert Config.for_mode("stylize") == Config()
    assert set(MODE_DEFAULTS) == {"stylize", "texture", "reconstruct", "demo"}


def test_demo_mode_runs_the_built_in_photo_at_its_own_size():
    from PIL import Image

    from painterly.demo import demo_images

    content, _ = demo_images()
    with Image.open(content) as im:
        assert Config.for_mode("demo").size == max(im.size)  # never upscaled
    assert Config.for_mode("demo").iterations < Config().iterations
    assert Config.for_mode("demo", iterations=500).iterations == 500


def test_unknown_mode():
    with pytest.raises(ConfigError, match="unknown mode 'paint'"):
        Config.for_mode("paint")


def test_to_dict_round_trips_through_json():
    cfg = Config(size=300, style_blend=(1, 2), level_iterations=(3, 4), seed=7, style_layer_weights=(1, 1, 1, 1, 2))
    data = json.loads(json.dumps(cfg.to_dict()))
    assert Config.from_mapping(data) == cfg
    assert set(data) == {f.name for f in dataclasses.fields(Config)}


def test_config_is_frozen_and_hashable():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.size = 3  # type: ignore[misc]
    assert hash(cfg) == hash(Config())


@pytest.mark.parametrize("field", ["save_every", "checkpoint_every"])
@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_output_options_validation(field, value):
    with pytest.raises(ConfigError) as info:
        OutputOptions(**{field: value})
    assert info.value.render(cli_flag).startswith("--" + field.replace("_", "-"))


def test_output_options_defaults():
    out = OutputOptions()
    assert out.save_every == 0 and out.checkpoint_every == 0 and out.log is None


@pytest.mark.parametrize(
    "options, field",
    [
        (dict(multiscale=False, level_iterations=(3, 4)), "level_iterations"),
        (dict(min_size=512, size=256), "min_size"),
        (dict(optimizer="adam", lbfgs_history=5), "lbfgs_history"),
        (dict(optimizer="lbfgs", lr_decay=0.5), "lr_decay"),
        (dict(optimizer="sgd", lbfgs_precondition=2.0), "lbfgs_precondition"),
        (dict(init="noise", init_noise=0.5), "init_noise"),
    ],
)
def test_options_without_effect_are_noted_not_silent(options, field):
    """Issue 12 (item 10): contradictory options keep their defined meaning but are reported, naming
    the field; a consistent config gets no note."""
    from painterly.engine.inputs import ineffective_options

    notes = ineffective_options(Config(**options))
    assert len(notes) == 1 and f"`{field}`" in notes[0], notes
    assert ineffective_options(Config()) == []
    assert ineffective_options(Config(optimizer="adam", size=64, level_iterations=(2, 2))) == []
    # A mode's own defaults (reconstruct: noise init, no preconditioner) are not the user's contradiction.
    assert ineffective_options(Config.for_mode("reconstruct", optimizer="adam")) == []
    assert ineffective_options(Config.for_mode("texture", optimizer="sgd")) == []


def test_a_warning_names_its_fields_as_an_error_does(images):
    """str() shows the library's plain names; a face renders them (the CLI: as flags); pickling keeps them."""
    import pickle

    from painterly.engine import load_inputs
    from painterly.errors import PainterlyWarning

    config = Config(optimizer="adam", lbfgs_history=5, size=32, multiscale=False, device="cpu")
    with pytest.warns(PainterlyWarning) as caught:
        load_inputs(config, images.content_t, [images.style_t])
    (warning,) = [w.message for w in caught if "lbfgs" in str(w.message)]
    assert str(warning) == "lbfgs_history has no effect with optimizer adam"
    assert warning.render(cli_flag) == "--lbfgs-history has no effect with --optimizer adam"
    assert warning.fields == ("lbfgs_history", "optimizer")
    assert pickle.loads(pickle.dumps(warning)).render(cli_flag) == warning.render(cli_flag)
