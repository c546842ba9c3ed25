"""Preference pairs for the reward model, and hard-negative mining: pure functions over candidate rows.

A candidate row is a dict as `Store.candidates` returns it; the keys used here are
`id`, `problem_id`, `passed` (1/0, None = not executed), `reward` (None = not scored) and
`label` (the current manual label: 'positive', 'hard_negative', 'exclude' or None).

Verdicts. A manual label wins over execution: 'exclude' drops the candidate from every pair,
'positive' makes it a chosen side even when its tests fail, 'hard_negative' makes it a rejected
side (and a hard negative) even when its tests pass. Otherwise passing = positive, failing =
negative, and an unexecuted candidate takes no part.

Hard negatives (per problem, over its scored candidates): a negative is hard when its reward is
>= best positive reward - `margin`, or when it ranks in the problem's `top_k` by reward (both rules
apply; either one is enough). At most `max_hard_negatives_per_problem` are kept, highest reward
first; manually labelled hard negatives are always kept and come first.

Pair kinds: 'manual' when either side's verdict comes from a manual label, else 'execution'
(bootstrap pairs, built from pass/fail alone) or 'hard_negative' (mined).

Not covered here: reading or writing the store, scoring, or training (loop.py does those).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from lab.config import MiningConfig


@dataclass(frozen=True)
class Verdict:
    candidate_id: int
    positive: bool
    manual: bool
    reward: float | None


def verdict(candidate: dict) -> Verdict | None:
    """The candidate's side in pairs, or None when it takes no part (excluded, or unexecuted and unlabelled)."""
    label = candidate.get("label")
    if label == "exclude":
        return None
    if label in ("positive", "hard_negative"):
        return Verdict(candidate["id"], label == "positive", True, candidate.get("reward"))
    if candidate.get("passed") is None:
        return None
    return Verdict(candidate["id"], bool(candidate["passed"]), False, candidate.get("reward"))


def by_problem(candidates: list[dict]) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for candidate in candidates:
        grouped[candidate["problem_id"]].append(candidate)
    return dict(grouped)


def _split(candidates: list[dict]) -> tuple[list[Verdict], list[Verdict]]:
    verdicts = [v for v in map(verdict, candidates) if v is not None]
    positives = sorted((v for v in verdicts if v.positive), key=lambda v: (not v.manual, v.candidate_id))
    negatives = sorted((v for v in verdicts if not v.positive), key=lambda v: (not v.manual, v.candidate_id))
    return positives, negatives


def _kind(chosen: Verdict, rejected: Verdict, automatic_kind: str) -> str:
    return "manual" if chosen.manual or rejected.manual else automatic_kind


def execution_pairs(candidates: list[dict], max_pairs_per_problem: int) -> list[tuple[int, int, str]]:
    """Bootstrap pairs from pass/fail (+ labels): per problem, positives and negatives are walked
    round-robin (shifted by one after each full cycle), so the first pairs cover as many distinct
    candidates as possible and no pair repeats."""
    pairs = []
    for problem_candidates in by_problem(candidates).values():
        positives, negatives = _split(problem_candidates)
        if not positives or not negatives:
            continue
        period = math.lcm(len(positives), len(negatives))
        for index in range(min(max_pairs_per_problem, len(positives) * len(negatives))):
            chosen = positives[index % len(positives)]
            rejected = negatives[(index + index // period) % len(negatives)]
            pairs.append((chosen.candidate_id, rejected.candidate_id, _kind(chosen, rejected, "execution")))
    return pairs


def hard_negatives(candidates: list[dict], mining: MiningConfig) -> list[int]:
    """Ids of one problem's hard negatives (rules in the module docstring), hardest first."""
    positives, negatives = _split(candidates)
    scored = [v for v in positives + negatives if v.reward is not None]
    ranked = sorted(scored, key=lambda v: -v.reward)
    top_k = {v.candidate_id for v in ranked[: mining.top_k]}
    best_positive = max((v.reward for v in positives if v.reward is not None), default=None)
    automatic = [
        v for v in sorted(negatives, key=lambda v: -(v.reward if v.reward is not None else float("-inf")))
        if not v.manual and v.reward is not None
        and (v.candidate_id in top_k or (best_positive is not None and v.reward >= best_positive - mining.margin))
    ]
    manual = [v.candidate_id for v in negatives if v.manual]
    room = max(0, mining.max_hard_negatives_per_problem - len(manual))
    return manual + [v.candidate_id for v in automatic[:room]]


def hard_negative_pairs(candidates: list[dict], mining: MiningConfig) -> list[tuple[int, int, str]]:
    """Each hard negative paired with up to `positives_per_hard_negative` positives: manual ones first,
    then the lowest-rewarded (the ones the reward model most needs to lift above it)."""
    pairs = []
    for problem_candidates in by_problem(candidates).values():
        positives, negatives = _split(problem_candidates)
        if not positives:
            continue
        positives.sort(key=lambda v: (not v.manual, v.reward if v.reward is not None else float("inf")))
        negative_of = {v.candidate_id: v for v in negatives}
        for rejected_id in hard_negatives(problem_candidates, mining):
            for chosen in positives[: mining.positives_per_hard_negative]:
                rejected = negative_of[rejected_id]
                pairs.append((chosen.candidate_id, rejected_id, _kind(chosen, rejected, "hard_negative")))
    return pairs


def pair_is_consistent(pair: dict, labels: dict[int, str]) -> bool:
    """False when a label given after the pair was built contradicts it: either side excluded,
    a chosen side later labelled hard negative, or a rejected side later labelled positive."""
    chosen, rejected = labels.get(pair["chosen_id"]), labels.get(pair["rejected_id"])
    return "exclude" not in (chosen, rejected) and chosen != "hard_negative" and rejected != "positive"


def pairwise_accuracy_from_scores(pairs: list[tuple[int, int, str]], reward_of: dict[int, float]) -> float | None:
    """Fraction of pairs whose chosen side out-scores the rejected one (ties count half); None if no pair is scored."""
    outcomes = [
        1.0 if reward_of[c] > reward_of[r] else 0.5 if reward_of[c] == reward_of[r] else 0.0
        for c, r, _ in pairs if c in reward_of and r in reward_of
    ]
    return sum(outcomes) / len(outcomes) if outcomes else None

