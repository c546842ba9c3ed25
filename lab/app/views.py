"""What the app shows, as plain functions: reads through the store's reader and the tables built from
their rows. No Gradio, no HTML (html.py) and no SQL here (the store's "reads for the app" are), so all
of it is unit-testable.

Ranking. A problem's candidates are ranked by the scores of one reward-model version: the one that
scored most of them (the loop scores iteration k's training samples with rm-(k-1), the model that
mines its hard negatives, and its evaluation samples with rm-k), the later-trained on a tie; by mean
log-prob when none scored them (`Store.ranking_rows`). Ties rank a failing candidate above a passing
one (pessimistic: the reranker cannot tell them apart).

Flags, computed in Python from those rows (`rank_problem`, `summarize_problem`):
  suspected hard negative  what `mining.hard_negatives` picks from the problem's candidates with the
                           run's `mining` config (labels included: a candidate labelled hard negative
                           is one, one labelled positive is not), or a candidate already mined as the
                           rejected side of a 'hard_negative' pair
  mistake                  the top-ranked executed sample fails while a passing sample exists (samples
                           only: they are what the reranker picks from at evaluation; greedy and
                           reference candidates are not)
The problem list is one read of the iteration's short rows (no code, no outputs), filtered by state
and paged here; opening a problem reads that problem's candidates only. The same short rows find
the next suspected hard negative and a bulk label's candidates, over every page of the filtered list.

Team. Each annotator's progress counts their own labels (Store.annotator_labels) in the iteration,
against their queue when the run has an overlap assignment (`<lab_dir>/<run>/assignment.json`,
lab/agreement.py); the guidelines are `<lab_dir>/guidelines.md`.

Not covered here: Gradio components and events (the handler modules), HTML (html.py), background
jobs (launcher.py), plots (plots.py), and any write to the store.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from itertools import groupby
from pathlib import Path

import pandas as pd

from lab import agreement
from lab.config import MiningConfig, UsageError
from lab.mining import hard_negatives
from lab.records import AnnotatorLabelRow, EvaluationRow, MeasurementRow, PairRow, RankingRow
from lab.reports import generator_title, measurement_text, own_generators, series_key
from lab.store import Store

PAGE_SIZE = 25
STATES = {
    "all": "all problems",
    "suspected": "has suspected hard negatives",
    "unlabeled": "has unlabeled candidates",
    "all_fail": "all sampled candidates fail",
    "mistake": "reranker picked a failing candidate while a passing one existed",
    "mine": "my queue (the overlap assignment)",
}
LABEL_NAMES = {"hard_negative": "hard negative", "positive": "positive", "exclude": "exclude"}
BULK_TARGETS = {
    "suspected": ("unlabeled suspected hard negatives", lambda c: c["suspected"]),
    "failing": ("unlabeled failing candidates", lambda c: c["passed"] == 0),
    "passing": ("unlabeled passing candidates", lambda c: c["passed"] == 1),
    "all": ("all unlabeled candidates", lambda c: True),
}
"""Which candidates of the filtered problems a bulk label writes: (words, test). Only unlabeled ones:
a bulk label never overwrites anyone's label."""
GUIDELINES_FILE = "guidelines.md"
ASSIGNMENT_FILE = "assignment.json"


@dataclasses.dataclass(frozen=True)
class Scope:
    """What the Review tab looks at: one iteration of one run, with that run's mining rule."""
    run_id: int
    iteration: int
    mining: MiningConfig


def mining_config(config_json: str, run_name: str = "?") -> MiningConfig:
    """The `mining` section of a run's stored config; fields it lacks take MiningConfig's defaults."""
    try:
        section = json.loads(config_json or "{}").get("mining") or {}
    except (json.JSONDecodeError, AttributeError) as error:
        raise UsageError(f"run {run_name!r}: its stored config_json is not a JSON object ({error}); "
                         "the run was not written by this lab") from error
    known = {f.name for f in dataclasses.fields(MiningConfig)}
    return MiningConfig(**{name: value for name, value in section.items() if name in known})


def scope_of(store: Store, run_name: str | None, iteration: int | None) -> Scope | None:
    """The scope of a run (by name) and iteration; None when either is missing."""
    run = next((r for r in store.reader().runs() if r["name"] == run_name), None)
    if run is None or iteration is None:
        return None
    return Scope(run["id"], int(iteration), mining_config(run["config_json"], run["name"]))


# ------------------------------------------------------------------ ranking and flags (pure)

def rank_problem(rows: list[RankingRow], mining: MiningConfig) -> list[dict]:
    """One problem's `Store.ranking_rows`, best first, each with rank, rank_key (the score it is
    ranked by) and suspected (see the module docstring)."""
    picked = set(hard_negatives(rows, mining))
    ranked: list[dict] = []
    for row in rows:
        rank_key = row["reward"] if row["ranked_by"] is not None else row["mean_logprob"]
        ranked.append({**row, "rank_key": rank_key, "mined": bool(row["mined"]),
                       "suspected": row["id"] in picked or bool(row["mined"])})
    ranked.sort(key=lambda r: (r["rank_key"] is None, -(r["rank_key"] or 0.0), r["passed"] == 1, r["id"]))
    for rank, ranked_row in enumerate(ranked, start=1):
        ranked_row["rank"] = rank
    return ranked


def summarize_problem(ranked: list[dict]) -> dict:
    """Counts and flags of one problem from its `rank_problem` rows."""
    first = ranked[0]
    samples = [r for r in ranked if r["origin"] == "sample"]
    executed_samples = [r for r in samples if r["passed"] is not None]
    n_sample_pass = sum(r["passed"] == 1 for r in samples)
    return {
        "problem_id": first["problem_id"], "language": first["language"], "split": first["split"],
        "ranked_by": first["ranked_by"], "ranked_by_iteration": first["ranked_by_iteration"],
        "n_candidates": len(ranked), "n_pass": sum(r["passed"] == 1 for r in ranked),
        "n_fail": sum(r["passed"] == 0 for r in ranked), "n_labeled": sum(r["label"] is not None for r in ranked),
        "n_suspected": sum(r["suspected"] for r in ranked), "n_samples": len(samples),
        "n_sample_pass": n_sample_pass, "n_sample_fail": sum(r["passed"] == 0 for r in samples),
        "mistake": bool(n_sample_pass and executed_samples and executed_samples[0]["passed"] == 0),
        "all_fail": bool(samples) and all(r["passed"] == 0 for r in samples),
    }


STATE_TESTS = {
    "all": lambda summary: True,
    "mine": lambda summary: True,  # narrowed to the author's queue by list_problems
    "suspected": lambda summary: summary["n_suspected"] > 0,
    "unlabeled": lambda summary: summary["n_labeled"] < summary["n_candidates"],
    "all_fail": lambda summary: summary["all_fail"],
    "mistake": lambda summary: summary["mistake"],
}


# ------------------------------------------------------------------ reads

def _ranked_by_problem(store: Store, scope: Scope, **filters) -> dict[str, list[dict]]:
    rows = store.reader().ranking_rows(scope.run_id, scope.iteration, **filters)
    return {problem_id: rank_problem(list(group), scope.mining)
            for problem_id, group in groupby(rows, key=lambda r: r["problem_id"])}


def matching_problems(store: Store, scope: Scope, *, language: str | None = None, split: str | None = None,
                      state: str = "all", search: str = "", queue: set[str] | None = None) -> dict[str, list[dict]]:
    """problem_id -> ranked rows of every problem the filters keep, in list order; `queue` (the
    author's assigned problems) narrows the 'mine' state."""
    if state not in STATE_TESTS:
        raise UsageError(f"unknown problem state {state!r}: choose one of {', '.join(STATE_TESTS)}")
    ranked = _ranked_by_problem(store, scope, language=language or None, split=split or None, search=search or "")
    return {problem_id: rows for problem_id, rows in ranked.items()
            if STATE_TESTS[state](summarize_problem(rows)) and (state != "mine" or problem_id in (queue or set()))}


def list_problems(store: Store, scope: Scope, *, offset: int = 0, limit: int = PAGE_SIZE,
                  **filters) -> tuple[list[dict], int]:
    """One page of the iteration's problems (by id) with their counts and flags, and how many match."""
    matching = [summarize_problem(rows) for rows in matching_problems(store, scope, **filters).values()]
    return matching[offset: offset + limit], len(matching)


def next_suspected(store: Store, scope: Scope, problem_id: str | None, candidate_id: int | None,
                   **filters) -> tuple[str, int, int] | None:
    """(problem, candidate, its problem's position in the list) of the next unlabeled suspected hard
    negative after the one shown, in list and rank order, wrapping around; None when there is none."""
    matching = matching_problems(store, scope, **filters)
    order = list(matching)
    start = order.index(problem_id) if problem_id in order else 0
    for step in range(len(order) + 1):  # the last step is the shown problem again, from its top
        position = (start + step) % len(order)
        ranked = matching[order[position]]
        after = next((r["rank"] for r in ranked if r["id"] == candidate_id), 0) if step == 0 else 0
        found = next((r for r in ranked if r["suspected"] and r["label"] is None and r["rank"] > after), None)
        if found is not None:
            return found["problem_id"], found["id"], position
    return None


def bulk_targets(store: Store, scope: Scope, which: str, **filters) -> dict[int, int]:
    """candidate id -> label version seen, of the candidates a bulk label writes (BULK_TARGETS) over
    every problem the filters keep."""
    if which not in BULK_TARGETS:
        raise UsageError(f"unknown bulk selection {which!r}: choose one of {', '.join(BULK_TARGETS)}")
    test = BULK_TARGETS[which][1]
    return {row["id"]: row["label_version"] or 0 for rows in matching_problems(store, scope, **filters).values()
            for row in rows if row["label"] is None and test(row)}


def problem_summary(store: Store, scope: Scope, problem_id: str) -> dict | None:
    """The problem's row of the list plus its prompt and tests; None when it has no candidates in the scope."""
    ranked = _ranked_by_problem(store, scope, problem_id=problem_id).get(problem_id)
    if not ranked:
        return None
    problem = store.reader().problem(problem_id)
    return {**summarize_problem(ranked), "prompt": problem.prompt, "tests": problem.tests}


def ranked_candidates(store: Store, scope: Scope, problem_id: str) -> list[dict]:
    """The problem's candidates (Store.candidates rows: code, outputs, label), best first, each with
    rank, rank_key, suspected, mined and history (its label rows, oldest first)."""
    ranked = _ranked_by_problem(store, scope, problem_id=problem_id).get(problem_id, [])
    if not ranked:
        return []
    flags = {r["id"]: r for r in ranked}
    rows = store.reader().candidates(scope.run_id, iteration=scope.iteration, problem_id=problem_id,
                                     reward_model=ranked[0]["ranked_by"])
    histories = store.reader().label_histories(flags)
    flagged = [{**row, **{key: flags[row["id"]][key] for key in ("rank", "rank_key", "suspected", "mined")},
                "history": histories.get(row["id"], [])} for row in rows if row["id"] in flags]
    return sorted(flagged, key=lambda r: r["rank"])


def ranking_note(summary: dict, iteration: int) -> str:
    """What a problem's candidates are ranked by, from its `problem_summary`."""
    ranked_by, trained_in = summary["ranked_by"], summary["ranked_by_iteration"]
    if ranked_by is None:
        return "No reward-model scores for these candidates yet: ranked by the generator's mean log-prob."
    if trained_in is None:
        return f"Ranked by reward model {ranked_by}."
    role = " (the model that mined this iteration's hard negatives)" if trained_in == iteration - 1 else ""
    return f"Ranked by reward model {ranked_by}, trained in iteration {trained_in}{role}."


def label_counts(store: Store, scope: Scope) -> dict:
    """Candidates of the iteration with a current label vs without (pending), and per label."""
    by_label = Counter(r["label"] for r in store.reader().ranking_rows(scope.run_id, scope.iteration))
    pending = by_label.pop(None, 0)
    return {"labeled": sum(by_label.values()), "pending": pending, "by_label": dict(by_label)}


def filter_choices(store: Store, scope: Scope) -> dict[str, list[str]]:
    rows = store.reader().ranking_rows(scope.run_id, scope.iteration)
    return {"language": sorted({r["language"] for r in rows}), "split": sorted({r["split"] for r in rows})}


def problem_pairs(store: Store, run_id: int, problem_id: str) -> list[PairRow]:
    """The preference pairs built on one problem (any iteration), newest first."""
    return store.reader().pairs(run_id, problem_ids=[problem_id])[::-1]


# ------------------------------------------------------------------ metrics tables

def pass_at_1_table(evaluations: list[EvaluationRow]) -> pd.DataFrame:
    """Rows benchmark / language / generator / method, one pass@1 column per iteration; the generator column
    is empty for each iteration's own generator (reports.series_key), 'base model (no SFT)' and the like
    for the others."""
    if not evaluations:
        return pd.DataFrame(columns=["benchmark", "language", "generator", "method"])
    own = own_generators(evaluations)
    frame = pd.DataFrame([{**row, "generator": generator_title(generator) if generator else "", "method": method}
                          for row in evaluations for generator, method in [series_key(row, own)]])
    table = frame.pivot_table(index=["benchmark", "language", "generator", "method"], columns="iteration",
                              values="pass_at_1")
    table.columns = [f"iter {i}" for i in table.columns]
    return table.round(3).reset_index()


def heldout_table(measurements: list[MeasurementRow]) -> pd.DataFrame:
    """Rows eval set / measure (its label, measure/subject), one column per iteration: value [95%
    interval] (n=count) of `Store.measurements` rows."""
    if not measurements:
        return pd.DataFrame(columns=["eval set", "measure"])
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for m in measurements:
        cells.setdefault((m["eval_set"], m["name"]), {})[f"iter {m['iteration']}"] = measurement_text(m)
    iterations = sorted({m["iteration"] for m in measurements})
    return pd.DataFrame([{"eval set": eval_set, "measure": name,
                          **{f"iter {k}": row.get(f"iter {k}", "") for k in iterations}}
                         for (eval_set, name), row in cells.items()])


def hard_negatives_per_iteration(store: Store, run_id: int) -> pd.DataFrame:
    columns = ["iteration", "mined_pairs", "mined_candidates", "labeled_hard_negatives"]
    return pd.DataFrame(store.reader().hard_negative_counts(run_id), columns=columns)


def uses_reference(pair: PairRow) -> bool:
    """Whether a pair has a human-written reference solution on either side (not on-policy)."""
    return "reference" in (pair["chosen_origin"], pair["rejected_origin"])


def pairs_table(pairs: list[PairRow]) -> pd.DataFrame:
    """Per iteration and kind: pairs, and how many of them have a reference solution on a side."""
    counts = Counter((p["iteration"], p["kind"], uses_reference(p)) for p in pairs)
    keys = sorted({(iteration, kind) for iteration, kind, _ in counts})
    return pd.DataFrame([{"iteration": k, "kind": kind, "pairs": counts[(k, kind, False)] + counts[(k, kind, True)],
                          "with a reference solution": counts[(k, kind, True)]} for k, kind in keys],
                        columns=["iteration", "kind", "pairs", "with a reference solution"])


# ------------------------------------------------------------------ HTML

def problems_table(rows: list[dict]) -> pd.DataFrame:
    """The problem list: one row per problem, flags as short text so mistakes stand out."""
    def flags(row: dict) -> str:
        marks = []
        if row["mistake"]:
            marks.append("⚠ mistake")
        if row["n_suspected"]:
            marks.append(f"{row['n_suspected']} HN")
        if row["all_fail"]:
            marks.append("all fail")
        return " · ".join(marks)

    return pd.DataFrame(
        [[r["problem_id"], r["language"], f"{r['n_pass']}/{r['n_candidates']}",
          f"{r['n_labeled']}/{r['n_candidates']}", flags(r)] for r in rows],
        columns=["problem", "lang", "pass", "labeled", "flags"],
    )




# ------------------------------------------------------------------ team

def guidelines_markdown(lab_dir: Path) -> str:
    """The lab's annotation guidelines (Markdown), or how to write them."""
    path = Path(lab_dir) / GUIDELINES_FILE
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return (f"No guidelines yet: write them in Markdown to `{path}`; this panel shows that file (read again "
                "when the page loads).")


def read_assignment(lab_dir: Path, run_name: str) -> dict | None:
    """The run's overlap assignment ({'annotators': [...], 'overlap': share}), or None."""
    try:
        return json.loads((Path(lab_dir) / run_name / ASSIGNMENT_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def write_assignment(lab_dir: Path, run_name: str, annotators: list[str], overlap: float) -> dict:
    """Record the run's overlap assignment (checked first: ValueError says what is wrong)."""
    agreement.assign([], annotators, overlap)
    assignment = {"annotators": [name.strip() for name in annotators if name.strip()], "overlap": overlap}
    path = Path(lab_dir) / run_name / ASSIGNMENT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(assignment, indent=2) + "\n")
    partial.replace(path)
    return assignment


def queues(store: Store, lab_dir: Path, run_name: str, run_id: int) -> dict[str, list[str]]:
    """annotator -> assigned problems of the run (none without an assignment)."""
    assignment = read_assignment(lab_dir, run_name)
    if not assignment:
        return {}
    return agreement.assign(store.reader().candidate_problem_ids(run_id), assignment["annotators"],
                            assignment["overlap"], seed=run_name)


def annotator_progress(rows: list[AnnotatorLabelRow], ranking: list[RankingRow],
                       assigned: dict[str, list[str]]) -> pd.DataFrame:
    """Per annotator, in the iteration whose short rows are `ranking`: their own labels by kind, and
    with an assignment the candidates of their queue they labelled."""
    in_iteration = {r["id"]: r["problem_id"] for r in ranking}
    per_problem = Counter(r["problem_id"] for r in ranking)
    table = []
    for author in sorted({r["author"] for r in rows} | set(assigned)):
        own = [r for r in rows if r["author"] == author and r["candidate_id"] in in_iteration and r["label"]]
        counts = Counter(r["label"] for r in own)
        queue = set(assigned.get(author, []))
        row = {"annotator": author, "labels": len(own), **{LABEL_NAMES[k]: counts[k] for k in LABEL_NAMES}}
        if assigned:
            done = sum(in_iteration[r["candidate_id"]] in queue for r in own)
            total = sum(per_problem[p] for p in queue)
            row["queue"] = f"{done}/{total} candidates of {len(queue & set(per_problem))} problems"
        table.append(row)
    columns = ["annotator", "labels", *LABEL_NAMES.values()] + (["queue"] if assigned else [])
    return pd.DataFrame(table, columns=columns)


def agreement_table(rows: list[AnnotatorLabelRow]) -> pd.DataFrame:
    """Cohen's kappa and raw agreement of every pair of annotators with candidates in common."""
    return pd.DataFrame([{"annotators": f"{a.first} · {a.second}", "shared candidates": a.shared,
                          "agreement": round(a.observed, 3) if a.observed is not None else None,
                          "Cohen's kappa": round(a.kappa, 3) if a.kappa is not None else None}
                         for a in agreement.agreements(rows)],
                        columns=["annotators", "shared candidates", "agreement", "Cohen's kappa"])
