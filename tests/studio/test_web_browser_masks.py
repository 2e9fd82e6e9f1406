"""Issue 15 in a real browser: a mask painted with the studio's brush, a style chosen for each colour,
and a job completed with it (Chromium driven by Playwright; skipped without them, as
test_web_browser.py explains)."""

from __future__ import annotations

import json

import pytest

from support import start_single_scale_job
from test_web_browser import ARTIFACTS, page, studio_url, write_png  # noqa: F401

pytestmark = pytest.mark.browser


def test_paint_a_mask_assign_styles_and_complete_a_job(page, studio_url, tmp_path):  # noqa: F811
    page.set_input_files("#content-input", str(write_png(tmp_path / "photo.png", 64, 48, seed=1)))
    page.set_input_files("#style-input", [str(write_png(tmp_path / "a.png", 56, 56, seed=2)), str(write_png(tmp_path / "b.png", 56, 56, seed=3))])
    page.check("#mask-on")
    page.wait_for_function("() => document.getElementById('mask-canvas').width === 64")

    # Red brush over the left part, then a blue fill of the top right corner's unpainted area is not
    # wanted: the eraser takes a bite out of the red instead.
    box = page.locator("#mask-canvas").bounding_box()
    page.fill("#brush-size", "40")
    page.mouse.move(box["x"] + box["width"] * 0.15, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.9, steps=8)
    page.mouse.up()
    page.wait_for_selector("#region-list select[data-color=red]")
    # The photo was chosen before the paintings: the unpainted part still defaults to the first style.
    assert page.evaluate("() => PainterlyMask.regions()") == ["white=1", "red=1"]
    page.click("#mask-eraser")
    page.fill("#brush-size", "6")
    page.mouse.click(box["x"] + box["width"] * 0.15, box["y"] + box["height"] * 0.5)

    # Fill: one click paints the connected unpainted area blue (the whole rest of the image).
    page.click("#mask-tools [data-tool=blue]")
    page.click("#mask-fill")
    page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.5)
    page.wait_for_selector("#region-list select[data-color=blue]")
    page.select_option("#region-list select[data-color=red]", "2")
    page.select_option("#region-list select[data-color=blue]", "1")
    page.select_option("#region-list select[data-color=white]", "photo")
    page.screenshot(path=str(ARTIFACTS / "studio-mask.png"), full_page=True)

    start_single_scale_job(page, 64, 6)
    page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=60_000)

    jobs = json.loads(page.request.get(f"{studio_url}/api/jobs").text())["jobs"]
    regions = jobs[0]["options"]["regions"]
    assert regions[0] == "white=photo" and "red=2" in regions and "blue=1" in regions

    # The regions over the result: the job's own saved mask, scaled onto the picture the preview shows.
    job_id = jobs[0]["id"]
    assert jobs[0]["urls"]["mask"] == f"/api/jobs/{job_id}/mask"
    check_regions_overlay(page, screenshot="studio-regions.png")

    # After a reload, the job opened from the gallery shows its regions again (from the server's copy).
    page.reload()
    page.locator(f".card[data-id='{job_id}'] .card-image").click()
    page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=10_000)
    check_regions_overlay(page)


PIXEL_AT = """([fx, fy]) => {
  const c = document.getElementById('regions-overlay');
  const x = Math.floor(fx * c.width), y = Math.floor(fy * c.height);
  return [...c.getContext('2d').getImageData(x, y, 1, 1).data];
}"""


def check_regions_overlay(page, screenshot: str | None = None) -> None:  # noqa: ANN001
    page.wait_for_selector("#regions-toggle:not([hidden])", timeout=10_000)
    assert page.is_hidden("#regions-overlay")  # off until asked for
    page.check("#show-regions")
    page.wait_for_selector("#regions-overlay:not([hidden])", timeout=10_000)
    box, preview = page.locator("#regions-overlay").bounding_box(), page.locator("#preview").bounding_box()
    # Aligned with the picture: the mask's aspect (64×48), centred in the letterboxed preview.
    assert abs(box["width"] / box["height"] - 64 / 48) < 0.02
    assert abs((box["x"] + box["width"] / 2) - (preview["x"] + preview["width"] / 2)) < 1.5
    assert abs((box["y"] + box["height"] / 2) - (preview["y"] + preview["height"] / 2)) < 1.5
    assert box["width"] <= preview["width"] + 0.5 and box["height"] <= preview["height"] + 0.5
    red = page.evaluate(PIXEL_AT, [0.18, 0.25])
    blue = page.evaluate(PIXEL_AT, [0.8, 0.5])
    assert red[0] > 200 and red[1] < 40 and red[2] < 40 and 60 < red[3] < 200, red  # translucent red
    assert blue[2] > 200 and blue[0] < 40 and blue[1] < 40 and 60 < blue[3] < 200, blue
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    page.uncheck("#show-regions")
    page.wait_for_selector("#regions-overlay", state="hidden")
