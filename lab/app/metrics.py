"""The Metrics tab's handlers: pass@1 per iteration and method, one chosen measurement across
iterations, the score histogram of the selected iteration, hard negatives and pairs per iteration, the
policy stage's steps (the rollouts' reward-model score beside their executed pass rate, KL, entropy,
length), the annotators (progress, Cohen's kappa between them, the overlap assignment) and two or
more runs side by side.

The tab draws in steps, each a handler of its own chained after the one before (layout.py), so the
first plot shows while the others are drawn: `overview` (notes, pass@1), then `measurement` (the
chosen measure), then `scores` (histogram, hard negatives, policy steps, pairs), then `team`. Each
plot follows its selectors: the measure's dropdown, and Run and Iteration while the tab is open. A
plot is drawn (and encoded for the page) once per content, and the steps run right after the page
loads too, so that the tab shows its plots as soon as it opens.

Not covered here: the figures (plots.py), the tables and team reads (views.py), the comparison
(compare.py), agreement (agreement.py).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from lab import compare, plots
from lab.app import views
from lab.app.state import Lab, View
from lab.config import UsageError
from lab.records import MeasurementRow
from lab.store import StoreError

OVERVIEW = ("metrics_note", "pass_plot", "pass_table", "measure", "compare_runs")
MEASUREMENT = ("measure_plot", "heldout_table")
SCORES = ("reward_plot", "hard_plot", "policy_plot", "hard_table", "pairs_table")
TEAM = ("progress_table", "agreement_table", "annotators", "overlap", "assign_message")
PREFERRED_MEASURES = ("pair_accuracy", "ranking_accuracy", "top1")
"""The measure shown first, the first of these the run has."""


def _measure_key(row: MeasurementRow) -> str:
    return f"{row['eval_set']}: {row['measure']}"


ENCODER = gr.Plot(render=False)


def _drawn(lab: Lab, key: tuple, rows: list, draw: Callable[[], Any]) -> Any:
    """The plot of `rows` (drawn by `draw`), encoded for the page once per content."""
    fingerprint = (len(rows), repr(rows[-1]) if rows else "", hash(repr(rows)))
    return lab.drawing((*key, fingerprint), draw, ENCODER.postprocess)


def overview(lab: Lab, view: View, measure: str | None) -> dict[str, Any]:
    """The notes, pass@1 (plot and table), the measures to choose from, the runs to compare."""
    runs = lab.runs()
    compare_choices = gr.update(choices=list(runs))
    run = runs.get(view.run or "")
    if run is None:
        return {"metrics_note": "No run selected: metrics appear once an iteration has run.", "pass_plot": None,
                "pass_table": views.pass_at_1_table([]), "measure": gr.update(choices=[], value=None),
                "compare_runs": compare_choices}
    reader = lab.reader
    evaluations, measurements = reader.evaluations(run["id"]), reader.measurements(run["id"])
    notes = [text for missing, text in (
        (not evaluations, "No pass@1 evaluations yet: "
                          f"`python -m lab eval --lab-dir {lab.lab_dir} --run {run['name']}` writes them."),
        (not measurements, "No held-out measurements yet: they are recorded after each reward-model training."),
        (view.iteration is None, "No iteration with candidates yet for the score histogram."),
    ) if missing]
    choices = list(dict.fromkeys(_measure_key(m) for m in measurements if m["subject"] and m["value"] is not None))
    if measure not in choices:
        preferred = [key for name in PREFERRED_MEASURES for key in choices if key.endswith(f": {name}")]
        measure = next(iter(preferred or choices), None)
    pass_plot = _drawn(lab, (run["id"], "pass"), evaluations, lambda: plots.pass_at_1_figure(evaluations))
    return {"metrics_note": "\n\n".join(notes), "pass_plot": pass_plot,
            "pass_table": views.pass_at_1_table(evaluations), "measure": gr.update(choices=choices, value=measure),
            "compare_runs": compare_choices}


def measurement(lab: Lab, view: View, measure: str | None) -> dict[str, Any]:
    """The chosen measure across iterations (a line per subject), and the table of every measurement."""
    run = lab.runs().get(view.run or "")
    rows = lab.reader.measurements(run["id"]) if run else []
    chosen = [m for m in rows if _measure_key(m) == measure]
    return {"measure_plot": _drawn(lab, (view.run, "measure", measure), chosen, lambda: plots.heldout_figure(chosen)),
            "heldout_table": views.heldout_table(rows)}


def scores(lab: Lab, view: View) -> dict[str, Any]:
    """The selected iteration's score histogram, hard negatives and pairs per iteration, the policy steps."""
    run = lab.runs().get(view.run or "")
    if run is None:
        return {"reward_plot": None, "hard_plot": None, "policy_plot": None,
                "hard_table": views.hard_negatives_per_iteration(lab.store, -1), "pairs_table": views.pairs_table([])}
    reader = lab.reader
    rewards = reader.reward_scores(run["id"], int(view.iteration)) if view.iteration is not None else []
    hard_negatives = views.hard_negatives_per_iteration(lab.store, run["id"])
    counts = hard_negatives.to_dict("records")
    steps = reader.metrics(run["id"], stage="policy")
    title = f"candidates, iteration {view.iteration}"
    return {"reward_plot": _drawn(lab, (run["id"], "scores", view.iteration), rewards,
                                  lambda: plots.reward_histogram_figure(rewards, title)),
            "hard_plot": _drawn(lab, (run["id"], "hard"), counts, lambda: plots.hard_negatives_figure(counts)),
            "policy_plot": _drawn(lab, (run["id"], "policy"), steps, lambda: plots.policy_curves_figure(steps)),
            "hard_table": hard_negatives,
            "pairs_table": views.pairs_table(reader.pairs(run["id"]))}


def follow(lab: Lab, view: View, run: str | None, iteration: int | None, measure: str | None,
           tab: str) -> dict[str, Any]:
    """The plots follow the Run and Iteration selectors (their new values, which the view may not
    hold yet) while the Metrics tab is open."""
    if tab != "metrics":
        return {}
    shown = view.with_(run=run, iteration=iteration)
    first = overview(lab, shown, measure)
    return {**first, **measurement(lab, shown, first["measure"]["value"]), **scores(lab, shown)}


def team(lab: Lab, view: View) -> dict[str, Any]:
    """Each annotator's progress in the selected iteration, kappa between them, the assignment."""
    run = lab.runs().get(view.run or "")
    if run is None:
        return {"progress_table": views.annotator_progress([], [], {}), "agreement_table": views.agreement_table([]),
                "assign_message": ""}
    reader = lab.reader
    own = reader.annotator_labels(run["id"])
    ranking = reader.ranking_rows(run["id"], view.iteration) if view.iteration is not None else []
    assigned = views.queues(lab.store, lab.lab_dir, run["name"], run["id"])
    assignment = views.read_assignment(lab.lab_dir, run["name"]) or {}
    return {"progress_table": views.annotator_progress(own, ranking, assigned),
            "agreement_table": views.agreement_table(own),
            "annotators": gr.update(value=", ".join(assignment.get("annotators", []))),
            "overlap": gr.update(value=round(100 * assignment.get("overlap", 0.2))),
            "assign_message": ""}


def assign(lab: Lab, view: View, annotators: str, overlap: float) -> dict[str, Any]:
    """Record the run's overlap assignment; each annotator then finds theirs under State: my queue."""
    run = lab.runs().get(view.run or "")
    if run is None:
        return {"assign_message": "Pick a run first."}
    names = [name.strip() for name in (annotators or "").split(",") if name.strip()]
    try:
        views.write_assignment(lab.lab_dir, run["name"], names, float(overlap or 0) / 100)
    except (ValueError, OSError) as error:
        return {"assign_message": f"Not assigned: {error}"}
    shown = team(lab, view)
    return {**shown, "assign_message": f"Assigned the problems of {run['name']!r} to {', '.join(names)} with "
                                       f"{overlap:.0f}% labelled twice: each picks **my queue** under State."}


def compare_view(lab: Lab, compare_runs: list[str] | None) -> dict[str, Any]:
    """The comparison of the chosen runs (two or more) as Markdown."""
    names = list(compare_runs or [])
    if len(names) < 2:
        return {"comparison": "Pick two or more runs to compare."}
    try:
        return {"comparison": compare.comparison_markdown(compare.compare_runs(lab.reader, names))}
    except (StoreError, UsageError) as error:
        return {"comparison": f"Cannot compare: {error}"}
