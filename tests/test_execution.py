"""Executor: MultiPL-E program assembly, verdicts per language (a wrong completion must fail),
the verdict traps, toolchain discovery, caching and ordering."""
import dataclasses

import pytest

from lab import languages
from lab.config import ExecutionConfig
from lab.execution import ExecutionResult, Executor, ToolchainMissing, build_program
from lab.problems import load_problems, truncate_at_stop
from lab.sandbox import SandboxError
from lab.selftest import CORRECT_ADD, wrong_add


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    with Executor(ExecutionConfig(timeout_s=10.0, use_cache=False)) as ex:
        yield ex


def add_problem(language):
    return next(p for p in load_problems("multipl-e/humaneval", language=language) if p.id.endswith("HumanEval_53_add"))


@pytest.fixture(scope="module")
def add_results(executor):
    """One batch for every language: (correct result, wrong result) per language."""
    present = [code for code in CORRECT_ADD if code not in executor.missing_languages()]
    jobs = []
    for code in present:
        problem = add_problem(code)
        jobs += [(code, build_program(problem, CORRECT_ADD[code])), (code, build_program(problem, wrong_add(code)))]
    results = executor.run_many(jobs, progress=False)
    return {code: (results[2 * i], results[2 * i + 1]) for i, code in enumerate(present)}


def test_truncate_at_stop_cuts_at_the_earliest_token():
    assert truncate_at_stop("a\nb\ndef c\n#x", ["\n#", "\ndef"]) == "a\nb"
    assert truncate_at_stop("no stop here", ["\ndef", ""]) == "no stop here"


@pytest.mark.integration
def test_an_instruct_models_closing_code_fence_ends_the_completion_in_every_language(executor):
    """Qwen2.5-Coder-Instruct closes its body with a Markdown fence; executed, that was a SyntaxError
    (90 of 161 HumanEval greedy answers of the 'full' run before this cut)."""
    body = "    return sorted(x)\n```\n\nThis sorts the list."
    assert truncate_at_stop(body, ["\ndef"]) == "    return sorted(x)"
    assert truncate_at_stop(body, []) == "    return sorted(x)"
    assert truncate_at_stop("    s = '```'\n    return s\n", ["\ndef"]) == "    s = '```'\n    return s\n"
    problem = add_problem("py")
    result = executor.run_many([("py", build_program(problem, "    return x + y\n```\n"))], progress=False)[0]
    assert result.passed, result


def test_build_program_is_prompt_truncated_completion_newline_tests():
    problem = add_problem("py")
    program = build_program(problem, "    return x + y\ndef junk():\n    pass\n")
    assert program == problem.prompt + "    return x + y" + "\n" + problem.tests


@pytest.mark.integration
@pytest.mark.parametrize("language", list(CORRECT_ADD))
def test_correct_completion_passes_and_wrong_one_fails(add_results, executor, language):
    if language not in add_results:
        pytest.skip(f"toolchain missing: apt-get install {executor.missing_languages()[language]}")
    correct, wrong = add_results[language]
    assert correct.passed and correct.status == "OK" and correct.exit_code == 0, correct.stderr[-2000:]
    assert not wrong.passed and wrong.status == "Exception", (wrong.status, wrong.stderr[-2000:])
    assert correct.toolchain == languages.toolchain_version(language)


@pytest.mark.integration
@pytest.mark.parametrize("language", ["cs", "rkt"])
def test_failures_that_exit_zero_are_still_failures(add_results, language):
    """C#'s Debug.Assert and rackunit report on stderr but exit 0: the verdict must say Exception."""
    wrong = add_results[language][1]
    assert wrong.exit_code == 0 and wrong.status == "Exception" and not wrong.passed


@pytest.mark.parametrize("language, completion", [
    ("py", "    return x +\n"),
    ("cpp", "    return x + ;\n"),
    ("java", "        return x + \"y\";\n"),
    ("ts", "  return \"not a number\";\n}\n"),
    ("go", "    return x +\n}\n"),
    ("cs", "        return x + \"y\";\n"),
])
@pytest.mark.integration
def test_compile_and_syntax_errors_are_syntax_error(executor, language, completion):
    result = executor.run(language, build_program(add_problem(language), completion))
    assert result.status == "SyntaxError" and not result.passed, (result.status, result.stderr[-1000:])


def test_infinite_loop_times_out_and_is_killed():
    with Executor(ExecutionConfig(timeout_s=1.0, use_cache=False, workers=1)) as ex:
        result = ex.run("py", "while True:\n    pass\n")
    assert result.status == "Timeout" and result.exit_code is None and not result.passed
    assert result.duration_s < 4.0


def test_run_many_keeps_input_order(executor):
    programs = [("py", f"import sys\nprint({i})\nsys.exit({i % 2})\n") for i in range(6)]
    results = executor.run_many(programs, progress=False)
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(6)]
    assert [r.passed for r in results] == [i % 2 == 0 for i in range(6)]


def test_output_is_capped():
    with Executor(ExecutionConfig(max_output_bytes=1000, use_cache=False, workers=1)) as ex:
        result = ex.run("py", "print('x' * 5000)\n")
    assert len(result.stdout) <= 1000 and result.passed


def test_results_are_cached_by_program(tmp_path):
    config = ExecutionConfig(use_cache=True, workers=1)
    with Executor(config, cache_dir=str(tmp_path)) as ex:
        first = ex.run("py", "print('hello')\n")
        again = ex.run("py", "print('hello')\n")
        other = ex.run("py", "print('hello!')\n")
    assert not first.cached and again.cached and not other.cached
    assert (again.status, again.stdout) == (first.status, first.stdout)


def test_executor_failures_are_never_cached(tmp_path, monkeypatch):
    broken = ExecutionResult("Exception", None, "", "[execution] worker died", 0.0, False, "", executor_error=True)
    with Executor(ExecutionConfig(use_cache=True, workers=1), cache_dir=str(tmp_path)) as ex:
        monkeypatch.setattr(ex, "_dispatch", lambda tasks: ((index, broken) for index, *_ in tasks))
        assert ex.run("py", "print('hello')\n").executor_error
        monkeypatch.undo()
        retried = ex.run("py", "print('hello')\n")
    assert retried.passed and not retried.cached


def test_missing_toolchain_raises_before_running_anything(monkeypatch, tmp_path):
    broken = dataclasses.replace(languages.LANGUAGES["lua"], tools=("lua-not-installed-here",))
    monkeypatch.setitem(languages.LANGUAGES, "lua", broken)
    marker = tmp_path / "ran"
    with Executor(ExecutionConfig(use_cache=False, workers=1)) as ex:
        assert "lua" not in ex.available_languages() and ex.missing_languages()["lua"] == "lua5.4"
        with pytest.raises(ToolchainMissing, match="apt-get install lua5.4") as error:
            ex.run_many([("py", f"open('{marker}', 'w')\n"), ("lua", "print(1)\n")])
    assert error.value.language == "lua" and error.value.debian_package == "lua5.4"
    assert not ex.workers and not marker.exists()


def test_unknown_language_is_refused(executor):
    with pytest.raises(ValueError, match="unknown language"):
        executor.run("cobol", "DISPLAY 'x'.")


def test_no_isolation_needs_the_explicit_flag():
    with pytest.raises(SandboxError, match="allow_unsandboxed"):
        Executor(ExecutionConfig(isolation="none"))


@pytest.mark.integration
def test_go_problems_language_field_is_accepted(executor):
    assert languages.get_language("go_test.go").code == "go"
