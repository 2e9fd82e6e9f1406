"""Interrupted studio jobs run again: what a job keeps on disk to be resumed, its checkpoints, and
``POST /api/jobs/{id}/resume``.

A job that the server's stop (Ctrl-C) or a crash cut short is ``interrupted``. From its submission
until it ends, its folder keeps what it needs to run again, in the library's own forms (nothing of
the studio's): :data:`~painterly.web.job.SAVED_FILE` holds ``{"version", "kind", "config":
Config.to_dict(), ...}`` with, for an image job, its decoded inputs (:meth:`Inputs.to_dict`: content,
styles, init image, mask), and for a video job its styles and the clip's piece and temporal settings
(the clip itself is kept beside it, ``clip.*``, and the frames done in ``frames/``). A running image
job's :class:`~painterly.engine.RunState` is written whole (:meth:`RunState.to_dict`, ``torch.save``,
atomically through :mod:`painterly.files`) as :data:`~painterly.web.job.CHECKPOINT_FILE` at most every
:data:`CHECKPOINT_INTERVAL_S`, and once more when the server stops it (the stop waits a few seconds for
the worker; a server killed outright leaves the last periodic one). The two files together are what
:meth:`Run.state_dict` writes, and are read back as ``painterly resume`` reads a checkpoint
(:meth:`Config.from_mapping`, :meth:`Inputs.from_dict`, :meth:`RunState.from_dict`).

Resuming re-queues the job: an image job continues from its checkpoint (the same iteration, level,
optimiser memory and seed: it ends with the very image an uninterrupted run makes; its loss history is
cut back to the checkpoint) or, without one, starts again with the seed it had; a video job goes on
at the first frame not in ``frames/`` (:func:`painterly.video.clip.unfinished`). A job that ends done,
failed or cancelled drops what only it needed (:func:`discard`); its result and preview stay. An
interrupted job not to be resumed is cancelled by ``DELETE /api/jobs/{id}`` (the page's Discard), which
drops them too.

A restarted server does **not** run interrupted jobs again by itself: the machine may have been
stopped because it was needed. The page's Resume button (or the endpoint) does, one job at a time;
``painterly serve --resume-interrupted`` queues them all at start (as many as the queue holds).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from ..files import remove_quietly, remove_stale_temps, write_with
from .job import CHECKPOINT_FILE, CLIP_STEM, INTERRUPTED, QUEUED, SAVED_FILE, VIDEO, Job

if TYPE_CHECKING:
    from fastapi.responses import JSONResponse

    from .queue import JobManager

log = logging.getLogger("painterly.web")

CHECKPOINT_INTERVAL_S = 30.0
"""A running image job's state is written at most this often (and when the server stops it): a crash
costs at most this much of its work. The state is large with L-BFGS's memory (up to 100 image-sized
pairs, within 15 % of the memory free, engine/memory.py: ~30 MB at 128 px, ~480 MB at 512 px, written
in 1-4 s on a busy 2-core host), so the next write also waits :data:`CHECKPOINT_SHARE` times as long
as the last one took: writing never costs more than ~5 % of the run."""
CHECKPOINT_SHARE = 20


class ResumeRefused(Exception):
    """The job cannot be resumed: ``status`` is the HTTP answer (409, 410, 429), the message names the job."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- kept at submission ----------------------------------------------------------------------------


def keep_inputs(job: Job) -> None:
    """Keep what ``job`` (just made, not yet queued) needs to run again in its folder.

    Raises:
        HTTPException: 507 the disk is full (a job that cannot be kept is not taken).
    """
    import torch

    from ..engine.run import CHECKPOINT_VERSION

    assert job.config is not None and job.images is not None
    data: dict[str, Any] = {"version": CHECKPOINT_VERSION, "kind": job.kind, "config": job.config.to_dict()}
    if job.kind == VIDEO:
        from ..engine.inputs import to_tensor

        spec = job.images
        data.update(
            styles=[to_tensor(s, name=f"style image {i + 1}") for i, s in enumerate(spec.styles)],
            video=dataclasses.asdict(spec.settings), clip=spec.path.name, name=spec.name,
            first=spec.first, count=spec.count, max_pixels=spec.max_pixels,
        )  # fmt: skip
    else:
        data.update(job.images.to_dict())
    try:
        write_with(job.directory / SAVED_FILE, lambda tmp: torch.save(data, tmp))
    except (OSError, RuntimeError) as exc:  # torch's zip writer reports a full disk as a RuntimeError
        from fastapi import HTTPException

        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise HTTPException(507, f"the server cannot keep the job's inputs: {reason}") from None
    job.saved = True


def accept(manager: JobManager, job: Job) -> JSONResponse:
    """Take a new job (its folder made, nothing queued yet): keep its inputs, queue it, and answer 202
    with its snapshot. A job that cannot be taken leaves no folder behind.

    Raises:
        HTTPException: 429 the queue is full, 507 the disk is full.
    """
    from fastapi import HTTPException
    from fastapi.responses import JSONResponse

    from .queue import QueueFull

    try:
        keep_inputs(job)
        manager.submit(job)
    except QueueFull as exc:
        manager.discard_directory(job.directory)
        raise HTTPException(429, str(exc)) from None
    except BaseException:
        manager.discard_directory(job.directory)
        raise
    snapshot = manager.snapshot(job)
    return JSONResponse(snapshot, status_code=202, headers={"Location": snapshot["urls"]["self"]})


# --- checkpoints of a running image job ---------------------------------------------------------------


class Checkpoints:
    """Writes a running image job's :class:`RunState` at most every :data:`CHECKPOINT_INTERVAL_S`
    (:meth:`due`, after each iteration) and when it is stopped by the server (:meth:`save`)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.last = time.monotonic()
        self.took = 0.0  # seconds the last write took

    def due(self, run: Any) -> None:
        wait = max(CHECKPOINT_INTERVAL_S, CHECKPOINT_SHARE * self.took)
        if time.monotonic() - self.last >= wait and not run.done:
            self.save(run)

    def save(self, run: Any) -> bool:
        """Write the run's state now (between iterations, or once it has stopped); a failure is logged."""
        import torch

        started = time.monotonic()
        state = run.state.to_dict()
        try:
            write_with(self.job.directory / CHECKPOINT_FILE, lambda tmp: torch.save(state, tmp))
            return True
        except Exception:  # noqa: BLE001 - a full disk must not end the run: the previous checkpoint stays
            log.exception("job %s: cannot write its checkpoint", self.job.id)
            return False
        finally:
            self.last = time.monotonic()
            self.took = self.last - started


def discard(job: Job) -> None:
    """The job is over (done, failed or cancelled): remove what only a resume would need (never its
    result, preview or mask)."""
    for name in (SAVED_FILE, CHECKPOINT_FILE):
        remove_quietly(job.directory / name)
        remove_stale_temps(job.directory / name)
    job.saved = False


# --- resuming -------------------------------------------------------------------------------------------


def resume(manager: JobManager, job: Job) -> None:
    """Queue the interrupted ``job`` again (see the module's docstring).

    Raises:
        ResumeRefused: 409 the job is not interrupted; 410 nothing to run it again from (or it is
            damaged); 429 the queue is full or the server is stopping.
    """
    from .queue import QueueFull

    status = manager.snapshot(job)["status"]
    if status != INTERRUPTED:
        raise ResumeRefused(409, f"job {job.id} is {status}; only an interrupted job can be resumed")
    try:
        config, images, state = _load(job)
    except ResumeRefused:
        manager.update(job, lambda j: setattr(j, "saved", False))  # the page stops offering it
        raise
    manager.preview(job)  # what it had painted stays on the page until the resumed run paints more

    def prepare(j: Job) -> None:  # under the manager's lock: a second resume finds it queued
        if j.status != INTERRUPTED:
            raise ResumeRefused(409, f"job {j.id} is {j.status}; only an interrupted job can be resumed")
        j.config, j.images, j.state = config, images, state
        j.status, j.error, j.finished = QUEUED, None, None
        j.cancel_requested = j.interrupt_requested = False
        j.run, j.eta = None, None
        if j.kind == VIDEO:
            j.has_result = False
        else:
            # Its partial result stays on disk until the finished one replaces it; the page waits for that.
            j.has_result = False
            done = state.iteration if state is not None else 0
            j.history = [row for row in j.history if row and isinstance(row[0], (int, float)) and row[0] <= done]
            j.iteration = done
            if state is None:
                j.level, j.losses, j.work_fraction = 0, {}, 0.0

    try:
        manager.submit(job, prepare=prepare)
    except QueueFull as exc:
        raise ResumeRefused(429, str(exc)) from None


def resume_all(manager: JobManager) -> int:
    """``--resume-interrupted``: queue every resumable interrupted job, oldest first, while there is
    room; returns how many. One that cannot be resumed is logged and left as it is."""
    count = 0
    for job in reversed(manager.jobs()):
        if not (job.status == INTERRUPTED and job.saved):
            continue
        try:
            resume(manager, job)
            count += 1
        except ResumeRefused as exc:
            log.warning("not resumed: %s", exc)
            if exc.status == 429:
                break
    return count


def _load(job: Job) -> tuple[Any, Any, Any]:
    """(config, what the worker runs on, RunState or None) from the job's folder; 410 if they are
    gone or damaged."""
    import torch

    from ..config import Config
    from ..engine.run import CHECKPOINT_VERSION

    gone = ResumeRefused(
        410, f"job {job.id} cannot be resumed: this server kept nothing to run it again from "
        "(it was interrupted under an older painterly, or its saved inputs were removed)",
    )  # fmt: skip
    path = job.directory / SAVED_FILE
    if not path.is_file():
        raise gone
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION or data.get("kind") != job.kind:
            raise ValueError("not a job's saved inputs")
        config = Config.from_mapping(data["config"])
        if config.seed is None and job.seed is not None:
            config = config.replace(seed=job.seed)  # a run started again starts as it did (a checkpoint has its own)
        if job.kind == VIDEO:
            return config, _clip_spec(job, config, data), None
        from ..engine import Inputs, RunState

        images = Inputs.from_dict(config, data)
        state = None
        if (job.directory / CHECKPOINT_FILE).is_file():
            state = RunState.from_dict(torch.load(job.directory / CHECKPOINT_FILE, map_location="cpu", weights_only=True))
        return config, images, state
    except ResumeRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file is the job's, not the server's
        log.warning("job %s: cannot resume: %s", job.id, exc)
        raise ResumeRefused(410, f"job {job.id} cannot be resumed: its saved inputs are damaged ({type(exc).__name__})") from None


def _clip_spec(job: Job, config: Any, data: dict[str, Any]) -> Any:
    """A video job's :class:`~painterly.web.clip_run.ClipSpec` again: the kept clip probed anew."""
    from ..video.frames import probe
    from ..video.sequence import VideoSettings
    from .clip_run import ClipSpec

    clip = job.directory / str(data["clip"])
    if not (clip.name.startswith(f"{CLIP_STEM}.") and clip.is_file()):
        raise ResumeRefused(410, f"job {job.id} cannot be resumed: its clip is no longer kept")
    info = probe(clip, max_pixels=int(data["max_pixels"]))
    settings = VideoSettings(**data["video"])
    return ClipSpec(clip, str(data["name"]), list(data["styles"]), settings, info, int(data["first"]), data["count"], int(data["max_pixels"]))
