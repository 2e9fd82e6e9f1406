"""``painterly batch --together N``: up to N jobs of the local backend advanced at once, their images
evaluated in one encoder pass (:func:`painterly.engine.run_together`) — a GPU's win, where one 512 px
image leaves the device mostly idle (docs/benchmarks.md, GPU). Off on a CPU by default: its cores are
busy with one image already.

Each job keeps what it has alone: its own :class:`~painterly.cli.batch_local.JobRun` writes its
checkpoints, its result and its record. If any job of a group fails, every job of the group is
checkpointed and the group is finished one job at a time by the ordinary path, which records the
failing one and resumes the others from their checkpoints.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..batch.encoders import EncoderCache
from ..batch.jobs import Job
from ..batch.manifest import done_record
from ..errors import PainterlyError
from .outputs import OutputFiles, OutputOptions
from .signals import Signals


class _Every:
    """Stops every run of a group (what :class:`~painterly.cli.signals.Signals` calls on a Ctrl-C)."""

    def __init__(self, runs: Sequence[Any]) -> None:
        self.runs = runs

    def stop(self) -> None:
        for run in self.runs:
            run.stop()


def groups(jobs: Sequence[Job], configs: dict[str, Any], size: int) -> list[list[Job]]:
    """Consecutive jobs whose runs can share encoder passes (one encoder, and the same size,
    precision and device), at most ``size`` a group."""

    def key_of(job: Job) -> tuple:
        config = configs[job.output]
        return (EncoderCache.key(config), config.size, config.precision, config.device)

    out: list[list[Job]] = []
    for job in jobs:
        if out and len(out[-1]) < size and key_of(out[-1][0]) == key_of(job):
            out[-1].append(job)
        else:
            out.append([job])
    return out


def run_group(batch: Any, group: list[Job], encoders: Any, checkpoint_every: int, one_by_one: Callable[[list[Job]], int], finished: Callable[[str, str], None]) -> int:
    """Run ``group`` together; returns 128 + signal if interrupted, else 0 (failures are recorded by
    ``one_by_one``, the ordinary path, which this falls back to)."""
    from ..engine import StyleTransfer, run_together
    from .batch_local import JobRun, _metadata, start_job

    if len(group) == 1:
        return one_by_one(group)
    members = []
    try:
        for job in group:
            config = batch.configs[job.output]
            files = OutputFiles(batch.folder / job.output)
            run, resumed_from = start_job(StyleTransfer(config, encoder=encoders.get(config)), job, files)
            # Checkpoints always: they are how a failed group hands its jobs to the one-by-one path.
            outputs = OutputOptions(checkpoint_every=checkpoint_every)
            members.append((job, config, JobRun(run, files, outputs, _metadata(config), show_bar=False, resumed_from=resumed_from)))
    except PainterlyError:
        return one_by_one(group)  # a bad input: the ordinary path records it and runs the rest
    runs = [m[2].run for m in members]
    for _, _, job_run in members:
        job_run.begin()
    failed = False
    try:
        with Signals(_Every(runs)) as signals:
            for index, progress in run_together(runs):
                members[index][2].on_progress(progress)
    except PainterlyError:
        failed = True
    finally:
        for _, _, job_run in members:
            job_run.close()
    if failed:
        for _, _, job_run in members:
            job_run.save_checkpoint()
        return one_by_one(group)
    status = 0
    for job, config, job_run in members:
        # A job that had finished before the signal is saved as finished.
        rc = job_run.end(None if job_run.run.iteration >= job_run.run.total_iterations else signals.received)
        if rc:
            status = status or rc
            continue
        run = job_run.run
        action = "resumed" if job_run.resumed_from is not None else "ran"
        batch.record(done_record(job, config, job_run.files.output, seed=run.seed, seconds=run.elapsed, losses=run.state.losses, iterations=run.iteration, action=action))
        job_run.recorded()
        finished(job.output, f"{action} (together with {len(group) - 1} more), {run.elapsed:.1f} s, seed {run.seed}")
    return status
