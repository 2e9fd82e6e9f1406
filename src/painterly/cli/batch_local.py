"""``painterly batch --backend local``: the jobs one after another in this process, with all its CPU
threads (or its GPU), one encoder per set of layers, each job driven by the command's own
:class:`~painterly.cli.runner.CommandRun` (checkpoints, signals, rescue)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ..batch.encoders import EncoderCache
from ..batch.jobs import Job
from ..batch.manifest import done_record, failed_record
from ..errors import PainterlyError
from .outputs import OutputFiles, OutputOptions
from .report import ProgressBar
from .runner import CommandRun
from . import close_bar, say
from .signals import signal_name


class JobRun(CommandRun):
    """One job of a batch: its bar sits beneath the batch's, and an interrupted job always keeps a
    checkpoint (the batch resumes it when run again) instead of an ``-interrupted`` image."""

    def __init__(self, *args: Any, show_bar: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, quiet=True, **kwargs)  # the batch says what each job wrote
        self.show_bar = show_bar and sys.stderr.isatty()  # off a terminal, one line a job is enough

    def drop_checkpoints(self) -> None:
        """Not yet: the checkpoint stays until the job's record is written (:meth:`recorded`), so that
        a batch killed between its result and its record continues the job instead of redoing it."""

    def recorded(self) -> None:
        """The job's record is written: now its checkpoints can go."""
        super().drop_checkpoints()

    def progress_bar(self) -> ProgressBar:
        return ProgressBar(self.run.total_iterations, quiet=not self.show_bar, position=1, leave=False, label=self.files.output.name)

    def _interrupted(self, signum: int) -> int:
        kept = self.save_checkpoint()
        name = signal_name(signum)
        say(
            f"painterly: {name}: stopped {self.files.output.name} at iteration {self.run.iteration}/{self.run.total_iterations}"
            + ("; run the same command again to continue" if kept else "")
        )
        return 128 + signum


class JobsBar:
    """The bar over the jobs, with an ETA: tqdm on a terminal, one line a job elsewhere."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.done = total, quiet, 0
        self.t0 = time.perf_counter()
        self.bar = None
        if not quiet and total and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="job", desc="batch", file=sys.stderr, position=0, dynamic_ncols=True)

    def finished(self, name: str, note: str) -> None:
        self.done += 1
        if self.bar is not None:
            try:
                self.bar.set_postfix_str(name, refresh=False)
                self.bar.update(1)
            except (OSError, ValueError):  # the terminal has gone: the batch goes on, silently
                self.bar, self.quiet = None, True
            return
        if not self.quiet:
            spent = time.perf_counter() - self.t0
            eta = spent / self.done * (self.total - self.done)
            say(f"painterly: [{self.done}/{self.total}] {name}: {note} (ETA {eta:.0f} s)")

    def close(self) -> None:
        close_bar(self.bar)


def _metadata(config: Any) -> dict[str, str]:
    from .commands import _metadata as metadata

    return metadata(config)


def read_checkpoint(files: OutputFiles, config: Any) -> dict[str, Any] | None:
    """The run state in ``files.checkpoint`` when it was made for this output with these settings
    (by either backend); None when there is none, or it is damaged or foreign (it is then overwritten)."""
    import torch

    if not files.checkpoint.is_file():
        return None
    try:
        saved = torch.load(files.checkpoint, map_location="cpu", weights_only=True)
        data = saved["run"]
        if data["config"] == config.to_dict() and saved.get("output") == files.output.name:
            return data
    except Exception:  # noqa: BLE001 - a damaged or foreign checkpoint: start afresh
        pass
    return None


def write_checkpoint(files: OutputFiles, state: dict[str, Any], checkpoint_every: int) -> bool:
    """Write ``state`` (:meth:`Run.state_dict`) as ``files.checkpoint``, in the form the command line
    writes (so ``painterly resume`` and either backend continue it); a failure is a warning, not an end."""
    import warnings

    import torch

    from ..errors import PainterlyWarning
    from ..files import write_with

    payload = {"run": state, "output": files.output.name, "outputs": {"save_every": 0, "checkpoint_every": checkpoint_every, "log": None, "plot": None}}
    try:
        write_with(files.checkpoint, lambda tmp: torch.save(payload, tmp))
        return True
    except Exception as exc:  # noqa: BLE001 - a full disk must not end the batch
        warnings.warn(f"could not write {files.checkpoint}: {exc}; carrying on", PainterlyWarning, stacklevel=2)
        return False


def start_job(transfer: Any, job: Job, files: OutputFiles) -> tuple[Any, Path | None]:
    """A fresh run of ``job``, or the one its checkpoint holds when that was made with the same settings."""
    from ..engine import Run, load_inputs

    data = read_checkpoint(files, transfer.config)
    if data is not None:
        try:
            return Run.from_state_dict(transfer, data), files.checkpoint
        except Exception:  # noqa: BLE001 - a damaged checkpoint: start afresh (it is overwritten)
            pass
    return transfer.start(load_inputs(transfer.config, job.content, job.styles, warn=False)), None


def together_size(requested: int | None, configs: list[Any]) -> int:
    """``--together``: as asked, else 4 jobs at once on CUDA (one image leaves a GPU mostly idle) and
    1 elsewhere (a CPU's cores are busy with one image already)."""
    if requested is not None:
        return max(1, requested)
    from ..devices import resolve_device

    devices = {resolve_device(c.device).type for c in configs}
    return 4 if devices == {"cuda"} else 1


def run_locally(batch: Any, jobs: list[Job]) -> int:
    """Run ``jobs`` here; returns 128 + signal if interrupted, else 0 (failures are in the records)."""
    from ..engine import StyleTransfer
    from .batch_together import groups, run_group

    encoders = EncoderCache()
    checkpoint_every = getattr(batch.args, "checkpoint_every", 0)
    bar = JobsBar(len(jobs), batch.quiet)

    def one_by_one(some: list[Job]) -> int:
        for job in some:
            config = batch.configs[job.output]
            files = OutputFiles(batch.folder / job.output)
            try:
                transfer = StyleTransfer(config, encoder=encoders.get(config))
                run, resumed_from = start_job(transfer, job, files)
                outputs = OutputOptions(checkpoint_every=checkpoint_every)
                job_run = JobRun(run, files, outputs, _metadata(config), show_bar=not batch.quiet, resumed_from=resumed_from)
                rc = job_run.execute()
            except PainterlyError as exc:
                from . import flag

                reason = " ".join(exc.render(flag).split())
                batch.say(f"painterly: error: {job.output}: {reason}")
                batch.record(failed_record(job, config, reason))
                bar.finished(job.output, "failed")
                if batch.stuck():
                    return 1
                continue
            if rc:
                return rc
            action = "resumed" if resumed_from is not None else "ran"
            batch.record(done_record(job, config, files.output, seed=run.seed, seconds=run.elapsed, losses=run.state.losses, iterations=run.iteration, action=action))
            job_run.recorded()
            bar.finished(job.output, f"{action}, {run.elapsed:.1f} s, seed {run.seed}")
            if batch.stuck():
                return 1
        return 0

    try:
        size = together_size(getattr(batch.args, "together", None), [batch.configs[j.output] for j in jobs])
        for group in groups(jobs, batch.configs, size):
            rc = run_group(batch, group, encoders, checkpoint_every, one_by_one, bar.finished)
            if rc:
                return rc
            if batch.stuck():
                return 1
    finally:
        bar.close()
    return 0
