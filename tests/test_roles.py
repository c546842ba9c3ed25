"""Problem roles kept apart: 'auto' training splits, and a run refused when a problem or a near-copy of one
would train and be held out or evaluated (both problems named); the selection leaves such copies out."""
import dataclasses

import pytest

from lab.config import UsageError, make_config
from lab.problems import Problem
from lab.roles import check_roles, leave_out_near_duplicates, near_duplicates, training_splits


def problem(id, text, split="train"):
    prompt = f'def f(x):\n    """{text}\n    >>> f(1)\n    1\n    """\n'
    return Problem(id, "py", prompt, "assert f(1) == 1\n", ("\ndef",), "f", "mbpp", split, True)


TRAIN = problem("mbpp-he/699", "Write a python function to find the minimum number of swaps required to convert one "
                               "binary string to another.")
NEAR = problem("mbpp-he/595", "Write a python function to count minimum number of swaps required to convert one "
                              "binary string to another.", "validation")
OTHER = problem("mbpp-he/12", "Write a function to sort a given matrix in ascending order according to the sum of "
                              "its rows.", "test")


def test_auto_trains_on_every_mbpp_split_that_is_neither_held_out_nor_evaluated():
    assert training_splits(make_config("tiny").data) == ("train", "test", "prompt")
    with_mbpp = make_config("tiny", **{"data.eval_benchmarks": "humaneval,mbpp"})
    assert training_splits(with_mbpp.data) == ("train", "prompt")
    assert training_splits(make_config("tiny", **{"data.train_splits": "train"}).data) == ("train",)


def test_near_duplicate_prompts_are_found_by_their_words():
    found = near_duplicates([TRAIN, OTHER], [NEAR], 0.6)
    assert [(a.id, b.id) for a, b, _ in found] == [("mbpp-he/699", "mbpp-he/595")] and found[0][2] > 0.6
    kept, reasons = leave_out_near_duplicates([TRAIN, OTHER], [NEAR], 0.6)
    assert kept == [OTHER] and [(a.id, b.id) for a, b, _ in reasons] == [("mbpp-he/699", "mbpp-he/595")]


def test_a_run_is_refused_when_roles_overlap_by_id_or_by_a_near_copy():
    check_roles({"train": [TRAIN, OTHER], "validation": [dataclasses.replace(OTHER, id="mbpp-he/13", prompt="x")]}, 0.6)
    with pytest.raises(UsageError, match="mbpp-he/12 is both a 'train' and a 'eval' problem"):
        check_roles({"train": [TRAIN, OTHER], "eval": [OTHER]}, 0.6)
    with pytest.raises(UsageError, match="train problem mbpp-he/699 nearly duplicates validation problem mbpp-he/595"):
        check_roles({"train": [TRAIN, OTHER], "validation": [NEAR]}, 0.6)


def test_the_selection_leaves_near_copies_of_held_out_problems_out_of_training():
    from lab.evaluation import heldout_problems
    from lab.loop import train_problem_selection

    config = make_config("tiny", **{"data.max_train_problems": "none", "data.max_validation_problems": "none"})
    problems, note = train_problem_selection(config)
    held_out = heldout_problems(config)
    ids = {p.id for p in problems}
    assert "mbpp-he/699" not in ids and "mbpp-he/595" in {p.id for p in held_out}  # the pair above, in MBPP itself
    assert note and "mbpp-he/699" in note
    assert {p.split for p in problems} == {"train", "test", "prompt"}
    check_roles({"train": problems, "validation": held_out}, config.data.near_duplicate_similarity)
