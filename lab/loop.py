"""The self-training loop: resumable stages, all state in the store.

Stage order. The reward model (RM) needs preference pairs before PPO can use it, and pairs need
executed samples, so the loop opens with a bootstrap (stored as iteration 0) and then repeats:

  iteration 0 (bootstrap, once)
    sft        SFT of the generator on the MBPP-train reference solutions        -> gen-0
    sample     N samples per training problem from gen-0, + each problem's reference solution
               (origin='reference', model='reference')
    execute    run every candidate against its unit tests
    pairs      execution pairs: passing (or reference) x failing                 (kind 'execution')
    train_rm   Bradley-Terry RM on those pairs                                  -> rm-0
  iteration k = 1, 2, ...
    ppo        PPO of gen-(k-1) against rm-(k-1)                                 -> gen-k
    sample     N samples per training problem from gen-k
    execute    run them
    score      rm-(k-1) scores them (and the references, and manually labelled candidates)
    mine       hard negatives: failing candidates that rm-(k-1) ranks high (mining.py), paired
               with passing ones                                               (kind 'hard_negative')
    train_rm   continue rm-(k-1) on every pair so far                          -> rm-k; its accuracy
               on this iteration's hard-negative pairs is measured before (rm-(k-1)) and after (rm-k)
    evaluate   gen-k + rm-k on the evaluation benchmarks (evaluation.py)

Resuming. A stage marked 'done' in the store is skipped. Every write is idempotent (candidates are
unique per (iteration, problem, origin, model, index) and written a problem at a time; only
unexecuted candidates are executed and unscored ones scored; pairs are unique; a checkpoint row
is written only once its adapter directory is complete), so a stage interrupted at any point,
`kill -9` included, is simply run again and continues where it stopped.

Manual labels (from the app) win over execution verdicts whenever pairs are built (mining.py),
and pairs that a later label contradicts are left out when a RM is trained.

Checkpoints (LoRA adapters) go under config.run_dir/iter-<k>/; versions are '<run>/gen-<k>' and
'<run>/rm-<k>', and scores are stored under the RM's version.

Not covered here: the model code (models, generation, reward, sft, ppo), execution (execution.py),
the numbers of the evaluation (evaluation.py), the command line (__main__.py).
"""
from __future__ import annotations

import gc
import json
import random
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from lab import mining
from lab.config import LabConfig
from lab.problems import Problem, load_problems
from lab.store import Store

BOOTSTRAP_STAGES = ("sft", "sample", "execute", "pairs", "train_rm")
ITERATION_STAGES = ("ppo", "sample", "execute", "score", "mine", "train_rm", "evaluate")
EXECUTION_CHUNK = 32
SCORE_CHUNK = 32
REFERENCE_CHECKS = 8


def generator_version(run_name: str, iteration: int) -> str:
    return f"{run_name}/gen-{iteration}"


def reward_model_version(run_name: str, iteration: int) -> str:
    return f"{run_name}/rm-{iteration}"


# ---------------------------------------------------------------- models, loaded once and shared by stages

class ModelCache:
    """Keeps at most one generator and one reward model in memory, keyed by adapter directory."""

    def __init__(self, config: LabConfig):
        self.config = config
        self._generator: tuple[str | None, tuple] | None = None
        self._reward_model: tuple[str | None, tuple] | None = None

    def generator(self, adapter_dir: str | None):
        """The generator for sampling (models.load_sampler: adapter merged, int8 on CPU)."""
        from lab.models import load_sampler
        if self._generator is None or self._generator[0] != adapter_dir:
            self._generator = None
            gc.collect()
            self._generator = (adapter_dir, load_sampler(self.config.model, adapter_dir=adapter_dir))
        return self._generator[1]

    def reward_model(self, adapter_dir: str):
        from lab.models import load_reward_model
        if self._reward_model is None or self._reward_model[0] != adapter_dir:
            self._reward_model = None
            gc.collect()
            self._reward_model = (adapter_dir, load_reward_model(self.config.model, adapter_dir=adapter_dir))
        return self._reward_model[1]

    def release(self) -> None:
        """Free both models (before a training stage loads its own)."""
        self._generator = self._reward_model = None
        gc.collect()

    def __enter__(self) -> "ModelCache":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def generator_at(config: LabConfig, store: Store, run_id: int, iteration: int) -> tuple[str, str | None]:
    """(model name for candidates, adapter dir) of the generator used in `iteration`: the newest
    generator checkpoint at or before it, else the base model."""
    for k in range(iteration, -1, -1):
        checkpoint = store.checkpoint(run_id, "generator", k)
        if checkpoint is not None:
            return checkpoint["version"], checkpoint["path"]
    return config.model.generator, None


def reward_model_path(store: Store, run_id: int, iteration: int) -> str:
    checkpoint = store.checkpoint(run_id, "reward_model", iteration)
    if checkpoint is None:
        raise RuntimeError(f"no reward model checkpoint for iteration {iteration}")
    return checkpoint["path"]


def trained_iterations(store: Store, run_id: int) -> list[int]:
    """Iterations whose reward model is trained (0 = the bootstrap RM)."""
    return [k for k in store.iterations(run_id) if store.checkpoint(run_id, "reward_model", k) is not None]


# ---------------------------------------------------------------- store-driven work (shared with evaluation.py)

def sample_candidates(config: LabConfig, store: Store, run_id: int, iteration: int, problems: list[Problem],
                      models: ModelCache, *, progress: bool, origins: tuple[str, ...] = ("sample",),
                      num_samples: int | None = None, generator: tuple[str, str | None] | None = None) -> int:
    """Per problem, `num_samples` samples (origin 'sample'; default sampling.num_samples) and/or one
    greedy answer (origin 'greedy') from `generator` = (model name, adapter dir), by default the
    iteration's generator; each problem's candidates are written as soon as it is done, and
    complete problems are skipped. Returns how many candidates were added."""
    from lab import generation

    model_name, adapter_dir = generator or generator_at(config, store, run_id, iteration)
    added = 0
    for origin in origins:
        count, greedy = (1, True) if origin == "greedy" else (num_samples or config.sampling.num_samples, False)
        have = {}
        for row in store.candidates(run_id, iteration=iteration, origin=origin, model=model_name):
            have[row["problem_id"]] = have.get(row["problem_id"], 0) + 1
        missing = [p for p in problems if have.get(p.id, 0) < count]
        if not missing:
            continue

        def write(problem: Problem, candidates: list, origin=origin) -> None:
            nonlocal added
            store.add_candidates(run_id, iteration, [
                {"problem_id": c.problem_id, "origin": origin, "model": model_name, "sample_index": c.sample_index,
                 "completion": c.completion, "temperature": c.temperature, "top_p": c.top_p, "seed": c.seed,
                 "mean_logprob": c.mean_logprob, "num_tokens": c.num_tokens}
                for c in candidates
            ])
            added += len(candidates)

        model, tokenizer = models.generator(adapter_dir)
        generation.generate(model, tokenizer, missing, config.sampling, num_samples=count, greedy=greedy,
                            on_problem_done=write, progress=progress)
    return added


def execute_candidates(config: LabConfig, store: Store, run_id: int, iteration: int, problem_ids: set[str] | None,
                       *, progress: bool) -> dict:
    """Execute the iteration's unexecuted candidates (of `problem_ids`, or all), a chunk at a time."""
    from tqdm.auto import tqdm

    from lab.execution import Executor, build_program

    pending = [c for c in store.unexecuted_candidates(run_id, iteration)
               if problem_ids is None or c["problem_id"] in problem_ids]
    if not pending:
        return {"executed": 0}
    problems: dict[str, Problem] = {}
    failures = []
    with Executor(config.execution) as executor, tqdm(total=len(pending), desc="execute", disable=not progress) as bar:
        for start in range(0, len(pending), EXECUTION_CHUNK):
            chunk = pending[start:start + EXECUTION_CHUNK]
            for c in chunk:
                problems.setdefault(c["problem_id"], store.problem(c["problem_id"]))
            jobs = [(problems[c["problem_id"]].language, build_program(problems[c["problem_id"]], c["completion"]))
                    for c in chunk]
            results = executor.run_many(jobs, progress=False)
            failures += [r for r in results if r.executor_error]
            store.add_executions([(c["id"], r) for c, r in zip(chunk, results) if not r.executor_error])
            bar.update(len(chunk))
    if failures:  # not a verdict on the programs: leave them unexecuted, so rerunning retries them
        raise RuntimeError(f"{len(failures)} of {len(pending)} runs failed inside the executor, not in the programs "
                           f"(first: {failures[0].stderr.strip()[:300]}). Nothing was recorded for them: rerun the "
                           "same command to retry; `python -m lab selftest` checks the sandbox.")
    return {"executed": len(pending)}


def score_candidates(config: LabConfig, store: Store, run_id: int, reward_model: str, adapter_dir: str,
                     candidates: list[dict], models: ModelCache, *, progress: bool) -> int:
    """Score the given candidate rows that have no score under `reward_model` yet, a chunk at a time."""
    from lab import reward

    scored = {c["candidate_id"] for c in store.db.execute(
        "SELECT candidate_id FROM scores WHERE reward_model = ?", (reward_model,)).fetchall()}
    pending = [c for c in candidates if c["id"] not in scored]
    if not pending:
        return 0
    from tqdm.auto import tqdm

    model, tokenizer = models.reward_model(adapter_dir)
    prompts: dict[str, str] = {}
    for start in tqdm(range(0, len(pending), SCORE_CHUNK), desc=f"score ({reward_model})", disable=not progress):
        chunk = pending[start:start + SCORE_CHUNK]
        for c in chunk:
            prompts.setdefault(c["problem_id"], store.problem(c["problem_id"]).prompt)
        values = reward.score_completions(model, tokenizer, [(prompts[c["problem_id"]], c["completion"]) for c in chunk],
                                          batch_size=config.reward.score_batch_size, progress=False)
        store.add_scores(reward_model, [(c["id"], v) for c, v in zip(chunk, values)])
    return len(pending)


# ---------------------------------------------------------------- the loop

@dataclass
class _Run:
    config: LabConfig
    store: Store
    run_id: int
    models: ModelCache
    progress: bool
    log: Callable[[str], None]

    @property
    def name(self) -> str:
        return self.config.run_name

    def checkpoint_dir(self, iteration: int, kind: str) -> Path:
        return self.config.run_dir / f"iter-{iteration}" / kind

    def train_problems(self) -> list[Problem]:
        return self.store.run_problems(self.run_id, "train")

    def on_log(self, iteration: int, stage: str) -> Callable[[dict], None]:
        def record(values: dict) -> None:
            numbers = {k: float(v) for k, v in values.items() if k != "step" and isinstance(v, (int, float))}
            if numbers:
                self.store.log_metrics(self.run_id, iteration, stage, int(values.get("step", 0)), numbers)
        return record


def select_train_problems(config: LabConfig) -> list[Problem]:
    """MBPP problems of `data.train_splits` plus user files, seeded shuffle, capped at max_train_problems."""
    problems = [p for split in config.data.train_splits
                for p in load_problems("mbpp", split=split, purpose="train", data=config.data)]
    for path in config.data.extra_problems:
        problems += load_problems(f"jsonl:{path}", purpose="train", data=config.data)
    random.Random(config.data.seed).shuffle(problems)
    return problems[: config.data.max_train_problems]


def run_loop(config: LabConfig, iterations: int | None = None, *, progress: bool = True,
             log: Callable[[str], None] = print, until: tuple[int, str] | None = None) -> dict:
    """Run (or resume) the loop until config.loop.iterations iterations are done, or `iterations`
    more than are done now. `until=(iteration, stage)` stops as soon as that stage is done (running
    the iterations up to it if needed): the notebooks step through the loop this way. Returns the
    summary (see `summarize`)."""
    if until is not None:
        until = (until[0], until[1])
        stage_names = BOOTSTRAP_STAGES if until[0] == 0 else ITERATION_STAGES
        if until[0] < 0 or until[1] not in stage_names:
            raise ValueError(f"until={until!r}: the stages of iteration {until[0]} are {', '.join(stage_names)}")
    with Store(config.store_path) as store, ModelCache(config) as models:
        run_id = store.create_run(config.run_name, config.preset, config.to_json())
        stored_config = next(r["config_json"] for r in store.runs() if r["id"] == run_id)
        if json.loads(stored_config) != json.loads(config.to_json()):
            log(f"note: run {config.run_name!r} was started with a different configuration; continuing it with this one")
        run = _Run(config, store, run_id, models, progress, log)
        if not run.train_problems():
            store.add_problems(select_train_problems(config), run_id, role="train")
        done = completed_iterations(store, run_id)
        target = config.loop.iterations if iterations is None else len(done) + iterations
        if until is not None:
            target = max(target, until[0])
        stop = f", stopping after stage {until[1]} of iteration {until[0]}" if until else ""
        log(f"run {config.run_name!r}: {len(run.train_problems())} training problems, "
            f"{len(done)} iteration(s) done, target {target}{stop}; artefacts in {config.run_dir}")
        for k in range(target + 1):
            for name, work in _stage_work(run, k).items():
                _stage(run, k, name, work)
                if (k, name) == until:
                    return summarize(store, run_id, config)
        return summarize(store, run_id, config)


def completed_iterations(store: Store, run_id: int) -> list[int]:
    return [k for k in store.iterations(run_id) if k >= 1 and store.stage_status(run_id, k, "evaluate") == "done"]


def _stage(run: _Run, iteration: int, name: str, work: Callable[[], dict]) -> None:
    if run.store.stage_status(run.run_id, iteration, name) == "done":
        return
    run.store.ensure_iteration(run.run_id, iteration)
    run.log(f"[iteration {iteration}] {name} ...")
    run.store.start_stage(run.run_id, iteration, name)
    started = time.time()
    try:
        info = work() or {}
    except BaseException as error:
        run.store.finish_stage(run.run_id, iteration, name, "failed", {"error": f"{type(error).__name__}: {error}"})
        raise
    info["seconds"] = round(time.time() - started, 1)
    run.store.finish_stage(run.run_id, iteration, name, "done", info)
    run.log(f"[iteration {iteration}] {name} done: {_format_info(info)}")


def _stage_work(run: _Run, k: int) -> dict[str, Callable[[], dict]]:
    """Iteration k's stages in order, by name: BOOTSTRAP_STAGES for k = 0, else ITERATION_STAGES."""
    if k == 0:
        return {
            "sft": lambda: _train_sft(run),
            "sample": lambda: _sample_train(run, 0, with_references=True),
            "execute": lambda: _execute_bootstrap(run),
            "pairs": lambda: _execution_pairs(run),
            "train_rm": lambda: _train_reward_model(run, 0),
        }
    return {
        "ppo": lambda: _train_ppo(run, k),
        "sample": lambda: _sample_train(run, k, with_references=False),
        "execute": lambda: execute_candidates(run.config, run.store, run.run_id, k, None, progress=run.progress),
        "score": lambda: _score_pool(run, k),
        "mine": lambda: _mine(run, k),
        "train_rm": lambda: _train_reward_model(run, k),
        "evaluate": lambda: _evaluate(run, k),
    }


# ---------------------------------------------------------------- stages

def _fresh_dir(path: Path) -> Path:
    """An empty directory for a training stage's output (a killed attempt's leftovers are dropped)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _train_sft(run: _Run) -> dict:
    if not run.config.sft.enabled:
        return {"skipped": "sft.enabled is false"}
    from lab.sft import train_sft

    examples = [(p.prompt, p.reference) for p in run.train_problems() if p.reference]
    run.models.release()
    out = _fresh_dir(run.checkpoint_dir(0, "generator"))
    metrics = train_sft(run.config, examples, str(out), on_log=run.on_log(0, "sft"))
    run.store.add_checkpoint(run.run_id, 0, "generator", generator_version(run.name, 0), str(out), metrics)
    return {"examples": len(examples), **_numbers(metrics)}


def _sample_train(run: _Run, k: int, *, with_references: bool) -> dict:
    problems = run.train_problems()
    if with_references:
        run.store.add_candidates(run.run_id, k, [
            {"problem_id": p.id, "origin": "reference", "model": "reference", "sample_index": 0, "completion": p.reference}
            for p in problems if p.reference
        ])
    added = sample_candidates(run.config, run.store, run.run_id, k, problems, run.models, progress=run.progress,
                              num_samples=run.config.loop.train_samples)
    return {"problems": len(problems), "candidates_added": added}


def _execute_bootstrap(run: _Run) -> dict:
    """Check first that reference solutions pass (a broken sandbox would otherwise record every
    candidate as failing, for good), then execute everything."""
    from lab.execution import Executor, build_program

    references = [p for p in run.train_problems() if p.reference][:REFERENCE_CHECKS]
    with Executor(run.config.execution) as executor:
        results = executor.run_many([(p.language, build_program(p, p.reference)) for p in references], progress=False)
    if references and not any(r.passed for r in results):
        raise RuntimeError(f"execution looks broken: none of {len(references)} reference solutions passes its tests "
                           f"(first: {results[0].status}, stderr {results[0].stderr[-300:]!r}); check "
                           "`python -m lab selftest` or set execution.isolation")
    return execute_candidates(run.config, run.store, run.run_id, 0, None, progress=run.progress)


def candidate_pool(store: Store, run_id: int, k: int, reward_model: str | None) -> list[dict]:
    """The candidates pairs are built from in iteration k (with their score under `reward_model`):
    its training samples, the reference solutions, and every manually labelled training candidate
    (whatever its iteration)."""
    return [c for c in store.candidates(run_id, role="train", reward_model=reward_model)
            if c["iteration"] == k or c["origin"] == "reference" or c["label"] is not None]


def _execution_pairs(run: _Run) -> dict:
    pool = candidate_pool(run.store, run.run_id, 0, None)
    pairs = mining.execution_pairs(pool, run.config.reward.max_pairs_per_problem)
    added = run.store.add_pairs(run.run_id, 0, pairs)
    return {"pairs": len(pairs), "pairs_added": added}


def _score_pool(run: _Run, k: int) -> dict:
    version = reward_model_version(run.name, k - 1)
    pool = candidate_pool(run.store, run.run_id, k, version)
    scored = score_candidates(run.config, run.store, run.run_id, version, reward_model_path(run.store, run.run_id, k - 1),
                              pool, run.models, progress=run.progress)
    return {"reward_model": version, "scored": scored}


def _mine(run: _Run, k: int) -> dict:
    previous = reward_model_version(run.name, k - 1)
    pool = candidate_pool(run.store, run.run_id, k, previous)
    pairs = mining.hard_negative_pairs(pool, run.config.mining)
    added = run.store.add_pairs(run.run_id, k, pairs)
    problem_of = {c["id"]: c["problem_id"] for c in pool}
    reward_of = {c["id"]: c["reward"] for c in pool if c["reward"] is not None}
    problems = {c["problem_id"] for c in pool}
    return {
        "hard_negatives": len({rejected for _, rejected, _ in pairs}),
        "problems_with_hard_negatives": len({problem_of[rejected] for _, rejected, _ in pairs}),
        "problems": len(problems),
        "pairs": len(pairs),
        "pairs_added": added,
        "accuracy_before": mining.pairwise_accuracy_from_scores(pairs, reward_of),
        "reward_model": previous,
    }


def _train_reward_model(run: _Run, k: int) -> dict:
    from lab.reward import PreferencePair, train_reward_model

    labels = {cid: row["label"] for cid, row in run.store.current_labels(run.run_id).items()}
    rows = run.store.pairs(run.run_id, up_to_iteration=k)
    kept = [r for r in rows if mining.pair_is_consistent(r, labels)]
    pairs = [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in kept]
    if not pairs:
        raise RuntimeError(
            f"no preference pairs to train the reward model on in iteration {k}: no training problem has both "
            "a passing and a failing candidate. Use more training problems (data.max_train_problems) or samples "
            "(loop.train_samples)")
    mined = [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in kept
             if r["iteration"] == k and r["kind"] != "execution"] if k >= 1 else None
    init = reward_model_path(run.store, run.run_id, k - 1) if k >= 1 else None
    run.models.release()
    out = _fresh_dir(run.checkpoint_dir(k, "reward_model"))
    metrics = train_reward_model(run.config, pairs, str(out), eval_pairs=mined or None, init_adapter=init,
                                 on_log=run.on_log(k, "train_rm"))
    info = {"pairs": len(pairs), "pairs_dropped_by_labels": len(rows) - len(kept), **_numbers(metrics)}
    if mined:
        info["hard_negative_accuracy_after"] = metrics.get("eval_accuracy")
        info["hard_negative_accuracy_before"] = _stage_info(run.store, run.run_id, k, "mine").get("accuracy_before")
    run.store.add_checkpoint(run.run_id, k, "reward_model", reward_model_version(run.name, k), str(out), info)
    return info


def _train_ppo(run: _Run, k: int) -> dict:
    if not run.config.ppo.enabled:
        return {"skipped": "ppo.enabled is false: the generator stays as it is"}
    from lab.ppo import train_ppo

    _, policy = generator_at(run.config, run.store, run.run_id, k - 1)
    problems = run.train_problems()
    prompts = [p.prompt for p in problems]
    run.models.release()
    out = _fresh_dir(run.checkpoint_dir(k, "generator"))
    metrics = train_ppo(run.config, prompts, str(out), policy_adapter=policy, stops=[p.stop_tokens for p in problems],
                        reward_adapter=reward_model_path(run.store, run.run_id, k - 1), on_log=run.on_log(k, "ppo"))
    run.store.add_checkpoint(run.run_id, k, "generator", generator_version(run.name, k), str(out), metrics)
    return {"prompts": len(prompts), **_numbers(metrics)}


def _evaluate(run: _Run, k: int) -> dict:
    from lab import evaluation

    rows = evaluation.evaluate_iteration(run.config, run.store, run.run_id, k, run.models, progress=run.progress)
    info = {f"{r['benchmark']}-{r['language']}/{r['method']}": round(r["pass_at_1"], 4) for r in rows}
    for eval_set, ranking in evaluation.ranking_report(run.config, run.store, run.run_id, k).items():
        info.update({f"{eval_set}/{method}_ranking": value for method, value in ranking.items()})
    return info


# ---------------------------------------------------------------- summary

def _numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def _stage_info(store: Store, run_id: int, iteration: int, name: str) -> dict:
    row = next((r for r in store.stages(run_id) if r["iteration"] == iteration and r["name"] == name), None)
    return json.loads(row["info_json"] or "{}") if row else {}


def _format_info(info: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())


def summarize(store: Store, run_id: int, config: LabConfig) -> dict:
    """Stages with timings and info, counts per iteration, RM accuracies and the evaluation rows."""
    def position(row: dict) -> tuple[int, int]:
        names = BOOTSTRAP_STAGES if row["iteration"] == 0 else ITERATION_STAGES
        return row["iteration"], names.index(row["name"]) if row["name"] in names else len(names)

    stages = []
    for row in sorted(store.stages(run_id), key=position):
        seconds = None
        if row["finished_at"]:
            seconds = (datetime.fromisoformat(row["finished_at"]) - datetime.fromisoformat(row["started_at"])).total_seconds()
        stages.append({"iteration": row["iteration"], "name": row["name"], "status": row["status"], "seconds": seconds,
                       "info": json.loads(row["info_json"] or "{}")})
    counts = [dict(r) for r in store.db.execute(
        "SELECT c.iteration, rp.role, COUNT(*) AS candidates, COUNT(e.candidate_id) AS executed, "
        "COALESCE(SUM(e.passed), 0) AS passing FROM candidates c "
        "JOIN run_problems rp ON rp.run_id = c.run_id AND rp.problem_id = c.problem_id "
        "LEFT JOIN executions e ON e.candidate_id = c.id WHERE c.run_id = ? "
        "GROUP BY c.iteration, rp.role ORDER BY c.iteration, rp.role", (run_id,))]
    pairs = [dict(r) for r in store.db.execute(
        "SELECT iteration, kind, COUNT(*) AS pairs FROM pairs WHERE run_id = ? GROUP BY iteration, kind ORDER BY iteration, kind",
        (run_id,))]
    from lab.evaluation import table_markdown
    evaluations = store.evaluations(run_id)
    return {
        "run": config.run_name, "preset": config.preset, "store": str(config.store_path), "run_dir": str(config.run_dir),
        "iterations_done": completed_iterations(store, run_id), "stages": stages, "candidates": counts, "pairs": pairs,
        "evaluations": evaluations, "table_markdown": table_markdown(evaluations),
    }


def format_summary(summary: dict) -> str:
    lines = [f"== run {summary['run']!r} (preset {summary['preset']}): "
             f"{len(summary['iterations_done'])} iteration(s) done, store {summary['store']}", "", "stages:"]
    for stage in summary["stages"]:
        seconds = f"{stage['seconds']:7.1f}s" if stage["seconds"] is not None else "      - "
        info = {k: v for k, v in stage["info"].items() if k != "seconds" and "/" not in k}
        lines.append(f"  iter {stage['iteration']} {stage['name']:9s} {stage['status']:7s} {seconds}  {_format_info(info)}")
    total = sum(stage["seconds"] or 0 for stage in summary["stages"])
    lines.append(f"  all stages               {total:7.1f}s  ({total / 60:.1f} min)")
    lines.append("")
    lines.append("candidates (iteration, role: total / executed / passing):")
    for row in summary["candidates"]:
        lines.append(f"  iter {row['iteration']} {row['role']:5s}: {row['candidates']} / {row['executed']} / {row['passing']}")
    lines.append("preference pairs: " + (", ".join(f"iter {r['iteration']} {r['kind']} {r['pairs']}" for r in summary["pairs"]) or "none"))
    for stage in summary["stages"]:
        info = stage["info"]
        if stage["name"] == "mine" and stage["status"] == "done":
            lines.append(f"hard negatives, iteration {stage['iteration']}: {info.get('hard_negatives')} found in "
                         f"{info.get('problems_with_hard_negatives')} of {info.get('problems')} problems")
        if stage["name"] == "train_rm" and "hard_negative_accuracy_after" in info:
            before, after = info.get("hard_negative_accuracy_before"), info.get("hard_negative_accuracy_after")
            lines.append(f"  RM accuracy on them: before retraining {_percent(before)}, after {_percent(after)}")
        for key, ranking in info.items() if stage["name"] == "evaluate" else ():
            if key.endswith("_ranking") and ranking["pairs"]:
                eval_set, method = key.removesuffix("_ranking").split("/")
                lines.append(f"ranking accuracy, iteration {stage['iteration']} {eval_set} {method}: "
                             f"{_percent(ranking['accuracy'])} of {ranking['pairs']} (passing, failing) sample pairs")
    lines += ["", summary["table_markdown"]]
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
