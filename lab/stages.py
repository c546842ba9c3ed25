"""Store-driven work that the loop and the evaluation both do: the run context, the models kept in
memory, version names and checkpoint lookups, and the resumable sample / execute / score operations.

Every operation reads what is missing from the store and writes what it produces back a chunk (or
a problem) at a time, so one interrupted at any point, `kill -9` included, is simply called again
and continues where it stopped: candidates are unique per (iteration, problem, origin, model,
index), only unexecuted candidates are executed and only unscored ones scored.

With cluster.address set, sampling, execution and scoring fan out over a Ray cluster (cluster.py,
replicas.py) in the same units, and the results land in the store here, in the same transactions.

Versions: the generator trained in iteration k is '<run>/gen-k', the reward model '<run>/rm-k' (a
control trained beside it '<run>/rm-k-<variant>'); scores are stored under the reward model's version,
so no reward model scores a candidate twice.

The pool. A run's problems, generators and candidates (with their executions and visible-example
verdicts) belong to its pool run: itself, or the run named by loop.candidates_from. Its stages, pairs,
reward models, scores, metrics and measurements are its own. So runs that differ only in their reward
model's seed share one set of samples, drawn and executed once.

Not covered here: the order of stages and what each iteration trains (loop.py), what is measured
(evaluation.py, measures.py), the model code (models, generation, reward), execution itself
(execution.py).
"""
from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from lab import cluster, generation, reward
from lab.config import LabConfig
from lab.examples import examples_program, visible_examples
from lab.execution import ExecutionResult, Executor, build_program
from lab.hidden_states import HiddenStateCache
from lab.models import load_reward_model
from lab.problems import Problem, truncate_at_stop
from lab.records import CandidateRow, CandidateText
from lab.replicas import GeneratorReplica, RewardModelReplica
from lab.store import Store
from lab.stored_config import config_difference
from lab.vllm_backend import load_backend_sampler

EXECUTION_CHUNK = 32
SCORE_CHUNK = 32


def generator_version(run_name: str, iteration: int) -> str:
    return f"{run_name}/gen-{iteration}"


def reward_model_version(run_name: str, iteration: int, variant: str = "") -> str:
    return f"{run_name}/rm-{iteration}" + (f"-{variant}" if variant else "")


class ModelCache:
    """Keeps at most one generator and one reward model in memory, keyed by adapter directory."""

    def __init__(self, config: LabConfig):
        self.config = config
        self._generator: tuple[str | None, tuple] | None = None
        self._reward_model: tuple[str | None, tuple] | None = None

    def generator(self, adapter_dir: str | None):
        """The generator for sampling: the hand-written decoder (adapter merged, in the sampling precision) or vLLM
        on CUDA (sampling.backend, lab/vllm_backend.py)."""
        if self._generator is None or self._generator[0] != adapter_dir:
            self._generator = None
            gc.collect()
            self._generator = (adapter_dir, load_backend_sampler(self.config.model, self.config.sampling, adapter_dir))
        return self._generator[1]

    def reward_model(self, adapter_dir: str):
        if self._reward_model is None or self._reward_model[0] != adapter_dir:
            self._reward_model = None
            gc.collect()
            self._reward_model = (adapter_dir, load_reward_model(self.config.model, adapter_dir=adapter_dir))
        return self._reward_model[1]

    def release(self) -> None:
        """Free both models (before a training stage loads its own); a vLLM sampler's process ends."""
        sampler = self._generator[1][0] if self._generator else None
        close = getattr(sampler, "close", None)
        if close is not None:
            close()
        self._generator = self._reward_model = None
        gc.collect()

    def __enter__(self) -> ModelCache:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class RunContext:
    """One run of one lab directory: its config, the open store, its id, its pool's id and the shared
    model cache."""
    config: LabConfig
    store: Store
    run_id: int
    models: ModelCache = field(default=None)  # type: ignore[assignment]
    progress: bool = False
    log: Callable[[str], None] = print
    bars: Callable[..., object] | None = None
    """Makes the progress bars of long operations (JobConsole.progress on the command line); without it
    they are tqdm's, shown when `progress`."""
    pool_id: int = field(default=None)  # type: ignore[assignment]
    """The run whose problems, generators and candidates this run uses (the module docstring): run_id
    itself unless config.loop.candidates_from names another."""

    def __post_init__(self) -> None:
        if self.models is None:
            self.models = ModelCache(self.config)
        if self.pool_id is None:
            source = self.config.loop.candidates_from
            self.pool_id = self.store.run_id(source) if source and source != self.config.run_name else self.run_id

    @classmethod
    def open(cls, config: LabConfig, store: Store, **kwargs) -> RunContext:
        """The run called config.run_name, created with this config when new (a stored run started with
        another config is continued with this one, which the store records as the run's config from
        then on, and the log says what changed)."""
        run_id = store.create_run(config.run_name, config.preset, config.to_json())
        run = cls(config, store, run_id, **kwargs)
        changed = config_difference({"stored": store.run(config.run_name)["config_json"], "now": config.to_json()})
        if changed:
            fields = "; ".join(f"{c['field']}: {c['by_run']['stored']} -> {c['by_run']['now']}" for c in changed)
            run.log(f"note: run {config.run_name!r} was started with a different configuration; continuing it "
                    f"with this one ({fields})")
            store.set_run_config(run_id, config.to_json())
        return run

    @classmethod
    def existing(cls, config: LabConfig, store: Store, **kwargs) -> RunContext:
        """An existing run (StoreError naming the known runs when there is none)."""
        return cls(config, store, store.run_id(config.run_name), **kwargs)

    @property
    def name(self) -> str:
        return self.config.run_name

    def checkpoint_dir(self, iteration: int, kind: str) -> Path:
        return self.config.run_dir / f"iter-{iteration}" / kind

    @property
    def shares_pool(self) -> bool:
        """True when another run's candidates are this run's (loop.candidates_from)."""
        return self.pool_id != self.run_id

    def problems(self, role: str) -> list[Problem]:
        return self.store.run_problems(self.pool_id, role)

    def progress_bar(self, total: int | None, desc: str, unit: str = "it"):
        """A tqdm-like bar (update(n), close(), a context manager) for `total` units of work."""
        if self.bars is not None:
            return self.bars(total=total, desc=desc, unit=unit)
        return tqdm(total=total, desc=desc, unit=unit, disable=not self.progress)

    def on_step(self, desc: str) -> Callable[[int, int], None]:
        """A trainer step callback (step, max_steps) that moves a progress bar, made on the first step."""
        bar, shown = None, 0

        def advance(step: int, max_steps: int) -> None:
            nonlocal bar, shown
            if bar is None:
                bar = self.progress_bar(max_steps if max_steps > 0 else None, desc, unit="step")
            bar.update(step - shown)
            shown = step
            if 0 < max_steps <= step:
                bar.close()
        return advance

    def on_log(self, iteration: int, stage: str) -> Callable[[dict], None]:
        """A trainer log callback that stores the numbers of each logged step as metrics."""
        def record(values: dict) -> None:
            numbers = {k: float(v) for k, v in values.items() if k != "step" and isinstance(v, (int, float))}
            if numbers:
                self.store.log_metrics(self.run_id, iteration, stage, int(values.get("step", 0)), numbers)
        return record

    def generator_iteration(self, iteration: int) -> int | None:
        """The iteration whose generator checkpoint `iteration` uses (the newest at or before it),
        None for the base model."""
        return next((k for k in range(iteration, -1, -1) if self.store.checkpoint(self.pool_id, "generator", k)), None)

    def generator_at(self, iteration: int) -> tuple[str, str | None]:
        """(model name for candidates, adapter dir) of the generator used in `iteration`: the newest
        generator checkpoint at or before it, else the base model."""
        made_in = self.generator_iteration(iteration)
        if made_in is None:
            return self.config.model.generator, None
        checkpoint = self.store.checkpoint(self.pool_id, "generator", made_in)
        if checkpoint is None:
            raise RuntimeError(f"run {self.name!r} has no generator checkpoint for iteration {made_in}")
        return checkpoint["version"], checkpoint["path"]

    def reward_model_path(self, iteration: int, variant: str = "") -> str:
        checkpoint = self.store.checkpoint(self.run_id, "reward_model", iteration, variant)
        if checkpoint is None:
            named = f" ({variant})" if variant else ""
            raise RuntimeError(f"run {self.name!r} has no reward model checkpoint{named} for iteration {iteration}")
        return checkpoint["path"]

    def trained_iterations(self) -> list[int]:
        """Iterations whose reward model is trained (0 = the bootstrap RM)."""
        return [k for k in self.store.iterations(self.run_id)
                if self.store.checkpoint(self.run_id, "reward_model", k) is not None]


def iteration_seed(seed: int, iteration: int) -> int:
    """The sampling seed of an iteration: a generator that did not change between iterations (PPO
    off) still draws new samples, and a resumed iteration draws the same ones."""
    return seed + 7919 * iteration


def sample_candidates(run: RunContext, iteration: int, problems: list[Problem], *,
                      origins: tuple[str, ...] = ("sample",), num_samples: int | None = None,
                      generator: tuple[str, str | None] | None = None, models: ModelCache | None = None) -> int:
    """Per problem, `num_samples` samples (origin 'sample'; default sampling.num_samples) and/or one
    greedy answer (origin 'greedy') from `generator` = (model name, adapter dir), by default the
    iteration's generator (from `models`, by default the run's cache; on the cluster's replicas when
    cluster.address is set), seeded per iteration (`iteration_seed`); each problem's candidates are
    written as soon as it is done, and complete problems are skipped. Returns how many were added."""
    model_name, adapter_dir = generator or run.generator_at(iteration)
    models = models or run.models
    sampling = dataclasses.replace(run.config.sampling, seed=iteration_seed(run.config.sampling.seed, iteration))
    added = 0
    for origin in origins:
        count, greedy = (1, True) if origin == "greedy" else (num_samples or run.config.sampling.num_samples, False)
        have = run.store.candidate_counts_by_problem(run.pool_id, iteration=iteration, origin=origin, model=model_name)
        missing = [p for p in problems if have.get(p.id, 0) < count]
        if not missing:
            continue

        def write(problem_id: str, candidates: list, origin=origin) -> None:
            nonlocal added
            run.store.add_candidates(run.pool_id, iteration, [
                {"problem_id": c.problem_id, "origin": origin, "model": model_name, "sample_index": c.sample_index,
                 "completion": c.completion, "temperature": c.temperature, "top_p": c.top_p, "seed": c.seed,
                 "mean_logprob": c.mean_logprob, "num_tokens": c.num_tokens}
                for c in candidates
            ])
            added += len(candidates)
            bar.update(len(candidates))

        with run.progress_bar(len(missing) * count, f"sample ({origin})", unit="cand") as bar:
            if run.config.cluster.address:
                per_unit = max(1, run.config.cluster.sampling_unit_batches * sampling.batch_size // count)
                def write_unit(_: int, finished: list) -> None:
                    for problem_id, candidates in finished:
                        write(problem_id, candidates)

                cluster.run_on_replicas(
                    run.config.cluster, GeneratorReplica, (run.config.model, sampling, adapter_dir), "sample",
                    [(missing[start:start + per_unit], count, greedy) for start in range(0, len(missing), per_unit)],
                    write_unit)
            else:
                model, tokenizer = models.generator(adapter_dir)
                generation.generate(model, tokenizer, missing, sampling, num_samples=count, greedy=greedy,
                                    on_problem_done=lambda problem, candidates: write(problem.id, candidates),
                                    progress=False)
    return added


def _run_programs(run: RunContext, pending: Sequence[CandidateText], jobs: Sequence[tuple[str, str]], desc: str,
                  record: Callable[[list[CandidateText], list[ExecutionResult]], None]) -> list[ExecutionResult]:
    """Run jobs[i] = (language, program) of pending[i] in the sandbox, a chunk at a time (each chunk a task
    on some node's executor when cluster.address is set), and hand each chunk's candidates and results to
    `record`, less those the executor itself failed on (no verdict), which are returned."""
    starts = range(0, len(pending), EXECUTION_CHUNK)
    chunks = [pending[start:start + EXECUTION_CHUNK] for start in starts]
    chunk_jobs = [list(jobs[start:start + EXECUTION_CHUNK]) for start in starts]
    failures: list[ExecutionResult] = []
    with run.progress_bar(len(pending), desc, unit="prog") as bar:
        def store(index: int, results: list) -> None:
            failures.extend(r for r in results if r.executor_error)
            kept = [(c, r) for c, r in zip(chunks[index], results) if not r.executor_error]
            record([c for c, _ in kept], [r for _, r in kept])
            bar.update(len(chunks[index]))

        if run.config.cluster.address:
            cluster.run_as_tasks(run.config.cluster, run.config.execution, chunk_jobs, store)
        else:
            with Executor(run.config.execution) as executor:
                for index, programs in enumerate(chunk_jobs):
                    store(index, executor.run_many(programs, progress=False))
    return failures


def _problems_of(run: RunContext, candidates: Sequence[CandidateText]) -> dict[str, Problem]:
    """The stored problem of each problem id among `candidates`, each read once."""
    return {problem_id: run.store.problem(problem_id)
            for problem_id in dict.fromkeys(c["problem_id"] for c in candidates)}


def execute_candidates(run: RunContext, iteration: int, problem_ids: set[str] | None = None) -> dict:
    """Execute the iteration's unexecuted candidates (of `problem_ids`, or all), a chunk at a time
    (each chunk a task on some node's executor when cluster.address is set). Failures of the executor
    itself are not verdicts: nothing is recorded for them, and the call raises after the rest is
    stored, so calling it again retries them."""
    pending = [c for c in run.store.unexecuted_candidates(run.pool_id, iteration)
               if problem_ids is None or c["problem_id"] in problem_ids]
    if not pending:
        return {"executed": 0}
    problems = _problems_of(run, pending)
    jobs = [(problems[c["problem_id"]].language, build_program(problems[c["problem_id"]], c["completion"]))
            for c in pending]
    failures = _run_programs(run, pending, jobs, "execute", lambda candidates, results: run.store.add_executions(
        [(c["id"], r) for c, r in zip(candidates, results)]))
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(pending)} runs failed inside the executor, not in the programs "
                           f"(first: {failures[0].stderr.strip()[:300]}). Nothing was recorded for them: rerun the "
                           "same command to retry; `python -m lab selftest` checks the sandbox.")
    return {"executed": len(pending)}


def check_visible_examples(run: RunContext, iteration: int, problem_ids: set[str] | None = None) -> dict:
    """Check the iteration's candidates (of `problem_ids`, or all) that have no visible-example verdict
    against their prompt's visible examples alone (examples.py: the prompt, never the hidden tests), a
    chunk at a time like execute_candidates; a prompt without examples gets a verdict of 0 examples.
    Executor failures are not recorded and raise after the rest is stored."""
    pending = [c for c in run.store.unchecked_candidates(run.pool_id, iteration)
               if problem_ids is None or c["problem_id"] in problem_ids]
    if not pending:
        return {"checked": 0}
    problems = _problems_of(run, pending)
    programs = [examples_program(problems[c["problem_id"]], truncate_at_stop(c["completion"],
                                                                            problems[c["problem_id"]].stop_tokens))
                for c in pending]
    run.store.add_example_verdicts([(c["id"], 0, None, "no examples") for c, program in zip(pending, programs)
                                    if program is None])
    shown = [(c, program) for c, program in zip(pending, programs) if program is not None]

    def record(candidates: list[CandidateText], results: list[ExecutionResult]) -> None:
        run.store.add_example_verdicts([(c["id"], len(visible_examples(problems[c["problem_id"]])), r.passed, r.status)
                                        for c, r in zip(candidates, results)])

    jobs = [(problems[c["problem_id"]].language, program) for c, program in shown]
    failures = _run_programs(run, [c for c, _ in shown], jobs, "examples", record)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(pending)} visible-example checks failed inside the executor "
                           f"(first: {failures[0].stderr.strip()[:300]}); nothing was recorded for them: "
                           "rerun to retry")
    return {"checked": len(pending)}


def score_candidates(run: RunContext, iteration: int, candidates: Sequence[CandidateRow], variant: str = "") -> int:
    """Score the given candidate rows that have no score under rm-`iteration` (or its control `variant`) yet,
    a chunk at a time (each chunk on one of the cluster's reward-model replicas when cluster.address is set).
    Returns how many were scored."""
    version = reward_model_version(run.name, iteration, variant)
    scored = run.store.scored_candidate_ids(version)
    pending = [c for c in candidates if c["id"] not in scored]
    if not pending:
        return 0
    prompts = {problem_id: problem.prompt for problem_id, problem in _problems_of(run, pending).items()}
    chunks = [pending[start:start + SCORE_CHUNK] for start in range(0, len(pending), SCORE_CHUNK)]
    items = [[(prompts[c["problem_id"]], c["completion"]) for c in chunk] for chunk in chunks]
    adapter_dir, batch_size = run.reward_model_path(iteration, variant), run.config.reward.score_batch_size
    with run.progress_bar(len(pending), f"score ({version})", unit="cand") as bar:
        def store(index: int, values: list[float]) -> None:
            run.store.add_scores(version, [(c["id"], v) for c, v in zip(chunks[index], values)])
            bar.update(len(chunks[index]))

        if run.config.cluster.address:
            cluster.run_on_replicas(run.config.cluster, RewardModelReplica, (run.config.model, adapter_dir, batch_size),
                                    "score", [(chunk_items,) for chunk_items in items], store)
        else:
            model, tokenizer = run.models.reward_model(adapter_dir)
            # shared with training: a text's frozen layers run once
            hidden = HiddenStateCache.for_reward_backbone(run.config.model)
            for index, chunk_items in enumerate(items):
                store(index, reward.score_completions(model, tokenizer, chunk_items, batch_size=batch_size,
                                                      progress=False, cache=hidden))
    return len(pending)
