"""The self-training loop: resumable stages, all state in the store.

Stage order. The reward model (RM) needs preference pairs before PPO can use it, and pairs need
executed samples, so the loop opens with a bootstrap (stored as iteration 0) and then repeats:

  iteration 0 (bootstrap, once)
    sft        SFT of the generator on the MBPP-train reference solutions        -> gen-0
    sample     N samples per training problem from gen-0 (+ each problem's reference solution,
               origin 'reference', only with reward.reference_pairs)
    execute    run every candidate against its unit tests
    pairs      execution pairs: passing x failing, length-balanced              (kind 'execution')
    train_rm   Bradley-Terry RM on those pairs                                  -> rm-0
    validate   rm-0 measured on held-out MBPP validation problems (evaluation.measure_heldout)
  iteration k = 1, 2, ...
    policy     PPO (lab/ppo.py) or RLOO (lab/rloo.py) of gen-(k-1) against rm-(k-1) and/or the
               training problems' tests, KL to gen-0 (policy.method, policy.reward)  -> gen-k
    sample     N samples per training problem from gen-k (loop.resample='mixed': only on the problems
               whose earlier candidates both pass and fail, see resampled_problems)
    execute    run them
    score      rm-(k-1) scores them (and the references, and manually labelled candidates)
    mine       hard negatives: failing candidates that rm-(k-1) ranks high (mining.py), paired
               with passing ones                                               (kind 'hard_negative')
    train_rm   continue rm-(k-1) on every pair so far                          -> rm-k
    validate   rm-k held out, with its accuracy on the held-out problems' hard negatives before
               (rm-(k-1)) and after (rm-k) retraining
    evaluate   gen-k + rm-k on the evaluation benchmarks (evaluation.py)

Resuming. A stage marked 'done' in the store is skipped; every stage's work is idempotent (see
stages.py), so a stage interrupted at any point, `kill -9` included, is simply run again; the policy
stage continues from the last step it saved.

Manual labels (from the app) win over execution verdicts whenever pairs are built (mining.py),
and pairs that a later label contradicts are left out when a RM is trained (curation.training_pairs,
the same rule an export of the curated dataset follows).

Checkpoints (LoRA adapters) go under config.run_dir/iter-<k>/. With cluster.train_processes set, the
sft, train_rm and policy stages each run as an `accelerate launch` job (training_jobs.py) that the stage
waits for; sample, execute and score fan out over Ray with cluster.address (stages.py).

Not covered here: the store-driven operations and run context (stages.py), the model code
(models, generation, reward, sft, policy, ppo, rloo), the measures (evaluation.py), the summary a run
prints (run_summary.py), the command line (__main__.py).
"""
from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lab import evaluation, generators, mining
from lab.benchmarks import sampling_note
from lab.config import LabConfig, UsageError
from lab.console import JobConsole
from lab.curation import training_pairs
from lab.estimate import JobEstimate, estimate_job, save_estimate
from lab.execution import Executor, build_program
from lab.launcher import ESTIMATE_FILE
from lab.measures import HELDOUT_SET
from lab.ppo import train_ppo
from lab.problems import Problem, load_problems
from lab.records import CandidateRow
from lab.reward import PreferencePair, train_reward_model
from lab.rloo import train_rloo
from lab.roles import check_roles, leave_out_near_duplicates, near_duplicate_note, training_splits
from lab.run_summary import (
    BOOTSTRAP_STAGES,
    ITERATION_STAGES,
    completed_iterations,
    format_info,
    summarize,
    summary_info,
)
from lab.sft import train_sft
from lab.stages import (
    ModelCache,
    RunContext,
    check_visible_examples,
    execute_candidates,
    generator_version,
    iteration_seed,
    reward_model_version,
    sample_candidates,
    score_candidates,
)
from lab.store import Store
from lab.training_jobs import train

EARLIER_STAGE_NAMES = {"policy": "ppo"}
"""Stages that runs stored before a rename hold under their old name: done there, they are done."""
POLICY_TRAINERS = {"ppo": train_ppo, "rloo": train_rloo}
REFERENCE_CHECKS = 8


def select_train_problems(config: LabConfig) -> list[Problem]:
    """The training problems (`train_problem_selection`)."""
    return train_problem_selection(config)[0]


def train_problem_selection(config: LabConfig) -> tuple[list[Problem], str | None]:
    """(MBPP problems of roles.training_splits plus user files, less those that duplicate or nearly
    duplicate a validation or evaluation problem, seeded shuffle, capped at max_train_problems; a note
    naming what was left out, or None)."""
    problems = [p for split in training_splits(config.data)
                for p in load_problems("mbpp", split=split, purpose="train", data=config.data)]
    for path in config.data.extra_problems:
        problems += load_problems(f"jsonl:{path}", purpose="train", data=config.data)
    evaluated = [p for problems in evaluation.eval_problems(config).values() for p in problems]
    protected = evaluation.heldout_problems(config) + evaluated
    problems, reasons = leave_out_near_duplicates(problems, protected, config.data.near_duplicate_similarity)
    random.Random(config.data.seed).shuffle(problems)
    note = near_duplicate_note(reasons, "training", "validation or evaluation") if reasons else None
    return problems[: config.data.max_train_problems], note


def open_run(config: LabConfig, store: Store, models: ModelCache, *, progress: bool,
             log: Callable[[str], None], bars: Callable[..., object] | None = None) -> RunContext:
    """The run's context, its training and held-out problems linked on first use; refused when its
    problems would train, validate and evaluate on the same (or nearly the same) problems (roles.py)."""
    run = RunContext.open(config, store, models=models, progress=progress, log=log, bars=bars)
    if not run.problems("validation"):
        store.add_problems(evaluation.heldout_problems(config), run.pool_id, role="validation")
    if not run.problems("train"):
        problems, note = train_problem_selection(config)
        if note:
            log(note)
        store.add_problems(problems, run.pool_id, role="train")
    evaluated = [p for ps in evaluation.eval_problems(config).values() for p in ps] + run.problems("eval")
    check_roles({"train": run.problems("train"), "validation": run.problems("validation"), "eval": evaluated},
                config.data.near_duplicate_similarity)
    return run


def run_loop(config: LabConfig, iterations: int | None = None, *, progress: bool = True,
             log: Callable[[str], None] = print, until: tuple[int, str] | None = None,
             console: JobConsole | None = None) -> dict:
    """Run (or resume) the loop until config.loop.iterations iterations are done, or `iterations`
    more than are done now. `until=(iteration, stage)` stops as soon as that stage is done (running
    the iterations up to it if needed): the notebooks step through the loop this way. With a
    `console` (the command line's), each stage is one line with its estimated time and its summary,
    its long operations show the console's progress bar, and the rest goes to the console's log file.
    Returns the summary (see `summarize`)."""
    if until is not None:
        until = (until[0], until[1])
        stage_names = BOOTSTRAP_STAGES if until[0] == 0 else ITERATION_STAGES
        if until[0] < 0 or until[1] not in stage_names:
            raise UsageError(f"until={until!r}: the stages of iteration {until[0]} are {', '.join(stage_names)}")
    with Store(config.store_path) as store, ModelCache(config) as models:
        run = open_run(config, store, models, progress=progress, log=log, bars=console.progress if console else None)
        done = completed_iterations(store, run.run_id)
        target = config.loop.iterations if iterations is None else len(done) + iterations
        if until is not None:
            target = max(target, until[0])
        stop = f", stopping after stage {until[1]} of iteration {until[0]}" if until else ""
        log(f"run {config.run_name!r}: {len(run.problems('train'))} training problems, "
            f"{len(run.problems('validation'))} held-out validation problems, "
            f"{len(done)} iteration(s) done, target {target}{stop}; artefacts in {config.run_dir}")
        log(sampling_note(config.model))
        estimate = estimate_job(config, iterations=target) if console else None
        if estimate is not None:
            save_estimate(estimate, config.run_dir / ESTIMATE_FILE)
        for k in range(target + 1):
            for name, work in stage_work(run, k).items():
                run_stage(run, k, name, work, console, estimate)
                if (k, name) == until:
                    return summarize(store, run.run_id, config)
        return summarize(store, run.run_id, config)


def run_stage(run: RunContext, iteration: int, name: str, work: Callable[[], dict], console: JobConsole | None = None,
              estimate: JobEstimate | None = None) -> None:
    """Run one stage of the run unless the store marks it done (under its name, or the name a run stored
    before a rename used): its status, times and returned info are recorded (a failure too, with its
    error), so an interrupted stage runs again on the next call."""
    names = (name, EARLIER_STAGE_NAMES[name]) if name in EARLIER_STAGE_NAMES else (name,)
    if any(run.store.stage_status(run.run_id, iteration, stored) == "done" for stored in names):
        return
    run.store.ensure_iteration(run.run_id, iteration)
    if console is None:
        run.log(f"[iteration {iteration}] {name} ...")
        info = _record_stage(run, iteration, name, work)
        run.log(f"[iteration {iteration}] {name} done: {format_info(info)}")
        return
    with console.stage(iteration, name, estimate.seconds(iteration, name) if estimate else None) as shown:
        info = _record_stage(run, iteration, name, work)
        shown.summary = format_info(summary_info(info))


def _record_stage(run: RunContext, iteration: int, name: str, work: Callable[[], dict]) -> dict:
    run.store.start_stage(run.run_id, iteration, name)
    started = time.time()
    try:
        info = work() or {}
    except KeyboardInterrupt:
        run.store.finish_stage(run.run_id, iteration, name, "cancelled",
                               {"error": "interrupted (Ctrl-C, or cancelled from the app); rerun to resume"})
        raise
    except BaseException as error:
        run.store.finish_stage(run.run_id, iteration, name, "failed", {"error": f"{type(error).__name__}: {error}"})
        raise
    info["seconds"] = round(time.time() - started, 1)
    run.store.finish_stage(run.run_id, iteration, name, "done", info)
    return info


def stage_work(run: RunContext, k: int) -> dict[str, Callable[[], dict]]:
    """Iteration k's stages in order, by name: BOOTSTRAP_STAGES for k = 0, else ITERATION_STAGES."""
    if k == 0:
        return {
            "sft": lambda: _train_sft(run),
            "sample": lambda: _sample_train(run, 0),
            "execute": lambda: _execute_bootstrap(run),
            "pairs": lambda: _execution_pairs(run),
            "train_rm": lambda: _train_reward_model(run, 0),
            "validate": lambda: evaluation.measure_heldout(run, 0),
        }
    return {
        "policy": lambda: _train_policy(run, k),
        "sample": lambda: _sample_train(run, k),
        "execute": lambda: _execute_train(run, k),
        "score": lambda: _score_pool(run, k),
        "mine": lambda: _mine(run, k),
        "train_rm": lambda: _train_reward_model(run, k),
        "validate": lambda: evaluation.measure_heldout(run, k),
        "evaluate": lambda: _evaluate(run, k),
    }


# ---------------------------------------------------------------- stages

def _fresh_dir(path: Path) -> Path:
    """An empty directory for a training stage's output (a killed attempt's leftovers are dropped)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _train_sft(run: RunContext) -> dict:
    """SFT, then the gate (lab/generators.py): the SFT'd model is measured against the base model on the
    held-out validation problems and becomes gen-0 only as `sft.keep` says."""
    keep = run.config.sft.keep
    if keep not in generators.SFT_KEEP:
        raise UsageError(f"sft.keep={keep!r}: choose one of {', '.join(generators.SFT_KEEP)}")
    if keep == "never":
        return {"skipped": "sft.keep is never: gen-0 is the base model"}
    if run.shares_pool:
        return {"skipped": f"the generator is run {run.config.loop.candidates_from!r}'s (loop.candidates_from)"}
    examples = [(p.prompt, p.reference) for p in run.problems("train") if p.reference]
    run.models.release()
    out = _fresh_dir(run.checkpoint_dir(0, "generator"))
    metrics = train(train_sft, run.config, str(out), examples=examples, on_log=run.on_log(0, "sft"),
                    on_step=run.on_step("sft steps"))
    version = generator_version(run.name, 0)
    info = {"examples": len(examples), **_numbers(metrics)}
    validation = run.problems("validation")
    if not validation and keep == "always":
        run.store.add_checkpoint(run.pool_id, 0, "generator", version, str(out), metrics)
        return info
    if not validation:
        raise UsageError("the SFT gate measures the SFT'd model on the run's held-out validation problems and this "
                         "run has none (data.validation_splits, data.max_validation_problems); set sft.keep=always "
                         "to keep SFT unmeasured")
    tuned = generators.generator_outcomes(run, 0, (version, str(out)), validation)
    base = generators.generator_outcomes(run, 0, (run.config.model.generator, None), validation)
    run.store.add_measurements(run.run_id, 0, HELDOUT_SET, generators.chain_measurements({"base": base, "sft": tuned}))
    comparison = generators.compare(tuned, base)
    decision = generators.decide(keep, comparison)
    run.log(decision.reason)
    if decision.keep:
        run.store.add_checkpoint(run.pool_id, 0, "generator", version, str(out), metrics)
    return {**info, **generators.gate_info(comparison, decision)}


RESAMPLE_CHOICES = ("all", "mixed")


def resampled_problems(run: RunContext, k: int) -> list[Problem]:
    """The training problems iteration k samples: all of them, or (k >= 1 with loop.resample='mixed')
    those whose candidates of earlier iterations have both verdicts."""
    problems, choice = run.problems("train"), run.config.loop.resample
    if choice not in RESAMPLE_CHOICES:
        raise UsageError(f"loop.resample={choice!r}: choose one of {', '.join(RESAMPLE_CHOICES)}")
    if k == 0 or choice == "all":
        return problems
    mixed = mining.problems_with_both_verdicts(
        [c for c in run.store.candidates(run.pool_id, role="train") if c["iteration"] < k])
    return [p for p in problems if p.id in mixed]


def _sample_train(run: RunContext, k: int) -> dict:
    problems = resampled_problems(run, k)
    if k == 0 and run.config.reward.reference_pairs:
        run.store.add_candidates(run.pool_id, k, [
            {"problem_id": p.id, "origin": "reference", "model": "reference", "sample_index": 0,
             "completion": p.reference}
            for p in problems if p.reference
        ])
    added = sample_candidates(run, k, problems, num_samples=run.config.loop.train_samples)
    return {"problems": len(problems), "candidates_added": added}


def _execute_bootstrap(run: RunContext) -> dict:
    """Check first that reference solutions pass (a broken sandbox would otherwise record every
    candidate as failing, for good; a run on another run's candidates leaves that to it), then execute
    everything."""
    references = [] if run.shares_pool else [(p, p.reference) for p in run.problems("train")
                                             if p.reference][:REFERENCE_CHECKS]
    with Executor(run.config.execution) as executor:
        results = executor.run_many([(p.language, build_program(p, reference)) for p, reference in references],
                                    progress=False)
    if references and not any(r.passed for r in results):
        raise RuntimeError(f"execution looks broken: none of {len(references)} reference solutions passes its tests "
                           f"(first: {results[0].status}, stderr {results[0].stderr[-300:]!r}); check "
                           "`python -m lab selftest` or set execution.isolation")
    return _execute_train(run, 0)


def _execute_train(run: RunContext, k: int) -> dict:
    """Execute iteration k's training candidates, and check them against their prompts' visible examples
    when pairs use only the failures that pass them (reward.negatives=examples_passing)."""
    info = execute_candidates(run, k)
    if run.config.reward.negatives == "examples_passing":
        info.update(check_visible_examples(run, k))
    return info


def candidate_pool(run: RunContext, k: int, reward_model: str | None) -> list[CandidateRow]:
    """The candidates pairs are built from in iteration k (with their score under `reward_model`):
    its training samples, the reference solutions (when stored), and every manually labelled
    training candidate (whatever its iteration); failing ones only as reward.negatives allows."""
    pool = [c for c in run.store.candidates(run.pool_id, role="train", reward_model=reward_model)
            if c["iteration"] == k or c["origin"] == "reference" or c["label"] is not None]
    return mining.eligible_negatives(pool, run.config.reward.negatives)


def _execution_pairs(run: RunContext) -> dict:
    pool = candidate_pool(run, 0, None)
    pairs = mining.execution_pairs(pool, run.config.reward.max_pairs_per_problem,
                                   balance_lengths=run.config.reward.balance_lengths)
    added = run.store.add_pairs(run.run_id, 0, pairs)
    return {"pairs": len(pairs), "pairs_added": added, **mining.length_balance(pairs, pool)}


def _score_pool(run: RunContext, k: int) -> dict:
    pool = candidate_pool(run, k, None)
    scored = score_candidates(run, k - 1, pool)
    return {"reward_model": reward_model_version(run.name, k - 1), "scored": scored}


def _mine(run: RunContext, k: int) -> dict:
    previous = reward_model_version(run.name, k - 1)
    pool = candidate_pool(run, k, previous)
    pairs = mining.hard_negative_pairs(pool, run.config.mining, balance_lengths=run.config.reward.balance_lengths)
    added = run.store.add_pairs(run.run_id, k, pairs)
    problem_of = {c["id"]: c["problem_id"] for c in pool}
    return {
        "hard_negatives": len({rejected for _, rejected, _ in pairs}),
        "problems_with_hard_negatives": len({problem_of[rejected] for _, rejected, _ in pairs}),
        "problems": len({c["problem_id"] for c in pool}),
        "pairs": len(pairs),
        "pairs_added": added,
        "reward_model": previous,
        **mining.length_balance(pairs, pool),
    }


def _train_reward_model(run: RunContext, k: int) -> dict:
    """rm-k on every pair so far that no later label contradicts (curation.training_pairs), continuing rm-(k-1)."""
    curated = training_pairs(run.store, run.run_id, up_to_iteration=k, labels_from=run.pool_id)
    kept = curated.kept
    if not kept:
        raise UsageError(
            f"no preference pairs to train the reward model on in iteration {k}: no training problem has both "
            "a passing and a failing candidate. Use more training problems (data.max_train_problems) or samples "
            "(loop.train_samples), or pair the reference solutions too (reward.reference_pairs=true)")
    info = fit_reward_model(run, k, kept, init=run.reward_model_path(k - 1) if k >= 1 else None)
    return {"pairs_dropped_by_labels": len(curated.dropped),
            "pairs_with_reference": sum("reference" in (r["chosen_origin"], r["rejected_origin"]) for r in kept),
            **info}


def fit_reward_model(run: RunContext, k: int, rows: list, *, init: str | None, variant: str = "",
                     steps: int | None = None) -> dict:
    """Train rm-k (or a control `variant` of it, lab/controls.py) from `init` (None: a new adapter) on the
    pairs `rows` (dicts with problem_id, prompt, chosen, rejected), less the watch slice's problems
    (mining.watch_problems) whose pairs it is watched on; save it and record its checkpoint. `steps`
    fixes the optimizer steps (default: reward.epochs over the pairs). Returns the stage info."""
    watched = mining.watch_problems([r["problem_id"] for r in rows], run.config.reward.watch_fraction,
                                    run.config.data.seed)
    training = [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in rows if r["problem_id"] not in watched]
    watch = [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in rows if r["problem_id"] in watched]
    run.models.release()
    out = _fresh_dir(run.checkpoint_dir(k, "reward_model" + (f"-{variant}" if variant else "")))
    stage = "train_rm" + (f"_{variant}" if variant else "")
    metrics = train(train_reward_model, run.config, str(out), pairs=training, watch_pairs=watch, init_adapter=init,
                    steps=steps, on_log=run.on_log(k, stage), on_step=run.on_step("reward-model steps"))
    info = {"pairs": len(training) + len(watch), "watch_problems": len(watched), **_numbers(metrics)}
    run.store.add_checkpoint(run.run_id, k, "reward_model", reward_model_version(run.name, k, variant), str(out), info,
                             variant)
    return info


def _train_policy(run: RunContext, k: int) -> dict:
    """gen-k: gen-(k-1) trained by policy.method against rm-(k-1), held near gen-0 (the SFT generator).
    Its checkpoint folder is not emptied first: the trainer resumes from the state it saved there."""
    settings = run.config.policy
    if not settings.enabled:
        return {"skipped": "policy.enabled is false: the generator stays as it is"}
    if settings.method not in POLICY_TRAINERS:
        raise UsageError(f"policy.method={settings.method!r}: choose one of {', '.join(POLICY_TRAINERS)}")
    if run.shares_pool:
        raise UsageError(f"policy.enabled with loop.candidates_from={run.config.loop.candidates_from!r}: the policy "
                         "stage makes a new generator, and this run's generator and candidates are that run's; set "
                         "policy.enabled=false")
    _, policy = run.generator_at(k - 1)
    _, reference = run.generator_at(0)
    problems = run.problems("train")
    run.models.release()
    out = run.checkpoint_dir(k, "generator")
    out.mkdir(parents=True, exist_ok=True)
    metrics = train(POLICY_TRAINERS[settings.method], run.config, str(out), problems=problems, policy_adapter=policy,
                    reference_adapter=reference, reward_adapter=run.reward_model_path(k - 1),
                    seed=iteration_seed(run.config.sampling.seed, k), on_log=run.on_log(k, "policy"),
                    on_step=run.on_step("policy steps"))
    run.store.add_checkpoint(run.run_id, k, "generator", generator_version(run.name, k), str(out), metrics)
    return {"method": settings.method, "trained_on": settings.reward, "problems": len(problems), **_numbers(metrics)}


def _evaluate(run: RunContext, k: int) -> dict:
    """{"pass_at_1": {eval set: {generator: {method: pass@1}}}}."""
    pass_at_1: dict[str, dict[str, dict[str, float]]] = {}
    for row in evaluation.evaluate_iteration(run, k):
        eval_set = evaluation.eval_set_name(row["benchmark"], row["language"])
        pass_at_1.setdefault(eval_set, {}).setdefault(row["generator"], {})[row["method"]] = round(row["pass_at_1"], 4)
    return {"pass_at_1": pass_at_1}



def _numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
