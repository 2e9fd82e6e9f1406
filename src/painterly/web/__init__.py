"""The local web studio (``painterly serve``): a page to paint with, over a small JSON API.

The app itself is in :mod:`painterly.web.app` (FastAPI), its job queue in :mod:`painterly.web.jobs`.
This module only starts servers, and imports FastAPI and uvicorn when it does, so that
``import painterly`` stays light.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import PainterlyError

__all__ = ["serve", "running_server", "default_workdir", "create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`painterly.web.app.create_app` (imported on first use)."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


def default_workdir() -> Path:
    """Where the studio keeps results unless told: ``studio/`` in painterly's cache directory."""
    env = os.environ.get("PAINTERLY_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "studio"
    import platformdirs

    return Path(platformdirs.user_cache_dir("painterly")) / "studio"


def serve(host: str = "127.0.0.1", port: int = 8000, workdir: str | os.PathLike[str] | None = None) -> int:
    """Run the studio until Ctrl-C; prints its URL. Returns the exit status for the CLI.

    Binds to this machine only (127.0.0.1) unless ``host`` says otherwise.
    """
    import uvicorn

    from .app import create_app as _create_app

    app = _create_app(Path(workdir) if workdir is not None else None)
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])
    server = uvicorn.Server(_uvicorn_config(app))
    # The CLI's layer: the one place the studio talks to the terminal.
    print(f"painterly studio: {url}  (results in {app.state.workdir}; Ctrl-C to stop)", flush=True)
    if not _is_loopback(host):
        print("painterly: note: listening beyond this machine: anyone who can reach it can use the studio", file=sys.stderr)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


# Flags for driving a headless Chromium at the studio (the browser tests and the screenshot script):
# no sandbox (containers run as root), no GPU, and none of the background traffic an offline
# machine cannot serve.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@contextlib.contextmanager
def running_server(app: Any, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 20.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yields its base URL (``http://host:port``).

    For tests and scripts: ``port=0`` picks a free port. The server is stopped on exit.
    """
    import uvicorn

    sock = _bind(host, port)
    server = uvicorn.Server(_uvicorn_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="painterly-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise PainterlyError("the studio server did not start")
            time.sleep(0.02)
        yield _url(host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def _uvicorn_config(app: Any) -> Any:
    import uvicorn

    # Event streams stay open while a job runs: give them a moment, then close them on shutdown.
    return uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2, lifespan="on")


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves: port 0 works, and a busy port is a one-line error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PainterlyError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "the port is in use" if exc.errno in (98, 48, 10048) else (exc.strerror or str(exc))
        raise PainterlyError(f"cannot listen on {host}:{port}: {reason} (try --port)") from None
    sock.setblocking(False)
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
