"""The Iterate tab's handlers: the form for the next iteration (checked before launch), launching,
following and cancelling the background job.

The job view shows the job's state (an exit status in words), the stages of the iteration it runs
(from the store: done, running, failed or cancelled), the running stage's progress with percent and
time left, and the whole iteration's time left. The stage's progress comes from its progress bar in
the job's log when it draws one (lab.launcher), else from the time it has run against its estimate;
the iteration's from the estimate the job wrote when it started (lab.estimate.save_estimate, read
here from the run's estimate.json) less the stages done. A cancel stops the job (lab.launcher) and
records a stage that could not say so itself as cancelled in the store.

Not covered here: job control (launcher.py), the estimate (estimate.py), what an iteration does (loop.py).
"""
from __future__ import annotations

import difflib
import json
import shlex
import time
from datetime import UTC, datetime
from typing import Any

import gradio as gr

from lab.app import render as html
from lab.app.review import select_run
from lab.app.state import Lab, View
from lab.config import PRESETS, UsageError, make_config, parse_assignments
from lab.console import format_duration
from lab.launcher import ESTIMATE_FILE, JobStatus, LaunchRefused, iterate_command, run_overrides
from lab.records import StageRow

JOB = ("job_state", "log", "job_message", "timer", "launch", "cancel")
FORM = ("run_name", "preset", "sets", "iterations_to_add")
EXIT_MEANINGS = {
    0: "finished",
    1: "failed: the log below ends with the reason",
    2: "refused its input: the log below says why",
    130: "interrupted (a cancel or Ctrl-C); launching again resumes where it stopped",
    -2: "interrupted (SIGINT); launching again resumes where it stopped",
    -15: "stopped by SIGTERM (a cancel); launching again resumes where it stopped",
    -9: "killed by SIGKILL (out of memory, or a cancel it did not answer in time); launching again resumes",
}


def iterate_form(lab: Lab, run_name: str | None) -> dict[str, Any]:
    """The form for a run: an existing run continues with its own preset and overrides."""
    run = lab.runs().get(run_name or "")
    if run is None:
        return {"run_name": gr.update(value=run_name or "demo"), "preset": gr.update(value="tiny"),
                "sets": gr.update(value="")}
    preset = run["preset"] if run["preset"] in PRESETS else "cpu"
    return {"run_name": gr.update(value=run_name), "preset": gr.update(value=preset),
            "sets": gr.update(value="\n".join(run_overrides(run["config_json"], preset)))}


def _assignments(sets: str | None) -> list[str]:
    return [line.strip() for line in (sets or "").splitlines() if line.strip()]


def check_form(run_name: str, preset: str, sets: str | None) -> str | None:
    """Why the form cannot launch (naming the override at fault), or None."""
    if not (run_name or "").strip():
        return "Give the run a name."
    try:
        overrides = parse_assignments(_assignments(sets))
        sections = make_config(preset).to_dict()
        known = {f"{section}.{name}" for section, fields in sections.items() if isinstance(fields, dict)
                 for name in fields}
        for name in overrides:
            if "." in name and name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" Did you mean `{close[0]}`?" if close else " `python -m lab config --list` lists them."
                return f"`{name}` is not a configuration field.{hint}"
        make_config(preset, **overrides)
    except (UsageError, ValueError, TypeError) as error:
        return f"The overrides do not make a configuration: {error}"
    return None


def preview(lab: Lab, run_name: str, preset: str, sets: str, iterations_to_add: float | None) -> dict[str, Any]:
    """The command the form would run, and whether it can."""
    problem = check_form(run_name, preset, sets)
    if not (run_name or "").strip():
        return {"command": "Give the run a name.", "launch_check": ""}
    command = iterate_command(lab.lab_dir, run_name.strip(), preset, _assignments(sets), int(iterations_to_add or 0))
    return {"command": shlex.join(command), "launch_check": f"✗ {problem}" if problem else "✓ ready to launch"}


def launch_job(lab: Lab, run_name: str, preset: str, sets: str, iterations_to_add: float | None) -> dict[str, Any]:
    problem = check_form(run_name, preset, sets)
    if problem:
        return job_view(lab, message=f"Not launched. {problem}")
    run_name = run_name.strip()
    log_path = lab.lab_dir / run_name / "logs" / f"iterate-{datetime.now():%Y%m%d-%H%M%S}.log"
    command = iterate_command(lab.lab_dir, run_name, preset, _assignments(sets), int(iterations_to_add or 0))
    try:
        job = lab.launcher.start(command, log_path)
    except LaunchRefused as error:
        return job_view(lab, message=f"Refused: {error}")
    return job_view(lab, job, f"Launched run **{run_name}**. Labels you make meanwhile are saved as usual.")


def cancel_job(lab: Lab) -> dict[str, Any]:
    job = lab.launcher.cancel()
    ended = _end_stages(lab, job, "cancelled")
    stages = f" The store records {ended} stage(s) it left running as cancelled." if ended else ""
    return job_view(lab, job, f"Cancelled: the iteration's processes were stopped.{stages} Launching again resumes "
                              "where it stopped.")


def _end_stages(lab: Lab, job: JobStatus, status: str) -> int:
    """Stages the ended job's run still has 'running' (it was killed before it could say): `status`."""
    run = lab.runs().get(job_run(job) or "")
    if run is None or job.running:
        return 0
    why = f"the job ended ({exit_text(job.returncode)}) while this stage ran"
    return lab.store.end_running_stages(run["id"], status, {"error": why})


def job_run(job: JobStatus) -> str | None:
    return job.command[job.command.index("--run") + 1] if "--run" in job.command[:-1] else None


def exit_text(returncode: int | None) -> str:
    if returncode is None:
        return "exit status unknown (started elsewhere: read its log)"
    return f"exit status {returncode}: {EXIT_MEANINGS.get(returncode, 'failed: the log below says why')}"


def watch_job(lab: Lab, view: View, author: str, iterations_to_add: float | None) -> dict[str, Any]:
    """Timer tick: JOB while the job runs. Once it has ended, stages it left running are recorded as
    ended, the run and iteration lists are refreshed, and the Review tab is filled if it was empty (a
    first run); a review in progress is never moved."""
    job = lab.launcher.status()
    if job.running:
        return job_view(lab, job)
    _end_stages(lab, job, "cancelled" if job.state == "cancelled" else "failed")
    message = {"succeeded": "The iteration finished: pick its number in **Iteration** to review it.",
               "failed": f"The iteration failed ({exit_text(job.returncode)}).",
               "cancelled": "Cancelled. Launching again resumes where it stopped."}.get(job.state, "")
    if view.problem is None:
        return {**select_run(lab, view, view.run, author), **job_view(lab, job, message)}
    return {**job_view(lab, job, message), "run": gr.update(choices=list(lab.runs())),
            "iteration": gr.update(choices=lab.iterations(view.run))}


def job_view(lab: Lab, job: JobStatus | None = None, message: str = "") -> dict[str, Any]:
    """JOB for `job` (default: the launcher's current one)."""
    job = job or lab.launcher.status()
    return {"job_state": job_html(lab, job), "log": job.log_tail, "job_message": message,
            "timer": gr.Timer(active=job.running), "launch": gr.update(interactive=not job.running),
            "cancel": gr.update(interactive=job.running)}


def job_html(lab: Lab, job: JobStatus) -> str:
    if job.state == "idle":
        return '<div class="muted">No iteration launched from this app yet.</div>'
    elapsed = ""
    if job.started_at and job.running:
        elapsed = f" · {format_duration(time.time() - job.started_at)} since start"
    ended = "" if job.running else f" · {html.esc(exit_text(job.returncode))}"
    run_name = job_run(job)
    run = lab.runs().get(run_name or "")
    stages = lab.reader.stages(run["id"]) if run else []
    progress = _progress_html(lab, job, run_name, stages) if job.running and stages else ""
    return (f'<div><b id="job-state">{html.esc(job.state)}</b> · pid {job.pid}{elapsed}{ended}</div>'
            f'<div class="meta">log: {html.esc(job.log_path)}</div>{html.stages_html(stages)}{progress}')


def _seconds_since(iso_time: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(iso_time)).total_seconds()


def _progress_html(lab: Lab, job: JobStatus, run_name: str | None, stages: list[StageRow]) -> str:
    """The running stage's percent and time left, and its iteration's time left."""
    running = next((s for s in reversed(stages) if s["status"] == "running"), None)
    if running is None:
        return ""
    estimate = read_estimate(lab, run_name)
    iteration, name = running["iteration"], running["name"]
    stage_s = estimate.get((iteration, name))
    spent = _seconds_since(running["started_at"])
    if job.progress_percent is not None:
        percent = job.progress_percent
        left = f"{job.progress_remaining} left" if job.progress_remaining else "time left unknown"
        source = f"{html.esc(job.progress_label)}, its progress bar"
        stage_left = None
    elif stage_s:
        percent = min(99, int(100 * spent / stage_s))
        stage_left = max(0.0, stage_s - spent)
        left = f"~{format_duration(stage_left)} left"
        source = f"{format_duration(spent)} of ~{format_duration(stage_s)} estimated"
    else:
        return f'<div class="meta">stage {html.esc(name)}: {format_duration(spent)} so far (no estimate)</div>'
    done = {(s["iteration"], s["name"]) for s in stages if s["status"] == "done"}
    planned = {key: seconds for key, seconds in estimate.items() if key[0] == iteration}
    total = sum(planned.values())
    later = sum(seconds for key, seconds in planned.items() if key not in done and key != (iteration, name))
    current_left = stage_left if stage_left is not None else (stage_s or 0) * (100 - percent) / 100
    whole = (f' · iteration {iteration}: ~{format_duration(later + current_left)} left of ~{format_duration(total)} '
             f'estimated ({sum(key in done for key in planned)} of {len(planned)} stages done)') if total else ""
    return (f'<div class="progress-bar"><div style="width:{percent}%"></div></div>'
            f'<div class="meta" id="job-progress">stage {html.esc(name)} {percent}% · {left} ({source}){whole}</div>')


def read_estimate(lab: Lab, run_name: str | None) -> dict[tuple[int, str], float]:
    """(iteration, stage) -> estimated seconds, from the estimate the run's job wrote when it started
    ({} when there is none or it is unreadable)."""
    try:
        saved = json.loads((lab.lab_dir / (run_name or "") / ESTIMATE_FILE).read_text())
        return {(stage["iteration"], stage["name"]): float(stage["seconds"]) for stage in saved["stages"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
