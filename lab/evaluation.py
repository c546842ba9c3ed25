"""Evaluation: what a trained iteration is worth, on problems it never trained on.

Two measurements, both stored (evaluations and measurements tables) and written under the run dir:

Held-out (`measure_heldout`, after every reward-model training, the loop's 'validate' stage). MBPP
validation problems (`data.validation_splits`, never trained on) are sampled (N per problem) and
executed once per generator and scored by rm-k. Recorded on eval set 'mbpp-validation' (accuracies
and differences with a 95% interval that resamples problems, `heldout_measurements`):
  pair_accuracy/<ranker>      on pairs built from them exactly as training pairs are (mining.py)
  ranking_accuracy/<ranker>   over every (passing, failing) sample pair within a problem
  ranking_difference/<a>-<b>  ranking accuracy of a minus b over the problems both rank
  top1/<method>               pass@1 of each method (random, log-prob, reranker, ...)
  top1_difference/<a>-<b>     pass@1 of a minus b over the same problems (measures.PASS_COMPARISONS)
  length_correlation/<x>      corr(passed, length) and corr(each ranker's score, length)
  lambda                      the weight of the combined ranker reward + λ·mean log-prob, fitted
                              here (best ranking accuracy on the grid LAMBDA_GRID) and used at evaluation
  hard_negative_accuracy/before, /after   (k >= 1) on the held-out problems' hard negatives as
                              rm-(k-1) ranks them: its accuracy on them, and rm-k's
Evaluation (`evaluate_iteration`, the loop's 'evaluate' stage): greedy + N samples per problem of
each `data.eval_benchmarks` ('humaneval' = MultiPL-E HumanEval in each of `data.eval_languages`,
'mbpp' = the MBPP test split, 'jsonl:<path>' = your own problems), executed, scored by rm-k; pass@1
of every method in measures.METHODS with bootstrap CIs, plus ranking accuracies, their differences
(with intervals) and length correlations per eval set. The first `data.max_eval_problems` problems by task number.

Not covered here: the definitions of the measures (measures.py), the tables (reports.py) and
figures (plots.py), sampling/execution/scoring machinery (stages.py), anything about training.
"""
from __future__ import annotations

import re

from lab import mining, plots
from lab.config import LabConfig, UsageError
from lab.execution import Executor
from lab.measures import (HELDOUT_SET, PASS_COMPARISONS, RANKERS, RANKING_COMPARISONS, bootstrap_ci, length_correlation,
                          paired_difference_ci, pairwise_accuracy, pass_at_1_rows, pooled_accuracy_ci, problem_outcomes,
                          ranking_accuracy, ranking_counts, ranking_difference_ci)
from lab.problems import Problem, load_problems
from lab.reports import heldout_markdown, ranking_markdown, table_markdown, write_csv
from lab.stages import (ModelCache, RunContext, execute_candidates, reward_model_version, sample_candidates,
                        score_candidates)
from lab.store import Store

LAMBDA_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
"""Weights of mean log-prob tried for the combined ranker (mean log-probs are ~-0.05..-1 per token,
rewards a few units: the grid spans 'reward alone' to 'log-prob dominates')."""


# ---------------------------------------------------------------- problems

def _task_number(problem: Problem) -> int:
    match = re.search(r"(\d+)", problem.id.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else 0


def eval_problems(config: LabConfig) -> dict[tuple[str, str], list[Problem]]:
    """(benchmark, language) -> the first `max_eval_problems` problems by task number."""
    selected: dict[tuple[str, str], list[Problem]] = {}
    for benchmark in config.data.eval_benchmarks:
        if benchmark == "humaneval":
            for language in config.data.eval_languages:
                selected[(benchmark, language)] = load_problems("multipl-e/humaneval", language=language, data=config.data)
        elif benchmark == "mbpp":
            selected[(benchmark, "py")] = load_problems("mbpp", split="test", data=config.data)
        elif benchmark.startswith("jsonl:"):
            for problem in load_problems(benchmark, data=config.data):
                selected.setdefault((benchmark, problem.language), []).append(problem)
        else:
            raise UsageError(f"unknown evaluation benchmark {benchmark!r} in data.eval_benchmarks: use 'humaneval', "
                             "'mbpp' and/or 'jsonl:<path to your problems>'")
    cap = config.data.max_eval_problems
    return {key: sorted(problems, key=_task_number)[:cap] for key, problems in selected.items()}


def eval_set_name(benchmark: str, language: str) -> str:
    return f"{benchmark}-{language}"


def heldout_problems(config: LabConfig) -> list[Problem]:
    """MBPP problems of `data.validation_splits` (never trained on), the first
    `data.max_validation_problems` by task number."""
    problems = [p for split in config.data.validation_splits
                for p in load_problems("mbpp", split=split, purpose="train", data=config.data)]
    return sorted(problems, key=_task_number)[: config.data.max_validation_problems]


# ---------------------------------------------------------------- candidates

def iteration_candidates(store: Store, run_id: int, iteration: int, generator: str, problem_ids: set[str],
                         reward_model: str | None = None, role: str = "eval") -> list[dict]:
    """The candidates of one generator in one iteration on these problems (other models' candidates
    on the same problems, such as a bigger model's greedy answers, are kept apart)."""
    return [c for c in store.candidates(run_id, iteration=iteration, role=role, model=generator, reward_model=reward_model)
            if c["problem_id"] in problem_ids]


def with_combined_score(candidates: list[dict], weight: float | None) -> list[dict]:
    """The rows with `reward_plus_logprob` = reward + weight * mean_logprob (None without a weight)."""
    def combined(c: dict) -> float | None:
        if weight is None or c.get("reward") is None or c.get("mean_logprob") is None:
            return None
        return c["reward"] + weight * c["mean_logprob"]
    return [{**c, "reward_plus_logprob": combined(c)} for c in candidates]


def fit_lambda(candidates: list[dict]) -> float | None:
    """The LAMBDA_GRID weight whose combined ranker has the best ranking accuracy (the smallest on a tie)."""
    best = None
    for weight in LAMBDA_GRID:
        accuracy = ranking_accuracy(with_combined_score(candidates, weight))["reranker+logprob"]["accuracy"]
        if accuracy is not None and (best is None or accuracy > best[0]):
            best = (accuracy, weight)
    return None if best is None else best[1]


def ranking_measurements(candidates: list[dict]) -> dict[str, tuple]:
    """Ranking accuracy of each ranker and the paired differences of RANKING_COMPARISONS (95% intervals
    over problems), and the length correlations, as Store.add_measurements values."""
    counts = {ranker.name: ranking_counts(candidates, ranker.key) for ranker in RANKERS}
    values: dict[str, tuple] = {f"ranking_accuracy/{name}": _accuracy_value(pooled_accuracy_ci(per_problem))
                                for name, per_problem in counts.items()}
    values["ranking_problems"] = (len(counts[RANKERS[0].name]), None)
    for a, b in RANKING_COMPARISONS:
        difference = ranking_difference_ci(candidates, a, b)
        if difference["n_problems"]:
            values[f"ranking_difference/{a}-{b}"] = _difference_value(difference)
    samples = sum(c["origin"] == "sample" and c.get("passed") is not None for c in candidates)
    for name, correlation in length_correlation(candidates).items():
        values[f"length_correlation/{name}"] = (correlation, samples)
    return values


def _accuracy_value(result: dict) -> tuple:
    return result["accuracy"], result["pairs"], result["ci_low"], result["ci_high"]


def _difference_value(result: dict) -> tuple:
    return result["difference"], result["n_problems"], result["ci_low"], result["ci_high"]


def _top1(candidates: list[dict]) -> dict[str, tuple]:
    """Top-1 pass of each method and the paired differences of PASS_COMPARISONS (95% intervals over problems)."""
    values = {}
    outcomes = problem_outcomes(candidates)
    for method, per_problem in outcomes.items():
        if per_problem:
            values[f"top1/{method}"] = (sum(per_problem.values()) / len(per_problem), len(per_problem),
                                        *bootstrap_ci(list(per_problem.values())))
    for a, b in PASS_COMPARISONS:
        if outcomes.get(a) and outcomes.get(b):
            values[f"top1_difference/{a}-{b}"] = _difference_value(paired_difference_ci(outcomes[a], outcomes[b]))
    return values


def _pair_accuracy(pairs: list[tuple[int, int, str]], score_of: dict[int, float], problem_of: dict[int, str]) -> tuple:
    """(accuracy, pairs, ci_low, ci_high) over the pairs both of whose sides have a score; the interval
    resamples problems."""
    counts: dict[str, tuple[float, int]] = {}
    for chosen, rejected, _ in pairs:
        if chosen in score_of and rejected in score_of:
            right, n = counts.get(problem_of[chosen], (0.0, 0))
            counts[problem_of[chosen]] = (right + pairwise_accuracy([score_of[chosen]], [score_of[rejected]]), n + 1)
    return _accuracy_value(pooled_accuracy_ci(counts))


# ---------------------------------------------------------------- held out: after every RM training

def measure_heldout(run: RunContext, iteration: int) -> dict:
    """Sample/execute (once per generator), score with rm-`iteration` (and rm-(iteration-1)), measure
    (`heldout_measurements`), store; returns the values."""
    problems = run.problems("validation")
    if not problems:
        return {"skipped": "no validation problems (data.validation_splits / data.max_validation_problems)"}
    sampled_in, generator, ids = _heldout_pool_of(run, iteration)
    sample_candidates(run, sampled_in, problems)
    execute_candidates(run, sampled_in, ids)
    pool = iteration_candidates(run.store, run.run_id, sampled_in, generator, ids, role="validation")
    for scored_by in ([iteration - 1] if iteration >= 1 else []) + [iteration]:
        score_candidates(run, scored_by, pool)
    values = heldout_measurements(run, iteration)
    run.store.add_measurements(run.run_id, iteration, HELDOUT_SET, values)
    return {name: value for name, (value, *_) in values.items()}


def _heldout_pool_of(run: RunContext, iteration: int) -> tuple[int, str, set[str]]:
    """(iteration the samples are stored under, generator, problem ids) of rm-`iteration`'s held-out pool:
    the validation problems sampled once per generator (the base model's samples live in iteration 0)."""
    generator, _ = run.generator_at(iteration)
    return run.generator_iteration(iteration) or 0, generator, {p.id for p in run.problems("validation")}


def heldout_measurements(run: RunContext, iteration: int) -> dict[str, tuple]:
    """rm-`iteration`'s measures on the held-out pool, from what the store holds (sampled, executed and
    scored by `measure_heldout`): the values it stores, each (value, count[, ci_low, ci_high])."""
    sampled_in, generator, ids = _heldout_pool_of(run, iteration)
    version = reward_model_version(run.name, iteration)
    candidates = iteration_candidates(run.store, run.run_id, sampled_in, generator, ids, version, role="validation")
    weight = fit_lambda(candidates)
    candidates = with_combined_score(candidates, weight)
    problem_of = {c["id"]: c["problem_id"] for c in candidates}

    values = {"problems": (len(ids), None), "lambda": (weight, None),
              **ranking_measurements(candidates), **_top1(candidates)}
    pairs = mining.execution_pairs(candidates, run.config.reward.max_pairs_per_problem,
                                   balance_lengths=run.config.reward.balance_lengths)
    for ranker in RANKERS:
        score_of = {c["id"]: c[ranker.key] for c in candidates if c.get(ranker.key) is not None}
        values[f"pair_accuracy/{ranker.name}"] = _pair_accuracy(pairs, score_of, problem_of)
    if iteration >= 1:
        previous = reward_model_version(run.name, iteration - 1)
        before = iteration_candidates(run.store, run.run_id, sampled_in, generator, ids, previous, role="validation")
        hard = mining.hard_negative_pairs(before, run.config.mining, balance_lengths=run.config.reward.balance_lengths)
        values["hard_negative_accuracy/before"] = _pair_accuracy(hard, {c["id"]: c["reward"] for c in before}, problem_of)
        values["hard_negative_accuracy/after"] = _pair_accuracy(hard, {c["id"]: c["reward"] for c in candidates},
                                                                problem_of)
    return values


def heldout_lambda(store: Store, run_id: int, iteration: int) -> float | None:
    found = [m["value"] for m in store.measurements(run_id, HELDOUT_SET)
             if m["iteration"] == iteration and m["name"] == "lambda"]
    return found[0] if found else None


# ---------------------------------------------------------------- evaluation benchmarks

def evaluate_iteration(run: RunContext, iteration: int) -> list[dict]:
    """Sample (greedy + N), execute and score the evaluation problems for one iteration; store its
    pass@1 rows and ranking measurements; returns the rows."""
    rows = []
    version = reward_model_version(run.name, iteration)
    generator, _ = run.generator_at(iteration)
    weight = heldout_lambda(run.store, run.run_id, iteration)
    with Executor(run.config.execution) as executor:
        runnable = executor.available_languages()
    for (benchmark, language), problems in eval_problems(run.config).items():
        run.store.add_problems(problems, run.run_id, role="eval")
        if language not in runnable:
            run.log(f"evaluation: skipping {benchmark}-{language}: no {language} toolchain here "
                    "(`python -m lab exec-check` says which package provides it)")
            continue
        sample_candidates(run, iteration, problems, origins=("greedy", "sample"))
        ids = {p.id for p in problems}
        execute_candidates(run, iteration, ids)
        score_candidates(run, iteration, iteration_candidates(run.store, run.run_id, iteration, generator, ids))
        candidates = with_combined_score(
            iteration_candidates(run.store, run.run_id, iteration, generator, ids, version), weight)
        rows += pass_at_1_rows(candidates, benchmark, language)
        run.store.add_measurements(run.run_id, iteration, eval_set_name(benchmark, language),
                                   ranking_measurements(candidates))
    run.store.add_evaluations(run.run_id, iteration, rows)
    return rows


def write_reports(run: RunContext) -> dict:
    """evaluation.md / evaluation.csv and the plots over every evaluated iteration, under the run dir."""
    rows = run.store.evaluations(run.run_id)
    measurements = run.store.measurements(run.run_id)
    latest_candidates: list[dict] = []
    if rows:
        latest = max(r["iteration"] for r in rows)
        generator, _ = run.generator_at(latest)
        ids = {p.id for problems in eval_problems(run.config).values() for p in problems}
        latest_candidates = iteration_candidates(run.store, run.run_id, latest, generator, ids,
                                                 reward_model_version(run.name, latest))
    out = run.config.run_dir
    markdown = table_markdown(rows)
    sections = [f"# Evaluation of run {run.name!r}", markdown, ranking_markdown(measurements),
                heldout_markdown(measurements)]
    report = out / "evaluation.md"
    out.mkdir(parents=True, exist_ok=True)
    report.write_text("\n\n".join(s for s in sections if s) + "\n", encoding="utf-8")
    files = [report, write_csv(rows, out / "evaluation.csv")]
    files += plots.plot_pass_at_1(rows, out / "pass_at_1.png")
    files += plots.plot_reward_histograms(latest_candidates, out / "reward_histogram.png")
    return {"table_markdown": markdown, "files": [str(f) for f in files], "rows": rows}


def evaluate_run(config: LabConfig, iteration: int | None = None, *, progress: bool = True, log=print,
                 bars=None) -> dict:
    """Evaluate `iteration` (default: every trained iteration >= 1 not evaluated yet, else the latest),
    store the rows, and write the table and plots over all evaluated iterations. `bars`: see RunContext."""
    with Store(config.store_path) as store, ModelCache(config) as models:
        run = RunContext.existing(config, store, models=models, progress=progress, log=log, bars=bars)
        trained = run.trained_iterations()
        if iteration is not None and iteration not in trained:
            raise UsageError(f"iteration {iteration} of run {config.run_name!r} has no trained reward model "
                             f"(trained: {trained or 'none'}); run `python -m lab iterate` first")
        evaluated = {r["iteration"] for r in store.evaluations(run.run_id)}
        todo = [iteration] if iteration is not None else [k for k in trained if k >= 1 and k not in evaluated]
        if not todo and not evaluated and iteration is None:
            todo = trained[-1:]
        for k in todo:
            evaluate_iteration(run, k)
        return write_reports(run)
