"""The app's layout and wiring: the components of each tab, named, and which handler each event runs
with which named inputs. No logic: the handlers are in review.py, labels.py, jobs.py, metrics.py and
export.py, and take their inputs by name (`handler(lab, view=..., author=..., **constants)`), so an
input list is a set of names, never an order to match.

Tabs:
  Review   pick run + iteration, filter problems (language, split, state, search), open one and label
           its candidates; keys (KEYS) press the buttons. A sticky action bar, auto-advance, two
           candidates side by side, the guidelines, bulk labels; conflicts offered to keep or overwrite.
  Iterate  launch `python -m lab iterate` in the background, follow every stage, cancel.
  Metrics  plots (pass@1, a chosen measurement, the score histogram, hard negatives, policy steps), tables, the
           annotators (progress, Cohen's kappa, overlap assignment), runs side by side.
  Export   the curated dataset of the run as a zip and single files.

Not covered here: serving (server.py), what any handler does.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from lab.app import export, jobs, labels, metrics, render, review, views
from lab.app.state import Lab, View
from lab.config import PRESETS, UsageError
from lab.store import StoreError, damaged_store_error, is_damage

KEYS = {"j": "next-candidate", "k": "prev-candidate", "]": "next-problem", "[": "prev-problem",
        "h": "label-hard_negative", "p": "label-positive", "x": "label-exclude", "u": "label-undo",
        "n": "next-suspected"}
"""Key -> the elem_id of the button it presses (static/app.js reads this map from the page)."""
KEY_HELP = ("Keys: **j / k** next / previous candidate · **] / [** next / previous problem · **n** next suspected "
            "hard negative · **h** hard negative · **p** positive · **x** exclude · **u** undo your last label "
            "(not while typing in a text box)")
REFRESH_S = 1.5
"""How often a running job's view is redrawn."""
LABELS_REFRESH_S = 3.0
"""How often a Review tab checks whether someone else labelled the candidates it shows."""
STATIC = Path(__file__).resolve().parent / "static"
LABEL_BUTTONS = (("hard_negative", "Hard negative (h)"), ("positive", "Positive (p)"), ("exclude", "Exclude (x)"))


def _review_tab(c: dict) -> None:
    with gr.Tab("Review", id="review") as c["review_tab"], gr.Row():
        with gr.Column(scale=2, min_width=300, elem_id="sidebar"):
            with gr.Row():
                c["language"] = gr.Dropdown(label="Language", choices=[("all", "")], value="", min_width=90)
                c["split"] = gr.Dropdown(label="Split", choices=[("all", "")], value="", min_width=90)
            c["state"] = gr.Dropdown(label="State", choices=[(v, k) for k, v in views.STATES.items()], value="all")
            c["search"] = gr.Textbox(label="Search", placeholder="problem id or prompt text", elem_id="search")
            c["problems"] = gr.Dataframe(interactive=False, wrap=True, max_height=520, elem_id="problems",
                                         value=views.problems_table([]), buttons=[],
                                         column_widths=["38%", "11%", "14%", "15%", "22%"])
            with gr.Row():
                c["prev_page"] = gr.Button("◀ page", size="sm", min_width=60)
                c["page"] = gr.Markdown()
                c["next_page"] = gr.Button("page ▶", size="sm", min_width=60)
            with gr.Accordion("Guidelines", open=False, elem_id="guidelines-panel"):
                c["guidelines"] = gr.Markdown(elem_id="guidelines")
            with gr.Accordion("Bulk label the filtered problems", open=False, elem_id="bulk-panel"):
                c["bulk_which"] = gr.Dropdown(label="Candidates", value="suspected", elem_id="bulk-which",
                                              choices=[(words, key) for key, (words, _) in views.BULK_TARGETS.items()])
                c["bulk_action"] = gr.Dropdown(label="Label", choices=[(v, k) for k, v in views.LABEL_NAMES.items()],
                                               value="hard_negative", elem_id="bulk-action")
                c["bulk"] = gr.Button("Label them (one action: u undoes it)", size="sm", elem_id="bulk")
                c["bulk_message"] = gr.Markdown(elem_id="bulk-message")
        with gr.Column(scale=5, elem_id="main"):
            with gr.Column(elem_id="action-bar"):
                c["candidate"] = gr.Radio(show_label=False, choices=[], elem_id="candidate-radio", container=False)
                with gr.Row(equal_height=True):
                    for action, text in LABEL_BUTTONS:
                        c[f"label_{action}"] = gr.Button(text, size="sm", elem_id=f"label-{action}")
                    c["undo"] = gr.Button("Undo (u)", size="sm", elem_id="label-undo")
                    c["next_suspected"] = gr.Button("Next suspected (n)", size="sm", elem_id="next-suspected")
                    for name, text in (("prev_candidate", "◀ k"), ("next_candidate", "j ▶"),
                                       ("prev_problem", "◀ [ problem"), ("next_problem", "problem ] ▶")):
                        c[name] = gr.Button(text, size="sm", elem_id=name.replace("_", "-"), min_width=50)
                with gr.Row(equal_height=True):
                    c["note"] = gr.Textbox(show_label=False, placeholder="note (optional, saved with the next label)",
                                           scale=4, elem_id="note", container=False, max_lines=1)
                    c["compare_with"] = gr.Dropdown(show_label=False, choices=[], elem_id="compare-with", scale=2,
                                                    container=False)
                    c["advance"] = gr.Checkbox(label="auto-advance", value=True, scale=1, elem_id="advance",
                                               container=False)
                c["message"] = gr.Markdown(elem_id="label-message")
                with gr.Row(visible=False, equal_height=True) as c["conflict_row"]:
                    c["conflict"] = gr.Markdown(elem_id="conflict")
                    c["keep"] = gr.Button("Keep theirs", size="sm", elem_id="keep", scale=0)
                    c["overwrite"] = gr.Button("Overwrite with mine", size="sm", variant="stop", elem_id="overwrite",
                                               scale=0)
                c["counter"] = gr.Markdown(elem_id="label-counter")
            c["problem_view"] = gr.HTML(elem_id="problem-view")
            c["candidates_view"] = gr.HTML(elem_id="candidates-view")
            gr.Markdown(KEY_HELP)
            gr.HTML(f'<div id="key-map" data-keys="{json.dumps(KEYS).replace(chr(34), "&quot;")}"></div>')
            c["labels_timer"] = gr.Timer(LABELS_REFRESH_S)


def _iterate_tab(c: dict) -> None:
    with gr.Tab("Iterate", id="iterate") as c["iterate_tab"]:
        gr.Markdown("Run one more self-training iteration in a background process. One at a time per lab "
                    "directory; the app stays usable and labels made meanwhile are kept.")
        with gr.Row():
            c["run_name"] = gr.Textbox(label="Run (an existing run continues; a new name starts a run)", value="demo")
            c["preset"] = gr.Dropdown(label="Preset", choices=list(PRESETS), value="tiny")
            c["sets"] = gr.Textbox(label="Overrides, one SECTION.FIELD=VALUE per line", lines=2, elem_id="sets")
            c["iterations_to_add"] = gr.Number(label="Iterations to add (0 = only the bootstrap of a new run)",
                                               value=1, minimum=0, precision=0)
        c["command"] = gr.Textbox(label="Command", interactive=False, elem_id="command")
        c["launch_check"] = gr.Markdown(elem_id="launch-check")
        with gr.Row():
            c["launch"] = gr.Button("Launch iteration", variant="primary", elem_id="launch")
            c["cancel"] = gr.Button("Cancel", variant="stop", interactive=False, elem_id="cancel")
        c["job_message"] = gr.Markdown(elem_id="job-message")
        c["job_state"] = gr.HTML(elem_id="job-status")
        c["log"] = gr.Textbox(label="Log (last lines)", lines=14, max_lines=14, interactive=False, autoscroll=True,
                              elem_id="job-log")
        c["timer"] = gr.Timer(REFRESH_S, active=False)


def _metrics_tab(c: dict) -> None:
    with gr.Tab("Metrics", id="metrics") as c["metrics_tab"], gr.Tabs():
        with gr.Tab("Plots", id="plots"):
            with gr.Row():
                c["metrics_note"] = gr.Markdown()
                c["refresh_metrics"] = gr.Button("Refresh", size="sm", scale=0, elem_id="refresh-metrics")
            with gr.Row():
                c["pass_plot"] = gr.Plot(show_label=False, elem_id="pass-plot")
                with gr.Column():
                    c["measure"] = gr.Dropdown(label="Measurement", choices=[], elem_id="measure")
                    c["measure_plot"] = gr.Plot(show_label=False, elem_id="measure-plot")
            with gr.Row():
                c["reward_plot"] = gr.Plot(show_label=False, elem_id="reward-plot")  # follows Iteration
                c["hard_plot"] = gr.Plot(show_label=False, elem_id="hard-plot")
            gr.Markdown("Policy steps: the rollouts' reward-model score beside their executed pass rate (a score "
                        "rising while the pass rate falls is reward hacking), then KL, entropy and length.")
            c["policy_plot"] = gr.Plot(show_label=False, elem_id="policy-plot")
        with gr.Tab("Tables", id="tables"):
            c["pass_table"] = gr.Dataframe(label="pass@1 (benchmark × language × method, one column per iteration)",
                                           interactive=False)
            c["heldout_table"] = gr.Dataframe(label="measurements: value (count) per iteration", interactive=False)
            with gr.Row():
                c["hard_table"] = gr.Dataframe(label="hard negatives per iteration", interactive=False)
                c["pairs_table"] = gr.Dataframe(label="preference pairs per iteration and kind", interactive=False)
        with gr.Tab("Annotators", id="annotators", elem_id="annotators-tab"):
            gr.Markdown("Each annotator's own labels in the selected iteration, and Cohen's kappa between two "
                        "annotators on the candidates both labelled. An overlap assignment deals the run's problems "
                        "out, a share of them to two annotators, for kappa to be measured on.")
            with gr.Row():
                c["progress_table"] = gr.Dataframe(label="progress", interactive=False, elem_id="progress-table")
                c["agreement_table"] = gr.Dataframe(label="agreement", interactive=False, elem_id="agreement-table")
            with gr.Row():
                c["annotators"] = gr.Textbox(label="Annotators (comma-separated)", scale=3, elem_id="annotators")
                c["overlap"] = gr.Slider(0, 100, value=20, step=5, label="labelled twice (%)", scale=2)
                c["assign"] = gr.Button("Assign", scale=0, elem_id="assign")
            c["assign_message"] = gr.Markdown()
        with gr.Tab("Compare runs", id="compare-tab"):
            gr.Markdown("pass@1, ranking accuracy, held-out reward-model measurements and the config differences of "
                        "two or more runs (also `python -m lab eval --compare RUN RUN...`).")
            with gr.Row():
                c["compare_runs"] = gr.Dropdown(label="Runs", choices=[], multiselect=True, scale=4,
                                                elem_id="compare-runs")
                c["compare"] = gr.Button("Compare", scale=1, elem_id="compare")
            c["comparison"] = gr.Markdown(elem_id="comparison")


def _export_tab(c: dict) -> None:
    with gr.Tab("Export", id="export") as c["export_tab"]:
        gr.Markdown("The run's **curated dataset**: the preference pairs exactly as the next reward-model training "
                    "uses them (a pair a label contradicts left out, and listed with the reason), each candidate's "
                    "current label and the full label history, as JSONL, Parquet and a `datasets` folder, zipped.")
        c["export"] = gr.Button("Export the curated dataset", variant="primary", elem_id="export")
        c["export_message"] = gr.Markdown(elem_id="export-message")
        c["export_files"] = gr.File(label="Download", interactive=False, file_count="multiple", elem_id="export-files")


def _guard(lab: Lab, handler: Callable[..., dict], kwargs: dict) -> dict:
    """The handler's values; a store error becomes one message with what to do, not a page of 'Error's."""
    try:
        return handler(lab, **kwargs)
    except sqlite3.DatabaseError as error:
        if is_damage(error):
            raise gr.Error(str(damaged_store_error(lab.store.path, error)), duration=None) from error
        raise
    except (StoreError, UsageError) as error:
        raise gr.Error(str(error), duration=None) from error


def build_app(lab_dir: str | Path, author: str = "", *, create: bool = False) -> gr.Blocks:
    """The app for one lab directory (see Lab.open for `create`); `author` is the name a browser
    starts with until it has its own."""
    lab = Lab.open(lab_dir, create=create)
    c: dict[str, Any] = {}

    def on(event, handler, inputs=(), outputs=(), *, special=None, **constants_and_options):
        """`handler(lab, **{input name: value}, **constants)` on `event`; its name -> value dict updates
        those components (an empty one, none). `special` ('row' or 'request') passes the row a table click
        selected, or the page's query parameters, as `row` / `query`. Events that set a tab's View run one
        at a time in the order they came: Gradio starts different listeners' events in random order, and
        a key pressed after another must not be overtaken by it."""
        options = {k: constants_and_options.pop(k) for k in ("trigger_mode", "concurrency_limit", "show_progress",
                                                              "queue") if k in constants_and_options}
        names = list(inputs)

        def call(values, **extra) -> dict | None:
            updates = _guard(lab, handler, {**dict(zip(names, values)), **extra, **constants_and_options})
            if not outputs:
                return None
            return {c[name]: value for name, value in updates.items()} or {c[name]: gr.skip() for name in outputs}

        def run(*values):
            return call(values)

        def run_on_row(event: gr.SelectData, *values):
            row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
            return call(values, row=row)

        def run_on_request(request: gr.Request, *values):
            return call(values, query=dict(request.query_params) if request else {})
        function = {None: run, "row": run_on_row, "request": run_on_request}[special]
        if "view" in outputs:
            options.update(concurrency_id="view", concurrency_limit=1)
        return event(function, [c[n] for n in names], [c[n] for n in outputs], **options)

    with gr.Blocks(title="RewardRanker Lab") as app:
        with gr.Row(equal_height=True, elem_id="topbar"):
            gr.HTML(f'<div class="title">RewardRanker Lab</div><div class="meta">{render.esc(lab.store.path)}</div>',
                    scale=1)
            c["run"] = gr.Dropdown(label="Run", choices=[], scale=1, elem_id="run")
            c["iteration"] = gr.Dropdown(label="Iteration", choices=[], scale=1, elem_id="iteration")
            c["author"] = gr.Textbox(label="Author", value=author, scale=1, elem_id="author",
                                     placeholder="your name: kept in this browser, recorded with each label")
        with gr.Tabs():
            for tab in (_review_tab, _iterate_tab, _metrics_tab, _export_tab):
                tab(c)
        c.update(view=gr.State(View()), pending=gr.State(None), tab=gr.State("review"),
                 saved_author=gr.BrowserState("", storage_key="rewardranker-lab-author"))
        _wire(app, c, on, author)
        _api(lab)
    return app


def _api(lab: Lab) -> None:
    """The HTTP API for scripts: POST /gradio_api/run/<name> with {"data": [arguments in order]} answers
    {"data": [result]} at once (no queue: a label is a short write); gradio_client calls them by name too."""
    def label(candidate_id: int, label: str, author: str, seen_version: int, note: str = "") -> dict:
        return labels.api_label(lab, candidate_id, label, author, seen_version, note)

    def undo(run: str, author: str) -> dict:
        return labels.api_undo(lab, run, author)

    def candidates(run: str, iteration: int) -> list[dict]:
        return labels.api_candidates(lab, run, iteration)
    for function in (label, undo, candidates):
        gr.api(function, api_name=function.__name__, queue=False)


def _wire(app: gr.Blocks, c: dict, on: Callable, default_author: str) -> None:
    shown, selectors, form = review.REVIEW, ("run", "iteration", *review.FILTERS), jobs.FORM

    def open_page(lab: Lab, view: View, saved_author: str, iterations_to_add: float, query: dict) -> dict:
        author = (saved_author or "").strip() or default_author
        return {"author": author, "guidelines": views.guidelines_markdown(lab.lab_dir),
                **_with_form(lab, review.open_link(lab, view, query, author), iterations_to_add), **jobs.job_view(lab)}
    loaded = on(app.load, open_page, ("view", "saved_author", "iterations_to_add"),
                ("author", "guidelines", "message", "command") + shown + selectors + form[:3] + jobs.JOB,
                special="request")
    _metrics_steps(loaded.then, on)  # drawn behind the Review screen: opening the tab shows them at once
    on(c["author"].change, lambda lab, author: {"saved_author": (author or "").strip()}, ("author",), ("saved_author",))

    on(c["run"].input, _select_run, ("view", "run", "author", "iterations_to_add"),
       shown + selectors + form[:3] + ("command",))
    on(c["iteration"].input, review.select_iteration, ("view", "iteration", "author"), shown + selectors)
    for name in review.FILTERS:  # a Textbox's .input misses Backspace and Delete: its .change does not
        on(c[name].change if name == "search" else c[name].input, review.set_filter, ("view", "author", name), shown,
           **({"trigger_mode": "always_last"} if name == "search" else {}))
    for name, delta in (("prev_page", -views.PAGE_SIZE), ("next_page", views.PAGE_SIZE)):
        on(c[name].click, review.turn_page, ("view", "author"), shown, delta=delta)
    on(c["problems"].select, review.pick_problem, ("view", "author"), shown, special="row")
    for name, delta in (("prev_problem", -1), ("next_problem", 1)):
        on(c[name].click, review.step_problem, ("view", "author"), shown, delta=delta)
    on(c["candidate"].input, review.pick_candidate, ("view", "candidate", "author"), shown)
    for name, delta in (("prev_candidate", -1), ("next_candidate", 1)):
        on(c[name].click, review.step_candidate, ("view", "author"), shown, delta=delta)
    on(c["compare_with"].input, review.set_compare, ("view", "compare_with", "author"), shown)
    on(c["next_suspected"].click, review.next_suspected, ("view", "author"), shown + ("message",))
    on(c["labels_timer"].tick, review.refresh_if_changed, ("view", "author"), shown)

    conflict = labels.CONFLICT + ("pending", "note", "message")
    for action, _ in LABEL_BUTTONS:
        on(c[f"label_{action}"].click, labels.label, ("view", "author", "note", "advance"), shown + conflict,
           action=action)
    on(c["undo"].click, labels.undo, ("view", "author"), shown + selectors + conflict)
    on(c["overwrite"].click, labels.overwrite, ("view", "author", "note", "advance", "pending"),
       shown + selectors + conflict)
    on(c["keep"].click, labels.keep_theirs, ("view", "author", "pending"), shown + conflict)
    on(c["bulk"].click, labels.bulk_label, ("view", "author", "note", "bulk_which", "bulk_action"),
       shown + ("note", "bulk_message"))

    for name in form:  # .change: see the search box above
        on(c[name].change, jobs.preview, form, ("command", "launch_check"), trigger_mode="always_last")
    on(c["launch"].click, jobs.launch_job, form, jobs.JOB, concurrency_limit=1)
    on(c["cancel"].click, jobs.cancel_job, (), jobs.JOB)
    on(c["timer"].tick, jobs.watch_job, ("view", "author", "iterations_to_add"), jobs.JOB + shown + selectors)

    for name in ("review", "iterate", "metrics", "export"):
        on(c[f"{name}_tab"].select, lambda lab, tab=name: {"tab": tab}, (), ("tab",))
    for event in (c["metrics_tab"].select, c["refresh_metrics"].click):
        _metrics_steps(event, on)
    on(c["measure"].input, metrics.measurement, ("view", "measure"), metrics.MEASUREMENT)
    for name in ("run", "iteration"):
        on(c[name].change, metrics.follow, ("view", "run", "iteration", "measure", "tab"),
           metrics.OVERVIEW + metrics.MEASUREMENT + metrics.SCORES)
    on(c["assign"].click, metrics.assign, ("view", "annotators", "overlap"), metrics.TEAM)
    on(c["compare"].click, metrics.compare_view, ("compare_runs",), ("comparison",))
    on(c["export"].click, export.export_run, ("view",), ("export_files", "export_message"))


def _metrics_steps(event, on: Callable) -> None:
    """The Metrics tab drawn in steps on `event`, the first plot first (metrics.py)."""
    then = on(event, metrics.overview, ("view", "measure"), metrics.OVERVIEW).then
    then = on(then, metrics.measurement, ("view", "measure"), metrics.MEASUREMENT).then
    then = on(then, metrics.scores, ("view",), metrics.SCORES).then
    on(then, metrics.team, ("view",), metrics.TEAM)


def _select_run(lab: Lab, view: View, run: str | None, author: str, iterations_to_add: float | None = 1) -> dict:
    """The Review screen and the Iterate form for a run."""
    return _with_form(lab, review.select_run(lab, view, run, author), iterations_to_add)


def _with_form(lab: Lab, shown: dict, iterations_to_add: float | None) -> dict:
    """`shown` (a Review screen) with the Iterate form and command for its run."""
    form = jobs.iterate_form(lab, shown["view"].run)
    command = jobs.preview(lab, form["run_name"]["value"], form["preset"]["value"], form["sets"]["value"],
                           iterations_to_add)
    return {**shown, **form, "command": command["command"]}
