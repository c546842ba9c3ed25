"""The study's rankers on pure data: the seed ensemble (z-scored within a problem, then averaged), the
examples filter (keeps what passes the visible examples, all when none does), duplicates as one candidate
(pairs and rankings count a text once, the random pick weights it by its count), the per-problem ranking
AUC, and λ cross-fitted over problems."""
import pytest

from lab import evaluation, mining
from lab.distinct import distinct_candidates, normalized_text
from lab.measures import (
    ensemble_scores,
    examples_filter,
    macro_accuracy_ci,
    problem_outcomes,
    ranking_counts,
    with_ensemble,
)


def row(id, problem, passed, text, *, reward=None, logprob=-0.5, examples=1, examples_passed=1, origin="sample"):
    return {"id": id, "problem_id": problem, "origin": origin, "passed": passed, "completion": text,
            "reward": reward, "mean_logprob": logprob, "label": None, "visible_examples": examples,
            "examples_passed": examples_passed if examples else None}


def test_the_ensemble_is_the_mean_of_each_models_scores_z_scored_within_the_problem():
    rows = [row(1, "a", 1, "x"), row(2, "a", 0, "y"), row(3, "a", 0, "z"), row(4, "b", 1, "u"), row(5, "b", 0, "v")]
    first = {1: 10.0, 2: 0.0, 3: 5.0, 4: 1.0, 5: 1.0}  # a large scale; no spread on b
    second = {1: -0.1, 2: 0.2, 3: 0.0, 4: 3.0, 5: 1.0}  # a small scale
    combined = ensemble_scores(rows, [first, second])
    z_first = [(10 - 5) / 4.0825, (0 - 5) / 4.0825, 0.0]  # population sd of 10, 0, 5
    z_second = [(-0.1 - 0.0333) / 0.1247, (0.2 - 0.0333) / 0.1247, (0.0 - 0.0333) / 0.1247]
    assert [combined[i] for i in (1, 2, 3)] == pytest.approx([(f + s) / 2 for f, s in zip(z_first, z_second)], abs=1e-3)
    assert combined[4] == pytest.approx(0.5) and combined[5] == pytest.approx(-0.5)  # b: only the second votes
    # scales do not matter, order does: multiplying a member's scores leaves the ensemble as it was
    assert ensemble_scores(rows, [{k: 100 * v for k, v in first.items()}, second]) == pytest.approx(combined)
    # a candidate a member did not score is left out; the rest of its problem still gets a score
    partial = ensemble_scores(rows, [first, {k: v for k, v in second.items() if k != 3}])
    assert 3 not in partial and {1, 2, 4, 5} <= set(partial)
    ranked = with_ensemble(rows, [first, second])
    assert problem_outcomes(ranked)["ensemble"] == {"a": 1.0, "b": 1.0}


def test_the_examples_filter_drops_a_candidate_that_fails_a_visible_example():
    # the log-prob pick fails the visible examples: the filter keeps the other two and picks the passing one
    rows = [row(1, "a", 0, "wrong", logprob=-0.1, examples_passed=0), row(2, "a", 1, "right", logprob=-0.3),
            row(3, "a", 0, "wrong too", logprob=-0.9)]
    assert [r["id"] for r in examples_filter(rows)] == [2, 3]
    outcomes = problem_outcomes(rows)
    assert outcomes["logprob"] == {"a": 0.0} and outcomes["filter+logprob"] == {"a": 1.0}
    # when nothing passes the examples, or the prompt shows none, the filter keeps every sample
    none_pass = [dict(r, examples_passed=0) for r in rows]
    assert examples_filter(none_pass) == none_pass
    no_examples = [dict(r, visible_examples=0, examples_passed=None) for r in rows]
    assert examples_filter(no_examples) == no_examples
    assert problem_outcomes(no_examples)["filter+logprob"] == outcomes["logprob"]
    # a sample never checked against the examples: no filtered pick for its problem
    assert examples_filter([dict(rows[0], visible_examples=None), rows[1]]) is None
    assert "a" not in problem_outcomes([dict(rows[0], visible_examples=None), *rows[1:]])["filter+logprob"]


def test_duplicates_are_one_candidate_for_pairs_and_rankings_and_count_for_the_random_pick():
    assert normalized_text("    return x  \n\n") == normalized_text("    return x")
    rows = [row(1, "a", 1, "    return 1\n", reward=2.0), row(2, "a", 1, "    return 1  \n", reward=2.0),
            row(3, "a", 1, "    return 1", reward=2.0), row(4, "a", 0, "    return 0\n", reward=2.0)]
    distinct = distinct_candidates(rows)
    assert [(r["id"], r["count"]) for r in distinct] == [(1, 3), (4, 1)]
    # a top-score tie between a text sampled 3 times and one sampled once is a coin flip between two answers
    outcomes = problem_outcomes(rows)
    assert outcomes["reranker"] == {"a": 0.5}
    assert outcomes["random"] == {"a": 0.75}  # the pass rate of the 4 samples
    assert ranking_counts(rows, "reward") == {"a": (0.5, 1)}  # one (passing, failing) pair, tied
    # pairs never pit a text against itself, whatever its verdicts say
    flaky = [row(1, "a", 1, "same"), row(2, "a", 0, "same"), row(3, "a", 0, "other")]
    assert mining.execution_pairs(flaky, 4) == [(1, 3, "execution")]


def test_the_ranking_auc_weighs_every_problem_alike():
    counts = {"a": (9.0, 10), "b": (0.0, 1)}  # pooled: 9 of 11 right; per problem: 0.9 and 0.0
    assert macro_accuracy_ci(counts)["accuracy"] == pytest.approx(0.45)
    assert macro_accuracy_ci({})["accuracy"] is None


def test_lambda_is_cross_fitted_never_on_the_problems_it_scores(monkeypatch):
    rows = [row(10 * p + i, f"p{p}", int(i == 0), f"text {p} {i}", reward=float(i)) for p in range(7) for i in range(2)]
    fitted_on = []

    def fit(candidates):
        fitted_on.append({c["problem_id"] for c in candidates})
        return 1.0

    monkeypatch.setattr(evaluation, "fit_lambda", fit)
    combined = evaluation.crossfit_combined(rows)
    assert sorted(c["id"] for c in combined) == sorted(c["id"] for c in rows)
    assert len(fitted_on) == evaluation.CROSSFIT_FOLDS
    for problems in fitted_on:  # each fit saw every problem but those of the fold it then scored
        assert len(problems) in (5, 6)
    assert set.union(*({f"p{p}" for p in range(7)} - problems for problems in fitted_on)) == {f"p{p}" for p in range(7)}
    assert all(c["reward_plus_logprob"] == pytest.approx(c["reward"] + c["mean_logprob"]) for c in combined)


def test_pairs_use_only_failures_that_pass_the_visible_examples_when_asked():
    rows = [row(1, "a", 1, "right"), row(2, "a", 0, "caught by the examples", examples_passed=0),
            row(3, "a", 0, "slips through"), row(4, "b", 0, "no examples shown", examples=0), row(5, "b", 1, "ok")]
    assert [r["id"] for r in mining.eligible_negatives(rows, "all")] == [1, 2, 3, 4, 5]
    kept = mining.eligible_negatives(rows, "examples_passing")
    assert [r["id"] for r in kept] == [1, 3, 4, 5]
    assert {(c, r) for c, r, _ in mining.execution_pairs(kept, 4)} == {(1, 3), (5, 4)}
    with pytest.raises(ValueError, match="no visible-example verdict"):
        mining.eligible_negatives([dict(rows[2], visible_examples=None)], "examples_passing")
