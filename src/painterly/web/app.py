"""The studio's HTTP application: the page, the JSON API under it, and the job queue behind it.

``create_app()`` builds a FastAPI app; ``painterly serve`` runs it with uvicorn. Every endpoint is in
``/openapi.json`` (there is no ``/docs`` page: it would load scripts from a CDN). Errors are JSON
``{"detail": "<one line>"}`` with a status that says what went wrong: 400 bad options or a corrupt
image, 403 a change requested without the token (or from another site), 404 unknown job, 409 not
ready (or, resuming, a job that is not interrupted), 410 an interrupted job with nothing kept to resume it from,
413 too large, 415 not an image (or not a video, or a body that is not a form), 501 video without PyAV on the server, 421 a host name this server
does not answer to, 422 a form field of the wrong kind (or sent twice, or init_job with the option
init), 429 queue full, 507 no room on the server's disk for a job's inputs. A 400 or 422 about one field also names it: ``{"detail": ..., "field": "<name>"}``.

This module holds the app, its page and the server information; the routes of jobs are added by
:mod:`~painterly.web.job_routes`, those of batches by :mod:`~painterly.web.batch`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..config import Config
from ..engine import LOSS_TERMS
from ..errors import ConfigError, PainterlyError
from ..files import make_folder
from .guard import TOKEN_HEADER, Guard, new_token
from .job import HISTORY_TERMS
from .job_routes import add_job_routes
from .limits import BodyLimit
from .options import Limits, public_options
from .queue import JobManager
from .records import DEFAULT_KEEP
from .worker import EncoderFactory
from .uploads import UploadRejected

STATIC_DIR = Path(__file__).with_name("static")
MB = 1024 * 1024

DEFAULT_MAX_PIXELS = 50_000_000
"""50 megapixels: every camera, while bounding what one decode may cost (150 MB as 8-bit RGB)."""

VIDEO_UPLOADS = 10
"""A clip may be this many image uploads big (minutes of a phone's video at the default 20 MB each)."""

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

LOSS_LABELS = {"tv": "smoothness"}
"""How the page names a loss term whose report name is not a word to users (the others: as named)."""


def create_app(
    workdir: Path | str | None = None,
    *,
    max_upload_bytes: int = 20 * MB,
    max_video_bytes: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    queue_size: int = 8,
    workers: int = 1,
    encoder_factory: EncoderFactory | None = None,
    default_options: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    keep: int = DEFAULT_KEEP,
    hosts: tuple[str, ...] = (),
    token: str | None = None,
    resume_interrupted: bool = False,
) -> FastAPI:
    """Build the studio app.

    Args:
        workdir: where results are kept (``<workdir>/jobs/<id>/``); default: ``studio`` in the
            painterly cache directory.
        max_upload_bytes: largest accepted image file (413 above it).
        max_video_bytes: largest accepted clip of a video job (413 above it; default: ten image
            uploads' worth, 200 MB by default).
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
        resume_interrupted: queue again, at start, the jobs a previous server left interrupted
            (default: they wait for their Resume button; :mod:`~painterly.web.resume`).
    """
    from . import default_workdir

    root = Path(workdir) if workdir is not None else default_workdir()
    max_video_bytes = VIDEO_UPLOADS * max_upload_bytes if max_video_bytes is None else max_video_bytes
    defaults = dict(default_options or {})
    base_config = Config.for_mode("stylize", **defaults)  # a bad server default fails now, not on the first job
    size_note = None
    if limits is None:
        from .capacity import memory_limits

        limits, capacity = memory_limits(base_config, workers)
        size_note = capacity.note()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"`workdir` {root} is a file; the studio keeps its results in a folder")
    try:
        make_folder(root)
    except OSError as exc:
        raise ConfigError(f"`workdir` {root}: cannot create it ({exc.strerror or exc})") from None
    manager = JobManager(root, queue_size=queue_size, workers=workers, encoder_factory=encoder_factory, keep=keep)
    manager.restore()
    token = token or new_token()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        manager.start()
        if resume_interrupted:
            from .resume import resume_all

            await asyncio.to_thread(resume_all, manager)
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
    largest = max(max_upload_bytes * (limits.max_styles + 3), max_video_bytes + max_upload_bytes * limits.max_styles)
    app.add_middleware(BodyLimit, max_bytes=largest + MB)
    app.add_middleware(Guard, token=token, hosts=hosts)  # added last: runs first
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

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
            # The loss terms a job's losses and history hold (history: in this order, after the iteration).
            # `always`: reported by every run (0 when off); the others only by a run that has them.
            "loss_terms": [{"name": n, "label": LOSS_LABELS.get(n, n), "always": n in LOSS_TERMS} for n in HISTORY_TERMS],
            "limits": {
                "max_upload_bytes": max_upload_bytes,
                "max_video_bytes": max_video_bytes,
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

    add_job_routes(
        app, manager, defaults=defaults, limits=limits, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels,
        queue_size=queue_size, max_video_bytes=max_video_bytes,
    )  # fmt: skip

    from .batch import add_batch_routes  # the batch view: grids of jobs and their contact sheet

    add_batch_routes(app, manager, defaults=defaults, limits=limits, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels, token=token)
    return app


# --- helpers ----------------------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadRejected)
    async def _upload(_: Request, exc: UploadRejected) -> JSONResponse:
        body = {"detail": str(exc), **({"field": exc.field} if exc.field else {})}
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer is a list of pydantic records; the studio's errors are one line.
        field, detail = _validation_line(exc.errors())
        return JSONResponse({"detail": detail, "field": field}, status_code=422)

    @app.exception_handler(PainterlyError)
    async def _painterly(request: Request, exc: PainterlyError) -> JSONResponse:
        # Each field the message names is spelled as this request's JSON key for it.
        keys = getattr(request.state, "option_keys", {})
        body: dict[str, Any] = {"detail": exc.render(lambda name: keys.get(name, name))}
        if exc.fields:
            body["field"] = keys.get(exc.fields[0], exc.fields[0])
        return JSONResponse(body, status_code=400)


def _validation_line(errors: Any) -> tuple[str, str]:
    """(field, one line) for FastAPI's validation errors: each named by its form or query field."""
    parts: list[tuple[str, str]] = []
    for error in errors or ():
        loc = [str(x) for x in error.get("loc", ()) if x not in ("body", "query", "path", "header")]
        field = loc[0] if loc else "request"
        message = str(error.get("msg", "not valid"))
        if "UploadFile" in message:  # a text field where a file belongs (curl -F name=value, not name=@file)
            message = f"expected a file, got text (curl -F {field}=@FILE)"
        parts.append((field, f"{field}: {message}"))
    if not parts:
        return "request", "the request is not valid"
    return parts[0][0], "; ".join(dict.fromkeys(line for _, line in parts))
