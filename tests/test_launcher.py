"""The background-iteration launcher with real processes: progress and log tail, refusal of a
second launch (same or another Launcher, or a job typed in a terminal), cancel of the whole process
group, failure, kill -9."""
import json
import os
import signal
import sys
import time

import pytest

from lab.__main__ import main
from lab.config import make_config
from lab.launcher import Launcher, LaunchRefused, iterate_command, job_lock, read_log_tail, run_overrides

PROGRESS = (
    "import sys, time\n"
    "print('starting', flush=True)\n"
    "for i in range(5):\n"
    "    sys.stderr.write(f'\\rsample:  {i * 25}%|##   | {i}/4'); sys.stderr.flush(); time.sleep(0.05)\n"
    "print('\\ndone', flush=True)\n"
)
SLEEPER_WITH_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "open(sys.argv[1], 'w').write(str(child.pid))\n"
    "print('working', flush=True)\n"
    "time.sleep(60)\n"
)


def wait_until(predicate, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_job_runs_reports_progress_and_refuses_a_second_launch(tmp_path):
    launcher = Launcher(tmp_path)
    job = launcher.start([sys.executable, "-c", PROGRESS + "time.sleep(1.5)\n"], tmp_path / "run" / "logs" / "a.log")
    assert job.running and job.pid
    with pytest.raises(LaunchRefused, match="already running"):
        launcher.start([sys.executable, "-c", "pass"], tmp_path / "b.log")
    with pytest.raises(LaunchRefused):
        Launcher(tmp_path).start([sys.executable, "-c", "pass"], tmp_path / "c.log")
    assert Launcher(tmp_path).status().running
    assert wait_until(lambda: "done" in launcher.status().log_tail)
    assert wait_until(lambda: not launcher.status().running)
    job = launcher.status()
    assert job.state == "succeeded" and job.returncode == 0
    assert job.progress_label == "sample" and job.progress_percent == 100
    assert "starting" in job.log_tail and " 25%|" not in job.log_tail
    assert launcher.start([sys.executable, "-c", "pass"], tmp_path / "d.log").pid


def test_a_terminal_job_and_the_app_never_run_two_jobs_on_one_store(tmp_path, capsys):
    with job_lock(tmp_path, ["python", "-m", "lab", "iterate"]):
        with pytest.raises(LaunchRefused, match=f"pid {os.getpid()}: python -m lab iterate"):
            Launcher(tmp_path).start([sys.executable, "-c", "pass"], tmp_path / "a.log")
        assert Launcher(tmp_path).status().running
    launcher = Launcher(tmp_path)
    launcher.start([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "b.log")
    assert main(["iterate", "--preset", "tiny", "--lab-dir", str(tmp_path)]) == 2
    assert "a job is already running" in capsys.readouterr().err
    launcher.cancel(grace_s=0.5)


def test_the_launched_job_holds_the_lock_it_inherited(tmp_path):
    holds = (f"from lab.launcher import job_lock\nwith job_lock({str(tmp_path)!r}, ['x']):\n"
             "    print('inside', flush=True)\n")
    launcher = Launcher(tmp_path)
    launcher.start([sys.executable, "-c", holds], tmp_path / "a.log")
    assert wait_until(lambda: not launcher.status().running)
    assert launcher.status().state == "succeeded", launcher.status().log_tail


def test_a_failing_job_is_reported_with_its_exit_status(tmp_path):
    launcher = Launcher(tmp_path)
    launcher.start([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
                   tmp_path / "x.log")
    assert wait_until(lambda: not launcher.status().running)
    job = launcher.status()
    assert job.state == "failed" and job.returncode == 3 and "boom" in job.log_tail


def test_cancel_kills_the_whole_process_group(tmp_path):
    launcher = Launcher(tmp_path)
    child_pid_file = tmp_path / "child.pid"
    job = launcher.start([sys.executable, "-c", SLEEPER_WITH_CHILD, str(child_pid_file)], tmp_path / "x.log")
    assert wait_until(lambda: child_pid_file.exists() and child_pid_file.read_text())
    child_pid = int(child_pid_file.read_text())
    job = launcher.cancel(grace_s=2.0)
    assert job.state == "cancelled" and not job.running
    assert wait_until(lambda: not alive(child_pid), 5)
    assert not alive(job.pid)


def test_cancel_escalates_to_sigkill_when_signals_are_ignored(tmp_path):
    stubborn = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    launcher = Launcher(tmp_path)
    job = launcher.start([sys.executable, "-c", stubborn], tmp_path / "x.log")
    assert wait_until(lambda: "ready" in launcher.status().log_tail)
    assert launcher.cancel(grace_s=0.3).state == "cancelled" and not alive(job.pid)


def test_a_job_killed_hard_leaves_no_stale_lock(tmp_path):
    other = Launcher(tmp_path)
    job = other.start([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "x.log")
    watcher = Launcher(tmp_path)
    assert watcher.status().running and watcher.status().pid == job.pid
    os.killpg(job.pid, signal.SIGKILL)
    assert wait_until(lambda: not other.status().running)
    assert watcher.status().state == "finished"
    assert watcher.start([sys.executable, "-c", "pass"], tmp_path / "y.log").pid


def test_log_tail_collapses_carriage_returns_and_survives_bad_bytes(tmp_path):
    log = tmp_path / "x.log"
    log.write_bytes(b"line one\n\xff\xfe odd\nexecute:  10%|#  | 1/10\rexecute:  90%|#########  | 9/10\n")
    tail, label, percent = read_log_tail(log, lines=2)
    assert tail.splitlines() == ["\ufffd\ufffd odd", "execute:  90%|#########  | 9/10"]
    assert (label, percent) == ("execute", 90)
    assert read_log_tail(tmp_path / "missing.log") == ("", "", None)


def test_next_iteration_command_keeps_the_runs_stored_overrides(tmp_path):
    config = make_config("tiny", **{"sampling.num_samples": 2, "data.eval_languages": "py,cpp",
                                    "lab_dir": str(tmp_path), "run_name": "r"})
    overrides = run_overrides(config.to_json(), "tiny")
    assert overrides == ["data.eval_languages=py,cpp", "sampling.num_samples=2"]
    assert make_config("tiny", **dict(item.split("=", 1) for item in overrides)).to_dict() == \
        make_config("tiny", **{"sampling.num_samples": 2, "data.eval_languages": "py,cpp"}).to_dict()
    command = iterate_command(tmp_path, "r", "tiny", overrides)
    assert command[1:] == ["-m", "lab", "iterate", "--lab-dir", str(tmp_path), "--run", "r", "--preset", "tiny",
                           "--iterations", "1", "--set", "data.eval_languages=py,cpp",
                           "--set", "sampling.num_samples=2"]
    assert run_overrides(json.dumps({}), "tiny") == []


def test_labels_made_while_a_job_writes_to_the_store_are_kept(tmp_path):
    from lab.problems import Problem
    from lab.store import Store

    with Store(tmp_path / "lab.sqlite") as store:
        run_id = store.create_run("r", "tiny", "{}")
        store.add_problems([Problem("p/1", "py", "def f():\n", "", (), "f", "test", "train", True)], run_id, "train")
        [candidate] = store.add_candidates(run_id, 0, [{"problem_id": "p/1", "model": "g", "sample_index": 0,
                                                        "completion": "x"}])
        writer = (
            "import sys\nfrom lab.store import Store\n"
            "store = Store(sys.argv[1])\n"
            "for i in range(1, 200):\n"
            "    store.add_candidates(1, 1, [{'problem_id': 'p/1', 'model': 'g', 'sample_index': i,\n"
            "                                 'completion': 'y'}])\n"
        )
        launcher = Launcher(tmp_path)
        launcher.start([sys.executable, "-c", writer, str(tmp_path / "lab.sqlite")], tmp_path / "w.log")
        for label in ("hard_negative", "positive", "exclude") * 5:
            store.add_label(candidate, label, "alice")
        assert wait_until(lambda: not launcher.status().running, 60)
        assert launcher.status().state == "succeeded", launcher.status().log_tail
        assert len(store.label_history(candidate)) == 15 and len(store.candidates(run_id)) == 200
