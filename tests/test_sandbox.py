"""Sandbox properties, each checked from the host side: who the program runs as, what it can
see and touch, its network, its environment, and that runs cannot see each other's files."""
import dataclasses
import os
import socket

import pytest

from lab.config import ExecutionConfig
from lab.execution import Executor
from lab.sandbox import DENIED_SYSCALLS, seccomp_filter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="per-uid sandboxing needs root (CI runs as root)")


@pytest.fixture(scope="module", params=["bwrap", "light"])
def executor(request):
    with Executor(ExecutionConfig(isolation=request.param, use_cache=False, workers=1, timeout_s=10.0)) as ex:
        yield ex


def test_programs_run_as_an_unprivileged_uid(executor):
    result = executor.run("py", "import os\nprint(os.getuid(), os.geteuid())\n")
    uid, euid = map(int, result.stdout.split())
    assert uid >= 60000 and euid >= 60000


def test_environment_is_cleared(executor, monkeypatch):
    monkeypatch.setenv("RR_SANDBOX_CANARY", "leaked")  # set before the worker starts: it inherits it
    with Executor(dataclasses.replace(executor.config, workers=1)) as fresh:
        result = fresh.run("py", "import os\nprint(sorted(os.environ))\n")
    assert result.passed and "RR_SANDBOX_CANARY" not in result.stdout


def test_system_is_read_only_and_host_files_stay_untouched(executor, tmp_path):
    tmp_path.chmod(0o777)
    target = tmp_path / "planted"
    program = ("import sys\nfailures = 0\n"
               f"for path in ['/usr/rr_planted', '/etc/rr_planted', '{target}']:\n"
               "    try:\n        open(path, 'w').write('x')\n    except OSError:\n        failures += 1\n"
               "sys.exit(0 if failures == 3 else 1)\n")
    result = executor.run("py", program)
    assert result.passed, result.stderr
    assert not target.exists() and not os.path.exists("/usr/rr_planted") and not os.path.exists("/etc/rr_planted")


def test_no_network_even_to_a_local_listener(executor):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    result = executor.run("py", f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n")
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()
    assert not result.passed


def test_runs_do_not_see_each_others_files(executor):
    first = executor.run("py", "open('left_behind.txt', 'w').write('secret')\nimport os\nprint(os.getcwd())\n")
    second = executor.run("py", "import os, sys\nsys.exit(1 if os.path.exists('left_behind.txt') else 0)\n")
    assert first.passed and second.passed


def test_job_directory_is_writable_and_is_the_working_directory(executor):
    result = executor.run("py", "open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read())\n")
    assert result.passed and result.stdout.strip() == "ok"


def test_seccomp_filter_is_well_formed():
    program = seccomp_filter()
    assert len(program) % 8 == 0 and len(program) // 8 > len(DENIED_SYSCALLS)


def test_inet_sockets_are_refused_but_unix_sockets_work(executor):
    program = ("import socket, sys\nsocket.socketpair(socket.AF_UNIX)\n"
               "try:\n    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\nexcept OSError:\n    sys.exit(0)\nsys.exit(1)\n")
    result = executor.run("py", program)
    assert result.passed, result.stderr
