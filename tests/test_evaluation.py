"""Evaluation numbers on pure data: each method, the unbiased random pick, ties, CIs, the table and plots."""
import itertools
import math

import pytest
from conftest import measurement_row

from lab.measures import (
    bootstrap_ci,
    length_correlation,
    paired_difference_ci,
    pairwise_accuracy,
    pooled_accuracy_ci,
    problem_outcomes,
    ranking_accuracy,
    ranking_counts,
    ranking_difference_ci,
)
from lab.measures import pass_at_1_rows as evaluation_rows
from lab.plots import pass_at_1_bars_figure, pass_at_1_figure, reward_histogram_figure, save, training_curves_figure
from lab.records import MeasureKey
from lab.reports import ranking_markdown, table_markdown, write_csv

TEXTS = itertools.count()


def sample(problem, passed, logprob, reward, origin="sample", completion=None):
    """A candidate row; its completion a text of its own unless given (duplicates are one candidate)."""
    return {"problem_id": problem, "origin": origin, "passed": passed, "mean_logprob": logprob, "reward": reward,
            "completion": f"    return {next(TEXTS)}\n" if completion is None else completion}


CANDIDATES = [
    # problem a: greedy fails; 1 of 4 samples passes; the log-prob pick fails, the reranker pick passes
    sample("a", 0, -0.1, None, origin="greedy"),
    sample("a", 1, -0.9, 2.0), sample("a", 0, -0.2, 1.0), sample("a", 0, -0.5, 0.0), sample("a", 0, -0.7, -1.0),
    # problem b: greedy passes; no sample passes
    sample("b", 1, -0.1, None, origin="greedy"),
    sample("b", 0, -0.3, 0.5), sample("b", 0, -0.4, 0.1),
    # problem c: a reward tie between a passing and a failing sample counts as half
    sample("c", 1, -0.3, 1.0), sample("c", 0, -0.1, 1.0), sample("c", 0, -0.2, 0.0),
]


def test_each_method_per_problem():
    outcomes = problem_outcomes(CANDIDATES)
    assert outcomes["greedy"] == {"a": 0.0, "b": 1.0}
    assert outcomes["random"] == {"a": 0.25, "b": 0.0, "c": 1 / 3}
    assert outcomes["logprob"] == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert outcomes["reranker"] == {"a": 1.0, "b": 0.0, "c": 0.5}
    assert outcomes["oracle"] == {"a": 1.0, "b": 0.0, "c": 1.0}


def test_unexecuted_or_unscored_candidates_do_not_fake_a_number():
    rows = [sample("a", 1, -0.1, None), sample("a", 0, -0.2, 3.0), sample("a", None, -0.3, 1.0)]
    outcomes = problem_outcomes(rows)
    assert "a" not in outcomes["reranker"]  # one executed sample lacks a score: no reranker pick
    assert outcomes["random"]["a"] == 0.5  # the unexecuted sample is not counted as a failure


def test_ranking_accuracy_counts_every_passing_failing_pair_within_a_problem():
    ranking = ranking_accuracy(CANDIDATES)
    # a: the passing sample against 3 failing ones (log-prob 0 of 3, reward 3 of 3); b: nothing passes, no
    # pairs; c: 2 pairs (log-prob 0, reward: a tie counted half + a win); greedy candidates are not samples
    assert ranking["logprob"] == {"accuracy": 0.0, "pairs": 5, "problems": 2}
    assert ranking["reranker"] == {"accuracy": 0.9, "pairs": 5, "problems": 2}
    assert ranking["reranker+logprob"] == {"accuracy": None, "pairs": 0, "problems": 0}  # no combined score given
    unscored = CANDIDATES + [sample("c", 0, -0.9, None)]
    assert ranking_accuracy(unscored)["reranker"] == {"accuracy": 1.0, "pairs": 3, "problems": 1}  # c incomplete
    assert ranking_accuracy(unscored)["logprob"]["pairs"] == 6
    assert ranking_accuracy([sample("a", 1, -0.1, 1.0)])["reranker"] == {"accuracy": None, "pairs": 0, "problems": 0}
    measurements = [measurement_row("ranking_accuracy", name, value["accuracy"], iteration=1, eval_set="humaneval-py",
                                    count=value["pairs"]) for name, value in ranking.items()]
    table = ranking_markdown(measurements + [measurement_row("ranking_problems", "", 2, iteration=1,
                                                             eval_set="humaneval-py")])
    assert "| 1 | humaneval-py | 2 | 5 | 0.0 | 90.0 | – |" in table


def test_pairwise_accuracy_counts_ties_half_and_refuses_unequal_sides():
    assert pairwise_accuracy([2.0, 1.0, 0.0], [1.0, 1.0, 3.0]) == 0.5
    assert pairwise_accuracy([], []) is None
    with pytest.raises(ValueError, match="2 chosen scores but 1 rejected"):
        pairwise_accuracy([1.0, 2.0], [0.0])


def test_length_correlation_exposes_a_ranker_that_rewards_length():
    rows = [sample("a", int(n < 30), -0.1 * n, float(n), completion="x" * n) for n in (10, 20, 40, 50, 60)]
    correlation = length_correlation(rows)
    assert correlation["passed"] < -0.8 and correlation["reranker"] > 0.99 and correlation["logprob"] < -0.99
    assert length_correlation(rows[:2])["passed"] is None  # too few samples to say


def test_rows_carry_mean_ci_and_problem_count():
    rows = {r["method"]: r for r in evaluation_rows(CANDIDATES, "humaneval", "py")}
    assert rows["reranker"]["pass_at_1"] == 0.5 and rows["reranker"]["n_problems"] == 3
    assert rows["greedy"]["n_problems"] == 2
    for row in rows.values():
        assert row["ci_low"] <= row["pass_at_1"] <= row["ci_high"]


def test_bootstrap_interval_shrinks_with_more_problems_and_is_degenerate_for_constants():
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    small = bootstrap_ci([0, 1] * 10)
    large = bootstrap_ci([0, 1] * 500)
    assert small[1] - small[0] > large[1] - large[0] > 0
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_paired_difference_only_over_shared_problems():
    result = paired_difference_ci({"a": 1.0, "b": 1.0, "c": 0.0}, {"a": 0.0, "b": 1.0})
    assert result["n_problems"] == 2 and result["difference"] == 0.5


def test_table_layout_and_files(tmp_path):
    rows = []
    for iteration in (1, 2):
        for language in ("js", "py"):
            for row in evaluation_rows(CANDIDATES, "humaneval", language):
                rows.append({**row, "iteration": iteration})
    rows += [{**r, "iteration": 2} for r in evaluation_rows(CANDIDATES, "mbpp", "py")]
    markdown = table_markdown(rows)
    header = markdown.splitlines()[0]
    assert header.index("HumanEval Python") < header.index("HumanEval JavaScript") < header.index("MBPP Python")
    assert "HumanEval avg" in header
    assert sum(line.startswith("| 2 | this iteration's | trained reranker") for line in markdown.splitlines()) == 1
    assert "50.0" in markdown
    csv_text = write_csv(rows, tmp_path / "t.csv").read_text()
    assert csv_text.splitlines()[0].startswith("iteration,benchmark,language,generator,method")
    assert len(csv_text.splitlines()) == len(rows) + 1
    assert save(pass_at_1_figure(rows), tmp_path / "p.png")[0].stat().st_size > 0
    assert save(reward_histogram_figure(CANDIDATES), tmp_path / "h.png")[0].stat().st_size > 0
    assert save(reward_histogram_figure([]), tmp_path / "none.png") == []


def test_bar_and_training_curve_plots(tmp_path):
    rows = [{**row, "iteration": k} for k in (1, 2) for row in evaluation_rows(CANDIDATES, "humaneval", "py")]
    assert save(pass_at_1_bars_figure(rows), tmp_path / "bars.png")[0].stat().st_size > 0
    assert save(pass_at_1_bars_figure([]), tmp_path / "no_bars.png") == []
    metrics = [{"iteration": k, "stage": stage, "name": name, "step": step, "value": 0.1 * step}
               for k, stage in ((0, "train_rm"), (1, "policy"), (1, "train_rm")) for name in ("loss", "kl", "lr")
               for step in (1, 2, 3)]
    assert save(training_curves_figure(metrics), tmp_path / "curves.png")[0].stat().st_size > 0
    assert save(training_curves_figure(metrics, names=("reward",)), tmp_path / "no_curves.png") == []


def test_ranking_difference_resamples_problems_not_pairs():
    # one problem with 8 passing x 8 failing samples that the reranker orders right and log-prob wrong,
    # nine problems with one pair that both order the same: 64 of 73 pairs favour the reranker, but they
    # all come from one problem, so the interval over problems must reach down to no difference at all
    rows = [sample("big", 1, -1.0, 1.0) for _ in range(8)] + [sample("big", 0, 0.0, 0.0) for _ in range(8)]
    for index in range(9):
        rows += [sample(f"p{index}", 1, 0.0, 1.0), sample(f"p{index}", 0, -1.0, 0.0)]
    result = ranking_difference_ci(rows, "reranker", "logprob")
    assert result["n_problems"] == 10 and result["pairs"] == 73
    assert result["accuracy"] == {"reranker": 1.0, "logprob": 9 / 73}
    assert result["difference"] == pytest.approx(64 / 73)
    assert result["ci_low"] == 0.0 and result["ci_high"] > 0.9  # resampling the 73 pairs would exclude 0


def test_ranking_difference_only_over_problems_both_rankers_rank():
    rows = CANDIDATES + [sample("d", 1, -0.1, None), sample("d", 0, -0.2, None)]  # d: no reranker scores
    result = ranking_difference_ci(rows, "reranker", "logprob")
    ranking = ranking_accuracy(CANDIDATES)
    assert result["n_problems"] == 2 and result["pairs"] == 5
    assert result["difference"] == pytest.approx(ranking["reranker"]["accuracy"] - ranking["logprob"]["accuracy"])
    assert result["ci_low"] <= result["difference"] <= result["ci_high"]
    assert ranking_difference_ci(rows, "reranker+logprob", "logprob")["n_problems"] == 0


def test_pooled_accuracy_interval_spans_the_problems_not_the_pairs():
    # 50 pairs all right in one problem, 50 all wrong in another: 100 pairs at 0.5, but only two problems,
    # so a draw of the same problem twice (half the draws) lands on 0 or 1 and the interval spans [0, 1]
    result = pooled_accuracy_ci({"good": (50.0, 50), "bad": (0.0, 50), "no pairs": (0.0, 0)})
    assert (result["accuracy"], result["pairs"], result["n_problems"]) == (0.5, 100, 2)
    assert (result["ci_low"], result["ci_high"]) == (0.0, 1.0)
    assert pooled_accuracy_ci({})["accuracy"] is None and pooled_accuracy_ci({})["ci_low"] is None
    pooled = pooled_accuracy_ci(ranking_counts(CANDIDATES, "reward"))
    assert pooled["accuracy"] == ranking_accuracy(CANDIDATES)["reranker"]["accuracy"]
    assert pooled["ci_low"] <= pooled["accuracy"] <= pooled["ci_high"]


def test_the_reward_model_before_is_compared_on_the_same_candidates():
    from lab.evaluation import previous_reranker_measurements

    # rm-k orders every problem right; rm-(k-1) gets problem a wrong and leaves problem d unscored
    now = [dict(c, id=i) for i, c in enumerate(CANDIDATES + [sample("d", 1, -0.1, 1.0), sample("d", 0, -0.2, 0.0)])]
    now = [dict(c, reward=(1.0 if c["passed"] else 0.0) if c["origin"] == "sample" else None) for c in now]
    before = [dict(c, reward={"a": (0.0 if c["passed"] else 1.0), "d": None}.get(c["problem_id"], c["reward"]))
              for c in now]
    values = previous_reranker_measurements(now, before)
    # ranked by both: a (3 pairs, rm-(k-1) 0 right) and c (2 pairs, 2 right); b has no passing sample
    value_and_count = {key.label: (m.value, m.count) for key, m in values.items()}
    assert value_and_count["ranking_accuracy/previous_reranker"] == (pytest.approx(2 / 5), 5)
    difference = values[MeasureKey("ranking_difference", "reranker-previous_reranker")]
    assert (difference.value, difference.count) == (pytest.approx(1 - 2 / 5), 2)
    assert difference.ci_low <= difference.value <= difference.ci_high
    assert value_and_count["top1/previous_reranker"] == (pytest.approx((0 + 0 + 1) / 3), 3)
    assert value_and_count["top1_difference/reranker-previous_reranker"] == (pytest.approx(1 / 3), 3)
    assert previous_reranker_measurements(now, [dict(c, reward=None) for c in now]) == {}
