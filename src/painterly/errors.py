"""The project's exception types.

Every error a user can cause is a :class:`PainterlyError` whose message is one line that names the
file or option at fault. The CLI prints ``painterly: error: <message>`` and exits with ``exit_code``;
the web studio turns them into HTTP errors. Nothing else in the library should escape to a user as a
traceback.
"""

from __future__ import annotations


class PainterlyError(Exception):
    """Base class: a one-line, user-facing message. Runtime failures exit with status 1."""

    exit_code: int = 1


class ConfigError(PainterlyError, ValueError):
    """An invalid option value or a contradictory combination of options (exit status 2)."""

    exit_code = 2


class ImageError(PainterlyError):
    """An input image that cannot be read, or an output path that cannot be written (exit status 2)."""

    exit_code = 2


class WeightsError(PainterlyError):
    """VGG19 weights that cannot be found, downloaded, verified or decoded (exit status 1)."""

    exit_code = 1


class DivergenceError(PainterlyError):
    """The optimisation produced NaN/Inf and could not recover (exit status 1)."""

    exit_code = 1


class ResourceError(PainterlyError):
    """The device ran out of memory; the message names a size that would fit (exit status 1)."""

    exit_code = 1


class PainterlyWarning(UserWarning):
    """Something odd but survivable (an animated image's first frame, an upscaled tiny image).

    The library reports these through :mod:`warnings`; the CLI prints them as one ``note:`` line.
    """
