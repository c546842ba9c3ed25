"""Evaluation: pass@1 of five ways to answer each problem, per benchmark, language and iteration.

Methods (per problem, from its executed candidates; averaged over problems):
  greedy    the greedy (temperature 0) completion passes
  random    pick one of the N samples at random: the unbiased estimate c/n
  logprob   the sample with the highest mean token log-prob (no training needed)
  reranker  the sample the iteration's trained reward model scores highest
  oracle    any of the N samples passes (pass@N: the ceiling of any reranker)
Ties (equal log-prob or reward) count as a random pick among the tied samples.
Each number comes with a 95% bootstrap confidence interval over problems.

Benchmarks: MultiPL-E HumanEval in each of `data.eval_languages` ('humaneval') and the MBPP test
split in Python ('mbpp'); the first `data.max_eval_problems` problems by task number. An iteration
k is evaluated with its generator and its reward model rm-k; candidates are sampled, executed and
scored into the store (resumably, see loop.py), then the numbers are stored as `evaluations` rows.
Outputs under the run directory: evaluation.md / evaluation.csv (the layout of the RewardRanker
paper's Table 1: one row per iteration and method, one column per language) and plots.

Not covered here: anything about training; the sampling/execution/scoring machinery lives in loop.py.
"""
from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from lab.config import LabConfig
from lab.problems import Problem, load_problems

METHODS = ("greedy", "random", "logprob", "reranker", "oracle")
METHOD_TITLES = {
    "greedy": "greedy",
    "random": "random pick of N",
    "logprob": "mean-log-prob rerank",
    "reranker": "trained reranker top-1",
    "oracle": "oracle pass@N",
}
PAPER_LANGUAGE_ORDER = ("py", "cpp", "java", "php", "ts", "cs", "sh", "js")
LANGUAGE_TITLES = {"py": "Python", "cpp": "C++", "java": "Java", "php": "PHP", "ts": "TS", "cs": "C#",
                   "sh": "Bash", "js": "JS"}


# ---------------------------------------------------------------- metrics on candidate rows

def _top_pick_pass_rate(samples: list[dict], key: str) -> float | None:
    """Pass rate among the samples tied at the highest `key`; None when any sample lacks it."""
    values = [s[key] for s in samples]
    if not samples or any(v is None for v in values):
        return None
    best = max(values)
    tied = [s for s in samples if s[key] == best]
    return sum(bool(s["passed"]) for s in tied) / len(tied)


def problem_outcomes(candidates: list[dict]) -> dict[str, dict[str, float]]:
    """method -> {problem_id: expected pass (0..1)} from executed candidate rows (Store.candidates,
    with `reward` under the reward model being evaluated). A problem missing what a method needs
    (no greedy candidate, unscored samples) is left out of that method only."""
    outcomes: dict[str, dict[str, float]] = {method: {} for method in METHODS}
    by_problem = defaultdict(list)
    for candidate in candidates:
        if candidate.get("passed") is not None:
            by_problem[candidate["problem_id"]].append(candidate)
    for problem_id, rows in by_problem.items():
        greedy = [r for r in rows if r["origin"] == "greedy"]
        samples = [r for r in rows if r["origin"] == "sample"]
        if greedy:
            outcomes["greedy"][problem_id] = float(bool(greedy[0]["passed"]))
        if not samples:
            continue
        passes = [bool(s["passed"]) for s in samples]
        outcomes["random"][problem_id] = sum(passes) / len(passes)
        outcomes["oracle"][problem_id] = float(any(passes))
        for method, key in (("logprob", "mean_logprob"), ("reranker", "reward")):
            rate = _top_pick_pass_rate(samples, key)
            if rate is not None:
                outcomes[method][problem_id] = rate
    return outcomes


def ranking_accuracy(candidates: list[dict]) -> dict[str, dict]:
    """How well each ranker orders a problem's samples: over every (passing, failing) pair of samples
    of one problem, the fraction it scores the passing one higher (a tie counts half; 0.5 is chance).
    Top-1 pass@1 hangs on one pick per problem; this uses every pair, so it is the steadier signal.
    method -> {"accuracy": fraction or None, "pairs": count}."""
    by_problem = defaultdict(list)
    for candidate in candidates:
        if candidate["origin"] == "sample" and candidate.get("passed") is not None:
            by_problem[candidate["problem_id"]].append(candidate)
    result = {}
    for method, key in (("logprob", "mean_logprob"), ("reranker", "reward")):
        wins = pairs = 0
        for rows in by_problem.values():
            if any(r[key] is None for r in rows):
                continue
            passing = [r[key] for r in rows if r["passed"]]
            failing = [r[key] for r in rows if not r["passed"]]
            for good in passing:
                for bad in failing:
                    pairs += 1
                    wins += 1.0 if good > bad else 0.5 if good == bad else 0.0
        result[method] = {"accuracy": wins / pairs if pairs else None, "pairs": pairs}
    return result


def bootstrap_ci(values: list[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean, resampling problems with replacement."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def evaluation_rows(candidates: list[dict], benchmark: str, language: str) -> list[dict]:
    """One row per method with pass_at_1, ci_low, ci_high, n_problems (the store's evaluations schema)."""
    rows = []
    for method, per_problem in problem_outcomes(candidates).items():
        if not per_problem:
            continue
        values = [per_problem[p] for p in sorted(per_problem)]
        low, high = bootstrap_ci(values)
        rows.append({"benchmark": benchmark, "language": language, "method": method,
                     "pass_at_1": float(np.mean(values)), "ci_low": low, "ci_high": high, "n_problems": len(values)})
    return rows


def paired_difference_ci(a: dict[str, float], b: dict[str, float], *, resamples: int = 2000, seed: int = 0) -> dict:
    """Mean of a - b over the problems both cover, with a 95% bootstrap interval: is a really better than b?"""
    common = sorted(set(a) & set(b))
    differences = [a[p] - b[p] for p in common]
    low, high = bootstrap_ci(differences, resamples=resamples, seed=seed)
    return {"difference": float(np.mean(differences)) if differences else float("nan"), "ci_low": low,
            "ci_high": high, "n_problems": len(common)}


# ---------------------------------------------------------------- tables

def column_of(row: dict) -> str:
    language = LANGUAGE_TITLES.get(row["language"], row["language"])
    return f"HumanEval {language}" if row["benchmark"] == "humaneval" else f"{row['benchmark'].upper()} {language}"


def _column_order(rows: list[dict]) -> list[str]:
    def key(row):
        language_rank = PAPER_LANGUAGE_ORDER.index(row["language"]) if row["language"] in PAPER_LANGUAGE_ORDER else 99
        return (row["benchmark"] != "humaneval", language_rank, row["language"])
    return list(dict.fromkeys(column_of(r) for r in sorted(rows, key=key)))


def table_markdown(rows: list[dict]) -> str:
    """Table 1 layout: a row per (iteration, method), a column per benchmark/language (pass@1 in %,
    95% CI below), plus the average over HumanEval languages when there are several."""
    if not rows:
        return "(no evaluations yet)"
    columns = _column_order(rows)
    humaneval_columns = [c for c in columns if c.startswith("HumanEval")]
    with_average = len(humaneval_columns) > 1
    cell = {(r["iteration"], r["method"], column_of(r)): r for r in rows}
    header = ["iteration", "method"] + columns + (["HumanEval avg"] if with_average else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for iteration in sorted({r["iteration"] for r in rows}):
        for method in METHODS:
            found = [cell.get((iteration, method, c)) for c in columns]
            if not any(found):
                continue
            cells = [
                f"{100 * r['pass_at_1']:.1f} ({100 * r['ci_low']:.0f}–{100 * r['ci_high']:.0f}, n={r['n_problems']})"
                if r else "–" for r in found
            ]
            if with_average:
                values = [cell[(iteration, method, c)]["pass_at_1"] for c in humaneval_columns if (iteration, method, c) in cell]
                cells.append(f"{100 * np.mean(values):.1f}" if values else "–")
            lines.append("| " + " | ".join([str(iteration), METHOD_TITLES[method]] + cells) + " |")
    lines.append("")
    lines.append("pass@1 in %, (95% bootstrap CI over problems, number of problems).")
    return "\n".join(lines)


def ranking_markdown(report: dict[str, dict[str, dict]], iteration: int) -> str:
    """The `ranking_report` of one iteration as a table: eval set x ranker."""
    if not report:
        return ""
    lines = [f"Ranking accuracy, iteration {iteration}: of a problem's (passing, failing) sample pairs, the "
             "fraction each ranker orders right (ties half; 0.5 is chance).", "",
             "| eval set | pairs | mean-log-prob | trained reranker |", "|---|---|---|---|"]
    for eval_set, ranking in report.items():
        cells = ["–" if ranking[m]["accuracy"] is None else f"{100 * ranking[m]['accuracy']:.1f}"
                 for m in ("logprob", "reranker")]
        lines.append(f"| {eval_set} | {ranking['logprob']['pairs']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: Path) -> Path:
    fields = ("iteration", "benchmark", "language", "method", "pass_at_1", "ci_low", "ci_high", "n_problems")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- problems and the run

def _task_number(problem: Problem) -> int:
    match = re.search(r"(\d+)", problem.id.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else 0


def eval_problems(config: LabConfig) -> dict[tuple[str, str], list[Problem]]:
    """(benchmark, language) -> the first `max_eval_problems` problems by task number."""
    selected = {}
    for benchmark in config.data.eval_benchmarks:
        if benchmark == "humaneval":
            for language in config.data.eval_languages:
                selected[(benchmark, language)] = load_problems("multipl-e/humaneval", language=language, data=config.data)
        elif benchmark == "mbpp":
            selected[(benchmark, "py")] = load_problems("mbpp", split="test", data=config.data)
        else:
            raise ValueError(f"unknown evaluation benchmark {benchmark!r}: use 'humaneval' and/or 'mbpp'")
    cap = config.data.max_eval_problems
    return {key: sorted(problems, key=_task_number)[:cap] for key, problems in selected.items()}


def evaluate_run(config: LabConfig, iteration: int | None = None, *, progress: bool = True) -> dict:
    """Evaluate `iteration` (default: every trained iteration not evaluated yet, else the latest),
    store the rows, and write the table and plots over all evaluated iterations."""
    from lab import loop, plots
    from lab.store import Store

    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        trained = loop.trained_iterations(store, run_id)
        if iteration is not None and iteration not in trained:
            raise ValueError(f"iteration {iteration} of run {config.run_name!r} has no trained reward model "
                             f"(trained: {trained or 'none'}); run `python -m lab iterate` first")
        evaluated = {r["iteration"] for r in store.evaluations(run_id)}
        todo = [iteration] if iteration is not None else [k for k in trained if k >= 1 and k not in evaluated] or trained[-1:]
        with loop.ModelCache(config) as models:
            for k in todo:
                evaluate_iteration(config, store, run_id, k, models, progress=progress)
        rows = store.evaluations(run_id)
        latest_candidates, ranking = [], ""
        if rows:
            latest = max(r["iteration"] for r in rows)
            ranking = ranking_markdown(ranking_report(config, store, run_id, latest), latest)
            generator, _ = loop.generator_at(config, store, run_id, latest)
            problem_ids = {p.id for problems in eval_problems(config).values() for p in problems}
            latest_candidates = iteration_candidates(store, run_id, latest, generator, problem_ids,
                                                     loop.reward_model_version(config.run_name, latest))
    out = config.run_dir
    files = [out / "evaluation.md", write_csv(rows, out / "evaluation.csv")]
    markdown = table_markdown(rows)
    files[0].write_text(f"# Evaluation of run {config.run_name!r}\n\n{markdown}\n\n{ranking}", encoding="utf-8")
    files += plots.plot_pass_at_1(rows, out / "pass_at_1.png")
    files += plots.plot_reward_histograms(latest_candidates, out / "reward_histogram.png")
    return {"table_markdown": markdown, "files": [str(f) for f in files], "rows": rows}


def evaluate_iteration(config: LabConfig, store, run_id: int, iteration: int, models, *, progress: bool = True) -> list[dict]:
    """Sample (greedy + N), execute and score the evaluation problems for one iteration; store its rows."""
    from lab import loop
    from lab.execution import Executor

    rows = []
    reward_model = loop.reward_model_version(config.run_name, iteration)
    generator, _ = loop.generator_at(config, store, run_id, iteration)
    with Executor(config.execution) as executor:
        runnable = executor.available_languages()
    for (benchmark, language), problems in eval_problems(config).items():
        store.add_problems(problems, run_id, role="eval")
        if language not in runnable:
            print(f"evaluation: skipping {benchmark}-{language}: no {language} toolchain here (`python -m lab toolchains`)")
            continue
        loop.sample_candidates(config, store, run_id, iteration, problems, models, progress=progress,
                               origins=("greedy", "sample"))
        problem_ids = {p.id for p in problems}
        loop.execute_candidates(config, store, run_id, iteration, problem_ids, progress=progress)
        candidates = iteration_candidates(store, run_id, iteration, generator, problem_ids)
        loop.score_candidates(config, store, run_id, reward_model, loop.reward_model_path(store, run_id, iteration),
                              candidates, models, progress=progress)
        candidates = iteration_candidates(store, run_id, iteration, generator, problem_ids, reward_model)
        rows += evaluation_rows(candidates, benchmark, language)
    store.add_evaluations(run_id, iteration, rows)
    return rows


def ranking_report(config: LabConfig, store, run_id: int, iteration: int) -> dict[str, dict[str, dict]]:
    """"<benchmark>-<language>" -> `ranking_accuracy` of an evaluated iteration's candidates."""
    from lab import loop

    generator, _ = loop.generator_at(config, store, run_id, iteration)
    reward_model = loop.reward_model_version(config.run_name, iteration)
    report = {}
    for (benchmark, language), problems in eval_problems(config).items():
        candidates = iteration_candidates(store, run_id, iteration, generator, {p.id for p in problems}, reward_model)
        if candidates:
            report[f"{benchmark}-{language}"] = ranking_accuracy(candidates)
    return report


def iteration_candidates(store, run_id: int, iteration: int, generator: str, problem_ids: set[str],
                         reward_model: str | None = None) -> list[dict]:
    """The evaluation candidates of one generator in one iteration (other models' candidates on the
    same problems, such as a bigger model's greedy answers, are kept apart)."""
    return [c for c in store.candidates(run_id, iteration=iteration, role="eval", model=generator, reward_model=reward_model)
            if c["problem_id"] in problem_ids]
