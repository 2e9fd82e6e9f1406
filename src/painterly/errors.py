"""The project's exception types.

Every error a user can cause is a :class:`PainterlyError` whose message is one line that names the
file or option at fault; a value the user gave is echoed through :func:`shown` (cut short). The
CLI prints ``painterly: error: <message>`` and exits with ``exit_code``; the web studio turns them
into HTTP errors. Nothing else in the library should escape to a user as a traceback.
"""

from __future__ import annotations

import re
from typing import Any, Callable

_FIELD = re.compile(r"`([a-z][a-z0-9_]*)`")


def render_fields(text: str, spell: Callable[[str], str]) -> str:
    """``text`` with each backticked field name spelled by ``spell`` (see :meth:`PainterlyError.render`)."""
    return _FIELD.sub(lambda m: spell(m.group(1)), text)


SHOWN_CHARS = 60
"""How much of a user's value a message echoes: enough to recognise it (a 100 KB option is not sent back)."""


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A user's value as a message echoes it: its ``repr``, cut by :func:`clip`."""
    return clip(repr(value), limit)


class _NamesFields:
    """A message that names Config fields in backticks: ``template`` keeps them, ``str()`` shows the
    plain names, :meth:`render` spells them as a face does."""

    template: str

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the message names, in order (the first is the one at fault)."""
        return tuple(dict.fromkeys(_FIELD.findall(self.template)))

    def render(self, spell: Callable[[str], str]) -> str:
        """The message with each field name spelled by ``spell`` (e.g. ``style_blend`` → ``--style-blend``)."""
        return render_fields(self.template, spell)


class PainterlyError(_NamesFields, Exception):
    """Base class: a one-line, user-facing message. Runtime failures exit with status 1.

    A message names the options at fault by their :class:`~painterly.config.Config` field names in
    backticks (`` `style_blend` has 3 values ``). ``str(error)`` shows the plain field names (the
    library's own words); each face renders them in its own with :meth:`render`: the CLI as
    ``--style-blend``, the studio as the JSON key it received.
    """

    exit_code: int = 1

    def __init__(self, message: str = "") -> None:
        self.template = str(message)
        super().__init__(self.render(lambda name: name))

    def __reduce__(self) -> tuple[Any, ...]:  # picklable with its template (multiprocessing, Ray)
        return (type(self), (self.template,))


class ConfigError(PainterlyError, ValueError):
    """An invalid option value or a contradictory combination of options (exit status 2)."""

    exit_code = 2


class ImageError(PainterlyError):
    """An input image that cannot be read, or an output path that cannot be written (exit status 2)."""

    exit_code = 2


class TooManyPixels(ImageError):
    """An image (or a clip's frames) with more pixels than ``max_pixels`` allows: refused for its size,
    not its content (the studio answers 413 for it, 400 or 415 for other image errors)."""


class WeightsError(PainterlyError):
    """VGG19 weights that cannot be found, downloaded, verified or decoded (exit status 1)."""

    exit_code = 1


class DivergenceError(PainterlyError):
    """The optimisation produced NaN/Inf and could not recover (exit status 1).

    ``image`` is the last good image, ``(1, 3, H, W)`` float32 in [0, 1] on the CPU, for the caller to
    keep (the CLI saves it beside the output).
    """

    exit_code = 1

    def __init__(self, message: str = "", image: Any = None) -> None:
        super().__init__(message)
        self.image = image

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.template, self.image))


class ResourceError(PainterlyError):
    """The device ran out of memory; the message names a size that would fit (exit status 1)."""

    exit_code = 1


class PainterlyWarning(_NamesFields, UserWarning):
    """Something odd but survivable (an animated image's first frame, an upscaled tiny image).

    The library reports these through :mod:`warnings`; the CLI prints them as one ``note:`` line. Like
    an error's, the message names fields in backticks: ``str()`` shows plain names, :meth:`render` a
    face's spelling.
    """

    def __init__(self, message: str = "") -> None:
        self.template = str(message)
        super().__init__(self.render(lambda name: name))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.template,))
