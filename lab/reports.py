"""Reports: the evaluation's numbers as Markdown tables and CSV, for the run directory, the terminal
and the notebooks.

  table_markdown        pass@1 in the layout of the RewardRanker paper's Table 1 (a row per
                        iteration, generator and method, a column per benchmark/language)
  ranking_markdown      ranking accuracy and length correlation of each ranker, per eval set
  heldout_markdown      what each reward model measured on held-out MBPP validation problems
  write_csv             the pass@1 rows as CSV
  percent, measurement_text, percent_with_interval, points_with_interval   a fraction, or one
                        measurement (value, 95% interval, count), as a cell: shared by the app,
                        `eval --compare` and the scripts

Not covered here: computing the numbers (measures.py, evaluation.py), figures (plots.py).
"""
from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lab.languages import display_name
from lab.measures import HELDOUT_SET, METHOD_NAMES, METHOD_TITLES, PREVIOUS_RERANKER, RANKERS
from lab.records import EvaluationRow, MeasureKey, MeasurementRow, PassAt1Row, measurement_key

PAPER_LANGUAGE_ORDER = ("py", "cpp", "java", "php", "ts", "cs", "sh", "js")
CSV_FIELDS = ("iteration", "benchmark", "language", "generator", "method", "pass_at_1", "ci_low", "ci_high",
              "n_problems")


def column_of(row: PassAt1Row) -> str:
    language, benchmark = display_name(row["language"]), row["benchmark"]
    if benchmark.startswith("jsonl:"):
        return f"{Path(benchmark.removeprefix('jsonl:')).name} {language}"
    return f"HumanEval {language}" if benchmark == "humaneval" else f"{benchmark.upper()} {language}"


def _column_order(rows: Sequence[EvaluationRow]) -> list[str]:
    def key(row):
        language_rank = PAPER_LANGUAGE_ORDER.index(row["language"]) if row["language"] in PAPER_LANGUAGE_ORDER else 99
        return (row["benchmark"] != "humaneval", language_rank, row["language"])
    return list(dict.fromkeys(column_of(r) for r in sorted(rows, key=key)))


def percent(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage, '36.1' (or '–' for None)."""
    return "–" if value is None else f"{100 * value:.{digits}f}"


def percent_with_interval(row: Mapping[str, Any] | None) -> str:
    """A measurement row's value as a percentage with its 95% interval, e.g. '73.9 (68.2–79.0)'."""
    if row is None or row.get("value") is None:
        return "–"
    if row.get("ci_low") is None:
        return percent(row["value"])
    return f"{percent(row['value'])} ({percent(row['ci_low'])}–{percent(row['ci_high'])})"


def measurement_text(row: Mapping[str, Any] | None) -> str:
    """A Store.measurements row as one cell: value [95% interval] (n=count), the parts it has."""
    if row is None:
        return "–"
    text = "–" if row["value"] is None else f"{row['value']:.3f}"
    if row.get("ci_low") is not None and row.get("ci_high") is not None:
        text += f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return text if row["count"] is None else f"{text} (n={row['count']})"


def points_with_interval(row: Mapping[str, Any] | None) -> str:
    """A difference row in percentage points with its 95% interval, e.g. '-8.2 (-14.6 to -1.8)'."""
    if row is None or row.get("value") is None:
        return "–"
    text = f"{100 * row['value']:+.1f}"
    return text if row.get("ci_low") is None else f"{text} ({100 * row['ci_low']:+.1f} to {100 * row['ci_high']:+.1f})"


def generator_order(labels: set[str]) -> list[str]:
    """Generators in the order a table shows them: the base model, gen-0, gen-1, ..., the iteration's
    generator of rows stored before generators had rows ('', shown as 'this iteration's'), then the
    reference models."""
    def key(label: str) -> tuple[int, int, str]:
        if label == "base":
            return (0, 0, label)
        if label.startswith("gen-") and label[4:].isdigit():
            return (1, int(label[4:]), label)
        return (2, 0, label) if label == "" else (3, 0, label)
    return sorted(labels, key=key)


def generator_title(label: str) -> str:
    if label == "base":
        return "base model (no SFT)"
    if label == "" or label.startswith("gen-"):
        return label or "this iteration's"
    return f"{label} (reference)"


def own_generators(rows: Sequence[EvaluationRow]) -> set[tuple[int, str]]:
    """(iteration, generator) of each iteration's own generator: the one whose candidates its rankers pick from."""
    ranker_names = {ranker.name for ranker in RANKERS}
    return {(r["iteration"], r["generator"]) for r in rows if r["method"] in ranker_names}


def series_key(row: EvaluationRow, own: set[tuple[int, str]]) -> tuple[str, str]:
    """(generator, method) of a row, the generator '' for the iteration's own one (`own_generators`), so that
    its series runs across iterations as gen-k changes and runs compare on it whatever their gen-k is."""
    return ("" if (row["iteration"], row["generator"]) in own else row["generator"]), row["method"]


def table_markdown(rows: Sequence[EvaluationRow]) -> str:
    """Table 1 layout: a row per (iteration, generator, method), a column per benchmark/language (pass@1
    in %, 95% CI and number of problems), plus the average over HumanEval languages when there are
    several. Every generator of the chain keeps its rows (greedy, random pick, oracle), so a stage that
    made the generator worse shows beside the rankers of the iteration's generator."""
    if not rows:
        return "(no evaluations yet)"
    columns = _column_order(rows)
    humaneval_columns = [c for c in columns if c.startswith("HumanEval")]
    with_average = len(humaneval_columns) > 1
    cell = {(r["iteration"], r["generator"], r["method"], column_of(r)): r for r in rows}
    header = ["iteration", "generator", "method"] + columns + (["HumanEval avg"] if with_average else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for iteration in sorted({r["iteration"] for r in rows}):
        for generator in generator_order({r["generator"] for r in rows if r["iteration"] == iteration}):
            for method in METHOD_NAMES:
                found = [cell.get((iteration, generator, method, c)) for c in columns]
                if not any(found):
                    continue
                cells = [
                    f"{percent(r['pass_at_1'])} ({percent(r.get('ci_low'), 0)}–{percent(r.get('ci_high'), 0)}, "
                    f"n={r['n_problems']})"
                    if r else "–" for r in found
                ]
                if with_average:
                    values = [cell[(iteration, generator, method, c)]["pass_at_1"] for c in humaneval_columns
                              if (iteration, generator, method, c) in cell]
                    cells.append(percent(float(np.mean(values))) if values else "–")
                lines.append("| " + " | ".join([str(iteration), generator_title(generator), METHOD_TITLES[method]]
                                                + cells) + " |")
    lines.append("")
    lines.append("pass@1 in %, (95% bootstrap CI over problems, number of problems). The base model is the "
                 "untouched generator; reference models answer greedily.")
    return "\n".join(lines)


def _by_set(measurements: Sequence[MeasurementRow]) -> dict[tuple[int, str], dict[MeasureKey, MeasurementRow]]:
    grouped: dict[tuple[int, str], dict[MeasureKey, MeasurementRow]] = defaultdict(dict)
    for m in measurements:
        grouped[(m["iteration"], m["eval_set"])][measurement_key(m)] = m
    return dict(grouped)


def ranking_markdown(measurements: Sequence[MeasurementRow], eval_sets: list[str] | None = None) -> str:
    """Per (iteration, eval set): each ranker's ranking accuracy over the (passing, failing) sample
    pairs within problems, and the correlation of its score with completion length next to that of
    passing, and (from iteration 1) the reranker's ranking accuracy minus that of the reward model before
    it on the same candidates. `measurements` are Store.measurements rows."""
    grouped = {key: values for key, values in _by_set(measurements).items()
               if eval_sets is None or key[1] in eval_sets}
    if not grouped:
        return ""
    rankers = [r.name for r in RANKERS]
    lines = ["Ranking accuracy: of a problem's (passing, failing) sample pairs, the fraction each ranker orders "
             "right (ties half; 50 is chance), with a 95% interval that resamples problems; the difference is "
             "over the problems both rank; rm-k − rm-(k−1) compares the reranker with the reward model before it "
             "on the same candidates. corr(·, length): Pearson correlation with completion length.", "",
             "| iteration | eval set | problems | pairs | " + " | ".join(METHOD_TITLES[r] for r in rankers)
             + " | reranker − log-prob, points | rm-k − rm-(k−1), points | corr(passed, length) | "
             + " | ".join(f"corr({r}, length)" for r in rankers) + " |",
             "|" + "---|" * (7 + 2 * len(rankers))]
    for (iteration, eval_set), values in sorted(grouped.items()):
        first = values.get(MeasureKey("ranking_accuracy", rankers[0]))
        if first is None:
            continue
        problems = _value(values, MeasureKey("ranking_problems"))
        accuracies = [percent_with_interval(values.get(MeasureKey("ranking_accuracy", r))) for r in rankers]
        differences = [points_with_interval(values.get(MeasureKey("ranking_difference", f"reranker-{other}")))
                       for other in ("logprob", PREVIOUS_RERANKER)]
        correlations = [_signed(_value(values, MeasureKey("length_correlation", name)))
                        for name in ["passed", *rankers]]
        lines.append(f"| {iteration} | {eval_set} | {'–' if problems is None else int(problems)} | {first['count']} | "
                     + " | ".join(accuracies + differences + correlations) + " |")
    return "\n".join(lines) + "\n"


def _value(values: dict[MeasureKey, MeasurementRow], key: MeasureKey) -> float | None:
    row = values.get(key)
    return None if row is None else row["value"]


def _count(values: dict[MeasureKey, MeasurementRow], key: MeasureKey) -> int | None:
    row = values.get(key)
    return None if row is None else row["count"]


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def heldout_markdown(measurements: Sequence[MeasurementRow], eval_set: str = HELDOUT_SET) -> str:
    """After each reward-model training: on held-out problems, its pairwise accuracy on pairs built
    as training pairs are, top-1 pass of the rankers vs random, and its accuracy on held-out hard
    negatives before and after retraining."""
    grouped = {k: v for k, v in _by_set(measurements).items() if k[1] == eval_set}
    if not grouped:
        return ""
    lines = [f"Held-out reward-model measures ({eval_set}: problems never trained on), after each RM training; "
             "in brackets 95% intervals that resample problems, differences in points over the same problems.", "",
             "| rm | problems | pair accuracy (pairs) | top-1 random | top-1 log-prob | top-1 reranker | "
             "reranker − random | reranker − log-prob | top-1 reranker+λ·lp (λ) | "
             "hard negatives before → after (pairs) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (iteration, _), values in sorted(grouped.items()):
        def value(measure: str, subject: str = "", values=values) -> float | None:
            return _value(values, MeasureKey(measure, subject))

        pair = (f"{percent_with_interval(values.get(MeasureKey('pair_accuracy', 'reranker')))} "
                f"({_count(values, MeasureKey('pair_accuracy', 'reranker')) or 0})")
        lam = value("lambda")
        combined = f"{percent(value('top1', 'reranker+logprob'))} (λ={lam:g})" if lam is not None else "–"
        before, after = value("hard_negative_accuracy", "before"), value("hard_negative_accuracy", "after")
        hard_count = _count(values, MeasureKey("hard_negative_accuracy", "after"))
        hard = (f"{percent(before)} → {percent(after)} ({hard_count})"
                if after is not None else "–")
        problems = value("problems")
        lines.append(f"| rm-{iteration} | {'–' if problems is None else int(problems)} | {pair} | "
                     f"{percent(value('top1', 'random'))} | {percent(value('top1', 'logprob'))} | "
                     f"{percent(value('top1', 'reranker'))} | "
                     f"{points_with_interval(values.get(MeasureKey('top1_difference', 'reranker-random')))} | "
                     f"{points_with_interval(values.get(MeasureKey('top1_difference', 'reranker-logprob')))} | "
                     f"{combined} | {hard} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[PassAt1Row], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
