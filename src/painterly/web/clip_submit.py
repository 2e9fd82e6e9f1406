"""A video job's submission: ``POST /api/jobs`` with a ``clip`` file instead of a ``content`` image
(the one way in for every kind of job; :mod:`~painterly.web.job_routes` hands the request here).

Checked before the job is queued, each refusal one line naming its field: PyAV on the server (501,
``clip``), the options (400, the image options as for an image job plus ``temporal_weight``,
``frame_iterations``, ``long_term``, ``start``, ``duration``), the style images (as an image job's),
the clip's size (413 past ``max_video_bytes``), that it is a video (415: a still image, text or a
damaged file), its frames' size (413 past ``max_pixels``) and that ``start`` is within it (400).
The clip is kept in the job's folder until its video is written (:mod:`~painterly.web.clip_run`), with
what a resume needs (:mod:`~painterly.web.resume`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from ..errors import ConfigError, ImageError, TooManyPixels, shown
from .clip_run import ClipSpec
from .job import CLIP_STEM, VIDEO, Job
from .options import Limits, build_config, check_budget, field_name, planned_iterations, public_options, read_options
from .queue import JobManager
from .resume import accept
from .uploads import UploadRejected, client_name, read_upload

if TYPE_CHECKING:
    from fastapi import UploadFile

VIDEO_OPTIONS = ("temporal_weight", "frame_iterations", "long_term", "start", "duration")
"""The options a video job has besides an image job's (``painterly video``'s flags)."""
CLIP_NAME = re.compile(r"\.[A-Za-z0-9]{1,5}")
CHUNK = 1024 * 1024


def require_video_support() -> None:
    """Refuse (501, naming ``clip``) when this server cannot read video: PyAV or OpenCV is missing."""
    try:
        import av  # noqa: F401  (only whether it is there)
        import cv2  # noqa: F401
    except ImportError:
        raise UploadRejected(501, "clip: this server cannot read video; install its extra there: pip install 'painterly[video]'", field="clip") from None


def submit_clip(
    request: Request, manager: JobManager, clip: UploadFile, styles: list[UploadFile], options: str | None, *,
    defaults: Mapping[str, Any], limits: Limits, max_video_bytes: int, max_upload_bytes: int, max_pixels: int, queue_size: int,
) -> JSONResponse:  # fmt: skip
    """Check a video job's request, keep its clip and queue it; the answer is the job's snapshot (202)."""
    from ..video.clip import parse_time, piece_frames
    from ..video.sequence import VideoSettings

    require_video_support()
    requested = read_options(request, options)
    video = {name: requested[key] for key in list(requested) if (name := field_name(key)) in VIDEO_OPTIONS}
    rest = {k: v for k, v in requested.items() if field_name(k) not in VIDEO_OPTIONS}
    long_term = video.get("long_term", False)
    if not isinstance(long_term, bool):
        raise ConfigError(f"`long_term` must be true or false, got {shown(long_term)}")
    settings = VideoSettings(**{k: video[k] for k in ("temporal_weight", "frame_iterations") if k in video}, long_term=long_term)
    if settings.frame_iterations is not None and settings.frame_iterations > limits.max_iterations:
        raise ConfigError(f"`frame_iterations` must be at most {limits.max_iterations} on this server, got {settings.frame_iterations}")
    start = parse_time(video.get("start") or 0, "start")
    duration = None if video.get("duration") in (None, "") else parse_time(video["duration"], "duration")
    config = build_config(rest, defaults, limits)
    if config.init == "image":
        raise ConfigError("`init`: a video job starts its first frame from content, noise or style")
    if config.regions:
        raise ConfigError("`regions`: a video job has no mask to paint regions by")
    if not styles:
        raise UploadRejected(400, "style: upload at least one style image", field="style")
    if len(styles) > limits.max_styles:
        raise UploadRejected(400, f"style: at most {limits.max_styles} style images, got {len(styles)}", field="style")
    check_budget(config, len(styles), limits)
    style_imgs = [read_upload(s, f"style image {i + 1}", max_upload_bytes, max_pixels, limits.max_size) for i, s in enumerate(styles)]
    if not manager.has_room():
        raise HTTPException(429, f"the queue is full ({queue_size} jobs waiting); try again when one has finished")

    name = client_name(clip)
    job_id, directory = manager.new_directory()
    try:
        suffix = Path(name).suffix if CLIP_NAME.fullmatch(Path(name).suffix) else ".video"
        path = directory / f"{CLIP_STEM}{suffix.lower()}"  # an extension: a name without one reads as a folder of frames
        _save_clip(clip, path, max_video_bytes)
        info = _probe(path, name, max_pixels)
        first, count = info.frame_range(start, duration)
        frames = piece_frames(info.frames, first, count) or piece_frames(info.expected_frames, first, count)
        shown_options = {
            **public_options(config),
            "temporal_weight": settings.temporal_weight,
            "frame_iterations": settings.iterations_after_first(config),
            "long_term": settings.long_term,
            "start": start,
            "duration": duration,
        }
        job = Job(
            id=job_id,
            directory=directory,
            kind=VIDEO,
            options=shown_options,
            config=config,
            images=ClipSpec(path, name, style_imgs, settings, info, first, count, max_pixels),
            inputs={"clip": name, "styles": [client_name(s) for s in styles]},
            total_iterations=planned_iterations(config),
            video={"frame": 0, "frames": frames, "done": 0, "fps": float(info.fps), "audio": info.has_audio},
        )
    except BaseException:
        manager.discard_directory(directory)
        raise
    return accept(manager, job)


def _save_clip(upload: UploadFile, path: Path, limit: int) -> None:
    """Copy the uploaded clip to ``path`` (atomically), refusing (413) one byte past ``limit``."""
    from ..files import write_with

    def copy(tmp: Path) -> None:
        total = 0
        with open(tmp, "wb") as out:
            while chunk := upload.file.read(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise UploadRejected(413, f"clip: the file is larger than the video upload limit of {limit / CHUNK:g} MB", field="clip")
                out.write(chunk)
        if total == 0:
            raise UploadRejected(400, "clip: empty file", field="clip")

    write_with(path, copy)


def _probe(path: Path, name: str, max_pixels: int) -> Any:
    """The clip's :class:`~painterly.video.frames.VideoInfo`; a file that is no video is refused (415),
    frames larger than the server accepts too (413), in words that name the clip as it was sent."""
    from ..video.frames import probe

    try:
        return probe(path, max_pixels=max_pixels)
    except ImageError as exc:
        text = str(exc).replace(str(path), name).replace(" (raise max_pixels)", "")
        status = 413 if isinstance(exc, TooManyPixels) else 415
        raise UploadRejected(status, f"clip: {text}", field="clip") from None
