"""One studio job's state (:class:`Job`) and its JSON view (:func:`snapshot`).

A job's fields are changed only by the :class:`~painterly.web.queue.JobManager` under its lock; the
HTTP layer reads them through the manager's ``snapshot``, so a request never sees a job half updated.
Every change bumps :attr:`Job.version`, which is what the event stream watches.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..config import Config
from ..engine.objective import BUILTIN_TERMS

JOB_ID = re.compile(r"[0-9a-f]{32}")
"""What a job id looks like; anything else is unknown without touching the disk."""

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
INTERRUPTED = "interrupted"
"""The server stopped (or crashed) while the job was queued or running; ``POST /api/jobs/{id}/resume``
runs it again from where it was (:mod:`painterly.web.resume`)."""
FINAL = frozenset({DONE, FAILED, CANCELLED, INTERRUPTED})

PREVIEW_QUALITY = 85
RESULT_FILE = "result.png"
VIDEO_FILE = "result.mp4"
"""A video job's result: the stylised clip (H.264, with the clip's sound)."""
CLIP_STEM = "clip"
"""A video job's uploaded clip, ``clip.<the upload's extension>``, kept until its video is written."""
FRAMES_FOLDER = "frames"
"""A video job's finished frames while it runs (removed once the video is written)."""
IMAGE, VIDEO = "image", "video"
"""The kinds of job: one picture, or a clip frame by frame (:mod:`painterly.web.clip_run`)."""
MASK_FILE = "mask.png"
"""The region mask sent with the job (``regions``), kept with it: the page overlays it on the preview."""
RECORD_FILE = "job.json"
SAVED_FILE = "inputs.pt"
"""What a job needs to run again (its config and decoded inputs), kept from submission until it ends
done, failed or cancelled (:mod:`painterly.web.resume`)."""
CHECKPOINT_FILE = "checkpoint.pt"
"""A running image job's :class:`~painterly.engine.RunState`, written now and then and when the server stops."""

HISTORY_TERMS = ("total",) + BUILTIN_TERMS
"""The losses of a job's history, in order: every term a Config can turn on (the page reads them from
``/api/config``, ``loss_terms``)."""


def history_row(step: int, losses: dict[str, float]) -> list[float | None]:
    """One row of a job's history: ``step`` and the losses of :data:`HISTORY_TERMS` (``None``: not reported)."""
    return [step] + [losses.get(k) for k in HISTORY_TERMS]


@dataclass(eq=False)
class Job:
    """One submitted run and everything known about it."""

    id: str
    directory: Path
    options: dict[str, Any]
    """The run's effective settings, as shown to users (no server paths)."""
    config: Config | None = None
    """None for jobs found on disk at start-up (they are over; nothing runs them again)."""
    images: Any = None
    """The run's :class:`~painterly.engine.Inputs` (from ``load_inputs`` at submit) until it ends."""
    inputs: dict[str, Any] = field(default_factory=dict)
    """Where the images came from (upload names, ``demo``, ``init_job``), for the record."""
    created: float = field(default_factory=time.time)
    status: str = QUEUED
    iteration: int = 0
    total_iterations: int = 0
    level: int = 0
    levels: int = 1
    size: tuple[int, int] | None = None
    """``(height, width)`` of the current level, painterly's one size convention (JSON: named keys)."""
    losses: dict[str, float] = field(default_factory=dict)
    work_fraction: float = 0.0
    """Share of the run's work done (iterations weighted by their level's pixels)."""
    eta: float | None = None
    """Seconds left by the engine's estimate (:attr:`painterly.engine.Progress.eta`); None when unknown."""
    history: list[list[float]] = field(default_factory=list)
    """``[iteration, *the losses of HISTORY_TERMS]`` per iteration (``None``: a term not reported), for
    the loss chart: :func:`history_row`."""
    error: str | None = None
    seed: int | None = None
    started: float | None = None
    finished: float | None = None
    elapsed: float = 0.0
    preview: bytes | None = None
    frame: int = 0
    """How many preview JPEGs have been made: the page watches it change."""
    has_result: bool = False
    has_mask: bool = False
    notes: list[str] = field(default_factory=list)
    """What the library found odd but usable in the request (an upscaled photo, an option without
    effect), one sentence each, naming options as the request spelled them (:attr:`Inputs.notes`)."""
    tiles: tuple[tuple[int, int, int, int], ...] = ()
    """The current (or last) level's tiles, ``(top, left, height, width)`` in the pixels of ``size``
    (:attr:`painterly.engine.Progress.tiles`); empty when evaluated whole."""
    saved: bool = False
    """Whether :data:`SAVED_FILE` is in its folder: an interrupted job can be resumed."""
    state: Any = None
    """The :class:`~painterly.engine.RunState` a resumed image job continues from (None: from the start)."""
    version: int = 0
    cancel_requested: bool = False
    interrupt_requested: bool = False
    """Set when the server stops: the run ends as ``interrupted``, not ``cancelled``."""
    run: Any = None  # the engine's Run while it runs; stop() is called on it from other threads
    kind: str = IMAGE
    video: dict[str, Any] | None = None
    """A video job's frames: ``frame`` (the one being painted, 1-based), ``frames`` (of the piece;
    None: unknown), ``done``, ``fps``, ``audio``; None for an image job."""

    @property
    def result_path(self) -> Path:
        return self.directory / (VIDEO_FILE if self.kind == VIDEO else RESULT_FILE)


RECORDED = (
    "id", "status", "iteration", "total_iterations", "level", "levels", "size", "losses", "error",
    "options", "inputs", "seed", "created", "started", "finished", "elapsed", "history", "notes",
    "kind", "video",
)
"""The fields of ``job.json`` (what a restarted server shows)."""


def snapshot(job: Job, position: int | None, *, history: bool = False, history_from: int | None = None) -> dict[str, Any]:
    """The job as JSON-able data. The caller holds the manager's lock; ``position`` is the job's
    place in the queue (1 = next), or None."""
    base = f"/api/jobs/{job.id}"
    resumable = job.status == INTERRUPTED and job.saved
    data: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "position": position,
        "iteration": job.iteration,
        "total_iterations": job.total_iterations,
        "level": job.level,
        "levels": job.levels,
        "size": {"height": job.size[0], "width": job.size[1]} if job.size else None,
        "losses": dict(job.losses),
        "work_fraction": round(job.work_fraction, 4),
        "eta": None if job.eta is None or job.status != RUNNING else round(job.eta, 1),
        "error": job.error,
        "notes": list(job.notes),
        "options": dict(job.options),
        "inputs": dict(job.inputs),
        "seed": job.seed,
        "created": job.created,
        "started": job.started,
        "finished": job.finished,
        "elapsed": round(job.elapsed, 3),
        "frame": job.frame,
        "has_result": job.has_result,
        "has_mask": job.has_mask,
        "resumable": resumable,
        "tiles": _tiles(job),
        "video": dict(job.video) if job.video is not None else None,
        "version": job.version,
        "urls": {
            "self": base,
            "events": f"{base}/events",
            "preview": f"{base}/preview?frame={job.frame}" if (job.frame or job.has_result) else None,
            "result": f"{base}/result" if job.has_result else None,
            "download": f"{base}/result?download=true" if job.has_result else None,
            "mask": f"{base}/mask" if job.has_mask else None,
            "resume": f"{base}/resume" if resumable else None,
        },
    }
    if history:
        data["history"] = [list(p) for p in job.history]
    if history_from is not None:
        data["points"] = [list(p) for p in job.history[history_from:]]
        data["points_end"] = len(job.history)
    return data


def _tiles(job: Job) -> dict[str, Any] | None:
    """The tile grid and, while the job runs, the tile being evaluated now (read live from the
    engine's :class:`~painterly.engine.tiled.TiledEvaluation`: an iteration over many tiles takes long)."""
    if not job.tiles:
        return None
    work = getattr(job.run, "work", None) if job.status == RUNNING else None
    active = getattr(getattr(work, "evaluation", None), "active", None)
    return {"grid": [list(t) for t in job.tiles], "active": active if isinstance(active, int) else None}


def record(job: Job) -> dict[str, Any]:
    """What ``job.json`` holds (caller holds the manager's lock)."""
    data = snapshot(job, None, history=True)
    return {name: data[name] for name in RECORDED}


def encode_jpeg(image: Image.Image, quality: int = PREVIEW_QUALITY) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_tensor_jpeg(image: Any) -> bytes:
    from ..imageio import tensor_to_pil

    return encode_jpeg(tensor_to_pil(image))


def finite(value: float) -> float | None:
    """JSON has no NaN/Infinity: send null instead."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None
