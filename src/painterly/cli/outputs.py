"""What the command writes besides the result: the options that ask for it, and every derived file
name, spelled here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError


def _opt(help: str, **cli: object) -> dict[str, object]:
    return {"help": help, **cli}


@dataclass(frozen=True)
class OutputOptions:
    """What the command line does with a run besides the final image (the library itself writes nothing)."""

    save_every: int = field(default=0, metadata=_opt("also write the image every N iterations (0: never)", metavar="N"))
    log: str | None = field(default=None, metadata=_opt("write the loss history as JSON lines to FILE", metavar="FILE.jsonl"))
    checkpoint_every: int = field(
        default=0, metadata=_opt("save a resumable checkpoint every N iterations (0: never)", metavar="N")
    )
    plot: str | None = field(
        default=None,
        metadata=_opt("draw the loss terms against seconds and iterations, level changes marked, into FILE (PNG) at the end", metavar="FILE.png"),
    )

    def __post_init__(self) -> None:
        for name in ("save_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"`{name}` must be a non-negative integer, got {value!r}")
        if self.log is not None and not isinstance(self.log, str):
            raise ConfigError(f"`log` must be a file name, got {self.log!r}")
        if self.plot is not None and (not isinstance(self.plot, str) or not self.plot.lower().endswith(".png")):
            raise ConfigError(f"`plot` must be a .png file name, got {self.plot!r}")


@dataclass(frozen=True)
class OutputFiles:
    """The files one output name stands for: ``out.png`` and what is written beside it."""

    output: Path

    @property
    def interrupted(self) -> Path:
        """The image so far, kept on Ctrl-C / SIGTERM: ``out-interrupted.png``."""
        return self._beside("-interrupted")

    @property
    def last_good(self) -> Path:
        """The last good image of a run that diverged: ``out-last-good.png``."""
        return self._beside("-last-good")

    @property
    def checkpoint(self) -> Path:
        """The resumable checkpoint: ``out.png.ckpt``."""
        return self.output.with_name(self.output.name + ".ckpt")

    def numbered(self, iteration: int) -> Path:
        """An intermediate image: ``out_0100.png`` (they sort in order)."""
        return self.output.with_name(f"{self.output.stem}_{iteration:04d}{self.output.suffix}")

    def is_numbered(self, name: str) -> bool:
        """Whether ``name`` is one of :meth:`numbered`'s names."""
        pattern = rf"{re.escape(self.output.stem)}_\d{{4,}}{re.escape(self.output.suffix)}"
        return re.fullmatch(pattern, name) is not None

    @property
    def frames(self) -> Path:
        """`painterly video`'s frames while the clip is unfinished: the folder ``out.mp4.frames``."""
        return self.output.with_name(self.output.name + ".frames")

    @property
    def derived(self) -> tuple[Path, ...]:
        """Every fixed-name file a run may write beside the output."""
        return (self.interrupted, self.last_good, self.checkpoint)

    def _beside(self, tag: str) -> Path:
        return self.output.with_name(f"{self.output.stem}{tag}{self.output.suffix}")


@dataclass(frozen=True)
class FrameFolder:
    """The frames `painterly video` writes, one finished frame at a time: ``frame_000001.png`` ... and
    the manifest of the settings, in :attr:`OutputFiles.frames` (or in OUT itself when OUT is a folder)."""

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
