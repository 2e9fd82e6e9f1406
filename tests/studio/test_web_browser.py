"""The studio page in a real browser: Chromium driven by Playwright, against the real server.

Uses Debian's Chromium (``/usr/bin/chromium``, or ``$PAINTERLY_CHROMIUM``), never a downloaded one.
Skipped when there is no Chromium or no Playwright, unless ``PAINTERLY_REQUIRE_BROWSER`` is set, in
which case that is a failure. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support import CHROMIUM_ARGS, running_server, start_single_scale_job, tiny_options, tiny_weights

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("PAINTERLY_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def require_browser() -> tuple[object, str]:
    """(playwright.sync_api module, chromium path), or skip — or fail when a browser is required."""
    why = None
    try:
        import playwright.sync_api as sync_api
    except ImportError:
        sync_api, why = None, "Playwright for Python is not installed (pip install playwright)"
    path = chromium_path()
    if path is None and why is None:
        why = "no Chromium at /usr/bin/chromium (apt-get install chromium)"
    if why is not None:
        if os.environ.get("PAINTERLY_REQUIRE_BROWSER"):
            pytest.fail(f"PAINTERLY_REQUIRE_BROWSER is set but {why}")
        pytest.skip(why)
    return sync_api, path


def write_png(path: Path, width: int, height: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x ^ y) % 256], -1)
    arr = (base + rng.integers(0, 60, (height, width, 3))).clip(0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory):
    from painterly.web.app import create_app

    tmp = tmp_path_factory.mktemp("studio")
    weights = tiny_weights(tmp / "tiny-vgg.safetensors", seed=3)
    app = create_app(
        tmp / "work",
        default_options=tiny_options(weights),
    )
    with running_server(app) as url:
        yield url


def open_studio(page, url: str) -> None:
    """Load the studio page and wait until it is ready: it wires its controls once its config has
    arrived (app.js init(), in one go after the fetch), and a test that acts before then races it."""
    page.goto(url)
    page.wait_for_function("() => serverConfig !== null", timeout=20_000)


@pytest.fixture
def page(studio_url):
    sync_api, path = require_browser()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=list(CHROMIUM_ARGS))
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        # The page must work under its own Content-Security-Policy: a blocked script, style or image is a defect.
        blocked: list[str] = []
        pg.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)
        open_studio(pg, studio_url)
        yield pg
        context.close()
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"
        assert not blocked, f"blocked by the page's Content-Security-Policy: {blocked}"


def test_upload_watch_cancel_then_complete_and_download(page, tmp_path):
    content = write_png(tmp_path / "photo.png", 64, 48, seed=1)
    style = write_png(tmp_path / "painting.png", 56, 56, seed=2)
    page.set_input_files("#content-input", str(content))
    page.set_input_files("#style-input", str(style))
    assert page.locator("#content-thumbs img").count() == 1
    assert page.locator("#style-thumbs img").count() == 1

    # A long job: watch it paint, then cancel it.
    start_single_scale_job(page, 64, 5000)
    page.wait_for_function("() => document.getElementById('status').textContent === 'running'", timeout=20_000)
    page.wait_for_function("() => Number(document.getElementById('frame-count').textContent) >= 1", timeout=20_000)
    first_src = page.get_attribute("#preview", "src")
    page.wait_for_function("() => Number(document.getElementById('frame-count').textContent) >= 3", timeout=20_000)
    # The engine's ETA, as the command line shows it (m:ss).
    page.wait_for_function("() => /ETA \\d+:\\d\\d/.test(document.getElementById('progress-text').textContent)", timeout=20_000)
    assert page.get_attribute("#preview", "src") != first_src  # the picture really changed
    page.wait_for_function("() => document.getElementById('chart') && document.getElementById('loss-total').textContent !== '–'")
    page.screenshot(path=str(ARTIFACTS / "studio-running.png"), full_page=True)
    page.click("#cancel")
    page.wait_for_function("() => document.getElementById('status').textContent === 'cancelled'", timeout=3_000)
    assert page.is_disabled("#cancel")

    # A short one: let it finish and download the PNG.
    page.fill("#iterations", "20")
    page.click("#start")
    page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=30_000)
    page.wait_for_selector("#download:not([hidden])")
    page.screenshot(path=str(ARTIFACTS / "studio-done.png"), full_page=True)
    with page.expect_download(timeout=10_000) as info:
        page.click("#download")
    download = info.value
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(data)).size == (64, 48)
    assert download.suggested_filename.endswith(".png")

    # The gallery shows the finished job, and it can seed the next run.
    page.wait_for_selector(".card .badge[data-status=done]", timeout=10_000)
    page.locator(".card", has=page.locator(".badge[data-status=done]")).first.get_by_text("Use as start").click()
    assert page.is_visible("#init-job-chip")
    assert page.is_disabled("#init")


def test_demo_pair_and_a_bad_option_shows_the_servers_message(page):
    page.click("#use-demo")
    assert page.get_attribute("#content-thumbs img", "src") == "/api/demo/content"
    page.select_option("#preset", "custom")
    page.fill("#size", "100000")  # over the server's limit: the message comes back to the form
    page.click("#start")
    page.wait_for_selector("#form-error:not([hidden])", timeout=10_000)
    # The server's limit is what fits its memory with tiles (web/capacity.py); the page offers it.
    top = page.evaluate("() => serverConfig.limits.max_size")
    assert f"at most {top}" in page.text_content("#form-error")
    assert page.get_attribute("#size", "max") == str(top)
    assert f"up to {top}" in page.text_content("#size-limit")


@pytest.fixture
def tiled_studio_url(tmp_path):
    """A studio whose jobs are evaluated by tiles of 16 px (the server's default `tile`)."""
    from painterly.web.app import create_app

    weights = tiny_weights(tmp_path / "tiny-vgg.safetensors", seed=3)
    defaults = tiny_options(weights, tile=16)
    with running_server(create_app(tmp_path / "work", default_options=defaults)) as url:
        yield url


def test_a_tiled_job_shows_its_tile_grid_and_the_tile_in_work(page, tiled_studio_url, tmp_path):
    open_studio(page, tiled_studio_url)
    page.set_input_files("#content-input", str(write_png(tmp_path / "photo.png", 64, 48, seed=1)))
    page.set_input_files("#style-input", str(write_png(tmp_path / "painting.png", 56, 56, seed=2)))
    start_single_scale_job(page, 64, 5000)
    # 64×48 px by 16 px tiles: 4 × 3, outlined over the preview, the one being evaluated highlighted.
    page.wait_for_function("() => document.querySelectorAll('#tile-grid rect').length === 12", timeout=30_000)
    page.wait_for_selector("#tile-grid:not([hidden])")
    page.wait_for_selector("#tile-grid rect.active", timeout=30_000)
    assert page.is_visible("#tiles-toggle")
    rects = page.evaluate("() => [...document.querySelectorAll('#tile-grid rect')].map(r => ['x','y','width','height'].map(k => Number(r.getAttribute(k))))")
    assert sorted({x for x, _, _, _ in rects}) == [0, 16, 32, 48] and sorted({y for _, y, _, _ in rects}) == [0, 16, 32]
    assert page.get_attribute("#tile-grid", "viewBox") == "0 0 64 48"
    # The grid covers the picture the preview shows (letterboxed by object-fit: contain), nothing more.
    grid = page.locator("#tile-grid").bounding_box()
    assert abs(grid["width"] / grid["height"] - 64 / 48) < 0.02
    shown = page.evaluate("() => { const i = document.getElementById('preview'); return [i.naturalWidth, i.naturalHeight]; }")
    assert shown == [64, 48]
    page.screenshot(path=str(ARTIFACTS / "studio-tiles.png"), full_page=True)
    page.uncheck("#show-tiles")
    page.wait_for_selector("#tile-grid", state="hidden")
    page.click("#cancel")
    page.wait_for_function("() => document.getElementById('status').textContent === 'cancelled'", timeout=5_000)


LOSS_ITERATIONS = "() => history.map((p) => p[0])"


def test_a_reload_mid_job_finds_the_job_again_and_its_chart_has_each_iteration_once(page, studio_url, tmp_path):
    page.set_input_files("#content-input", str(write_png(tmp_path / "photo.png", 64, 48, seed=1)))
    page.set_input_files("#style-input", str(write_png(tmp_path / "painting.png", 56, 56, seed=2)))
    start_single_scale_job(page, 64, 5000)
    page.wait_for_function("() => current && current.status === 'running' && current.iteration >= 3", timeout=30_000)
    job_id = page.evaluate("() => current.id")
    assert page.url.endswith(f"#{job_id}")  # the job on the stage is in the address

    page.reload()
    page.wait_for_function("() => document.getElementById('status').textContent === 'running'", timeout=10_000)
    assert page.evaluate("() => current.id") == job_id
    # Its chart: the history so far, then the stream's points (which start from the first again),
    # each iteration once; a point drawn twice sends the line back to the start.
    page.wait_for_function(f"() => history.length >= 2 && current.iteration >= {page.evaluate('() => current.iteration')} + 3", timeout=30_000)
    iterations = page.evaluate(LOSS_ITERATIONS)
    assert iterations == sorted(set(iterations)), iterations

    # The same from the gallery of another tab.
    other = page.context.new_page()
    other.goto(studio_url)
    other.locator(f".card[data-id='{job_id}'] .card-actions button", has_text="Open").click()
    other.wait_for_function("() => current && current.status === 'running' && history.length >= 2", timeout=10_000)
    other.wait_for_timeout(500)  # the stream's first events have come
    iterations = other.evaluate(LOSS_ITERATIONS)
    assert iterations == sorted(set(iterations)), iterations
    other.close()
    page.click("#cancel")
    page.wait_for_function("() => document.getElementById('status').textContent === 'cancelled'", timeout=5_000)

    # An address naming a job this server does not have is an empty stage, not an error.
    page.goto("about:blank")  # a new load, not a jump within the page
    page.goto(f"{studio_url}/#{'0' * 32}")
    page.wait_for_function("() => location.hash === ''", timeout=10_000)
    assert page.text_content("#status") == "idle" and page.is_hidden("#form-error")
    # A server not reachable just then says nothing of the job: the address keeps it for a later reload.
    job = "1" * 32
    page.route(f"**/api/jobs/{job}", lambda route: route.abort())
    page.goto("about:blank")
    with page.expect_event("requestfailed", lambda request: request.url.endswith(job)):
        open_studio(page, f"{studio_url}/#{job}")
    page.wait_for_timeout(200)  # resumeFromAddress's catch runs right after the failed fetch
    assert page.evaluate("() => location.hash") == f"#{job}"


def test_the_image_choosers_are_reachable_from_the_keyboard(page, tmp_path):
    focused = []
    for _ in range(4):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("() => document.activeElement.id"))
    assert focused[1:3] == ["content-input", "style-input"], focused
    page.focus("#content-input")
    # Space activates the focused chooser, as on any button: the input gets its click, which opens the
    # browser's file dialog. (Headless Chromium reports that dialog to Playwright only now and then,
    # so the test stops at the click, then chooses the file as the dialog would.)
    page.evaluate("() => { window.chooserClicks = 0; document.getElementById('content-input').addEventListener('click', () => window.chooserClicks++); }")
    page.keyboard.press(" ")
    page.wait_for_function("() => window.chooserClicks === 1", timeout=5_000)
    page.set_input_files("#content-input", str(write_png(tmp_path / "photo.png", 64, 48, seed=1)))
    page.wait_for_selector("#content-thumbs img")
    # Focus is shown on the visible label around the invisible input.
    outline = page.evaluate("() => getComputedStyle(document.getElementById('content-input').parentElement).outlineStyle")
    assert outline == "solid"


def test_paintings_beyond_the_servers_limit_are_not_dropped_without_a_word(page, tmp_path):
    top = page.evaluate("() => serverConfig.limits.max_styles")
    paintings = [str(write_png(tmp_path / f"painting{i}.png", 16, 16, seed=i)) for i in range(top + 1)]
    page.set_input_files("#style-input", paintings)
    assert page.locator("#style-thumbs img").count() == top
    page.wait_for_selector("#form-error:not([hidden])")
    assert f"At most {top}" in page.text_content("#form-error") and f"painting{top}.png" in page.text_content("#form-error")
    # Choosing again clears it: the message was about that choice.
    page.locator("#style-thumbs .remove").first.click()
    page.set_input_files("#style-input", paintings[0])
    assert page.is_hidden("#form-error")


def test_the_link_to_the_batch_view_is_readable_in_the_dark_theme(page):
    page.emulate_media(color_scheme="dark")
    # The browser's own link blue on the dark theme's near-black paper could hardly be read.
    colors = page.evaluate("() => [getComputedStyle(document.getElementById('batch-link')).color, getComputedStyle(document.body).color]")
    assert colors[0] == colors[1], colors


LEGEND_PAST_THE_PLOT = """() => {
  // Anything drawn right of the plot area (pad.r = 10 px) in the legend's band (the top 20 px)?
  const c = document.getElementById('chart'), dpr = window.devicePixelRatio || 1;
  const x0 = Math.ceil(c.width - 9 * dpr), band = Math.floor(20 * dpr);
  const px = c.getContext('2d').getImageData(x0, 0, c.width - x0, band).data;
  let drawn = 0;
  for (let i = 3; i < px.length; i += 4) if (px[i] > 0) drawn++;
  return drawn;
}"""


def test_the_loss_charts_legend_fits_a_phones_width(page, tmp_path):
    page.set_viewport_size({"width": 390, "height": 844})
    page.set_input_files("#content-input", str(write_png(tmp_path / "photo.png", 64, 48, seed=1)))
    page.set_input_files("#style-input", str(write_png(tmp_path / "painting.png", 56, 56, seed=2)))
    start_single_scale_job(page, 64, 20)
    page.wait_for_function("() => document.getElementById('status').textContent === 'done' && history.length >= 2", timeout=30_000)
    page.evaluate("() => drawChart()")
    assert page.evaluate(LEGEND_PAST_THE_PLOT) == 0
    page.locator("#chart").screenshot(path=str(ARTIFACTS / "studio-chart-phone.png"))


def test_the_jobs_notes_are_shown_with_it(page, tmp_path):
    """A photo smaller than the size asked for is upscaled: the page says so, as the CLI's note does."""
    page.set_input_files("#content-input", str(write_png(tmp_path / "photo.png", 40, 30, seed=1)))
    page.set_input_files("#style-input", str(write_png(tmp_path / "painting.png", 56, 56, seed=2)))
    start_single_scale_job(page, 64, 3)
    page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=30_000)
    notes = page.locator("#notes li")
    assert notes.all_text_contents() == ["Note: content image is only 40x30 px; upscaled to 64 px"]
    assert page.locator("#notes").is_visible()


def test_a_stopped_server_is_said_in_words_on_both_pages(page, tmp_path):
    from painterly.web.app import create_app

    weights = tiny_weights(tmp_path / "tiny-vgg.safetensors", seed=3)
    batch = page.context.new_page()
    with running_server(create_app(tmp_path / "work", default_options={"weights": str(weights)})) as url:
        open_studio(page, url)
        page.click("#use-demo")
        batch.goto(f"{url}/batch")
        batch.check("#batch-demo")
    # The server has stopped (Ctrl-C): not the browser's "Failed to fetch".
    page.click("#start")
    page.wait_for_selector("#form-error:not([hidden])", timeout=10_000)
    assert "Cannot reach the studio server" in page.text_content("#form-error")
    batch.click("#batch-start")
    batch.wait_for_selector("#batch-error:not([hidden])", timeout=10_000)
    assert "Cannot reach the studio server" in batch.text_content("#batch-error")
    batch.close()


# A studio in a process of its own, which the test kills as a crash would (no "end" event is sent).
SERVE_SCRIPT = """
import sys
import uvicorn
from painterly.web.app import create_app
from painterly.web.server import bind, uvicorn_config
workdir, weights = sys.argv[1], sys.argv[2]
app = create_app(workdir, default_options={"weights": weights, "content_layers": "relu2_2", "style_layers": "relu1_1,relu2_1"})
sock = bind("127.0.0.1", 0)
print(sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
"""


def test_a_job_the_restarted_server_no_longer_has_is_said_gone_and_the_form_still_works(page, tmp_path):
    import subprocess
    import sys
    import time
    import urllib.request

    from painterly.web.app import create_app

    weights = tiny_weights(tmp_path / "tiny-vgg.safetensors", seed=3)
    first = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, str(tmp_path / "first"), str(weights)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(first.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/config", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the first server did not start"
                time.sleep(0.1)
        open_studio(page, url)
        page.set_input_files("#content-input", str(write_png(tmp_path / "photo.png", 64, 48, seed=1)))
        page.set_input_files("#style-input", str(write_png(tmp_path / "painting.png", 56, 56, seed=2)))
        start_single_scale_job(page, 64, 5000)
        page.wait_for_function("() => current && current.status === 'running' && current.iteration >= 2", timeout=30_000)
    finally:
        first.kill()  # a crash: the stream stops without an end
        first.wait(10)
    # Restarted on the same port with another workdir: the job is unknown there.
    defaults = tiny_options(weights)
    with running_server(create_app(tmp_path / "second", default_options=defaults), port=port):
        page.wait_for_function("() => document.getElementById('status').textContent === 'gone'", timeout=20_000)
        assert "no longer on the server" in page.text_content("#progress-text")
        assert page.is_disabled("#cancel") and page.evaluate("() => events") is None and page.evaluate("() => location.hash") == ""
        # The form is usable: Start reaches this server, which asks for a reload (its token is new) ...
        start_single_scale_job(page, 32, 3)
        page.wait_for_selector("#form-error:not([hidden])", timeout=10_000)
        assert "reload the page" in page.text_content("#form-error")
        # ... after which the same form runs a job here.
        page.reload()
        page.set_input_files("#content-input", str(tmp_path / "photo.png"))
        page.set_input_files("#style-input", str(tmp_path / "painting.png"))
        start_single_scale_job(page, 32, 3)
        page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=30_000)


def test_the_laplacian_field_runs_the_term_and_its_loss_is_listed(page, tmp_path):
    """The form's Laplacian weight reaches the job; the page lists the term's loss (from /api/config's
    loss_terms) for a job that has it, and not for one that does not."""
    assert page.input_value("#laplacian-weight") == "0"
    assert page.locator("#loss-laplacian").count() == 1 and page.is_hidden("#loss-laplacian")
    page.set_input_files("#content-input", str(write_png(tmp_path / "photo.png", 64, 48, seed=1)))
    page.set_input_files("#style-input", str(write_png(tmp_path / "painting.png", 56, 56, seed=2)))
    page.fill("#laplacian-weight", "500")
    start_single_scale_job(page, 64, 6)
    page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=30_000)
    page.wait_for_function("() => Number(document.getElementById('loss-laplacian').textContent) > 0", timeout=5_000)
    assert page.is_visible("#loss-laplacian")
    assert "laplacian-weight" in page.text_content("#params-list") and "500" in page.text_content("#params-list")
    page.locator("#losses").screenshot(path=str(ARTIFACTS / "studio-losses-laplacian.png"))


def test_the_contrast_choice_applies_with_luminance_and_reaches_the_job(page, tmp_path):
    """Contrast is offered only where the style is matched to the photo's colours (luminance,
    histogram); the choice made there is the job's color_contrast."""
    assert page.is_disabled("#color-contrast") and page.input_value("#color-contrast") == "painting"
    page.select_option("#original-colors", "luminance")
    assert page.is_enabled("#color-contrast")
    page.select_option("#color-contrast", "photo")
    page.select_option("#original-colors", "after")
    assert page.is_disabled("#color-contrast")
    page.select_option("#original-colors", "histogram")
    page.set_input_files("#content-input", str(write_png(tmp_path / "photo.png", 64, 48, seed=1)))
    page.set_input_files("#style-input", str(write_png(tmp_path / "painting.png", 56, 56, seed=2)))
    start_single_scale_job(page, 64, 3)
    page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=30_000)
    params = page.text_content("#params-list")
    assert "color-contrastphoto" in params and "original-colorshistogram" in params, params
