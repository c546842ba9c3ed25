"""The command line: every command has --help, and bad input exits 2 with a clear message."""
import subprocess
import sys
from pathlib import Path

import pytest

from lab.__main__ import build_parser, main

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ["run", "iterate", "eval", "study", "problems", "export", "import-policy", "app", "selftest", "exec-check",
            "config"]


def test_every_command_has_help():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert sorted(subcommands) == sorted(COMMANDS)
    for name, parser in subcommands.items():
        assert parser.format_help().strip(), name


def test_module_entry_point_prints_help():
    result = subprocess.run([sys.executable, "-m", "lab", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "run" in result.stdout and "selftest" in result.stdout


def test_problems_command_summarises_a_benchmark(capsys):
    assert main(["problems", "--benchmark", "mbpp", "--split", "train", "--show", "0"]) == 0
    out = capsys.readouterr().out
    assert "mbpp [py]: 349 problems (train 349)" in out
    assert "left out (cannot be posed in the evaluation's form): 25" in out


@pytest.mark.parametrize("argv, message", [
    (["problems", "--benchmark", "multipl-e/humaneval", "--purpose", "train"], "evaluation-only"),
    (["problems", "--benchmark", "multipl-e/humaneval", "--language", "xx"], "unknown language 'xx'"),
    (["config", "--set", "sampling.nope=1"], "unknown config field 'sampling.nope'"),
    (["export", "pairs", "--out", "x.jsonl", "--run", "ghost"], "no run called 'ghost'"),
    (["export", "engines", "--out", "handoff", "--run", "ghost"], "no run called 'ghost'"),
    (["import-policy", "adapter", "--iteration", "1", "--run", "ghost"], "no run called 'ghost'"),
    (["study", "no-such-protocol.toml"], "protocol no-such-protocol.toml: cannot read it"),
])
def test_bad_input_exits_2_with_the_reason(argv, message, capsys, tmp_path):
    assert main(argv + ["--lab-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
