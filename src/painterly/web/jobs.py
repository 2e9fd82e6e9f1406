"""The studio's job queue: jobs wait in a bounded FIFO and worker threads run them, one at a time each.

Style transfer is CPU- (or GPU-) bound, so running several jobs side by side only makes each slower;
one worker is the default. A job's state lives in a :class:`Job` guarded by the :class:`JobManager`'s
lock; the HTTP layer reads it only through :meth:`JobManager.snapshot`, so a request never sees a job
half updated. Every change bumps :attr:`Job.version`, which is what the event stream watches.

On disk, each job owns ``<workdir>/jobs/<id>/`` (``id`` is 32 random hex digits) holding
``result.png`` and ``job.json``; a restarted server finds its finished jobs there again.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from ..config import Config
from ..errors import PainterlyError

log = logging.getLogger("painterly.web")

JOB_ID = re.compile(r"[0-9a-f]{32}")
"""What a job id looks like; anything else is unknown without touching the disk."""

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINAL = frozenset({DONE, FAILED, CANCELLED})

PREVIEW_INTERVAL_S = 1 / 3
"""At most three preview JPEGs a second: encoding one costs real time at large sizes, and a browser
cannot show more than that usefully anyway."""

PREVIEW_QUALITY = 85
RESULT_FILE = "result.png"
RECORD_FILE = "job.json"

EncoderFactory = Callable[[Config], Any]
"""``config -> VGG19Encoder``: lets tests (or a server with its own network) supply the encoder."""


class QueueFull(Exception):
    """No room for another waiting job (the HTTP layer answers 429)."""


@dataclass(eq=False)
class Job:
    """One submitted run and everything known about it."""

    id: str
    directory: Path
    options: dict[str, Any]
    """The run's effective settings, as shown to users (no server paths)."""
    config: Config | None = None
    """None for jobs found on disk at start-up (they are finished; nothing runs them again)."""
    content: Image.Image | None = None
    styles: list[Image.Image] = field(default_factory=list)
    init: Image.Image | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    """Where the images came from (upload names, ``demo``, ``init_job``), for the record."""
    created: float = field(default_factory=time.time)
    status: str = QUEUED
    iteration: int = 0
    total_iterations: int = 0
    level: int = 0
    levels: int = 1
    size: tuple[int, int] | None = None  # (width, height) of the current level
    losses: dict[str, float] = field(default_factory=dict)
    history: list[list[float]] = field(default_factory=list)
    """``[iteration, total, content, style, tv]`` per iteration, for the loss chart."""
    error: str | None = None
    seed: int | None = None
    started: float | None = None
    finished: float | None = None
    elapsed: float = 0.0
    preview: bytes | None = None
    frame: int = 0
    """How many preview JPEGs have been made: the page watches it change."""
    has_result: bool = False
    version: int = 0
    cancel_requested: bool = False
    run: Any = None  # the engine's Run while it runs; stop() is called on it from other threads

    @property
    def result_path(self) -> Path:
        return self.directory / RESULT_FILE


class JobManager:
    """The queue, the workers and the record of every job this server has seen."""

    def __init__(
        self,
        workdir: Path,
        *,
        queue_size: int = 8,
        workers: int = 1,
        encoder_factory: EncoderFactory | None = None,
        max_history: int = 20_000,
    ) -> None:
        if queue_size < 1 or workers < 1:
            raise ValueError("queue_size and workers must be at least 1")
        self.workdir = Path(workdir)
        self.jobs_dir = self.workdir / "jobs"
        self.queue_size = queue_size
        self.workers = workers
        self.encoder_factory = encoder_factory
        self.max_history = max_history
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._weights_cache: dict[str, Any] = {}
        self._weights_lock = threading.Lock()

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
        """Cancel what is queued or running and stop the workers."""
        with self._lock:
            self._closing = True
            for job in list(self._waiting):
                self._finish_cancelled_waiting(job)
            self._waiting.clear()
            for job in self._jobs.values():
                if job.status == RUNNING:
                    job.cancel_requested = True
                    if job.run is not None:
                        job.run.stop()
            self._changed.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def restore(self) -> int:
        """Take back the finished jobs a previous server left in the workdir; returns how many."""
        found: list[Job] = []
        if not self.jobs_dir.is_dir():
            return 0
        for entry in self.jobs_dir.iterdir():
            if not JOB_ID.fullmatch(entry.name) or not (entry / RESULT_FILE).is_file():
                continue
            try:
                record = json.loads((entry / RECORD_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a half-written or foreign folder: not ours to show
            if not isinstance(record, dict) or record.get("status") not in (DONE, CANCELLED):
                continue
            job = Job(id=entry.name, directory=entry, options=dict(record.get("options") or {}))
            for name in ("status", "iteration", "total_iterations", "levels", "error", "seed", "elapsed", "created", "started", "finished"):
                if name in record:
                    setattr(job, name, record[name])
            job.losses = dict(record.get("losses") or {})
            job.history = list(record.get("history") or [])
            job.inputs = dict(record.get("inputs") or {})
            size = record.get("size")
            job.size = tuple(size) if isinstance(size, list) and len(size) == 2 else None
            job.has_result = True
            found.append(job)
        found.sort(key=lambda j: j.created if isinstance(j.created, (int, float)) else 0.0)
        with self._lock:
            for job in found:
                self._jobs.setdefault(job.id, job)
        return len(found)

    # --- submitting and looking up ---------------------------------------------------------------
    def new_directory(self) -> tuple[str, Path]:
        """A fresh job id and its (created, empty) directory."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        while True:
            job_id = secrets.token_hex(16)
            path = self.jobs_dir / job_id
            try:
                path.mkdir()
            except FileExistsError:  # 2**-128 odds, but cheap to handle
                continue
            return job_id, path

    def has_room(self) -> bool:
        with self._lock:
            return len(self._waiting) < self.queue_size and not self._closing

    def submit(self, job: Job) -> Job:
        """Queue ``job``; raises :class:`QueueFull` when ``queue_size`` jobs are already waiting."""
        self.start()
        with self._lock:
            if self._closing:
                raise QueueFull("the server is shutting down")
            if len(self._waiting) >= self.queue_size:
                raise QueueFull(f"the queue is full ({self.queue_size} jobs waiting); try again when one has finished")
            self._jobs[job.id] = job
            self._waiting.append(job)
            job.version += 1
            self._changed.notify_all()
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
        """Cancel a queued or running job and wait (up to ``wait`` s) until it has really stopped."""
        deadline = time.monotonic() + wait
        with self._lock:
            if job.status == QUEUED:
                try:
                    self._waiting.remove(job)
                except ValueError:
                    pass
                self._finish_cancelled_waiting(job)
                self._changed.notify_all()
                return
            if job.status == RUNNING:
                job.cancel_requested = True
                if job.run is not None:
                    job.run.stop()  # thread-safe: the run ends within one loss evaluation
                self._changed.notify_all()
                while job.status == RUNNING:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)

    # --- reading state ---------------------------------------------------------------------------
    def snapshot(self, job: Job, *, history: bool = False, history_from: int | None = None) -> dict[str, Any]:
        """The job as JSON-able data (taken under the lock: consistent)."""
        with self._lock:
            return self._snapshot(job, history=history, history_from=history_from)

    def preview(self, job: Job) -> tuple[bytes | None, int]:
        """The latest preview JPEG and its frame number; a finished job's is made from its result."""
        with self._lock:
            data, frame, path, has_result = job.preview, job.frame, job.result_path, job.has_result
        if data is None and has_result:
            try:
                with Image.open(path) as img:
                    img.load()
                    data = encode_jpeg(img.convert("RGB"))
            except OSError:
                return None, frame
            with self._lock:
                job.preview = job.preview or data
        return data, frame

    def _snapshot(self, job: Job, *, history: bool, history_from: int | None) -> dict[str, Any]:
        position = None
        if job.status == QUEUED:
            try:
                position = self._waiting.index(job) + 1
            except ValueError:
                position = None
        base = f"/api/jobs/{job.id}"
        data: dict[str, Any] = {
            "id": job.id,
            "status": job.status,
            "position": position,
            "iteration": job.iteration,
            "total_iterations": job.total_iterations,
            "level": job.level,
            "levels": job.levels,
            "size": list(job.size) if job.size else None,
            "losses": dict(job.losses),
            "error": job.error,
            "options": dict(job.options),
            "inputs": dict(job.inputs),
            "seed": job.seed,
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "elapsed": round(job.elapsed, 3),
            "frame": job.frame,
            "has_result": job.has_result,
            "version": job.version,
            "urls": {
                "self": base,
                "events": f"{base}/events",
                "preview": f"{base}/preview?frame={job.frame}" if (job.frame or job.has_result) else None,
                "result": f"{base}/result" if job.has_result else None,
                "download": f"{base}/result?download=true" if job.has_result else None,
            },
        }
        if history:
            data["history"] = [list(p) for p in job.history]
        if history_from is not None:
            data["points"] = [list(p) for p in job.history[history_from:]]
            data["points_end"] = len(job.history)
        return data

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
                self._changed.notify_all()
            try:
                self._execute(job)
            except BaseException:  # never let one job take the worker (and the queue) down with it
                log.exception("job %s: unexpected failure", job.id)
                with self._lock:
                    if job.status == RUNNING:
                        self._set_final(job, FAILED, "internal error (see the server log)")

    def _execute(self, job: Job) -> None:
        from ..engine import StyleTransfer
        from ..imageio import image_to_tensor, save_image

        started = time.perf_counter()
        last_preview = 0.0
        status, error, result = FAILED, None, None
        try:
            assert job.config is not None
            encoder = self._encoder(job.config)
            transfer = StyleTransfer(job.config, encoder=encoder)
            content = image_to_tensor(job.content) if job.content is not None else None
            styles = [image_to_tensor(s) for s in job.styles]
            init = image_to_tensor(job.init) if job.init is not None else None
            run = transfer.start(content, styles, init=init)
            with self._lock:
                job.run = run
                job.seed = run.seed
                job.total_iterations = run.total_iterations
                job.levels = len(run.levels)
                job.version += 1
                if job.cancel_requested:
                    run.stop()
            for progress in run:
                now = time.perf_counter()
                jpeg = None
                final = progress.iteration >= progress.total_iterations
                if final or now - last_preview >= PREVIEW_INTERVAL_S:
                    last_preview = now
                    jpeg = encode_tensor_jpeg(progress.image)
                self._record_progress(job, progress, jpeg)
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
        if result is not None:
            try:
                save_image(result, job.result_path, metadata={"painterly": json.dumps(job.options, sort_keys=True)})
                jpeg = encode_tensor_jpeg(result)
                with self._lock:
                    job.has_result = True
                    job.preview = jpeg
                    job.frame += 1
            except Exception as exc:  # a full disk must fail the job, not the worker
                log.exception("job %s: cannot save the result", job.id)
                status, error = FAILED, f"cannot save the result: {exc}"
        with self._lock:
            job.elapsed = time.perf_counter() - started
            self._set_final(job, status, error)
        self._write_record(job)

    def _record_progress(self, job: Job, progress: Any, jpeg: bytes | None) -> None:
        losses = {k: _finite(v) for k, v in progress.losses.items()}
        with self._lock:
            job.iteration = progress.iteration
            job.total_iterations = progress.total_iterations
            job.level = progress.level
            job.levels = progress.levels
            h, w = progress.size
            job.size = (int(w), int(h))
            job.losses = losses
            job.elapsed = progress.elapsed
            if len(job.history) < self.max_history:
                job.history.append(
                    [progress.iteration] + [losses.get(k) for k in ("total", "content", "style", "tv")]
                )
            if jpeg is not None:
                job.preview = jpeg
                job.frame += 1
            job.version += 1
            self._changed.notify_all()

    def _set_final(self, job: Job, status: str, error: str | None) -> None:
        """Caller holds the lock."""
        job.status = status
        job.error = error
        job.finished = time.time()
        job.run = None
        # The inputs are no longer needed; a finished job keeps only its small record and preview.
        job.content, job.styles, job.init = None, [], None
        job.version += 1
        self._changed.notify_all()

    def _finish_cancelled_waiting(self, job: Job) -> None:
        """Caller holds the lock."""
        self._set_final(job, CANCELLED, None)
        # A job that never ran leaves nothing behind on disk.
        try:
            job.directory.rmdir()
        except OSError:
            pass

    def _write_record(self, job: Job) -> None:
        """Write ``job.json`` (atomically) so a restarted server can show the job in its gallery."""
        if not job.has_result:
            try:
                job.directory.rmdir()  # failed with nothing to show: leave no empty folder
            except OSError:
                pass
            return
        with self._lock:
            record = self._snapshot(job, history=True, history_from=None)
        for transient in ("position", "urls", "version", "frame", "has_result"):
            record.pop(transient, None)
        tmp = job.directory / f".{RECORD_FILE}.{secrets.token_hex(4)}.tmp"
        try:
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, job.directory / RECORD_FILE)
        except OSError:
            log.exception("job %s: cannot write its record", job.id)
            try:
                tmp.unlink()
            except OSError:
                pass

    def _encoder(self, config: Config) -> Any:
        """The job's encoder: from the factory, or from (cached) weights named by the config."""
        if self.encoder_factory is not None:
            return self.encoder_factory(config)
        from ..encoder import VGG19Encoder
        from ..weights import load_weights

        with self._weights_lock:
            weights = self._weights_cache.get(config.weights)
            if weights is None:
                # Reading VGG19 (80 MB) for every job would cost more than a short job's run; keep the
                # last two sources in memory.
                weights = load_weights(config.weights)
                if len(self._weights_cache) >= 2:
                    self._weights_cache.pop(next(iter(self._weights_cache)))
                self._weights_cache[config.weights] = weights
        return VGG19Encoder(weights.state, weights.preprocessing, config.layers_needed, config.pooling)


def encode_jpeg(image: Image.Image, quality: int = PREVIEW_QUALITY) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_tensor_jpeg(image: Any) -> bytes:
    from ..imageio import tensor_to_pil

    return encode_jpeg(tensor_to_pil(image))


def _finite(value: float) -> float | None:
    """JSON has no NaN/Infinity: send null instead."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None
