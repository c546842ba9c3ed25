"""Preference pairs for the reward model, and hard-negative mining: pure functions over candidate rows.

A candidate row is a records.CandidateRow as `Store.candidates` returns it (or the app's shorter
RankingRow); the keys used here are `id`, `problem_id`, `passed` (1/0, None = not executed), `reward`
(None = not scored) and `label` (the current manual label: 'positive', 'hard_negative', 'exclude' or
None).

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

Duplicates: a problem's candidates with the same text are one candidate here (distinct.py), so a pair
never pits a text against itself and a frequent text is not paired more often for being frequent.
Negatives (`eligible_negatives`, reward.negatives): all failing candidates, or only those that pass the
prompt's visible examples, the failures the examples filter cannot catch.

Not covered here: reading or writing the store, scoring, or training (loop.py does those).
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from lab.config import MiningConfig, UsageError
from lab.distinct import distinct_candidates
from lab.records import CandidateRow, PairRow, RankingRow

Candidate = CandidateRow | RankingRow
Row = TypeVar("Row", CandidateRow, RankingRow)
NEGATIVES = ("all", "examples_passing")


@dataclass(frozen=True)
class Verdict:
    candidate_id: int
    positive: bool
    manual: bool
    reward: float | None
    length: int
    """Characters of the completion."""


def completion_length(candidate: Candidate) -> int:
    """Characters of the completion; 0 for a row without one (the app's RankingRow)."""
    completion = candidate.get("completion")
    return len(completion) if isinstance(completion, str) else 0


def verdict(candidate: Candidate) -> Verdict | None:
    """The candidate's side in pairs, or None when it takes no part (excluded, or unexecuted and unlabelled)."""
    label = candidate.get("label")
    length = completion_length(candidate)
    if label == "exclude":
        return None
    if label in ("positive", "hard_negative"):
        return Verdict(candidate["id"], label == "positive", True, candidate.get("reward"), length)
    if candidate.get("passed") is None:
        return None
    return Verdict(candidate["id"], bool(candidate["passed"]), False, candidate.get("reward"), length)


def by_problem(candidates: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    grouped: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        grouped[candidate["problem_id"]].append(candidate)
    return dict(grouped)


def _split(candidates: Sequence[Candidate]) -> tuple[list[Verdict], list[Verdict]]:
    verdicts = [v for v in map(verdict, candidates) if v is not None]
    positives = sorted((v for v in verdicts if v.positive), key=lambda v: (not v.manual, v.candidate_id))
    negatives = sorted((v for v in verdicts if not v.positive), key=lambda v: (not v.manual, v.candidate_id))
    return positives, negatives


def problems_with_both_verdicts(candidates: Sequence[Candidate]) -> set[str]:
    """Problems whose candidates include a positive and a negative (by execution or manual label)."""
    return {problem for problem, rows in by_problem(candidates).items() if all(_split(rows))}


def _kind(chosen: Verdict, rejected: Verdict, automatic_kind: str) -> str:
    return "manual" if chosen.manual or rejected.manual else automatic_kind


def execution_pairs(candidates: Sequence[Candidate], max_pairs_per_problem: int, *,
                    balance_lengths: bool = False) -> list[tuple[int, int, str]]:
    """Pairs from pass/fail (+ labels), up to `max_pairs_per_problem` per problem, no pair twice.
    Each next pair of a problem is the one whose two candidates have been used least (so the first
    pairs cover as many distinct candidates as possible), then the closest in length.

    With `balance_lengths`, length cannot tell chosen from rejected: over all problems, pairs whose
    chosen side is longer and pairs whose chosen side is shorter are kept within one of each other
    (equal lengths count for neither), so a problem offering only the over-represented kind gives
    fewer pairs (see `length_balance`)."""
    pairs = []
    balance = 0  # (pairs with the chosen side longer) - (pairs with it shorter), so far
    for problem_candidates in by_problem(distinct_candidates(candidates)).values():
        positives, negatives = _split(problem_candidates)
        combos = [(chosen, rejected) for chosen in positives for rejected in negatives]
        uses: dict[int, int] = defaultdict(int)
        taken: set[int] = set()
        for _ in range(min(max_pairs_per_problem, len(combos))):
            allowed = [i for i in range(len(combos)) if i not in taken
                       and not (balance_lengths and _longer(*combos[i]) * balance >= 1)]
            if not allowed:
                break
            best = min(allowed, key=lambda i: (uses[combos[i][0].candidate_id] + uses[combos[i][1].candidate_id],
                                               _length_gap(*combos[i]), i))
            chosen, rejected = combos[best]
            taken.add(best)
            uses[chosen.candidate_id] += 1
            uses[rejected.candidate_id] += 1
            balance += _longer(chosen, rejected)
            pairs.append((chosen.candidate_id, rejected.candidate_id, _kind(chosen, rejected, "execution")))
    return pairs


def _longer(chosen: Verdict, rejected: Verdict) -> int:
    return (chosen.length > rejected.length) - (chosen.length < rejected.length)


def _length_gap(chosen: Verdict, rejected: Verdict) -> float:
    return abs(chosen.length - rejected.length) / max(chosen.length, rejected.length, 1)


def length_balance(pairs: list[tuple[int, int, str]], candidates: Sequence[Candidate]) -> dict:
    """How length relates to the pairs' sides: the fraction whose chosen side is longer, shorter,
    and the mean chosen - rejected length in characters."""
    length_of = {c["id"]: completion_length(c) for c in candidates}
    differences = [length_of[c] - length_of[r] for c, r, _ in pairs]
    if not differences:
        return {"chosen_longer": None, "chosen_shorter": None, "mean_length_difference": None}
    return {"chosen_longer": sum(d > 0 for d in differences) / len(differences),
            "chosen_shorter": sum(d < 0 for d in differences) / len(differences),
            "mean_length_difference": sum(differences) / len(differences)}


def hard_negatives(candidates: Sequence[Candidate], mining: MiningConfig) -> list[int]:
    """Ids of one problem's hard negatives (rules in the module docstring), hardest first."""
    positives, negatives = _split(candidates)
    scored = [(v.reward, v) for v in positives + negatives if v.reward is not None]
    ranked = [v for _, v in sorted(scored, key=lambda pair: -pair[0])]
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


def hard_negative_pairs(candidates: Sequence[Candidate], mining: MiningConfig, *,
                        balance_lengths: bool = False) -> list[tuple[int, int, str]]:
    """Each hard negative paired with up to `positives_per_hard_negative` positives: manual ones first,
    then the lowest-rewarded (the ones the reward model most needs to lift above it).

    With `balance_lengths`, a positive that would tip the running count of longer-chosen minus
    shorter-chosen pairs further from zero comes after the ones that do not (the same number of pairs
    is kept; unlike execution_pairs, a hard negative is never left unpaired to keep the balance)."""
    pairs = []
    balance = 0
    for problem_candidates in by_problem(distinct_candidates(candidates)).values():
        positives, negatives = _split(problem_candidates)
        if not positives:
            continue
        negative_of = {v.candidate_id: v for v in negatives}
        for rejected_id in hard_negatives(problem_candidates, mining):
            rejected = negative_of[rejected_id]

            def order(v: Verdict, rejected: Verdict = rejected, balance: int = balance) -> tuple:
                tips = balance_lengths and _longer(v, rejected) * balance >= 1
                return (not v.manual, tips, v.reward if v.reward is not None else float("inf"))

            for chosen in sorted(positives, key=order)[: mining.positives_per_hard_negative]:
                balance += _longer(chosen, rejected)
                pairs.append((chosen.candidate_id, rejected_id, _kind(chosen, rejected, "hard_negative")))
    return pairs


def eligible_negatives(candidates: Sequence[Row], negatives: str) -> list[Row]:
    """The candidates pairs may use under reward.negatives: with 'all' every one; with 'examples_passing'
    the failing ones only when they pass their prompt's visible examples (or it shows none); passing and
    manually labelled candidates always. Raises when a failing candidate was never checked against them."""
    if negatives not in NEGATIVES:
        raise UsageError(f"reward.negatives={negatives!r}: choose one of {', '.join(NEGATIVES)}")
    if negatives == "all":
        return list(candidates)
    kept = []
    for candidate in candidates:
        side = verdict(candidate)
        if side is None or side.positive or side.manual:
            kept.append(candidate)
            continue
        if candidate.get("visible_examples") is None:
            raise ValueError(f"candidate {candidate['id']} of {candidate['problem_id']} has no visible-example "
                             "verdict: check the pool's examples (stages.check_visible_examples) before pairing with "
                             "reward.negatives=examples_passing")
        if candidate.get("examples_passed") != 0:
            kept.append(candidate)
    return kept


def watch_problems(problem_ids: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The training problems whose pairs the reward model is watched on instead of trained on
    (reward.watch_fraction, chosen by `seed` = data.seed, so every reward seed watches the same ones):
    round(fraction x problems), none when that would leave fewer than two problems to train on."""
    ordered = sorted(set(problem_ids))
    count = int(fraction * len(ordered) + 0.5)
    if count < 1 or len(ordered) - count < 2:
        return set()
    return set(random.Random(seed).sample(ordered, count))


def pair_contradiction(pair: PairRow, labels: dict[int, str | None]) -> str | None:
    """Why a label given after the pair was built contradicts it (either side excluded, a chosen side
    later labelled hard negative, a rejected side later labelled positive), or None when none does."""
    chosen, rejected = labels.get(pair["chosen_id"]), labels.get(pair["rejected_id"])
    if "exclude" in (chosen, rejected):
        side, side_id = ("chosen", pair["chosen_id"]) if chosen == "exclude" else ("rejected", pair["rejected_id"])
        return f"{side} side {side_id} excluded"
    if chosen == "hard_negative":
        return f"chosen side {pair['chosen_id']} labelled hard negative"
    if rejected == "positive":
        return f"rejected side {pair['rejected_id']} labelled positive"
    return None


def pair_is_consistent(pair: PairRow, labels: dict[int, str | None]) -> bool:
    """True when no label given after the pair was built contradicts it (see pair_contradiction)."""
    return pair_contradiction(pair, labels) is None
