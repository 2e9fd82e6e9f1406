"""A request's ``options`` (JSON, the CLI's option names) → a validated :class:`Config`.

The names are the CLI's (``style-weight``) or the fields' (``style_weight``); values are checked by
:class:`Config` itself, so the studio, the CLI and the Python API agree on what is valid. On top of
that:

* nothing in a request may name a file on the server: ``weights`` is ``caffe`` or ``torchvision``
  only (the server's own default may be a path), and ``init`` is ``noise``, ``content`` or ``style``
  (a previous result is chosen by its job id, ``init_job``);
* every size the server would compute is capped (the output's, the first level's and the styles',
  ``size × style_scale``), and so is a job's whole image area (:func:`check_budget`);
* a job this server cannot run (a device it does not have, a seed the generator refuses) is refused
  at once, not failed later. Every refusal is one line that starts with the field's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..config import INITS, Config
from ..errors import ConfigError, PainterlyWarning, shown
from ..weights import PREPROCESSINGS

SERVER_ONLY = ("max_pixels",)
"""Options a request may not set: the server's own limits apply to uploads."""


MAX_OPTIONS_DEPTH = 8
"""Options are flat (a few short lists): anything nested deeper is not a real request."""


@dataclass(frozen=True)
class Limits:
    """What one job may ask of this server."""

    max_size: int = 2048
    """Longest side of any image computed: the output, the first level, each style (size × style_scale).
    A server started without explicit limits offers what fits its memory (:mod:`~painterly.web.capacity`)."""
    max_iterations: int = 5000
    max_styles: int = 8
    max_total_pixels: int = 4 * 2048 * 2048
    """Output pixels plus every style's pixels (``size² × (1 + styles × style_scale²)``)."""
    max_lbfgs_history: int = 100
    """A bound on the request only: the engine remembers fewer steps where memory asks (at least 10;
    engine/memory.py), and the largest size is computed with the history it would choose."""


def field_name(key: object) -> str:
    """The Config field a request's option key names: ``style-weight`` and ``style_weight`` alike."""
    return str(key).replace("-", "_")


def read_options(request: Any, text: str | None) -> dict[str, Any]:
    """:func:`parse_options`, remembering on ``request.state.option_keys`` how the request spelled each
    option (field → its key), so that errors and notes name it so."""
    requested = parse_options(text)
    request.state.option_keys = {field_name(k): str(k) for k in requested}
    return requested


def parse_options(text: str | None) -> dict[str, Any]:
    """The ``options`` form field: a JSON object (empty when absent)."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ConfigError("options: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"options: not valid JSON ({exc.msg} at position {exc.pos})") from None
    except ValueError as exc:  # NaN/Infinity, or a number with thousands of digits
        raise ConfigError(f"options: not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(value, dict):
        raise ConfigError("options must be a JSON object, e.g. {\"size\": 256, \"iterations\": 100}")
    for name, item in value.items():
        if _depth(item) > MAX_OPTIONS_DEPTH:
            raise ConfigError(f"options: {shown(name)} is nested too deeply")
    return value


def planned_iterations(config: Config) -> int:
    """The iterations a run of ``config`` makes in all (its levels' own counts, when it gives them)."""
    return sum(config.level_iterations) if config.level_iterations else config.iterations


def build_config(requested: Mapping[str, Any], defaults: Mapping[str, Any], limits: Limits) -> Config:
    """The server's defaults overridden by the request's options, checked against ``limits``."""
    normal = {field_name(k): v for k, v in requested.items()}
    for name in SERVER_ONLY:
        if name in normal:
            raise ConfigError(f"`{name}` is set by the server, not by a request")
    weights = normal.get("weights")
    if weights is not None and weights not in PREPROCESSINGS:
        raise ConfigError("`weights` must be caffe or torchvision (a file on the server cannot be chosen from a request)")
    init = normal.get("init")
    if init is not None and init not in INITS:
        raise ConfigError("`init` must be noise, content or style; to start from a previous result, send init_job")
    size = normal.get("size")
    if isinstance(size, (int, float)) and not isinstance(size, bool) and size > limits.max_size:
        # Before Config's own bound: this server's limit is the one that matters to the request.
        raise ConfigError(f"`size` must be at most {limits.max_size} on this server, got {shown(size)}")
    base = {field_name(k): v for k, v in defaults.items()}
    config = _config(base, normal)
    if config.size > limits.max_size:
        raise ConfigError(f"`size` must be at most {limits.max_size} on this server, got {config.size}")
    if config.multiscale and config.min_size > limits.max_size:
        raise ConfigError(f"`min_size` must be at most {limits.max_size} on this server, got {config.min_size}")
    style_side = config.size * config.style_scale
    if style_side > limits.max_size:
        raise ConfigError(
            f"`style_scale`: the styles would be computed at {style_side:g} px (`size` × `style_scale`);"
            f" at most {limits.max_size} on this server"
        )
    total = planned_iterations(config)
    if total > limits.max_iterations:
        raise ConfigError(f"`iterations` must be at most {limits.max_iterations} on this server, got {total}")
    if config.optimizer == "lbfgs" and config.lbfgs_history > limits.max_lbfgs_history:
        raise ConfigError(f"`lbfgs_history` must be at most {limits.max_lbfgs_history} on this server, got {config.lbfgs_history}")
    _check_runnable(config)
    return config


def check_budget(config: Config, styles: int, limits: Limits) -> None:
    """Refuse a job whose images hold more pixels in all than ``limits.max_total_pixels``."""
    total = config.size**2 * (1 + styles * config.style_scale**2)
    if total > limits.max_total_pixels:
        raise ConfigError(
            f"`size`: {config.size} px with {styles} style image(s) at `style_scale` {config.style_scale:g} is"
            f" {total / 1e6:.3g} megapixels in all; at most {limits.max_total_pixels / 1e6:.3g} on this server"
            " (lower size, style_scale or the number of styles)"
        )


def notes_as_sent(notes: Sequence[str], option_keys: Mapping[str, str]) -> list[str]:
    """The library's notes on a job's inputs (:attr:`painterly.engine.Inputs.notes`) naming each
    option as the request spelled it (``option_keys``: field → the request's key), as its errors do."""
    return [PainterlyWarning(note).render(lambda name: option_keys.get(name, name)) for note in notes]


def public_options(config: Config, init_job: str | None = None) -> dict[str, Any]:
    """The settings of a run as shown to users: server paths are not theirs to see, and a start from a
    previous result shows as ``job:<id>``."""
    data = config.to_dict()
    if init_job is not None:
        data["init"] = f"job:{init_job}"
    if data["weights"] not in PREPROCESSINGS:
        data["weights"] = "server"
    data.pop("max_pixels", None)
    return data


def _config(base: dict[str, Any], normal: dict[str, Any]) -> Config:
    """``Config.for_mode``; a value of a type Config does not expect is a ConfigError naming it."""
    try:
        return Config.for_mode("stylize", **{**base, **normal})
    except ConfigError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError, KeyError) as exc:
        for name, value in normal.items():  # which option was it?
            try:
                Config.for_mode("stylize", **{**base, name: value})
            except Exception:
                raise ConfigError(f"`{name}`: {shown(value)} is not a valid value") from None
        raise ConfigError(f"options: cannot be combined ({type(exc).__name__})") from None


def _check_runnable(config: Config) -> None:
    """The device and precision must exist here (the engine would fail the job otherwise)."""
    from ..devices import resolve_device, resolve_precision

    try:
        resolve_precision(config.precision, resolve_device(config.device))
    except ConfigError as exc:
        raise ConfigError(f"{exc.template} (on this server)") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_OPTIONS_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level
