"""The studio's job queue: jobs wait in a bounded FIFO and worker threads run them, one at a time each.

Style transfer is CPU- (or GPU-) bound, so running several jobs side by side only makes each slower;
one worker is the default. Job state is in :mod:`painterly.web.job`, guarded by this manager's lock;
the records on disk are :mod:`painterly.web.records`'; the engine call is :func:`worker.run_job`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from ..errors import PainterlyError
from ..files import remove_quietly
from .job import CANCELLED, DONE, FAILED, INTERRUPTED, JOB_ID, QUEUED, RUNNING, VIDEO, Job
from .job import encode_jpeg, encode_tensor_jpeg, finite, history_row, record, snapshot
from .records import DEFAULT_KEEP, INTERRUPTED_MESSAGE, PREVIEW_FILE, RecordStore
from .resume import discard
from .worker import EncoderFactory, Encoders, run_job

log = logging.getLogger("painterly.web")

PREVIEW_INTERVAL_S = 1 / 3
"""At most three preview JPEGs a second: encoding one costs real time at large sizes, and a browser
cannot show more than that usefully anyway."""

PREVIEW_SAVE_S = 5.0
"""How often a running job's preview is also written to disk (what a crash leaves to show)."""


class QueueFull(Exception):
    """No room for another waiting job (the HTTP layer answers 429)."""


class JobManager:
    """The queue, the workers and every job this server has seen (kept on disk by a RecordStore)."""

    def __init__(
        self,
        workdir: Path,
        *,
        queue_size: int = 8,
        workers: int = 1,
        encoder_factory: EncoderFactory | None = None,
        max_history: int = 20_000,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        if queue_size < 1 or workers < 1:
            raise ValueError("queue_size and workers must be at least 1")
        self.workdir = Path(workdir)
        self.jobs_dir = self.workdir / "jobs"
        self.records = RecordStore(self.jobs_dir, keep=keep)
        self.queue_size = queue_size
        self.workers = workers
        self.max_history = max_history
        self._encoders = Encoders(encoder_factory)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._record_lock = threading.Lock()  # one record write at a time: the last one is the newest
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._threads: list[threading.Thread] = []
        self._closing = False

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads (idempotent; also done on the first submit)."""
        with self._lock:
            if self._threads or self._closing:
                return
            for n in range(self.workers):
                t = threading.Thread(target=self._work, name=f"painterly-worker-{n}", daemon=True)
                self._threads.append(t)
                t.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the workers; what is queued or running is recorded as ``interrupted``."""
        with self._lock:
            self._closing = True
            waiting = list(self._waiting)
            self._waiting.clear()
            for job in waiting:
                self._set_final(job, INTERRUPTED, INTERRUPTED_MESSAGE)
            for job in self._jobs.values():
                if job.status == RUNNING:
                    job.interrupt_requested = True
                    if job.run is not None:
                        job.run.stop()
            self._changed.notify_all()
            threads = list(self._threads)
        for job in waiting:
            self._save_record(job)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def restore(self) -> int:
        """Take back the jobs a previous server recorded in the workdir; returns how many."""
        found = self.records.restore()
        with self._lock:
            for job in found:
                self._jobs.setdefault(job.id, job)
        self._prune()
        return len(found)

    # --- submitting and looking up ---------------------------------------------------------------
    def new_directory(self) -> tuple[str, Path]:
        """A fresh job id and its (created, empty, private) folder."""
        return self.records.new_directory()

    def discard_directory(self, directory: Path) -> None:
        """Remove the folder of a job that was never queued."""
        self.records.remove(Job(id=directory.name, directory=directory, options={}))

    def has_room(self) -> bool:
        with self._lock:
            return len(self._waiting) < self.queue_size and not self._closing

    def submit(self, job: Job, prepare: Callable[[Job], None] | None = None) -> Job:
        """Queue ``job`` and record it; raises :class:`QueueFull` when ``queue_size`` jobs wait.
        ``prepare(job)``, under the lock once there is room, readies a job queued again (it may raise)."""
        self.start()
        with self._lock:
            if self._closing:
                raise QueueFull("the server is shutting down")
            if len(self._waiting) >= self.queue_size:
                raise QueueFull(f"the queue is full ({self.queue_size} jobs waiting); try again when one has finished")
            if prepare is not None:
                prepare(job)
            self._jobs[job.id] = job
            self._waiting.append(job)
            job.version += 1
            self._changed.notify_all()
        self._save_record(job)
        return job

    def get(self, job_id: str) -> Job | None:
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def counts(self) -> dict[str, int]:
        with self._lock:
            running = sum(1 for j in self._jobs.values() if j.status == RUNNING)
            return {"waiting": len(self._waiting), "running": running, "capacity": self.queue_size, "workers": self.workers}

    def cancel(self, job: Job, wait: float = 2.0) -> None:
        """Cancel a queued or running job and wait (up to ``wait`` s) until it has really stopped; an
        interrupted one that could be resumed is cancelled too (what it kept to resume is removed)."""
        deadline = time.monotonic() + wait
        with self._lock:
            if job.status == QUEUED:
                try:
                    self._waiting.remove(job)
                except ValueError:
                    pass
                self._moved_up()
                self._set_final(job, CANCELLED, None)
                discard(job)
            elif job.status == RUNNING:
                job.cancel_requested = True
                if job.run is not None:
                    job.run.stop()  # thread-safe: the run ends within one loss evaluation
                self._changed.notify_all()
                while job.status == RUNNING:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
                return  # the worker records the job when it ends
            elif job.status == INTERRUPTED and job.saved:  # not to be resumed: its saved run is dropped
                self._set_final(job, CANCELLED, None, job.finished)
                discard(job)
            else:
                return
        self._save_record(job)
        self._prune()

    # --- reading state ---------------------------------------------------------------------------
    def snapshot(self, job: Job, *, history: bool = False, history_from: int | None = None) -> dict[str, Any]:
        """The job as JSON-able data (taken under the lock: consistent)."""
        with self._lock:
            return snapshot(job, self._position(job), history=history, history_from=history_from)

    def preview(self, job: Job) -> tuple[bytes | None, int]:
        """The latest preview JPEG and its frame number; a finished job's is made from its result
        (or, for one cut short by a crash, is the last one written to disk)."""
        with self._lock:
            data, frame, path, has_result = job.preview, job.frame, job.result_path, job.has_result
        if data is None and job.kind == VIDEO:
            data = self.records.read_preview(job)  # a video's last frame, kept beside it
        elif data is None and has_result:
            try:
                with Image.open(path) as img:
                    img.load()
                    data = encode_jpeg(img.convert("RGB"))
            except OSError:
                return None, frame
        elif data is None and job.status == INTERRUPTED:
            data = self.records.read_preview(job)
        if data is not None:
            with self._lock:
                job.preview = job.preview or data
        return data, frame

    def _position(self, job: Job) -> int | None:
        if job.status != QUEUED:
            return None
        try:
            return self._waiting.index(job) + 1
        except ValueError:
            return None

    # --- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closing:
                    self._changed.wait()
                if self._closing:
                    return
                job = self._waiting.popleft()
                job.status = RUNNING
                job.started = time.time()
                job.version += 1
                self._moved_up()
                self._changed.notify_all()
            try:
                self._execute(job)
            except BaseException:  # never let one job take the worker (and the queue) down with it
                log.exception("job %s: unexpected failure", job.id)
                with self._lock:
                    if job.status == RUNNING:
                        self._set_final(job, FAILED, "internal error (see the server log)")
                self._save_record(job)

    def _execute(self, job: Job) -> None:
        started = time.perf_counter()
        if job.kind == VIDEO:
            from .clip_run import run_clip

            status, error = run_clip(self, job, self._encoders)
        else:
            status, error = self._paint(job)
        # The record on disk says the job is over before anyone can see it so: a client that saw "done"
        # and restarts the server finds it done, not interrupted.
        finished = time.time()
        with self._record_lock:
            with self._lock:
                job.elapsed = max(job.elapsed, time.perf_counter() - started)  # a resumed run's counts its past
                data = {**record(job), "status": status, "error": error, "finished": finished}
            self.records.write(job, data)
            with self._lock:
                self._set_final(job, status, error, finished)
        if status != INTERRUPTED:
            discard(job)  # over: what a resume needs is of no more use
        self._prune()

    def _paint(self, job: Job) -> tuple[str, str | None]:
        """Run an image job and save its result; returns its final (status, error)."""
        from ..imageio import save_image

        clock = {"preview": 0.0, "saved": time.monotonic()}
        status, error, result = FAILED, None, None
        try:
            assert job.config is not None
            run = run_job(job, self._encoders(job.config), lambda r: self._started(job, r), lambda p: self._progress(job, p, clock))
            result = run.result()
            status = CANCELLED if run.stopped else DONE
            if status == CANCELLED and run.iteration == 0:
                result = None  # nothing was painted yet: no result to keep
        except PainterlyError as exc:
            error = str(exc)
            image = getattr(exc, "image", None)  # a diverged run still has its last good image
            result = image if image is not None else None
        except Exception as exc:
            log.exception("job %s failed", job.id)
            error = f"internal error: {type(exc).__name__}: {exc}"
        if status == FAILED and job.cancel_requested and error is None:
            status = CANCELLED
        if status == CANCELLED and job.interrupt_requested and not job.cancel_requested:
            status, error = INTERRUPTED, INTERRUPTED_MESSAGE
        if result is not None:
            try:
                save_image(result, job.result_path, metadata={"painterly": json.dumps(job.options, sort_keys=True)})
                jpeg = encode_tensor_jpeg(result)
                with self._lock:
                    job.has_result = True
                    job.preview = jpeg
                    job.frame += 1
                remove_quietly(job.directory / PREVIEW_FILE)
            except Exception as exc:  # a full disk must fail the job, not the worker
                log.exception("job %s: cannot save the result", job.id)
                status, error = FAILED, f"cannot save the result: {exc}"
        return status, error

    def update(self, job: Job, change: Callable[[Job], None]) -> None:
        """Apply ``change(job)`` under the lock, as news (the event stream and the gallery see it)."""
        with self._lock:
            change(job)
            job.version += 1
            self._changed.notify_all()

    def save_record(self, job: Job) -> None:
        """Write ``job.json`` as the job is now (for the clip runner: after each finished frame)."""
        self._save_record(job)

    def _started(self, job: Job, run: Any) -> None:
        with self._lock:
            job.run = run
            job.seed = run.seed
            job.total_iterations = run.total_iterations
            job.levels = len(run.levels)
            job.version += 1
            if job.cancel_requested or job.interrupt_requested:
                run.stop()
        self._save_record(job)

    def _progress(self, job: Job, progress: Any, clock: dict[str, float]) -> None:
        now = time.perf_counter()
        jpeg = None
        if progress.iteration >= progress.total_iterations or now - clock["preview"] >= PREVIEW_INTERVAL_S:
            clock["preview"] = now
            jpeg = encode_tensor_jpeg(progress.image)
        losses = {k: finite(v) for k, v in progress.losses.items()}
        with self._lock:
            job.iteration = progress.iteration
            job.total_iterations = progress.total_iterations
            job.level = progress.level
            job.levels = progress.levels
            job.size = (int(progress.size[0]), int(progress.size[1]))
            job.losses = losses
            job.elapsed = progress.elapsed
            job.work_fraction = progress.work_fraction
            job.eta = progress.eta
            job.tiles = tuple(progress.tiles)
            if len(job.history) < self.max_history:
                job.history.append(history_row(progress.iteration, losses))
            if jpeg is not None:
                job.preview = jpeg
                job.frame += 1
            job.version += 1
            self._changed.notify_all()
        if jpeg is not None and time.monotonic() - clock["saved"] >= PREVIEW_SAVE_S:
            clock["saved"] = time.monotonic()
            self.records.write_preview(job, jpeg)
            self._save_record(job)

    def _moved_up(self) -> None:
        """A job has left the waiting line: each one still waiting has a new place in it, which is news
        (its event stream and the gallery watch versions). Caller holds the lock."""
        for waiting in self._waiting:
            waiting.version += 1

    def _set_final(self, job: Job, status: str, error: str | None, finished: float | None = None) -> None:
        """Caller holds the lock."""
        job.status = status
        job.error = error
        job.finished = time.time() if finished is None else finished
        job.run = None
        # The inputs are no longer needed; a finished job keeps only its small record and preview.
        job.images = job.state = None
        job.version += 1
        self._changed.notify_all()

    def _save_record(self, job: Job) -> None:
        """Write ``job.json`` as the job is now (atomically; see :mod:`painterly.web.records`)."""
        with self._record_lock:
            with self._lock:
                data = record(job)
            self.records.write(job, data)

    def _prune(self) -> None:
        """Remove the oldest finished jobs beyond the store's ``keep``."""
        with self._lock:
            victims = self.records.excess(list(self._jobs.values()))
            for job in victims:
                del self._jobs[job.id]
        for job in victims:
            self.records.remove(job)
