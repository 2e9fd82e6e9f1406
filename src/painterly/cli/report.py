"""What the command line shows and logs while a run goes: the progress bar and the loss log. The
engine only reports :class:`~painterly.engine.Progress`; this decides what to do with it."""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import IO, Any

from ..engine import Progress
from ..errors import ConfigError, PainterlyWarning
from . import close_bar


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


def clock(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a number of seconds; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class ProgressBar:
    """A tqdm bar on a terminal (after ``label``, if given: a batch names its jobs' bars); a plain line
    every 10 % of the work elsewhere (logs, CI).

    Both are measured in work, not iterations (:attr:`Progress.work_fraction`: each level's iterations
    weighted by its pixels): the percentage and the ETA hold across the levels of a multi-scale run,
    and the rate shown is the current level's it/s, not an average since the start.
    """

    def __init__(
        self, total: int, *, quiet: bool = False, stream: IO[str] | None = None, position: int | None = None, leave: bool = True,
        label: str = "",
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = total
        self.bar = None
        self._tenth = -1  # the last tenth of the work a plain line was printed for
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            # Filled in percent of the work; tqdm's own rate and ETA (in those units) are left out:
            # the ETA shown is the Progress's, the same as the plain lines and the studio show.
            self.bar = tqdm(
                total=100.0, file=self.stream, dynamic_ncols=True, leave=leave, position=position,
                desc=label, bar_format="{desc}" + (" " if label else "") + "{percentage:3.0f}%|{bar}| {elapsed}{postfix}",
            )

    def update(self, p: Progress) -> None:
        if self.quiet:
            return
        try:
            self._show(p)
        except (OSError, ValueError):  # the terminal or pipe has gone: the run goes on, silently
            self.quiet, self.bar = True, None

    def _show(self, p: Progress) -> None:
        losses = {k: _fmt(v) for k, v in p.losses.items() if k != "total" and v != 0}
        level = f"level {p.level + 1}/{p.levels} " if p.levels > 1 else ""
        where = f"{level}{p.size[1]}x{p.size[0]} {p.level_rate:.2f} it/s ETA {clock(p.eta)}"
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"it {p.iteration}/{p.total_iterations} {where} "
                f"loss {_fmt(p.loss)} ({', '.join(f'{k} {v}' for k, v in losses.items())})",
                refresh=False,
            )
            self.bar.update(100.0 * p.work_fraction - self.bar.n)
            return
        tenth = min(10, int(p.work_fraction * 10 + 1e-9))
        if tenth > self._tenth or p.iteration == p.total_iterations:
            self._tenth = tenth
            detail = " ".join(f"{k}={v}" for k, v in losses.items())
            print(
                f"[{p.iteration:>{len(str(p.total_iterations))}}/{p.total_iterations}] {100 * p.work_fraction:3.0f}% "
                f"{where} loss={_fmt(p.loss)} {detail}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        close_bar(self.bar)


class LossLog:
    """``--log FILE.jsonl``: one JSON object per iteration (iteration, seconds, level, size, each loss).

    A resumed run (``resume_at``) continues the file, first dropping the lines past the checkpoint. A
    write that fails (a full disk) is one ``note:`` and the log stops; the run goes on.
    """

    def __init__(self, path: str | os.PathLike | None, resume_at: int | None = None) -> None:
        self.file = None
        self.path = path
        if path is None:
            return
        from .runner import trim_log

        # Opened without truncating and locked first: a second run given the same --log stops here
        # with one line instead of interleaving its lines with (or emptying) the first run's.
        self.file = self._open_locked(Path(path))
        if resume_at is not None:
            trim_log(Path(path), resume_at)
            if os.stat(path).st_ino != os.fstat(self.file.fileno()).st_ino:
                # Trimmed by an atomic replace: lock the new file, let the old one go.
                old, self.file = self.file, None
                old.close()
                self.file = self._open_locked(Path(path))
        else:
            self.file.truncate(0)

    @staticmethod
    def _open_locked(path: Path) -> IO[str]:
        from ..files import open_log

        try:
            file = open_log(path)
        except OSError as exc:
            raise ConfigError(f"`log` {path}: cannot write: {exc.strerror or exc}") from None
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; the log is not guarded there
            return file
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.close()
            raise ConfigError(f"`log` {path} is being written by another painterly run: give this run its own") from None
        return file

    def write(self, p: Progress) -> None:
        if self.file is None:
            return
        record: dict[str, Any] = {
            "iteration": p.iteration,
            "seconds": round(p.elapsed, 4),
            "level": p.level,
            "width": p.size[1],
            "height": p.size[0],
            "evaluations": p.evaluations,
            # JSON has no Infinity or NaN: a diverged evaluation is logged as null.
            **{k: (v if math.isfinite(v) else None) for k, v in p.losses.items()},
        }
        if p.recovered:
            record["recovered"] = True
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as exc:
            warnings.warn(f"could not write the log {self.path}: {exc.strerror or exc}; no more log lines", PainterlyWarning, stacklevel=2)
            self._close_quietly()

    def close(self) -> None:
        self._close_quietly()

    def _close_quietly(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None
