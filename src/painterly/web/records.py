"""The studio's job records on disk: ``<workdir>/jobs/<id>/job.json`` (+ ``result.png``, or a video
job's ``result.mp4``).

A job's record is written when it is submitted and again whenever its status changes, atomically
(:func:`painterly.files.write_bytes`), so that a server killed at any moment leaves only whole
records. A restarted server shows every job that has one: finished jobs as they were, jobs that were
queued or running as ``interrupted`` (with whatever they had painted, and what they need to be
resumed: :mod:`painterly.web.resume`). Only the newest ``keep`` finished jobs are kept.

Nothing the user had is lost: a job folder whose record cannot be used (unreadable, or a status this
server does not know) but that holds an image the job made (``result.png``, ``preview.jpg``) is left
alone at start (logged, not shown as a job, never pruned). Only a folder with nothing of value, a
submission cut short before its first record, is removed.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import PRIVATE_FOLDER, is_temp_name, make_folder, remove_quietly, write_bytes
from .job import CHECKPOINT_FILE, CLIP_STEM, FINAL, FRAMES_FOLDER, INTERRUPTED, JOB_ID, MASK_FILE, QUEUED, RECORD_FILE, RESULT_FILE
from .job import RUNNING, SAVED_FILE, VIDEO, VIDEO_FILE, Job

log = logging.getLogger("painterly.web")

PREVIEW_FILE = "preview.jpg"
"""The latest preview of a running job, so that one cut short by a crash still shows something."""

MADE_FILES = (RESULT_FILE, VIDEO_FILE, PREVIEW_FILE)
"""The images a job makes: a folder holding one is never removed for want of a record."""

DEFAULT_KEEP = 200
INTERRUPTED_MESSAGE = "the server stopped before this job finished"


class RecordStore:
    """Job folders and their ``job.json`` under ``jobs_dir`` (0700 folders, 0600 files)."""

    def __init__(self, jobs_dir: Path, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ConfigError(f"`keep` must be at least 1, got {keep}")
        self.jobs_dir = Path(jobs_dir)
        self.keep = keep

    def new_directory(self) -> tuple[str, Path]:
        """A fresh job id and its (created, empty, private) folder."""
        make_folder(self.jobs_dir)
        while True:
            job_id = secrets.token_hex(16)
            path = self.jobs_dir / job_id
            try:
                path.mkdir(mode=PRIVATE_FOLDER)
            except FileExistsError:  # 2**-128 odds, but cheap to handle
                continue
            return job_id, path

    def write(self, job: Job, data: dict[str, Any]) -> None:
        """Replace ``job``'s record with ``data``; a failure is logged (the job itself goes on)."""
        try:
            write_bytes(job.directory / RECORD_FILE, json.dumps(data, allow_nan=False).encode())
        except (OSError, ValueError):
            log.exception("job %s: cannot write its record", job.id)

    def write_preview(self, job: Job, jpeg: bytes) -> None:
        try:
            write_bytes(job.directory / PREVIEW_FILE, jpeg)
        except OSError:
            log.exception("job %s: cannot write its preview", job.id)

    def read_preview(self, job: Job) -> bytes | None:
        try:
            return (job.directory / PREVIEW_FILE).read_bytes()
        except OSError:
            return None

    def remove(self, job: Job) -> None:
        """Delete a job's folder and everything in it."""
        if JOB_ID.fullmatch(job.directory.name) and job.directory.parent == self.jobs_dir:
            shutil.rmtree(job.directory, ignore_errors=True)

    def restore(self) -> list[Job]:
        """Every job with a record, oldest first; unfinished ones become ``interrupted`` (and are
        recorded so). A job folder without a usable record is removed if it holds no image the job
        made, and left alone (logged) if it does."""
        if not self.jobs_dir.is_dir():
            return []
        found: list[Job] = []
        for entry in self.jobs_dir.iterdir():
            if not JOB_ID.fullmatch(entry.name) or not entry.is_dir() or entry.is_symlink():
                continue  # not a folder this server made: leave it alone
            job = self._load(entry)
            if job is None:
                kept = [name for name in MADE_FILES if (entry / name).is_file()]
                if kept:
                    log.warning("job folder %s has no usable %s; left as it is (it holds %s)", entry, RECORD_FILE, ", ".join(kept))
                else:
                    shutil.rmtree(entry, ignore_errors=True)  # a submission cut short before its record
                continue
            for child in entry.iterdir():
                if is_temp_name(child.name):
                    remove_quietly(child)  # a write cut short by the crash
            found.append(job)
        found.sort(key=lambda j: j.created)
        return found

    def excess(self, jobs: list[Job]) -> list[Job]:
        """The finished jobs beyond the newest ``keep`` (oldest first): the ones to remove."""
        finished = sorted((j for j in jobs if j.status in FINAL), key=lambda j: j.created)
        return finished[: max(0, len(finished) - self.keep)]

    def _load(self, entry: Path) -> Job | None:
        try:
            data = json.loads((entry / RECORD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or data.get("id") not in (None, entry.name):
            return None
        job = Job(id=entry.name, directory=entry, options=_dict(data.get("options")))
        for name, kind in _FIELDS.items():
            value = data.get(name)
            if isinstance(value, kind) and not isinstance(value, bool):
                setattr(job, name, value)
        if job.status not in FINAL | {QUEUED, RUNNING}:
            return None
        job.losses = _dict(data.get("losses"))
        job.inputs = _dict(data.get("inputs"))
        notes = data.get("notes")
        job.notes = [n for n in notes if isinstance(n, str)] if isinstance(notes, list) else []
        history = data.get("history")
        job.history = [p for p in history if isinstance(p, list)] if isinstance(history, list) else []
        size = data.get("size")
        sides = (size.get("height"), size.get("width")) if isinstance(size, dict) else ()
        job.size = tuple(sides) if len(sides) == 2 and all(isinstance(v, int) for v in sides) else None
        unfinished = job.status in (QUEUED, RUNNING, INTERRUPTED)
        job.saved = unfinished and (entry / SAVED_FILE).is_file()
        if not job.saved:  # nothing can run it again (over, or interrupted under an older painterly)
            for name in (SAVED_FILE, CHECKPOINT_FILE):
                remove_quietly(entry / name)
        if data.get("kind") == VIDEO:
            job.kind, video = VIDEO, data.get("video")
            job.video = _dict(video) if isinstance(video, dict) else {}
            if not job.saved:  # nothing runs it again: a crash's frames and the upload are of no more use
                shutil.rmtree(entry / FRAMES_FOLDER, ignore_errors=True)
                for clip in entry.glob(f"{CLIP_STEM}.*"):
                    remove_quietly(clip)
        job.has_result = job.result_path.is_file()
        job.has_mask = (entry / MASK_FILE).is_file()
        if (not job.has_result or job.kind == VIDEO) and (entry / PREVIEW_FILE).is_file():
            job.frame = 1  # a crash left the last preview (a video's: its last frame): the page can show it
        if job.status in (QUEUED, RUNNING):
            job.status, job.error = INTERRUPTED, INTERRUPTED_MESSAGE
            job.finished = job.finished or time.time()
            data.update(status=job.status, error=job.error, finished=job.finished)
            self.write(job, data)
        return job


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "status": str,
    "iteration": int,
    "total_iterations": int,
    "level": int,
    "levels": int,
    "error": str,
    "seed": int,
    "elapsed": (int, float),
    "created": (int, float),
    "started": (int, float),
    "finished": (int, float),
}


def save_mask(mask: Any, directory: Path) -> None:
    """A job's region mask (a PIL image), kept with it as ``mask.png`` (atomically, like every file of a job)."""
    import io

    buffer = io.BytesIO()
    mask.convert("RGB").save(buffer, format="PNG")
    write_bytes(directory / MASK_FILE, buffer.getvalue())


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}

