"""The value checks behind :class:`painterly.config.Config`: each raises a one-line
:class:`~painterly.errors.ConfigError` naming the field in backticks (each face renders the name its
own way), and normalises what it accepts (an integral float to an int, a comma string to a tuple)."""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError, clip, shown


def as_tuple(name: str, value: Any, conv: type) -> tuple:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ConfigError(f"`{name}` must be a comma-separated list, got {shown(value)}")
    try:
        if conv is int:
            out = []
            for p in parts:
                if isinstance(p, bool) or (isinstance(p, float) and not p.is_integer()):
                    raise ValueError
                out.append(int(p))
            return tuple(out)
        if conv is float:
            return tuple(float(p) for p in parts)
        return tuple(str(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}`: cannot read {shown(value)} as a list of {conv.__name__} values") from None


def check_int(cfg: Any, name: str, minimum: int, maximum: int | None = None) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            object.__setattr__(cfg, name, int(value))
            value = int(value)
        else:
            raise ConfigError(f"`{name}` must be an integer, got {shown(value)}")
    if value < minimum:
        raise ConfigError(f"`{name}` must be at least {minimum}, got {shown(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"`{name}` must be at most {maximum}, got {shown(value)}")


def check_float(cfg: Any, name: str, minimum: float, strict: bool = False) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"`{name}` must be a number, got {shown(value)}")
    if not math.isfinite(value):
        raise ConfigError(f"`{name}` must be a finite number, got {value}")
    if value < minimum or (strict and value == minimum):
        bound = "greater than" if strict else "at least"
        raise ConfigError(f"`{name}` must be {bound} {minimum:g}, got {value:g}")
    object.__setattr__(cfg, name, float(value))


def check_all_finite(name: str, values: tuple[float, ...], positive_sum: bool) -> None:
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError(f"`{name}` values must be finite and non-negative, got {clip(','.join(map(str, values)))}")
    if positive_sum and sum(values) <= 0:
        raise ConfigError(f"`{name}` values must not all be zero")


MAX_POOL = 256
"""The largest pool of the Laplacian loss: a 256 px cell is already coarser than any layout it could hold."""


def check_pools(cfg: Any, name: str, weight: str) -> None:
    """``name`` (a tuple of pool sizes): integers in 1..MAX_POOL, none twice, some when ``weight`` > 0."""
    pools = getattr(cfg, name)
    if any(p < 1 or p > MAX_POOL for p in pools):
        raise ConfigError(f"`{name}` values must be between 1 and {MAX_POOL}, got {clip(','.join(map(str, pools)))}")
    if len(set(pools)) != len(pools):
        raise ConfigError(f"`{name}` names a pool size twice: {clip(','.join(map(str, pools)))}")
    if getattr(cfg, weight) > 0 and not pools:
        raise ConfigError(f"`{weight}` is positive but `{name}` is empty")
