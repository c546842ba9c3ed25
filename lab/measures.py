"""Measures: pure functions over candidate rows and scores, one definition of each.

  METHODS / RANKERS   the ways to answer a problem (names, titles, the score a ranker picks by)
  problem_outcomes    per method, each problem's expected pass of the answer it picks
  top_pick_outcomes   the same for the sample ranked first by any candidate field
  pairwise_accuracy   of (chosen, rejected) score pairs, the fraction ordered right (ties count half)
  ranking_accuracy    pairwise accuracy over every (passing, failing) sample pair within a problem
  pooled_accuracy_ci  an accuracy pooled from per-problem (right, pairs) counts, 95% interval over problems
  macro_accuracy_ci   the same per problem, then averaged (each problem weighs alike: the ranking AUC)
  ranking_difference_ci   one ranker's ranking accuracy minus another's, 95% interval over problems
  length_correlation  Pearson correlation of a value (passing, a ranker's score) with completion length
  ensemble_scores     several reward models' scores, z-scored within each problem and averaged
  bootstrap_ci, paired_difference_ci   95% intervals over problems

A candidate row is a records.CandidateRow as `Store.candidates` returns it; the keys used here are
`problem_id`, `origin`, `passed` (1/0, None = not executed), `completion`, `mean_logprob`, `reward`,
`visible_examples` and `examples_passed` (the examples filter's), and those added by callers:
`reward_plus_logprob` (evaluation.py) and `ensemble` (`with_ensemble`).

Duplicates. A problem's samples with the same text are one distinct candidate (distinct.py): rankings
(top picks, ranking accuracy and AUC, length correlations) count each distinct text once; the random
pick weights each by how many samples it stands for, so it stays the pass rate of the N samples.

The examples filter. A filter ranker (FILTER_RANKERS) keeps the samples that pass the prompt's visible
examples (if none passes, or the prompt shows none, it keeps all) and picks the best of those by its
score; it reads the examples' verdicts, never the hidden tests. Its rows say "uses visible examples".

Not covered here: reading the store, sampling or scoring (evaluation.py, stages.py), tables and
plots (reports.py, plots.py).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lab.distinct import distinct_candidates, normalized_text
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


    filtered: bool = False
    """A ranker that first keeps the samples passing the prompt's visible examples (the examples filter)."""


@dataclass(frozen=True)
class Ranker(Method):
    key: RankerKey


USES_EXAMPLES = "[uses visible examples]"
"""Every table's mark on a method that reads the prompt's visible examples."""
METHODS: tuple[Method, ...] = (
    Method("greedy", "greedy"),
    Method("random", "random pick of N"),
    Ranker("logprob", "mean-log-prob rerank", "mean_logprob"),
    Ranker("reranker", "trained reranker top-1", "reward"),
    Ranker("reranker+logprob", "reranker + λ·log-prob top-1", "reward_plus_logprob"),
    Ranker("ensemble", "seed-ensemble reranker top-1", "ensemble"),
    Ranker("filter+logprob", f"examples filter + log-prob {USES_EXAMPLES}", "mean_logprob", True),
    Ranker("filter+reranker", f"examples filter + reranker {USES_EXAMPLES}", "reward", True),
    Ranker("filter+ensemble", f"examples filter + ensemble {USES_EXAMPLES}", "ensemble", True),
    Method("oracle", "oracle pass@N"),
)
METHOD_NAMES = tuple(m.name for m in METHODS)
METHOD_TITLES = {m.name: m.title for m in METHODS}
ALL_RANKERS: tuple[Ranker, ...] = tuple(m for m in METHODS if isinstance(m, Ranker))
RANKERS: tuple[Ranker, ...] = tuple(m for m in ALL_RANKERS if not m.filtered and m.key != "ensemble")
"""The rankers of one run (one reward model per iteration): ranking accuracy, length correlation and
pair accuracy are measured for each."""
ENSEMBLE = next(m for m in ALL_RANKERS if m.name == "ensemble")
FILTER_RANKERS: tuple[Ranker, ...] = tuple(m for m in ALL_RANKERS if m.filtered)

PASS_COMPARISONS = (("reranker", "random"), ("reranker", "logprob"), ("reranker", "greedy"),
                    ("reranker+logprob", "logprob"), ("reranker+logprob", "reranker"),
                    ("filter+reranker", "filter+logprob"), ("filter+logprob", "logprob"))
"""(a, b) method pairs whose pass@1 difference over the same problems is reported with a 95% interval."""
RANKING_COMPARISONS = (("reranker", "logprob"), ("reranker+logprob", "logprob"), ("reranker+logprob", "reranker"))
"""(a, b) ranker pairs whose ranking-accuracy difference over the same problems is reported the same way."""


def scores(rows: Sequence[CandidateRow], key: RankerKey) -> list[float] | None:
    """Each row's score by `key`, in order; None when any row lacks one."""
    found = [score for row in rows if (score := row.get(key)) is not None]
    return found if len(found) == len(rows) else None


def examples_filter(samples: list[CandidateRow]) -> list[CandidateRow] | None:
    """The samples that pass their prompt's visible examples, or all of them when none does or the prompt
    shows none; None when a sample has not been checked against the examples yet."""
    if any(s.get("visible_examples") is None for s in samples):
        return None
    return [s for s in samples if s.get("examples_passed") == 1] or samples


def _top_pick_pass_rate(samples: list[CandidateRow], key: RankerKey, filtered: bool = False) -> float | None:
    """Pass rate among the (distinct) samples tied at the highest `key`, after the examples filter when
    `filtered`; None when any sample lacks what that needs."""
    kept = examples_filter(samples) if filtered else samples
    values = scores(kept, key) if kept else None
    if not kept or values is None:
        return None
    best = max(values)
    tied = [s for s, value in zip(kept, values) if value == best]
    return sum(bool(s["passed"]) for s in tied) / len(tied)


def top_pick_outcomes(candidates: list[CandidateRow], key: RankerKey, *, filtered: bool = False) -> dict[str, float]:
    """problem_id -> expected pass of the executed sample ranked first by `key` (after the examples filter
    when `filtered`; ties: a random pick among distinct texts); a problem lacking what that needs is left out."""
    outcomes = {}
    for problem_id, samples in executed_samples_by_problem(candidates).items():
        rate = _top_pick_pass_rate(samples, key, filtered)
        if rate is not None:
            outcomes[problem_id] = rate
    return outcomes


def executed_samples_by_problem(candidates: list[CandidateRow]) -> dict[str, list[CandidateRow]]:
    """problem_id -> its executed samples as distinct candidates (distinct.py), each with its `count`."""
    grouped: dict[str, list[CandidateRow]] = defaultdict(list)
    for candidate in candidates:
        if candidate["origin"] == "sample" and candidate.get("passed") is not None:
            grouped[candidate["problem_id"]].append(candidate)
    return {problem_id: distinct_candidates(rows) for problem_id, rows in grouped.items()}


def problem_outcomes(candidates: list[CandidateRow]) -> dict[str, dict[str, float]]:
    """method -> {problem_id: expected pass (0..1)} from executed candidate rows. Ties among a
    ranker's top samples count as a random pick among them. A problem missing what a method needs
    (no greedy candidate, unscored samples) is left out of that method only."""
    outcomes: dict[str, dict[str, float]] = {name: {} for name in METHOD_NAMES}
    for candidate in candidates:
        if candidate["origin"] == "greedy" and candidate.get("passed") is not None:
            outcomes["greedy"].setdefault(candidate["problem_id"], float(bool(candidate["passed"])))
    for problem_id, samples in executed_samples_by_problem(candidates).items():
        counts = [s.get("count", 1) for s in samples]
        outcomes["random"][problem_id] = sum(n for s, n in zip(samples, counts) if s["passed"]) / sum(counts)
        outcomes["oracle"][problem_id] = float(any(s["passed"] for s in samples))
    for ranker in ALL_RANKERS:
        outcomes[ranker.name] = top_pick_outcomes(candidates, ranker.key, filtered=ranker.filtered)
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


def macro_accuracy_ci(counts: dict[str, tuple[float, int]], *, resamples: int = 2000, seed: int = 0) -> dict:
    """The mean over problems of each problem's accuracy (right / pairs): every problem weighs the same,
    however many pairs it has (for ranking counts, the per-problem ranking AUC), with a 95% interval
    over problems: {"accuracy", "ci_low", "ci_high", "n_problems"}."""
    per_problem = [right / n for right, n in counts.values() if n]
    if not per_problem:
        return {"accuracy": None, "ci_low": None, "ci_high": None, "n_problems": 0}
    low, high = bootstrap_ci(per_problem, resamples=resamples, seed=seed)
    return {"accuracy": float(np.mean(per_problem)), "ci_low": low, "ci_high": high, "n_problems": len(per_problem)}


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


def ensemble_scores(candidates: list[CandidateRow], members: Sequence[dict[int, float]]) -> dict[int, float]:
    """candidate id -> the mean over `members` (each: candidate id -> one reward model's score) of its score
    z-scored within its problem: (score - the problem's mean) / the problem's standard deviation, over the
    problem's distinct candidates that every member scored. Reward models of different seeds put their
    rewards on different scales; within a problem only the order matters, so each member votes on one
    scale. A member whose scores of a problem do not vary gives 0 there."""
    grouped: dict[str, list[CandidateRow]] = defaultdict(list)
    for candidate in candidates:
        if members and all(candidate["id"] in member for member in members):
            grouped[candidate["problem_id"]].append(candidate)
    result: dict[int, float] = {}
    for rows in grouped.values():
        distinct = distinct_candidates(rows)
        total = np.zeros(len(distinct))
        for member in members:
            values = np.array([member[row["id"]] for row in distinct], dtype=float)
            spread = values.std()
            if spread > 0:
                total += (values - values.mean()) / spread
        mean_z = {normalized_text(row["completion"]): z / len(members) for row, z in zip(distinct, total)}
        for row in rows:
            result[row["id"]] = float(mean_z[normalized_text(row["completion"])])
    return result


def with_ensemble(candidates: list[CandidateRow], members: Sequence[dict[int, float]]) -> list[CandidateRow]:
    """The rows with `ensemble` (`ensemble_scores`; None where a member has no score)."""
    combined = ensemble_scores(candidates, members)
    return [{**c, "ensemble": combined.get(c["id"])} for c in candidates]


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
