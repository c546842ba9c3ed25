"""Visible examples (lab/examples.py): parsed from the prompt alone, and a program that passes a right
completion and fails a wrong one, in every language the examples filter supports; the stage that stores
each candidate's verdict (stages.check_visible_examples) never reads the hidden tests."""
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


def test_the_examples_stage_stores_verdicts_resumably_and_never_reads_the_hidden_tests(tmp_path, monkeypatch):
    from lab.stages import RunContext, check_visible_examples
    from lab.store import Store

    poison = "raise SystemExit('the hidden tests were read')"
    shown = dataclasses.replace(truncate_number("py"), tests=poison)
    hidden_only = dataclasses.replace(shown, id="no-examples", prompt="def truncate_number(number: float) -> float:\n")
    config = make_config("tiny", lab_dir=str(tmp_path))
    store = Store(config.store_path)
    run_id = store.create_run("default", "tiny", config.to_json())
    store.add_problems([shown, hidden_only], run_id, role="eval")
    right, wrong = RIGHT_AND_WRONG["py"]
    ids = store.add_candidates(run_id, 0, [
        {"problem_id": shown.id, "model": "m", "sample_index": 0, "completion": right},
        {"problem_id": shown.id, "model": "m", "sample_index": 1, "completion": wrong},
        {"problem_id": hidden_only.id, "model": "m", "sample_index": 0, "completion": right}])
    programs = []
    run_many = Executor.run_many

    def recording(self, jobs, progress=True):
        programs.extend(program for _, program in jobs)
        return run_many(self, jobs, progress)

    monkeypatch.setattr(Executor, "run_many", recording)
    run = RunContext(config, store, run_id, log=lambda line: None)
    assert check_visible_examples(run, 0) == {"checked": 3}
    verdicts = {c["id"]: (c["visible_examples"], c["examples_passed"]) for c in store.candidates(run_id)}
    assert verdicts == {ids[0]: (1, 1), ids[1]: (1, 0), ids[2]: (0, None)}  # the wrong body fails a visible example
    assert len(programs) == 2 and not any(poison in program for program in programs)
    assert check_visible_examples(run, 0) == {"checked": 0}  # resumable: checked candidates are not checked again
