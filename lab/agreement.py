"""Agreement between annotators: which problems each one labels (with an overlap that two label), and
Cohen's kappa between two annotators on the candidates both labelled.

Overlap assignment. A hash of the run name and the problem id deals each problem to one annotator
and, for an `overlap` share of the problems, also to the next one in the list: the same on every
machine, about as many problems for each annotator, every pair of neighbours sharing some, and a
problem keeps its annotators when problems are added.

Cohen's kappa. Over the candidates both annotators labelled (each one's own newest label,
Store.annotator_labels), with the labels as categories: kappa = (p_o - p_e) / (1 - p_e), p_o the share
of candidates they agree on and p_e the agreement expected by chance from each one's label shares.
It is None where it is not defined (no shared candidate, or both use one and the same label only).

Not covered here: reading or writing labels (lab/store/labels.py), showing them (lab/app/).
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

from lab.records import AnnotatorLabelRow


def assign(problem_ids: Iterable[str], annotators: Sequence[str], overlap: float,
           seed: str = "") -> dict[str, list[str]]:
    """annotator -> the problems they label, sorted (see the module docstring); `overlap` in [0, 1]."""
    names = list(dict.fromkeys(name.strip() for name in annotators if name.strip()))
    if not names:
        raise ValueError("name at least one annotator")
    if not 0 <= overlap <= 1:
        raise ValueError(f"overlap is a share of the problems, between 0 and 1: got {overlap}")
    queues: dict[str, list[str]] = {name: [] for name in names}
    for problem in sorted(set(problem_ids)):
        digest = int.from_bytes(hashlib.sha256(f"{seed}\0{problem}".encode()).digest()[:16], "big")
        first = digest % len(names)
        queues[names[first]].append(problem)
        if len(names) > 1 and (digest >> 64) % 10_000 < overlap * 10_000:
            queues[names[(first + 1) % len(names)]].append(problem)
    return queues


@dataclass(frozen=True)
class Agreement:
    first: str
    second: str
    shared: int
    """Candidates both labelled."""
    observed: float | None
    """p_o: the share of those they gave the same label."""
    kappa: float | None


def cohens_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of (first's label, second's label) pairs; None where undefined."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[label] * second[label] for label in first) / (n * n)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def agreements(rows: Iterable[AnnotatorLabelRow]) -> list[Agreement]:
    """Every pair of annotators who labelled at least one candidate in common, by name; cleared
    labels (None) left out."""
    by_author: dict[str, dict[int, str]] = {}
    for row in rows:
        if row["label"] is not None:
            by_author.setdefault(row["author"], {})[row["candidate_id"]] = row["label"]
    found = []
    for first, second in combinations(sorted(by_author), 2):
        shared = sorted(by_author[first].keys() & by_author[second].keys())
        if not shared:
            continue
        pairs = [(by_author[first][c], by_author[second][c]) for c in shared]
        found.append(Agreement(first, second, len(shared), sum(a == b for a, b in pairs) / len(pairs),
                               cohens_kappa(pairs)))
    return found
