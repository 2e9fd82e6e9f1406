#!/usr/bin/env python
"""Make ``docs/studio.png``: the web studio mid-run on the built-in demo pair, with the real weights.

    PAINTERLY_CACHE_DIR=/tmp/pcache python scripts/screenshot_studio.py [-o docs/studio.png]

Starts the real server (uvicorn, in this process, on a free port of 127.0.0.1, with a throw-away
workdir and the default caffe weights), drives Debian's Chromium through Playwright exactly as a user
would: one small job first so that the gallery has something in it, then a run at ``--size`` that is
photographed a few iterations into its final size, then cancelled. On a 2-core CPU this takes about
two minutes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default="docs/studio.png", help="where to write the screenshot")
    parser.add_argument("--size", type=int, default=256, help="size of the photographed run (default: 256)")
    parser.add_argument("--iterations", type=int, default=150, help="its iterations (default: 150, the draft preset)")
    parser.add_argument("--gallery-size", type=int, default=160, help="size of the first, finished job (0: skip it)")
    parser.add_argument("--gallery-iterations", type=int, default=40)
    parser.add_argument("--final-level-iterations", type=int, default=15, help="shoot this many iterations into the last level")
    parser.add_argument("--multiscale", action="store_true", help="coarse to fine (slower to reach the final size on a CPU)")
    parser.add_argument("--tile", type=int, default=None, help="the server's default `tile` (PX): the preview shows the tile grid")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    # The test suite's helpers (a uvicorn thread on a free port; Chromium's flags), from where they live.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "studio"))
    from support import CHROMIUM_ARGS, running_server
    from painterly.web.app import create_app

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.timeout
    with tempfile.TemporaryDirectory(prefix="painterly-studio-") as workdir:
        app = create_app(Path(workdir), default_options={} if args.tile is None else {"tile": args.tile})
        with running_server(app) as url, sync_playwright() as pw:
            print(f"studio at {url}", flush=True)
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=list(CHROMIUM_ARGS))
            page = browser.new_page(viewport={"width": 1360, "height": 940}, device_scale_factor=1)
            page.goto(url)
            page.click("#use-demo")
            page.select_option("#preset", "custom")

            if args.gallery_size:
                print("first job (for the gallery)…", flush=True)
                page.fill("#size", str(args.gallery_size))
                page.fill("#iterations", str(args.gallery_iterations))
                page.uncheck("#multiscale")
                page.click("#start")
                wait(page, "document.getElementById('status').textContent === 'done'", deadline)

            print(f"the photographed run: {args.size} px, {args.iterations} iterations…", flush=True)
            if args.size == 256 and args.iterations == 150:
                page.select_option("#preset", "draft")
            else:
                page.fill("#size", str(args.size))
                page.fill("#iterations", str(args.iterations))
            page.set_checked("#multiscale", args.multiscale)
            page.click("#start")
            # `current` is the page's own record of the job it shows (from the event stream).
            wait(page, "current && current.status === 'running' && current.iteration > 0"
                 " && current.level === current.levels - 1", deadline)
            target = page.evaluate("current.iteration") + args.final_level_iterations
            wait(page, f"current && current.iteration >= {target}", deadline)
            time.sleep(0.6)  # let the newest preview frame load and the chart redraw
            page.screenshot(path=str(output), full_page=True)
            print(f"wrote {output} at: {page.text_content('#progress-text')}", flush=True)
            page.click("#cancel")
            wait(page, "document.getElementById('status').textContent === 'cancelled'", time.monotonic() + 30)
            browser.close()
    return 0


def wait(page, expression: str, deadline: float) -> None:
    left_ms = max(1000.0, (deadline - time.monotonic()) * 1000)
    # A function, not a bare expression: the page's CSP forbids eval() of strings.
    page.wait_for_function(f"() => ({expression})", timeout=left_ms, polling=250)


if __name__ == "__main__":
    sys.exit(main())
