"""The sampling temperature, chosen on held-out MBPP validation problems, never on an evaluation set.

For each temperature of a grid (top_p as configured), N = sampling.num_samples candidates per
validation problem of a run (role 'validation') are sampled from the run's generator at a given
iteration (default 0: gen-0, just after SFT) and executed. Per temperature it measures, with 95%
bootstrap CIs over problems: random-pick pass@1, mean-log-prob-rerank top-1 pass@1 and oracle
pass@N; it chooses the temperature with the best log-prob top-1 and records everything in the
store (eval set 'mbpp-validation-temperature', under that iteration).

Why log-prob top-1 is the criterion: the lab answers a problem with a ranker's top pick of N
samples, so the temperature that matters is the one at which a ranker picking among N does best.
Random pick rewards low temperatures (one safe sample, no use for the other N-1) and oracle pass@N
rewards high ones (diversity that no real ranker exploits fully). The trained reranker cannot
judge it: it is trained on samples drawn at the temperature being chosen. Mean log-prob needs no
training and is the ranker the trained one has to beat. Ties go to the higher oracle pass@N (more
for a trained reranker to find), then to the run's current temperature (no change without a
measured gain), then to the lowest.

Each temperature's candidates are stored under the model name '<generator>@t=<temperature>', so
they never mix with the run's own validation candidates (measured by evaluation.measure_heldout);
sampling and execution go through stages.py, so an interrupted choice resumes and a repeated one
reuses what is stored. With a few dozen problems the choice is noisy: read the CIs.

Not covered here: HumanEval / MultiPL-E or any evaluation problem (refused: choosing on them would
leak the evaluation into the configuration), top_p or other sampling parameters, the sampling and
execution machinery (stages.py), the measures (measures.py).
"""
from __future__ import annotations

import dataclasses

from lab.config import UsageError
from lab.evaluation import iteration_candidates
from lab.measures import paired_difference_ci, pass_at_1_rows, problem_outcomes
from lab.problems import Problem
from lab.records import CandidateRow, MeasureKey, Measurement, PassAt1Row
from lab.stages import RunContext, execute_candidates, sample_candidates

TEMPERATURE_SET = "mbpp-validation-temperature"
DEFAULT_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)
REPORTED_METHODS = ("random", "logprob", "oracle")


def temperature_model_name(generator: str, temperature: float) -> str:
    """The model name a temperature's candidates are stored under: '<generator>@t=0.6'."""
    return f"{generator}@t={temperature:g}"


def validation_problems(run: RunContext) -> list[Problem]:
    """The run's held-out MBPP validation problems; anything else linked as 'validation' is refused."""
    problems = run.problems("validation")
    if not problems:
        raise UsageError(f"run {run.name!r} has no validation problems: they are linked when the run starts "
                         "(data.validation_splits, data.max_validation_problems); start it with `python -m lab run`")
    foreign = [p.id for p in problems if p.source != "mbpp" or p.split == "test"]
    if foreign:
        raise UsageError(f"run {run.name!r} links {len(foreign)} validation problem(s) that are not held-out MBPP "
                         f"(first: {foreign[0]}); the temperature is chosen on MBPP validation only")
    return problems


def temperature_candidates(run: RunContext, iteration: int, temperature: float,
                           problems: list[Problem]) -> list[CandidateRow]:
    """Sample (what is missing) and execute N candidates per problem at `temperature` from the
    iteration's generator; returns their rows, executed."""
    generator, adapter_dir = run.generator_at(iteration)
    model_name = temperature_model_name(generator, temperature)
    at_temperature = dataclasses.replace(run, config=run.config.override(**{"sampling.temperature": temperature}))
    ids = {p.id for p in problems}
    sample_candidates(at_temperature, iteration, problems, generator=(model_name, adapter_dir))
    execute_candidates(at_temperature, iteration, ids)
    return iteration_candidates(run.store, run.pool_id, iteration, model_name, ids, role="validation")


def pick_temperature(by_temperature: dict[float, dict[str, PassAt1Row]], current: float) -> float:
    """The temperature with the best log-prob top-1; ties: higher oracle pass@N, then `current`, then the lowest."""
    def value(rows: dict[str, PassAt1Row], method: str) -> float:
        return rows[method]["pass_at_1"] if method in rows else -1.0

    measured = {t: rows for t, rows in by_temperature.items() if "logprob" in rows}
    if not measured:
        raise RuntimeError("no temperature has an executed sample: nothing to choose from")
    return max(sorted(measured), key=lambda t: (value(measured[t], "logprob"), value(measured[t], "oracle"),
                                                t == current, -t))


def choose_temperature(run: RunContext, iteration: int = 0,
                       temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES) -> dict:
    """Measure every temperature of the grid on the run's validation problems, choose one, store the
    measurements. Returns {"iteration", "generator", "problems", "num_samples", "top_p", "current" (the
    config's temperature), "chosen", "temperatures": {t: {method: pass@1 row}}, "gain_over_current" (the
    paired difference of log-prob top-1, chosen - current, measures.paired_difference_ci; None when the
    current temperature is not in the grid or is the one chosen)}."""
    if not temperatures or any(t <= 0 for t in temperatures):
        raise UsageError(f"temperatures {temperatures!r}: give one or more values above 0 (0 is greedy decoding)")
    if iteration not in run.store.iterations(run.run_id):
        raise UsageError(f"run {run.name!r} has no iteration {iteration} (it has {run.store.iterations(run.run_id)})")
    problems = validation_problems(run)
    by_temperature, logprob = {}, {}
    for t in dict.fromkeys(float(t) for t in temperatures):
        run.log(f"temperature {t:g}: sampling and executing {run.config.sampling.num_samples} candidates "
                f"for each of {len(problems)} MBPP validation problems")
        candidates = temperature_candidates(run, iteration, t, problems)
        by_temperature[t] = {row["method"]: row for row in pass_at_1_rows(candidates, TEMPERATURE_SET, "py")
                             if row["method"] in REPORTED_METHODS}
        logprob[t] = problem_outcomes(candidates)["logprob"]
    current = run.config.sampling.temperature
    chosen = pick_temperature(by_temperature, current)
    gain = paired_difference_ci(logprob[chosen], logprob[current]) if current in logprob and chosen != current else None

    values = {
        MeasureKey("problems"): Measurement(len(problems)),
        MeasureKey("num_samples"): Measurement(run.config.sampling.num_samples),
        MeasureKey("top_p"): Measurement(run.config.sampling.top_p),
        MeasureKey("chosen_temperature"): Measurement(chosen)}
    for t, rows in by_temperature.items():
        for method, row in rows.items():
            values[MeasureKey("top1", f"{method}@t={t:g}")] = Measurement(row["pass_at_1"], row["n_problems"])
    if gain is not None:
        values[MeasureKey("chosen_minus_current", "logprob")] = Measurement(gain["difference"], gain["n_problems"])
    run.store.add_measurements(run.run_id, iteration, TEMPERATURE_SET, values)
    generator, _ = run.generator_at(iteration)
    return {"iteration": iteration, "generator": generator, "problems": len(problems),
            "num_samples": run.config.sampling.num_samples, "top_p": run.config.sampling.top_p,
            "current": current, "chosen": chosen, "temperatures": by_temperature, "gain_over_current": gain}
