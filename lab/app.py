"""The Gradio app: browse how the reranker ranked each problem's candidates, label hard negatives,
launch the next iteration, and read the metrics. `python app.py` or `python -m lab app`.

Tabs:
  Review   pick run + iteration, filter problems (language, split, state, search), open one: its
           prompt and every candidate ranked, with labels (hard negative / positive / exclude + note)
           written to the store at once. Keys: j/k next/previous candidate, ]/[ next/previous
           problem, h/p/x label, u undo; ignored while typing in a text box.
  Iterate  launch `python -m lab iterate` in the background (lab.launcher), follow it, cancel it.
  Metrics  pass@1 per language and iteration by method, hard negatives per iteration, reward histogram.
  Export   labels and pairs as JSONL, pairs as a `datasets` folder.

Listens on 127.0.0.1 unless told otherwise; `--auth USER:PASSWORD` protects a shared app.
Not covered here: queries and HTML (app_views.py), job control (launcher.py), anything the loop does.
"""
from __future__ import annotations

import argparse
import getpass
import os
import shlex
import time
from datetime import datetime
from pathlib import Path

import gradio as gr

from lab import app_views as views
from lab.config import PRESETS, default_lab_dir
from lab.launcher import JobStatus, LaunchRefused, Launcher, iterate_command, run_overrides
from lab.store import Store, StoreError

KEYS = {"j": "next-candidate", "k": "prev-candidate", "]": "next-problem", "[": "prev-problem",
        "h": "label-hard_negative", "p": "label-positive", "x": "label-exclude", "u": "label-undo"}
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


def build_app(lab_dir: str | Path, author: str) -> gr.Blocks:
    """The app for one lab directory; `author` is the default name written with each label."""
    lab_dir = Path(lab_dir)
    store = Store(lab_dir / "lab.sqlite")
    launcher = Launcher(lab_dir)

    # -------------------------------------------------------------- reading the store

    def run_rows() -> dict[str, dict]:
        return {row["name"]: row for row in views.query(store, "SELECT * FROM runs ORDER BY id")}

    def context(run_name: str | None, iteration: int | None):
        """(run_id, iteration), or None when nothing is selected or the run has no iterations."""
        runs = run_rows()
        if run_name not in runs or iteration is None:
            return None
        return runs[run_name]["id"], int(iteration)

    def iterations_of(run_name: str | None) -> list[int]:
        runs = run_rows()
        if run_name not in runs:
            return []
        run_id = runs[run_name]["id"]
        numbers = views.query(store, "SELECT DISTINCT iteration FROM candidates WHERE run_id = ? ORDER BY 1", (run_id,))
        return [row["iteration"] for row in numbers]

    # -------------------------------------------------------------- review: one problem

    def review(run_name, iteration, problem_id, selected_id=None):
        """Values for REVIEW = [problem, problem view, candidate radio, candidate cards, counter, candidate ids]."""
        found = context(run_name, iteration)
        if found is None:
            message = (views.empty_store_html(str(store.path)) if not run_rows() else
                       '<div class="empty">This run has no candidates yet: launch an iteration from the '
                       '<b>Iterate</b> tab.</div>')
            return None, message, gr.update(choices=[], value=None), "", "", []
        run_id, iteration = found
        counts = views.label_counts(store, run_id, iteration)
        counter = (f"**{counts['labeled']}** labeled · **{counts['pending']}** pending in iteration {iteration} "
                   f"({', '.join(f'{views.LABEL_NAMES[k]} {v}' for k, v in sorted(counts['by_label'].items())) or 'no labels yet'})")
        summary = views.problem_summary(store, run_id, iteration, problem_id) if problem_id else None
        if summary is None:
            return (None, '<div class="empty">No problem matches these filters.</div>',
                    gr.update(choices=[], value=None), "", counter, [])
        candidates = views.ranked_candidates(store, run_id, iteration, problem_id)
        ids = [c["id"] for c in candidates]
        if selected_id not in ids:
            selected_id = ids[0] if ids else None
        return (
            problem_id,
            views.problem_html(summary, views.ranking_note(store, run_id, iteration, summary["ranked_by"])),
            gr.update(choices=views.candidate_choices(candidates), value=selected_id),
            views.candidates_html(candidates, summary["language"], selected_id),
            counter,
            ids,
        )

    # -------------------------------------------------------------- review: the problem list

    def listing(run_name, iteration, language, split, state, search, offset):
        """Values for LIST = [table, page line, offset, page ids] and the first problem id of the page."""
        found = context(run_name, iteration)
        if found is None:
            return views.problems_table([]), "", 0, [], None
        run_id, iteration = found
        filters = dict(language=language or None, split=split or None, state=state, search=search or "")
        rows, total = views.list_problems(store, run_id, iteration, offset=offset, **filters)
        if not rows and offset > 0:
            offset = max(0, (total - 1) // views.PAGE_SIZE * views.PAGE_SIZE)
            rows, total = views.list_problems(store, run_id, iteration, offset=offset, **filters)
        pages = max(1, -(-total // views.PAGE_SIZE))
        line = f"page {offset // views.PAGE_SIZE + 1} / {pages} · {total} problems"
        ids = [row["problem_id"] for row in rows]
        return views.problems_table(rows), line, offset, ids, (ids[0] if ids else None)

    def list_and_open(run_name, iteration, language, split, state, search, offset):
        *values, first = listing(run_name, iteration, language, split, state, search, offset)
        return (*values, *review(run_name, iteration, first))

    def select_run(run_name):
        """SELECT + LIST + REVIEW + ITERATE_FORM for a run (the newest run and iteration when None)."""
        runs = run_rows()
        if run_name not in runs:
            run_name = next(reversed(runs), None)
        iterations = iterations_of(run_name)
        iteration = iterations[-1] if iterations else None
        selection = (
            gr.update(choices=list(runs), value=run_name),
            gr.update(choices=iterations, value=iteration),
            *filter_updates(run_name, iteration),
        )
        return (*selection, *list_and_open(run_name, iteration, None, None, "all", "", 0), *iterate_form(run_name))

    def filter_updates(run_name, iteration):
        found = context(run_name, iteration)
        choices = views.filter_choices(store, found[0], found[1]) if found else {"language": [], "split": []}
        return (
            gr.update(choices=[("all", "")] + choices["language"], value=""),
            gr.update(choices=[("all", "")] + choices["split"], value=""),
            gr.update(value="all"),
            gr.update(value=""),
        )

    def select_iteration(run_name, iteration):
        return (*filter_updates(run_name, iteration), *list_and_open(run_name, iteration, None, None, "all", "", 0))

    def turn_page(run_name, iteration, language, split, state, search, offset, delta):
        return list_and_open(run_name, iteration, language, split, state, search, max(0, offset + delta))

    def pick_problem(run_name, iteration, page_ids, event: gr.SelectData):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return review(run_name, iteration, page_ids[row] if 0 <= row < len(page_ids) else None)

    def step_problem(run_name, iteration, language, split, state, search, offset, page_ids, problem_id, delta):
        """Next/previous problem in the filtered list, turning the page at either end."""
        position = page_ids.index(problem_id) + delta if problem_id in page_ids else 0
        if 0 <= position < len(page_ids):
            return (gr.update(), gr.update(), offset, page_ids, *review(run_name, iteration, page_ids[position]))
        if position < 0 and offset == 0:
            return (gr.update(), gr.update(), offset, page_ids, *review(run_name, iteration, problem_id))
        new_offset = offset + (views.PAGE_SIZE if delta > 0 else -views.PAGE_SIZE)
        table, line, new_offset, ids, _ = listing(run_name, iteration, language, split, state, search, new_offset)
        if new_offset == offset:
            return (table, line, offset, ids, *review(run_name, iteration, problem_id))
        target = ids[0] if delta > 0 else ids[-1]
        return (table, line, new_offset, ids, *review(run_name, iteration, target))

    def step_candidate(run_name, iteration, problem_id, selected_id, candidate_ids, delta):
        if not candidate_ids:
            return review(run_name, iteration, problem_id)
        position = candidate_ids.index(selected_id) + delta if selected_id in candidate_ids else 0
        position = min(max(position, 0), len(candidate_ids) - 1)
        return review(run_name, iteration, problem_id, candidate_ids[position])

    # -------------------------------------------------------------- labels

    def apply_label(run_name, iteration, problem_id, selected_id, note, author_name, language, split, state, search,
                    offset, action):
        """Write a label (or undo) for the selected candidate, then refresh REVIEW + LIST."""
        author_name = (author_name or "").strip()
        if selected_id is None:
            message = "Select a candidate first."
        elif not author_name:
            message = "Type your name in **Author** first: every label records who made it."
        else:
            try:
                if action == "undo":
                    restored = store.undo_label(int(selected_id), author_name)
                    message = f"Undone: candidate {selected_id} is now **{views.LABEL_NAMES.get(restored, 'unlabeled')}**."
                else:
                    store.add_label(int(selected_id), action, author_name, (note or "").strip())
                    message = (f"Saved: candidate {selected_id} → **{views.LABEL_NAMES[action]}** by {author_name} "
                               f"at {datetime.now():%H:%M:%S}. Press u to undo.")
                note = ""
            except (StoreError, ValueError) as error:
                message = f"Not saved: {error}"
        table, line, offset, ids, _ = listing(run_name, iteration, language, split, state, search, offset)
        return (table, line, offset, ids, *review(run_name, iteration, problem_id, selected_id), note, message)

    # -------------------------------------------------------------- iterate

    def iterate_form(run_name):
        runs = run_rows()
        if run_name not in runs:
            return gr.update(value=run_name or "demo"), gr.update(value="tiny"), gr.update(value="")
        run = runs[run_name]
        preset = run["preset"] if run["preset"] in PRESETS else "cpu"
        return gr.update(value=run_name), gr.update(value=preset), gr.update(value="\n".join(run_overrides(run["config_json"], preset)))

    def command_for(run_name, preset, assignments, iterations):
        sets = [line.strip() for line in (assignments or "").splitlines() if line.strip()]
        return iterate_command(lab_dir, run_name.strip(), preset, sets, int(iterations or 0))

    def preview(run_name, preset, assignments, iterations):
        if not (run_name or "").strip():
            return "Give the run a name."
        return shlex.join(command_for(run_name, preset, assignments, iterations))

    def job_html(job: JobStatus) -> str:
        if job.state == "idle":
            return '<div class="muted">No iteration launched from this app yet.</div>'
        elapsed = f" · {time.time() - job.started_at:.0f} s since start" if job.started_at and job.running else ""
        exit_text = f" · exit status {job.returncode}" if job.returncode is not None else ""
        percent = job.progress_percent
        bar = (f'<div class="progress-bar"><div style="width:{percent}%"></div></div>'
               f'<div class="meta">{views.esc(job.progress_label)} {percent}%</div>') if percent is not None else ""
        runs = run_rows()
        run_name = job.command[job.command.index("--run") + 1] if "--run" in job.command else None
        stages = views.stages_html(store.stages(runs[run_name]["id"])) if run_name in runs else ""
        return (f'<div><b id="job-state">{views.esc(job.state)}</b> · pid {job.pid}{elapsed}{exit_text}</div>'
                f'<div class="meta">log: {views.esc(job.log_path)}</div>{stages}{bar}')

    def job_view(job: JobStatus, message: str = ""):
        """Values for JOB = [job html, log tail, message, timer, launch button, cancel button]."""
        return (job_html(job), job.log_tail, message, gr.Timer(active=job.running),
                gr.update(interactive=not job.running), gr.update(interactive=job.running))

    def launch_job(run_name, preset, assignments, iterations):
        run_name = (run_name or "").strip()
        if not run_name:
            return job_view(launcher.status(), "Give the run a name first.")
        log_path = lab_dir / run_name / "logs" / f"iterate-{datetime.now():%Y%m%d-%H%M%S}.log"
        try:
            job = launcher.start(command_for(run_name, preset, assignments, iterations), log_path)
        except LaunchRefused as error:
            return job_view(launcher.status(), f"Refused: {error}")
        return job_view(job, f"Launched run **{run_name}**. Labels you make meanwhile are saved as usual.")

    def cancel_job():
        job = launcher.cancel()
        return job_view(job, "Cancelled: the iteration's processes were stopped. Rerun it to resume where it stopped.")

    def watch_job(run_name, problem_id):
        """Timer tick: JOB, then SELECT + LIST + REVIEW + ITERATE_FORM left alone while the job runs.
        When it has ended: the run and iteration lists are refreshed, and the Review tab is filled
        if it was empty (a first run); a review in progress is never moved."""
        job = launcher.status()
        untouched = [gr.skip()] * (len(SELECT) + len(LIST) + len(REVIEW) + len(ITERATE_FORM))
        if job.running:
            return (*job_view(job), *untouched)
        message = {"succeeded": "The iteration finished: pick its number in **Iteration** to review it.",
                   "failed": "The iteration failed: the log above says why.",
                   "cancelled": "Cancelled. Launching again resumes where it stopped."}.get(job.state, "")
        if problem_id is None:
            return (*job_view(job, message), *select_run(run_name))
        runs = list(run_rows())
        return (*job_view(job, message), gr.update(choices=runs), gr.update(choices=iterations_of(run_name)),
                *untouched[2:])

    # -------------------------------------------------------------- metrics and export

    def metrics(run_name, iteration):
        found = context(run_name, iteration)
        if found is None:
            return None, None, None, None, None, "No run or iteration selected: metrics appear once an iteration has run."
        run_id, iteration = found
        evaluations = store.evaluations(run_id)
        per_iteration = views.hard_negatives_per_iteration(store, run_id)
        values = views.reward_values(store, run_id, iteration)
        notes = []
        if not evaluations:
            notes.append(f"No pass@1 evaluations yet: `python -m lab eval --lab-dir {lab_dir} --run {run_name}` writes them.")
        if per_iteration.empty:
            notes.append("No hard negatives mined or labeled yet.")
        if values.empty:
            notes.append(f"No executed candidates with reward-model scores in iteration {iteration} for the histogram.")
        return (views.pass_at_1_figure(evaluations), views.pass_at_1_table(evaluations),
                views.hard_negatives_figure(per_iteration), per_iteration,
                views.reward_histogram_figure(values, iteration), "\n\n".join(notes))

    # -------------------------------------------------------------- layout

    with gr.Blocks(title="RewardRanker Lab") as app:
        with gr.Row(equal_height=True):
            gr.Markdown(f"## RewardRanker Lab\nstore `{store.path}`")
            run_dd = gr.Dropdown(label="Run", choices=[], scale=1)
            iteration_dd = gr.Dropdown(label="Iteration", choices=[], scale=1)
            author_tb = gr.Textbox(label="Author (recorded with each label)", value=author, scale=1)
        with gr.Tabs():
            with gr.Tab("Review", id="review"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=420):
                        with gr.Row():
                            language_dd = gr.Dropdown(label="Language", choices=[("all", "")], value="", min_width=100)
                            split_dd = gr.Dropdown(label="Split", choices=[("all", "")], value="", min_width=100)
                        state_dd = gr.Dropdown(label="State", choices=[(v, k) for k, v in views.STATES.items()], value="all")
                        search_tb = gr.Textbox(label="Search", placeholder="problem id or prompt text", elem_id="search")
                        problems_df = gr.Dataframe(interactive=False, wrap=True, max_height=640, elem_id="problems",
                                                   value=views.problems_table([]), buttons=[],
                                                   column_widths=["38%", "11%", "14%", "15%", "22%"])
                        with gr.Row():
                            prev_page = gr.Button("◀ page", size="sm", min_width=60)
                            page_md = gr.Markdown()
                            next_page = gr.Button("page ▶", size="sm", min_width=60)
                    with gr.Column(scale=5):
                        problem_view = gr.HTML(elem_id="problem-view")
                        candidate_radio = gr.Radio(label="Candidate (ranked best first)", choices=[], elem_id="candidate-radio")
                        with gr.Row():
                            label_buttons = {
                                "hard_negative": gr.Button("Hard negative (h)", elem_id="label-hard_negative"),
                                "positive": gr.Button("Positive (p)", elem_id="label-positive"),
                                "exclude": gr.Button("Exclude (x)", elem_id="label-exclude"),
                                "undo": gr.Button("Undo (u)", elem_id="label-undo"),
                            }
                        with gr.Row():
                            note_tb = gr.Textbox(label="Note (optional, saved with the next label)", scale=3, elem_id="note")
                            with gr.Column(scale=2):
                                with gr.Row():
                                    prev_candidate = gr.Button("◀ candidate (k)", elem_id="prev-candidate", size="sm")
                                    next_candidate = gr.Button("candidate (j) ▶", elem_id="next-candidate", size="sm")
                                with gr.Row():
                                    prev_problem = gr.Button("◀ problem ([)", elem_id="prev-problem", size="sm")
                                    next_problem = gr.Button("problem (]) ▶", elem_id="next-problem", size="sm")
                        message_md = gr.Markdown(elem_id="label-message")
                        counter_md = gr.Markdown(elem_id="label-counter")
                        gr.Markdown(KEY_HELP)
                        candidates_view = gr.HTML(elem_id="candidates-view")
            with gr.Tab("Iterate", id="iterate"):
                gr.Markdown("Run one more self-training iteration in a background process. One at a time per lab "
                            "directory; the app stays usable and labels made meanwhile are kept.")
                with gr.Row():
                    run_name_tb = gr.Textbox(label="Run (an existing run continues; a new name starts a run)", value="demo")
                    preset_dd = gr.Dropdown(label="Preset", choices=list(PRESETS), value="tiny")
                    sets_tb = gr.Textbox(label="Overrides, one SECTION.FIELD=VALUE per line", lines=2)
                    iterations_nb = gr.Number(label="Iterations to add (0 = only the bootstrap of a new run)",
                                              value=1, minimum=0, precision=0)
                command_tb = gr.Textbox(label="Command", interactive=False, elem_id="command")
                with gr.Row():
                    launch_btn = gr.Button("Launch iteration", variant="primary", elem_id="launch")
                    cancel_btn = gr.Button("Cancel", variant="stop", interactive=False, elem_id="cancel")
                job_message = gr.Markdown(elem_id="job-message")
                job_state = gr.HTML(elem_id="job-status")
                log_tb = gr.Textbox(label="Log (last lines)", lines=14, max_lines=14, interactive=False,
                                    autoscroll=True, elem_id="job-log")
                timer = gr.Timer(REFRESH_S, active=False)
            with gr.Tab("Metrics", id="metrics") as metrics_tab:
                metrics_note = gr.Markdown()
                refresh_metrics = gr.Button("Refresh", size="sm")
                with gr.Row():
                    pass_plot = gr.Plot(label="pass@1 per iteration")
                pass_table = gr.Dataframe(label="pass@1 (benchmark × language × method, one column per iteration)",
                                          interactive=False)
                with gr.Row():
                    hard_plot = gr.Plot(label="hard negatives per iteration")
                    reward_plot = gr.Plot(label="score histogram")
                hard_table = gr.Dataframe(label="hard negatives per iteration", interactive=False)
            with gr.Tab("Export", id="export"):
                gr.Markdown("Curated labels (full history: label, note, author, time, with the candidate and prompt) "
                            "and preference pairs (TRL's prompt / chosen / rejected columns plus provenance).")
                with gr.Row():
                    export_labels = gr.Button("Labels → JSONL")
                    export_pairs = gr.Button("Pairs → JSONL")
                    export_dataset = gr.Button("Pairs → datasets folder")
                export_file = gr.File(label="Download", interactive=False)
                export_message = gr.Markdown()

        problem_state, offset_state = gr.State(None), gr.State(0)
        page_ids_state, candidate_ids_state = gr.State([]), gr.State([])
        filters = [language_dd, split_dd, state_dd, search_tb]
        SELECT = [run_dd, iteration_dd, *filters]
        LIST = [problems_df, page_md, offset_state, page_ids_state]
        REVIEW = [problem_state, problem_view, candidate_radio, candidates_view, counter_md, candidate_ids_state]
        ITERATE_FORM = [run_name_tb, preset_dd, sets_tb]
        LAUNCH_FORM = ITERATE_FORM + [iterations_nb]
        JOB = [job_state, log_tb, job_message, timer, launch_btn, cancel_btn]
        where = [run_dd, iteration_dd]

        app.load(select_run, [run_dd], SELECT + LIST + REVIEW + ITERATE_FORM).then(
            lambda: job_view(launcher.status()), None, JOB).then(preview, LAUNCH_FORM, command_tb)
        run_dd.input(select_run, [run_dd], SELECT + LIST + REVIEW + ITERATE_FORM).then(preview, LAUNCH_FORM, command_tb)
        iteration_dd.input(select_iteration, where, filters + LIST + REVIEW)
        for component in (language_dd, split_dd, state_dd):
            component.input(lambda *a: list_and_open(*a, 0), where + filters, LIST + REVIEW)
        search_tb.input(lambda *a: list_and_open(*a, 0), where + filters, LIST + REVIEW, trigger_mode="always_last")
        for button, delta in ((prev_page, -views.PAGE_SIZE), (next_page, views.PAGE_SIZE)):
            button.click(lambda *a, d=delta: turn_page(*a, d), where + filters + [offset_state], LIST + REVIEW)
        problems_df.select(pick_problem, where + [page_ids_state], REVIEW)
        for button, delta in ((prev_problem, -1), (next_problem, 1)):
            button.click(lambda *a, d=delta: step_problem(*a, d),
                         where + filters + [offset_state, page_ids_state, problem_state], LIST + REVIEW)
        candidate_radio.input(review, where + [problem_state, candidate_radio], REVIEW)
        for button, delta in ((prev_candidate, -1), (next_candidate, 1)):
            button.click(lambda *a, d=delta: step_candidate(*a, d),
                         where + [problem_state, candidate_radio, candidate_ids_state], REVIEW)
        for action, button in label_buttons.items():
            button.click(lambda *a, act=action: apply_label(*a, act),
                         where + [problem_state, candidate_radio, note_tb, author_tb] + filters + [offset_state],
                         LIST + REVIEW + [note_tb, message_md])

        for component in LAUNCH_FORM:
            component.input(preview, LAUNCH_FORM, command_tb)
        launch_btn.click(launch_job, LAUNCH_FORM, JOB, concurrency_limit=1)
        cancel_btn.click(cancel_job, None, JOB)
        timer.tick(watch_job, [run_dd, problem_state], JOB + SELECT + LIST + REVIEW + ITERATE_FORM)

        metric_outputs = [pass_plot, pass_table, hard_plot, hard_table, reward_plot, metrics_note]
        metrics_tab.select(metrics, where, metric_outputs)
        refresh_metrics.click(metrics, where, metric_outputs)
        for button, what in ((export_labels, "labels"), (export_pairs, "pairs"), (export_dataset, "dataset")):
            button.click(lambda run_name, w=what: export_run(store, lab_dir, run_name, w), [run_dd],
                         [export_file, export_message])
    return app


def export_run(store: Store, lab_dir: Path, run_name: str | None, what: str) -> tuple[str | None, str]:
    """Export a run's 'labels' or 'pairs' as JSONL, or its pairs as a 'dataset' folder, under
    <lab_dir>/<run>/exports/. Returns (file to offer for download or None, message)."""
    runs = {row["name"]: row["id"] for row in store.runs()}
    if run_name not in runs:
        return None, "Pick a run first."
    folder = Path(lab_dir) / run_name / "exports"
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    if what == "dataset":
        path = folder / f"pairs-dataset-{stamp}"
        dataset = store.pairs_dataset(runs[run_name])
        dataset.save_to_disk(str(path))
        return None, f"Saved {len(dataset)} pairs as a `datasets` folder: `{path}` (load it with `datasets.load_from_disk`)."
    path = folder / f"{what}-{stamp}.jsonl"
    count = store.export_labels(runs[run_name], path) if what == "labels" else store.export_pairs(runs[run_name], path)
    return str(path), f"Wrote {count} {what} rows to `{path}`."


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
