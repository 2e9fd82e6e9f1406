"""What the command line shows and logs while a run goes: the progress bar and the loss log. The
engine only reports :class:`~painterly.engine.Progress`; this decides what to do with it."""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import IO, Any

from ..engine import Progress
from ..errors import ConfigError, PainterlyWarning


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


class ProgressBar:
    """A tqdm bar on a terminal (losses, level, it/s); a plain line every 10 % elsewhere (logs, CI)."""

    def __init__(
        self, total: int, *, quiet: bool = False, stream: IO[str] | None = None, start: int = 0, position: int | None = None, leave: bool = True
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = total
        self.bar = None
        self._every = max(1, total // 10)
        self._t0 = time.perf_counter()
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="it", file=self.stream, dynamic_ncols=True, leave=leave, position=position)
            if start:
                self.bar.update(start)

    def update(self, p: Progress) -> None:
        if self.quiet:
            return
        losses = {k: _fmt(v) for k, v in p.losses.items() if k != "total" and v != 0}
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"loss {_fmt(p.loss)} ({', '.join(f'{k} {v}' for k, v in losses.items())}) {p.size[1]}x{p.size[0]}",
                refresh=False,
            )
            self.bar.update(p.iteration - self.bar.n)
            return
        if p.iteration % self._every == 0 or p.iteration == p.total_iterations or p.iteration == 1:
            rate = p.iteration / max(p.elapsed, 1e-9)
            detail = " ".join(f"{k}={v}" for k, v in losses.items())
            print(
                f"[{p.iteration:>{len(str(p.total_iterations))}}/{p.total_iterations}] {p.size[1]}x{p.size[0]} "
                f"loss={_fmt(p.loss)} {detail} {rate:.2f} it/s",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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

        if resume_at is not None:
            trim_log(Path(path), resume_at)
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a" if resume_at is not None else "w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"`log` {path}: cannot write: {exc.strerror or exc}") from None

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
