"""The studio's HTTP application: the page, the JSON API under it, and the job queue behind it.

``create_app()`` builds a FastAPI app; ``painterly serve`` runs it with uvicorn. Every endpoint is in
``/openapi.json`` (there is no ``/docs`` page: it would load scripts from a CDN). Errors are JSON
``{"detail": "<one line>"}`` with a status that says what went wrong: 400 bad options or a corrupt
image, 403 a change requested without the token (or from another site), 404 unknown job, 409 not
ready, 413 too large, 415 not an image, 421 a host name this server does not answer to, 429 queue full.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image

from .. import __version__
from ..config import Config
from ..errors import PainterlyError
from ..files import make_folder
from .guard import TOKEN_HEADER, Guard, new_token
from .job import FINAL, MASK_FILE, Job
from .limits import BodyLimit
from .options import Limits, build_config, check_budget, parse_options, public_options
from .queue import JobManager, QueueFull
from .records import DEFAULT_KEEP, save_mask
from .worker import EncoderFactory
from .uploads import UploadRejected, decode_upload, read_limited

STATIC_DIR = Path(__file__).with_name("static")
MB = 1024 * 1024

DEFAULT_MAX_PIXELS = 50_000_000
"""50 megapixels: every camera, while bounding what one decode may cost (150 MB as 8-bit RGB)."""

EVENT_POLL_S = 0.1
KEEPALIVE_S = 15.0

TOKEN_PLACEHOLDER = "{{PAINTERLY_TOKEN}}"

API_DESCRIPTION = f"""Neural style transfer in the browser: submit a job, watch it paint, download the result.

Requests that change something (`POST /api/jobs`, `DELETE /api/jobs/{{id}}`) must carry the server's
token in the `{TOKEN_HEADER}` header; `painterly serve` prints it when it starts, e.g.

    curl -H '{TOKEN_HEADER}: TOKEN' -F demo=true -F 'options={{"size": 256}}' http://127.0.0.1:8000/api/jobs

Reading (`GET`) needs no token. Every request must name this server in its `Host` header
(127.0.0.1, localhost, [::1] or the address given to `--host`, with the port)."""

PRESETS = {
    "draft": {"size": 256, "iterations": 150},
    "normal": {"size": 512, "iterations": 300},
    "high": {"size": 768, "iterations": 600},
}
"""Quality presets the page offers (size + iterations)."""


def create_app(
    workdir: Path | str | None = None,
    *,
    max_upload_bytes: int = 20 * MB,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    queue_size: int = 8,
    workers: int = 1,
    encoder_factory: EncoderFactory | None = None,
    default_options: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    keep: int = DEFAULT_KEEP,
    hosts: tuple[str, ...] = (),
    token: str | None = None,
) -> FastAPI:
    """Build the studio app.

    Args:
        workdir: where results are kept (``<workdir>/jobs/<id>/``); default: ``studio`` in the
            painterly cache directory.
        max_upload_bytes: largest accepted image file (413 above it).
        max_pixels: largest accepted ``width * height`` of an image (413 above it).
        queue_size: how many jobs may wait (429 beyond that).
        workers: jobs run at the same time (one per worker thread).
        encoder_factory: ``config -> VGG19Encoder``, to supply the network (tests use a tiny one).
        default_options: the server's defaults under every request's options; may set ``weights``
            to a path, which a request never can.
        limits: the largest size, iteration count and number of style images a job may ask for
            (default: the size that fits this machine's memory with tiles, :mod:`~painterly.web.capacity`).
        keep: how many finished jobs the gallery keeps (the oldest folders are removed beyond it).
        hosts: host names (or addresses) the server answers to besides 127.0.0.1, localhost and
            [::1]; requests naming any other in their ``Host`` header are refused (421).
        token: the token that scripts send in ``X-Painterly-Token`` (default: a fresh random one;
            it is ``app.state.token``).
    """
    from . import default_workdir

    root = Path(workdir) if workdir is not None else default_workdir()
    defaults = dict(default_options or {})
    base_config = Config.for_mode("stylize", **defaults)  # a bad server default fails now, not on the first job
    size_note = None
    if limits is None:
        from .capacity import memory_limits

        limits, capacity = memory_limits(base_config, workers)
        size_note = capacity.note()
    make_folder(root)
    manager = JobManager(root, queue_size=queue_size, workers=workers, encoder_factory=encoder_factory, keep=keep)
    manager.restore()
    token = token or new_token()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        manager.start()
        yield
        await asyncio.to_thread(manager.shutdown)

    app = FastAPI(
        title="painterly studio",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.jobs = manager
    app.state.workdir = root
    app.state.token = token
    # Whole requests: every file at its limit, plus room for the form fields.
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes * (limits.max_styles + 3) + MB)
    app.add_middleware(Guard, token=token, hosts=hosts)  # added last: runs first
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def find(job_id: str) -> Job:
        job = manager.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r} on this server")
        return job

    # --- the page ----------------------------------------------------------------------------
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace(TOKEN_PLACEHOLDER, token)

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        # The page carries this server's token: never cached, never shown in a frame (see guard.py).
        return Response(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

    # --- server information -------------------------------------------------------------------
    @app.get("/api/config", tags=["studio"], summary="Defaults, choices and limits for the page")
    def get_config() -> dict[str, Any]:
        base = public_options(Config.for_mode("stylize", **defaults))
        return {
            "defaults": base,
            "presets": PRESETS,
            "limits": {
                "max_upload_bytes": max_upload_bytes,
                "max_pixels": max_pixels,
                "max_size": limits.max_size,
                "max_size_note": size_note,
                "max_iterations": limits.max_iterations,
                "max_styles": limits.max_styles,
                "queue_size": queue_size,
            },
            "version": __version__,
        }

    @app.get("/api/demo", tags=["studio"], summary="The built-in demo pair")
    def get_demo() -> dict[str, Any]:
        return {"content": "/api/demo/content", "styles": ["/api/demo/style"]}

    @app.get("/api/demo/{which}", tags=["studio"], summary="One image of the built-in demo pair")
    def get_demo_image(which: str) -> FileResponse:
        from ..demo import demo_images

        content, styles = demo_images()
        if which == "content":
            path = content
        elif which == "style":
            path = styles[0]
        else:
            raise HTTPException(404, "the demo images are 'content' and 'style'")
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    # --- jobs -----------------------------------------------------------------------------------
    @app.post("/api/jobs", status_code=202, tags=["jobs"], summary="Submit a job")
    def submit_job(
        request: Request,
        content: UploadFile | None = File(None, description="the content image"),
        style: list[UploadFile] | None = File(None, description="style image(s); repeat the field for several"),
        options: str | None = Form(None, description='JSON object of CLI options, e.g. {"size": 256, "iterations": 100}'),
        demo: bool = Form(False, description="use the built-in demo pair instead of uploads"),
        init_job: str | None = Form(None, description="start from the result of this (finished) job"),
        mask: UploadFile | None = File(None, description="colour-coded mask over the content; its colours assigned by the `regions` option"),
    ) -> JSONResponse:
        # Everything wrong with the request itself is reported before "queue full": a 429 says "try
        # again later", which would be a lie for a request that can never succeed.
        requested = parse_options(options)
        # Errors name the option as this request spelled it (style-weight or style_weight).
        request.state.option_keys = {str(k).replace("-", "_"): str(k) for k in requested}
        config = build_config(requested, defaults, limits)
        styles_in = [s for s in (style or []) if s is not None]
        check_budget(config, 1 if demo else max(1, len(styles_in)), limits)  # before any decoding
        inputs: dict[str, Any]
        if demo:
            if content is not None or styles_in:
                raise HTTPException(400, "send either demo=true or image files, not both")
            content_img, style_imgs = _demo_images()
            inputs = {"demo": True, "content": "demo content", "styles": ["demo style"]}
        else:
            if content is None:
                raise HTTPException(400, "content: no file uploaded (or send demo=true)")
            if not styles_in:
                raise HTTPException(400, "style: upload at least one style image")
            if len(styles_in) > limits.max_styles:
                raise HTTPException(400, f"style: at most {limits.max_styles} style images, got {len(styles_in)}")
            content_img = _read_image(content, "content image", max_upload_bytes, max_pixels, limits.max_size)
            style_imgs = [
                _read_image(s, f"style image {i + 1}", max_upload_bytes, max_pixels, limits.max_size)
                for i, s in enumerate(styles_in)
            ]
            inputs = {"content": _client_name(content), "styles": [_client_name(s) for s in styles_in]}
        init_img = None
        if init_job:
            init_img = _result_image(find(init_job))
            config = config.replace(init="image")  # the record keeps where it came from (init_job)
            inputs["init_job"] = init_job
        from ..api import load_inputs

        # The one way in, as for the CLI and the API: every check on the images and the options together.
        mask_img = None
        if mask is not None:
            mask_img = _read_image(mask, "mask", max_upload_bytes, max_pixels, limits.max_size)
            inputs["mask"] = _client_name(mask)
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
            total_iterations=sum(config.level_iterations) if config.level_iterations else config.iterations,
        )
        try:
            manager.submit(job)
        except QueueFull as exc:
            manager.discard_directory(directory)
            raise HTTPException(429, str(exc)) from None
        snapshot = manager.snapshot(job)
        return JSONResponse(snapshot, status_code=202, headers={"Location": snapshot["urls"]["self"]})

    @app.get("/api/jobs", tags=["jobs"], summary="Every job on this server, newest first (the gallery)")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [manager.snapshot(j) for j in manager.jobs()], "queue": manager.counts()}

    @app.get("/api/jobs/{job_id}", tags=["jobs"], summary="A job's status, progress, options and loss history")
    def get_job(job_id: str) -> dict[str, Any]:
        return manager.snapshot(find(job_id), history=True)

    @app.delete("/api/jobs/{job_id}", tags=["jobs"], summary="Cancel a queued or running job")
    def cancel_job(job_id: str) -> dict[str, Any]:
        job = find(job_id)
        before = manager.snapshot(job)["status"]
        if before in FINAL:
            raise HTTPException(409, f"job {job_id} is already {before}")
        manager.cancel(job, wait=2.0)
        return manager.snapshot(job)

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

    @app.get("/api/jobs/{job_id}/result", tags=["jobs"], summary="The result (PNG)")
    def job_result(job_id: str, download: bool = Query(False, description="as an attachment")) -> FileResponse:
        job = find(job_id)
        snap = manager.snapshot(job)
        if not snap["has_result"]:
            if snap["status"] in FINAL:
                reason = f": {snap['error']}" if snap["error"] else ""
                raise HTTPException(409, f"job {job_id} is {snap['status']} and has no result{reason}")
            raise HTTPException(409, f"job {job_id} is {snap['status']}; the result is ready when it is done")
        filename = f"painterly-{job_id[:8]}.png"
        return FileResponse(
            job.result_path,
            media_type="image/png",
            filename=filename if download else None,
            headers={"Cache-Control": "no-cache"},
        )

    from .batch import add_batch_routes  # the batch view: grids of jobs and their contact sheet

    add_batch_routes(app, manager, defaults=defaults, limits=limits, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels, token=token)
    return app


# --- helpers ----------------------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadRejected)
    async def _upload(_: Request, exc: UploadRejected) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(PainterlyError)
    async def _painterly(request: Request, exc: PainterlyError) -> JSONResponse:
        # Each field the message names is spelled as this request's JSON key for it.
        keys = getattr(request.state, "option_keys", {})
        body: dict[str, Any] = {"detail": exc.render(lambda name: keys.get(name, name))}
        if exc.fields:
            body["field"] = keys.get(exc.fields[0], exc.fields[0])
        return JSONResponse(body, status_code=400)


def _client_name(upload: UploadFile) -> str:
    """The file name the browser sent, for display only (never used as a path)."""
    return os.path.basename(upload.filename or "")[:200] or "upload"


def _read_image(upload: UploadFile, label: str, max_bytes: int, max_pixels: int, max_side: int) -> Image.Image:
    data = read_limited(upload.file, max_bytes, label)
    return decode_upload(data, label, max_pixels=max_pixels, max_side=max_side)


def _demo_images() -> tuple[Image.Image, list[Image.Image]]:
    from ..demo import demo_images
    from ..imageio import open_image

    content, styles = demo_images()
    return open_image(content), [open_image(s) for s in styles]


def _result_image(job: Job) -> Image.Image:
    from ..imageio import open_image

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
