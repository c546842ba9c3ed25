"""Visible examples (lab/examples.py): parsed from the prompt alone, and a program that passes a right
completion and fails a wrong one, in every language the examples filter supports."""
import dataclasses

import pytest

from lab.config import make_config
from lab.examples import Example, examples_program, visible_examples
from lab.execution import Executor
from lab.problems import load_problems

RIGHT_AND_WRONG = {  # truncate_number (HumanEval/2) in each language: a right body and a wrong one
    "py": ("    return number % 1.0\n", "    return number\n"),
    "cpp": ("    return number - (int)number;\n", "    return number;\n"),
    "java": ("        return number - (int)number;\n", "        return number;\n"),
    "js": ("  return number % 1;\n", "  return number;\n"),
}


def truncate_number(language: str):
    problems = load_problems("multipl-e/humaneval", language=language, data=make_config("tiny").data)
    return next(p for p in problems if "truncate_number" in p.id)


@pytest.mark.parametrize("language, call, expected", [
    ("py", "truncate_number(3.5)", "0.5"), ("cpp", "truncate_number((3.5f))", "(0.5f)"),
    ("java", "truncateNumber((3.5f))", "(0.5f)"), ("js", "truncate_number(3.5)", "0.5")])
def test_examples_are_read_from_the_prompt_alone(language, call, expected):
    problem = truncate_number(language)
    assert visible_examples(problem) == [Example(call, expected)]
    hidden_only = "123.0"  # a value only the hidden tests hold
    assert hidden_only in problem.tests and hidden_only not in examples_program(problem, "")


@pytest.mark.integration
@pytest.mark.parametrize("language", sorted(RIGHT_AND_WRONG))
def test_examples_program_passes_a_right_completion_and_fails_a_wrong_one(language):
    problem = truncate_number(language)
    right, wrong = RIGHT_AND_WRONG[language]
    with Executor(make_config("tiny").execution) as executor:
        if language not in executor.available_languages():
            pytest.skip(f"no {language} toolchain here: scripts/setup.sh installs it")
        results = executor.run_many([(language, examples_program(problem, right)),
                                     (language, examples_program(problem, wrong))], progress=False)
    assert [r.passed for r in results] == [True, False], results[1].stderr


def test_python_examples_keep_the_result_not_the_explanation_after_it():
    problem = truncate_number("py")
    prompt = ('def f(x):\n    """Doubles.\n    >>> f(2)\n    4\n    Explanation: 2 + 2.\n    >>> f([1])\n'
              '    [1,\n     1]\n    """\n')
    examples = visible_examples(dataclasses.replace(problem, prompt=prompt))
    assert examples == [Example("f(2)", "4"), Example("f([1])", "[1,\n 1]")]


def test_a_language_without_parsed_examples_has_none():
    problem = load_problems("multipl-e/humaneval", language="sh", data=make_config("tiny").data)[2]
    assert visible_examples(problem) == [] and examples_program(problem, "") is None
