"""Problem roles kept apart: which MBPP splits train, and the checks that no problem (nor a near-copy of
one) plays two of the roles training, validation (held out) and evaluation.

  training_splits    data.train_splits resolved: 'auto' = every MBPP split that is neither a
                     validation split nor evaluated
  near_duplicates    pairs of problems, one from each of two lists, whose prompts say nearly the same
                     thing: word-trigram Jaccard similarity of their lower-cased words at least a threshold
  leave_out_near_duplicates   a list without the problems that nearly duplicate protected ones
  check_roles        refuses (UsageError naming both problems) an id in two roles or a near-duplicate pair
                     across roles

Prompts are compared by their words only (letters and digits, lower-cased), so an MBPP problem and a
HumanEval one in another language's syntax still match on their description. The threshold is
data.near_duplicate_similarity; MBPP holds true near-copies across its own splits (e.g. the same task
in train and in validation, worded slightly differently), which the problem selection leaves out of the
lower role (training before validation, validation before evaluation).

Not covered here: loading problems (problems.py), choosing how many train (loop.py, evaluation.py).
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from lab.config import DataConfig, UsageError
from lab.problems import MBPP_SPLITS, Problem

SHINGLE_WORDS = 3
ROLE_ORDER = ("train", "validation", "eval")
"""Lower roles first: a near-duplicate is dropped from the lower of its two roles."""


def training_splits(data: DataConfig) -> tuple[str, ...]:
    """The MBPP splits that train: data.train_splits, where 'auto' stands for every split that is not a
    validation split and not evaluated ('test' is MBPP's evaluation split when 'mbpp' is in
    data.eval_benchmarks)."""
    if tuple(data.train_splits) != ("auto",):
        return tuple(data.train_splits)
    evaluated = {"test"} if "mbpp" in data.eval_benchmarks else set()
    return tuple(split for split in ("train", "test", "prompt")
                 if split in MBPP_SPLITS and split not in set(data.validation_splits) | evaluated)


def _shingles(problem: Problem) -> frozenset[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", problem.prompt.lower())
    if len(words) < SHINGLE_WORDS:
        return frozenset([tuple(words)])
    return frozenset(tuple(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1))


def near_duplicates(first: Sequence[Problem], second: Sequence[Problem],
                    threshold: float) -> list[tuple[Problem, Problem, float]]:
    """(a of first, b of second, similarity) for every pair at or above `threshold`, most similar first.
    An inverted index over the trigrams counts the shared ones, so only pairs that share any are compared."""
    shingles_of = {id(p): _shingles(p) for p in (*first, *second)}
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for position, problem in enumerate(second):
        for shingle in shingles_of[id(problem)]:
            index[shingle].append(position)
    found = []
    for a in first:
        mine = shingles_of[id(a)]
        shared: dict[int, int] = defaultdict(int)
        for shingle in mine:
            for position in index.get(shingle, ()):
                shared[position] += 1
        for position, count in shared.items():
            b = second[position]
            similarity = count / (len(mine) + len(shingles_of[id(b)]) - count)
            if similarity >= threshold and a.id != b.id:
                found.append((a, b, similarity))
    return sorted(found, key=lambda item: (-item[2], item[0].id, item[1].id))


def leave_out_near_duplicates(problems: Sequence[Problem], protected: Sequence[Problem],
                              threshold: float) -> tuple[list[Problem], list[tuple[Problem, Problem, float]]]:
    """(`problems` without those whose id is a protected one's or whose prompt nearly duplicates one,
    the (left out, protected, similarity) pairs that explain it)."""
    protected_ids = {p.id: p for p in protected}
    reasons = [(p, protected_ids[p.id], 1.0) for p in problems if p.id in protected_ids]
    reasons += near_duplicates([p for p in problems if p.id not in protected_ids], protected, threshold)
    dropped = {a.id for a, _, _ in reasons}
    return [p for p in problems if p.id not in dropped], reasons


def check_roles(roles: dict[str, Sequence[Problem]], threshold: float) -> None:
    """Refuse problems in two roles (by id) and near-duplicate prompts across roles: a UsageError naming
    both problems, their roles and what to do."""
    names = [role for role in ROLE_ORDER if roles.get(role)]
    for i, lower in enumerate(names):
        for higher in names[i + 1:]:
            higher_ids = {p.id for p in roles[higher]}
            shared = sorted(p.id for p in roles[lower] if p.id in higher_ids)
            if shared:
                raise UsageError(f"problem {shared[0]} is both a {lower!r} and a {higher!r} problem of this run "
                                 f"({len(shared)} such): a problem plays one role; change data.train_splits, "
                                 "data.validation_splits or data.eval_benchmarks, or start another run")
            found = near_duplicates(roles[lower], roles[higher], threshold)
            if found:
                a, b, similarity = found[0]
                raise UsageError(
                    f"{lower} problem {a.id} nearly duplicates {higher} problem {b.id} (prompt similarity "
                    f"{similarity:.2f} >= data.near_duplicate_similarity={threshold}; {len(found)} such pairs): "
                    "a near-copy of a held-out or evaluation problem must not train (or validate); the problem "
                    "selection leaves such problems out of a new run, so this run's stored roles predate the "
                    "current configuration: start another run (--run NAME) or change the configuration back")


def near_duplicate_note(reasons: Sequence[tuple[Problem, Problem, float]], role: str, protected_role: str) -> str:
    """'left out 3 training problems that nearly duplicate validation or evaluation problems: a ~ b (0.77), ...'"""
    shown = ", ".join(f"{a.id} ~ {b.id} ({similarity:.2f})" for a, b, similarity in reasons[:3])
    more = f", and {len(reasons) - 3} more" if len(reasons) > 3 else ""
    return f"left out {len(reasons)} {role} problem(s) that duplicate or nearly duplicate {protected_role} problems: " \
           f"{shown}{more}"
