"""The generator's own progress: the base model, gen-0 (after SFT) and each gen-k measured on the same
problems by what they write themselves (their greedy answer and their N samples: greedy pass@1, random
pick of N, oracle pass@N), paired over problems; reference models (a bigger model, where installed)
by their greedy answer; and the SFT gate built on it.

Every evaluation (evaluation.evaluate_iteration) has rows for each generator of the chain that led to
the iteration's (`generator_chain`: the base model, gen-0 when SFT made one, each gen-k that policy
optimisation made) and for the reference models, and the paired differences between consecutive
generators (`chain_measurements`), so a stage that makes the generator worse shows in every table.

The SFT gate. Right after SFT trains, the base model and the SFT'd model each write a greedy answer
and N samples (sampling.num_samples) for the run's held-out MBPP validation problems, which are
executed. With `sft.keep='auto'` the SFT'd model becomes gen-0 only when it is better there: its
sampled pass@1 (random pick of N) above the base model's and its greedy pass@1 not below it (`decide`);
otherwise gen-0 is the base model, and the run says so. `always` keeps the SFT'd model whatever it
measures (it is still measured), `never` skips SFT. The samples of whichever model becomes gen-0 are
the held-out pool the reward model is then measured on (evaluation.measure_heldout), so the gate
costs one extra pool: the other model's.

Not covered here: training (sft.py), the rankers' measures (evaluation.py, measures.py), the machinery
of sampling and execution (stages.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lab.config import LabConfig, UsageError
from lab.measures import bootstrap_ci, paired_difference_ci, problem_outcomes
from lab.models import model_installed
from lab.problems import Problem
from lab.records import MeasureKey, Measurement
from lab.stages import ModelCache, RunContext, execute_candidates, sample_candidates

GENERATOR_METHODS = ("greedy", "random", "oracle")
"""What measures a generator alone (no ranker): its greedy answer, a random pick of its N samples, and
whether any of the N passes."""
SFT_KEEP = ("auto", "always", "never")
GATE_METHODS = {"greedy": "greedy", "random": "sampled"}
"""The generator measures the SFT gate decides on, with the word the run's messages use for each."""
METHOD_WORDS = {**GATE_METHODS, "oracle": "oracle"}
"""Each generator measure's word in measurement names: ('greedy_pass', 'gen-0'), ('sampled_difference', ...)."""


@dataclass(frozen=True)
class Generator:
    label: str
    """'base' (the untouched model), 'gen-0', 'gen-k', or a reference model's name."""
    model: str
    """The model name its candidates are stored under."""
    adapter: str | None
    stored_in: int
    """The iteration its candidates are stored under: the one it was made in (0 for base and reference models)."""


def generator_chain(run: RunContext, iteration: int) -> list[Generator]:
    """The distinct generators up to `iteration`'s, oldest first: the base model, gen-0 when the SFT gate
    kept it, and each gen-k a policy stage made. The last one is the iteration's generator."""
    chain = [Generator("base", run.config.model.generator, None, 0)]
    for k in range(iteration + 1):
        checkpoint = run.store.checkpoint(run.pool_id, "generator", k)
        if checkpoint is not None:
            chain.append(Generator(f"gen-{k}", checkpoint["version"], checkpoint["path"], k))
    return chain


def reference_generators(config: LabConfig) -> list[Generator]:
    """data.reference_models that are installed here (a package model's chunks, a local directory)."""
    return [Generator(spec.partition(":")[2] or spec, spec, None, 0)
            for spec in config.data.reference_models if model_installed(spec, config.model)]


def generator_outcomes(run: RunContext, iteration: int, generator: tuple[str, str | None],
                       problems: list[Problem], origins: tuple[str, ...] = ("greedy", "sample")
                       ) -> dict[str, dict[str, float]]:
    """Sample (what is missing: a greedy answer and sampling.num_samples samples per problem, of
    `origins`) and execute `generator` = (model name, adapter dir) on `problems`, stored under
    `iteration`; returns {method of GENERATOR_METHODS: {problem id: pass (0..1)}} (empty where the
    origins do not give a method)."""
    sample_candidates(run, iteration, problems, origins=origins, generator=generator)
    execute_candidates(run, iteration, {p.id for p in problems})
    return stored_outcomes(run, iteration, generator[0], problems)


def stored_outcomes(run: RunContext, iteration: int, model: str,
                    problems: list[Problem]) -> dict[str, dict[str, float]]:
    """{method of GENERATOR_METHODS: {problem id: pass}} from what the store holds of `model` under
    `iteration` (nothing is sampled or executed)."""
    ids = {p.id for p in problems}
    rows = [c for c in run.store.candidates(run.pool_id, iteration=iteration, model=model) if c["problem_id"] in ids]
    outcomes = problem_outcomes(rows)
    return {method: outcomes[method] for method in GENERATOR_METHODS}


@dataclass(frozen=True)
class GeneratorComparison:
    """`tuned` against `baseline` on the same problems: each one's pass@1 per method, and the paired
    difference tuned - baseline (measures.paired_difference_ci: difference, ci_low, ci_high, n_problems)."""
    tuned: dict[str, float]
    baseline: dict[str, float]
    differences: dict[str, dict]


def compare(tuned: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]]) -> GeneratorComparison:
    def mean(per_problem: dict[str, float]) -> float:
        return sum(per_problem.values()) / len(per_problem) if per_problem else float("nan")
    return GeneratorComparison(
        tuned={method: mean(tuned[method]) for method in GENERATOR_METHODS},
        baseline={method: mean(baseline[method]) for method in GENERATOR_METHODS},
        differences={method: paired_difference_ci(tuned[method], baseline[method]) for method in GENERATOR_METHODS})


@dataclass(frozen=True)
class GateDecision:
    keep: bool
    reason: str
    """One sentence for the run's log and summary."""


def decide(keep: str, comparison: GeneratorComparison) -> GateDecision:
    """`sft.keep` applied to the SFT'd model's comparison with the base model (see the module docstring)."""
    if keep not in SFT_KEEP or keep == "never":
        raise UsageError(f"sft.keep={keep!r}: the gate decides with auto or always (never skips SFT and the gate)")
    sampled, greedy = comparison.differences["random"]["difference"], comparison.differences["greedy"]["difference"]
    measured = describe(comparison)
    if keep == "always":
        return GateDecision(True, f"SFT kept (sft.keep=always): {measured}")
    if sampled > 0 and greedy >= 0:
        return GateDecision(True, f"SFT kept: it beats the base model on held-out MBPP validation ({measured})")
    return GateDecision(False, "SFT rejected, gen-0 is the base model: it does not beat the base model on held-out "
                               f"MBPP validation ({measured})")


def describe(comparison: GeneratorComparison) -> str:
    """'sampled pass@1 36.1 -> 30.2 (-5.9 points, 95% CI -9.0 to -2.7), greedy ...' over n problems."""
    parts = []
    for method, word in GATE_METHODS.items():
        d = comparison.differences[method]
        parts.append(f"{word} pass@1 {100 * comparison.baseline[method]:.1f} -> {100 * comparison.tuned[method]:.1f} "
                     f"({100 * d['difference']:+.1f} points, "
                     f"95% CI {100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f})")
    problems = next(iter(comparison.differences.values()))["n_problems"]
    return ", ".join(parts) + f", {problems} problems, base -> SFT"


def gate_info(comparison: GeneratorComparison, decision: GateDecision) -> dict:
    """The SFT stage's info fields: the decision and both models' held-out pass@1 (fractions)."""
    info: dict = {"kept": decision.keep, "gate": decision.reason}
    for method, word in GATE_METHODS.items():
        info[f"base_{word}"] = round(comparison.baseline[method], 4)
        info[f"sft_{word}"] = round(comparison.tuned[method], 4)
    return info



def reference_outcomes(run: RunContext, reference: Generator, problems: list[Problem]) -> dict[str, dict[str, float]]:
    """A reference model's greedy answers on `problems` (sampled once, stored under iteration 0), in a
    model cache of its own (the run's is emptied first: two models of this size need not share memory)."""
    config = run.config.override(**{"model.generator": reference.model})
    run.models.release()
    with ModelCache(config) as models:
        return generator_outcomes(dataclasses.replace(run, config=config, models=models), reference.stored_in,
                                  (reference.model, None), problems, origins=("greedy",))


def chain_measurements(outcomes: dict[str, dict[str, dict[str, float]]]) -> dict[MeasureKey, Measurement]:
    """From {generator label: its GENERATOR_METHODS outcomes}, in chain order: each generator's pass@1
    ('greedy_pass', label) with its 95% interval, and each one minus the one before it
    ('greedy_difference', 'gen-0 - base'), paired over the problems both answered."""
    values: dict[MeasureKey, Measurement] = {}
    labels = list(outcomes)
    for label in labels:
        for method, word in METHOD_WORDS.items():
            per_problem = outcomes[label].get(method)
            if per_problem:
                scores = [per_problem[p] for p in sorted(per_problem)]
                values[MeasureKey(f"{word}_pass", label)] = Measurement(sum(scores) / len(scores), len(scores),
                                                                          *bootstrap_ci(scores))
    for earlier, later in zip(labels, labels[1:]):
        for method, word in METHOD_WORDS.items():
            if outcomes[earlier].get(method) and outcomes[later].get(method):
                d = paired_difference_ci(outcomes[later][method], outcomes[earlier][method])
                values[MeasureKey(f"{word}_difference", f"{later} - {earlier}")] = Measurement(
                    d["difference"], d["n_problems"], d["ci_low"], d["ci_high"])
    return values
