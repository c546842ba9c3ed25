"""Checks that a problem set's tests can tell right from wrong, by running them in the sandbox:
each problem's `reference` (when it has one) must pass, and an empty completion must fail (a test
that passes without any code checks nothing). `python -m lab problems --benchmark jsonl:PATH --check`.

Not covered here: reading and validating the rows (problems.py), the sandbox (execution.py), the
per-language check of the toolchains themselves (selftest.exec_check).
"""
from __future__ import annotations

from dataclasses import dataclass

from lab.config import ExecutionConfig
from lab.execution import ExecutionResult, Executor, build_program
from lab.problems import Problem


@dataclass(frozen=True)
class ProblemCheck:
    problem: Problem
    reference: ExecutionResult | None
    """The reference solution's run; None when the problem has no reference."""
    empty: ExecutionResult
    """The run of prompt + '' + tests."""

    @property
    def reference_fails(self) -> bool:
        return self.reference is not None and not self.reference.passed

    @property
    def passes_without_code(self) -> bool:
        return self.empty.passed


@dataclass(frozen=True)
class CheckReport:
    checks: tuple[ProblemCheck, ...]
    unchecked: dict[str, str]
    """Problem id -> why it was not run (no toolchain here for its language, and the package to install)."""

    @property
    def failing_references(self) -> list[ProblemCheck]:
        return [check for check in self.checks if check.reference_fails]

    @property
    def tests_passing_without_code(self) -> list[ProblemCheck]:
        return [check for check in self.checks if check.passes_without_code]

    @property
    def ok(self) -> bool:
        return not (self.failing_references or self.tests_passing_without_code or self.unchecked)


def check_problems(problems: list[Problem], config: ExecutionConfig, *, progress: bool = True) -> CheckReport:
    """Run every reference and an empty completion of each problem against its tests."""
    with Executor(config) as executor:
        missing = executor.missing_languages()
        runnable = [p for p in problems if p.language not in missing]
        jobs = []
        for problem in runnable:
            jobs.append((problem.language, build_program(problem, "")))
            if problem.reference is not None:
                jobs.append((problem.language, build_program(problem, problem.reference)))
        results = iter(executor.run_many(jobs, progress=progress))
    checks = []
    for problem in runnable:
        empty = next(results)
        reference = next(results) if problem.reference is not None else None
        broken = [r for r in (empty, reference) if r is not None and r.executor_error]
        if broken:  # no verdict on the problem: say so rather than report its tests as wrong
            raise RuntimeError(f"{problem.id}: the executor itself failed ({broken[0].stderr.strip()[:300]}); "
                               "rerun, and check the sandbox with `python -m lab selftest`")
        checks.append(ProblemCheck(problem, reference, empty))
    unchecked = {p.id: f"no {p.language} toolchain here (apt-get install {missing[p.language]})"
                 for p in problems if p.language in missing}
    return CheckReport(tuple(checks), unchecked)


def format_report(report: CheckReport) -> str:
    with_reference = sum(check.reference is not None for check in report.checks)
    lines = [f"checked {len(report.checks)} problems in the sandbox ({with_reference} with a reference)"]
    if report.failing_references:
        lines.append(f"references that fail their tests ({len(report.failing_references)}):")
        lines += [f"  {check.problem.id} ({check.problem.language}): {_outcome(check.reference)}"
                  for check in report.failing_references]
    if report.tests_passing_without_code:
        lines.append("tests that pass with an empty completion, so check nothing "
                     f"({len(report.tests_passing_without_code)}):")
        lines += [f"  {check.problem.id} ({check.problem.language})" for check in report.tests_passing_without_code]
    if report.unchecked:
        lines.append(f"not checked ({len(report.unchecked)}):")
        lines += [f"  {problem_id}: {why}" for problem_id, why in report.unchecked.items()]
    if report.ok:
        lines.append(f"all {len(report.checks)} problems OK: every reference passes, no test passes without code")
    else:
        broken = {c.problem.id for c in report.failing_references + report.tests_passing_without_code}
        lines.append(f"{len(broken)} of {len(report.checks) + len(report.unchecked)} problems have broken tests or "
                     f"references" + (f", {len(report.unchecked)} could not be checked" if report.unchecked else ""))
    return "\n".join(lines)


def _outcome(result: ExecutionResult | None) -> str:
    if result is None:
        return "not run"
    last_line = next((line for line in reversed(result.stderr.strip().splitlines()) if line.strip()), "")
    return f"{result.status}, exit code {result.exit_code}" + (f": {last_line[:200]}" if last_line else "")
