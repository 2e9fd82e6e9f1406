"""The studio's job routes: submit a job, list them (the gallery), follow one (status, server-sent
events, preview) and fetch its mask and result; cancel it; resume it once interrupted (:mod:`~painterly.web.resume`). Added by :func:`add_job_routes`; the app
itself, its page and its server information are in :mod:`painterly.web.app`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator, Mapping

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from PIL import Image

from ..errors import shown
from .clip_submit import submit_clip
from .job import FINAL, MASK_FILE, VIDEO, Job
from .options import Limits, build_config, check_budget, notes_as_sent, planned_iterations, public_options, read_options
from .queue import JobManager
from .records import save_mask
from .resume import ResumeRefused, accept, resume
from .uploads import UploadRejected, client_name, read_upload, require_form, sent_once, uploaded_pair

EVENT_POLL_S = 0.1
KEEPALIVE_S = 15.0


def add_job_routes(
    app: FastAPI, manager: JobManager, *, defaults: Mapping[str, Any], limits: Limits,
    max_upload_bytes: int, max_pixels: int, queue_size: int, max_video_bytes: int,
) -> None:  # fmt: skip
    """Add the job routes (``/api/jobs...``) to the studio's ``app``, over its queue ``manager``."""

    def find(job_id: str) -> Job:
        job = manager.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {shown(job_id)} on this server")
        return job

    @app.post(
        "/api/jobs", status_code=202, tags=["jobs"], summary="Submit a job",
        dependencies=[Depends(sent_once("content", "clip", "options", "demo", "init_job", "mask"))],
    )  # fmt: skip
    def submit_job(
        request: Request,
        content: UploadFile | None = File(None, description="the content image"),
        style: list[UploadFile] | None = File(None, description="style image(s); repeat the field for several"),
        options: str | None = Form(None, description='JSON object of CLI options, e.g. {"size": 256, "iterations": 100}'),
        demo: bool = Form(False, description="use the built-in demo pair instead of uploads"),
        init_job: str | None = Form(None, description="start from the result of this (finished) job"),
        mask: UploadFile | None = File(None, description="colour-coded mask over the content; its colours assigned by the `regions` option"),
        clip: UploadFile | None = File(None, description="a video to stylise frame by frame (instead of content); options may add temporal_weight, frame_iterations, long_term, start, duration"),
    ) -> JSONResponse:
        # Everything wrong with the request itself is reported before "queue full": a 429 says "try
        # again later", which would be a lie for a request that can never succeed.
        require_form(request.headers.get("content-type"))
        if clip is not None:  # a video job: the same way in, its own checks
            extra = [n for n, v in (("content", content), ("demo", demo), ("init_job", init_job), ("mask", mask)) if v]
            if extra:
                raise UploadRejected(400, f"{extra[0]}: a video job sends a clip and styles only, not {extra[0]}", field=extra[0])
            return submit_clip(
                request, manager, clip, [s for s in (style or []) if s is not None], options, defaults=defaults, limits=limits,
                max_video_bytes=max_video_bytes, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels, queue_size=queue_size,
            )  # fmt: skip
        # Errors name the option as this request spelled it (style-weight or style_weight).
        requested = read_options(request, options)
        config = build_config(requested, defaults, limits)
        styles_in = [s for s in (style or []) if s is not None]
        check_budget(config, 1 if demo else max(1, len(styles_in)), limits)  # before any decoding
        content_img, style_imgs, content_name, style_names = uploaded_pair(
            demo, content, styles_in, max_styles=limits.max_styles, max_bytes=max_upload_bytes, max_pixels=max_pixels, max_side=limits.max_size
        )
        inputs: dict[str, Any] = (
            {"demo": True, "content": "demo content", "styles": ["demo style"]} if demo else {"content": content_name, "styles": style_names}
        )
        init_img = None
        if init_job:
            if "init" in request.state.option_keys:  # which start is meant? neither wins silently
                raise RequestValidationError(
                    [{"loc": ("body", "init_job"), "msg": "send either init_job or the option init, not both", "type": "value_error"}]
                )
            init_img = _result_image(find(init_job))
            config = config.replace(init="image")  # the record keeps where it came from (init_job)
            inputs["init_job"] = init_job
        from ..api import load_inputs

        # The one way in, as for the CLI and the API: every check on the images and the options together.
        mask_img = None
        if mask is not None:
            mask_img = read_upload(mask, "mask", max_upload_bytes, max_pixels, limits.max_size)
            inputs["mask"] = client_name(mask)
        images = load_inputs(config, content_img, style_imgs, init_img, warn=False, mask=mask_img)

        if not manager.has_room():
            raise HTTPException(429, f"the queue is full ({queue_size} jobs waiting); try again when one has finished")
        job_id, directory = manager.new_directory()
        if mask_img is not None:
            save_mask(mask_img, directory)
        job = Job(
            id=job_id,
            directory=directory,
            has_mask=mask_img is not None,
            options=public_options(config, init_job or None),
            config=config,
            images=images,
            inputs=inputs,
            notes=notes_as_sent(images.notes, request.state.option_keys),
            total_iterations=planned_iterations(config),
        )
        return accept(manager, job)

    @app.get("/api/jobs", tags=["jobs"], summary="Every job on this server, newest first (the gallery)")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [manager.snapshot(j) for j in manager.jobs()], "queue": manager.counts()}

    @app.get("/api/jobs/{job_id}", tags=["jobs"], summary="A job's status, progress, options and loss history")
    def get_job(job_id: str) -> dict[str, Any]:
        return manager.snapshot(find(job_id), history=True)

    @app.delete("/api/jobs/{job_id}", tags=["jobs"], summary="Cancel a queued or running job (or an interrupted one, not to be resumed)")
    def cancel_job(job_id: str) -> dict[str, Any]:
        job = find(job_id)
        snap = manager.snapshot(job)
        before = snap["status"]
        if before in FINAL and not snap["resumable"]:
            raise HTTPException(409, f"job {job_id} is already {before}")
        manager.cancel(job, wait=2.0)
        return manager.snapshot(job)

    @app.post("/api/jobs/{job_id}/resume", status_code=202, tags=["jobs"], summary="Run an interrupted job again from where it was")
    def resume_job(job_id: str) -> JSONResponse:
        job = find(job_id)
        try:
            resume(manager, job)
        except ResumeRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return JSONResponse(manager.snapshot(job), status_code=202)

    @app.get("/api/jobs/{job_id}/events", tags=["jobs"], summary="Progress as a server-sent event stream")
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        job = find(job_id)
        return StreamingResponse(
            _event_stream(manager, job, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/jobs/{job_id}/preview", tags=["jobs"], summary="The latest preview (JPEG)")
    def job_preview(job_id: str) -> Response:
        job = find(job_id)
        data, frame = manager.preview(job)
        if data is None:
            raise HTTPException(404, "no preview yet: the job has not started painting")
        # A finished job's last frame never changes (and its URL names the frame): let browsers keep it.
        cache = "private, max-age=3600" if job.status in FINAL else "no-store"
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": cache, "X-Frame": str(frame)})

    @app.get("/api/jobs/{job_id}/mask", tags=["jobs"], summary="The region mask sent with the job (PNG)")
    def job_mask(job_id: str) -> FileResponse:
        job = find(job_id)
        if not job.has_mask or not (job.directory / MASK_FILE).is_file():
            raise HTTPException(404, f"job {job_id} has no mask (it was sent without one)")
        return FileResponse(job.directory / MASK_FILE, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/jobs/{job_id}/result", tags=["jobs"], summary="The result (PNG; a video job's: MP4)")
    def job_result(job_id: str, download: bool = Query(False, description="as an attachment")) -> FileResponse:
        job = find(job_id)
        snap = manager.snapshot(job)
        if not snap["has_result"]:
            if snap["status"] in FINAL:
                reason = f": {snap['error']}" if snap["error"] else ""
                raise HTTPException(409, f"job {job_id} is {snap['status']} and has no result{reason}")
            raise HTTPException(409, f"job {job_id} is {snap['status']}; the result is ready when it is done")
        video = job.kind == VIDEO
        filename = f"painterly-{job_id[:8]}.{'mp4' if video else 'png'}"
        return FileResponse(
            job.result_path,
            media_type="video/mp4" if video else "image/png",
            filename=filename if download else None,
            headers={"Cache-Control": "no-cache"},
        )


def _result_image(job: Job) -> Image.Image:
    from ..imageio import open_image

    if job.kind == VIDEO:
        raise HTTPException(409, f"init_job: job {job.id} made a video; start from an image job's result")
    if not job.has_result or job.status not in FINAL:
        raise HTTPException(409, f"init_job: job {job.id} has no result to start from (it is {job.status})")
    return open_image(job.result_path, name="init_job result")


def _sse(event: str, data: Mapping[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _event_stream(manager: JobManager, job: Job, request: Request) -> AsyncIterator[str]:
    """``progress`` events while the job changes (with the loss points since the last event), then one
    ``end`` event. The page loads the preview from the URL in each event (no base64 in the stream)."""
    yield "retry: 2000\n\n"
    sent_points = 0
    last_version: tuple[int, Any] = (-1, None)
    last_write = time.monotonic()
    while True:
        snap = manager.snapshot(job, history_from=sent_points)
        # The tile in work changes within an iteration (a tiled one takes long): that is news too.
        version = (snap["version"], (snap["tiles"] or {}).get("active"))
        if version != last_version:
            last_version = version
            sent_points = snap.pop("points_end")
            yield _sse("progress", snap)
            last_write = time.monotonic()
        if snap["status"] in FINAL:
            snap.pop("points", None)
            yield _sse("end", snap)
            return
        if time.monotonic() - last_write > KEEPALIVE_S:
            yield ": keep-alive\n\n"  # proxies and browsers drop silent connections
            last_write = time.monotonic()
        if await request.is_disconnected():
            return
        await asyncio.sleep(EVENT_POLL_S)
