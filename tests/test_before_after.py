"""The measures, tables and pairs of the code before the one-way-house refactor (commit b85488b) are
what the code gives now, on the same candidates; where a twin was wrong, the figure changed as the
refactor's note says, and this pins both figures.

`tests/data/before_refactor.json` was recorded by running b85488b's own functions
(`evaluation.evaluation_rows`, `evaluation.ranking_accuracy`, `mining.execution_pairs`,
`mining.hard_negatives`, `mining.hard_negative_pairs`, `mining.pairwise_accuracy_from_scores` and
`reward.evaluate_pairs`'s strict rule) on (a) the candidates of a tiny-preset main job run by that
commit (`python -m lab run --preset tiny --set data.max_train_problems=8 --set
data.max_eval_problems=8 --set sampling.num_samples=6`: its iteration-1 evaluation candidates, its
iteration-0 training pool and its iteration-1 scored pool, with what that run stored) and (b) the
rows `synthetic_candidates(seed)` below builds (problems with passes and failures, tied log-probs
and rewards, manual labels), which the tiny run cannot give (its random model never passes).

Not covered here: scores (training the tiny reward model is not bit-reproducible across processes;
tests/test_reward.py checks the scoring path against the plain full forward).
"""
import json
import random
from pathlib import Path

import pytest

from lab.config import MiningConfig
from lab.measures import pairwise_accuracy, pass_at_1_rows, ranking_accuracy
from lab.mining import by_problem, execution_pairs, hard_negative_pairs, hard_negatives

RECORDED = json.loads((Path(__file__).parent / "data" / "before_refactor.json").read_text())
MINING = MiningConfig(**RECORDED["mining"])
OLD_METHODS = ("greedy", "random", "logprob", "reranker", "oracle")


def synthetic_candidates(seed: int) -> list[dict]:
    """Candidate rows with every case the measures and miners branch on (pure Python: the recorder
    ran this same function against the old code)."""
    rng = random.Random(seed)
    rows, next_id = [], 1
    for p in range(10):
        pass_rate = rng.choice([0.0, 0.2, 0.5, 0.8, 1.0])
        for origin, count in (("greedy", 1), ("sample", rng.randint(3, 7)), ("reference", rng.randint(0, 1))):
            for index in range(count):
                passed = None if rng.random() < 0.05 else int(rng.random() < pass_rate)
                rows.append({
                    "id": next_id, "problem_id": f"p{p:02d}", "origin": origin, "sample_index": index,
                    "passed": 1 if origin == "reference" else passed,
                    "mean_logprob": round(rng.uniform(-1.5, 0), 1),  # one decimal: ties happen
                    "reward": None if rng.random() < 0.03 else round(rng.uniform(-2, 2), 1),
                    "completion": "x" * rng.randint(5, 120),
                    "label": rng.choice([None] * 12 + ["positive", "hard_negative", "exclude"]),
                })
                next_id += 1
    return rows


def cases():
    tiny = RECORDED["tiny_run"]
    yield "tiny_run", tiny
    for case in RECORDED["synthetic"]:
        yield f"synthetic-{case['seed']}", {**case, "evaluation_candidates": synthetic_candidates(case["seed"]),
                                           "training_pool": synthetic_candidates(case["seed"]),
                                           "scored_pool": synthetic_candidates(case["seed"])}


CASES = dict(cases())


def _evaluated(candidates: list[dict]) -> list[dict]:
    return [c for c in candidates if c["origin"] in ("greedy", "sample")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_pass_at_1_table_is_unchanged(name):
    case = CASES[name]
    now = [row for row in pass_at_1_rows(_evaluated(case["evaluation_candidates"]), "humaneval", "py")
           if row["method"] in OLD_METHODS]
    before = case["evaluation_rows"]
    assert [row["method"] for row in now] == [row["method"] for row in before]
    for row, old in zip(now, before):
        # rows now say which generator answered; the recorded ones predate that field
        assert set(row) - set(old) == {"generator"}
        row = {k: v for k, v in row.items() if k in old}
        assert ({k: v for k, v in row.items() if isinstance(v, str)}
                == {k: v for k, v in old.items() if isinstance(v, str)})
        assert {k: v for k, v in row.items() if not isinstance(v, str)} == \
            pytest.approx({k: v for k, v in old.items() if not isinstance(v, str)}), row["method"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_ranking_accuracy_is_unchanged(name):
    case = CASES[name]
    now = ranking_accuracy(_evaluated(case["evaluation_candidates"]))
    for method, before in case["ranking_accuracy"].items():
        assert now[method]["pairs"] == before["pairs"], method
        assert now[method]["accuracy"] == pytest.approx(before["accuracy"]), method


@pytest.mark.parametrize("name", sorted(CASES))
def test_hard_negatives_and_their_pairs_are_unchanged(name):
    case = CASES[name]
    pool = case["scored_pool"]
    assert [hard_negatives(rows, MINING) for rows in by_problem(pool).values()] == case["hard_negatives"]
    assert [list(pair) for pair in hard_negative_pairs(pool, MINING)] == case["hard_negative_pairs"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_hard_negative_accuracy_counts_ties_half_before_and_after(name):
    """The twin that was wrong: before retraining the old loop counted a tie as half, after
    retraining (reward.evaluate_pairs) as a loss. Both are now measures.pairwise_accuracy: the
    'before' figure is unchanged, the 'after' rule gives the recorded tie-as-half figure, no longer
    the strict one (they differ where the pairs hold ties)."""
    case = CASES[name]
    reward_of = {c["id"]: c["reward"] for c in case["scored_pool"] if c["reward"] is not None}
    scored = [(c, r) for c, r, _ in case["hard_negative_pairs"] if c in reward_of and r in reward_of]
    now = pairwise_accuracy([reward_of[c] for c, _ in scored], [reward_of[r] for _, r in scored])
    assert now == pytest.approx(case["accuracy_ties_half"])
    ties = sum(reward_of[c] == reward_of[r] for c, r in scored)
    if scored:
        assert case["accuracy_strict"] == pytest.approx(now - 0.5 * ties / len(scored))


@pytest.mark.parametrize("name", sorted(CASES))
def test_execution_pairs_keep_their_count_and_cover_at_least_as_many_candidates(name):
    """Changed on purpose: the old round-robin walk took each problem's positives and
    negatives in id order; pairs are now chosen least-used first, then closest in length. Without
    balance_lengths every problem keeps its number of pairs (which of them are 'manual' follows
    which candidates are picked), no pair repeats, and as many distinct candidates take part."""
    case = CASES[name]
    now = execution_pairs(case["training_pool"], RECORDED["max_pairs_per_problem"], balance_lengths=False)
    before = [tuple(pair) for pair in case["execution_pairs"]]
    problem_of = {c["id"]: c["problem_id"] for c in case["training_pool"]}

    def per_problem(pairs):
        counts = {}
        for chosen, _, _ in pairs:
            counts[problem_of[chosen]] = counts.get(problem_of[chosen], 0) + 1
        return counts

    assert per_problem(now) == per_problem(before)
    assert len(set(now)) == len(now)
    for problem in {problem_of[c] for c, _, _ in before}:
        def used(pairs, problem=problem):
            return {i for c, r, _ in pairs if problem_of[c] == problem for i in (c, r)}
        assert len(used(now)) >= len(used(before)), problem
