"""A video job's run in the studio's worker: the clip frame by frame with the library's
:class:`~painterly.video.sequence.ClipStyler`, each finished frame kept in the job's ``frames/``
folder (:class:`~painterly.video.clip.FrameFolder`), then the video (``result.mp4``, with the clip's
sound) written from them by :func:`~painterly.video.clip.write_clip`, as ``painterly video`` does.

The job's state is changed only through its :class:`~painterly.web.queue.JobManager` (``update``,
``save_record``), as every job's is. A cancel stops the frame in progress (it is dropped) and the clip
at that frame: the frames finished so far become the video. A server stopping ends the job as
``interrupted`` with what it had painted shown (the last frame's preview), as an image job's; its
finished frames and the clip stay, and a resumed job goes on at the first frame not done
(:mod:`painterly.web.resume`).
"""

from __future__ import annotations

import logging
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import PainterlyError
from ..files import make_folder, remove_quietly
from .job import CANCELLED, DONE, FAILED, FRAMES_FOLDER, INTERRUPTED, Job, encode_tensor_jpeg, finite, history_row
from .options import notes_as_sent
from .records import INTERRUPTED_MESSAGE

if TYPE_CHECKING:
    from .queue import JobManager

log = logging.getLogger("painterly.web")

PREVIEW_INTERVAL_S = 1 / 3
"""As an image job's: at most three preview JPEGs a second."""


@dataclass(frozen=True)
class ClipSpec:
    """What a video job runs on (its :attr:`Job.images` until it ends), checked at submit."""

    path: Path
    """The uploaded clip, in the job's folder."""
    name: str
    """The clip's name as the browser sent it: messages say it, never the server's path."""
    styles: list[Any]
    settings: Any
    """:class:`~painterly.video.sequence.VideoSettings`."""
    info: Any
    """:class:`~painterly.video.frames.VideoInfo` of the clip."""
    first: int
    count: int | None
    max_pixels: int


class _Stopper:
    """The job's ``run`` while it runs: what a cancel (or the server stopping) stops. It stops the
    frame in progress and the clip before the next frame."""

    def __init__(self) -> None:
        self.stopped = False
        self.current: Any = None

    def stop(self) -> None:
        self.stopped = True
        run = self.current
        if run is not None:
            run.stop()

    def watch(self, run: Any) -> None:
        self.current = run
        if self.stopped:  # a stop that came between two frames
            run.stop()


def run_clip(manager: JobManager, job: Job, encoders: Callable[[Any], Any]) -> tuple[str, str | None]:
    """Run the video job ``job`` to its end; returns its final (status, error). Never raises."""
    spec: ClipSpec = job.images
    stopper = _Stopper()
    manager.update(job, lambda j: setattr(j, "run", stopper))
    if job.cancel_requested or job.interrupt_requested:  # asked before the run existed
        stopper.stop()
    folder = _frame_folder(job)
    status, error = DONE, None
    try:
        _paint_frames(manager, job, spec, encoders(job.config), stopper, folder)
    except PainterlyError as exc:
        status, error = FAILED, _private(str(exc), job, spec)
    except Exception as exc:
        log.exception("job %s failed", job.id)
        status, error = FAILED, f"internal error: {type(exc).__name__}"
    if stopper.stopped and status == DONE:
        status = INTERRUPTED if job.interrupt_requested and not job.cancel_requested else CANCELLED
    done = folder.finished()
    try:
        # Interrupted: the server is stopping and waits seconds only; the last frame's preview stays.
        if done and status != INTERRUPTED:
            audio = _write(job, spec, folder, done)
            manager.update(job, lambda j: (setattr(j, "has_result", True), (j.video or {}).__setitem__("audio", audio)))
    except PainterlyError as exc:
        status, error = FAILED, _private(str(exc), job, spec)
    except OSError as exc:
        log.exception("job %s: cannot write the video", job.id)
        status, error = FAILED, f"cannot write the video: {exc.strerror or exc}"
    finally:
        if status != INTERRUPTED or not job.saved:  # an interrupted job's frames and clip are its resume
            if folder.folder.is_dir():
                folder.remove(done, folder_too=True)
            remove_quietly(spec.path)  # the upload was only needed until the video had its sound
    if status == INTERRUPTED:
        error = INTERRUPTED_MESSAGE
    return status, error


def _frame_folder(job: Job) -> Any:
    from ..video.clip import FrameFolder

    return FrameFolder(job.directory / FRAMES_FOLDER)


def _paint_frames(manager: JobManager, job: Job, spec: ClipSpec, encoder: Any, stopper: _Stopper, folder: Any) -> None:
    from ..engine import StyleTransfer
    from ..imageio import load_image, save_image
    from ..video.clip import unfinished
    from ..video.frames import read_frames
    from ..video.sequence import ClipStyler

    assert job.config is not None
    styler = ClipStyler(StyleTransfer(job.config, encoder=encoder), spec.styles, spec.settings, warn=False)
    make_folder(folder.folder)
    done = folder.finished()  # a resumed job's frames already made (as `painterly resume` goes on)
    meter = _Meter(manager, job, spec, done)
    clip = read_frames(spec.path, max_pixels=spec.max_pixels, first=spec.first, count=spec.count)
    stream = styler.frames(clip, start=done)
    with closing(stream):
        for item in unfinished(styler, stream, done, lambda i: load_image(folder.frame(i))):
            if stopper.stopped:
                return
            noted = styler.notes is not None
            run = styler.start(item.frame, item.flows)
            if not noted and styler.notes:  # what the first frame found odd (frames under `size` ...), as image jobs show
                meter.notes(styler.notes)
            stopper.watch(run)
            meter.frame_starts(item.index, run)
            for progress in run:
                meter.iteration(progress)
            if stopper.stopped or run.stopped:
                return  # the frame in progress is dropped: the clip ends at the last finished one
            path = save_image(run.result(), folder.frame(item.index))
            stylised = load_image(path)
            # The next frame starts from this one as saved (as the command's frames do).
            styler.push(item.frame, stylised)
            meter.frame_done(item.index, stylised)


def _write(job: Job, spec: ClipSpec, folder: Any, count: int) -> bool:
    """The video of the ``count`` finished frames; returns whether it has the clip's sound."""
    from ..imageio import load_image
    from ..video.clip import write_clip

    frames = (load_image(folder.frame(i)) for i in range(count))
    return write_clip(job.result_path, frames, count, spec.info, spec.path, spec.first)


class _Meter:
    """Progress of the whole clip from the frames' runs: frame i of n, the current frame's iteration,
    the preview, the loss history over all frames, and an ETA from the seconds per iteration so far."""

    def __init__(self, manager: JobManager, job: Job, spec: ClipSpec, done: int = 0) -> None:
        from ..schedule import plan_levels

        self.manager, self.job, self.spec = manager, job, spec
        self.t0 = time.perf_counter()
        self.first_iterations: int | None = None
        self.later_iterations = spec.settings.iterations_after_first(job.config)
        self.before = 0  # iterations of the finished frames
        if done:  # resumed: the frames done before count as work done, not as this session's pace
            first = sum(level.iterations for level in plan_levels(job.config))
            self.first_iterations, self.before = first, first + (done - 1) * self.later_iterations
        self.offset = self.before
        self.previewed = 0.0
        self.last = 0  # the current frame's iterations so far

    def notes(self, notes: Sequence[str]) -> None:
        shown = notes_as_sent(notes, {})

        def change(job: Job) -> None:
            job.notes = [*job.notes, *(n for n in shown if n not in job.notes)]

        self.manager.update(self.job, change)

    def frame_starts(self, index: int, run: Any) -> None:
        if self.first_iterations is None:
            self.first_iterations = run.total_iterations

        def change(job: Job) -> None:
            job.iteration, job.total_iterations, job.levels, job.level = 0, run.total_iterations, len(run.levels), 0
            if job.seed is None:
                job.seed = run.seed
            assert job.video is not None
            job.video["frame"] = index + 1

        self.manager.update(self.job, change)

    def iteration(self, p: Any) -> None:
        now = time.perf_counter()
        jpeg = None
        if p.iteration >= p.total_iterations or now - self.previewed >= PREVIEW_INTERVAL_S:
            self.previewed = now
            jpeg = encode_tensor_jpeg(p.image)
        losses = {k: finite(v) for k, v in p.losses.items()}
        self.last = p.iteration
        done = self.before + p.iteration
        planned = self._planned()
        elapsed = now - self.t0

        def change(job: Job) -> None:
            job.iteration, job.total_iterations, job.level, job.levels = p.iteration, p.total_iterations, p.level, p.levels
            job.size = (int(p.size[0]), int(p.size[1]))
            job.losses = losses
            job.elapsed = elapsed
            job.work_fraction = min(1.0, done / planned) if planned else 0.0
            paced = done - self.offset  # iterations of this session
            job.eta = elapsed / paced * max(0, planned - done) if planned and paced > 0 else None
            if len(job.history) < self.manager.max_history:
                job.history.append(history_row(done, losses))
            if jpeg is not None:
                job.preview = jpeg
                job.frame += 1

        self.manager.update(self.job, change)

    def frame_done(self, index: int, stylised: Any) -> None:
        self.before += self.last
        self.last = 0
        jpeg = encode_tensor_jpeg(stylised)

        def change(job: Job) -> None:
            assert job.video is not None
            job.video["done"] = index + 1
            job.preview = jpeg
            job.frame += 1

        self.manager.update(self.job, change)
        # What a crash leaves to show: the last finished frame, and the record saying how far it got.
        self.manager.records.write_preview(self.job, jpeg)
        self.manager.save_record(self.job)

    def _planned(self) -> int | None:
        """Iterations of the whole piece: the first frame's and the later frames' (None: length unknown)."""
        frames = (self.job.video or {}).get("frames")
        if not frames or self.first_iterations is None:
            return None
        return self.first_iterations + (frames - 1) * self.later_iterations


def _private(message: str, job: Job, spec: ClipSpec) -> str:
    """A message as the user may see it: the server's paths replaced by what they stand for."""
    return message.replace(str(spec.path), spec.name).replace(str(job.directory), "the job's folder")
