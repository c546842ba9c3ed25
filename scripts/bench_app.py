"""Time the app's Metrics tab in a real browser, and take the screenshots of the docs.

    python scripts/bench_app.py --lab-dir DIR [--run NAME] [--repeat 3] [--screenshots assets/]

Serves `python app.py --lab-dir DIR` on loopback, opens it in Debian's Chromium (Playwright) at
1280x720, and for each repeat reloads the page, clicks the Metrics tab and prints the seconds until
the first plot is drawn and until every plot is; then the median of each. With --screenshots it
also writes app_review.png (the Review screen as it opens) and app_metrics.png (the Metrics tab) there.

Needs a lab directory with a run (e.g. `python -m lab iterate --preset tiny --lab-dir DIR --run demo
--iterations 1`). Not covered here: the app itself (lab/app/).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from lab.app.server import spawn

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PLOTS = ("#pass-plot", "#measure-plot", "#reward-plot", "#hard-plot")
"""The Metrics tab's plots that a run with an evaluated iteration fills (the matplotlib ones draw an <img>)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab-dir", required=True, type=Path)
    parser.add_argument("--run", help="the run to show (default: the newest)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--screenshots", type=Path, help="folder for app_review.png and app_metrics.png")
    args = parser.parse_args()
    server, url = spawn(args.lab_dir, args.lab_dir / "bench_app.log", ("--author", "bench"))
    url += f"?run={args.run}" if args.run else ""
    first, settled = [], []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            for attempt in range(args.repeat):
                page.goto(url)
                page.locator(".card.selected").wait_for(timeout=60_000)
                if attempt == 0 and args.screenshots:
                    args.screenshots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.screenshots / "app_review.png"))
                started = time.perf_counter()
                page.get_by_role("tab", name="Metrics").click()
                page.locator(", ".join(f"{plot} img" for plot in PLOTS)).first.wait_for(timeout=60_000)
                first.append(time.perf_counter() - started)
                for plot in PLOTS:
                    page.locator(f"{plot} img").first.wait_for(timeout=60_000)
                settled.append(time.perf_counter() - started)
                print(f"run {attempt + 1}: first plot {first[-1]:.2f} s, all {len(PLOTS)} plots {settled[-1]:.2f} s",
                      flush=True)
            if args.screenshots:
                page.wait_for_timeout(500)
                page.screenshot(path=str(args.screenshots / "app_metrics.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    print(f"Metrics tab, median of {args.repeat}: first plot {statistics.median(first):.2f} s, "
          f"all plots {statistics.median(settled):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
