"""The app in a real browser: Playwright drives Debian's Chromium against `python app.py` serving
an empty lab directory. It sees the empty state, launches the tiny pipeline from the Iterate tab
and follows it to completion, opens a problem, labels candidates with keyboard shortcuts (checked
in the database, with undo, and with keys ignored while typing a note), checks that hostile
content is shown as text, and takes a screenshot of the main view (RR_REFRESH_ASSETS=1 writes it
to assets/app_main.png, the picture in docs/app.md). A second app, on a store filled through the API,
puts two runs side by side in the Metrics tab's comparison view.

Runs in the default suite when /usr/bin/chromium exists; under CI=true a missing Chromium fails.
"""
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from lab.records import MeasureKey, Measurement
from lab.store import Store

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ITERATIONS = "1"
PIPELINE_TIMEOUT_MS = 420_000
HOSTILE = "<script>alert(1)</script>\n</pre><img src=x onerror=alert(2)>"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver (never `playwright install`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def serve(lab_dir: Path):
    """`python app.py` serving lab_dir, for the block: its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    log = open(lab_dir / "app.log", "wb")
    server = subprocess.Popen([sys.executable, "app.py", "--lab-dir", str(lab_dir), "--port", str(port),
                               "--author", "tester"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"the app did not start: {(lab_dir / 'app.log').read_text()[-2000:]}")
            time.sleep(0.5)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(10)
        log.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    lab_dir = tmp_path_factory.mktemp("lab")
    with serve(lab_dir) as url:
        yield url, lab_dir


def add_evaluated_run(store: Store, name: str, temperature: float, reranker: float) -> None:
    run_id = store.create_run(name, "tiny", json.dumps({"sampling": {"temperature": temperature}}))
    store.add_evaluations(run_id, 1, [
        {"benchmark": "humaneval", "language": "py", "method": method, "pass_at_1": value, "ci_low": 0.0,
         "ci_high": 1.0, "n_problems": 4} for method, value in (("greedy", 0.5), ("reranker", reranker))])
    store.add_measurements(run_id, 1, "mbpp-validation",
                           {MeasureKey("pair_accuracy", "reranker"): Measurement(reranker, 12)})


def current_labels(lab_dir: Path) -> list[tuple]:
    with sqlite3.connect(lab_dir / "lab.sqlite") as db:
        return db.execute("SELECT candidate_id, label, note, author FROM labels ORDER BY id").fetchall()


def selected_candidate(page) -> int:
    return int(page.locator(".card.selected").get_attribute("data-candidate"))


def test_launch_review_label_with_keys_and_screenshot(chromium, app_url):
    url, lab_dir = app_url
    page = chromium.new_page(viewport={"width": 1440, "height": 1000})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    page.get_by_text("No runs yet").wait_for(timeout=30_000)

    page.get_by_role("tab", name="Iterate").click()
    page.get_by_label("Iterations to add").fill(ITERATIONS)
    page.get_by_label("Iterations to add").press("Tab")
    page.locator("#launch").click()
    page.locator("#job-state", has_text="running").wait_for(timeout=30_000)
    assert page.locator("#launch").is_disabled()
    expect(page.locator("#job-log textarea")).to_have_value(re.compile(r"\[iteration 0\] sft"), timeout=120_000)
    page.locator("#job-state", has_text="succeeded").wait_for(timeout=PIPELINE_TIMEOUT_MS)

    page.get_by_role("tab", name="Review").click()
    page.locator(".card.selected").wait_for(timeout=30_000)
    first = selected_candidate(page)
    page.keyboard.press("j")
    page.wait_for_function(f"document.querySelector('.card.selected').dataset.candidate != '{first}'")
    second = selected_candidate(page)
    page.keyboard.press("h")
    page.locator("#label-message", has_text="hard negative").wait_for()
    assert current_labels(lab_dir) == [(second, "hard_negative", "", "tester")]
    page.locator("#label-counter", has_text="1").wait_for()

    page.locator("#note textarea").fill("hhh passes by luck")
    assert len(current_labels(lab_dir)) == 1, "keys typed in the note must not label"
    page.locator("#candidates-view").click(position={"x": 5, "y": 5})
    page.keyboard.press("p")
    page.locator("#label-message", has_text="positive").wait_for()
    assert current_labels(lab_dir)[-1] == (second, "positive", "hhh passes by luck", "tester")
    page.keyboard.press("u")
    page.locator("#label-message", has_text="Undone").wait_for()
    assert current_labels(lab_dir)[-1][:2] == (second, "hard_negative")

    page.set_viewport_size({"width": 1440, "height": 1400})
    page.evaluate("window.scrollTo(0, 0)")
    screenshot = REPO / "assets" / "app_main.png" if os.environ.get("RR_REFRESH_ASSETS") else lab_dir / "app_main.png"
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000

    with Store(lab_dir / "lab.sqlite") as store:
        run_id = store.run_id("demo")
        iteration = max(r["iteration"] for r in store.candidates(run_id))
        problem_id = store.candidates(run_id, iteration=iteration)[0]["problem_id"]
        store.add_candidates(run_id, iteration, [{"problem_id": problem_id, "model": "hostile", "sample_index": 0,
                                                  "completion": HOSTILE, "mean_logprob": 0.0}])
    page.reload()
    page.locator("#search textarea, #search input").first.fill(problem_id)
    page.locator(".card").first.wait_for(timeout=30_000)
    page.get_by_text("<script>alert(1)</script>").first.wait_for(timeout=30_000)
    assert page.locator("img[src='x']").count() == 0
    assert dialogs == []


def test_the_metrics_tab_compares_two_runs(chromium, tmp_path):
    with Store(tmp_path / "lab.sqlite") as store:
        add_evaluated_run(store, "baseline", 0.8, 0.25)
        add_evaluated_run(store, "cooler", 0.4, 0.75)
    with serve(tmp_path) as url:
        page = chromium.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(url)
        page.get_by_text("This run has no candidates yet").wait_for(timeout=30_000)
        page.get_by_role("tab", name="Metrics").click()
        page.get_by_text("No iteration with candidates yet").wait_for(timeout=30_000)
        runs = page.locator("#compare-runs input")
        for name in ("baseline", "cooler"):
            runs.click()
            page.get_by_role("option", name=name).click()
        page.locator("#compare").click()
        comparison = page.locator("#comparison")
        comparison.get_by_text("Config differences").wait_for(timeout=30_000)
        expect(comparison).to_contain_text("baseline (iteration 1), cooler (iteration 1)")
        expect(comparison.locator("table").first).to_contain_text("75.0")
        expect(comparison.locator("tr", has_text="sampling.temperature")).to_contain_text("0.4")
        expect(comparison.locator("tr", has_text="pair_accuracy/reranker")).to_contain_text("0.250 (n=12)")
