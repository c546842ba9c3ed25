"""Controls for the hard-negative iteration, so that what it changes has one cause.

rm-k (k >= 1) continues rm-(k-1) on every pair so far plus iteration k's hard negatives. Two reward
models are trained beside it, on the same iteration's samples and with the same recipe and seed:

  equal_compute  rm-(k-1) continued for exactly rm-k's optimizer steps, on the pairs before k plus as
                 many non-hard pairs from iteration k's samples as rm-k got hard-negative pairs
                 (execution pairs whose failing side was not mined): what the extra training alone gives
  fresh          a new reward model trained from scratch on all of rm-k's pairs: whether continuing
                 rm-(k-1) matters

Each is a checkpoint variant of iteration k of the run ('equal_compute', 'fresh'), trained in a stage of
its own (train_rm_equal_compute, train_rm_fresh: resumable like train_rm), and scored under its own
version ('<run>/rm-k-<variant>'). Comparing rm-k with them on the same candidates is the study's
(lab/study.py); the hard negatives' accuracy "before" is measured there too, with a reseeded rm-(k-1).

Not covered here: mining (mining.py), training itself (reward.py, loop.fit_reward_model).
"""
from __future__ import annotations

import random

from lab import mining
from lab.curation import training_pairs
from lab.loop import candidate_pool, fit_reward_model
from lab.stages import RunContext

CONTROLS = ("equal_compute", "fresh")


def control_stage(variant: str) -> str:
    return f"train_rm_{variant}"


def non_hard_pairs(run: RunContext, k: int) -> list[dict]:
    """As many execution pairs from iteration k's candidates as iteration k has hard-negative pairs, none
    with a mined hard negative as its failing side, drawn in an order seeded by reward.seed; as pair rows
    (problem_id, prompt, chosen, rejected)."""
    hard = [r for r in run.store.pairs(run.run_id) if r["iteration"] == k and r["kind"] == "hard_negative"]
    mined = {r["rejected_id"] for r in hard}
    pool = [c for c in candidate_pool(run, k, None) if c["id"] not in mined]
    pairs = mining.execution_pairs(pool, run.config.reward.max_pairs_per_problem,
                                   balance_lengths=run.config.reward.balance_lengths)
    random.Random(run.config.reward.seed).shuffle(pairs)
    row_of = {c["id"]: c for c in pool}
    prompts: dict[str, str] = {}
    rows = []
    for chosen, rejected, _ in pairs[:len(hard)]:
        problem_id = row_of[chosen]["problem_id"]
        prompt = prompts.setdefault(problem_id, run.store.problem(problem_id).prompt)
        rows.append({"problem_id": problem_id, "prompt": prompt, "chosen": row_of[chosen]["completion"],
                     "rejected": row_of[rejected]["completion"]})
    return rows


def train_control(run: RunContext, k: int, variant: str) -> dict:
    """Train iteration k's control `variant` (the module docstring) and record its checkpoint."""
    if variant not in CONTROLS:
        raise ValueError(f"unknown control {variant!r}: the controls are {', '.join(CONTROLS)}")
    if k < 1:
        raise ValueError("the controls are of a hard-negative iteration (k >= 1)")
    if variant == "fresh":
        pairs = training_pairs(run.store, run.run_id, up_to_iteration=k, labels_from=run.pool_id).kept
        return {"control": variant, **fit_reward_model(run, k, pairs, init=None, variant=variant)}
    own = run.store.checkpoint(run.run_id, "reward_model", k)
    if own is None:
        raise RuntimeError(f"run {run.name!r} has no rm-{k} yet: the equal-compute control takes its steps")
    steps = own["metrics"]["steps"]
    earlier = training_pairs(run.store, run.run_id, up_to_iteration=k - 1, labels_from=run.pool_id).kept
    added = non_hard_pairs(run, k)
    info = fit_reward_model(run, k, earlier + added, init=run.reward_model_path(k - 1), variant=variant, steps=steps)
    return {"control": variant, "non_hard_pairs": len(added), **info}
