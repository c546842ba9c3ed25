"""The job console: only stage lines (and the stage's bar) reach the terminal, the chatter of
third-party code lands in the log, verbose shows it, and every stream is restored afterwards.

The terminal tests run a child process, so that its stdout and stderr are real pipes and the
libraries' handlers are created on them as they would be on a terminal."""
import logging
import subprocess
import sys
import textwrap
import warnings

import pytest

from lab.console import JobConsole, format_duration

CHATTY_JOB = textwrap.dedent("""
    import logging, sys, warnings
    import transformers.utils.logging as transformers_logging
    from datasets import Dataset
    from lab.console import JobConsole

    log_path, verbose, fail = sys.argv[1], sys.argv[2] == "verbose", sys.argv[3] == "fail"
    with JobConsole(log_path, verbose=verbose) as console:
        with console.stage(0, "chatty", estimate_s=30) as stage:
            warnings.warn("is_gradient_checkpointing is deprecated", FutureWarning)
            transformers_logging.get_logger("transformers.modeling_utils").warning("Qwen2ForCausalLM LOAD REPORT")
            logging.getLogger("trl.trainer").warning("a TRL notice")
            print({"loss": 1.25, "step": 1})
            print("stray stderr line", file=sys.stderr)
            Dataset.from_list([{"x": i} for i in range(3)]).map(lambda row: row)
            if fail:
                raise RuntimeError("boom in the stage")
            stage.summary = "all good"
        console.say("the end")
""")
CHATTER = ["is_gradient_checkpointing is deprecated", "LOAD REPORT", "a TRL notice", "'loss': 1.25",
           "stray stderr line"]


def run_job(tmp_path, verbose=False, fail=False):
    log_path = tmp_path / "run" / "log.txt"
    child = subprocess.run([sys.executable, "-c", CHATTY_JOB, str(log_path), "verbose" if verbose else "quiet",
                            "fail" if fail else "ok"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    return child, log_path.read_text(encoding="utf-8")


def test_only_the_stage_lines_reach_the_terminal_and_the_chatter_is_in_the_log(tmp_path):
    child, log = run_job(tmp_path)
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert lines[0] == f"full log: {tmp_path / 'run' / 'log.txt'} (--verbose shows it here as well)"
    assert lines[1] == "[iteration 0] chatty ... (estimated ~30 s)"
    assert lines[2].startswith("[iteration 0] chatty done in ") and lines[2].endswith(", estimated ~30 s: all good")
    assert lines[3:] == ["the end"]
    assert child.stderr == ""
    assert all(text in log for text in CHATTER)
    assert "Map" not in log  # datasets' progress bars are off, not merely moved


def test_verbose_shows_the_chatter_live_and_still_logs_it(tmp_path):
    child, log = run_job(tmp_path, verbose=True)
    assert child.returncode == 0, child.stderr
    assert all(text in child.stderr + child.stdout for text in CHATTER)
    assert all(text in log for text in CHATTER)
    assert "Map" in child.stderr  # verbose leaves the libraries' bars on


def test_a_failing_stage_says_so_and_its_traceback_reaches_the_user(tmp_path):
    child, log = run_job(tmp_path, fail=True)
    assert child.returncode == 1
    assert "[iteration 0] chatty FAILED: RuntimeError: boom in the stage" in child.stdout
    assert "Traceback (most recent call last)" in child.stderr and "RuntimeError: boom in the stage" in child.stderr
    assert not any(text in child.stderr for text in CHATTER)
    assert "RuntimeError: boom in the stage" in log and "the end" not in child.stdout


def test_streams_logging_and_warnings_are_restored_after_nested_and_failed_stages(tmp_path):
    before = sys.stdout, sys.stderr, warnings.showwarning, logging.getLogger().handlers[:]
    with JobConsole(tmp_path / "log.txt") as console:
        with console.stage(1, "outer"):
            outer_stdout = sys.stdout
            assert outer_stdout is not before[0]
            with pytest.raises(ValueError), console.stage(1, "inner"):
                print("inside inner")
                raise ValueError("inner failed")
            assert sys.stdout is outer_stdout
            print("inside outer")
        assert (sys.stdout, sys.stderr) == before[:2]
    assert (sys.stdout, sys.stderr, warnings.showwarning, logging.getLogger().handlers) == before
    log = (tmp_path / "log.txt").read_text(encoding="utf-8")
    assert "inside inner" in log and "inside outer" in log and "ValueError: inner failed" in log


def test_a_handler_created_inside_a_stage_writes_to_the_terminal_once_the_stage_is_over(tmp_path, capsys):
    with JobConsole(tmp_path / "log.txt") as console:
        with console.stage(0, "imports"):
            late_handler = logging.StreamHandler()  # binds to sys.stderr as it is inside the stage
            late_handler.stream.write("during the stage\n")
    late_handler.stream.write("after the console\n")
    captured = capsys.readouterr()
    assert "after the console" in captured.err and "during the stage" not in captured.err + captured.out
    assert "during the stage" in (tmp_path / "log.txt").read_text(encoding="utf-8")


def test_the_stage_bar_shows_progress_with_an_eta_on_the_terminal(tmp_path, capsys):
    with JobConsole(tmp_path / "log.txt") as console, console.stage(0, "sample"):
        bar = console.progress(total=4, desc="candidates")
        bar.update(2)
        bar.refresh()
    shown = capsys.readouterr().out
    assert "candidates:  50%" in shown and "2/4 [" in shown and "<" in shown  # elapsed<remaining
    assert "candidates" not in (tmp_path / "log.txt").read_text(encoding="utf-8")


def test_format_duration():
    assert [format_duration(s) for s in (4.2, 89, 200, 3 * 3600 + 5 * 60)] == ["4 s", "89 s", "3.3 min", "3 h 05 min"]
