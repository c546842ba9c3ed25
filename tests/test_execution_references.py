"""Whole-file validation (slow): every HumanEval reference solution passes, apart from the
listed upstream quirks, both from HumanEval.jsonl and under MultiPL-E's Python prompts and tests."""
import pytest

from lab.config import ExecutionConfig
from lab.selftest import KNOWN_QUIRKS, exec_check

pytestmark = pytest.mark.slow


def test_reference_solutions_pass_except_known_quirks():
    checks, references = exec_check(ExecutionConfig(use_cache=False), languages=["py"], full=True)
    assert checks[0].ok
    by_source = {r.source: r for r in references}
    assert by_source["humaneval/HumanEval.jsonl"].passed == by_source["humaneval/HumanEval.jsonl"].total == 164
    multiple = by_source["multipl-e/humaneval-py.jsonl"]
    assert multiple.passed >= 158
    assert set(multiple.failures) <= set(KNOWN_QUIRKS), multiple.failures
