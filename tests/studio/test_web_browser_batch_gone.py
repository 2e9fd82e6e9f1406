"""The studio's batch view when the server no longer has the batch it follows (its record removed, as
after a move to another workdir): the 404's line is shown, polling stops, and the status label says
the batch is gone instead of keeping its last count; the same on a reload of ``/batch#<id>``.
Chromium driven by Playwright on a real server (skipped without them, as test_web_browser.py explains)."""

from __future__ import annotations

import time

import httpx
import pytest

from support import running_server, tiny_options, tiny_weights, token_headers
from test_web_browser import page, write_png  # noqa: F401

pytestmark = pytest.mark.browser

GONE = "gone: the server no longer has this batch"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):  # noqa: ANN001, ANN201
    from painterly.web.app import create_app

    tmp = tmp_path_factory.mktemp("studio-gone")
    weights = tiny_weights(tmp / "tiny-vgg.safetensors", seed=3)
    app = create_app(tmp / "work", default_options=tiny_options(weights))
    with running_server(app) as url:
        yield url, app, tmp / "work"


@pytest.fixture(scope="module")
def studio_url(studio):  # noqa: ANN001, ANN201 - the `page` fixture opens this server
    return studio[0]


def test_a_batch_the_server_no_longer_has_says_gone_and_stops_polling(page, studio, tmp_path):  # noqa: ANN001, F811
    url, app, workdir = studio
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/api/batches/" in r.url and "/sheet" not in r.url else None)
    page.goto(f"{url}/batch")
    page.set_input_files("#batch-content", str(write_png(tmp_path / "photo.png", 48, 40, seed=1)))
    page.set_input_files("#batch-styles", [str(write_png(tmp_path / "a.png", 40, 40, seed=2)), str(write_png(tmp_path / "b.png", 40, 40, seed=3))])
    page.fill("#batch-size", "40")
    page.fill("#batch-iterations", "5000")  # still running when its record goes
    page.click("#batch-start")
    page.wait_for_function("() => /^0\\/2 done/.test(document.getElementById('batch-status').textContent)", timeout=20_000)
    page.wait_for_function("() => location.hash.length > 1", timeout=10_000)
    batch_id = page.evaluate("() => location.hash.slice(1)")
    record = workdir / "batches" / f"{batch_id}.json"
    jobs = [c["job"] for c in httpx.get(f"{url}/api/batches/{batch_id}", timeout=10).json()["cells"]]
    try:
        record.unlink()
        page.wait_for_function(f"() => document.getElementById('batch-status').textContent === {GONE!r}", timeout=20_000)
        assert f"no batch '{batch_id}' on this server" in page.text_content("#batch-error")
        assert page.is_visible("#batch-error")
        seen = len(polls)
        time.sleep(2.0)  # five polling periods: none comes
        assert len(polls) == seen, polls[seen:]
        # A reload of the page's address meets the same 404 at once.
        page.reload()
        page.wait_for_function(f"() => document.getElementById('batch-status').textContent === {GONE!r}", timeout=10_000)
    finally:
        for job in jobs:  # the long jobs are the server's own: stop them
            httpx.delete(f"{url}/api/jobs/{job}", headers=token_headers(app), timeout=10)
