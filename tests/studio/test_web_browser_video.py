"""A video job in a real browser: a clip dropped where the photo goes, a painting, the video options,
frame i of n while it runs, and the finished video playing in the page (Chromium driven by Playwright;
skipped without them, as test_web_browser.py explains). The clip: 36×48 px, 3 frames, with sound."""

from __future__ import annotations

import base64

import pytest

from support import start_single_scale_job
from test_web_browser import ARTIFACTS, page, studio_url, write_png  # noqa: F401
from test_web_video import make_clip

pytestmark = pytest.mark.browser


def test_drop_a_clip_and_a_painting_and_watch_the_video(page, tmp_path):  # noqa: F811
    clip = make_clip(tmp_path / "take.mp4", frames=3)
    assert page.is_hidden("#video-options")
    # Dropped on the content box, as a file from the desktop is.
    page.evaluate(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: "video/mp4" }));
            document.getElementById("content-drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [base64.b64encode(clip.read_bytes()).decode(), clip.name],
    )
    page.set_input_files("#style-input", str(write_png(tmp_path / "painting.png", 40, 40, seed=2)))
    # The clip takes the photo's place, and the video options appear.
    assert "take.mp4" in page.text_content("#content-thumbs")
    assert page.is_visible("#video-options")
    page.fill("#frame-iterations", "3")
    page.fill("#temporal-weight", "100000")
    start_single_scale_job(page, 48, 4)
    page.wait_for_function("() => /frame [1-3] of 3/.test(document.getElementById('progress-text').textContent)", timeout=30_000)
    page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=60_000)
    # The finished video plays in the page: the browser has read its length and size.
    page.wait_for_function(
        "() => { const v = document.getElementById('result-video'); return !v.hidden && v.readyState >= 1 && v.videoWidth > 0; }",
        timeout=20_000,
    )
    width, height, seconds = page.evaluate("() => { const v = document.getElementById('result-video'); return [v.videoWidth, v.videoHeight, v.duration]; }")
    assert (width, height) == (48, 36) and 0.2 < seconds < 0.5, (width, height, seconds)
    # ... and plays it to its end (decoded, not only parsed), muted as browsers allow without a click.
    page.evaluate("() => { const v = document.getElementById('result-video'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.getElementById('result-video').ended", timeout=20_000)
    assert page.is_hidden("#preview")
    download = page.locator("#download")
    assert download.is_visible() and download.get_attribute("download").endswith(".mp4")
    assert page.is_hidden("#use-as-init")
    page.screenshot(path=str(ARTIFACTS / "studio-video.png"), full_page=True)
    # The gallery's card offers the video for download.
    page.wait_for_function("() => document.querySelector('#gallery .card a[download$=\".mp4\"]') !== null", timeout=10_000)
