"""What the command writes besides the result: the options that ask for it, and every derived file
name, spelled here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, shown


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
                raise ConfigError(f"`{name}` must be a non-negative integer, got {shown(value)}")
        if self.log is not None and not isinstance(self.log, str):
            raise ConfigError(f"`log` must be a file name, got {shown(self.log)}")
        if self.plot is not None and (not isinstance(self.plot, str) or not self.plot.lower().endswith(".png")):
            raise ConfigError(f"`plot` must be a .png file name, got {shown(self.plot)}")


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

