"""How long the main job will take, from a LabConfig: seconds per stage of the loop (the bootstrap's
sft, sample, execute, pairs, train_rm, validate; each iteration's policy, sample, execute, score, mine,
train_rm, validate, evaluate), from the sizes the config asks for and measured unit costs, and the "this job will: ...
estimated ~N min" text the job prints when it starts.

Unit costs (UnitCosts) are measurements recorded in lab/benchmarks.json with the machine, date and
command of each (lab/benchmarks.py): CPU_0_5B for the 0.5B model on 2 CPU cores, TINY for the tiny
preset; the sampler's speed is the one scripts/bench_precision.py recorded for the precision the job
samples in, and a policy step the one scripts/bench_ppo.py recorded for its method, where they have.
Other model sizes on CPU scale with their parameter count read from the model name (e.g. '1.5b'). No
GPU has been measured: on CUDA the estimate is marked uncalibrated and the text says so instead of
giving a time.

Not covered here: running or timing anything (the loop records real stage times in the store), the
time of programs that hang until execution.timeout_s, and load from other processes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lab import benchmarks
from lab.benchmarks import sampling_note
from lab.config import LabConfig
from lab.console import format_duration
from lab.models import sampling_weights
from lab.problems import MBPP_SPLITS
from lab.reward import training_steps
from lab.roles import training_splits
from lab.sft import sft_steps

EVAL_BENCHMARK_SIZES = {"humaneval": 161,  # MultiPL-E's HumanEval (3 of the 164 are not translated)
                         "mbpp": len(MBPP_SPLITS["test"])}


@dataclass(frozen=True)
class UnitCosts:
    basis: str
    """What was measured, for the estimate's text."""
    sft_step_s: float
    """One SFT step of 4 MBPP (prompt, solution) sequences, ~100 tokens each."""
    rm_step_s: float
    """One reward-model step of 2 pairs (4 sequences), LoRA on every layer."""
    rm_top_layers_step_s: float
    """The same step with reward.trainable_layers=4 (top layers over cached lower-layer states); other
    layer counts scale it in proportion."""
    ppo_step_s: float
    """One PPO step of 4 rollouts of up to 96 tokens and one epoch of updates, as trl 1.12's PPOTrainer
    took it; the policy stage's own steps are timed by scripts/bench_ppo.py (`policy_step_seconds`)."""
    sampled_tokens_per_s: float
    """Continuous batch of 16, int8 weights (UNIT_COST_PRECISION); other precisions scale it by the speed
    ratio scripts/bench_precision.py measured (`sampling_rate`)."""
    typical_completion_tokens: float
    """Tokens of a completion that ends at a stop string; the runaway ones run to max_new_tokens."""
    runaway_fraction: float
    scores_per_s: float
    """Reward-model scoring, the prompt's prefill shared by its candidates."""
    rescores_per_s: float
    """Scoring texts whose lower layers' states are cached (a text scored before, by any reward model on the
    same backbone), with reward.trainable_layers=4; other layer counts scale it in inverse proportion."""
    seconds_per_program: dict[str, float]
    """Executing one program (compile + run) on one worker, per language; 'default' for the others."""
    model_load_s: float
    """Loading one model for a stage (and its int8 conversion for sampling)."""
    imports_s: float
    """Importing torch, transformers, peft, datasets and TRL, once per job."""
    gguf_conversion_s: float
    """The one-time conversion of a package-shipped GGUF model to safetensors."""
    pairs_per_mixed_problem: float
    """Execution pairs a training problem whose samples both pass and fail gives (at most
    reward.max_pairs_per_problem of course)."""
    mixed_problem_fraction: float
    """Training problems whose samples both pass and fail: the only ones that give pairs."""
    hard_negative_pairs_per_mixed_problem: float
    """Hard-negative pairs mined per such problem."""


def recorded_unit_costs(section: str) -> UnitCosts:
    """Unit costs recorded in lab/benchmarks.json (with the machine, date and command they come from)."""
    recorded = benchmarks.read(section)
    if recorded is None:
        raise RuntimeError(f"lab/benchmarks.json has no {section!r} section: the package's data file is missing "
                           "or damaged; reinstall the package (pip install -e .) or restore it from git")
    return UnitCosts(**{"basis": f"unit costs {recorded['machine']} measured ({recorded['date']})",
                        **recorded["figures"]})


CPU_0_5B = recorded_unit_costs("unit_costs_cpu_0.5b")
TINY = recorded_unit_costs("unit_costs_tiny")
IMPORTS_S = CPU_0_5B.imports_s
UNIT_COST_PRECISION = "int8"
"""The sampling precision the unit costs' sampled_tokens_per_s was measured in."""
BASELINE_PARAMETERS_B = 0.5


@dataclass(frozen=True)
class StageEstimate:
    iteration: int
    name: str
    seconds: float
    work: str
    """How much the stage does, in a few words: '8 steps', '72 candidates' ('' when it is quick bookkeeping)."""


@dataclass(frozen=True)
class JobEstimate:
    stages: tuple[StageEstimate, ...]
    calibrated: bool
    """False where no unit cost applies (CUDA, a model of unknown size): the seconds are then those
    of the 0.5B model on 2 CPU cores, scaled where a size is known, and the text gives no time."""
    basis: str
    startup_s: float = IMPORTS_S
    """Once per job: the imports, and converting a package-shipped model the first time it is used."""

    @property
    def total_s(self) -> float:
        return self.startup_s + sum(stage.seconds for stage in self.stages)

    def seconds(self, iteration: int, name: str) -> float | None:
        """The estimate of one stage, for JobConsole.stage(..., estimate_s=...)."""
        return next((s.seconds for s in self.stages if (s.iteration, s.name) == (iteration, name)), None)


@dataclass(frozen=True)
class Rates:
    """Seconds of each kind of work for one configuration: its unit costs, scaled to its model's size."""
    config: LabConfig
    costs: UnitCosts
    scale: float

    def load(self, count: int = 1) -> float:
        return count * self.costs.model_load_s * self.scale

    def sampling(self, candidates: int) -> float:
        costs, limit = self.costs, self.config.sampling.max_new_tokens
        tokens = (1 - costs.runaway_fraction) * costs.typical_completion_tokens + costs.runaway_fraction * limit
        return candidates * min(tokens, limit) / sampling_rate(self.config, costs) * self.scale

    def executing(self, programs_by_language: dict[str, int]) -> float:
        workers = self.config.execution.workers or os.cpu_count() or 1
        per_program = self.costs.seconds_per_program
        return sum(count * per_program.get(language, per_program["default"])
                   for language, count in programs_by_language.items()) / workers

    def scoring(self, candidates: int) -> float:
        return candidates / self.costs.scores_per_s * self.scale

    def rescoring(self, candidates: int) -> float:
        """Scoring texts scored before (their lower layers' states cached, lab/hidden_states.py)."""
        layers = self.config.reward.trainable_layers
        rate = self.costs.rescores_per_s * 4 / layers if layers else self.costs.scores_per_s
        return candidates / rate * self.scale

    def reward_steps(self, pairs: int) -> tuple[float, int]:
        """(seconds, optimizer steps) of a reward-model training on `pairs` pairs (reward.epochs, max_steps)."""
        rm = self.config.reward
        pair_s = self.costs.rm_step_s if rm.trainable_layers is None else \
            self.costs.rm_top_layers_step_s * rm.trainable_layers / 4
        steps = training_steps(rm, pairs)
        return self.load() + steps * pair_s * rm.batch_size * rm.gradient_accumulation_steps / 2 * self.scale, steps

    def sft(self, examples: int) -> tuple[float, int]:
        """(seconds, steps) of SFT on `examples` reference solutions (sft.max_steps, sft.max_epochs)."""
        sft = self.config.sft
        steps = sft_steps(sft, examples)
        return self.load() + steps * self.costs.sft_step_s * sft.batch_size * sft.gradient_accumulation_steps / 4 * \
            self.scale, steps

    def pairs(self, problems: int) -> int:
        """Execution pairs the bootstrap builds from `problems` training problems."""
        per_problem = min(self.config.reward.max_pairs_per_problem, self.costs.pairs_per_mixed_problem)
        return max(1, round(problems * self.costs.mixed_problem_fraction * per_problem))

    def hard_negative_pairs(self, problems: int) -> int:
        return round(problems * self.costs.mixed_problem_fraction * self.costs.hard_negative_pairs_per_mixed_problem)


def rates_for(config: LabConfig) -> tuple[Rates, bool, str]:
    """(the configuration's Rates, calibrated, the basis of its unit costs)."""
    costs, scale, calibrated, basis = _unit_costs(config)
    return Rates(config, costs, scale), calibrated, basis


def estimate_job(config: LabConfig, iterations: int | None = None) -> JobEstimate:
    """The stages of a job started from scratch: the bootstrap and `iterations` iterations
    (default config.loop.iterations)."""
    rates, calibrated, basis = rates_for(config)
    load, sampling, executing, scoring = rates.load, rates.sampling, rates.executing, rates.scoring
    iterations = config.loop.iterations if iterations is None else iterations
    problems = _train_problem_count(config)
    train_candidates = problems * (config.loop.train_samples or config.sampling.num_samples)
    references = problems if config.reward.reference_pairs else 0
    n = config.sampling.num_samples
    heldout = _validation_problem_count(config) * n
    eval_sets = _eval_set_sizes(config)

    sft, policy = config.sft, config.policy
    policy_step = policy_step_seconds(config, rates.costs) * rates.scale
    bootstrap_pairs = rates.pairs(problems)
    seconds, steps = rates.reward_steps(bootstrap_pairs)
    train_rm = StageEstimate(0, "train_rm", seconds, f"≈{bootstrap_pairs} pairs, {steps} steps")
    eval_candidates = sum(eval_sets.values()) * (n + 1)
    eval_programs: dict[str, int] = {}
    for (_, language), count in eval_sets.items():
        eval_programs[language] = eval_programs.get(language, 0) + count * (n + 1)

    gated = sft.keep != "never" and heldout > 0
    gate_candidates = 2 * _validation_problem_count(config) * (n + 1)  # base and SFT'd model: greedy + N each

    def validate(k: int) -> StageEstimate:
        """Held-out samples from each new generator (gen-0's drawn by the SFT gate), scored by rm-k (and,
        k >= 1, by rm-(k-1))."""
        new_generator = (k == 0 and not gated) or (k >= 1 and policy.enabled)
        seconds = load(1 + new_generator) + scoring(heldout * (1 + (k >= 1 and new_generator)))
        if new_generator:
            seconds += sampling(heldout) + executing({"py": heldout})
        return StageEstimate(k, "validate", seconds if heldout else 0.0, f"{heldout} held-out candidates")

    def evaluate(k: int) -> StageEstimate:
        """Greedy + N samples of each evaluation set from each new generator (the first evaluation samples
        gen-0), scored by rm-k and rm-(k-1); an unchanged generator's are scored by rm-k only."""
        new_generator = k == 1 or policy.enabled
        seconds = load(1 + new_generator) + scoring(eval_candidates * (1 + new_generator))
        if new_generator:
            seconds += sampling(eval_candidates) + 2 * executing(eval_programs)  # hidden tests + visible examples
        return StageEstimate(k, "evaluate", seconds, ", ".join(
            f"{benchmark}-{language} {count} problems" for (benchmark, language), count in eval_sets.items())
            + f" x (greedy + {n} samples)" + ("" if new_generator else ", sampled before"))

    sft_seconds, sft_step_count = rates.sft(problems)
    if gated:
        sft_seconds += load(2) + sampling(gate_candidates) + executing({"py": gate_candidates})
    stages = [
        StageEstimate(0, "sft", sft_seconds if sft.keep != "never" else 0.0,
                      (f"{sft_step_count} steps"
                       + (f", gate on {gate_candidates} held-out candidates" if gated else ""))
                      if sft.keep != "never" else "off"),
        StageEstimate(0, "sample", load() + sampling(train_candidates), f"{train_candidates} candidates"),
        StageEstimate(0, "execute", executing({"py": train_candidates + references}),
                      f"{train_candidates + references} programs"),
        StageEstimate(0, "pairs", 0.0, ""),
        train_rm,
        validate(0),
    ]
    at_most = "at most " if config.loop.resample == "mixed" else ""  # only problems seen both passing and failing
    for k in range(1, iterations + 1):
        pairs = bootstrap_pairs + k * rates.hard_negative_pairs(problems)
        seconds, steps = rates.reward_steps(pairs)
        stages += [
            StageEstimate(k, "policy", load(2) + policy.steps * policy_step if policy.enabled else 0.0,
                          f"{policy.method} {policy.steps} steps" if policy.enabled else "off"),
            StageEstimate(k, "sample", load() + sampling(train_candidates), f"{at_most}{train_candidates} candidates"),
            StageEstimate(k, "execute", executing({"py": train_candidates}), f"{at_most}{train_candidates} programs"),
            StageEstimate(k, "score", load() + scoring(train_candidates + references),
                          f"{train_candidates + references} candidates"),
            StageEstimate(k, "mine", 0.0, ""),
            StageEstimate(k, "train_rm", seconds, f"≈{pairs} pairs, {steps} steps"),
            validate(k),
            evaluate(k),
        ]
    return JobEstimate(tuple(stages), calibrated, basis,
                       IMPORTS_S + (CPU_0_5B.gguf_conversion_s * rates.scale if _needs_conversion(config) else 0.0))


def policy_step_seconds(config: LabConfig, costs: UnitCosts) -> float:
    """One step of the policy stage as config.policy sizes it: what scripts/bench_ppo.py recorded for
    policy.method (in proportion to completions, their length and PPO's epochs), else ppo_step_s, trl
    1.12's PPO at one epoch, times the epochs (the tiny preset always uses its own unit cost)."""
    policy = config.policy
    recorded = benchmarks.read("policy_steps")
    methods = recorded["figures"]["methods"] if recorded and costs is not TINY else {}
    epochs = policy.ppo_epochs if policy.method == "ppo" else 1
    size = policy.batch_size * policy.response_length * epochs
    if policy.method in methods:
        measured = methods[policy.method]
        return measured["seconds_per_step"] * size / (measured["batch_size"] * measured["response_length"] *
                                                      measured["epochs"])
    return costs.ppo_step_s * size / (4 * 96)


def save_estimate(estimate: JobEstimate, path: str | Path) -> None:
    """Write the estimate as JSON for whoever follows the job (the app's job view reads it):
    {"stages": [{"iteration", "name", "seconds", "work"}, ...], "calibrated", "basis", "startup_s"}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"stages": [dataclasses.asdict(stage) for stage in estimate.stages],
                                   "calibrated": estimate.calibrated, "basis": estimate.basis,
                                   "startup_s": estimate.startup_s}, indent=1))
    partial.replace(path)


def sampling_rate(config: LabConfig, costs: UnitCosts) -> float:
    """Sampled tokens/s in the job's sampling precision: the unit cost (measured in int8) times the speed
    ratio scripts/bench_precision.py recorded between that precision and int8 in one run (only ratios
    measured side by side survive a shared machine's load); its raw tokens/s where it did not measure
    int8; else the unit cost. The tiny preset always uses its own."""
    recorded = benchmarks.read("precision")
    precisions = recorded["figures"]["precisions"] if recorded and costs is not TINY else {}
    weights = sampling_weights(config.model)
    if weights not in precisions:
        return costs.sampled_tokens_per_s
    if UNIT_COST_PRECISION in precisions:
        ratio = precisions[weights]["tokens_per_s"] / precisions[UNIT_COST_PRECISION]["tokens_per_s"]
        return costs.sampled_tokens_per_s * ratio
    return precisions[weights]["tokens_per_s"]


def format_estimate(config: LabConfig, estimate: JobEstimate) -> str:
    """'this job will: ...' with a line per iteration and the total."""
    problems = _train_problem_count(config)
    samples = config.loop.train_samples or config.sampling.num_samples
    iterations = max((s.iteration for s in estimate.stages), default=0)
    lines = [f"this job will: bootstrap (iteration 0) and {iterations} self-training iteration(s) on {problems} "
             f"training problems x {samples} samples, with {config.model.generator} (preset {config.preset})",
             f"  {sampling_note(config.model)}"]
    if estimate.startup_s > IMPORTS_S:
        conversion = f" (~{format_duration(estimate.startup_s - IMPORTS_S)})" if estimate.calibrated else ""
        lines.append(f"  first: convert the model to safetensors, once{conversion}")
    for k in range(iterations + 1):
        parts = [" ".join(filter(None, [s.name, s.work, f"~{format_duration(s.seconds)}"
                                        if estimate.calibrated and s.seconds >= 1 else ""]))
                 for s in estimate.stages if s.iteration == k]
        lines.append(f"  iteration {k}: " + ", ".join(parts))
    if estimate.calibrated:
        lines.append(f"estimated ~{format_duration(estimate.total_s)} ({estimate.basis})")
    else:
        lines.append(f"no time estimate: {estimate.basis}")
    return "\n".join(lines)


def _unit_costs(config: LabConfig) -> tuple[UnitCosts, float, bool, str]:
    """(costs, scale on model-bound work, calibrated, basis)."""
    if config.model.generator == "tiny":
        return TINY, 1.0, True, TINY.basis
    if _uses_cuda(config):
        return CPU_0_5B, 1.0, False, "the unit costs were measured on 2 CPU cores and no GPU has been measured yet"
    size = _parameters_b(config.model.generator)
    if size is None:
        return CPU_0_5B, 1.0, False, (f"the size of {config.model.generator} is not in its name; unit costs are "
                                      "known for the 0.5B model on 2 CPU cores")
    scale = size / BASELINE_PARAMETERS_B
    basis = CPU_0_5B.basis + ("" if scale == 1 else f", scaled x{scale:.3g} for a {size:g}B model")
    return CPU_0_5B, scale, True, basis


def _uses_cuda(config: LabConfig) -> bool:
    if config.model.device != "auto":
        return config.model.device == "cuda"
    import torch
    return torch.cuda.is_available()


def _parameters_b(spec: str) -> float | None:
    """Billions of parameters from a model name such as 'qwen2.5-coder-0.5b-instruct'."""
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)b(?![a-z])", spec.lower())
    return float(match.group(1)) if match else None


def _train_problem_count(config: LabConfig) -> int:
    available = sum(len(MBPP_SPLITS[split]) for split in training_splits(config.data) if split in MBPP_SPLITS)
    available += sum(_jsonl_rows(path) for path in config.data.extra_problems)
    cap = config.data.max_train_problems
    return available if cap is None else min(cap, available)


def _validation_problem_count(config: LabConfig) -> int:
    available = sum(len(MBPP_SPLITS[split]) for split in config.data.validation_splits if split in MBPP_SPLITS)
    cap = config.data.max_validation_problems
    return available if cap is None else min(cap, available)


def _eval_set_sizes(config: LabConfig) -> dict[tuple[str, str], int]:
    """(benchmark, language) -> problems evaluated; a user file counts as one set of its rows."""
    sizes = {}
    for benchmark in config.data.eval_benchmarks:
        if benchmark == "humaneval":
            sizes.update({(benchmark, language): EVAL_BENCHMARK_SIZES[benchmark]
                          for language in config.data.eval_languages})
        elif benchmark == "mbpp":
            sizes[(benchmark, "py")] = EVAL_BENCHMARK_SIZES[benchmark]
        elif benchmark.startswith("jsonl:"):
            sizes[(benchmark, "py")] = _jsonl_rows(benchmark.partition(":")[2])
    cap = config.data.max_eval_problems
    return {key: size if cap is None else min(cap, size) for key, size in sizes.items()}


def _jsonl_rows(path: str) -> int:
    try:
        with open(path, encoding="utf-8") as rows:
            return sum(1 for line in rows if line.strip())
    except OSError:
        return 0  # loading the problems will say what is wrong with the file


def _needs_conversion(config: LabConfig) -> bool:
    kind, _, name = config.model.generator.partition(":")
    models = Path(config.model.cache_dir).expanduser() / "models"
    return kind == "package" and not any(models.glob(f"{name}-*/converted.json"))


@dataclass(frozen=True)
class StudyEstimate:
    parts: tuple[tuple[str, int, tuple[StageEstimate, ...]], ...]
    """(what, how many times, its stages) for the sampling seeds, the replicates and the references."""
    calibrated: bool
    basis: str

    @property
    def total_s(self) -> float:
        return IMPORTS_S + sum(times * sum(s.seconds for s in stages) for _, times, stages in self.parts)


def estimate_study(protocol) -> StudyEstimate:
    """The study of `protocol` (lab/protocol.py) from scratch, from the same unit costs as the main job: per
    sampling seed, per replicate (sampling seed x reward seed) and once for the references."""
    config = protocol.config()
    rates, calibrated, basis = rates_for(config)
    problems = _train_problem_count(config)
    samples = config.loop.train_samples or config.sampling.num_samples
    resampled = problems if config.loop.resample == "all" else round(problems * rates.costs.mixed_problem_fraction)
    n_heldout, largest = config.sampling.num_samples, max(protocol.n)
    heldout = _validation_problem_count(config) * n_heldout
    eval_sets = _eval_set_sizes(config)
    pool = sum(eval_sets.values()) * (largest + 1)
    programs: dict[str, int] = {}
    for (_, language), count in eval_sets.items():
        programs[language] = programs.get(language, 0) + count * (largest + 1)
    gate = 2 * _validation_problem_count(config) * (n_heldout + 1)
    sft_seconds, sft_step_count = rates.sft(problems)
    sets = ", ".join(f"{benchmark}-{language} {count}" for (benchmark, language), count in eval_sets.items())
    generator = (
        StageEstimate(0, "held-out pool", rates.load() + rates.sampling(heldout) + rates.executing({"py": heldout}),
                      f"{heldout} candidates of the base model (sft.keep=never)")
        if config.sft.keep == "never" else
        StageEstimate(0, "sft + gate",
                      sft_seconds + rates.load(2) + rates.sampling(gate) + rates.executing({"py": gate}),
                      f"{sft_step_count} steps, {gate} held-out candidates"))
    sampling_seed = (
        generator,
        StageEstimate(0, "training samples", rates.load() + rates.sampling((problems + resampled) * samples)
                      + rates.executing({"py": (problems + resampled) * samples}),
                      f"{problems} + {resampled} problems x {samples}"),
        StageEstimate(0, "evaluation pools", rates.load() + rates.sampling(pool) + 2 * rates.executing(programs),
                      f"{sets} problems x (greedy + {largest}), tests and visible examples"),
        StageEstimate(0, "held-out examples", rates.executing({"py": heldout}), f"{heldout} candidates"),
        StageEstimate(0, "first scorings", rates.scoring(pool + heldout + resampled * samples),
                      "each text's lower layers, once (the first replicate pays them)"),
    )
    bootstrap_pairs = rates.pairs(problems)
    all_pairs = bootstrap_pairs + rates.hard_negative_pairs(problems)
    rm0, steps0 = rates.reward_steps(bootstrap_pairs)
    rm1, steps1 = rates.reward_steps(all_pairs)
    headline = sum(eval_sets.values()) * protocol.n[0]
    replicate = (
        StageEstimate(0, "rm-0", rm0, f"≈{bootstrap_pairs} pairs, {steps0} steps"),
        StageEstimate(0, "validate", rates.load() + rates.rescoring(heldout), f"{heldout} candidates"),
        StageEstimate(1, "score + mine", rates.load() + rates.rescoring(resampled * samples),
                      f"{resampled * samples} candidates"),
        StageEstimate(1, "rm-1", rm1, f"≈{all_pairs} pairs, {steps1} steps"),
        StageEstimate(1, "validate", rates.load() + rates.rescoring(heldout), f"{heldout} candidates"),
        StageEstimate(1, "controls", 2 * rm1, "equal compute and fresh, as rm-1"),
        StageEstimate(1, "scoring", rates.load(4) + rates.rescoring(pool + 3 * headline + 2 * heldout),
                      f"rm-1 on {pool} evaluation candidates, rm-0 and the controls on {headline} (N={protocol.n[0]})"),
    )
    references = [StageEstimate(0, "base greedy", rates.load() + rates.sampling(sum(eval_sets.values())),
                                f"{sum(eval_sets.values())} problems")]
    for reference in protocol.references:
        reference_config = config.override(**{**reference.overrides, "model.generator": reference.model})
        reference_rates, _, _ = rates_for(reference_config)
        candidates = sum(eval_sets.values()) * (("greedy" in reference.methods) + reference.n)
        references.append(StageEstimate(0, reference.model,
                                        reference_rates.load() + reference_rates.sampling(candidates)
                                        + 2 * rates.executing(programs) * candidates / max(pool, 1),
                                        f"{candidates} candidates"))
    replicates = len(protocol.sampling_seeds) * len(protocol.reward_seeds)
    return StudyEstimate((("per sampling seed", len(protocol.sampling_seeds), sampling_seed),
                          ("per replicate", replicates, replicate), ("references, once", 1, tuple(references))),
                         calibrated, basis)


def format_study_estimate(protocol, estimate: StudyEstimate) -> str:
    """'this study will: ...' with a line per part and the total."""
    lines = [f"this study will: {len(protocol.sampling_seeds)} sampling seed(s) x {len(protocol.reward_seeds)} reward "
             f"seed(s) of {protocol.name} ({protocol.path}), N = {', '.join(map(str, protocol.n))}"]
    for what, times, stages in estimate.parts:
        shown = ", ".join(f"{s.name} {s.work}" + (f" ~{format_duration(s.seconds)}" if estimate.calibrated else "")
                          for s in stages)
        total = f" = ~{format_duration(sum(s.seconds for s in stages))}" if estimate.calibrated else ""
        lines.append(f"  {what} (x{times}): {shown}{total}")
    lines.append(f"estimated ~{format_duration(estimate.total_s)} ({estimate.basis})" if estimate.calibrated
                 else f"no time estimate: {estimate.basis}")
    return "\n".join(lines)
