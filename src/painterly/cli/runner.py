"""The command line's run loop: progress bar, loss log, intermediate images, checkpoints, signals and
the rescue of a run that failed or could not be saved.

A side write that fails (a full disk under ``--log``, ``--plot``, ``--save-every`` or ``--checkpoint-every``) is a
``note:`` line and the run goes on. A final save that fails keeps the image in the temporary folder,
says where, and exits 1: a finished run is never lost.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from ..engine import Run
from ..errors import DivergenceError, ImageError, PainterlyError, PainterlyWarning
from ..files import remove_quietly, remove_stale_temps, write_with
from ..imageio import save_image
from .outputs import OutputFiles, OutputOptions
from .plot import LossHistory, draw_plot
from .report import LossLog, ProgressBar
from . import say
from .signals import Signals, signal_name


class CommandRun:
    """One run of the command: drives ``run`` to its end and owns everything written on the way.

    Args:
        run: a fresh or resumed engine run.
        files: the output and the names derived from it.
        outputs: what to write besides the result.
        metadata: PNG text chunks for every image written.
        quiet: no progress output.
        resumed_from: the checkpoint this run continues (deleted when the run finishes).
    """

    def __init__(
        self,
        run: Run,
        files: OutputFiles,
        outputs: OutputOptions,
        metadata: dict[str, str],
        *,
        quiet: bool = False,
        resumed_from: Path | None = None,
    ) -> None:
        self.run = run
        self.files = files
        self.outputs = outputs
        self.metadata = metadata
        self.quiet = quiet
        self.resumed_from = resumed_from

    def execute(self) -> int:
        self.begin()
        try:
            with Signals(self.run) as signals:
                for progress in self.run:
                    self.on_progress(progress)
        except DivergenceError as exc:
            self._plot(self._history)
            raise self._rescued(exc) from None
        finally:
            self.close()
        return self.end(signals.received)

    # execute() in three parts, for a driver that advances several runs at once (cli/batch_together.py).
    def begin(self) -> None:
        """Open what the run writes as it goes: its bar, its loss log, its plot's history."""
        resumed = self.resumed_from is not None
        self._bar = self.progress_bar()
        self._log = LossLog(self.outputs.log, resume_at=self.run.iteration if resumed else None)
        # A resumed run's plot starts from its loss log (already cut back to the checkpoint).
        self._history = LossHistory.from_log(self.outputs.log if resumed else None) if self.outputs.plot else None
        self._t0 = time.perf_counter()

    def on_progress(self, progress: Any) -> None:
        """One iteration's bar, log line, intermediate image and checkpoint."""
        run, files, outputs = self.run, self.files, self.outputs
        self._bar.update(progress)
        self._log.write(progress)
        if self._history is not None:
            self._history.add(progress)
        if outputs.save_every and progress.iteration % outputs.save_every == 0 and progress.iteration != progress.total_iterations:
            self._side_write(files.numbered(progress.iteration), lambda p: save_image(progress.image, p, metadata=self.metadata))
        if outputs.checkpoint_every and progress.iteration % outputs.checkpoint_every == 0 and not run.done:
            self.save_checkpoint()

    def close(self) -> None:
        """Close the bar and the log (again is harmless); the plot is drawn by :meth:`end`."""
        self._bar.close()
        self._log.close()

    def end(self, received: int | None) -> int:
        """After the loop: the plot, then the result saved (or, if a signal ``received`` stopped the
        run, the interrupted image and checkpoint); the exit status."""
        run, files = self.run, self.files
        self._plot(self._history)
        if received is not None:
            return self._interrupted(received)
        image = run.result()
        try:
            save_image(image, files.output, metadata=self.metadata)
        except PainterlyError as exc:
            raise self._kept_elsewhere(exc, image) from None
        self.drop_checkpoints()
        if not self.quiet:
            h, w = image.shape[-2:]
            say(
                f"painterly: wrote {files.output} ({w}x{h}, {run.iteration} iterations, "
                f"{time.perf_counter() - self._t0:.1f} s, seed {run.seed})"
            )
        return 0

    def drop_checkpoints(self) -> None:
        """The run finished and its result is saved: its checkpoints (this output's, and the one it
        was resumed from) have nothing left to give."""
        if self.outputs.checkpoint_every:
            remove_quietly(self.files.checkpoint)
            remove_stale_temps(self.files.checkpoint)  # a checkpoint write cut short by an earlier kill
        if self.resumed_from is not None:
            remove_quietly(self.resumed_from)

    def progress_bar(self) -> ProgressBar:
        """The run's bar (a batch puts its jobs' bars beneath its own)."""
        return ProgressBar(self.run.total_iterations, quiet=self.quiet)

    def save_checkpoint(self) -> bool:
        """Write the run's state beside the output; on failure say so and carry on."""
        import torch

        # Names, not paths: `painterly resume` writes next to the checkpoint (or where it is told).
        state = {
            "run": self.run.state_dict(),
            "output": self.files.output.name,
            "outputs": {
                "save_every": self.outputs.save_every,
                "checkpoint_every": self.outputs.checkpoint_every,
                "log": None if self.outputs.log is None else Path(self.outputs.log).name,
                "plot": None if self.outputs.plot is None else Path(self.outputs.plot).name,
            },
        }
        return self._side_write(self.files.checkpoint, lambda p: write_with(p, lambda tmp: torch.save(state, tmp)))

    def _plot(self, history: LossHistory | None) -> None:
        """--plot: the loss chart, written at the end (finished, interrupted or diverged); a failure is a note."""
        if history is None or not len(history) or self.outputs.plot is None:
            return
        image = draw_plot(history)
        self._side_write(Path(self.outputs.plot), lambda p: write_with(p, lambda tmp: image.save(tmp, format="PNG")))

    def _side_write(self, path: Path, write: Any) -> bool:
        try:
            write(path)
            return True
        except Exception as exc:  # noqa: BLE001 - a full disk must not cost the user the run itself
            # (torch.save reports a full disk as a RuntimeError from its zip writer, not an OSError.)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
            warnings.warn(f"could not write {path}: {reason}; carrying on", PainterlyWarning, stacklevel=2)
            return False

    def _interrupted(self, signum: int) -> int:
        run, files = self.run, self.files
        save_image(run.result(), files.interrupted, metadata=self.metadata)
        resumable = bool(self.outputs.checkpoint_every) and self.save_checkpoint()
        say(
            f"painterly: {signal_name(signum)}: stopped at iteration {run.iteration}/{run.total_iterations}; "
            f"saved the image so far to {files.interrupted}"
            + (f" (continue with: painterly resume {files.checkpoint})" if resumable else "")
        )
        return 128 + signum

    def _rescued(self, exc: DivergenceError) -> DivergenceError:
        """A run that diverged still has its last good image: keep it, and say where in the error line."""
        kept = self.files.last_good
        try:
            save_image(exc.image, kept, metadata=self.metadata)
            note = f"; kept the last good image in {kept}"
        except PainterlyError as save_exc:
            note = f"; could not keep the last good image: {save_exc}"
        return DivergenceError(f"{exc.template}{note}", image=exc.image)

    def _kept_elsewhere(self, exc: PainterlyError, image: Any) -> PainterlyError:
        """The final save failed: keep the finished image in the temporary folder and say where."""
        safe = keep_in_temp(image, self.files.output, self.metadata)
        if safe is not None:
            where = f"; the finished image is kept in {safe}"
        else:
            where = "; the finished image could not be kept anywhere" + (
                f" (continue with: painterly resume {self.files.checkpoint})"
                if self.outputs.checkpoint_every and self.save_checkpoint()
                else ""
            )
        error = ImageError(f"{exc.template}{where}")
        error.exit_code = 1
        return error


def keep_in_temp(image: Any, output: Path, metadata: dict[str, str] | None) -> Path | None:
    """Save a finished image whose ``output`` could not be written into the temporary folder instead:
    the path it went to, or None when that failed too."""
    safe = Path(tempfile.gettempdir()) / f"painterly-{output.stem}-{int(time.time())}.png"
    try:
        return save_image(image, safe, metadata=metadata)
    except PainterlyError:
        return None


def trim_log(path: Path, iteration: int, key: str = "iteration") -> None:
    """Drop the lines of a loss log past ``iteration`` (written after a checkpoint, before a crash);
    ``key`` names the count in each line (`painterly video`'s log counts frames).

    Only a file painterly wrote is touched: every line must be one of its JSON records (the last may be
    cut short by the crash); anything else is refused with a :class:`~painterly.errors.ConfigError`.
    """
    from ..errors import ConfigError
    from ..files import write_bytes

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"`log` {path}: cannot read it to continue it ({exc})") from None
    complete, _, cut = text.rpartition("\n")  # cut: "" when the file ends with a newline
    refused = ConfigError(f"`log` {path}: is not a painterly loss log; refusing to change it")
    if cut and not cut.startswith(f'{{"{key}": '):  # only a record of ours may be cut short by a crash
        raise refused
    lines = complete.split("\n") if complete else []
    kept = []
    for line in lines:
        try:
            step = int(json.loads(line)[key])
        except (ValueError, KeyError, TypeError):
            raise refused from None
        if step <= iteration:
            kept.append(line)
    if len(kept) != len(lines) or cut:
        write_bytes(path, "".join(line + "\n" for line in kept).encode("utf-8"))
