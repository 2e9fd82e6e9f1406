"""Helpers for driving the studio in tests (and in ``scripts/screenshot_studio.py``).

``running_server`` runs the real app with the real uvicorn settings (``painterly.web.server``) on a
free port of 127.0.0.1 in a background thread; ``CHROMIUM_ARGS`` are the flags for a headless
Chromium on a machine without a display, a GPU or the internet.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator

# No sandbox (containers run as root), no GPU, and none of the background traffic an offline machine
# cannot serve.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

TOKEN_HEADER = "X-Painterly-Token"

def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG of random colours, ``width`` x ``height``: an upload for the studio."""
    import io

    import numpy as np
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def tiny_weights(path: Any, seed: int = 0) -> Any:
    """A weights file the studio loads: real VGG19 shapes up to conv2_2 (a valid prefix), random values
    (about 1 MB, fast). Returns ``path``."""
    from painterly.encoder import random_state
    from painterly.weights import Weights, save_weights

    state = random_state((64, 128, 32, 32, 32), seed=seed)
    save_weights(Weights({k: v for k, v in state.items() if k.startswith(("conv1_", "conv2_"))}, "caffe", "test"), path)
    return path


def tiny_options(weights: Any, **more: Any) -> dict[str, Any]:
    """Options for the tiny network of :func:`tiny_weights` (its layers), plus ``more``."""
    return {"weights": str(weights), "content_layers": "relu2_2", "style_layers": "relu1_1,relu2_1", **more}


@contextlib.contextmanager
def running_server(app: Any, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 20.0, **config: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yields its base URL (``http://host:port``).

    ``port=0`` picks a free port; ``config`` goes to :func:`painterly.web.server.uvicorn_config`
    (e.g. ``header_timeout``). The server is stopped on exit.
    """
    import uvicorn

    from painterly.web.server import bind, url, uvicorn_config

    sock = bind(host, port)
    server = uvicorn.Server(uvicorn_config(app, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="painterly-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the studio server did not start")
            time.sleep(0.02)
        yield url(host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def token_headers(app: Any) -> dict[str, str]:
    """The header a script sends to change things on ``app``'s server."""
    return {TOKEN_HEADER: app.state.token}


def start_single_scale_job(page: Any, size: int, iterations: int) -> None:
    """In the studio page (a Playwright page with its images chosen): custom settings, single scale,
    ``size`` px and ``iterations``, then Start."""
    page.select_option("#preset", "custom")
    page.fill("#size", str(size))
    page.fill("#iterations", str(iterations))
    page.uncheck("#multiscale")
    page.click("#start")
