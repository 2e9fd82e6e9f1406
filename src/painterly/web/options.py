"""A request's ``options`` (JSON, the CLI's option names) → a validated :class:`Config`.

The names are the CLI's (``style-weight``) or the fields' (``style_weight``); values are checked by
:class:`Config` itself, so the studio, the CLI and the Python API agree on what is valid. On top of
that, nothing in a request may name a file on the server: ``weights`` is ``caffe`` or
``torchvision`` only (the server's own default may be a path), and ``init`` is ``noise``,
``content`` or ``style`` (a previous result is chosen by its job id, ``init_job``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from ..config import INITS, Config
from ..errors import ConfigError
from ..weights import PREPROCESSINGS

SERVER_ONLY = ("max_pixels",)
"""Options a request may not set: the server's own limits apply to uploads."""


@dataclass(frozen=True)
class Limits:
    """What one job may ask of this server."""

    max_size: int = 2048
    max_iterations: int = 5000
    max_styles: int = 8


def parse_options(text: str | None) -> dict[str, Any]:
    """The ``options`` form field: a JSON object (empty when absent)."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"options: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise ConfigError("options must be a JSON object, e.g. {\"size\": 256, \"iterations\": 100}")
    return value


def build_config(requested: Mapping[str, Any], defaults: Mapping[str, Any], limits: Limits) -> Config:
    """The server's defaults overridden by the request's options, checked against ``limits``."""
    normal = {str(k).replace("-", "_"): v for k, v in requested.items()}
    for name in SERVER_ONLY:
        if name in normal:
            raise ConfigError(f"option {name!r} is set by the server, not by a request")
    weights = normal.get("weights")
    if weights is not None and weights not in PREPROCESSINGS:
        raise ConfigError("weights must be caffe or torchvision (a file on the server cannot be chosen from a request)")
    init = normal.get("init")
    if init is not None and init not in INITS:
        raise ConfigError("init must be noise, content or style; to start from a previous result, send init_job")
    config = Config.for_mode("stylize", **{**{str(k).replace("-", "_"): v for k, v in defaults.items()}, **normal})
    if config.size > limits.max_size:
        raise ConfigError(f"--size must be at most {limits.max_size} on this server, got {config.size}")
    total = sum(config.level_iterations) if config.level_iterations is not None else config.iterations
    if total > limits.max_iterations:
        raise ConfigError(f"--iterations must be at most {limits.max_iterations} on this server, got {total}")
    return config


def public_options(config: Config) -> dict[str, Any]:
    """The settings of a run as shown to users: server paths are not theirs to see."""
    data = config.to_dict()
    if data["weights"] not in PREPROCESSINGS:
        data["weights"] = "server"
    data.pop("max_pixels", None)
    return data
