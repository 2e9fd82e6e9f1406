"""What the command line shows and writes while a run goes: the progress bar, the loss log and the
intermediate images. The engine only reports :class:`~painterly.engine.Progress`; this decides
what to do with it."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from ..engine import Progress
from ..imageio import save_image


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


class ProgressBar:
    """A tqdm bar on a terminal (losses, level, it/s); a plain line every 10 % elsewhere (logs, CI)."""

    def __init__(self, total: int, *, quiet: bool = False, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = total
        self.bar = None
        self._every = max(1, total // 10)
        self._t0 = time.perf_counter()
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="it", file=self.stream, dynamic_ncols=True, leave=True)

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
    """``--log FILE.jsonl``: one JSON object per iteration (iteration, seconds, level, size, each loss)."""

    def __init__(self, path: str | os.PathLike | None, append: bool = False) -> None:
        self.file = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a" if append else "w", encoding="utf-8")

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
            **{k: v for k, v in p.losses.items()},
        }
        if p.recovered:
            record["recovered"] = True
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def numbered(path: Path, iteration: int) -> Path:
    """``out.png``, 100 → ``out_0100.png`` (intermediate images sort in order)."""
    return path.with_name(f"{path.stem}_{iteration:04d}{path.suffix}")


def save_intermediate(p: Progress, output: Path, every: int, metadata: dict[str, str] | None = None) -> None:
    if every and p.iteration % every == 0 and p.iteration != p.total_iterations:
        save_image(p.image, numbered(output, p.iteration), metadata=metadata)
