"""Evaluation: what a trained iteration is worth, on problems it never trained on.

Two measurements, both stored (evaluations and measurements tables) and written under the run dir:

Held-out (`measure_heldout`, after every reward-model training, the loop's 'validate' stage). MBPP
validation problems (`data.validation_splits`, never trained on) are sampled (N per problem) and
executed once per generator and scored by rm-k. Recorded on eval set 'mbpp-validation' as
measure/subject (records.MeasureKey; accuracies and differences with a 95% interval that resamples
problems, `heldout_measurements`):
  pair_accuracy/<ranker>      on pairs built from them exactly as training pairs are (mining.py)
  ranking_accuracy/<ranker>   over every (passing, failing) sample pair within a problem, pooled
  ranking_auc/<ranker>        the same per problem, averaged over problems (each problem weighs alike)
  ranking_difference/<a>-<b>  ranking accuracy of a minus b over the problems both rank
  top1/<method>               pass@1 of each method (random, log-prob, reranker, ...)
  top1_difference/<a>-<b>     pass@1 of a minus b over the same problems (measures.PASS_COMPARISONS)
  length_correlation/<x>      corr(passed, length) and corr(each ranker's score, length)
  lambda                      the weight of the combined ranker reward + λ·mean log-prob, fitted
                              here (best ranking accuracy on the grid LAMBDA_GRID) and used at evaluation;
                              the combined ranker's own held-out measures use λ cross-fitted over problems
                              (`crossfit_combined`), never fitted on the problems they are measured on
  hard_negative_accuracy/before, /after   (k >= 1) on the held-out problems' hard negatives as
                              rm-(k-1) ranks them: its accuracy on them, and rm-k's
  greedy_pass/<gen>, sampled_pass/<gen>, oracle_pass/<gen>, greedy_difference/<gen-k - gen-(k-1)>, ...
                              (k >= 1, when policy optimisation made gen-k) the generator against the one
                              before it, generators.chain_measurements (iteration 0: the SFT gate's, 'sft - base')
Evaluation (`evaluate_iteration`, the loop's 'evaluate' stage): greedy + N samples per problem of
each `data.eval_benchmarks` ('humaneval' = MultiPL-E HumanEval in each of `data.eval_languages`,
'mbpp' = the MBPP test split, 'jsonl:<path>' = your own problems), executed, scored by rm-k; pass@1
of every method in measures.METHODS with bootstrap CIs, plus ranking accuracies, their differences
(with intervals) and length correlations per eval set. The first `data.max_eval_problems` problems by task number.
Every generator of the chain (the base model, gen-0, ...; lab/generators.py) and each installed reference
model has its own rows (greedy, random pick, oracle), and consecutive generators their paired differences.

Both check their candidates against the prompts' visible examples (stages.check_visible_examples) for the
examples-filter rankers. Both sample once per generator (`sampled_in`): a generator unchanged between iterations
(PPO off) is not sampled again, so rm-k and rm-(k-1) are measured on the same candidates. Both score them with
rm-(k-1) as well and record rm-k against it (`previous_reranker_measurements`:
ranking_accuracy/previous_reranker, top1/previous_reranker and their differences from rm-k).

Not covered here: the definitions of the measures (measures.py), the tables (reports.py) and
figures (plots.py), sampling/execution/scoring machinery (stages.py), anything about training.
"""
from __future__ import annotations

import re
from typing import cast

from lab import generators, mining, plots
from lab.config import LabConfig, UsageError
from lab.execution import Executor
from lab.measures import (
    HELDOUT_SET,
    PASS_COMPARISONS,
    PREVIOUS_RERANKER,
    RANKERS,
    RANKING_COMPARISONS,
    bootstrap_ci,
    length_correlation,
    macro_accuracy_ci,
    outcome_rows,
    paired_difference_ci,
    pairwise_accuracy,
    pass_at_1_rows,
    pooled_accuracy_ci,
    problem_outcomes,
    ranking_accuracy,
    ranking_counts,
    ranking_difference_ci,
    top_pick_outcomes,
)
from lab.problems import Problem, load_problems
from lab.records import CandidateRow, MeasureKey, Measurement, PassAt1Row, RankerKey, measurement_key
from lab.reports import heldout_markdown, ranking_markdown, table_markdown, write_csv
from lab.roles import leave_out_near_duplicates
from lab.stages import (
    ModelCache,
    RunContext,
    check_visible_examples,
    execute_candidates,
    reward_model_version,
    sample_candidates,
    score_candidates,
)
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
                selected[(benchmark, language)] = load_problems("multipl-e/humaneval", language=language,
                                                                data=config.data)
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
    """MBPP problems of `data.validation_splits` (never trained on), less those that duplicate or nearly
    duplicate an evaluation problem (roles.py), the first `data.max_validation_problems` by task number."""
    problems = [p for split in config.data.validation_splits
                for p in load_problems("mbpp", split=split, purpose="train", data=config.data)]
    evaluated = [p for ps in eval_problems(config).values() for p in ps]
    problems, _ = leave_out_near_duplicates(problems, evaluated, config.data.near_duplicate_similarity)
    return sorted(problems, key=_task_number)[: config.data.max_validation_problems]


# ---------------------------------------------------------------- candidates

def sampled_in(run: RunContext, iteration: int, role: str, problem_ids: set[str]) -> int:
    """The iteration under which the candidates that iteration `iteration` measures are stored: the
    iteration its generator was made in (0 for the base model), since a generator is sampled once.
    Evaluation candidates already stored under `iteration` itself (stores written before they were
    shared) stay where they are."""
    generator, _ = run.generator_at(iteration)
    if role == "eval" and iteration_candidates(run.store, run.pool_id, iteration, generator, problem_ids):
        return iteration
    return run.generator_iteration(iteration) or 0


def scoring_iterations(iteration: int) -> list[int]:
    """The reward models that score what rm-`iteration` is measured on: it and the one before it."""
    return ([iteration - 1] if iteration >= 1 else []) + [iteration]


def iteration_candidates(store: Store, run_id: int, iteration: int, generator: str, problem_ids: set[str],
                         reward_model: str | None = None, role: str = "eval",
                         origin: str | None = None) -> list[CandidateRow]:
    """The candidates of one generator in one iteration on these problems (other models' candidates
    on the same problems, such as a bigger model's greedy answers, are kept apart), of one origin if given."""
    return [c for c in store.candidates(run_id, iteration=iteration, role=role, model=generator,
                                        reward_model=reward_model, origin=origin)
            if c["problem_id"] in problem_ids]


def with_combined_score(candidates: list[CandidateRow], weight: float | None) -> list[CandidateRow]:
    """The rows with `reward_plus_logprob` = reward + weight * mean_logprob (None without a weight)."""
    def combined(c: CandidateRow) -> float | None:
        reward, logprob = c.get("reward"), c.get("mean_logprob")
        if weight is None or reward is None or logprob is None:
            return None
        return reward + weight * logprob
    return [{**c, "reward_plus_logprob": combined(c)} for c in candidates]


def fit_lambda(candidates: list[CandidateRow]) -> float | None:
    """The LAMBDA_GRID weight whose combined ranker has the best ranking accuracy (the smallest on a tie)."""
    best = None
    for weight in LAMBDA_GRID:
        accuracy = ranking_accuracy(with_combined_score(candidates, weight))["reranker+logprob"]["accuracy"]
        if accuracy is not None and (best is None or accuracy > best[0]):
            best = (accuracy, weight)
    return None if best is None else best[1]


CROSSFIT_FOLDS = 5


def crossfit_combined(candidates: list[CandidateRow]) -> list[CandidateRow]:
    """The rows with `reward_plus_logprob` whose λ is cross-fitted over problems: the problems (by id) are
    dealt into CROSSFIT_FOLDS folds, and each fold's rows get the λ fitted (`fit_lambda`) on the other
    folds, so no problem's combined score used a λ fitted on that problem."""
    problems = sorted({c["problem_id"] for c in candidates})
    fold_of = {problem: i % CROSSFIT_FOLDS for i, problem in enumerate(problems)}
    combined: list[CandidateRow] = []
    for fold in sorted(set(fold_of.values())):
        others = [c for c in candidates if fold_of[c["problem_id"]] != fold]
        combined += with_combined_score([c for c in candidates if fold_of[c["problem_id"]] == fold],
                                        fit_lambda(others) if others else None)
    return combined


def ranking_measurements(candidates: list[CandidateRow]) -> dict[MeasureKey, Measurement]:
    """Ranking accuracy (pooled) and AUC (per problem) of each ranker and the paired differences of
    RANKING_COMPARISONS (95% intervals over problems), and the length correlations, as
    Store.add_measurements takes them."""
    counts = {ranker.name: ranking_counts(candidates, ranker.key) for ranker in RANKERS}
    values = {MeasureKey("ranking_accuracy", name): _accuracy_value(pooled_accuracy_ci(per_problem))
              for name, per_problem in counts.items()}
    for name, per_problem in counts.items():
        auc = macro_accuracy_ci(per_problem)
        values[MeasureKey("ranking_auc", name)] = Measurement(auc["accuracy"], auc["n_problems"], auc["ci_low"],
                                                              auc["ci_high"])
    values[MeasureKey("ranking_problems")] = Measurement(len(counts[RANKERS[0].name]))
    for a, b in RANKING_COMPARISONS:
        difference = ranking_difference_ci(candidates, a, b)
        if difference["n_problems"]:
            values[MeasureKey("ranking_difference", f"{a}-{b}")] = _difference_value(difference)
    samples = sum(c["origin"] == "sample" and c.get("passed") is not None for c in candidates)
    for name, correlation in length_correlation(candidates).items():
        values[MeasureKey("length_correlation", name)] = Measurement(correlation, samples)
    return values


def previous_reranker_measurements(candidates: list[CandidateRow],
                                   previous: list[CandidateRow]) -> dict[MeasureKey, Measurement]:
    """rm-k (the `reward` of `candidates`) against rm-(k-1) (the `reward` of `previous`, the same
    candidates' rows under rm-(k-1)): rm-(k-1)'s ranking accuracy and top-1 pass, and rm-k minus
    rm-(k-1) for both, paired over the same problems with 95% intervals. Empty for k = 0."""
    earlier = {c["id"]: c["reward"] for c in previous}
    rows: list[CandidateRow] = [{**c, "previous_reward": earlier.get(c["id"])} for c in candidates]
    values = {}
    counts = ranking_counts(rows, "previous_reward")
    if counts:
        values[MeasureKey("ranking_accuracy", PREVIOUS_RERANKER)] = _accuracy_value(pooled_accuracy_ci(counts))
        difference = ranking_difference_ci(rows, "reranker", PREVIOUS_RERANKER,
                                           keys={"reranker": "reward", PREVIOUS_RERANKER: "previous_reward"})
        if difference["n_problems"]:
            values[MeasureKey("ranking_difference", f"reranker-{PREVIOUS_RERANKER}")] = _difference_value(difference)
    now, before = top_pick_outcomes(rows, "reward"), top_pick_outcomes(rows, "previous_reward")
    if before:
        values[MeasureKey("top1", PREVIOUS_RERANKER)] = _mean_value(before)
        if now:
            values[MeasureKey("top1_difference", f"reranker-{PREVIOUS_RERANKER}")] = _difference_value(
                paired_difference_ci(now, before))
    return values


def _accuracy_value(result: dict) -> Measurement:
    return Measurement(result["accuracy"], result["pairs"], result["ci_low"], result["ci_high"])


def _difference_value(result: dict) -> Measurement:
    return Measurement(result["difference"], result["n_problems"], result["ci_low"], result["ci_high"])


def _mean_value(per_problem: dict[str, float]) -> Measurement:
    """The mean over problems with its 95% bootstrap interval."""
    return Measurement(sum(per_problem.values()) / len(per_problem), len(per_problem),
                       *bootstrap_ci(list(per_problem.values())))


def _top1(candidates: list[CandidateRow]) -> dict[MeasureKey, Measurement]:
    """Top-1 pass of each method and the paired differences of PASS_COMPARISONS (95% intervals over problems)."""
    values = {}
    outcomes = problem_outcomes(candidates)
    for method, per_problem in outcomes.items():
        if per_problem:
            values[MeasureKey("top1", method)] = _mean_value(per_problem)
    for a, b in PASS_COMPARISONS:
        if outcomes.get(a) and outcomes.get(b):
            values[MeasureKey("top1_difference", f"{a}-{b}")] = _difference_value(
                paired_difference_ci(outcomes[a], outcomes[b]))
    return values


def _scores_by_id(candidates: list[CandidateRow], key: RankerKey) -> dict[int, float]:
    """candidate id -> its score by `key`, for the candidates that have one."""
    return {c["id"]: score for c in candidates if (score := c.get(key)) is not None}


def _pair_accuracy(pairs: list[tuple[int, int, str]], score_of: dict[int, float],
                   problem_of: dict[int, str]) -> Measurement:
    """Accuracy over the pairs both of whose sides have a score, with their count and a 95% interval
    that resamples problems."""
    counts: dict[str, tuple[float, int]] = {}
    for chosen, rejected, _ in pairs:
        if chosen in score_of and rejected in score_of:
            right, n = counts.get(problem_of[chosen], (0.0, 0))
            one_pair = cast(float, pairwise_accuracy([score_of[chosen]], [score_of[rejected]]))  # a pair: a number
            counts[problem_of[chosen]] = (right + one_pair, n + 1)
    return _accuracy_value(pooled_accuracy_ci(counts))


# ---------------------------------------------------------------- held out: after every RM training

def measure_heldout(run: RunContext, iteration: int) -> dict:
    """Sample/execute (once per generator), score with rm-`iteration` (and rm-(iteration-1)), measure
    (`heldout_measurements`), store; returns the values as stage info: the measures without a subject
    (problems, lambda) by name, the others under 'measurements' by label."""
    problems = run.problems("validation")
    if not problems:
        return {"skipped": "no validation problems (data.validation_splits / data.max_validation_problems)"}
    pool = prepare_heldout_pool(run, iteration)
    for scored_by in scoring_iterations(iteration):
        score_candidates(run, scored_by, pool)
    for pair_member in _new_generator_pair(run, iteration):  # their greedy answers too, for the comparison
        generators.generator_outcomes(run, pair_member.stored_in, (pair_member.model, pair_member.adapter), problems)
    values = heldout_measurements(run, iteration)
    run.store.add_measurements(run.run_id, iteration, HELDOUT_SET, values)
    counts = {key.measure: m.value for key, m in values.items() if not key.subject}
    return {**counts, "measurements": {key.label: m.value for key, m in values.items() if key.subject}}


def prepare_heldout_pool(run: RunContext, iteration: int) -> list[CandidateRow]:
    """rm-`iteration`'s held-out pool, sampled, executed and checked against the visible examples where
    that is missing (once per generator); its sample rows, unscored."""
    stored_in, generator, ids = _heldout_pool_of(run, iteration)
    sample_candidates(run, stored_in, run.problems("validation"))
    execute_candidates(run, stored_in, ids)
    check_visible_examples(run, stored_in, ids)
    return iteration_candidates(run.store, run.pool_id, stored_in, generator, ids, role="validation", origin="sample")


def _heldout_pool_of(run: RunContext, iteration: int) -> tuple[int, str, set[str]]:
    """(iteration the samples are stored under, generator, problem ids) of rm-`iteration`'s held-out pool."""
    generator, _ = run.generator_at(iteration)
    ids = {p.id for p in run.problems("validation")}
    return sampled_in(run, iteration, "validation", ids), generator, ids


def _new_generator_pair(run: RunContext, iteration: int) -> list[generators.Generator]:
    """[gen-(k-1), gen-k] when policy optimisation made gen-k in `iteration` (k >= 1), else []."""
    chain = generators.generator_chain(run, iteration)
    return chain[-2:] if iteration >= 1 and chain[-1].stored_in == iteration else []


def heldout_measurements(run: RunContext, iteration: int) -> dict[MeasureKey, Measurement]:
    """rm-`iteration`'s measures on the held-out pool, and gen-k's against gen-(k-1) where the iteration
    made a generator, from what the store holds (sampled, executed and scored by `measure_heldout`): the
    values it stores."""
    stored_in, generator, ids = _heldout_pool_of(run, iteration)
    version = reward_model_version(run.name, iteration)
    candidates = iteration_candidates(run.store, run.pool_id, stored_in, generator, ids, version, role="validation",
                                      origin="sample")
    weight = fit_lambda(candidates)
    candidates = crossfit_combined(candidates)
    problem_of = {c["id"]: c["problem_id"] for c in candidates}

    values = {MeasureKey("problems"): Measurement(len(ids)), MeasureKey("lambda"): Measurement(weight),
              **ranking_measurements(candidates), **_top1(candidates)}
    pairs = mining.execution_pairs(mining.eligible_negatives(candidates, run.config.reward.negatives),
                                   run.config.reward.max_pairs_per_problem,
                                   balance_lengths=run.config.reward.balance_lengths)
    for ranker in RANKERS:
        values[MeasureKey("pair_accuracy", ranker.name)] = _pair_accuracy(pairs, _scores_by_id(candidates, ranker.key),
                                                                          problem_of)
    if iteration >= 1:
        previous = reward_model_version(run.name, iteration - 1)
        before = iteration_candidates(run.store, run.pool_id, stored_in, generator, ids, previous, role="validation",
                                      origin="sample")
        values.update(previous_reranker_measurements(candidates, before))
        hard = mining.hard_negative_pairs(before, run.config.mining, balance_lengths=run.config.reward.balance_lengths)
        values[MeasureKey("hard_negative_accuracy", "before")] = _pair_accuracy(
            hard, _scores_by_id(before, "reward"), problem_of)
        values[MeasureKey("hard_negative_accuracy", "after")] = _pair_accuracy(
            hard, _scores_by_id(candidates, "reward"), problem_of)
    problems = run.problems("validation")
    values.update(generators.chain_measurements({
        generator.label: generators.stored_outcomes(run, generator.stored_in, generator.model, problems)
        for generator in _new_generator_pair(run, iteration)}))
    return values


def heldout_lambda(store: Store, run_id: int, iteration: int) -> float | None:
    found = [m["value"] for m in store.measurements(run_id, HELDOUT_SET)
             if m["iteration"] == iteration and measurement_key(m) == MeasureKey("lambda")]
    return found[0] if found else None


# ---------------------------------------------------------------- evaluation benchmarks

def eval_pool(run: RunContext, iteration: int, problem_ids: set[str],
              reward_model: int | None = None, variant: str = "") -> list[CandidateRow]:
    """The evaluation candidates iteration `iteration` is measured on (its generator's greedy answer and
    samples, wherever `sampled_in` stores them), with their scores under rm-`reward_model` (or its control
    `variant`), if given."""
    generator, _ = run.generator_at(iteration)
    version = None if reward_model is None else reward_model_version(run.name, reward_model, variant)
    return iteration_candidates(run.store, run.pool_id, sampled_in(run, iteration, "eval", problem_ids), generator,
                                problem_ids, version)


def prepare_eval_pools(run: RunContext, iteration: int,
                       num_samples: int | None = None) -> dict[tuple[str, str], list[Problem]]:
    """Each evaluation set's problems linked to the run, and greedy + `num_samples` (default
    sampling.num_samples) samples per problem of iteration `iteration`'s generator sampled, executed and
    checked against the visible examples where missing (once per generator); (benchmark, language) ->
    its problems, for the sets whose language this machine runs (the others are skipped, said in the log)."""
    with Executor(run.config.execution) as executor:
        runnable = executor.available_languages()
    prepared = {}
    for (benchmark, language), problems in eval_problems(run.config).items():
        run.store.add_problems(problems, run.pool_id, role="eval")
        if language not in runnable:
            run.log(f"evaluation: skipping {benchmark}-{language}: no {language} toolchain here "
                    "(`python -m lab exec-check` says which package provides it)")
            continue
        ids = {p.id for p in problems}
        stored_in = sampled_in(run, iteration, "eval", ids)
        sample_candidates(run, stored_in, problems, origins=("greedy", "sample"), num_samples=num_samples)
        execute_candidates(run, stored_in, ids)
        check_visible_examples(run, stored_in, ids)
        prepared[(benchmark, language)] = problems
    return prepared


def evaluate_iteration(run: RunContext, iteration: int) -> list[PassAt1Row]:
    """Sample (greedy + N, once per generator), execute and score the evaluation problems for one
    iteration; store its pass@1 rows and ranking measurements (with rm-(k-1)'s on the same
    candidates); returns the rows."""
    rows: list[PassAt1Row] = []
    weight = heldout_lambda(run.store, run.run_id, iteration)
    for (benchmark, language), problems in prepare_eval_pools(run, iteration).items():
        ids = {p.id for p in problems}
        for scored_by in scoring_iterations(iteration):
            score_candidates(run, scored_by, eval_pool(run, iteration, ids))
        candidates = with_combined_score(eval_pool(run, iteration, ids, iteration), weight)
        chain = generators.generator_chain(run, iteration)
        rows += pass_at_1_rows(candidates, benchmark, language, chain[-1].label)
        values = ranking_measurements(candidates)
        if iteration >= 1:
            values.update(previous_reranker_measurements(candidates, eval_pool(run, iteration, ids, iteration - 1)))
        generator_rows, generator_values = _generator_rows(run, chain, candidates, problems, benchmark, language)
        rows += generator_rows
        values.update(generator_values)
        run.store.add_measurements(run.run_id, iteration, eval_set_name(benchmark, language), values)
    run.store.add_evaluations(run.run_id, iteration, rows)
    return rows


def _generator_rows(run: RunContext, chain: list[generators.Generator], candidates: list[CandidateRow],
                    problems: list[Problem], benchmark: str, language: str
                    ) -> tuple[list[PassAt1Row], dict[MeasureKey, Measurement]]:
    """The rows of the generators before the iteration's own (sampled once each) and of the reference
    models, and the chain's measurements; the iteration's own generator is measured on `candidates`."""
    own = problem_outcomes(candidates)
    outcomes = {generator.label: generators.generator_outcomes(run, generator.stored_in,
                                                               (generator.model, generator.adapter), problems)
                for generator in chain[:-1]}
    outcomes[chain[-1].label] = {method: own[method] for method in generators.GENERATOR_METHODS}
    rows = [row for label, by_method in outcomes.items() if label != chain[-1].label
            for row in outcome_rows(by_method, benchmark, language, label)]
    for reference in generators.reference_generators(run.config):
        rows += outcome_rows(generators.reference_outcomes(run, reference, problems), benchmark, language,
                             reference.label)
    return rows, generators.chain_measurements(outcomes)


def write_reports(run: RunContext) -> dict:
    """evaluation.md / evaluation.csv and the plots over every evaluated iteration, under the run dir."""
    rows = run.store.evaluations(run.run_id)
    measurements = run.store.measurements(run.run_id)
    latest_candidates: list[CandidateRow] = []
    if rows:
        latest = max(r["iteration"] for r in rows)
        ids = {p.id for problems in eval_problems(run.config).values() for p in problems}
        latest_candidates = eval_pool(run, latest, ids, latest)
    out = run.config.run_dir
    markdown = table_markdown(rows)
    sections = [f"# Evaluation of run {run.name!r}", markdown, ranking_markdown(measurements),
                heldout_markdown(measurements)]
    report = out / "evaluation.md"
    out.mkdir(parents=True, exist_ok=True)
    report.write_text("\n\n".join(s for s in sections if s) + "\n", encoding="utf-8")
    files = [report, write_csv(rows, out / "evaluation.csv")]
    files += plots.save(plots.pass_at_1_figure(rows), out / "pass_at_1.png")
    files += plots.save(plots.reward_histogram_figure(latest_candidates, "evaluation candidates"),
                        out / "reward_histogram.png")
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
