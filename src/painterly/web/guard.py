"""Who may use the studio: an ASGI middleware in front of everything else.

A page on any other web site can make the visitor's browser send requests to ``127.0.0.1``: forms
that POST (no CORS preflight), and, through DNS rebinding, requests of any kind under its own host
name. Against both, every request must

* name a host this server answers to in its ``Host`` header (anything else: 421), and
* when it changes something (POST, PUT, PATCH, DELETE), either carry this server's token in the
  ``X-Painterly-Token`` header, or come from a page of this very server: an ``Origin`` equal to
  ``http://<its Host>`` and no ``Sec-Fetch-Site`` saying otherwise (anything else: 403).

The token is made when the server starts, printed by ``painterly serve`` and written into the page,
which sends it with its own requests; scripts send it too. Every response also gets headers that
keep the page out of other sites' frames and the browser from guessing content types.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any, Awaitable, Callable, Iterable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TOKEN_HEADER = "X-Painterly-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


def new_token() -> str:
    """A fresh per-server token (128 random bits, hex)."""
    return secrets.token_hex(16)


def host_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a ``Host`` header may give, without the port: this machine's loopback names and
    ``extra`` (the address the server was told to listen on; IPv6 ones get their brackets)."""
    names = set(LOCAL_HOSTS)
    for name in extra:
        name = name.strip().lower()
        if name:
            names.add(f"[{name}]" if ":" in name and not name.startswith("[") else name)
    return frozenset(names)


class Guard:
    """ASGI middleware: the Host, Origin and token checks above, plus security headers everywhere."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, token: str, hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.token = token
        self.hosts = host_names(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; the studio has no websockets (Starlette closes them)
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        headers = _headers(scope)
        host = headers.get("host", "").lower()
        if not self._known_host(host, scope):
            await _refuse(send_with_headers, 421, "this server does not answer to that host name (the Host header)")
            return
        if scope.get("method", "GET").upper() in UNSAFE_METHODS:
            why = self._unsafe_refusal(headers, host, scope)
            if why is not None:
                await _refuse(send_with_headers, 403, why)
                return
        await self.app(scope, receive, send_with_headers)

    def _known_host(self, host: str, scope: Scope) -> bool:
        server = scope.get("server")
        port = server[1] if server and len(server) > 1 else None
        name, sep, given = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not sep:
            name, given = host, ""
        if name not in self.hosts:
            return False
        if not given:
            return port in (None, 80)
        return port is None or given == str(port)

    def _unsafe_refusal(self, headers: dict[str, str], host: str, scope: Scope) -> str | None:
        sent = headers.get(TOKEN_HEADER.lower())
        if sent is not None:
            if hmac.compare_digest(sent.encode(), self.token.encode()):
                return None
            # Most often a page (or script) from before the server restarted: say what to do about it.
            return (
                f"the {TOKEN_HEADER} header does not match this server's token; it is new each time the server"
                " starts: reload the page, or send the token painterly serve printed"
            )
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{host}"
        if origin is None:
            return f"send this server's token in the {TOKEN_HEADER} header (painterly serve prints it)"
        if origin.lower() != own:
            return f"requests from other sites ({origin[:100]}) may not change anything here"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "requests from other sites may not change anything here"
        return None


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        if key not in out:  # the first of repeated headers counts
            out[key] = value.decode("latin-1")
    return out


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
