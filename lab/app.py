"""The Gradio app: browse how the reranker ranked each problem's candidates, label hard negatives,
launch the next iteration, and read and compare the metrics. `python app.py` or `python -m lab app`.

Tabs:
  Review   pick run + iteration, filter problems (language, split, state, search), open one: its
           prompt, its preference pairs (those with a reference solution marked) and every candidate
           ranked, with labels (hard negative / positive / exclude + note) written to the store at
           once. Keys: j/k next/previous candidate, ]/[ next/previous problem, h/p/x label, u undo;
           ignored while typing in a text box.
  Iterate  launch `python -m lab iterate` in the background (lab.launcher), follow it, cancel it.
  Metrics  pass@1 per language and iteration by method, the reward model's held-out measurements per
           iteration, the policy steps (reward-model score beside executed pass rate, KL, entropy,
           length), hard negatives and pairs per iteration, reward histogram; two or more runs side
           by side (lab.compare).
  Export   labels and pairs as JSONL, pairs as a `datasets` folder.

The handlers are module-level functions of a `Lab` and the input values; each returns the new values
keyed by component name (the names of `build_app`'s layout), and touches only those. `build_app`
holds layout and wiring only. Reads go through the store's reader (bad UTF-8 shown as U+FFFD),
labels through the store.

Listens on 127.0.0.1 unless told otherwise; `--auth USER:PASSWORD` protects a shared app.
Not covered here: what a view shows (app_views.py), plots (plots.py), the comparison (compare.py),
job control (launcher.py), anything the loop does.
"""
from __future__ import annotations

import argparse
import getpass
import os
import shlex
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import gradio as gr

from lab import app_views as views
from lab import compare, plots
from lab.config import PRESETS, UsageError, default_lab_dir
from lab.launcher import JobStatus, LaunchRefused, Launcher, iterate_command, run_overrides
from lab.records import RunRow
from lab.store import Store, StoreError

KEYS = {"j": "next-candidate", "k": "prev-candidate", "]": "next-problem", "[": "prev-problem",
        "h": "label-hard_negative", "p": "label-positive", "x": "label-exclude", "u": "label-undo"}
"""Key -> the elem_id of the button it presses."""
KEYBOARD_JS = """
() => {
  const keys = %s;
  const typing = 'textarea, select, [contenteditable="true"], input:not([type="radio"]):not([type="checkbox"])';
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest && event.target.closest(typing)) return;
    const button = document.getElementById(keys[event.key]);
    if (!button || button.offsetParent === null) return;
    event.preventDefault();
    button.click();
    if (event.key === 'j' || event.key === 'k') {
      const before = document.querySelector('.card.selected');
      let tries = 0;
      const follow = setInterval(() => {
        const now = document.querySelector('.card.selected');
        if ((now && now !== before) || ++tries > 40) {
          clearInterval(follow);
          if (now) now.scrollIntoView({block: 'nearest'});
        }
      }, 50);
    }
  });
}
""" % str(KEYS).replace("'", '"')
KEY_HELP = ("Keys: **j / k** next / previous candidate · **] / [** next / previous problem · **h** hard negative · "
            "**p** positive · **x** exclude · **u** undo (not while typing in a text box)")
REFRESH_S = 1.5

FILTERS = ("language", "split", "state", "search")
SELECT = ("run", "iteration", *FILTERS)
LIST = ("problems", "page", "offset", "page_ids")
REVIEW = ("problem", "problem_view", "candidate", "candidates_view", "counter", "candidate_ids")
ITERATE_FORM = ("run_name", "preset", "sets")
LAUNCH_FORM = (*ITERATE_FORM, "iterations_to_add")
JOB = ("job_state", "log", "job_message", "timer", "launch", "cancel")
METRICS = ("pass_plot", "pass_table", "heldout_plot", "heldout_table", "policy_plot", "hard_plot", "hard_table",
           "reward_plot", "pairs_table", "metrics_note", "compare_runs")
LABEL_ACTIONS = ("hard_negative", "positive", "exclude", "undo")


@dataclass
class Lab:
    """What the handlers work on: a lab directory, its store and the job launcher."""
    lab_dir: Path
    store: Store
    launcher: Launcher

    @classmethod
    def open(cls, lab_dir: str | Path) -> "Lab":
        lab_dir = Path(lab_dir)
        return cls(lab_dir, Store(lab_dir / "lab.sqlite"), Launcher(lab_dir))

    @property
    def reader(self) -> Store:
        return self.store.reader()

    def runs(self) -> dict[str, RunRow]:
        return {row["name"]: row for row in self.reader.runs()}

    def iterations(self, run_name: str | None) -> list[int]:
        run = self.runs().get(run_name)
        return self.reader.candidate_iterations(run["id"]) if run else []


# -------------------------------------------------------------- review: one problem

def review(lab: Lab, run_name, iteration, problem_id, selected_id=None) -> dict:
    """REVIEW for one problem of the run's iteration, `selected_id` selected (else the top one)."""
    scope = views.scope_of(lab.store, run_name, iteration)
    empty = {"problem": None, "candidate": gr.update(choices=[], value=None), "candidates_view": "",
             "candidate_ids": []}
    if scope is None:
        message = (views.empty_store_html(str(lab.store.path)) if not lab.runs() else
                   '<div class="empty">This run has no candidates yet: launch an iteration from the '
                   '<b>Iterate</b> tab.</div>')
        return {**empty, "problem_view": message, "counter": ""}
    counts = views.label_counts(lab.store, scope)
    labels = ", ".join(f"{views.LABEL_NAMES[k]} {v}" for k, v in sorted(counts["by_label"].items())) or "no labels yet"
    counter = (f"**{counts['labeled']}** labeled · **{counts['pending']}** pending in iteration {scope.iteration} "
               f"({labels})")
    summary = views.problem_summary(lab.store, scope, problem_id) if problem_id else None
    if summary is None:
        return {**empty, "counter": counter,
                "problem_view": '<div class="empty">No problem matches these filters.</div>'}
    candidates = views.ranked_candidates(lab.store, scope, problem_id)
    ids = [c["id"] for c in candidates]
    if selected_id not in ids:
        selected_id = ids[0] if ids else None
    pairs = views.problem_pairs(lab.store, scope.run_id, problem_id)
    return {
        "problem": problem_id,
        "problem_view": views.problem_html(summary, views.ranking_note(summary, scope.iteration), pairs),
        "candidate": gr.update(choices=views.candidate_choices(candidates), value=selected_id),
        "candidates_view": views.candidates_html(candidates, summary["language"], selected_id),
        "counter": counter,
        "candidate_ids": ids,
    }


# -------------------------------------------------------------- review: the problem list

def listing(lab: Lab, run_name, iteration, language, split, state, search, offset) -> dict:
    """LIST: the page at `offset` of the filtered problems (the last page when past the end)."""
    scope = views.scope_of(lab.store, run_name, iteration)
    if scope is None:
        return {"problems": views.problems_table([]), "page": "", "offset": 0, "page_ids": []}
    filters = dict(language=language or None, split=split or None, state=state or "all", search=search or "")
    offset = max(0, int(offset or 0))
    rows, total = views.list_problems(lab.store, scope, offset=offset, **filters)
    if not rows and offset > 0:
        offset = max(0, (total - 1) // views.PAGE_SIZE * views.PAGE_SIZE)
        rows, total = views.list_problems(lab.store, scope, offset=offset, **filters)
    pages = max(1, -(-total // views.PAGE_SIZE))
    return {"problems": views.problems_table(rows),
            "page": f"page {offset // views.PAGE_SIZE + 1} / {pages} · {total} problems", "offset": offset,
            "page_ids": [row["problem_id"] for row in rows]}


def list_and_open(lab: Lab, run_name, iteration, language, split, state, search, offset=0) -> dict:
    """LIST + REVIEW: a page of problems and its first problem opened."""
    page = listing(lab, run_name, iteration, language, split, state, search, offset)
    return {**page, **review(lab, run_name, iteration, page["page_ids"][0] if page["page_ids"] else None)}


def select_iteration(lab: Lab, run_name, iteration) -> dict:
    """FILTERS (reset, with this iteration's languages and splits) + LIST + REVIEW."""
    scope = views.scope_of(lab.store, run_name, iteration)
    choices = views.filter_choices(lab.store, scope) if scope else {"language": [], "split": []}
    return {"language": gr.update(choices=[("all", "")] + choices["language"], value=""),
            "split": gr.update(choices=[("all", "")] + choices["split"], value=""),
            "state": gr.update(value="all"), "search": gr.update(value=""),
            **list_and_open(lab, run_name, iteration, None, None, "all", "", 0)}


def select_run(lab: Lab, run_name, iterations_to_add=1) -> dict:
    """SELECT + LIST + REVIEW + ITERATE_FORM + command for a run (the newest run and iteration when
    `run_name` is None or unknown)."""
    runs = lab.runs()
    if run_name not in runs:
        run_name = next(reversed(runs), None)
    iterations = lab.iterations(run_name)
    iteration = iterations[-1] if iterations else None
    form = iterate_form(lab, run_name)
    command = preview(lab, form["run_name"]["value"], form["preset"]["value"], form["sets"]["value"], iterations_to_add)
    return {"run": gr.update(choices=list(runs), value=run_name),
            "iteration": gr.update(choices=iterations, value=iteration),
            **select_iteration(lab, run_name, iteration), **form, **command}


def turn_page(lab: Lab, run_name, iteration, language, split, state, search, offset, delta) -> dict:
    return list_and_open(lab, run_name, iteration, language, split, state, search, max(0, int(offset or 0) + delta))


def pick_problem(lab: Lab, run_name, iteration, page_ids, row) -> dict:
    """REVIEW of the problem in row `row` of the page (nothing opened for a row off the page)."""
    on_page = isinstance(row, int) and 0 <= row < len(page_ids)
    return review(lab, run_name, iteration, page_ids[row] if on_page else None)


def step_problem(lab: Lab, run_name, iteration, language, split, state, search, offset, page_ids, problem_id,
                 delta) -> dict:
    """LIST + REVIEW: the next/previous problem of the filtered list, turning the page at either end."""
    position = page_ids.index(problem_id) + delta if problem_id in page_ids else 0
    if 0 <= position < len(page_ids):
        return review(lab, run_name, iteration, page_ids[position])
    if position < 0 and offset == 0:
        return review(lab, run_name, iteration, problem_id)
    page = listing(lab, run_name, iteration, language, split, state, search,
                   offset + (views.PAGE_SIZE if delta > 0 else -views.PAGE_SIZE))
    if page["offset"] == offset or not page["page_ids"]:
        return {**page, **review(lab, run_name, iteration, problem_id)}
    return {**page, **review(lab, run_name, iteration, page["page_ids"][0 if delta > 0 else -1])}


def step_candidate(lab: Lab, run_name, iteration, problem_id, selected_id, candidate_ids, delta) -> dict:
    if not candidate_ids:
        return review(lab, run_name, iteration, problem_id)
    position = candidate_ids.index(selected_id) + delta if selected_id in candidate_ids else 0
    position = min(max(position, 0), len(candidate_ids) - 1)
    return review(lab, run_name, iteration, problem_id, candidate_ids[position])


# -------------------------------------------------------------- labels

def apply_label(lab: Lab, run_name, iteration, problem_id, selected_id, candidate_ids, note, author, language, split,
                state, search, offset, action) -> dict:
    """Write a label (or undo) for the selected candidate; LIST + REVIEW + note + message."""
    author = (author or "").strip()
    if selected_id is None:
        message = "Select a candidate first."
    elif selected_id not in (candidate_ids or []):
        message = f"Not saved: candidate {selected_id} is not shown on this page any more; pick one from the list."
    elif not author:
        message = "Type your name in **Author** first: every label records who made it."
    else:
        try:
            if action == "undo":
                restored = lab.store.undo_label(int(selected_id), author)
                message = f"Undone: candidate {selected_id} is now **{views.LABEL_NAMES.get(restored, 'unlabeled')}**."
            else:
                lab.store.add_label(int(selected_id), action, author, (note or "").strip())
                message = (f"Saved: candidate {selected_id} → **{views.LABEL_NAMES[action]}** by {author} "
                           f"at {datetime.now():%H:%M:%S}. Press u to undo.")
            note = ""
        except (StoreError, ValueError) as error:
            message = f"Not saved: {error}"
    return {**listing(lab, run_name, iteration, language, split, state, search, offset),
            **review(lab, run_name, iteration, problem_id, selected_id), "note": note, "message": message}


# -------------------------------------------------------------- iterate

def iterate_form(lab: Lab, run_name) -> dict:
    """ITERATE_FORM: an existing run continues with its own preset and overrides."""
    run = lab.runs().get(run_name)
    if run is None:
        return {"run_name": gr.update(value=run_name or "demo"), "preset": gr.update(value="tiny"),
                "sets": gr.update(value="")}
    preset = run["preset"] if run["preset"] in PRESETS else "cpu"
    return {"run_name": gr.update(value=run_name), "preset": gr.update(value=preset),
            "sets": gr.update(value="\n".join(run_overrides(run["config_json"], preset)))}


def _command(lab: Lab, run_name, preset, sets, iterations) -> list[str]:
    assignments = [line.strip() for line in (sets or "").splitlines() if line.strip()]
    return iterate_command(lab.lab_dir, run_name.strip(), preset, assignments, int(iterations or 0))


def preview(lab: Lab, run_name, preset, sets, iterations) -> dict:
    if not (run_name or "").strip():
        return {"command": "Give the run a name."}
    return {"command": shlex.join(_command(lab, run_name, preset, sets, iterations))}


def job_html(lab: Lab, job: JobStatus) -> str:
    if job.state == "idle":
        return '<div class="muted">No iteration launched from this app yet.</div>'
    elapsed = f" · {time.time() - job.started_at:.0f} s since start" if job.started_at and job.running else ""
    exit_text = f" · exit status {job.returncode}" if job.returncode is not None else ""
    percent = job.progress_percent
    bar = (f'<div class="progress-bar"><div style="width:{percent}%"></div></div>'
           f'<div class="meta">{views.esc(job.progress_label)} {percent}%</div>') if percent is not None else ""
    run = lab.runs().get(job.command[job.command.index("--run") + 1] if "--run" in job.command else None)
    stages = views.stages_html(lab.reader.stages(run["id"])) if run else ""
    return (f'<div><b id="job-state">{views.esc(job.state)}</b> · pid {job.pid}{elapsed}{exit_text}</div>'
            f'<div class="meta">log: {views.esc(job.log_path)}</div>{stages}{bar}')


def job_view(lab: Lab, job: JobStatus | None = None, message: str = "") -> dict:
    """JOB for `job` (default: the launcher's current one)."""
    job = job or lab.launcher.status()
    return {"job_state": job_html(lab, job), "log": job.log_tail, "job_message": message,
            "timer": gr.Timer(active=job.running), "launch": gr.update(interactive=not job.running),
            "cancel": gr.update(interactive=job.running)}


def open_app(lab: Lab, run_name, iterations_to_add) -> dict:
    """Everything a fresh page shows: `select_run` and the job."""
    return {**select_run(lab, run_name, iterations_to_add), **job_view(lab)}


def launch_job(lab: Lab, run_name, preset, sets, iterations) -> dict:
    run_name = (run_name or "").strip()
    if not run_name:
        return job_view(lab, message="Give the run a name first.")
    log_path = lab.lab_dir / run_name / "logs" / f"iterate-{datetime.now():%Y%m%d-%H%M%S}.log"
    try:
        job = lab.launcher.start(_command(lab, run_name, preset, sets, iterations), log_path)
    except LaunchRefused as error:
        return job_view(lab, message=f"Refused: {error}")
    return job_view(lab, job, f"Launched run **{run_name}**. Labels you make meanwhile are saved as usual.")


def cancel_job(lab: Lab) -> dict:
    job = lab.launcher.cancel()
    return job_view(lab, job, "Cancelled: the iteration's processes were stopped. Rerun it to resume where it stopped.")


def watch_job(lab: Lab, run_name, problem_id, iterations_to_add) -> dict:
    """Timer tick: JOB only while the job runs. Once it has ended, the run and iteration lists are
    refreshed too, and the Review tab is filled if it was empty (a first run); a review in
    progress is never moved."""
    job = lab.launcher.status()
    if job.running:
        return job_view(lab, job)
    message = {"succeeded": "The iteration finished: pick its number in **Iteration** to review it.",
               "failed": "The iteration failed: the log above says why.",
               "cancelled": "Cancelled. Launching again resumes where it stopped."}.get(job.state, "")
    if problem_id is None:
        return {**select_run(lab, run_name, iterations_to_add), **job_view(lab, job, message)}
    return {**job_view(lab, job, message), "run": gr.update(choices=list(lab.runs())),
            "iteration": gr.update(choices=lab.iterations(run_name))}


# -------------------------------------------------------------- metrics, comparison and export

def metrics(lab: Lab, run_name, iteration) -> dict:
    """METRICS of a run; the reward histogram is of the selected iteration (none without one)."""
    runs = lab.runs()
    none = dict.fromkeys(METRICS[:-2])
    compare_choices = gr.update(choices=list(runs))
    run = runs.get(run_name)
    if run is None:
        return {**none, "metrics_note": "No run selected: metrics appear once an iteration has run.",
                "compare_runs": compare_choices}
    reader = lab.reader
    evaluations, measurements = reader.evaluations(run["id"]), reader.measurements(run["id"])
    hard_negatives = views.hard_negatives_per_iteration(lab.store, run["id"])
    rewards = reader.reward_scores(run["id"], int(iteration)) if iteration is not None else []
    pairs = reader.pairs(run["id"])
    notes = [text for missing, text in (
        (not evaluations, f"No pass@1 evaluations yet: `python -m lab eval --lab-dir {lab.lab_dir} --run {run_name}` "
                          "writes them."),
        (not measurements, "No held-out measurements yet: they are recorded after each reward-model training."),
        (hard_negatives.empty, "No hard negatives mined or labeled yet."),
        (iteration is None, "No iteration with candidates yet for the score histogram."),
        (iteration is not None and not rewards,
         f"No executed candidates with reward-model scores in iteration {iteration} for the histogram."),
    ) if missing]
    return {"pass_plot": plots.pass_at_1_figure(evaluations), "pass_table": views.pass_at_1_table(evaluations),
            "heldout_plot": plots.heldout_figure(measurements), "heldout_table": views.heldout_table(measurements),
            "policy_plot": plots.policy_curves_figure(reader.metrics(run["id"], stage="policy")),
            "hard_plot": plots.hard_negatives_figure(hard_negatives.to_dict("records")), "hard_table": hard_negatives,
            "reward_plot": plots.reward_histogram_figure(rewards, f"candidates, iteration {iteration}"),
            "pairs_table": views.pairs_table(pairs), "metrics_note": "\n\n".join(notes),
            "compare_runs": compare_choices}


def compare_view(lab: Lab, run_names) -> dict:
    """The comparison of the chosen runs (two or more) as Markdown."""
    names = list(run_names or [])
    if len(names) < 2:
        return {"comparison": "Pick two or more runs to compare."}
    try:
        return {"comparison": compare.comparison_markdown(compare.compare_runs(lab.reader, names))}
    except (StoreError, UsageError) as error:
        return {"comparison": f"Cannot compare: {error}"}


def export_run(lab: Lab, run_name, what: str) -> dict:
    """Export a run's 'labels' or 'pairs' as JSONL, or its pairs as a 'dataset' folder, under
    <lab_dir>/<run>/exports/: the file to offer for download (or None) and a message."""
    run = lab.runs().get(run_name)
    if run is None:
        return {"export_file": None, "export_message": "Pick a run first."}
    folder = lab.lab_dir / run_name / "exports"
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    if what == "dataset":
        path = folder / f"pairs-dataset-{stamp}"
        dataset = lab.reader.pairs_dataset(run["id"])
        dataset.save_to_disk(str(path))
        return {"export_file": None, "export_message": f"Saved {len(dataset)} pairs as a `datasets` folder: `{path}` "
                                                       "(load it with `datasets.load_from_disk`)."}
    path = folder / f"{what}-{stamp}.jsonl"
    export = lab.reader.export_labels if what == "labels" else lab.reader.export_pairs
    return {"export_file": str(path), "export_message": f"Wrote {export(run['id'], path)} {what} rows to `{path}`."}


# -------------------------------------------------------------- layout and wiring

def _review_tab(c: dict) -> None:
    with gr.Tab("Review", id="review"), gr.Row():
        with gr.Column(scale=2, min_width=420):
            with gr.Row():
                c["language"] = gr.Dropdown(label="Language", choices=[("all", "")], value="", min_width=100)
                c["split"] = gr.Dropdown(label="Split", choices=[("all", "")], value="", min_width=100)
            c["state"] = gr.Dropdown(label="State", choices=[(v, k) for k, v in views.STATES.items()], value="all")
            c["search"] = gr.Textbox(label="Search", placeholder="problem id or prompt text", elem_id="search")
            c["problems"] = gr.Dataframe(interactive=False, wrap=True, max_height=640, elem_id="problems",
                                         value=views.problems_table([]), buttons=[],
                                         column_widths=["38%", "11%", "14%", "15%", "22%"])
            with gr.Row():
                c["prev_page"] = gr.Button("◀ page", size="sm", min_width=60)
                c["page"] = gr.Markdown()
                c["next_page"] = gr.Button("page ▶", size="sm", min_width=60)
        with gr.Column(scale=5):
            c["problem_view"] = gr.HTML(elem_id="problem-view")
            c["candidate"] = gr.Radio(label="Candidate (ranked best first)", choices=[], elem_id="candidate-radio")
            with gr.Row():
                texts = ("Hard negative (h)", "Positive (p)", "Exclude (x)", "Undo (u)")
                for action, text in zip(LABEL_ACTIONS, texts):
                    c[f"label_{action}"] = gr.Button(text, elem_id=f"label-{action}")
            with gr.Row():
                c["note"] = gr.Textbox(label="Note (optional, saved with the next label)", scale=3, elem_id="note")
                with gr.Column(scale=2):
                    for pair in (("prev_candidate", "◀ candidate (k)", "next_candidate", "candidate (j) ▶"),
                                 ("prev_problem", "◀ problem ([)", "next_problem", "problem (]) ▶")):
                        with gr.Row():
                            for name, text in zip(pair[::2], pair[1::2]):
                                c[name] = gr.Button(text, elem_id=name.replace("_", "-"), size="sm")
            c["message"] = gr.Markdown(elem_id="label-message")
            c["counter"] = gr.Markdown(elem_id="label-counter")
            gr.Markdown(KEY_HELP)
            c["candidates_view"] = gr.HTML(elem_id="candidates-view")


def _iterate_tab(c: dict) -> None:
    with gr.Tab("Iterate", id="iterate"):
        gr.Markdown("Run one more self-training iteration in a background process. One at a time per lab "
                    "directory; the app stays usable and labels made meanwhile are kept.")
        with gr.Row():
            c["run_name"] = gr.Textbox(label="Run (an existing run continues; a new name starts a run)", value="demo")
            c["preset"] = gr.Dropdown(label="Preset", choices=list(PRESETS), value="tiny")
            c["sets"] = gr.Textbox(label="Overrides, one SECTION.FIELD=VALUE per line", lines=2)
            c["iterations_to_add"] = gr.Number(label="Iterations to add (0 = only the bootstrap of a new run)",
                                               value=1, minimum=0, precision=0)
        c["command"] = gr.Textbox(label="Command", interactive=False, elem_id="command")
        with gr.Row():
            c["launch"] = gr.Button("Launch iteration", variant="primary", elem_id="launch")
            c["cancel"] = gr.Button("Cancel", variant="stop", interactive=False, elem_id="cancel")
        c["job_message"] = gr.Markdown(elem_id="job-message")
        c["job_state"] = gr.HTML(elem_id="job-status")
        c["log"] = gr.Textbox(label="Log (last lines)", lines=14, max_lines=14, interactive=False, autoscroll=True,
                              elem_id="job-log")
        c["timer"] = gr.Timer(REFRESH_S, active=False)


def _metrics_tab(c: dict) -> None:
    with gr.Tab("Metrics", id="metrics") as c["metrics_tab"]:
        c["metrics_note"] = gr.Markdown()
        c["refresh_metrics"] = gr.Button("Refresh", size="sm")
        c["pass_plot"] = gr.Plot(label="pass@1 per iteration")
        c["pass_table"] = gr.Dataframe(label="pass@1 (benchmark × language × method, one column per iteration)",
                                       interactive=False)
        c["heldout_plot"] = gr.Plot(label="measurements per iteration: the reward model on held-out MBPP validation "
                                          "after each training, the rankers on each evaluated set")
        c["heldout_table"] = gr.Dataframe(label="measurements: value (count) per iteration", interactive=False)
        c["policy_plot"] = gr.Plot(label="policy steps: the rollouts' reward-model score beside their executed pass "
                                         "rate (a score rising while the pass rate falls is reward hacking)")
        with gr.Row():
            c["hard_plot"] = gr.Plot(label="hard negatives per iteration")
            c["reward_plot"] = gr.Plot(label="score histogram")
        with gr.Row():
            c["hard_table"] = gr.Dataframe(label="hard negatives per iteration", interactive=False)
            c["pairs_table"] = gr.Dataframe(label="preference pairs per iteration and kind", interactive=False)
        gr.Markdown("### Compare runs\npass@1, ranking accuracy, held-out reward-model measurements and the "
                    "config differences of two or more runs (also `python -m lab eval --compare RUN RUN...`).")
        with gr.Row():
            c["compare_runs"] = gr.Dropdown(label="Runs", choices=[], multiselect=True, scale=4, elem_id="compare-runs")
            c["compare"] = gr.Button("Compare", scale=1, elem_id="compare")
        c["comparison"] = gr.Markdown(elem_id="comparison")


def _export_tab(c: dict) -> None:
    with gr.Tab("Export", id="export"):
        gr.Markdown("Curated labels (full history: label, note, author, time, with the candidate and prompt) "
                    "and preference pairs (TRL's prompt / chosen / rejected columns plus provenance).")
        with gr.Row():
            for what, text in (("labels", "Labels → JSONL"), ("pairs", "Pairs → JSONL"),
                               ("dataset", "Pairs → datasets folder")):
                c[f"export_{what}"] = gr.Button(text)
        c["export_file"] = gr.File(label="Download", interactive=False)
        c["export_message"] = gr.Markdown()


def build_app(lab_dir: str | Path, author: str) -> gr.Blocks:
    """The app for one lab directory; `author` is the default name written with each label."""
    lab = Lab.open(lab_dir)
    c: dict = {}

    def on(event, handler, inputs=(), outputs=(), *, row_event=False, constants=None, **options):
        """`handler(lab, *input values, **constants)` on `event`; its name -> value dict updates those components."""
        def named(values: dict) -> dict:
            return {c[name]: value for name, value in values.items()}

        def run(*values):
            return named(handler(lab, *values, **(constants or {})))

        def run_on_row(event: gr.SelectData, *values):
            row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
            return named(handler(lab, *values, row, **(constants or {})))
        return event(run_on_row if row_event else run, [c[n] for n in inputs], [c[n] for n in outputs], **options)

    with gr.Blocks(title="RewardRanker Lab") as app:
        with gr.Row(equal_height=True):
            gr.Markdown(f"## RewardRanker Lab\nstore `{lab.store.path}`")
            c["run"] = gr.Dropdown(label="Run", choices=[], scale=1)
            c["iteration"] = gr.Dropdown(label="Iteration", choices=[], scale=1)
            c["author"] = gr.Textbox(label="Author (recorded with each label)", value=author, scale=1)
        with gr.Tabs():
            for tab in (_review_tab, _iterate_tab, _metrics_tab, _export_tab):
                tab(c)
        c.update(problem=gr.State(None), offset=gr.State(0), page_ids=gr.State([]), candidate_ids=gr.State([]))
        where, everything = ("run", "iteration"), (*SELECT, *LIST, *REVIEW, *ITERATE_FORM, "command")

        on(app.load, open_app, ("run", "iterations_to_add"), everything + JOB)
        on(c["run"].input, select_run, ("run", "iterations_to_add"), everything)
        on(c["iteration"].input, select_iteration, where, FILTERS + LIST + REVIEW)
        for name in FILTERS:
            on(c[name].input, list_and_open, where + FILTERS, LIST + REVIEW,
               **({"trigger_mode": "always_last"} if name == "search" else {}))
        for name, delta in (("prev_page", -views.PAGE_SIZE), ("next_page", views.PAGE_SIZE)):
            on(c[name].click, turn_page, where + FILTERS + ("offset",), LIST + REVIEW, constants={"delta": delta})
        on(c["problems"].select, pick_problem, where + ("page_ids",), REVIEW, row_event=True)
        for name, delta in (("prev_problem", -1), ("next_problem", 1)):
            on(c[name].click, step_problem, where + FILTERS + ("offset", "page_ids", "problem"), LIST + REVIEW,
               constants={"delta": delta})
        on(c["candidate"].input, review, where + ("problem", "candidate"), REVIEW)
        for name, delta in (("prev_candidate", -1), ("next_candidate", 1)):
            on(c[name].click, step_candidate, where + ("problem", "candidate", "candidate_ids"), REVIEW,
               constants={"delta": delta})
        for action in LABEL_ACTIONS:
            on(c[f"label_{action}"].click, apply_label,
               where + ("problem", "candidate", "candidate_ids", "note", "author") + FILTERS + ("offset",),
               LIST + REVIEW + ("note", "message"), constants={"action": action})

        for name in LAUNCH_FORM:
            on(c[name].input, preview, LAUNCH_FORM, ("command",))
        on(c["launch"].click, launch_job, LAUNCH_FORM, JOB, concurrency_limit=1)
        on(c["cancel"].click, cancel_job, (), JOB)
        on(c["timer"].tick, watch_job, ("run", "problem", "iterations_to_add"), JOB + everything)

        for event in (c["metrics_tab"].select, c["refresh_metrics"].click):
            on(event, metrics, where, METRICS)
        on(c["compare"].click, compare_view, ("compare_runs",), ("comparison",))
        for what in ("labels", "pairs", "dataset"):
            on(c[f"export_{what}"].click, export_run, ("run",), ("export_file", "export_message"),
               constants={"what": what})
    return app


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must be USER:PASSWORD (both non-empty)")
    return user, password


def launch(lab_dir: str | Path | None = None, host: str = "127.0.0.1", port: int = 7860,
           auth: tuple[str, str] | None = None, author: str | None = None, block: bool = True):
    """Serve the app. Returns the Blocks (running in the background when block=False)."""
    if host not in ("127.0.0.1", "localhost") and auth is None:
        print(f"warning: listening on {host} without --auth: anyone who can reach this port can read and label")
    app = build_app(lab_dir or default_lab_dir(), author or default_author())
    app.launch(server_name=host, server_port=port, auth=auth, prevent_thread_lock=not block, css=views.APP_CSS,
               js=KEYBOARD_JS, footer_links=[], quiet=False)
    return app


def default_author() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return ""


def main(argv: list[str] | None = None, prog: str = "python app.py") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="RewardRanker Lab: review rerankings, label "
                                     "hard negatives, launch iterations.")
    parser.add_argument("--lab-dir", default=default_lab_dir(), help="lab directory (default: $RR_LAB_DIR or ./runs)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", default=os.environ.get("RR_APP_AUTH"),
                        help="USER:PASSWORD required to open the app (default: $RR_APP_AUTH; use when it is shared)")
    parser.add_argument("--author", default=default_author(), help="name recorded with labels (default: $USER)")
    args = parser.parse_args(argv)
    try:
        auth = parse_auth(args.auth)
    except ValueError as error:
        parser.error(str(error))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    launch(args.lab_dir, args.host, args.port, auth, args.author)
    return 0
