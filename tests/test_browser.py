"""The app in a real browser: Playwright drives Debian's Chromium against one `python app.py` serving a
fresh lab directory (created with --create; its temp directory set apart from the lab, as when the
lab lives outside the working and temp directories), and against apps of their own for the tests of
broken lab directories. Each test covers defects as a user met them:

  - the empty state, then the tiny pipeline launched from the Iterate tab and followed to the end,
    with every stage's percent and time left; labelling by keys (keys ignored while typing a note,
    auto-advance), undo; hostile content shown as text;
  - clearing the search box by Backspace shows every problem again, and a typo in the overrides is
    named before launch;
  - two annotators (two browsers) racing on one label: one is told who changed it, keeps it or
    overwrites it, and the other's page shows the change;
  - undo after moving on to another problem takes back the author's own label there;
  - the export of a run with an excluded candidate: the downloaded zip's pairs leave it out;
  - dark mode: the code block's colours, read from the page, have a contrast of at least 4.5;
  - the Metrics tab puts two runs side by side;
  - a truncated store: the app refuses to start with one line naming the file and what to do, no
    traceback, the file left as it was; once a good copy is moved over it, the page shows the run;
  - a mistyped lab directory: refused with one line naming the path and --create, nothing created;
    with --create the page opens on the empty state.

The runs other than the pipeline's are written into the store by the tests (the app reads it live).
Runs in the default suite when /usr/bin/chromium exists; under CI=true a missing Chromium fails.
"""
import io
import json
import os
import re
import shutil
import sqlite3
import tempfile
import urllib.parse
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import fill_store
from playwright.sync_api import expect, sync_playwright

from lab.app.server import spawn
from lab.records import MeasureKey, Measurement
from lab.store import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ITERATIONS = "1"
PIPELINE_TIMEOUT_MS = 420_000
HOSTILE = "<script>alert(1)</script>\n</pre><img src=x onerror=alert(2)>"
VIEWPORT = {"width": 1280, "height": 720}

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
def serve(lab_dir: Path, temp_dir: Path, args: tuple[str, ...] = ("--create",)):
    """`python app.py ARGS` serving lab_dir, with its temp directory elsewhere, for the block: its URL."""
    try:
        server, url = spawn(lab_dir, temp_dir / "app.log", args,
                            {"TMPDIR": str(temp_dir), "GRADIO_TEMP_DIR": str(temp_dir / "gradio")})
    except RuntimeError as error:
        pytest.fail(str(error))
    try:
        yield url
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The one app of this module: (url, lab dir). Its temp directory is one of its own beside pytest's
    (readable by the sandbox of the jobs it launches, which inherit it)."""
    lab_dir, temp_dir = tmp_path_factory.mktemp("lab"), Path(tempfile.mkdtemp(prefix="rr-app-temp-"))
    temp_dir.chmod(0o755)
    try:
        with serve(lab_dir, temp_dir) as url:
            yield url, lab_dir
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def refusal(lab_dir: Path, log_path: Path) -> str:
    """What `python app.py --lab-dir LAB_DIR` prints when it refuses to start: one line, no traceback."""
    with pytest.raises(RuntimeError, match="the app did not start"):
        spawn(lab_dir, log_path)
    output = log_path.read_text()
    assert "Traceback" not in output and len(output.splitlines()) == 1, output
    return output


def open_page(chromium, url: str, author: str = "tester", query: str = "", viewport=VIEWPORT):
    """A new browser (its own localStorage: one annotator) on the app, author typed in."""
    page = chromium.new_context(viewport=viewport).new_page()
    page.goto(url + query)
    page.locator("#problem-head, #problem-view .empty").first.wait_for(timeout=60_000)  # loaded: author filled in
    page.locator("#author input, #author textarea").first.fill(author)
    return page


def labels_in_db(lab_dir: Path, candidate_id: int | None = None) -> list[tuple]:
    with sqlite3.connect(lab_dir / "lab.sqlite") as db:
        where, params = ("WHERE candidate_id = ?", (candidate_id,)) if candidate_id else ("", ())
        return db.execute(f"SELECT candidate_id, label, note, author FROM labels {where} ORDER BY id",
                          params).fetchall()


def selected_candidate(page) -> int:
    return int(page.locator(".card.selected").get_attribute("data-candidate"))


def shown_problem(page) -> str:
    return page.locator("#problem-head").get_attribute("data-problem")


def add_run(lab_dir: Path, name: str, **options) -> int:
    with Store(lab_dir / "lab.sqlite") as store:
        return fill_store(store, run_name=name, **options)


def test_launch_follow_review_and_label_with_keys(chromium, app_url):
    url, lab_dir = app_url
    page = open_page(chromium, url, viewport={"width": 1440, "height": 1000})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.get_by_text("No runs yet").wait_for(timeout=30_000)

    page.get_by_role("tab", name="Iterate").click()
    page.get_by_label("Iterations to add").fill(ITERATIONS)
    page.get_by_label("Iterations to add").press("Tab")
    page.locator("#launch").click()
    page.locator("#job-state", has_text="running").wait_for(timeout=30_000)
    assert page.locator("#launch").is_disabled()
    expect(page.locator("#job-progress")).to_have_text(re.compile(r"stage \w+ \d+% · .*left"), timeout=120_000)
    page.locator("#job-state", has_text="succeeded").wait_for(timeout=PIPELINE_TIMEOUT_MS)
    expect(page.locator("#job-status")).to_contain_text("exit status 0: finished")

    page.get_by_role("tab", name="Review").click()
    page.locator(".card.selected").wait_for(timeout=30_000)
    first = selected_candidate(page)
    page.keyboard.press("j")
    page.wait_for_function(f"document.querySelector('.card.selected').dataset.candidate != '{first}'")
    second = selected_candidate(page)
    page.keyboard.press("h")
    page.locator("#label-message", has_text="hard negative").wait_for()
    assert labels_in_db(lab_dir) == [(second, "hard_negative", "", "tester")]
    page.wait_for_function(f"document.querySelector('.card.selected').dataset.candidate != '{second}'")
    third = selected_candidate(page)
    page.locator("#label-counter", has_text="1").wait_for()

    page.locator("#note textarea, #note input").first.fill("hhh passes by luck")
    assert len(labels_in_db(lab_dir)) == 1, "keys typed in the note must not label"
    page.locator("#candidates-view").click(position={"x": 5, "y": 5})
    page.keyboard.press("p")
    page.locator("#label-message", has_text="positive").wait_for()
    assert labels_in_db(lab_dir)[-1] == (third, "positive", "hhh passes by luck", "tester")
    page.keyboard.press("u")
    page.locator("#label-message", has_text="Undone").wait_for()
    assert labels_in_db(lab_dir)[-1][:2] == (third, None) and selected_candidate(page) == third

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


def test_clearing_the_search_by_backspace_and_a_typo_in_the_overrides(chromium, app_url):
    url, lab_dir = app_url
    add_run(lab_dir, "search")
    page = open_page(chromium, url, query="?run=search")
    expect(page.locator("#problem-head")).to_have_attribute("data-problem", "mbpp/600", timeout=30_000)
    search = page.locator("#search textarea, #search input").first
    search.click()
    search.press_sequentially("603")
    expect(page.locator("#problem-head")).to_have_attribute("data-problem", "mbpp/603", timeout=30_000)
    expect(page.locator("#problems")).not_to_contain_text("mbpp/601")
    for _ in range(3):
        search.press("Backspace")
    expect(page.locator("#problems")).to_contain_text("mbpp/601", timeout=30_000)
    expect(page.locator("#problems")).to_contain_text("mbpp/605")

    page.get_by_role("tab", name="Iterate").click()
    sets = page.locator("#sets textarea")
    sets.fill("sampling.temprature=0.5")
    expect(page.locator("#launch-check")).to_contain_text("Did you mean sampling.temperature", timeout=30_000)
    sets.press("End")
    for _ in range(4):
        sets.press("Backspace")
    expect(page.locator("#command textarea")).to_have_value(re.compile(r"--set sampling\.temprature$"), timeout=30_000)


def test_two_annotators_racing_on_one_label(chromium, app_url):
    url, lab_dir = app_url
    add_run(lab_dir, "race")
    ann, bob = (open_page(chromium, url, author, "?run=race") for author in ("ann", "bob"))
    for page in (ann, bob):
        expect(page.locator("#problem-head")).to_have_attribute("data-problem", "mbpp/600", timeout=30_000)
        page.locator("#advance input").uncheck()
    target = selected_candidate(ann)
    assert selected_candidate(bob) == target
    ann.locator("#candidates-view").click(position={"x": 5, "y": 5})
    bob.locator("#candidates-view").click(position={"x": 5, "y": 5})
    ann.keyboard.press("h")
    bob.keyboard.press("p")
    for page in (ann, bob):
        page.locator("#label-message", has_text=re.compile("Saved|Not saved yet")).wait_for(timeout=30_000)
    [(_, first_label, _, winner)] = labels_in_db(lab_dir, target)
    loser, loser_label = (bob, "positive") if winner == "ann" else (ann, "hard negative")
    expect(loser.locator("#conflict")).to_contain_text(
        re.compile(f"annotator {winner} changed this to {'hard negative' if winner == 'ann' else 'positive'} "
                   r"\d+ s ago — keep that, or overwrite\?"))
    expect(loser.locator(f"#candidate-{target}")).to_contain_text("hard negative" if winner == "ann" else "positive")
    loser.locator("#overwrite").click()
    loser.locator("#label-message", has_text=re.compile("Saved: candidate")).wait_for(timeout=30_000)
    assert [row[1] for row in labels_in_db(lab_dir, target)] == [first_label, loser_label.replace(" ", "_")]
    winner_page = ann if loser is bob else bob
    expect(winner_page.locator(f"#candidate-{target} .card-head")).to_contain_text(loser_label, timeout=30_000)


def test_undo_after_moving_on_takes_back_the_authors_own_label(chromium, app_url):
    url, lab_dir = app_url
    add_run(lab_dir, "undo")
    page = open_page(chromium, url, "cat", "?run=undo")
    expect(page.locator("#problem-head")).to_have_attribute("data-problem", "mbpp/600", timeout=30_000)
    labelled = selected_candidate(page)
    page.locator("#candidates-view").click(position={"x": 5, "y": 5})
    page.keyboard.press("x")
    page.locator("#label-message", has_text="exclude").wait_for(timeout=30_000)
    page.keyboard.press("]")
    expect(page.locator("#problem-head")).to_have_attribute("data-problem", "mbpp/601", timeout=30_000)
    page.keyboard.press("j")
    page.keyboard.press("u")
    page.locator("#label-message", has_text=f"candidate {labelled} is **unlabeled** again".replace("**", "")).wait_for(
        timeout=30_000)
    expect(page.locator("#problem-head")).to_have_attribute("data-problem", "mbpp/600")
    assert selected_candidate(page) == labelled and labels_in_db(lab_dir, labelled)[-1][1:] == (None, "", "cat")
    assert f"candidate={labelled}" in page.url and "problem=mbpp%2F600" in page.url, "the address is a deep link"
    bar = page.locator("#action-bar").bounding_box()
    head_top = page.locator("#problem-head").bounding_box()["y"]
    assert bar["y"] + bar["height"] - 1 <= head_top < VIEWPORT["height"], "the problem's header shows below the bar"


def test_the_export_of_a_run_with_an_excluded_candidate_leaves_its_pairs_out(chromium, app_url):
    url, lab_dir = app_url
    run_id = add_run(lab_dir, "export")
    with Store(lab_dir / "lab.sqlite") as store:
        rows = {c["sample_index"]: c["id"] for c in store.candidates(run_id, problem_id="mbpp/600")}
        store.add_pairs(run_id, 1, [(rows[1], rows[0], "hard_negative"), (rows[1], rows[2], "execution")])
    page = open_page(chromium, url, "dan", f"?run=export&candidate={rows[0]}")
    expect(page.locator(".card.selected")).to_have_attribute("data-candidate", str(rows[0]), timeout=30_000)
    page.locator("#candidates-view").click(position={"x": 5, "y": 5})
    page.keyboard.press("x")
    page.locator("#label-message", has_text="exclude").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Export").click()
    page.locator("#export").click()
    message = page.locator("#export-message")
    expect(message).to_contain_text("1 pairs as the next reward-model training would use them", timeout=60_000)
    expect(message).not_to_contain_text("Error")
    link = page.locator("#export-files a[href*='.zip']").first
    link.wait_for(timeout=30_000)
    href = urllib.parse.urljoin(url, link.get_attribute("href"))
    archive = zipfile.ZipFile(io.BytesIO(urllib.request.urlopen(href, timeout=30).read()))
    pairs_file = next(name for name in archive.namelist() if name.endswith("/pairs.jsonl"))
    pairs = [json.loads(line) for line in archive.read(pairs_file).decode().splitlines()]
    assert [(p["chosen_id"], p["rejected_id"]) for p in pairs] == [(rows[1], rows[2])]


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""
    def luminance(color: str) -> float:
        red, green, blue = (int(v) / 255 for v in re.findall(r"[\d.]+", color)[:3])
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_dark_mode_code_blocks_read(chromium, app_url):
    url, lab_dir = app_url
    add_run(lab_dir, "dark")
    page = open_page(chromium, url, query="?run=dark&__theme=dark")
    page.locator(".card.selected > pre.code").wait_for(timeout=30_000)
    blocks = page.evaluate("""() => [...document.querySelectorAll('.card.selected pre.code, .problem pre.code')].map(
        block => ({background: getComputedStyle(block).backgroundColor,
                   text: [block, ...block.querySelectorAll('span')].map(e => getComputedStyle(e).color)}))""")
    assert page.evaluate("document.body.classList.contains('dark')")
    assert len(blocks) >= 3, "the prompt, the candidate's code and its failing test"
    for block in blocks:
        assert contrast(block["background"], "rgb(0, 0, 0)") < 1.5, f"a dark code block: {block}"
        assert min(contrast(text, block["background"]) for text in block["text"]) >= 4.5, block


def test_the_metrics_tab_compares_two_runs(chromium, app_url):
    url, lab_dir = app_url
    with Store(lab_dir / "lab.sqlite") as store:
        for name, temperature, reranker in (("baseline", 0.8, 0.25), ("cooler", 0.4, 0.75)):
            run_id = store.create_run(name, "tiny", json.dumps({"sampling": {"temperature": temperature}}))
            store.add_evaluations(run_id, 1, [
                {"benchmark": "humaneval", "language": "py", "method": method, "pass_at_1": value, "ci_low": 0.0,
                 "ci_high": 1.0, "n_problems": 4} for method, value in (("greedy", 0.5), ("reranker", reranker))])
            store.add_measurements(run_id, 1, "mbpp-validation",
                                   {MeasureKey("pair_accuracy", "reranker"): Measurement(reranker, 12)})
    page = open_page(chromium, url, query="?run=cooler")
    page.get_by_text("This run has no candidates yet").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Metrics").click()
    page.get_by_text("No iteration with candidates yet").wait_for(timeout=30_000)
    page.locator("#pass-plot img").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Compare runs").click()
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


def test_a_truncated_store_is_refused_with_what_to_do_and_served_once_replaced(chromium, tmp_path):
    store_path = tmp_path / "lab" / "lab.sqlite"
    with Store(store_path) as store:
        fill_store(store)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    good = store_path.read_bytes()
    store_path.write_bytes(good[: len(good) // 2])
    output = refusal(store_path.parent, tmp_path / "refused.log")
    assert output.startswith(f"error: {store_path} cannot be read as the lab's store")
    assert "PRAGMA integrity_check" in output and f"cp {store_path} {store_path}.backup-" in output
    assert store_path.read_bytes() == good[: len(good) // 2], "nothing was changed"

    store_path.write_bytes(good)
    with serve(store_path.parent, tmp_path, args=()) as url:
        page = open_page(chromium, url)
        expect(page.locator("#problem-head")).to_have_attribute("data-problem", "mbpp/600", timeout=30_000)
        expect(page.locator("#problems")).to_contain_text("mbpp/605")


def test_a_mistyped_lab_directory_is_refused_unless_created(chromium, tmp_path):
    lab_dir = tmp_path / "typo"
    output = refusal(lab_dir, tmp_path / "refused.log")
    assert output.startswith(f"error: no directory at {lab_dir}: check --lab-dir") and "pass --create" in output
    assert not lab_dir.exists(), "a mistyped --lab-dir creates nothing"

    with serve(lab_dir, tmp_path) as url:
        page = open_page(chromium, url)
        page.get_by_text("No runs yet").wait_for(timeout=30_000)
    assert (lab_dir / "lab.sqlite").is_file()
