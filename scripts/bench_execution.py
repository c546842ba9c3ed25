"""Benchmark the executor, with every baseline measured in the same run (the machine is shared,
so only same-run ratios mean anything).

1. Throughput: tiny Python test programs, full isolation (bwrap + cgroups + seccomp) vs. no
   isolation, one worker per core. Targets: >= 35 runs/s on 2 cores, >= 0.7 of the unsandboxed rate.
2. Per-language latency: median ms per program through the executor (one worker, sandboxed,
   with its compile tricks) vs. the plain baseline of one compiler process per program,
   unsandboxed (g++ without a precompiled header, javac + java, tsc + node).
   Targets: C++ <= 0.45 s, Java <= 0.2 s, TypeScript <= 0.15 s per program.

Usage: python scripts/bench_execution.py [--runs 300] [--programs 12]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from lab.config import ExecutionConfig
from lab.execution import Executor, build_program
from lab.languages import JAVATUPLES, toolchain_version
from lab.problems import load_problems
from lab.selftest import CORRECT_ADD

LATENCY_TARGETS_S = {"cpp": 0.45, "java": 0.2, "ts": 0.15}
BASELINE_COMMANDS = {
    "cpp": ("main.cpp", [["g++", "-std=c++17", "-o", "main", "main.cpp"], ["./main"]]),
    "java": ("Problem.java", [["javac", "-cp", JAVATUPLES, "-d", ".", "Problem.java"],
                              ["java", "-ea", "-cp", f".:{JAVATUPLES}", "Problem"]]),
    "ts": ("main.ts", [["tsc", "--target", "esnext", "main.ts"], ["node", "main.js"]]),
}


def tiny_python_programs(count: int) -> list[tuple[str, str]]:
    return [("py", f"def add(x, y):\n    return x + y\n\nassert add({i}, 1) == {i + 1}\n") for i in range(count)]


def throughput(isolation: str, runs: int) -> float:
    config = ExecutionConfig(isolation=isolation, allow_unsandboxed=True, use_cache=False)
    with Executor(config) as executor:
        executor.run_many(tiny_python_programs(2 * (config.workers or os.cpu_count())), progress=False)  # warm workers
        jobs = tiny_python_programs(runs)
        started = time.perf_counter()
        results = executor.run_many(jobs, progress=False)
        elapsed = time.perf_counter() - started
    assert all(r.passed for r in results), [r.stderr for r in results if not r.passed][:1]
    return runs / elapsed


def add_programs(language: str, count: int) -> list[str]:
    """Distinct correct programs (a numbered comment defeats every cache)."""
    problem = next(p for p in load_problems("multipl-e/humaneval", language=language)
                   if p.id.endswith("HumanEval_53_add"))
    comment = "#" if language == "py" else "//"
    return [f"{build_program(problem, CORRECT_ADD[language])}\n{comment} bench {i} {time.time()}\n"
            for i in range(count)]


def executor_latency(language: str, programs: list[str]) -> float:
    with Executor(ExecutionConfig(use_cache=False, workers=1)) as executor:
        executor.run(language, programs[0])  # start the worker and its compile server
        results = [executor.run(language, program) for program in programs[1:]]
    assert all(r.passed for r in results), [r.stderr for r in results if not r.passed][:1]
    return statistics.median(r.duration_s for r in results)


def baseline_latency(language: str, programs: list[str]) -> float:
    file_name, steps = BASELINE_COMMANDS[language]
    times = []
    for program in programs[1:]:
        with tempfile.TemporaryDirectory() as work:
            Path(work, file_name).write_text(program)
            started = time.perf_counter()
            for step in steps:
                subprocess.run(step, cwd=work, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="tiny Python programs per throughput measurement")
    parser.add_argument("--programs", type=int, default=12, help="programs per language for latency")
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"machine: {cores} cores, load average {os.getloadavg()[0]:.1f} (shared: compare ratios, not absolutes)")

    sandboxed = throughput("bwrap", args.runs)
    bare = throughput("none", args.runs)
    print(f"\nthroughput, tiny Python tests, {cores} workers:")
    print(f"  full isolation (bwrap+cgroup+seccomp): {sandboxed:6.1f} runs/s   target >= 35 on 2 cores: "
          f"{'met' if sandboxed >= 35 else 'NOT met'}")
    print(f"  no isolation:                          {bare:6.1f} runs/s")
    print(f"  ratio sandboxed / unsandboxed:         {sandboxed / bare:6.2f}        target >= 0.70: "
          f"{'met' if sandboxed / bare >= 0.7 else 'NOT met'}")

    print("\nper-language median per program (compile + run):")
    print(f"  {'lang':<5} {'executor':>10} {'baseline':>10} {'speed-up':>9}  target  toolchain")
    for language, target in LATENCY_TARGETS_S.items():
        programs = add_programs(language, args.programs + 1)
        ours = executor_latency(language, programs)
        theirs = baseline_latency(language, programs)
        print(f"  {language:<5} {ours * 1000:8.0f}ms {theirs * 1000:8.0f}ms {theirs / ours:8.1f}x  "
              f"<= {target:.2f}s {'met' if ours <= target else 'NOT met'}  {toolchain_version(language)}")


if __name__ == "__main__":
    main()
