"""Command-line options built from the :class:`~painterly.config.Config` fields.

The config is the only home of defaults and help texts; this module turns each field into an
``argparse`` option (``style_weight`` → ``--style-weight``). Options the user does not give are left
out of the parsed namespace (``SUPPRESS``), so that a mode's own defaults (texture: no content loss)
apply unless overridden.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from typing import Any, Iterable, Mapping

from ..config import Config
from ..errors import shown
from .outputs import OutputOptions

# Fields that belong together in --help, in this order (Config fields and OutputOptions fields).
GROUPS: dict[str, tuple[str, ...]] = {
    "inputs and outputs": (
        "size", "init", "init_noise", "init_colors", "original_colors", "color_contrast", "style_blend",
        "regions", "mask_propagation", "save_every", "log", "plot", "checkpoint_every",
    ),
    "strength": ("content_weight", "style_weight", "tv_weight", "laplacian_weight", "style_scale"),
    "layers and losses": ("content_loss", "style_loss", "laplacian_pools", "content_layers", "style_layers", "style_layer_weights", "weights", "pooling"),
    "optimiser": ("optimizer", "iterations", "learning_rate", "lr_decay", "lr_decay_steps", "lbfgs_history", "lbfgs_precondition", "average", "seed"),
    "multi-scale": ("multiscale", "min_size", "level_iterations", "keep_detail"),
    "performance": ("precision", "device", "tile", "cuda_graphs"),
    "safety": ("max_pixels",),
}
IO = "inputs and outputs"
"""The group the command's own -o/--output and --quiet join."""


def _number(kind: type, flag: str):
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects {'an integer' if kind is int else 'a number'}, got {shown(text)}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{flag} must be a finite number, got {shown(text)}")
        return value

    return parse


def _default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


def _add_field(group: argparse._ArgumentGroup, f: dataclasses.Field, default: Any, own_help: str | None = "") -> None:
    """``own_help``: the command's own help text ("": the field's; ``None``: hidden from --help)."""
    meta = dict(f.metadata)
    flag = "--" + f.name.replace("_", "-")
    help_text = own_help or meta["help"]
    if own_help is None:
        help_text = argparse.SUPPRESS
    elif "default: " not in help_text:  # a help that says its default in words keeps them
        help_text += f" (default: {_default_text(default)})"
    hint = typing.get_type_hints(Config if f.name in Config.__dataclass_fields__ else OutputOptions)[f.name]
    # A tuple field (tuple[int, ...]) is read as text by Config, whatever its items; an optional one's base is its non-None type.
    origin = (hint,) if typing.get_origin(hint) is tuple else (typing.get_args(hint) or (hint,))
    base = next((t for t in origin if t is not type(None)), hint)
    kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
    if "metavar" in meta:
        kwargs["metavar"] = meta["metavar"]
    if base is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    if "choices" in meta:
        kwargs["choices"] = meta["choices"]
    if f.name == "init":
        # The command line takes the image itself by its path (the library takes it as init=).
        kwargs["help"] = f"starting image: noise, content, style or the path of an image (default: {_default_text(default)})"
    if f.name == "regions":
        # Given once per colour: --region red=1 --region blue=2 (the field holds them all).
        kwargs.update(action="append", help=help_text.replace(" (default: none)", " (with --mask)"))
        group.add_argument("--region", **kwargs)
        return
    if f.name == "original_colors":
        # `--original-colors` alone means the classic luminance-only transfer.
        kwargs.update(nargs="?", const="luminance")
    if base is int:
        kwargs["type"] = _number(int, flag)
    elif base is float:
        kwargs["type"] = _number(float, flag)
    group.add_argument(flag, **kwargs)


def option_groups(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """The --help groups of GROUPS, created on ``parser`` in their order."""
    return {title: parser.add_argument_group(title) for title in GROUPS}


def add_config_options(
    parser: argparse.ArgumentParser,
    mode: str,
    skip: Iterable[str] = (),
    groups: dict[str, argparse._ArgumentGroup] | None = None,
    helps: Mapping[str, str | None] | None = None,
) -> None:
    """Add every Config and OutputOptions field as an option, grouped (into ``groups`` when given),
    with the mode's defaults in the help. ``helps``: a command's own help for a field (``None``:
    the option is taken but left out of --help)."""
    defaults = Config.for_mode(mode)
    outputs = OutputOptions()
    fields = {f.name: f for f in dataclasses.fields(Config)}
    fields.update({f.name: f for f in dataclasses.fields(OutputOptions)})

    def default(name: str) -> Any:
        return getattr(defaults if name in Config.__dataclass_fields__ else outputs, name)

    groups = groups if groups is not None else option_groups(parser)
    helps = helps or {}
    skip = set(skip)
    placed: set[str] = set()
    for title, names in GROUPS.items():
        for name in names:
            if name in skip or name not in fields:
                continue
            _add_field(groups[title], fields[name], default(name), helps.get(name, ""))
            placed.add(name)
    leftover = [n for n in fields if n not in placed and n not in skip]
    if leftover:  # a new field nobody grouped still gets an option
        group = parser.add_argument_group("other")
        for name in leftover:
            _add_field(group, fields[name], default(name), helps.get(name, ""))


def config_options(ns: argparse.Namespace) -> dict[str, Any]:
    """The Config fields the user gave on the command line."""
    names = {f.name for f in dataclasses.fields(Config)}
    return {k: v for k, v in vars(ns).items() if k in names}


def output_options(ns: argparse.Namespace) -> OutputOptions:
    names = {f.name for f in dataclasses.fields(OutputOptions)}
    return OutputOptions(**{k: v for k, v in vars(ns).items() if k in names})
