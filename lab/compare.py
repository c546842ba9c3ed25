"""Runs side by side: pass@1, ranking accuracy, the reward model's held-out measurements per iteration,
and how the runs' configurations differ. Pure reads of the store, for `python -m lab eval --compare
RUN RUN...` and the app's Metrics tab.

  compare_runs         a Comparison of two or more runs, by name
  comparison_markdown  a Comparison as Markdown tables

Everything shown is read as the evaluation stored it (nothing is recomputed): pass@1 from
`evaluations` and ranking accuracy from the `ranking_accuracy` measurements (one per ranker) of each
eval set, both of each run's latest evaluated iteration (the heading names it); the held-out set's
measurements (`heldout_set`, MBPP validation: what each reward model measured after its training)
for every iteration. The config difference lists the fields (dotted, as `--set` takes them) whose
values are not the same in every run; where each run's directory and name are set is left out.

Not covered here: evaluating or measuring anything anew (evaluation.py), plots (plots.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from lab.config import UsageError
from lab.measures import HELDOUT_SET, METHOD_NAMES, METHOD_TITLES, RANKERS
from lab.records import EvaluationRow, MeasurementRow
from lab.reports import (
    generator_order,
    generator_title,
    measurement_text,
    own_generators,
    percent,
    percent_with_interval,
    series_key,
)
from lab.store import Store
from lab.stored_config import config_difference


@dataclass
class Comparison:
    runs: list[str]
    evaluated_iteration: dict[str, int | None]
    """Per run, its latest evaluated iteration (None: never evaluated)."""
    pass_at_1: list[dict]
    """{"benchmark", "language", "generator", "method", "by_run": {run: evaluations row}} in METHODS order,
    generator '' for each run's own generator (reports.series_key), then the others' ('base', ...)."""
    ranking: list[dict]
    """{"eval_set", "ranker", "by_run": {run: measurements row (value = accuracy, count = pairs)}}."""
    heldout_set: str
    heldout: list[dict]
    """{"eval_set", "name" (the measurement's label), "iteration", "by_run": {run: measurements row}}, the
    held-out set's rows."""
    config_diff: list[dict]
    """{"field", "by_run": {run: value, or the string '(not set)'}}, only fields that differ."""


def compare_runs(store: Store, run_names: list[str], heldout_set: str = HELDOUT_SET) -> Comparison:
    """Two or more runs of one store, by name (StoreError names the runs it has when one is unknown)."""
    names = list(dict.fromkeys(run_names))
    if len(names) < 2:
        raise UsageError(f"comparing needs two or more different runs, got {names}")
    reader = store.reader()
    ids = {name: reader.run_id(name) for name in names}
    configs = {row["name"]: row["config_json"] for row in reader.runs() if row["name"] in ids}
    evaluations = {name: reader.evaluations(ids[name]) for name in names}
    latest = {name: max((r["iteration"] for r in rows), default=None) for name, rows in evaluations.items()}
    pass_at_1: list[dict] = []
    for name in names:
        own = own_generators(evaluations[name])
        for row in evaluations[name]:
            if row["iteration"] == latest[name]:
                generator, method = series_key(row, own)
                key = {"benchmark": row["benchmark"], "language": row["language"], "generator": generator,
                       "method": method}
                _cell(pass_at_1, key)[name] = row
    order = generator_order({row["generator"] for row in pass_at_1} | {""})
    pass_at_1.sort(key=lambda row: (row["benchmark"], row["language"], order.index(row["generator"]) if row["generator"]
                                    else -1, _method_rank(row["method"])))
    rankers = [ranker.name for ranker in RANKERS]
    ranking: list[dict] = []
    heldout: list[dict] = []
    for name in names:
        for measured in reader.measurements(ids[name]):
            if measured["eval_set"] == heldout_set:
                row_key = {"eval_set": heldout_set, "name": measured["name"], "iteration": measured["iteration"]}
                _cell(heldout, row_key)[name] = measured
            elif (measured["measure"] == "ranking_accuracy" and measured["subject"] in rankers
                  and measured["iteration"] == latest[name] and measured["value"] is not None):
                _cell(ranking, {"eval_set": measured["eval_set"], "ranker": measured["subject"]})[name] = measured
    ranking.sort(key=lambda row: (row["eval_set"], rankers.index(row["ranker"])))
    heldout.sort(key=lambda row: (row["name"], row["iteration"]))
    return Comparison(names, latest, pass_at_1, ranking, heldout_set, heldout, config_difference(configs))


def _cell(rows: list[dict], key: dict) -> dict:
    """The `by_run` dict of the row with these key fields, added when missing."""
    for row in rows:
        if all(row[field] == value for field, value in key.items()):
            return row["by_run"]
    rows.append({**key, "by_run": {}})
    return rows[-1]["by_run"]


def _method_rank(method: str) -> int:
    return METHOD_NAMES.index(method) if method in METHOD_NAMES else len(METHOD_NAMES)


# ------------------------------------------------------------------ Markdown

def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(map(_escape, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(_escape, row)) + " |" for row in rows])


def _pass_cell(row: EvaluationRow | None) -> str:
    if row is None:
        return "–"
    low, high = row.get("ci_low"), row.get("ci_high")
    interval = f" ({percent(low, 0)}–{percent(high, 0)})" if low is not None and high is not None else ""
    return f"{percent(row['pass_at_1'])}{interval}"


def _ranking_cell(row: MeasurementRow | None) -> str:
    return "–" if row is None else f"{percent_with_interval(row)} (n={row['count']})"


def _config_value(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def _iteration_text(iteration: int | None) -> str:
    return "not evaluated" if iteration is None else f"iteration {iteration}"


def comparison_markdown(comparison: Comparison) -> str:
    """Four sections: pass@1, ranking accuracy, held-out measurements, config differences."""
    runs = comparison.runs
    rankers = {ranker.name: ranker.title for ranker in RANKERS}
    sections = [
        ("pass@1 (%, 95% bootstrap CI) of the latest evaluated iteration", ["benchmark", "language", "method"],
         [([r["benchmark"], r["language"], (f"{generator_title(r['generator'])}: " if r["generator"] else "")
            + METHOD_TITLES.get(r["method"], r["method"])],
           [_pass_cell(r["by_run"].get(name)) for name in runs]) for r in comparison.pass_at_1],
         "No run has evaluations yet: `python -m lab eval --run RUN` writes them."),
        ("Ranking accuracy (%) of the same iteration: a problem's (passing, failing) sample pairs ordered right, "
         "50 is chance", ["eval set", "ranker"],
         [([r["eval_set"], rankers.get(r["ranker"], r["ranker"])],
           [_ranking_cell(r["by_run"].get(name)) for name in runs]) for r in comparison.ranking],
         "No ranking accuracy recorded for an evaluated iteration."),
        (f"Reward model on held-out problems ({comparison.heldout_set}) after each training: "
         "value [95% interval] (n=count)",
         ["measure", "iteration"],
         [([r["name"], str(r["iteration"])], [measurement_text(r["by_run"].get(name)) for name in runs])
          for r in comparison.heldout],
         "No held-out measurements recorded yet."),
        ("Config differences", ["field"],
         [([r["field"]], [_config_value(r["by_run"][name]) for name in runs]) for r in comparison.config_diff],
         "The runs' configurations are the same (apart from their names and directories)."),
    ]
    parts = ["Runs compared: " + ", ".join(f"**{name}** ({_iteration_text(comparison.evaluated_iteration[name])})"
                                           for name in runs) + "."]
    for title, key_columns, rows, empty in sections:
        body = _table(key_columns + runs, [keys + cells for keys, cells in rows]) if rows else empty
        parts.append(f"#### {title}\n\n{body}")
    return "\n\n".join(parts) + "\n"
