"""Running the studio's app with uvicorn: the listening socket and the connection limits.

A client that opens connections and never finishes its request must not be able to take every file
descriptor the server has. uvicorn 0.54 bounds the size of a request's head
(``h11_max_incomplete_event_size``), idle keep-alive connections (``timeout_keep_alive``) and busy ones
(``limit_concurrency``: 503 beyond it), but not the *time* a client may take to send its headers;
:func:`uvicorn_config` adds that (``HEADER_TIMEOUT_S``), and closes connections beyond
``MAX_CONNECTIONS`` at once instead of holding them open.
"""

from __future__ import annotations

import socket
from typing import Any

from ..errors import ConfigError, PainterlyError

HEADER_TIMEOUT_S = 10.0
"""A connection must send a whole request head within this long (first, and after each response)."""
MAX_CONNECTIONS = 100
"""Open connections at once (the page uses a handful); more are closed on arrival."""
KEEP_ALIVE_S = 5
MAX_HEAD_BYTES = 64 * 1024


def uvicorn_config(app: Any, *, header_timeout: float = HEADER_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        http=_timed_protocol(header_timeout, max_connections),
        log_level="warning",
        access_log=False,
        # Event streams stay open while a job runs: give them a moment, then close them on shutdown.
        timeout_graceful_shutdown=2,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=max_connections,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        lifespan="on",
    )


def _timed_protocol(header_timeout: float, max_connections: int) -> type:
    """uvicorn's h11 protocol, plus a deadline for each request head and a cap on connections."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        _head_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()  # frees the descriptor now; the client may retry
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # a whole head has arrived

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # the next request's head, if any, gets the same deadline

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return TimedH11Protocol


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves: port 0 works, and a busy port is a one-line error."""
    if not 0 <= port <= 65535:  # the resolver would take 99999 modulo 65536, and listen elsewhere
        raise ConfigError(f"`port` must be between 0 and 65535 (0: any free port), got {port}")
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


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
