"""`problems --check` runs a file's references and an empty completion in the sandbox: it names, by id,
the references that fail and the tests that pass without any code, and exits non-zero when it finds any."""
import json

import pytest

from lab.__main__ import main
from lab.config import ExecutionConfig
from lab.problem_check import check_problems
from lab.problems import load_user_problems

PROMPT = 'def add(a, b):\n    """The sum of a and b."""\n'
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
ROW = {"language": "py", "prompt": PROMPT, "tests": TESTS, "stop_tokens": ["\ndef"], "entry_point": "add"}
GOOD = {**ROW, "id": "good", "reference": "    return a + b\n"}
WRONG_REFERENCE = {**ROW, "id": "wrong_reference", "reference": "    return a - b\n"}
VACUOUS_TESTS = {**ROW, "id": "vacuous_tests", "tests": "assert add  # never calls it\n",
                 "reference": "    return a + b\n"}
NO_REFERENCE = {**ROW, "id": "no_reference"}


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def problems_file(tmp_path):
    return write_rows(tmp_path / "mine.jsonl", [GOOD, WRONG_REFERENCE, VACUOUS_TESTS, NO_REFERENCE])


def test_the_check_finds_the_wrong_reference_and_the_tests_that_need_no_code(problems_file):
    report = check_problems(load_user_problems(problems_file), ExecutionConfig(use_cache=False), progress=False)
    assert [c.problem.id for c in report.failing_references] == ["wrong_reference"]
    assert [c.problem.id for c in report.tests_passing_without_code] == ["vacuous_tests"]
    by_id = {c.problem.id: c for c in report.checks}
    assert by_id["good"].reference.passed and not by_id["good"].empty.passed
    assert by_id["no_reference"].reference is None and not by_id["no_reference"].empty.passed
    assert not report.ok


def test_the_command_lists_them_by_id_and_exits_non_zero(problems_file, capsys):
    assert main(["problems", "--benchmark", f"jsonl:{problems_file}", "--check", "--show", "0"]) == 1
    lines = capsys.readouterr().out.splitlines()
    report = lines[lines.index("checked 4 problems in the sandbox (3 with a reference)"):]
    assert report[1] == "references that fail their tests (1):"
    assert report[2].startswith("  wrong_reference (py): Exception, exit code 1: AssertionError")
    assert report[3:] == ["tests that pass with an empty completion, so check nothing (1):", "  vacuous_tests (py)",
                          "2 of 4 problems have broken tests or references"]


def test_a_sound_file_passes_the_check(tmp_path, capsys):
    path = write_rows(tmp_path / "sound.jsonl", [GOOD, NO_REFERENCE])
    assert main(["problems", "--benchmark", f"jsonl:{path}", "--check", "--show", "0"]) == 0
    assert "all 2 problems OK" in capsys.readouterr().out
