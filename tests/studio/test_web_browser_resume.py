"""The studio page's Resume button: a job the server's stop interrupted is shown with it (on the stage
and on its gallery card, beside Discard) by the restarted server, and a click runs the job on to its end. Chromium
driven by Playwright on a real server (skipped without them, as test_web_browser.py explains)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from support import noise_png, running_server, tiny_options, tiny_weights, token_headers
from test_web_browser import open_studio, page  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def weights(tmp_path_factory):  # noqa: ANN001, ANN201
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny-vgg.safetensors", seed=3)


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory, weights):  # noqa: ANN001, ANN201 - the `page` fixture opens this server first
    from painterly.web.app import create_app

    with running_server(create_app(tmp_path_factory.mktemp("idle") / "work", default_options=tiny_options(weights))) as url:
        yield url


def test_an_interrupted_job_has_a_resume_button_that_finishes_it(page, tmp_path, weights, monkeypatch):  # noqa: F811
    import painterly.engine as engine
    from painterly.web.app import create_app

    step = engine.Run.step
    monkeypatch.setattr(engine.Run, "step", lambda self: (time.sleep(0.1), step(self))[1])
    work, defaults = tmp_path / "work", tiny_options(weights)
    app = create_app(work, default_options=defaults)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30, headers=token_headers(app)) as http:
        files = {"content": ("photo.png", noise_png(40, 32, seed=1), "image/png"), "style": ("painting.png", noise_png(36, 36, seed=2), "image/png")}
        options = {"size": 32, "iterations": 30, "multiscale": False, "seed": 1}
        job_id = http.post("/api/jobs", files=files, data={"options": json.dumps(options)}).json()["id"]
        deadline = time.monotonic() + 60
        while http.get(f"/api/jobs/{job_id}").json()["iteration"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # The server has stopped mid-job; the restarted one shows it interrupted, with its Resume button.
    app2 = create_app(work, default_options=defaults)
    with running_server(app2) as url:
        open_studio(page, f"{url}/#{job_id}")
        page.wait_for_function("() => current && current.status === 'interrupted'", timeout=20_000)
        assert page.is_visible("#resume") and page.is_enabled("#resume") and page.is_disabled("#cancel")
        assert "Resume continues it" in page.text_content("#progress-text")
        card = page.locator(f'.card[data-id="{job_id}"]')
        card.wait_for(timeout=10_000)
        assert card.get_by_role("button", name="Resume").is_visible() and card.get_by_role("button", name="Discard").is_visible()
        page.click("#resume")
        page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=60_000)
        assert page.is_hidden("#resume") and page.is_visible("#download")
        assert "iteration 30 / 30" in page.text_content("#progress-text")
        # Its card (redrawn when the gallery next polls) has no Resume button any more.
        page.wait_for_function(
            "(id) => ![...document.querySelectorAll(`.card[data-id='${id}'] button`)].some((b) => b.textContent === 'Resume')",
            arg=job_id, timeout=20_000,
        )  # fmt: skip
