"""Measures: pure functions over candidate rows and scores, one definition of each.

  METHODS / RANKERS   the ways to answer a problem (names, titles, the score a ranker picks by)
  problem_outcomes    per method, each problem's expected pass of the answer it picks
  top_pick_outcomes   the same for the sample ranked first by any candidate field
  pairwise_accuracy   of (chosen, rejected) score pairs, the fraction ordered right (ties count half)
  ranking_accuracy    pairwise accuracy over every (passing, failing) sample pair within a problem
  pooled_accuracy_ci  an accuracy pooled from per-problem (right, pairs) counts, 95% interval over problems
  ranking_difference_ci   one ranker's ranking accuracy minus another's, 95% interval over problems
  length_correlation  Pearson correlation of a value (passing, a ranker's score) with completion length
  bootstrap_ci, paired_difference_ci   95% intervals over problems

A candidate row is a records.CandidateRow as `Store.candidates` returns it; the keys used here are
`problem_id`, `origin`, `passed` (1/0, None = not executed), `completion`, `mean_logprob`, `reward`
and, for the combined ranker, `reward_plus_logprob` (added by the caller, see evaluation.py).

Not covered here: reading the store, sampling or scoring (evaluation.py, stages.py), tables and
plots (reports.py, plots.py).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lab.records import CandidateRow, PassAt1Row, RankerKey

HELDOUT_SET = "mbpp-validation"
"""The eval set under which a reward model's held-out measurements are stored (evaluation.py)."""
PREVIOUS_RERANKER = "previous_reranker"
"""How rm-(k-1) is named among rm-k's measurements: its scores on the same candidates (evaluation.py)."""


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    key: RankerKey | None = None
    """For a ranker: the candidate field it ranks samples by (its top sample is its answer)."""


@dataclass(frozen=True)
class Ranker(Method):
    key: RankerKey


METHODS: tuple[Method, ...] = (
    Method("greedy", "greedy"),
    Method("random", "random pick of N"),
    Ranker("logprob", "mean-log-prob rerank", "mean_logprob"),
    Ranker("reranker", "trained reranker top-1", "reward"),
    Ranker("reranker+logprob", "reranker + λ·log-prob top-1", "reward_plus_logprob"),
    Method("oracle", "oracle pass@N"),
)
METHOD_NAMES = tuple(m.name for m in METHODS)
METHOD_TITLES = {m.name: m.title for m in METHODS}
RANKERS: tuple[Ranker, ...] = tuple(m for m in METHODS if isinstance(m, Ranker))

PASS_COMPARISONS = (("reranker", "random"), ("reranker", "logprob"), ("reranker", "greedy"),
                    ("reranker+logprob", "logprob"), ("reranker+logprob", "reranker"))
"""(a, b) method pairs whose pass@1 difference over the same problems is reported with a 95% interval."""
RANKING_COMPARISONS = (("reranker", "logprob"), ("reranker+logprob", "logprob"), ("reranker+logprob", "reranker"))
"""(a, b) ranker pairs whose ranking-accuracy difference over the same problems is reported the same way."""


def scores(rows: Sequence[CandidateRow], key: RankerKey) -> list[float] | None:
    """Each row's score by `key`, in order; None when any row lacks one."""
    found = [score for row in rows if (score := row.get(key)) is not None]
    return found if len(found) == len(rows) else None


def _top_pick_pass_rate(samples: list[CandidateRow], key: RankerKey) -> float | None:
    """Pass rate among the samples tied at the highest `key`; None when any sample lacks it."""
    values = scores(samples, key)
    if not samples or values is None:
        return None
    best = max(values)
    tied = [s for s, value in zip(samples, values) if value == best]
    return sum(bool(s["passed"]) for s in tied) / len(tied)


def top_pick_outcomes(candidates: list[CandidateRow], key: RankerKey) -> dict[str, float]:
    """problem_id -> expected pass of the executed sample ranked first by `key` (ties: a random pick
    among them); a problem with a sample lacking `key` is left out."""
    outcomes = {}
    for problem_id, samples in executed_samples_by_problem(candidates).items():
        rate = _top_pick_pass_rate(samples, key)
        if rate is not None:
            outcomes[problem_id] = rate
    return outcomes


def executed_samples_by_problem(candidates: list[CandidateRow]) -> dict[str, list[CandidateRow]]:
    grouped: dict[str, list[CandidateRow]] = defaultdict(list)
    for candidate in candidates:
        if candidate["origin"] == "sample" and candidate.get("passed") is not None:
            grouped[candidate["problem_id"]].append(candidate)
    return dict(grouped)


def problem_outcomes(candidates: list[CandidateRow]) -> dict[str, dict[str, float]]:
    """method -> {problem_id: expected pass (0..1)} from executed candidate rows. Ties among a
    ranker's top samples count as a random pick among them. A problem missing what a method needs
    (no greedy candidate, unscored samples) is left out of that method only."""
    outcomes: dict[str, dict[str, float]] = {name: {} for name in METHOD_NAMES}
    for candidate in candidates:
        if candidate["origin"] == "greedy" and candidate.get("passed") is not None:
            outcomes["greedy"].setdefault(candidate["problem_id"], float(bool(candidate["passed"])))
    for problem_id, samples in executed_samples_by_problem(candidates).items():
        passes = [bool(s["passed"]) for s in samples]
        outcomes["random"][problem_id] = sum(passes) / len(passes)
        outcomes["oracle"][problem_id] = float(any(passes))
    for ranker in RANKERS:
        outcomes[ranker.name] = top_pick_outcomes(candidates, ranker.key)
    return outcomes


def pairwise_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float | None:
    """Fraction of pairs whose chosen score is above its rejected score, a tie counting half
    (0.5 is chance); None without pairs. The one definition used for every pair accuracy."""
    if len(chosen) != len(rejected):
        raise ValueError(f"{len(chosen)} chosen scores but {len(rejected)} rejected ones")
    if not chosen:
        return None
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    return wins / len(chosen)


def ranking_counts(candidates: list[CandidateRow], key: RankerKey) -> dict[str, tuple[float, int]]:
    """problem_id -> (pairs ordered right, ties counting half; pairs) over every (passing, failing)
    pair of that problem's executed samples, ranked by `key`. Problems without such a pair, or with
    a sample lacking `key`, are left out."""
    counts = {}
    for problem_id, rows in executed_samples_by_problem(candidates).items():
        values = scores(rows, key)
        if values is None:
            continue
        passing = [value for r, value in zip(rows, values) if r["passed"]]
        failing = [value for r, value in zip(rows, values) if not r["passed"]]
        chosen = [good for good in passing for _ in failing]
        rejected = [bad for _ in passing for bad in failing]
        accuracy = pairwise_accuracy(chosen, rejected)
        if accuracy is not None:
            counts[problem_id] = (accuracy * len(chosen), len(chosen))
    return counts


def ranking_accuracy(candidates: list[CandidateRow]) -> dict[str, dict]:
    """How well each ranker orders a problem's samples: `pairwise_accuracy` over every (passing,
    failing) pair of samples of one problem (`ranking_counts`), pooled over problems. Top-1 pass@1
    hangs on one pick per problem; this uses every pair, so it is the steadier signal. ranker name ->
    {"accuracy": fraction or None, "pairs": n, "problems": problems with at least one pair}."""
    result = {}
    for ranker in RANKERS:
        counts = ranking_counts(candidates, ranker.key).values()
        pairs = sum(n for _, n in counts)
        result[ranker.name] = {"accuracy": sum(right for right, _ in counts) / pairs if pairs else None,
                               "pairs": pairs, "problems": len(counts)}
    return result


def _resampled_accuracies(counts: Sequence[dict[str, tuple[float, int]]], problems: list[str], resamples: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled accuracy of each of `counts` (problem_id -> (right, pairs)) over `problems`, and the same
    for `resamples` draws of those problems with replacement: arrays (k,) and (resamples, k). A problem's
    pairs share its samples, so problems, not pairs, are the independent draws."""
    right = np.array([[c[p][0] for c in counts] for p in problems], dtype=float)
    pairs = np.array([counts[0][p][1] for p in problems], dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(problems), size=(resamples, len(problems)))
    return right.sum(axis=0) / pairs.sum(), right[draws].sum(axis=1) / pairs[draws].sum(axis=1)[:, None]


def pooled_accuracy_ci(counts: dict[str, tuple[float, int]], *, resamples: int = 2000, seed: int = 0) -> dict:
    """Accuracy pooled from per-problem counts (problem_id -> (pairs ordered right, pairs)), with a 95%
    interval that resamples problems: {"accuracy", "ci_low", "ci_high", "n_problems", "pairs"}
    (accuracy None and no interval without pairs)."""
    problems = sorted(p for p, (_, n) in counts.items() if n)
    if not problems:
        return {"accuracy": None, "ci_low": None, "ci_high": None, "n_problems": 0, "pairs": 0}
    accuracy, resampled = _resampled_accuracies([counts], problems, resamples, seed)
    return {"accuracy": float(accuracy[0]), "ci_low": float(np.percentile(resampled[:, 0], 2.5)),
            "ci_high": float(np.percentile(resampled[:, 0], 97.5)), "n_problems": len(problems),
            "pairs": int(sum(counts[p][1] for p in problems))}


def ranking_difference_ci(candidates: list[CandidateRow], a: str, b: str, *, keys: dict[str, RankerKey] | None = None,
                          resamples: int = 2000, seed: int = 0) -> dict:
    """Ranking accuracy of ranker `a` minus that of ranker `b` over the problems both rank, with a 95%
    interval that resamples problems: {"difference", "ci_low", "ci_high", "n_problems", "pairs",
    "accuracy": {a:, b:}}. `keys` names the candidate field each ranker ranks by (default: RANKERS')."""
    key = keys or {m.name: m.key for m in RANKERS}
    counts_a, counts_b = ranking_counts(candidates, key[a]), ranking_counts(candidates, key[b])
    common = sorted(set(counts_a) & set(counts_b))
    if not common:
        return {"difference": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_problems": 0,
                "pairs": 0, "accuracy": {a: None, b: None}}
    accuracy, resampled = _resampled_accuracies([counts_a, counts_b], common, resamples, seed)
    differences = resampled[:, 0] - resampled[:, 1]
    return {"difference": float(accuracy[0] - accuracy[1]), "ci_low": float(np.percentile(differences, 2.5)),
            "ci_high": float(np.percentile(differences, 97.5)), "n_problems": len(common),
            "pairs": int(sum(counts_a[p][1] for p in common)),
            "accuracy": {a: float(accuracy[0]), b: float(accuracy[1])}}


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation, None with fewer than 3 points or no spread."""
    if len(x) < 3:
        return None
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def length_correlation(candidates: list[CandidateRow]) -> dict[str, float | None]:
    """Over executed samples: corr(passed, length) and, per ranker, corr(score, length), with length
    in characters of the completion. A ranker that follows length where passing does not is
    rewarding length. Keys: 'passed' and each ranker name."""
    samples = [s for rows in executed_samples_by_problem(candidates).values() for s in rows]
    lengths = [len(s["completion"]) for s in samples]
    result = {"passed": pearson([float(bool(s["passed"])) for s in samples], lengths)}
    for ranker in RANKERS:
        scored = [(score, n) for s, n in zip(samples, lengths) if (score := s.get(ranker.key)) is not None]
        result[ranker.name] = pearson([v for v, _ in scored], [n for _, n in scored]) if scored else None
    return result


def bootstrap_ci(values: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean, resampling problems with replacement."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def pass_at_1_rows(candidates: list[CandidateRow], benchmark: str, language: str,
                   generator: str = "") -> list[PassAt1Row]:
    """One row per method with pass_at_1, ci_low, ci_high, n_problems (the store's evaluations schema),
    of the candidates of one `generator` (its label: 'base', 'gen-0', ...)."""
    return outcome_rows(problem_outcomes(candidates), benchmark, language, generator)


def outcome_rows(outcomes: dict[str, dict[str, float]], benchmark: str, language: str,
                 generator: str = "") -> list[PassAt1Row]:
    """pass@1 rows from {method: {problem id: pass}} (problem_outcomes, or a subset of its methods)."""
    rows: list[PassAt1Row] = []
    for method, per_problem in outcomes.items():
        if not per_problem:
            continue
        values = [per_problem[p] for p in sorted(per_problem)]
        low, high = bootstrap_ci(values)
        rows.append({"benchmark": benchmark, "language": language, "generator": generator, "method": method,
                     "pass_at_1": float(np.mean(values)), "ci_low": low, "ci_high": high, "n_problems": len(values)})
    return rows


def paired_difference_ci(a: dict[str, float], b: dict[str, float], *, resamples: int = 2000, seed: int = 0) -> dict:
    """Mean of a - b over the problems both cover, with a 95% bootstrap interval: is a really better than b?"""
    common = sorted(set(a) & set(b))
    differences = [a[p] - b[p] for p in common]
    low, high = bootstrap_ci(differences, resamples=resamples, seed=seed)
    return {"difference": float(np.mean(differences)) if differences else float("nan"), "ci_low": low,
            "ci_high": high, "n_problems": len(common)}
