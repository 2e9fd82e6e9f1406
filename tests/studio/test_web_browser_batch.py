"""Issue 17 in a real browser: the studio's batch view submits a 1 × 2 grid (one photo, two paintings,
40 px, the tiny random encoder) and the contact sheet fills in as the jobs finish (Chromium driven by
Playwright; skipped without them, as test_web_browser.py explains)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from test_web_browser import ARTIFACTS, page, studio_url, write_png  # noqa: F401

pytestmark = pytest.mark.browser


def test_submit_a_grid_and_watch_the_sheet_fill_in(page, tmp_path):  # noqa: F811
    sheets: list[tuple[str, bytes]] = []
    page.on("response", lambda r: sheets.append((r.url, r.body())) if "/sheet?over=" in r.url and r.ok else None)
    page.click("#batch-link")  # from the studio's page
    page.wait_for_selector("#batch-form")
    page.set_input_files("#batch-content", str(write_png(tmp_path / "photo.png", 48, 40, seed=1)))
    # A long painting's name: its column label must wrap on a narrow screen (below).
    long_name = "the_shipwreck_of_the_minotaur_1810.png"
    page.set_input_files("#batch-styles", [str(write_png(tmp_path / long_name, 40, 40, seed=2)), str(write_png(tmp_path / "b.png", 40, 40, seed=3))])
    page.fill("#batch-size", "40")
    page.fill("#batch-iterations", "4")
    page.click("#batch-start")
    page.wait_for_function("() => document.getElementById('batch-status').textContent === '2/2 done'", timeout=60_000)
    page.wait_for_function("() => { const i = document.getElementById('batch-sheet'); return i.complete && i.naturalWidth > 0 && i.src.endsWith('over=2'); }", timeout=10_000)
    assert page.locator("#batch-cells tr[data-status=done]").count() == 2
    assert page.locator("#batch-cells a", has_text="result").count() == 2
    page.screenshot(path=str(ARTIFACTS / "studio-batch.png"), full_page=True)
    # On a phone's width (390 px) the page does not scroll sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})
    # The cells' links are in the theme's accent (the browser's blue could hardly be read on the dark one).
    page.emulate_media(color_scheme="dark")
    link, accent = page.evaluate("() => [getComputedStyle(document.querySelector('#batch-cells a')).color, getComputedStyle(document.body).getPropertyValue('--accent').trim()]")
    assert link == "rgb(224, 122, 75)" and accent == "#e07a4b", (link, accent)
    page.emulate_media(color_scheme="light")

    # The sheet was shown empty first and fetched again as cells were over, ending with both filled.
    urls = [u for u, _ in sheets]
    assert urls[0].endswith("over=0") and urls[-1].endswith("over=2"), urls
    first, last = (np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in (sheets[0][1], sheets[-1][1]))
    assert first.shape == last.shape  # one row, two columns throughout
    assert len(np.unique(last.reshape(-1, 3), axis=0)) > len(np.unique(first.reshape(-1, 3), axis=0)) + 100  # pictures now

    # A bad sweep comes back to the form as the server's one line, naming the setting.
    page.fill("#batch-sweep", "style_wait=1,2")
    page.click("#batch-start")
    page.wait_for_selector("#batch-error:not([hidden])", timeout=10_000)
    assert "unknown option 'style_wait'" in page.text_content("#batch-error")
