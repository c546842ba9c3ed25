"""Mining and pair building on pure data: labels win over execution, the hard-negative rules hold."""
from lab.config import MiningConfig
from lab.mining import (
    execution_pairs,
    hard_negative_pairs,
    hard_negatives,
    length_balance,
    pair_is_consistent,
    problems_with_both_verdicts,
    verdict,
)


def candidate(id, passed, reward=None, label=None, problem="mbpp/700"):
    return {"id": id, "problem_id": problem, "passed": passed, "reward": reward, "label": label}


def test_verdicts_manual_labels_win_over_execution():
    assert verdict(candidate(1, 0, label="positive")).positive
    assert not verdict(candidate(2, 1, label="hard_negative")).positive
    assert verdict(candidate(3, 1, label="exclude")) is None
    assert verdict(candidate(4, None)) is None  # never executed, never labelled
    assert verdict(candidate(5, None, label="positive")).manual


def test_manual_positive_on_a_failing_candidate_becomes_a_chosen_side():
    rows = [candidate(1, 0, label="positive"), candidate(2, 0), candidate(3, 0)]
    pairs = execution_pairs(rows, max_pairs_per_problem=4)
    assert {c for c, _, _ in pairs} == {1}
    assert {r for _, r, _ in pairs} == {2, 3}
    assert all(kind == "manual" for _, _, kind in pairs)


def test_exclude_removes_a_candidate_from_every_pair():
    rows = [candidate(1, 1, 0.1), candidate(2, 1, 0.2, label="exclude"), candidate(3, 0, 0.9),
            candidate(4, 0, 0.8, label="exclude"), candidate(5, 0, 0.5)]
    mining = MiningConfig(top_k=5, margin=10.0, max_hard_negatives_per_problem=10, positives_per_hard_negative=5)
    for pairs in (execution_pairs(rows, 100), hard_negative_pairs(rows, mining)):
        ids = {i for c, r, _ in pairs for i in (c, r)}
        assert pairs and ids.isdisjoint({2, 4})


def test_execution_pairs_cover_distinct_candidates_without_duplicates():
    rows = [candidate(i, int(i < 3)) for i in range(8)]  # 3 passing, 5 failing
    pairs = execution_pairs(rows, max_pairs_per_problem=15)
    assert len(pairs) == len(set(pairs)) == 15
    first = execution_pairs(rows, max_pairs_per_problem=5)
    assert {c for c, _, _ in first} == {0, 1, 2} and len({r for _, r, _ in first}) == 5


def test_no_pairs_for_problems_without_both_sides_and_never_across_problems():
    rows = [candidate(1, 1, problem="a"), candidate(2, 0, problem="b"), candidate(3, 1, problem="c"),
            candidate(4, 0, problem="c")]
    assert execution_pairs(rows, 4) == [(3, 4, "execution")]


def test_problems_with_both_verdicts_count_labels_and_skip_unexecuted_and_excluded_candidates():
    rows = [candidate(1, 1, problem="both"), candidate(2, 0, problem="both"),
            candidate(3, 1, problem="all pass"), candidate(4, None, problem="all pass"),  # never executed
            candidate(5, 0, problem="labelled"), candidate(6, 0, label="positive", problem="labelled"),
            candidate(7, 1, problem="excluded"), candidate(8, 0, label="exclude", problem="excluded")]
    assert problems_with_both_verdicts(rows) == {"both", "labelled"}


def test_hard_negative_only_when_at_or_above_best_passing_minus_margin_or_in_top_k():
    rows = [candidate(1, 1, 0.5), candidate(2, 1, 0.9),  # best passing = 0.9
            candidate(3, 0, 0.95),  # above the best passing: hard
            candidate(4, 0, 0.9),   # equal: hard ("at or above")
            candidate(5, 0, 0.85),  # within margin 0.1 of 0.9: hard
            candidate(6, 0, 0.7),   # below the margin and outside the top-k: not hard
            candidate(7, 0, None)]  # unscored: never an automatic hard negative
    mining = MiningConfig(top_k=1, margin=0.1, max_hard_negatives_per_problem=10)
    assert hard_negatives(rows, mining) == [3, 4, 5]
    strict = MiningConfig(top_k=0, margin=0.0, max_hard_negatives_per_problem=10)
    assert hard_negatives(rows, strict) == [3, 4]
    by_rank = MiningConfig(top_k=6, margin=-1.0, max_hard_negatives_per_problem=10)  # margin rule off in effect
    assert hard_negatives(rows, by_rank) == [3, 4, 5, 6]


def test_top_k_rule_finds_hard_negatives_even_when_every_one_is_below_the_best_passing():
    rows = [candidate(1, 1, 2.0), candidate(2, 0, 1.0), candidate(3, 0, 0.5), candidate(4, 0, 0.1)]
    assert hard_negatives(rows, MiningConfig(top_k=3, margin=0.0)) == [2, 3]


def test_cap_keeps_the_hardest_and_manual_hard_negatives_always_come_first():
    rows = [candidate(1, 1, 0.0)] + [candidate(10 + i, 0, float(i)) for i in range(6)]
    rows.append(candidate(99, 1, -5.0, label="hard_negative"))  # passes its tests, but a human says it is wrong
    mining = MiningConfig(top_k=10, margin=0.0, max_hard_negatives_per_problem=3)
    assert hard_negatives(rows, mining) == [99, 15, 14]


def test_hard_negative_pairs_use_the_lowest_rewarded_positives_and_record_manual_kind():
    rows = [candidate(1, 1, 0.3), candidate(2, 1, 0.1), candidate(3, 1, 0.2), candidate(4, 0, 0.9),
            candidate(5, 0, 0.05, label="hard_negative")]
    pairs = hard_negative_pairs(rows, MiningConfig(top_k=1, margin=0.0, positives_per_hard_negative=2))
    assert (2, 4, "hard_negative") in pairs and (3, 4, "hard_negative") in pairs
    assert (2, 5, "manual") in pairs and (3, 5, "manual") in pairs
    assert len(pairs) == 4


def test_labels_given_after_pairing_drop_contradicted_pairs():
    pair = {"chosen_id": 1, "rejected_id": 2}
    assert pair_is_consistent(pair, {})
    assert not pair_is_consistent(pair, {2: "exclude"})
    assert not pair_is_consistent(pair, {1: "hard_negative"})
    assert not pair_is_consistent(pair, {2: "positive"})
    assert pair_is_consistent(pair, {1: "positive", 2: "hard_negative"})


def lengthy(id, passed, length, problem="mbpp/700"):
    """A candidate whose completion is `length` characters, a text of its own (duplicates are one candidate)."""
    return {**candidate(id, passed, problem=problem), "completion": chr(65 + id % 50) * length}


def test_balanced_pairs_do_not_let_length_tell_chosen_from_rejected():
    # every problem offers mostly "chosen shorter" pairs (failing samples run on), one offers the other kind
    rows = []
    for p in range(6):
        rows += [lengthy(10 * p + 1, 1, 20, f"p{p}"), lengthy(10 * p + 2, 0, 80, f"p{p}"),
                 lengthy(10 * p + 3, 0, 90, f"p{p}")]
    rows += [lengthy(100, 1, 90, "q"), lengthy(101, 0, 30, "q"), lengthy(102, 0, 40, "q")]
    unbalanced = length_balance(execution_pairs(rows, 4), rows)
    assert unbalanced["chosen_shorter"] > 0.8
    balanced_pairs = execution_pairs(rows, 4, balance_lengths=True)
    balanced = length_balance(balanced_pairs, rows)
    longer, shorter = balanced["chosen_longer"] * len(balanced_pairs), balanced["chosen_shorter"] * len(balanced_pairs)
    assert abs(longer - shorter) <= 1 and longer >= 2
    assert len(set(balanced_pairs)) == len(balanced_pairs)


def test_balanced_pairs_prefer_the_closest_lengths_and_keep_equal_lengths():
    rows = [lengthy(1, 1, 50), lengthy(2, 0, 200), lengthy(3, 0, 55), lengthy(4, 0, 50)]
    pairs = execution_pairs(rows, 2, balance_lengths=True)
    assert [r for _, r, _ in pairs] == [4, 3]  # equal length first (counts for neither side), then the closest


def test_balanced_hard_negative_pairs_pick_positives_that_keep_length_even():
    # each problem: a short and a long positive, one long hard negative; the lowest-rewarded positive
    # is the short one, so without balance every pair has the shorter side chosen
    mining = MiningConfig(top_k=1, margin=10.0, max_hard_negatives_per_problem=1, positives_per_hard_negative=1)
    rows = []
    for p in range(6):
        rows += [{**lengthy(10 * p + 1, 1, 20, f"p{p}"), "reward": 0.0},
                 {**lengthy(10 * p + 2, 1, 120, f"p{p}"), "reward": 0.5},
                 {**lengthy(10 * p + 3, 0, 100, f"p{p}"), "reward": 1.0}]
    plain = hard_negative_pairs(rows, mining)
    assert length_balance(plain, rows)["chosen_shorter"] == 1.0
    balanced = hard_negative_pairs(rows, mining, balance_lengths=True)
    assert len(balanced) == len(plain) and {r for _, r, _ in balanced} == {r for _, r, _ in plain}
    assert length_balance(balanced, rows)["chosen_longer"] == 0.5
