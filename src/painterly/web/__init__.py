"""The local web studio (``painterly serve``): a page to paint with, over a small JSON API.

The app itself is in :mod:`painterly.web.app` (FastAPI), its job routes in :mod:`~painterly.web.job_routes`
and uploads read in :mod:`~painterly.web.uploads`; who may use it, in :mod:`~painterly.web.guard`;
its jobs in :mod:`~painterly.web.job` (state), :mod:`~painterly.web.queue` (queue and workers),
:mod:`~painterly.web.records` (``job.json`` on disk) and :mod:`~painterly.web.worker` (the engine
call); video jobs' submission and run in :mod:`~painterly.web.clip_submit` and
:mod:`~painterly.web.clip_run`; interrupted jobs resumed in :mod:`~painterly.web.resume`. This module only starts servers, and imports FastAPI and uvicorn when it does, so that
``import painterly`` stays light.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Any, Mapping

__all__ = ["serve", "default_workdir", "create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`painterly.web.app.create_app` (imported on first use)."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


def default_workdir() -> Path:
    """Where the studio keeps results unless told: ``studio/`` in painterly's cache directory."""
    from ..files import cache_dir

    return cache_dir() / "studio"


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workdir: str | os.PathLike[str] | None = None,
    *,
    keep: int | None = None,
    default_options: Mapping[str, Any] | None = None,
    resume_interrupted: bool = False,
) -> int:
    """Run the studio until Ctrl-C; prints its URL and token. Returns the exit status for the CLI.

    Binds to this machine only (127.0.0.1) unless ``host`` says otherwise. ``keep``: finished jobs
    kept in the gallery (default 200); ``default_options``: the server's defaults under every
    request's options (e.g. ``weights``, a path a request can never name); ``resume_interrupted``: run
    again the jobs a previous server left interrupted (otherwise each waits for its Resume button).
    """
    import uvicorn

    from .app import create_app as _create_app
    from .records import DEFAULT_KEEP
    from .server import bind, url, uvicorn_config

    app = _create_app(
        Path(workdir) if workdir is not None else None,
        keep=DEFAULT_KEEP if keep is None else keep,
        hosts=_host_names(host),
        default_options=default_options,
        resume_interrupted=resume_interrupted,
    )
    sock = bind(host, port)
    server = uvicorn.Server(uvicorn_config(app))
    # The CLI's layer: the one place the studio talks to the terminal.
    print(
        f"painterly studio: {url(host, sock.getsockname()[1])}  token {app.state.token}"
        f"  (results in {app.state.workdir}; Ctrl-C to stop)",
        flush=True,
    )
    if not _is_loopback(host):
        print("painterly: note: listening beyond this machine: anyone who can reach it can use the studio", file=sys.stderr)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _host_names(host: str) -> tuple[str, ...]:
    """The names a request's Host header may give: ``host`` itself, and for a wildcard address
    (0.0.0.0, ::) this machine's name and addresses."""
    names = [host]
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        name = socket.gethostname()
        names += [name, socket.getfqdn()]
        try:
            names += [info[4][0] for info in socket.getaddrinfo(name, None)]
        except OSError:
            pass
    return tuple(dict.fromkeys(n for n in names if n))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
