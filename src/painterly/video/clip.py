"""The pieces of a clip's run that the command (``painterly video``) and the studio share: a time as the
user writes it (:func:`parse_time`), how many frames a piece holds (:func:`piece_frames`), the folder of
finished frames (:class:`FrameFolder`), the frames still to do after those (:func:`unfinished`) and the
video written from the finished frames with the piece's own stretch of sound (:func:`write_clip`).

Only :func:`write_clip` and :meth:`FrameFolder.remove` touch files, and only where their caller says.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from ..errors import ConfigError, shown

if TYPE_CHECKING:
    from torch import Tensor

    from .ahead import FrameFlows
    from .frames import VideoInfo
    from .sequence import ClipStyler


def parse_time(value: str | float | int, name: str) -> float:
    """Seconds from what a user writes: a number (``2.5``), or ``M:SS`` / ``H:MM:SS`` (``1:02.5``), ≥ 0.

    Raises:
        ConfigError: anything else, naming the field ``name`` (``start``, ``duration``).
    """
    try:
        if isinstance(value, bool):
            raise ValueError
        parts = [float(value)] if isinstance(value, (int, float)) else [float(p) for p in str(value).split(":")]
        if not 1 <= len(parts) <= 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` expects a time in seconds (2.5) or M:SS (1:02.5), got {shown(value)}") from None
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def piece_frames(frames: int | None, first: int, count: int | None) -> int | None:
    """How many of a clip's ``frames`` (``None``: unknown) the range ``first``, ``count`` holds
    (``VideoInfo.frame_range``); ``None`` when neither says."""
    if frames is None:
        return count
    return max(0, frames - first) if count is None else max(0, min(count, frames - first))


@dataclass(frozen=True)
class FrameFolder:
    """The finished frames of a clip, one file each as soon as it is done: ``frame_000001.png`` ... and
    the manifest of the settings (the command's), in ``folder``."""

    folder: Path

    MANIFEST = ".painterly-video.json"

    @property
    def manifest(self) -> Path:
        return self.folder / self.MANIFEST

    def frame(self, index: int) -> Path:
        """Frame ``index`` (0 = first): ``frame_000001.png``."""
        return self.folder / f"frame_{index + 1:06d}.png"

    def is_empty(self) -> bool:
        """Whether the folder holds nothing but, at most, the temporary file of a first manifest write
        that a kill cut short (painterly's own: the folder is still as good as new)."""
        from ..files import is_temp_name

        cut_short = f".{self.MANIFEST}."
        return all(p.name.startswith(cut_short) and is_temp_name(p.name) for p in self.folder.iterdir())

    def finished(self) -> int:
        """How many frames are done: ``frame_000001.png`` onwards, up to the first missing one."""
        n = 0
        while self.frame(n).is_file():
            n += 1
        return n

    def mark_assembled(self, plan: dict, count: int, output: Path) -> None:
        """Record in the manifest that ``output`` holds the clip of frames 1 … ``count`` (its size and
        SHA-256), before the frames are removed: a command killed while removing them finds the clip
        done and only finishes the clean-up (instead of making every frame again). Best effort."""
        import json

        from ..batch.manifest import file_digest
        from ..files import write_bytes

        try:
            size, sha = file_digest(output)
            done = {**plan, "assembled": {"frames": count, "bytes": size, "sha256": sha}}
            write_bytes(self.manifest, (json.dumps(done, indent=1) + "\n").encode("utf-8"))
        except OSError:
            pass  # without the mark, a kill mid-clean-up costs the frames again, nothing more

    def assembled(self, plan: dict, output: Path) -> int | None:
        """The frame count of the clip ``plan``'s manifest says was assembled into ``output``, if
        ``output`` is still that very file; else None."""
        from ..batch.manifest import file_digest

        mark = plan.get("assembled")
        if not isinstance(mark, dict) or not isinstance(mark.get("frames"), int):
            return None
        try:
            return mark["frames"] if file_digest(output) == (mark.get("bytes"), mark.get("sha256")) else None
        except OSError:
            return None

    def finish_assembled(self, plan: dict, output: Path) -> bool:
        """If ``plan``'s clip is already assembled into ``output`` (:meth:`assembled`), remove what is
        left of its frames (and the folder if painterly made it) and say True."""
        count = self.assembled(plan, output)
        if count is not None:
            self.remove(count, folder_too=bool(plan.get("made_folder", True)))
        return count is not None

    def remove(self, count: int, *, folder_too: bool) -> bool:
        """Delete frames 1 … ``count``, the manifest and temporaries left by an interrupted write; then
        the folder itself if ``folder_too`` and nothing else is in it (anything else is the user's and
        stays). Returns whether the folder is gone."""
        from ..files import is_temp_name, remove_quietly

        for i in range(count):
            remove_quietly(self.frame(i))
        remove_quietly(self.manifest)
        for path in self.folder.iterdir():
            if is_temp_name(path.name):
                remove_quietly(path)
        if folder_too and not any(self.folder.iterdir()):
            try:
                self.folder.rmdir()
            except OSError:
                return False
            return True
        return False


def unfinished(styler: ClipStyler, stream: Iterable[FrameFlows], done: int, saved: Callable[[int], Tensor]) -> Iterator[FrameFlows]:
    """The frames of ``stream`` (:meth:`ClipStyler.frames`) from ``done`` on: the ``done`` finished ones
    are not yielded, but those the next frame looks back to are pushed into ``styler`` as saved
    (``saved(index)``: the stylised frame read back), so that a resumed clip goes on as it would have."""
    for item in stream:
        if item.index < done:
            if item.index >= done - styler.history.maxlen:
                styler.push(item.frame, saved(item.index))
            continue
        yield item


def write_clip(
    target: str | os.PathLike[str], frames: Iterable[Tensor], count: int, info: VideoInfo, source: str | os.PathLike[str], first: int = 0
) -> bool:
    """Write the ``count`` stylised ``frames`` of the piece of ``source`` that starts at frame ``first``
    as the video ``target`` (atomically), at the clip's frame rate (a variable-frame-rate clip's frames
    keep their own times, :attr:`VideoInfo.times`), with the clip's sound from the
    same moment on (a folder of frames has none). Returns whether sound was carried over.

    Raises:
        OSError: the video cannot be written.
    """
    from .writing import write_video

    start, times = float(first / info.fps), None
    every = info.times
    if every is not None and len(every) >= first + count:  # a variable frame rate: the piece's own times
        start, times = every[first], every[first : first + count]
    audio = source if info.kind == "video" and info.has_audio else None
    return write_video(target, frames, info.fps, audio_from=audio, audio_start=start, times=times)
